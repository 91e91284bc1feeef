//! Lesson `terminate`: a long-running child is terminated by its parent (exit code
//! -15), joined and closed; Ctrl-C (SIGINT) to the parent takes the same path at once.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// The child would work for 60 article seconds; the parent gives it 5.
const CHILD_WORK: f64 = 60.0;

#[test]
fn terminate() {
    let run = harness::check_lesson("terminate", &[]);
    harness::assert_lesson_snapshot!(run);
    assert_eq!(run.exit_code, Some(0), "stderr: {}", run.stderr);

    let child = run.pid_of("Process-1").expect("the child logged its pid");
    assert_ne!(child, run.main_pid);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[..3],
        ["父进程", "子进程", "exitcode while it runs: None"]
    );
    assert!(
        lines.contains(&"exitcode after terminate: -15"),
        "{}",
        run.stdout
    );
    assert_eq!(lines.last(), Some(&"所有子进程退出"));

    // The child was stopped, not waited for: the run is far shorter than its work.
    let work = Duration::from_secs_f64(CHILD_WORK * harness::DEFAULT_TIME_SCALE);
    assert!(
        run.elapsed < work / 2,
        "took {:?}: the child ran on",
        run.elapsed
    );
}

/// Ctrl-C as `kill -INT <parent>` sends it: to the parent only. The parent terminates
/// the child at once, although it would have waited 50 seconds.
#[test]
fn ctrl_c_terminates_the_child_at_once() {
    let mut lesson = Command::new(harness::lesson_binary("terminate"));
    lesson
        .current_dir(harness::workspace_root())
        .env("LESSON_TIME_SCALE", "10")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut parent = lesson.spawn().expect("start the lesson");
    let pid = Pid::from_raw(parent.id() as i32);

    // Read lines on a thread, so a hung lesson cannot hang the test.
    let stdout = parent.stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let next_line = |limit: Duration| match lines.recv_timeout(limit) {
        Ok(line) => Some(line),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // The parent is not reaped yet, so its group id is still ours to signal.
            let _ = killpg(pid, Signal::SIGKILL);
            panic!("the lesson went silent");
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => None,
    };

    // Once the parent says the child is running, it is waiting for Ctrl-C.
    while let Some(line) = next_line(Duration::from_secs(30)) {
        let ready = line == "exitcode while it runs: None";
        printed.push(line);
        if ready {
            break;
        }
    }
    let interrupted = Instant::now();
    kill(pid, Signal::SIGINT).expect("send SIGINT to the lesson");
    while let Some(line) = next_line(Duration::from_secs(30)) {
        printed.push(line);
    }
    let status = parent.wait().expect("wait for the lesson");
    let after = interrupted.elapsed();

    assert!(status.success(), "{status:?}: {printed:#?}");
    assert_eq!(
        printed,
        [
            "父进程",
            "子进程",
            "exitcode while it runs: None",
            "Received KeyboardInterrupt, terminating the process...",
            "exitcode after terminate: -15",
            "所有子进程退出",
        ]
    );
    assert!(
        after < Duration::from_secs(10),
        "took {after:?} after Ctrl-C"
    );
    assert!(
        harness::process::group_members(parent.id()).is_empty(),
        "the child outlived the lesson"
    );
}
