//! Operating-system pipes (Python: `os.pipe()`, what `Pipe(duplex=False)` is made
//! of), the process-wide `SIGPIPE` setting they need, and duplicating a descriptor
//! to a chosen number range.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;
use nix::sys::signal::{SigHandler, Signal};

/// A new pipe `(read end, write end)`, both close-on-exec.
///
/// Also makes sure `SIGPIPE` is ignored ([`ignore_sigpipe`]), so that a write to a
/// pipe whose reader has gone returns `EPIPE` instead of killing the process.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    ignore_sigpipe();
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

/// Makes sure `SIGPIPE` is ignored process-wide, unless the program installed a
/// handler of its own (which is then left in place). Called whenever a pipe
/// connection is made, so that code which reset the signal to its default (as a
/// child about to `exec` might) is covered too; it costs one system call.
///
/// Unlike a socket send, a `write` on a pipe has no `MSG_NOSIGNAL` flag: the only
/// ways to get `EPIPE` rather than death are to ignore the signal process-wide or to
/// block and drain it around every write (three more system calls per message).
/// mpcore does what CPython does at start-up, and what Rust's own runtime already
/// does before `main` on Unix: `SIGPIPE` is set to `SIG_IGN`. In a plain Rust
/// program this changes nothing. Children started by `exec` get the default back
/// (`std::process::Command` resets it).
pub fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN runs no code of ours in signal context. If the
    // previous disposition was a handler of the program's own, it is put back at
    // once; that handler stays valid since the program installed it.
    unsafe {
        if let Ok(previous) = nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn)
            && !matches!(previous, SigHandler::SigDfl | SigHandler::SigIgn)
        {
            let _ = nix::sys::signal::signal(Signal::SIGPIPE, previous);
        }
    }
}

/// A close-on-exec duplicate of `fd` numbered `min` or above: the lowest free
/// number from `min` on (`fcntl(fd, F_DUPFD_CLOEXEC, min)`, Python:
/// `fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, min)`). Useful to check that code copes
/// with high descriptor numbers (CPython tests handle passing with one above 256).
pub fn dup_at_least(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    let raw = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(min))?;
    debug_assert!(raw >= min && raw != fd.as_raw_fd());
    // SAFETY: the kernel just created descriptor `raw` for us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
