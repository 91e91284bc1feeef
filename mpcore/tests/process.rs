//! The process core: lifecycle, exit codes, names, daemons, misuse errors, reaping.
//!
//! Children report back over plain OS pipes (`Pipe` below), so these tests depend
//! on nothing but `Process`. Behaviours that only show when a *main* function ends
//! (at-exit joins, buffered output at fork) run in a fresh copy of this test binary:
//! see `scenario`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mpcore::{Error, Process};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// A one-way OS pipe: the child writes a line, the parent reads everything.
struct Pipe {
    reader: File,
    writer: OwnedFd,
}

impl Pipe {
    fn new() -> Pipe {
        let (r, w) = nix::unistd::pipe().unwrap();
        Pipe {
            reader: File::from(r),
            writer: w,
        }
    }

    /// Reads everything the children wrote, once every writer is closed.
    fn read_all(mut self) -> String {
        drop(self.writer);
        let mut out = String::new();
        self.reader.read_to_string(&mut out).unwrap();
        out
    }
}

fn say(fd: &OwnedFd, line: &str) {
    let mut f = File::from(fd.try_clone().unwrap());
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

fn noop() {}

fn sleep_secs(secs: u64) {
    std::thread::sleep(Duration::from_secs(secs));
}

fn boom() {
    panic!("boom at 3");
}

fn exit_with(code: i32) {
    mpcore::exit(code);
}

fn run(mut p: Process) -> Process {
    p.start().unwrap();
    p.join().unwrap();
    p
}

fn is_reaped(pid: i32) -> bool {
    matches!(
        waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
        Err(Errno::ECHILD)
    )
}

#[test]
fn a_normal_return_exits_0_and_the_child_is_reaped() {
    let p = run(Process::new(noop, ()));
    assert_eq!(p.exitcode(), Some(0));
    assert!(!p.is_alive());
    let pid = p.pid().expect("pid stays known after join");
    assert_ne!(pid, std::process::id() as i32);
    assert!(is_reaped(pid), "join must reap: no zombie");
}

#[test]
fn a_panic_exits_1_and_reports_process_name_then_message() {
    let log = tempfile_path("panic");
    let path = log.clone();
    let p = Process::from_closure(move || {
        let file = File::create(&path).unwrap();
        nix::unistd::dup2_stderr(&file).unwrap();
        boom();
    });
    let name = p.name().to_string();
    let p = run(p);
    assert_eq!(p.exitcode(), Some(1));
    let stderr = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    let header = stderr.find(&format!("Process {name}:\n")).expect(&stderr);
    let message = stderr.find("boom at 3").expect(&stderr);
    assert!(header < message, "{stderr}");
}

#[test]
fn exit_codes_are_the_kernel_status_byte() {
    for (code, expected) in [(0, 0), (7, 7), (255, 255), (256, 0), (-1, 255), (263, 7)] {
        let p = run(Process::new(exit_with, (code,)));
        assert_eq!(p.exitcode(), Some(expected), "exit({code})");
    }
}

#[test]
fn terminate_gives_minus_sigterm_and_kill_minus_sigkill() {
    let mut p = Process::new(sleep_secs, (60,));
    p.start().unwrap();
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);
    p.terminate().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(-15));
    assert!(!p.is_alive());

    let mut p = Process::new(sleep_secs, (60,));
    p.start().unwrap();
    p.kill().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(-9));
}

#[test]
fn a_signal_from_outside_gives_minus_that_signal() {
    let mut p = Process::new(sleep_secs, (60,));
    p.start().unwrap();
    kill(Pid::from_raw(p.pid().unwrap()), Signal::SIGUSR1).unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(-(Signal::SIGUSR1 as i32)));
}

#[test]
fn signalling_a_finished_child_is_harmless() {
    let mut p = run(Process::new(noop, ()));
    p.terminate().unwrap();
    p.kill().unwrap();
    assert_eq!(p.exitcode(), Some(0));
}

#[test]
fn join_timeout_returns_while_the_child_runs() {
    let mut p = Process::new(sleep_secs, (60,));
    p.start().unwrap();
    let started = Instant::now();
    p.join_timeout(Duration::from_millis(200)).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);
    p.join_timeout(Duration::ZERO).unwrap();
    assert!(p.is_alive());
    p.kill().unwrap();
    p.join_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(p.exitcode(), Some(-9));
}

