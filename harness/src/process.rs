//! Running one program the way the harness runs lessons, and checking what it left.
//!
//! The program runs in a process group of its own (`process_group(0)`), with stdin
//! from `/dev/null`, stdout and stderr read on their own threads, and a wall-clock
//! limit that kills the whole group: a grandchild that leaks and keeps the stdout
//! pipe open cannot hang the harness. While the program runs, the harness notes every
//! pid it sees in the group (so a fork server's pid can be normalised even though it
//! writes no pid log line). After the program exits, the group must empty within a
//! short grace period and no new `/dev/shm` entry named `mpcore...` may remain.
//!
//! The test process makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`), so an
//! orphaned grandchild becomes its child rather than init's: the harness reaps it at
//! once instead of waiting for init, and a zombie never outlives the check.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, mpsc};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The environment variable naming the pid log (mpcore's `util::PID_LOG_ENV`).
pub const PID_LOG_ENV: &str = "MPCORE_PID_LOG";

/// How often the harness looks at the running program's process group.
const POLL: Duration = Duration::from_millis(20);

/// How long the process group may take to empty after the program exits (processes
/// that are already exiting need a moment on a loaded machine).
const GRACE: Duration = Duration::from_secs(2);

/// How long stdout and stderr may stay open after the whole group is gone.
const READER_LIMIT: Duration = Duration::from_secs(5);

/// One process, as `/proc/PID/stat` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEntry {
    /// Its pid.
    pub pid: u32,
    /// Its parent's pid.
    pub ppid: u32,
    /// Its process group.
    pub pgid: u32,
    /// Its state letter (`R`, `S`, `Z` for a zombie, ...).
    pub state: char,
    /// Its command name (`comm`, at most 15 bytes).
    pub comm: String,
}

fn read_stat(pid: u32) -> Option<ProcEntry> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid pgrp ...": comm may hold spaces and parentheses.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let mut fields = stat.get(close + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    Some(ProcEntry {
        pid,
        ppid,
        pgid,
        state,
        comm,
    })
}

/// Every process whose process group is `pgid`.
pub fn group_members(pgid: u32) -> Vec<ProcEntry> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_stat)
        .filter(|p| p.pgid == pgid)
        .collect()
}

/// Makes the test process a child subreaper, once.
fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Without it orphans go to init, which may reap them late: the group check
        // would then see zombies that are nobody's fault. Not fatal if refused.
        let _ = nix::sys::prctl::set_child_subreaper(true);
    });
}

