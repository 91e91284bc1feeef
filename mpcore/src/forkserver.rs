//! The fork server (CPython: `forkserver.py`).
//!
//! On the first start under the forkserver method, the parent starts the server: the
//! current executable again, by the same bootstrap mechanism as spawn (the bootstrap
//! says "be the fork server", as CPython runs `forkserver.main`). So the server is a
//! clean copy of the program that ran no code of `main`, and every child it forks
//! starts from that clean state, not from the parent's memory.
//!
//! - The server listens on a Unix socket `mpcore-forkserver` in a private directory
//!   `mpcore-PID-N` (mode 0700; the socket 0600) under the temporary directory. The
//!   parent binds it and passes the listening socket to the server, so it is ready
//!   before the server runs.
//! - For each start, the parent connects and sends the child's bootstrap with the
//!   handles' descriptors attached (`SCM_RIGHTS`). The server forks; the child runs
//!   the bootstrap. The server answers with the child's pid and, once it has reaped
//!   the child, with its exit code, on the same connection: that connection is the
//!   child's sentinel on the parent side (`popen::forkserver`).
//! - The parent keeps the write end of an "alive" pipe whose read end the server
//!   watches: when the parent ends, however it ends, the server sees end of file,
//!   removes its socket and directory, and exits. At the end of `main` (and of a
//!   child), mpcore's at-exit work stops the server the same way and waits for it.
//! - If the server dies, the next start notices (a failed connection, or the server
//!   reaped), cleans up after it and starts a new one.
//!
//! A child started by fork does not use its parent's server (it is not the server's
//! parent, so it could not wait for it): it forgets it, closing its copy of the alive
//! pipe, and starts its own if it needs one.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::popen::Popen;
use crate::popen::fork::{ForkPopen, exit_code};
use crate::spawn::{self, Role};
use crate::sys;
use crate::util::lock;

/// What the server's bootstrap says besides its two descriptors (the listening
/// socket, the read end of the alive pipe).
#[derive(Serialize, Deserialize)]
pub(crate) struct ServerBoot {
    dir: PathBuf,
    socket: PathBuf,
}

/// The parent's handle on its running server.
#[derive(Debug)]
struct Server {
    popen: ForkPopen,
    /// The write end of the alive pipe: closing it asks the server to stop.
    alive: OwnedFd,
    dir: PathBuf,
    socket: PathBuf,
}

