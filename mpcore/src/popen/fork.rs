//! Starting a child with `fork(2)` (CPython: `popen_fork.py`).
//!
//! The child is a copy of the parent at the moment of `start()`: it runs the target
//! from the copied memory, then leaves with `_exit` so that it never returns into the
//! parent's `main`. The parent keeps a pidfd for the child, which serves as the
//! sentinel and lets `join` wait with a timeout without polling in a loop.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::Popen;
use crate::error::Result;
use crate::process::{self, ChildSetup, Payload};
use crate::sys;
use crate::util::lock;

/// A child started by fork, or any direct child we can `waitpid` for.
#[derive(Debug)]
pub(crate) struct ForkPopen {
    pid: Pid,
    pidfd: OwnedFd,
    /// `None` while the child runs; its exit code once reaped. Reaping and signalling
    /// both happen under this lock, so a signal never reaches a recycled pid.
    returncode: Mutex<Option<i32>>,
}

impl ForkPopen {
    /// Wraps the direct child `pid`. If no pidfd can be had, the child is killed and
    /// reaped before the error is returned, so that nothing is left behind.
    pub(crate) fn new(pid: Pid) -> Result<ForkPopen> {
        match sys::process::pidfd_open(pid) {
            Ok(pidfd) => Ok(ForkPopen {
                pid,
                pidfd,
                returncode: Mutex::new(None),
            }),
            Err(err) => {
                let _ = signal::kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
                Err(err.into())
            }
        }
    }
}

/// Forks a child that runs `payload` as the process described by `setup`.
pub(crate) fn launch(setup: ChildSetup, payload: Payload) -> Result<ForkPopen> {
    // Hold every lock the child touches before it ends (stdout, stderr, the process
    // registry), so that none is stuck locked by another thread in the child. The
    // child gets the guards by value and releases them.
    let held = process::before_fork();
    let mut held = Some(held);
    let forked = sys::process::fork_into(|| {
        let held = held.take().expect("taken once, in the child");
        process::child_main(held, setup, payload)
    });
    drop(held);
    ForkPopen::new(forked?)
}

/// Turns a wait status into Python's exit code: the code itself, or `-signal`.
pub(crate) fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(-(sig as i32)),
        _ => None,
    }
}

impl Popen for ForkPopen {
    fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    fn poll(&self) -> Option<i32> {
        let mut returncode = lock(&self.returncode);
        if returncode.is_none() {
            *returncode = loop {
                match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                    Ok(status) => break exit_code(status),
                    Err(Errno::EINTR) => continue,
                    // Someone else reaped our child (a `waitpid(-1)` in user code, or
                    // SIGCHLD set to SIG_IGN). Its status is lost; report a failure
                    // rather than "still running" forever.
                    Err(_) => break Some(255),
                }
            };
        }
        *returncode
    }

    fn wait(&self, timeout: Option<Duration>) -> Option<i32> {
        if let Some(code) = *lock(&self.returncode) {
            return Some(code);
        }
        // The pidfd turns readable when the child exits; only then reap it, so that
        // no lock is held while we block.
        match sys::poll::wait_readable(&[self.pidfd.as_raw_fd()], timeout) {
            Ok(ready) if ready[0] => self.poll(),
            _ => None,
        }
    }

    fn send_signal(&self, signal: Signal) -> Result<()> {
        let returncode = lock(&self.returncode);
        if returncode.is_none() {
            match signal::kill(self.pid, signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    fn sentinel(&self) -> RawFd {
        self.pidfd.as_raw_fd()
    }

    fn known_exitcode(&self) -> Option<i32> {
        *lock(&self.returncode)
    }

    fn alive_from_afar(&self) -> bool {
        // The pidfd turns readable when the child exits, reaped or not.
        self.known_exitcode().is_none()
            && matches!(
                sys::poll::wait_readable(&[self.pidfd.as_raw_fd()], Some(Duration::ZERO)),
                Ok(ready) if !ready[0]
            )
    }

    fn signal_from_afar(&self, signal: Signal) -> Result<()> {
        if self.known_exitcode().is_some() {
            return Ok(());
        }
        // Through the pidfd: once the child has ended, its pid may be another
        // process's, and we cannot know when its parent reaps it.
        match sys::process::pidfd_send_signal(self.pidfd.as_fd(), signal) {
            Err(err) if err.raw_os_error() != Some(libc::ESRCH) => Err(err.into()),
            _ => Ok(()),
        }
    }
}