/// Reaps every zombie of group `pgid` that is a child of the test process. Only call
/// it once the program's own main process has been waited for (it is in the group).
fn reap_group(pgid: u32) {
    let group = Pid::from_raw(-(pgid as i32));
    while let Ok(status) = waitpid(group, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Whether any process (zombies included) is still in group `pgid`.
fn group_exists(pgid: u32) -> bool {
    kill(Pid::from_raw(-(pgid as i32)), None) != Err(Errno::ESRCH)
        || !group_members(pgid).is_empty()
}

/// Kills the group when dropped while armed: a panic anywhere in a run (or a failed
/// check) never leaves the program's processes running.
struct GroupGuard {
    pgid: u32,
    armed: bool,
}

impl GroupGuard {
    fn kill_and_reap(&mut self) {
        if !self.armed {
            return;
        }
        let _ = killpg(Pid::from_raw(self.pgid as i32), Signal::SIGKILL);
        let deadline = Instant::now() + READER_LIMIT;
        while group_exists(self.pgid) && Instant::now() < deadline {
            reap_group(self.pgid);
            std::thread::sleep(Duration::from_millis(5));
        }
        // Once the group is empty its id may be reused: never signal it again.
        self.armed = false;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// `/dev/shm` entries whose names contain `mpcore`.
fn shm_entries() -> BTreeSet<String> {
    fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| name.contains("mpcore"))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a new `/dev/shm` entry belongs to this run: its name holds a pid of the
/// run, or it holds no pid of any live process (other engineers' tests running at
/// the same time create `mpcore-` entries too; theirs name a live pid).
fn shm_entry_is_ours(name: &str, run_pids: &BTreeSet<u32>) -> bool {
    // Digit runs below 100 are counters or hex, not pids worth trusting (pid 1 lives).
    let numbers: Vec<u32> = name
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|run| run.parse().ok())
        .filter(|&n| n >= 100)
        .collect();
    numbers.iter().any(|n| run_pids.contains(n))
        || !numbers
            .iter()
            .any(|n| fs::metadata(format!("/proc/{n}")).is_ok())
}

/// A fresh, empty pid log file in the temp directory, removed on drop.
struct PidLog(PathBuf);

impl PidLog {
    fn new() -> PidLog {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "harness-{}-{}.pidlog",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::write(&path, "").unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        PidLog(path)
    }

    /// The `PID NAME` lines written so far.
    fn read(&self) -> Vec<(u32, String)> {
        fs::read_to_string(&self.0)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (pid, name) = line.split_once(' ')?;
                Some((pid.parse().ok()?, name.to_string()))
            })
            .collect()
    }
}

impl Drop for PidLog {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Everything one run of a program produced.
#[derive(Debug)]
pub struct Outcome {
    /// What it printed on stdout (lossily decoded as UTF-8).
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
    /// How it ended; `None` when the harness killed it at the time limit.
    pub status: Option<ExitStatus>,
    /// From start to the main process's exit.
    pub elapsed: Duration,
    /// The pid of the program's main process (also its process group id).
    pub main_pid: u32,
    /// The pid log, in the order children wrote it: `(pid, name)`.
    pub pid_log: Vec<(u32, String)>,
    /// Every pid seen in the process group while the program ran.
    pub seen: BTreeSet<u32>,
    /// Processes still in the group after the grace period (the harness killed
    /// them), and pipes held open from outside the group: one description each.
    pub leftovers: Vec<String>,
    /// New `/dev/shm` entries of this run that remained (the harness removed them).
    pub shm_leftovers: Vec<String>,
}

impl Outcome {
    /// The exit code, or `None` if a signal ended the process.
    pub fn exit_code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// `exit_code: 0`, `exit_code: signal 9`, or `exit_code: none (timed out)`.
    pub fn exit_description(&self) -> String {
        match self.status {
            Some(s) => match (s.code(), s.signal()) {
                (Some(code), _) => code.to_string(),
                (None, Some(sig)) => format!("signal {sig}"),
                (None, None) => "unknown".to_string(),
            },
            None => "none (timed out)".to_string(),
        }
    }

    /// Every pid that belonged to the run: main, pid log and seen in the group.
    pub fn run_pids(&self) -> BTreeSet<u32> {
        let mut pids = self.seen.clone();
        pids.insert(self.main_pid);
        pids.extend(self.pid_log.iter().map(|(pid, _)| *pid));
        pids
    }
}

/// Runs `cmd` (its stdio and process group are set here; set its program, args and
/// environment before) with a wall-clock limit of `timeout`. `label` names the run in
/// messages. Panics only if the program cannot be started.
pub fn run(mut cmd: Command, label: &str, timeout: Duration) -> Outcome {
    become_subreaper();
    let pid_log = PidLog::new();
    cmd.env(PID_LOG_ENV, &pid_log.0)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shm_before = shm_entries();
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{label}: cannot start {cmd:?}: {e}"));
    let main_pid = child.id();
    let mut guard = GroupGuard {
        pgid: main_pid,
        armed: true,
    };
    let read_on_thread = |stream: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = mpsc::channel();
        if let Some(mut stream) = stream {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = stream.read_to_end(&mut buf);
                let _ = tx.send(buf);
            });
        }
        rx
    };
    let stdout_rx = read_on_thread(child.stdout.take().map(|s| Box::new(s) as _));
    let stderr_rx = read_on_thread(child.stderr.take().map(|s| Box::new(s) as _));

    let mut seen = BTreeSet::new();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(e) => panic!("{label}: waiting for pid {main_pid}: {e}"),
        }
        seen.extend(group_members(main_pid).iter().map(|p| p.pid));
        if start.elapsed() >= timeout {
            let _ = killpg(Pid::from_raw(main_pid as i32), Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(POLL);
    };
    let elapsed = start.elapsed();
    let pid_log_lines = pid_log.read();
    let names: BTreeMap<u32, &str> = pid_log_lines
        .iter()
        .map(|(pid, name)| (*pid, name.as_str()))
        .collect();

    // The main process is reaped: the group should now empty by itself.
    let mut leftovers = Vec::new();
    let settle_until = Instant::now() + GRACE;
    loop {
        reap_group(main_pid);
        if !group_exists(main_pid) {
            guard.armed = false;
            break;
        }
        if Instant::now() >= settle_until {
            for p in group_members(main_pid) {
                let name = names.get(&p.pid).copied().unwrap_or("unnamed");
                let what = if p.state == 'Z' {
                    "a zombie: it exited and nobody waited for it"
                } else {
                    "still running"
                };
                leftovers.push(format!(
                    "pid {} ({name}, command {:?}, parent {}): {what}",
                    p.pid, p.comm, p.ppid
                ));
            }
            if leftovers.is_empty() {
                leftovers.push(format!("process group {main_pid} is not empty"));
            }
            guard.kill_and_reap();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    // One deadline for both streams: a process holding both must not double the wait.
    let readers_deadline = Instant::now() + READER_LIMIT;
    let mut collect = |rx: mpsc::Receiver<Vec<u8>>, stream: &str| match rx
        .recv_timeout(readers_deadline.saturating_duration_since(Instant::now()))
    {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => {
            leftovers.push(format!(
                "{stream} was still open {READER_LIMIT:?} after the process group ended: \
                 a process outside the group (setsid?) holds it"
            ));
            String::new()
        }
    };
    let stdout = collect(stdout_rx, "stdout");
    let stderr = collect(stderr_rx, "stderr");

    let mut outcome = Outcome {
        stdout,
        stderr,
        status,
        elapsed,
        main_pid,
        pid_log: pid_log_lines,
        seen,
        leftovers,
        shm_leftovers: Vec::new(),
    };
    let run_pids = outcome.run_pids();
    for name in shm_entries().difference(&shm_before) {
        if shm_entry_is_ours(name, &run_pids) {
            let _ = fs::remove_file(format!("/dev/shm/{name}"));
            outcome.shm_leftovers.push(format!("/dev/shm/{name}"));
        }
    }
    outcome
}

/// Describes `outcome` for a failure message: exit, time, and both streams.
pub fn describe(outcome: &Outcome) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "exit_code: {} after {:.2?} (main pid {})",
        outcome.exit_description(),
        outcome.elapsed,
        outcome.main_pid
    );
    if !outcome.pid_log.is_empty() {
        let log: Vec<String> = outcome
            .pid_log
            .iter()
            .map(|(pid, name)| format!("{pid} {name}"))
            .collect();
        let _ = writeln!(text, "pid log: {}", log.join(", "));
    }
    let _ = write!(
        text,
        "----- stdout -----\n{}\n----- stderr -----\n{}",
        outcome.stdout, outcome.stderr
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let me = read_stat(std::process::id()).expect("own stat");
        assert_eq!(me.pid, std::process::id());
        assert!(me.ppid > 0);
    }

    #[test]
    fn a_shm_entry_naming_a_run_pid_is_ours() {
        let run: BTreeSet<u32> = [4_000_000].into();
        assert!(shm_entry_is_ours("mpcore-4000000-1", &run));
        // Names no pid at all: ours (nothing else to blame).
        assert!(shm_entry_is_ours("mpcore-abc", &run));
        // Names a live process that is not of the run (this test process): not ours.
        let other = format!("mpcore-{}-1", std::process::id());
        assert!(!shm_entry_is_ours(&other, &run));
    }
}
