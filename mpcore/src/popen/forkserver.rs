//! Starting a child through the fork server (CPython: `popen_forkserver.py`).
//!
//! The parent sends the child's bootstrap to the server ([`forkserver`]), which
//! forks the child and answers on the same connection with its pid and, once it has
//! reaped it, with its exit code. The connection is the sentinel: it turns readable
//! when the exit code arrives, or at end of file if the server died (the exit code
//! is then unknown and reported as 255, as CPython does). Signals go straight to the
//! child's pid with `kill(2)`.

use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::sys::socket::{MsgFlags, recv};
use nix::unistd::Pid;

use super::Popen;
use crate::error::{Error, Result};
use crate::forkserver;
use crate::process::{ChildSetup, Prepared};
use crate::spawn::{self, ChildBoot, Role};
use crate::sys;
use crate::util::lock;

/// A child forked by the fork server.
#[derive(Debug)]
pub(crate) struct ForkserverPopen {
    pid: Pid,
    conn: UnixStream,
    status: Mutex<Status>,
}

#[derive(Debug, Default)]
struct Status {
    /// The bytes of the exit code read so far.
    buf: Vec<u8>,
    returncode: Option<i32>,
}

/// Has the fork server start a child that runs `prepared` as the process described
/// by `setup`. If the server has died, a new one is started and asked once more.
pub(crate) fn launch(setup: ChildSetup, prepared: Prepared) -> Result<ForkserverPopen> {
    let (boot, fds) = ChildBoot::new(setup, prepared);
    let bootstrap = spawn::encode_bootstrap(Role::Child(boot), fds.len())?;
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    // Output the parent buffered comes before the child's, as under fork.
    crate::util::flush_std_streams();
    let mut retried = false;
    loop {
        let socket = forkserver::ensure_running()?;
        match forkserver::request(&socket, &bootstrap, &borrowed) {
            Ok((conn, pid)) => {
                return Ok(ForkserverPopen {
                    pid,
                    conn,
                    status: Mutex::new(Status::default()),
                });
            }
            Err(err) if !retried && server_gone(&err) => {
                forkserver::discard_if_dead(&socket);
                retried = true;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Whether `err`, from talking to the server, says that the server is gone (its
/// socket refuses or vanished, or it hung up on us).
fn server_gone(err: &Error) -> bool {
    let Error::Io(err) = err else {
        return false;
    };
    matches!(
        err.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::NotFound
            | ErrorKind::BrokenPipe
            | ErrorKind::ConnectionReset
            | ErrorKind::UnexpectedEof
    )
}

impl ForkserverPopen {
    /// Reads whatever has arrived of the exit code, without blocking.
    fn read_status(&self, status: &mut Status) {
        while status.returncode.is_none() {
            let mut chunk = [0u8; 8];
            let want = 8 - status.buf.len();
            match recv(
                self.conn.as_raw_fd(),
                &mut chunk[..want],
                MsgFlags::MSG_DONTWAIT,
            ) {
                // End of file: the server died before it could report.
                Ok(0) => status.returncode = Some(255),
                Ok(n) => {
                    status.buf.extend_from_slice(&chunk[..n]);
                    if status.buf.len() == 8 {
                        let code = i64::from_le_bytes(status.buf[..].try_into().expect("8"));
                        status.returncode = Some(i32::try_from(code).unwrap_or(255));
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(_) => status.returncode = Some(255),
            }
        }
    }
}

impl Popen for ForkserverPopen {
    fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    fn poll(&self) -> Option<i32> {
        let mut status = lock(&self.status);
        self.read_status(&mut status);
        status.returncode
    }

    fn wait(&self, timeout: Option<Duration>) -> Option<i32> {
        // A timeout too large to add to the clock means no timeout.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if let Some(code) = self.poll() {
                return Some(code);
            }
            let left = match deadline {
                None => None,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    Some(left)
                }
            };
            if sys::poll::wait_readable(&[self.conn.as_raw_fd()], left).is_err() {
                return None;
            }
        }
    }

    fn send_signal(&self, signal: Signal) -> Result<()> {
        // Under the status lock, and only while no exit code has arrived: the server
        // reports right after reaping, so until then the pid is still the child's
        // (CPython takes the same small risk between the reap and the report).
        let mut status = lock(&self.status);
        self.read_status(&mut status);
        if status.returncode.is_none() {
            match signal::kill(self.pid, signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    fn sentinel(&self) -> RawFd {
        self.conn.as_raw_fd()
    }

    fn known_exitcode(&self) -> Option<i32> {
        lock(&self.status).returncode
    }

    fn alive_from_afar(&self) -> bool {
        if self.known_exitcode().is_some() {
            return false;
        }
        // An exit code that arrived and that the parent has not read yet. Polling does
        // not consume it: the connection is shared with the parent.
        if matches!(
            sys::poll::wait_readable(&[self.conn.as_raw_fd()], Some(Duration::ZERO)),
            Ok(ready) if ready[0]
        ) {
            return false;
        }
        // Else the parent may have read it already: ask the kernel about the pid. The
        // server reaps its children at once, so only a later process that reused the
        // pid could make this wrong.
        sys::identity::is_running(self.pid.as_raw() as u32)
    }

    fn signal_from_afar(&self, signal: Signal) -> Result<()> {
        if self.alive_from_afar() {
            match signal::kill(self.pid, signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }
}