#[test]
fn the_sentinel_turns_readable_when_the_child_ends() {
    let mut p = Process::new(sleep_secs, (60,));
    assert!(matches!(p.sentinel(), Err(Error::InvalidState(m)) if m.contains("not started")));
    p.start().unwrap();
    let fd = p.sentinel().unwrap();
    let ready = mpcore::sys::poll::wait_readable(&[fd], Some(Duration::ZERO)).unwrap();
    assert_eq!(ready, vec![false]);
    p.kill().unwrap();
    let ready = mpcore::sys::poll::wait_readable(&[fd], Some(Duration::from_secs(30))).unwrap();
    assert_eq!(ready, vec![true]);
    p.join().unwrap();
}

#[test]
fn names_count_up_and_a_childs_child_gets_a_colon_name() {
    let a = Process::new(noop, ());
    let b = Process::new(noop, ());
    let number =
        |p: &Process| -> u32 { p.name().strip_prefix("Process-").unwrap().parse().unwrap() };
    assert_eq!(number(&b), number(&a) + 1);

    let pipe = Pipe::new();
    let writer = pipe.writer.try_clone().unwrap();
    let p = Process::from_closure(move || {
        let me = mpcore::current_process();
        let parent = mpcore::parent_process().unwrap();
        say(
            &writer,
            &format!("child {} parent {} {}", me.name, parent.name, parent.pid),
        );
        let w = writer.try_clone().unwrap();
        let mut grandchild = Process::from_closure(move || {
            let me = mpcore::current_process();
            let parent = mpcore::parent_process().unwrap();
            say(
                &w,
                &format!("grandchild {} parent {}", me.name, parent.name),
            );
        });
        grandchild.start().unwrap();
        grandchild.join().unwrap();
        let mut second = Process::new(noop, ());
        say(&writer, &format!("second {}", second.name()));
        second.start().unwrap();
        second.join().unwrap();
    });
    let name = p.name().to_string();
    let p = run(p);
    assert_eq!(p.exitcode(), Some(0));
    let out = pipe.read_all();
    let me = std::process::id();
    assert!(
        out.contains(&format!("child {name} parent MainProcess {me}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("grandchild {name}:1 parent {name}\n")),
        "{out}"
    );
    assert!(out.contains(&format!("second {name}:2\n")), "{out}");
}

#[test]
fn the_main_process_is_main_process_with_no_parent() {
    let me = mpcore::current_process();
    assert_eq!(me.name, "MainProcess");
    assert_eq!(me.pid, std::process::id() as i32);
    assert!(!me.daemon);
    assert_eq!(mpcore::parent_process(), None);
    assert!(mpcore::cpu_count() >= 1);
}

#[test]
fn a_daemon_cannot_start_children_and_its_children_default_to_daemon() {
    let pipe = Pipe::new();
    let writer = pipe.writer.try_clone().unwrap();
    let p = Process::from_closure(move || {
        say(
            &writer,
            &format!("daemon {}", mpcore::current_process().daemon),
        );
        let mut child = Process::new(noop, ());
        say(&writer, &format!("default {}", child.daemon()));
        match child.start() {
            Err(err) => say(&writer, &format!("error {err}")),
            Ok(()) => say(&writer, "started"),
        }
    })
    .with_daemon(true);
    assert!(p.daemon());
    let p = run(p);
    assert_eq!(p.exitcode(), Some(0));
    let out = pipe.read_all();
    assert!(out.contains("daemon true\n"), "{out}");
    assert!(out.contains("default true\n"), "{out}");
    assert!(
        out.contains("error daemonic processes are not allowed to have children\n"),
        "{out}"
    );
}

#[test]
fn misuse_returns_pythons_errors() {
    fn message(result: mpcore::Result<()>) -> String {
        match result {
            Err(Error::InvalidState(msg)) => msg,
            other => panic!("expected InvalidState, got {other:?}"),
        }
    }
    let mut p = Process::new(sleep_secs, (60,));
    assert!(message(p.join()).contains("can only join a started process"));
    p.set_daemon(true).unwrap();
    p.set_daemon(false).unwrap();
    p.start().unwrap();
    assert!(message(p.start()).contains("cannot start a process twice"));
    assert!(message(p.set_daemon(true)).contains("process has already started"));
    assert!(message(p.close()).contains("still running"));
    p.kill().unwrap();
    p.join().unwrap();
    p.close().unwrap();
    p.close().unwrap(); // a second close is fine
    for result in [
        p.start(),
        p.join(),
        p.terminate(),
        p.kill(),
        p.join_timeout(Duration::ZERO),
    ] {
        assert_eq!(message(result), "process object is closed");
    }
    assert!(matches!(p.sentinel(), Err(Error::InvalidState(m)) if m == "process object is closed"));
    assert!(!p.is_alive());
    assert!(p.name().starts_with("Process-")); // still readable
    assert!(format!("{p:?}").ends_with("closed>"));
}

#[test]
fn active_children_lists_running_ones_and_reaps_finished_ones() {
    let mut running = Process::new(sleep_secs, (60,));
    running.start().unwrap();
    let mut finished = Process::new(exit_with, (3,));
    finished.start().unwrap();
    // Wait for the short one to end without reaping it.
    let fd = finished.sentinel().unwrap();
    mpcore::sys::poll::wait_readable(&[fd], Some(Duration::from_secs(30))).unwrap();

    let children = mpcore::active_children();
    let pids: Vec<i32> = children.iter().map(|c| c.pid).collect();
    assert!(pids.contains(&running.pid().unwrap()));
    assert!(!pids.contains(&finished.pid().unwrap()));
    let entry = children
        .iter()
        .find(|c| c.pid == running.pid().unwrap())
        .unwrap();
    assert_eq!(entry.name, running.name());
    assert!(is_reaped(finished.pid().unwrap()), "active_children reaps");
    // A join after the reap still knows the exit code.
    finished.join().unwrap();
    assert_eq!(finished.exitcode(), Some(3));

    running.kill().unwrap();
    running.join().unwrap();
    assert!(
        !mpcore::active_children()
            .iter()
            .any(|c| c.pid == running.pid().unwrap())
    );
}

#[derive(Serialize, Deserialize)]
struct Reporter {
    word: String,
    #[serde(skip)]
    fd: Option<OwnedFd>,
}

impl mpcore::Run for Reporter {
    fn run(&mut self) {
        let fd = self.fd.take().unwrap();
        say(
            &fd,
            &format!("{} from {}", self.word, mpcore::current_process().name),
        );
    }
}

#[test]
fn from_run_calls_run_in_a_child() {
    let pipe = Pipe::new();
    let reporter = Reporter {
        word: "hello".into(),
        fd: Some(pipe.writer.try_clone().unwrap()),
    };
    let p = Process::from_run(reporter).with_name("reporter");
    assert_eq!(p.name(), "reporter");
    let p = run(p);
    assert_eq!(p.exitcode(), Some(0));
    assert_eq!(pipe.read_all(), "hello from reporter\n");
}

#[test]
fn targets_take_up_to_six_serde_arguments() {
    fn six(a: u8, b: String, c: Vec<i32>, d: (bool, char), e: Option<f64>, f: i64) {
        let ok = a == 1 && b == "two" && c == [3] && d == (true, '4') && e == Some(5.5) && f == -6;
        mpcore::exit(if ok { 42 } else { 1 });
    }
    let p = run(Process::new(
        six,
        (
            1u8,
            "two".to_string(),
            vec![3],
            (true, '4'),
            Some(5.5),
            -6i64,
        ),
    ));
    assert_eq!(p.exitcode(), Some(42));
}

#[test]
fn a_child_ends_by_joining_its_own_children_and_terminating_its_daemons() {
    let pipe = Pipe::new();
    let writer = pipe.writer.try_clone().unwrap();
    let started = Instant::now();
    let p = Process::from_closure(move || {
        let w = writer.try_clone().unwrap();
        let mut daemon = Process::from_closure(move || {
            std::thread::sleep(Duration::from_secs(60));
            say(&w, "daemon finished");
        })
        .with_daemon(true);
        daemon.start().unwrap();
        say(&writer, &format!("daemon pid {}", daemon.pid().unwrap()));
        let w = writer.try_clone().unwrap();
        let mut worker = Process::from_closure(move || {
            std::thread::sleep(Duration::from_millis(300));
            say(&w, "worker finished");
        });
        worker.start().unwrap();
        // Both handles are dropped here, unjoined.
    });
    let p = run(p);
    assert_eq!(p.exitcode(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the daemon was not terminated"
    );
    let out = pipe.read_all();
    assert!(out.contains("worker finished\n"), "{out}");
    assert!(!out.contains("daemon finished"), "{out}");
    let daemon_pid: i32 = out
        .lines()
        .find_map(|l| l.strip_prefix("daemon pid "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        kill(Pid::from_raw(daemon_pid), None),
        Err(Errno::ESRCH),
        "daemon left running"
    );
}

// ---------------------------------------------------------------------------
// Scenarios: behaviours of a whole program, run in a fresh copy of this binary.

const SCENARIO_ENV: &str = "MPCORE_TEST_SCENARIO";

/// Runs the test `scenarios::NAME` alone in a new copy of this test binary, where
/// it acts as a program's `main`, and returns what that program printed.
fn scenario(name: &str) -> Output {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            &format!("scenarios::{name}"),
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(SCENARIO_ENV, name)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "scenario {name} failed: {output:?}"
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

mod scenarios {
    use super::*;

    fn active(name: &str) -> bool {
        std::env::var(SCENARIO_ENV).is_ok_and(|s| s == name)
    }

    fn late_print(word: String, millis: u64) {
        std::thread::sleep(Duration::from_millis(millis));
        println!("{word}");
    }

    #[test]
    fn at_exit() {
        if !active("at_exit") {
            return;
        }
        mpcore::init();
        let mut daemon =
            Process::new(late_print, ("daemon end".to_string(), 30_000)).with_daemon(true);
        daemon.start().unwrap();
        println!("daemon pid {}", daemon.pid().unwrap());
        let mut worker = Process::new(late_print, ("worker end".to_string(), 300));
        worker.start().unwrap();
        drop(daemon);
        drop(worker);
        println!("main end");
    }

    #[test]
    fn flush_before_fork() {
        if !active("flush_before_fork") {
            return;
        }
        print!("written once;");
        let mut p = Process::new(noop, ());
        p.start().unwrap();
        p.join().unwrap();
        println!(" after join");
    }
}

#[test]
fn at_the_end_of_main_daemons_are_terminated_and_others_joined() {
    let started = Instant::now();
    let out = stdout(&scenario("at_exit"));
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the daemon held main's exit up"
    );
    let main_end = out.find("main end").expect(&out);
    let worker_end = out.find("worker end").expect(&out);
    assert!(main_end < worker_end, "{out}");
    assert!(!out.contains("daemon end"), "{out}");
    let daemon_pid: i32 = out
        .lines()
        .find_map(|l| l.strip_prefix("daemon pid "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        kill(Pid::from_raw(daemon_pid), None),
        Err(Errno::ESRCH),
        "daemon left running"
    );
}

#[test]
fn buffered_output_is_flushed_before_fork_and_never_printed_twice() {
    let out = stdout(&scenario("flush_before_fork"));
    assert_eq!(out.matches("written once;").count(), 1, "{out}");
    assert!(out.contains("written once; after join"), "{out}");
}

fn tempfile_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "mpcore-test-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ))
}

#[test]
fn pipes_close_in_the_parent_when_the_handle_is_dropped() {
    // The closure owns the writer; after start, the parent's copy must be gone, or
    // the reader below would never see end of file.
    let (r, w) = nix::unistd::pipe().unwrap();
    let mut p = Process::from_closure(move || say(&w, "bye"));
    p.start().unwrap();
    let mut reader = File::from(r);
    let mut out = String::new();
    reader.read_to_string(&mut out).unwrap();
    assert_eq!(out, "bye\n");
    p.join().unwrap();
    let _ = reader.as_raw_fd();
}
