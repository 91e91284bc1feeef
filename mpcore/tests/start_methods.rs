//! Start methods and contexts: what differs between fork, spawn and forkserver, the
//! rules of `set_start_method`/`get_start_method`, the fork server's life, and that
//! nothing is left behind.
//!
//! The start method is global state, so its rules are checked in fresh copies of
//! this test binary (`scenario`), as `tests/process.rs` does for at-exit behaviour.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mpcore::{Process, StartMethod, get_context};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const ALL: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::Forkserver,
];

/// The write end of a pipe, passable to a child of any start method.
struct Writer(OwnedFd);

impl Serialize for Writer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        mpcore::reduction::serialize_fd("Writer", self.0.as_fd(), s)
    }
}

impl<'de> Deserialize<'de> for Writer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Writer(mpcore::reduction::deserialize_fd(d)?))
    }
}

impl Writer {
    fn say(&self, line: &str) {
        let mut f = File::from(self.0.try_clone().unwrap());
        f.write_all(format!("{line}\n").as_bytes()).unwrap();
    }
}

/// Runs `make(writer)` as a child, joins it and returns (exit code, what it wrote).
fn run_reporting(make: impl FnOnce(Writer) -> Process) -> (Option<i32>, String) {
    let (r, w) = nix::unistd::pipe().unwrap();
    let mut p = make(Writer(w));
    p.start().unwrap();
    let mut out = String::new();
    File::from(r).read_to_string(&mut out).unwrap();
    p.join().unwrap();
    (p.exitcode(), out)
}

fn noop() {}

// ---------------------------------------------------------------------------
// What a child inherits.

static GLOBAL: AtomicU32 = AtomicU32::new(1);

fn report_global(w: Writer) {
    w.say(&GLOBAL.load(Ordering::SeqCst).to_string());
}

#[test]
fn only_a_forked_child_sees_a_change_made_just_before_start() {
    GLOBAL.store(42, Ordering::SeqCst);
    for method in ALL {
        let (code, out) = run_reporting(|w| get_context(method).process(report_global, (w,)));
        assert_eq!(code, Some(0), "{method}");
        let expected = if method == StartMethod::Fork {
            "42"
        } else {
            "1"
        };
        assert_eq!(out.trim(), expected, "{method}");
    }
}

fn report_environment_and_fds(w: Writer, stray: i32) {
    let bootstrap_var = std::env::var_os("MPCORE_BOOTSTRAP_FD").is_some();
    let stray_open = std::path::Path::new(&format!("/proc/self/fd/{stray}")).exists();
    let mut open: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.parse().ok())
        .collect();
    open.sort();
    w.say(&format!(
        "var {bootstrap_var} stray {stray_open} writer {} open {open:?} method {}",
        w.0.as_raw_fd(),
        mpcore::get_start_method()
    ));
}

#[test]
fn spawned_and_forkserver_children_inherit_no_stray_descriptor() {
    // A descriptor without close-on-exec, as a careless library might leave.
    let (stray_r, stray_w) = nix::unistd::pipe().unwrap();
    let stray = stray_w.as_raw_fd();
    for method in [StartMethod::Spawn, StartMethod::Forkserver] {
        let (code, out) =
            run_reporting(|w| get_context(method).process(report_environment_and_fds, (w, stray)));
        assert_eq!(code, Some(0), "{method}: {out}");
        assert!(out.starts_with("var false stray "), "{method}: {out}");
        assert!(
            out.trim_end().ends_with(&format!("method {method}")),
            "{out}"
        );
        // Open: stdin, stdout, stderr, the writer, and read_dir's own descriptor.
        let writer: i32 = out.split(' ').nth(5).unwrap().parse().unwrap();
        // The stray's number is free in the child, unless a handle landed on it.
        assert!(
            out.starts_with("var false stray false") || writer == stray,
            "{method}: the stray descriptor was inherited: {out}"
        );
        let open = out
            .split("open [")
            .nth(1)
            .unwrap()
            .split(']')
            .next()
            .unwrap();
        let open: Vec<i32> = open.split(", ").map(|n| n.parse().unwrap()).collect();
        let extra: Vec<i32> = open
            .iter()
            .copied()
            .filter(|&fd| fd > 2 && fd != writer)
            .collect();
        assert!(
            extra.len() <= 1,
            "{method}: unexpected descriptors in {out}"
        );
    }
    drop((stray_r, stray_w));
}

