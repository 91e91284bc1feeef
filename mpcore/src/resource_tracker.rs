//! Removes the shared memory segments a process created and never unlinked, once no
//! process uses them any more (CPython: `resource_tracker.py`).
//!
//! # Design
//!
//! A process's first [`SharedMemory::create`](crate::shared_memory::SharedMemory::create)
//! forks a small tracker process (`mpcore-tracker` in `ps`). The creator tells it,
//! over a socket, the name of every segment it creates and unlinks. The tracker
//! watches the creator with a pidfd; when the creator ends (normally, by a panic, or
//! killed) without having unlinked a segment, the tracker removes that name from
//! `/dev/shm` **once no process has the segment open**.
//!
//! "No process has it open" is known without polling: every process that opens a
//! segment holds a shared `flock` on it for as long as it keeps it (see
//! `sys::shm`), and the kernel drops the lock when the
//! descriptor is closed or its process dies. The tracker asks for the exclusive
//! lock, which the kernel grants the moment the last user is gone, then unlinks.
//!
//! This differs from CPython on purpose:
//!
//! - CPython's tracker unlinks a segment as soon as the process that *registered* it
//!   ends, and since 3.13 every process that merely *opens* a segment registers it,
//!   so a child that attaches and exits removes the parent's segment (row 109 of the
//!   behaviour catalogue). Here only the creator's death counts, and a segment still
//!   in use by another process stays until that process lets go.
//! - The tracker prints nothing: it keeps no terminal or pipe of its program open
//!   (its standard streams are `/dev/null`, and it closes every descriptor it
//!   inherited), so a program's output ends when the program does.
//!
//! Like CPython's, the tracker ignores SIGINT and SIGTERM, so that a Ctrl-C sent to
//! the whole process group does not stop the cleanup. A forked child that creates
//! segments starts its own tracker; a spawned child gets a fresh one as well.
//!
//! A tracker killed anyway (SIGKILL) is replaced on the creator's next use of
//! shared memory, as in CPython: the next create or unlink finds the tracker's
//! socket closed, starts a new tracker and tells it every segment still
//! registered, so the segments created before the kill are still removed. CPython
//! warns at that point ("resource_tracker: process died unexpectedly, relaunching.
//! Some resources might leak."), because its new tracker knows nothing of them;
//! mpcore replays the names and prints nothing. Only a creator that dies before its
//! next use of shared memory leaves its segments to nobody.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use nix::sys::socket::{MsgFlags, send};

use crate::sys::identity::ForkLocal;
use crate::sys::{poll, process, shm};
use crate::util::lock;

/// The connection to this process's tracker.
struct Tracker {
    stream: UnixStream,
    /// Names registered and not yet unregistered: sent again if the tracker has to
    /// be restarted.
    names: HashSet<String>,
}

static TRACKER: ForkLocal<Mutex<Option<Tracker>>> = ForkLocal::new(|| Mutex::new(None));

/// Tells the tracker that this process created the segment `name` (with its
/// leading `/`). Best effort: if no tracker can be started, the segment is simply
/// not cleaned up after a crash.
pub(crate) fn register(name: &str) {
    let mut tracker = lock(TRACKER.get());
    let added = match tracker.as_mut() {
        Some(t) => t.names.insert(name.to_string()),
        None => true,
    };
    if added {
        send_line(&mut tracker, &format!("R {} {name}\n", std::process::id()));
        if let Some(t) = tracker.as_mut() {
            t.names.insert(name.to_string());
        }
    }
}

/// Tells the tracker that the segment `name` was unlinked: nothing to clean up.
pub(crate) fn unregister(name: &str) {
    let mut tracker = lock(TRACKER.get());
    if let Some(t) = tracker.as_mut()
        && t.names.remove(name)
    {
        send_line(&mut tracker, &format!("U {} {name}\n", std::process::id()));
    }
}

/// Sends `line`, starting (or restarting) the tracker if needed.
fn send_line(tracker: &mut Option<Tracker>, line: &str) {
    if let Some(t) = tracker.as_ref()
        && write_all(&t.stream, line.as_bytes()).is_ok()
    {
        return;
    }
    // No tracker yet, or it died (it was killed): start one and tell it everything.
    let names = tracker.take().map(|t| t.names).unwrap_or_default();
    let Ok(stream) = start() else {
        return;
    };
    let pid = std::process::id();
    let mut replay: String = names.iter().map(|n| format!("R {pid} {n}\n")).collect();
    replay.push_str(line);
    let _ = write_all(&stream, replay.as_bytes());
    *tracker = Some(Tracker { stream, names });
}