impl Server {
    /// Removes what a server that has ended left behind. The server removes them
    /// itself when it stops normally; this covers a server that was killed.
    fn remove_files(&self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

/// The server state, locked across a fork (see `process::before_fork`).
pub(crate) struct ForkGuard(MutexGuard<'static, Option<Server>>);

impl ForkGuard {
    /// In a forked child: forgets the parent's server, closing the child's copies of
    /// its descriptors. Nothing is removed: the server is still the parent's.
    pub(crate) fn forget(&mut self) {
        self.0.take();
    }
}

/// Takes the server lock before a fork.
pub(crate) fn lock_for_fork() -> ForkGuard {
    ForkGuard(lock(&SERVER))
}

/// Makes sure a server runs, starting one if needed; returns its socket's path
/// (CPython's `ensure_running`).
pub(crate) fn ensure_running() -> Result<PathBuf> {
    let mut state = lock(&SERVER);
    if let Some(server) = state.as_ref() {
        if server.popen.poll().is_none() {
            return Ok(server.socket.clone());
        }
        // It died: clean up after it and start another.
        if let Some(dead) = state.take() {
            dead.remove_files();
        }
    }
    let server = start_server()?;
    let path = server.socket.clone();
    *state = Some(server);
    Ok(path)
}

/// Called when talking to the server at `socket` failed: if that server has died
/// (waiting a moment for a server that is being killed), forgets it, so that the
/// next [`ensure_running`] starts a new one.
pub(crate) fn discard_if_dead(socket: &Path) {
    let mut state = lock(&SERVER);
    let dead = match state.as_ref() {
        Some(server) if server.socket == socket => {
            server.popen.wait(Some(Duration::from_secs(2))).is_some()
        }
        _ => false,
    };
    if dead && let Some(server) = state.take() {
        server.remove_files();
    }
}

/// Stops the server, if this process started one, and waits for it: closes the
/// alive pipe, so the server exits; kills it if it has not within 30 seconds.
/// Removes its socket and directory. Part of the at-exit work.
pub(crate) fn stop() {
    let Some(server) = lock(&SERVER).take() else {
        return;
    };
    let Server {
        popen,
        alive,
        dir,
        socket,
    } = server;
    drop(alive);
    if popen.wait(Some(Duration::from_secs(30))).is_none() {
        let _ = popen.send_signal(Signal::SIGKILL);
        popen.wait(None);
    }
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_dir(&dir);
}

/// Creates a new private directory `mpcore-PID-N` (mode 0700) in the temporary
/// directory.
fn private_dir() -> io::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base = std::env::temp_dir();
    let pid = std::process::id();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("mpcore-{pid}-{n}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && n < 10_000 => continue,
            Err(err) => return Err(err),
        }
    }
}

fn start_server() -> Result<Server> {
    let dir = private_dir()?;
    let socket = dir.join("mpcore-forkserver");
    let started = (|| -> Result<Server> {
        let listener = UnixListener::bind(&socket)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
        let (alive_r, alive_w) = std::io::pipe()?;
        let alive_r = OwnedFd::from(alive_r);
        let boot = ServerBoot {
            dir: dir.clone(),
            socket: socket.clone(),
        };
        let pid = spawn::spawn_bootstrap(Role::Server(boot), &[listener.as_fd(), alive_r.as_fd()])?;
        Ok(Server {
            popen: ForkPopen::new(pid)?,
            alive: alive_w.into(),
            dir: dir.clone(),
            socket: socket.clone(),
        })
    })();
    if started.is_err() {
        let _ = std::fs::remove_file(&socket);
        let _ = std::fs::remove_dir(&dir);
    }
    started
}

// ---------------------------------------------------------------------------
// The client side of one start.

/// How long a start waits for the server to answer with the child's pid.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// Asks the server to fork a child running `bootstrap` with `fds`; returns the
/// connection (which will carry the exit code) and the child's pid.
pub(crate) fn request(
    socket: &Path,
    bootstrap: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<(UnixStream, Pid)> {
    let mut conn = UnixStream::connect(socket)?;
    let mut message = (bootstrap.len() as u64).to_le_bytes().to_vec();
    message.extend_from_slice(bootstrap);
    let sent = sys::scm::send_with_fds(conn.as_fd(), &message, fds)?;
    conn.write_all(&message[sent..])?;
    conn.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut answer = [0u8; 8];
    conn.read_exact(&mut answer)?;
    // The timeout stays set: later reads of the exit code never block (they poll).
    let pid = i64::from_le_bytes(answer);
    if pid <= 0 {
        let errno = i32::try_from(-pid).unwrap_or(libc::EIO);
        return Err(Error::Io(io::Error::from_raw_os_error(errno)));
    }
    let pid = i32::try_from(pid).map_err(|_| Error::Codec("fork server sent a bad pid".into()))?;
    Ok((conn, Pid::from_raw(pid)))
}

// ---------------------------------------------------------------------------
// The server.

/// A child the server forked and has not reaped yet.
struct Waiting {
    pid: Pid,
    pidfd: OwnedFd,
    conn: UnixStream,
}

/// Everything the server owns; a forked child drops it all first thing.
#[derive(Default)]
struct ServerState {
    listener: Option<UnixListener>,
    alive: Option<OwnedFd>,
    children: Vec<Waiting>,
}

/// The most bytes of bootstrap the server accepts for one child.
const MAX_REQUEST: u64 = 1 << 36;

/// Runs the fork server until the alive pipe reports end of file. Never returns.
pub(crate) fn serve(boot: ServerBoot, fds: Vec<OwnedFd>) -> ! {
    let mut fds = fds.into_iter();
    let (Some(listener), Some(alive), None) = (fds.next(), fds.next(), fds.next()) else {
        eprintln!("mpcore: the fork server needs exactly two descriptors");
        sys::spawn::exit_now(1);
    };
    // ^C in a terminal reaches the whole process group: the server outlives it and
    // stops when its parent does (CPython ignores SIGINT too).
    let _ = sys::spawn::set_signal_ignored(Signal::SIGINT, true);
    // Every child checks that it runs the server's image: work that out once, here,
    // so that each forked child inherits the answer.
    let _ = sys::spawn::ImageId::current();
    // Likewise the panic report, which each child would otherwise install afresh.
    crate::process::install_panic_report();
    let mut state = ServerState {
        listener: Some(UnixListener::from(listener)),
        alive: Some(alive),
        children: Vec::new(),
    };
    while let Ok((alive_ready, listener_ready, exited)) = wait_for_events(&state) {
        if alive_ready {
            break;
        }
        for index in exited.into_iter().rev() {
            let child = state.children.swap_remove(index);
            report_exit(child);
        }
        if listener_ready {
            let accepted = state.listener.as_ref().map(UnixListener::accept);
            if let Some(Ok((conn, _))) = accepted {
                serve_one(&mut state, conn);
            }
        }
    }
    let _ = std::fs::remove_file(&boot.socket);
    let _ = std::fs::remove_dir(&boot.dir);
    sys::spawn::exit_now(0)
}

/// Polls the alive pipe, the listener and the children's pidfds; returns whether the
/// alive pipe and the listener are ready and which children have exited.
fn wait_for_events(state: &ServerState) -> io::Result<(bool, bool, Vec<usize>)> {
    let (Some(alive), Some(listener)) = (&state.alive, &state.listener) else {
        return Err(io::Error::other("server state gone"));
    };
    loop {
        let mut pollfds = vec![
            PollFd::new(alive.as_fd(), PollFlags::POLLIN),
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
        ];
        pollfds.extend(
            state
                .children
                .iter()
                .map(|c| PollFd::new(c.pidfd.as_fd(), PollFlags::POLLIN)),
        );
        match poll(&mut pollfds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(err.into()),
        }
        let ready: Vec<bool> = pollfds
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        let exited = (0..state.children.len())
            .filter(|&i| ready[i + 2])
            .collect();
        return Ok((ready[0], ready[1], exited));
    }
}

/// Reaps an exited child and sends its exit code to the parent that asked for it.
fn report_exit(child: Waiting) {
    let code = loop {
        match waitpid(child.pid, None) {
            Ok(status) => match exit_code(status) {
                Some(code) => break code,
                None => continue,
            },
            Err(Errno::EINTR) => continue,
            Err(_) => break 255,
        }
    };
    // The parent may have gone; nothing to do then.
    let _ = (&child.conn).write_all(&i64::from(code).to_le_bytes());
}

/// Reads one request from `conn`, forks the child, and answers with its pid.
fn serve_one(state: &mut ServerState, conn: UnixStream) {
    let Ok((bootstrap, fds)) = read_request(&conn) else {
        return;
    };
    let mut conn_slot = Some(conn);
    let mut fds_slot = Some(fds);
    let forked = sys::process::fork_into(|| {
        // The child: drop every descriptor of the server, including this request's
        // connection (the parent must see end of file if the server dies).
        drop(std::mem::take(state));
        drop(conn_slot.take());
        let _ = sys::spawn::set_signal_ignored(Signal::SIGINT, false);
        let fds = fds_slot.take().unwrap_or_default();
        match spawn::decode_bootstrap(&bootstrap) {
            Some(Ok(spawn::Bootstrap {
                image,
                role: Role::Child(child),
                ..
            })) => spawn::run_child_boot(&image, child, fds),
            _ => {
                eprintln!("mpcore: the fork server received a malformed bootstrap");
                sys::spawn::exit_now(1)
            }
        }
    });
    drop(fds_slot);
    let Some(conn) = conn_slot else { return };
    let pid = match forked {
        Ok(pid) => pid,
        Err(err) => {
            let errno = err.raw_os_error().unwrap_or(libc::EIO);
            let _ = (&conn).write_all(&(-i64::from(errno)).to_le_bytes());
            return;
        }
    };
    let _ = (&conn).write_all(&i64::from(pid.as_raw()).to_le_bytes());
    match sys::process::pidfd_open(pid) {
        Ok(pidfd) => state.children.push(Waiting { pid, pidfd, conn }),
        Err(_) => {
            // Cannot watch it: wait for it right away rather than lose its status.
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let pidfd_less = loop {
                match waitpid(pid, None) {
                    Err(Errno::EINTR) => continue,
                    other => break other,
                }
            };
            let code = pidfd_less.ok().and_then(exit_code).unwrap_or(255);
            let _ = (&conn).write_all(&i64::from(code).to_le_bytes());
        }
    }
}

/// Reads a request: an 8-byte length, then that many bytes of bootstrap, with the
/// handles' descriptors attached to the first bytes.
fn read_request(conn: &UnixStream) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    conn.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    // A small buffer on the stack: a bootstrap is usually a few hundred bytes, and
    // every page the server writes is one more copy-on-write fault while children
    // it forked still run.
    let mut head = [0u8; 4096];
    let (mut got, fds) = sys::scm::recv_with_fds(conn.as_fd(), &mut head)?;
    let mut first = head[..got].to_vec();
    while first.len() < 8 {
        let mut more = [0u8; 8];
        let n = (&*conn).read(&mut more[..8 - first.len()])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        first.extend_from_slice(&more[..n]);
        got += n;
    }
    let len = u64::from_le_bytes(first[..8].try_into().expect("8 bytes"));
    if len > MAX_REQUEST || (got as u64) > len + 8 {
        return Err(io::Error::other("bad request length"));
    }
    let mut bootstrap = first.split_off(8);
    conn.take(len - bootstrap.len() as u64)
        .read_to_end(&mut bootstrap)?;
    if bootstrap.len() as u64 != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok((bootstrap, fds))
}
