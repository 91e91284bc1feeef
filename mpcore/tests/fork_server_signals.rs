//! The fork server and SIGINT (row 36 of the behaviour catalogue; CPython:
//! `test_forkserver_sigint`). A Ctrl-C in a terminal reaches the whole process
//! group: like CPython's, the server ignores SIGINT, so it keeps serving and keeps
//! the exit codes of the children it forked, while those children get SIGINT's
//! default action back. (A server killed outright is covered by
//! `tests/start_methods.rs`.)
//!
//! A test binary of its own, so that signalling its fork server disturbs no other
//! test.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{BOUND, finish, start};
use mpcore::{Connection, Event, Process, StartMethod, get_context};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, getppid};

/// Whether `pid` runs: it exists and is not a zombie.
fn running(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "PID (NAME) STATE ...": the state follows the last parenthesis.
    let state = stat
        .rfind(')')
        .and_then(|at| stat[at + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// A started child that is killed and reaped if it still runs when dropped, so
/// that a failing test leaves nothing behind.
struct Child(Option<Process>);

impl Child {
    fn pid(&self) -> i32 {
        self.0.as_ref().and_then(Process::pid).unwrap()
    }

    /// Waits for the child; returns its exit code.
    fn finish(mut self) -> i32 {
        finish(self.0.take().unwrap())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut p) = self.0.take() {
            if p.is_alive() {
                let _ = p.kill();
            }
            let _ = p.join();
        }
    }
}

/// Reports the pid of the process that forked it (the fork server), then waits
/// for `go`.
fn report_server_then_wait(report: Connection, go: Event) {
    report.send(&getppid().as_raw()).unwrap();
    assert!(go.wait_timeout(BOUND), "never told to go on");
}

/// Says it is ready, then sleeps until a signal ends it (or the bound passes).
fn wait_for_a_signal(ready: Event) {
    ready.set();
    thread::sleep(BOUND);
}

#[test]
fn sigint_leaves_the_fork_server_serving() {
    let ctx = get_context(StartMethod::Forkserver);
    let (ours, theirs) = ctx.pipe().unwrap();
    let go = ctx.event().unwrap();
    let in_flight = Child(Some(start(
        ctx.process(report_server_then_wait, (theirs, go.clone())),
    )));
    let server: i32 = ours.recv().unwrap();
    assert_ne!(server, std::process::id() as i32, "forked by the server");
    kill(Pid::from_raw(server), Signal::SIGINT).unwrap();
    // SIGINT's default action would end the server at once; give it time to.
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until && running(server) {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(running(server), "SIGINT stopped the fork server");
    // The server is still there to report the exit code of the child it forked
    // before the signal (a dead server's children end with 255 as far as the
    // parent knows).
    go.set();
    assert_eq!(in_flight.finish(), 0);

    // The next child is forked by the same server and exits 0.
    let (ours, theirs) = ctx.pipe().unwrap();
    let next = Child(Some(start(
        ctx.process(report_server_then_wait, (theirs, go)),
    )));
    assert_eq!(
        ours.recv::<i32>().unwrap(),
        server,
        "the server was replaced"
    );
    assert_eq!(next.finish(), 0);

    // The server's children do not inherit its SIG_IGN: SIGINT ends them (-2).
    let ready = ctx.event().unwrap();
    let victim = Child(Some(start(
        ctx.process(wait_for_a_signal, (ready.clone(),)),
    )));
    assert!(ready.wait_timeout(BOUND));
    kill(Pid::from_raw(victim.pid()), Signal::SIGINT).unwrap();
    assert_eq!(victim.finish(), -(Signal::SIGINT as i32));
}