#[test]
fn a_child_reports_the_start_method_it_was_started_by() {
    for method in ALL {
        let (code, out) =
            run_reporting(|w| get_context(method).process(report_environment_and_fds, (w, -1)));
        assert_eq!(code, Some(0));
        assert!(
            out.trim_end().ends_with(&format!("method {method}")),
            "{out}"
        );
    }
}

fn report_parents(w: Writer) {
    let parent = mpcore::parent_process().unwrap();
    w.say(&format!(
        "{} {} {}",
        parent.name,
        parent.pid,
        nix::unistd::getppid()
    ));
}

#[test]
fn parent_process_is_the_real_parent_even_under_forkserver() {
    let me = std::process::id();
    for method in ALL {
        let (_, out) = run_reporting(|w| get_context(method).process(report_parents, (w,)));
        let fields: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(fields[0], "MainProcess");
        assert_eq!(fields[1], me.to_string());
        let ppid: u32 = fields[2].parse().unwrap();
        if method == StartMethod::Forkserver {
            assert_ne!(ppid, me, "a forkserver child's OS parent is the server");
        } else {
            assert_eq!(ppid, me);
        }
    }
}

// ---------------------------------------------------------------------------
// Closures.

#[test]
fn a_closure_cannot_start_under_spawn_or_forkserver() {
    for method in [StartMethod::Spawn, StartMethod::Forkserver] {
        let data = vec![1, 2, 3];
        let mut p = get_context(method).process_from_closure(move || drop(data));
        let err = p.start().unwrap_err().to_string();
        assert!(err.contains("fork") && err.contains("closure"), "{err}");
        assert_eq!(p.pid(), None);
        assert!(!p.is_alive());

        // A capturing closure given to `Process::new` is refused the same way.
        let offset = 5u32;
        let mut p = get_context(method).process(move |x: u32| x + offset, (1,));
        let err = p.start().unwrap_err().to_string();
        assert!(err.contains("fork") && err.contains("closure"), "{err}");

        // So is a fn pointer (its value, not its type, says which function).
        let pointer: fn() = noop;
        let mut p = get_context(method).process(pointer, ());
        let err = p.start().unwrap_err().to_string();
        assert!(err.contains("fn pointer"), "{err}");
    }
    // Under fork all of them run.
    let offset = 5u32;
    let pointer: fn(u32) = exit_with_u32;
    for mut p in [
        get_context(StartMethod::Fork).process(move |x: u32| exit_with_u32(x + offset), (1,)),
        get_context(StartMethod::Fork).process(pointer, (6,)),
    ] {
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(p.exitcode(), Some(6));
    }
}

fn exit_with(code: i32) {
    mpcore::exit(code);
}

fn exit_with_u32(code: u32) {
    mpcore::exit(code as i32);
}

#[test]
fn a_capture_free_closure_is_a_target_everywhere() {
    for method in ALL {
        let mut p = get_context(method).process(|code: i32| exit_with(code), (9,));
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(p.exitcode(), Some(9), "{method}");
    }
}

fn check_big(data: Vec<u8>, text: String, a: Writer, b: Writer, c: Writer) {
    let sum: u64 = data.iter().map(|&x| u64::from(x)).sum();
    let ok = data.len() == 3 << 20 && sum == expected_sum() && text.len() == 100_000;
    a.say("a");
    b.say("b");
    c.say("c");
    mpcore::exit(if ok { 7 } else { 1 });
}

fn big_data() -> Vec<u8> {
    (0..3u32 << 20).map(|i| (i % 251) as u8).collect()
}

fn expected_sum() -> u64 {
    big_data().iter().map(|&x| u64::from(x)).sum()
}

