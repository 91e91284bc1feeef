//! How a started child is waited for and signalled, one module per start method
//! (CPython: `popen_fork.py`, `popen_spawn_posix.py`, `popen_forkserver.py`).
//!
//! A [`Popen`] is shared between the [`Process`](crate::Process) handle and the
//! registry of children that `active_children()` and the at-exit handler walk, so a
//! dropped handle never leaves a zombie behind.

pub(crate) mod fork;
pub(crate) mod forkserver;
pub(crate) mod spawn;

use std::fmt;
use std::os::fd::RawFd;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::error::Result;

/// A started child, seen from its parent.
pub(crate) trait Popen: Send + Sync + fmt::Debug {
    /// The child's pid.
    fn pid(&self) -> i32;
    /// The exit code if the child has ended (reaping it), without blocking.
    fn poll(&self) -> Option<i32>;
    /// Waits up to `timeout` (`None`: forever) for the child to end; its exit code
    /// if it did.
    fn wait(&self, timeout: Option<Duration>) -> Option<i32>;
    /// Sends `signal` unless the child has already been reaped.
    fn send_signal(&self, signal: Signal) -> Result<()>;
    /// A descriptor that polls readable once the child has ended.
    fn sentinel(&self) -> RawFd;

    // Asked from a process that did not start the child: a forked child holding a
    // copy of its parent's handle on a sibling. Such a process cannot reap the child,
    // and must not consume what the child's parent is waiting for, so these neither
    // reap nor read.

    /// The exit code if it was known when this copy of the handle was made.
    fn known_exitcode(&self) -> Option<i32>;
    /// Whether the child is still running, asked by a process that is not its parent.
    fn alive_from_afar(&self) -> bool;
    /// Sends `signal` unless the child has ended, from a process that is not its
    /// parent.
    fn signal_from_afar(&self, signal: Signal) -> Result<()>;
}