fn write_all(stream: &UnixStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // MSG_NOSIGNAL: a dead tracker gives EPIPE, not a SIGPIPE that kills us.
        match send(stream.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// Forks the tracker; returns our end of its socket.
fn start() -> io::Result<UnixStream> {
    let (ours, theirs) = UnixStream::pair()?;
    let creator = std::process::id();
    let theirs_fd = theirs.as_raw_fd();
    process::fork_into(|| {
        // A panic must never unwind out of here: it would return into the copied
        // frames of the parent (its `main`, its tests) inside the tracker process.
        let run = std::panic::AssertUnwindSafe(|| {
            match shm::become_helper(theirs_fd, "mpcore-tracker") {
                Ok(fd) => {
                    serve(fd, creator);
                    0
                }
                Err(_) => 1,
            }
        });
        let code = std::panic::catch_unwind(run).unwrap_or(2);
        process::exit_immediately(code)
    })?;
    drop(theirs);
    Ok(ours)
}

/// A process that created segments, as the tracker sees it.
struct Creator {
    pidfd: Option<OwnedFd>,
    names: HashSet<String>,
}

impl Creator {
    fn watch(pid: u32) -> Creator {
        let pidfd = i32::try_from(pid)
            .ok()
            .and_then(|raw| process::pidfd_open(nix::unistd::Pid::from_raw(raw)).ok());
        Creator {
            pidfd,
            names: HashSet::new(),
        }
    }
}

/// The tracker's main loop: runs until every creator it watches has ended and
/// every leftover segment has been removed.
fn serve(socket: OwnedFd, creator: u32) {
    let mut stream = UnixStream::from(socket);
    let _ = stream.set_nonblocking(true);
    let mut creators: HashMap<u32, Creator> = HashMap::new();
    creators.insert(creator, Creator::watch(creator));
    let mut pending = Vec::new();
    let mut partial = Vec::new();
    let mut socket_open = true;
    while !creators.is_empty() {
        let pids: Vec<u32> = creators.keys().copied().collect();
        let mut fds = Vec::new();
        if socket_open {
            fds.push(stream.as_raw_fd());
        }
        let dead_now: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|pid| creators[pid].pidfd.is_none())
            .collect();
        let watched: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|pid| creators[pid].pidfd.is_some())
            .collect();
        fds.extend(watched.iter().map(|pid| {
            creators[pid]
                .pidfd
                .as_ref()
                .map_or(-1, |fd| fd.as_fd().as_raw_fd())
        }));
        let ready = if dead_now.is_empty() {
            match poll::wait_readable(&fds, None) {
                Ok(ready) => ready,
                Err(_) => break,
            }
        } else {
            vec![false; fds.len()]
        };
        // Always read what the creators said before acting on their deaths.
        if socket_open {
            socket_open = read_messages(&mut stream, &mut partial, &mut creators);
        }
        let offset = usize::from(!fds.is_empty() && fds[0] == stream.as_raw_fd());
        let mut ended = dead_now;
        for (i, pid) in watched.iter().enumerate() {
            if ready.get(i + offset).copied().unwrap_or(false) {
                ended.push(*pid);
            }
        }
        for pid in ended {
            if let Some(dead) = creators.remove(&pid) {
                for name in dead.names {
                    if let Some(waiter) = remove_when_unused(name) {
                        pending.push(waiter);
                    }
                }
            }
        }
    }
    for waiter in pending {
        let _ = waiter.join();
    }
}

/// Reads whatever is available; returns false once the socket is closed.
fn read_messages(
    stream: &mut UnixStream,
    partial: &mut Vec<u8>,
    creators: &mut HashMap<u32, Creator>,
) -> bool {
    let mut buf = [0u8; 4096];
    let open = loop {
        match stream.read(&mut buf) {
            Ok(0) => break false,
            Ok(n) => partial.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break true,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break false,
        }
    };
    while let Some(end) = partial.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = partial.drain(..=end).collect();
        let line = String::from_utf8_lossy(&line[..end]);
        let mut parts = line.splitn(3, ' ');
        let (Some(op), Some(pid), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        match op {
            "R" => {
                creators
                    .entry(pid)
                    .or_insert_with(|| Creator::watch(pid))
                    .names
                    .insert(name.to_string());
            }
            "U" => {
                if let Some(c) = creators.get_mut(&pid) {
                    c.names.remove(name);
                }
            }
            _ => {}
        }
    }
    open
}

/// Unlinks `name` now if nobody has it open, or from a thread that waits until the
/// last user is gone.
fn remove_when_unused(name: String) -> Option<std::thread::JoinHandle<()>> {
    let fd = shm::open_for_lock(&name).ok()?; // already unlinked: nothing to do
    if shm::lock_exclusive(fd.as_fd(), false).unwrap_or(false) {
        let _ = shm::unlink_if_same(&name, fd.as_fd());
        return None;
    }
    std::thread::Builder::new()
        .spawn(move || {
            if shm::lock_exclusive(fd.as_fd(), true).unwrap_or(false) {
                let _ = shm::unlink_if_same(&name, fd.as_fd());
            }
        })
        .ok()
}