#[test]
fn large_arguments_and_several_handles_reach_the_child() {
    for method in ALL {
        let pipes: Vec<(OwnedFd, OwnedFd)> = (0..3).map(|_| nix::unistd::pipe().unwrap()).collect();
        let mut readers = Vec::new();
        let mut writers = Vec::new();
        for (r, w) in pipes {
            readers.push(File::from(r));
            writers.push(Writer(w));
        }
        let c = writers.pop().unwrap();
        let b = writers.pop().unwrap();
        let a = writers.pop().unwrap();
        let mut p =
            get_context(method).process(check_big, (big_data(), "x".repeat(100_000), a, b, c));
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(p.exitcode(), Some(7), "{method}");
        for (reader, expected) in readers.iter_mut().zip(["a\n", "b\n", "c\n"]) {
            let mut out = String::new();
            reader.read_to_string(&mut out).unwrap();
            assert_eq!(out, expected, "{method}");
        }
    }
}

#[test]
fn context_processes_carry_cpythons_class_names() {
    for (method, prefix) in [
        (StartMethod::Fork, "ForkProcess-"),
        (StartMethod::Spawn, "SpawnProcess-"),
        (StartMethod::Forkserver, "ForkServerProcess-"),
    ] {
        let p = get_context(method).process(noop, ());
        assert!(p.name().starts_with(prefix), "{}", p.name());
        assert_eq!(get_context(method).get_start_method(), method);
    }
}

#[test]
fn start_methods_have_pythons_names() {
    assert_eq!(mpcore::get_all_start_methods(), ALL.to_vec());
    for (method, name) in ALL.iter().zip(["fork", "spawn", "forkserver"]) {
        assert_eq!(method.to_string(), name);
        assert_eq!(name.parse::<StartMethod>().unwrap(), *method);
    }
    let err = "bogus".parse::<StartMethod>().unwrap_err();
    assert!(err.to_string().contains("cannot find context for 'bogus'"));
}

// ---------------------------------------------------------------------------
// Scenarios: whole programs in a fresh copy of this binary.

const SCENARIO_ENV: &str = "MPCORE_TEST_SCENARIO";

fn scenario_command(name: &str, method: Option<StartMethod>) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        &format!("scenarios::{name}"),
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(SCENARIO_ENV, name)
    .env_remove("MPCORE_START_METHOD");
    if let Some(method) = method {
        cmd.env("MPCORE_START_METHOD", method.to_string());
    }
    cmd
}

/// Runs `scenarios::NAME` as a program of its own; returns its output and pid.
fn scenario(name: &str, method: Option<StartMethod>) -> (Output, u32) {
    let child = scenario_command(name, method)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "scenario {name} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, pid)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The values of the lines `KEY VALUE` in `out` (libtest may have started the line
/// with `test NAME ... `).
fn values<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    let key = format!("{key} ");
    out.lines()
        .filter_map(|l| {
            let at = l
                .match_indices(&key)
                .map(|(at, _)| at)
                .find(|&at| at == 0 || l[..at].ends_with(' '))?;
            Some(&l[at + key.len()..])
        })
        .collect()
}

