//! The harness's own checks must be able to fail: each test here runs a small shell
//! or Python program that does what a broken lesson would (leak a process, leave a
//! zombie, hang, leave shared memory, hold stdout open from outside its group) and
//! asserts that the harness notices, names it, and cleans it up.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::process::{Outcome, group_members, run};

fn sh(script: &str, timeout: Duration) -> Outcome {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    run(cmd, "test program", timeout)
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_clean_program_leaves_nothing_and_its_pid_is_known() {
    let out = sh(
        "echo hello; echo $$; echo oops >&2",
        Duration::from_secs(30),
    );
    assert_eq!(out.exit_code(), Some(0));
    assert_eq!(out.stdout, format!("hello\n{}\n", out.main_pid));
    assert_eq!(out.stderr, "oops\n");
    assert!(out.leftovers.is_empty(), "{:?}", out.leftovers);
    assert!(out.shm_leftovers.is_empty());
}

#[test]
fn exit_codes_and_signals_are_reported() {
    let out = sh("exit 3", Duration::from_secs(30));
    assert_eq!(out.exit_code(), Some(3));
    assert_eq!(out.exit_description(), "3");
    let out = sh("kill -TERM $$", Duration::from_secs(30));
    assert_eq!(out.exit_code(), None);
    assert_eq!(out.exit_description(), "signal 15");
}

#[test]
fn the_pid_log_and_the_group_members_are_collected() {
    let out = sh(
        r#"sleep 0.5 & echo "$! Process-1" >> "$MPCORE_PID_LOG"; wait"#,
        Duration::from_secs(30),
    );
    assert_eq!(out.pid_log.len(), 1, "{:?}", out.pid_log);
    let (pid, name) = &out.pid_log[0];
    assert_eq!(name, "Process-1");
    assert!(
        out.seen.contains(pid),
        "the harness saw {:?} in the group, not {pid}",
        out.seen
    );
    assert!(out.leftovers.is_empty(), "{:?}", out.leftovers);
}

#[test]
fn a_leaked_process_is_named_and_killed() {
    let start = Instant::now();
    // The leaked sleep also holds stdout open: the harness must not hang on it.
    let out = sh(
        r#"sleep 60 & echo "$! Leaky-1" >> "$MPCORE_PID_LOG"; echo started"#,
        Duration::from_secs(30),
    );
    assert_eq!(out.stdout, "started\n");
    let (leaked, _) = out.pid_log[0];
    assert_eq!(out.leftovers.len(), 1, "{:?}", out.leftovers);
    let report = &out.leftovers[0];
    assert!(
        report.contains(&format!("pid {leaked} (Leaky-1")) && report.contains("still running"),
        "{report}"
    );
    assert!(!alive(leaked), "the harness did not kill {leaked}");
    assert!(group_members(out.main_pid).is_empty());
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_zombie_is_reported() {
    // The subshell starts a short sleep, then becomes a long sleep that never waits
    // for it: the short one stays a zombie after the main shell exits.
    let out = sh(
        r#"(sleep 0.1 & exec sleep 60) & sleep 1"#,
        Duration::from_secs(30),
    );
    assert!(
        out.leftovers.iter().any(|l| l.contains("zombie")),
        "{:?}",
        out.leftovers
    );
    assert!(
        out.leftovers.iter().any(|l| l.contains("still running")),
        "{:?}",
        out.leftovers
    );
    assert!(group_members(out.main_pid).is_empty());
}

#[test]
fn a_hung_program_is_killed_at_its_time_limit() {
    let start = Instant::now();
    let out = sh("echo before; sleep 60 & sleep 60", Duration::from_secs(1));
    assert!(out.status.is_none(), "{:?}", out.status);
    assert_eq!(out.exit_description(), "none (timed out)");
    assert_eq!(out.stdout, "before\n");
    assert!(group_members(out.main_pid).is_empty());
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn leftover_shared_memory_is_reported_and_removed() {
    let out = sh(
        "touch /dev/shm/mpcore-harness-selftest-$$",
        Duration::from_secs(30),
    );
    let name = format!("/dev/shm/mpcore-harness-selftest-{}", out.main_pid);
    assert_eq!(out.shm_leftovers, vec![name.clone()]);
    assert!(!Path::new(&name).exists());
}

#[test]
fn a_pipe_held_from_outside_the_group_is_reported() {
    // setsid puts the sleep in a session (and group) of its own, out of the harness's
    // reach: the harness gives up on stdout after a while and says so.
    let out = sh(
        r#"setsid sh -c 'echo "$$ Escaped" >> "$MPCORE_PID_LOG"; exec sleep 30' &
           until [ -s "$MPCORE_PID_LOG" ]; do sleep 0.05; done; echo done"#,
        Duration::from_secs(30),
    );
    let escaped = out
        .pid_log
        .iter()
        .find(|(_, name)| name == "Escaped")
        .map(|(pid, _)| *pid)
        .expect("the escaped process logged its pid");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(escaped as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(escaped as i32), None);
    assert!(
        out.leftovers
            .iter()
            .any(|l| l.contains("stdout was still open")),
        "{:?}",
        out.leftovers
    );
}

fn python(code: &str, method: &str) -> Option<Outcome> {
    let python = harness::python().ok()?;
    let mut cmd = Command::new(python);
    cmd.args(["-P", "-c", code])
        .env("PYTHONPATH", harness::python_dir())
        .env("MPCORE_START_METHOD", method)
        .env_remove("PYTHONUNBUFFERED");
    Some(run(cmd, "python", Duration::from_secs(60)))
}

#[test]
fn python_children_log_their_pids_and_print_whole_lines() {
    // The child ends with os._exit, which flushes nothing: its line survives only if
    // stdout is line-buffered, as the harness's sitecustomize makes it.
    let code = "
import multiprocessing as mp, os
def child():
    print('child', os.getpid())
    os._exit(0)
if __name__ == '__main__':
    p = mp.Process(target=child)
    p.start()
    p.join()
    print('parent', os.getpid(), mp.get_start_method())
";
    let Some(out) = python(code, "fork") else {
        eprintln!("note: no python3 (3.11+): skipped");
        return;
    };
    assert_eq!(out.exit_code(), Some(0), "{}", out.stderr);
    assert_eq!(out.pid_log.len(), 1, "{:?}", out.pid_log);
    let (child, name) = &out.pid_log[0];
    assert_eq!(name, "Process-1");
    assert_eq!(
        out.stdout,
        format!("child {child}\nparent {} fork\n", out.main_pid)
    );
}

#[test]
fn python_takes_its_default_start_method_from_the_environment() {
    let Some(out) = python(
        "import multiprocessing as mp; print(mp.get_start_method())",
        "spawn",
    ) else {
        return;
    };
    assert_eq!(out.stdout, "spawn\n", "{}", out.stderr);
}
