//! Start methods and contexts: what differs between fork, spawn and forkserver, the
//! rules of `set_start_method`/`get_start_method`, the fork server's life, and that
//! nothing is left behind.
//!
//! The start method is global state, so its rules are checked in fresh copies of
//! this test binary (`scenario`), as `tests/process.rs` does for at-exit behaviour.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{
    Pipe, Writer, exit_with, finish, noop, process, run, scenario_command, start, stdout,
};
use mpcore::{Process, StartMethod, get_context};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const ALL: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::Forkserver,
];

/// Runs `make(writer)` as a child, joins it and returns (exit code, what it wrote).
fn run_reporting(make: impl FnOnce(Writer) -> Process) -> (i32, String) {
    let pipe = Pipe::new();
    let p = start(make(pipe.writer.clone()));
    let out = pipe.read_all();
    (finish(p), out)
}

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
        let (code, out) = run_reporting(|w| process(method, report_global, (w,)));
        assert_eq!(code, 0, "{method}");
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
            run_reporting(|w| process(method, report_environment_and_fds, (w, stray)));
        assert_eq!(code, 0, "{method}: {out}");
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
        let (code, out) = run_reporting(|w| process(method, report_environment_and_fds, (w, -1)));
        assert_eq!(code, 0);
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
        let (_, out) = run_reporting(|w| process(method, report_parents, (w,)));
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
        let mut p = process(method, move |x: u32| x + offset, (1,));
        let err = p.start().unwrap_err().to_string();
        assert!(err.contains("fork") && err.contains("closure"), "{err}");

        // So is a fn pointer (its value, not its type, says which function).
        let pointer: fn() = noop;
        let mut p = process(method, pointer, ());
        let err = p.start().unwrap_err().to_string();
        assert!(err.contains("fn pointer"), "{err}");
    }
    // Under fork all of them run.
    let offset = 5u32;
    let pointer: fn(u32) = exit_with_u32;
    for p in [
        process(
            StartMethod::Fork,
            move |x: u32| exit_with_u32(x + offset),
            (1,),
        ),
        process(StartMethod::Fork, pointer, (6,)),
    ] {
        assert_eq!(run(p), 6);
    }
}

fn exit_with_u32(code: u32) {
    mpcore::exit(code as i32);
}

#[test]
fn a_capture_free_closure_is_a_target_everywhere() {
    for method in ALL {
        let p = process(method, |code: i32| exit_with(code), (9,));
        assert_eq!(run(p), 9, "{method}");
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
        let pipes: [Pipe; 3] = std::array::from_fn(|_| Pipe::new());
        let [a, b, c] = pipes.each_ref().map(|pipe| pipe.writer.clone());
        let p = process(
            method,
            check_big,
            (big_data(), "x".repeat(100_000), a, b, c),
        );
        assert_eq!(run(p), 7, "{method}");
        for (pipe, expected) in pipes.into_iter().zip(["a\n", "b\n", "c\n"]) {
            assert_eq!(pipe.read_all(), expected, "{method}");
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
        let p = process(method, noop, ());
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
    for line in ["after construct set ok", "second set already", "get spawn"] {
        assert!(out.contains(line), "missing {line:?} in {out}");
    }
    // With MPCORE_START_METHOD unset, the default is fork (Python 3.11 to 3.13 on
    // Linux), and asking for it fixes it.
    let (out, _) = scenario("get_fixes", None);
    let out = stdout(&out);
    assert!(out.contains("default fork\n"), "{out}");
    assert!(out.contains("set after get: already"), "{out}");
    // Starting a context's process leaves the default unset (Python's
    // test_spawn_dont_set_context); starting a plain one fixes it.
    let (out, _) = scenario("context_start_does_not_fix", None);
    let out = stdout(&out);
    assert!(out.contains("after context start: ok"), "{out}");
    assert!(out.contains("child method spawn\n"), "{out}");
    let (out, _) = scenario("plain_start_fixes", None);
    let out = stdout(&out);
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
    use crate::common::in_scenario;

    fn verdict(r: mpcore::Result<()>) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(e) if e.to_string().contains("already") => "already",
            Err(_) => "other error",
        }
    }

    #[test]
    fn method_rules() {
        if !in_scenario("method_rules") {
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
    }

    #[test]
    fn get_fixes() {
        if !in_scenario("get_fixes") {
            return;
        }
        mpcore::init();
        println!("default {}", mpcore::get_start_method());
        println!(
            "set after get: {}",
            verdict(mpcore::set_start_method(StartMethod::Spawn))
        );
    }

    #[test]
    fn context_start_does_not_fix() {
        if !in_scenario("context_start_does_not_fix") {
            return;
        }
        mpcore::init();
        assert_eq!(
            run(get_context(StartMethod::Spawn).process(print_child_method, ())),
            0
        );
        // Setting succeeds only if nothing fixed the method yet.
        println!(
            "after context start: {}",
            verdict(mpcore::set_start_method(StartMethod::Forkserver))
        );
    }

    fn print_child_method() {
        println!("child method {}", mpcore::get_start_method());
    }

    #[test]
    fn plain_start_fixes() {
        if !in_scenario("plain_start_fixes") {
            return;
        }
        mpcore::init();
        run(Process::new(noop, ()));
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
        if !in_scenario("report_method") {
            return;
        }
        mpcore::init();
        println!("main {}", mpcore::get_start_method());
        run(Process::new(print_method, ()));
    }

    fn print_names() {
        let p = Process::new(noop, ());
        println!("name {}", p.name());
        run(p);
    }

    #[test]
    fn names() {
        if !in_scenario("names") {
            return;
        }
        mpcore::init();
        let a = Process::new(noop, ());
        println!("name {}", a.name());
        let b = Process::new(print_names, ());
        println!("name {}", b.name());
        run(b);
        println!("name {}", Process::new(noop, ()).name());
    }

    fn child_ran() {
        println!("child ran");
    }

    #[test]
    fn main_once() {
        if !in_scenario("main_once") {
            return;
        }
        mpcore::init();
        println!("main starts");
        assert_eq!(run(Process::new(child_ran, ())), 0);
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
        if !in_scenario("forkserver_life") {
            return;
        }
        mpcore::init();
        for _ in 0..2 {
            assert_eq!(run(Process::new(print_server, ())), 0);
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
        if !in_scenario("forkserver_killed") {
            return;
        }
        mpcore::init();
        let pipe = Pipe::new();
        let mut in_flight = start(Process::new(
            report_parents_then_sleep,
            (pipe.writer.clone(), 500),
        ));
        println!("in-flight pid {}", in_flight.pid().unwrap());
        let line = pipe.read_all();
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
        if !in_scenario("killed_main") {
            return;
        }
        mpcore::init();
        run(Process::new(print_server_then_sleep, (0,)));
        println!("ready");
        std::io::stdout().flush().unwrap();
        std::thread::sleep(Duration::from_secs(120));
    }
}