/// Waits (generously) until `pid` no longer exists.
fn gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Entries of the temporary directory and of /dev/shm that a program with `pid`
/// would have created (`mpcore-PID-...`).
fn leftovers(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("mpcore-{pid}-");
    [std::env::temp_dir(), PathBuf::from("/dev/shm")]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

#[test]
fn the_start_method_is_fixed_as_in_python() {
    let (out, _) = scenario("method_rules", None);
    let out = stdout(&out);
    for line in [
        "default fork",
        "after construct set ok",
        "second set already",
        "get spawn",
    ] {
        assert!(out.contains(line), "missing {line:?} in {out}");
    }
    let (out, _) = scenario("get_fixes", None);
    assert!(
        stdout(&out).contains("set after get: already"),
        "{}",
        stdout(&out)
    );
    let (out, _) = scenario("start_fixes", None);
    let out = stdout(&out);
    assert!(out.contains("after context start: ok"), "{out}");
    assert!(out.contains("after plain start: already"), "{out}");
}

#[test]
fn the_environment_variable_replaces_the_default() {
    for method in ALL {
        let (out, _) = scenario("report_method", Some(method));
        let out = stdout(&out);
        assert!(out.contains(&format!("main {method}\n")), "{out}");
        assert!(out.contains(&format!("child {method}\n")), "{out}");
    }
}

#[test]
fn names_are_the_same_under_every_start_method() {
    let outputs: Vec<String> = ALL
        .iter()
        .map(|&m| {
            let out = stdout(&scenario("names", Some(m)).0);
            values(&out, "name")
                .iter()
                .map(|v| format!("name {v}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    assert!(
        outputs[0].contains("name Process-1\nname Process-2"),
        "{}",
        outputs[0]
    );
    assert!(outputs[0].contains("name Process-2:1"), "{}", outputs[0]);
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

#[test]
fn a_spawned_child_runs_none_of_main() {
    for method in [StartMethod::Spawn, StartMethod::Forkserver] {
        let (out, _) = scenario("main_once", Some(method));
        let out = stdout(&out);
        // libtest's own main prints its summary once: the child never ran it.
        assert_eq!(out.matches("test result").count(), 1, "{out}");
        assert_eq!(out.matches("main starts").count(), 1, "{out}");
        assert!(out.contains("child ran\n"), "{out}");
    }
}

#[test]
fn the_fork_server_stops_with_its_program_and_leaves_nothing() {
    let (out, pid) = scenario("forkserver_life", Some(StartMethod::Forkserver));
    let out = stdout(&out);
    let servers = values(&out, "server");
    assert_eq!(servers.len(), 2, "{out}");
    assert_eq!(
        servers[0], servers[1],
        "one server serves every start: {out}"
    );
    assert_eq!(values(&out, "dir mode"), ["700"], "{out}");
    assert_eq!(
        values(&out, "entry"),
        ["mpcore-forkserver socket true mode 600"],
        "{out}"
    );
    let server: i32 = servers[0].parse().unwrap();
    assert_ne!(server, pid as i32);
    assert!(gone(server), "the fork server outlived its program");
    assert_eq!(leftovers(pid), Vec::<PathBuf>::new());
}

#[test]
fn a_killed_fork_server_is_replaced_and_leaves_nothing() {
    let (out, pid) = scenario("forkserver_killed", Some(StartMethod::Forkserver));
    let out = stdout(&out);
    let servers = values(&out, "server");
    assert_eq!(servers.len(), 2, "{out}");
    assert_ne!(servers[0], servers[1], "a new server after the kill: {out}");
    let in_flight = values(&out, "in-flight exitcode");
    assert!(
        in_flight == ["Some(0)"] || in_flight == ["Some(255)"],
        "{out}"
    );
    assert!(out.contains("next exitcode Some(0)\n"), "{out}");
    for server in servers {
        assert!(gone(server.parse().unwrap()), "a fork server was left");
    }
    let orphan: i32 = values(&out, "in-flight pid")[0].parse().unwrap();
    assert!(gone(orphan), "the in-flight child was left running");
    assert_eq!(leftovers(pid), Vec::<PathBuf>::new());
}

#[test]
fn a_killed_program_takes_its_fork_server_with_it() {
    /// Kills the scenario if the test fails before it does.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = KillOnDrop(
        scenario_command("killed_main", Some(StartMethod::Forkserver))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let mut stdout = child.0.stdout.take().unwrap();
    let mut out = String::new();
    let mut buf = [0u8; 256];
    while !out.contains("ready\n") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "scenario ended early: {out}");
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let server: i32 = values(&out, "server")[0].parse().unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    child.0.wait().unwrap();
    assert!(gone(server), "the fork server outlived a killed program");
    // The server removes its socket and directory itself when its program is gone.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !leftovers(pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(leftovers(pid), Vec::<PathBuf>::new());
}

mod scenarios {
    use super::*;

    fn active(name: &str) -> bool {
        std::env::var(SCENARIO_ENV).is_ok_and(|s| s == name)
    }

    fn verdict(r: mpcore::Result<()>) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(e) if e.to_string().contains("already") => "already",
            Err(_) => "other error",
        }
    }

    #[test]
    fn method_rules() {
        if !active("method_rules") {
            return;
        }
        mpcore::init();
        let p = Process::new(noop, ());
        drop(p);
        println!(
            "after construct set {}",
            verdict(mpcore::set_start_method(StartMethod::Spawn))
        );
        println!(
            "second set {}",
            verdict(mpcore::set_start_method(StartMethod::Fork))
        );
        println!("get {}", mpcore::get_start_method());
        println!("default {}", StartMethod::Fork);
    }

    #[test]
    fn get_fixes() {
        if !active("get_fixes") {
            return;
        }
        mpcore::init();
        let _ = mpcore::get_start_method();
        println!(
            "set after get: {}",
            verdict(mpcore::set_start_method(StartMethod::Spawn))
        );
    }

    #[test]
    fn start_fixes() {
        if !active("start_fixes") {
            return;
        }
        mpcore::init();
        let mut p = get_context(StartMethod::Spawn).process(noop, ());
        p.start().unwrap();
        p.join().unwrap();
        let mut p = Process::new(noop, ());
        p.start().unwrap();
        p.join().unwrap();
        println!("after context start: ok");
        println!(
            "after plain start: {}",
            verdict(mpcore::set_start_method(StartMethod::Spawn))
        );
    }

    fn print_method() {
        println!("child {}", mpcore::get_start_method());
    }

    #[test]
    fn report_method() {
        if !active("report_method") {
            return;
        }
        mpcore::init();
        println!("main {}", mpcore::get_start_method());
        let mut p = Process::new(print_method, ());
        p.start().unwrap();
        p.join().unwrap();
    }

    fn print_names() {
        let mut p = Process::new(noop, ());
        println!("name {}", p.name());
        p.start().unwrap();
        p.join().unwrap();
    }

    #[test]
    fn names() {
        if !active("names") {
            return;
        }
        mpcore::init();
        let a = Process::new(noop, ());
        println!("name {}", a.name());
        let mut b = Process::new(print_names, ());
        println!("name {}", b.name());
        b.start().unwrap();
        b.join().unwrap();
        println!("name {}", Process::new(noop, ()).name());
    }

    fn child_ran() {
        println!("child ran");
    }

    #[test]
    fn main_once() {
        if !active("main_once") {
            return;
        }
        mpcore::init();
        println!("main starts");
        let mut p = Process::new(child_ran, ());
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(p.exitcode(), Some(0));
    }

    fn print_server() {
        println!("server {}", nix::unistd::getppid());
    }

    fn print_server_then_sleep(millis: u64) {
        println!("server {}", nix::unistd::getppid());
        std::thread::sleep(Duration::from_millis(millis));
    }

    #[test]
    fn forkserver_life() {
        if !active("forkserver_life") {
            return;
        }
        mpcore::init();
        for _ in 0..2 {
            let mut p = Process::new(print_server, ());
            p.start().unwrap();
            p.join().unwrap();
            assert_eq!(p.exitcode(), Some(0));
        }
        // The server's socket, in its private directory.
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        for dir in leftovers(std::process::id()) {
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            println!("dir mode {mode:o}");
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let meta = entry.metadata().unwrap();
                println!(
                    "entry {} socket {} mode {:o}",
                    entry.file_name().to_string_lossy(),
                    meta.file_type().is_socket(),
                    meta.permissions().mode() & 0o777
                );
            }
        }
    }

    #[test]
    fn forkserver_killed() {
        if !active("forkserver_killed") {
            return;
        }
        mpcore::init();
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut in_flight = Process::new(report_parents_then_sleep, (Writer(w), 500));
        in_flight.start().unwrap();
        println!("in-flight pid {}", in_flight.pid().unwrap());
        let mut line = String::new();
        File::from(r).read_to_string(&mut line).unwrap();
        let server: i32 = line.trim().parse().unwrap();
        println!("server {server}");
        kill(Pid::from_raw(server), Signal::SIGKILL).unwrap();
        in_flight.join().unwrap();
        println!("in-flight exitcode {:?}", in_flight.exitcode());
        let mut next = Process::new(print_server, ());
        next.start().unwrap();
        next.join().unwrap();
        println!("next exitcode {:?}", next.exitcode());
    }

    fn report_parents_then_sleep(w: Writer, millis: u64) {
        w.say(&nix::unistd::getppid().to_string());
        drop(w);
        std::thread::sleep(Duration::from_millis(millis));
    }

    #[test]
    fn killed_main() {
        if !active("killed_main") {
            return;
        }
        mpcore::init();
        let mut p = Process::new(print_server_then_sleep, (0,));
        p.start().unwrap();
        p.join().unwrap();
        println!("ready");
        std::io::stdout().flush().unwrap();
        std::thread::sleep(Duration::from_secs(120));
    }
}
