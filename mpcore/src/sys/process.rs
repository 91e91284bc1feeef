//! Process primitives: `fork`, `_exit`, pidfds and `atexit`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Creates a child process, a copy of this one (POSIX `fork(2)`), that runs `child`
/// and never returns; the parent gets the child's pid.
///
/// This is the one place mpcore forks. The usual hazard of `fork` in a multi-threaded
/// program is that the child has only the calling thread, so a lock another thread
/// held at that moment stays locked in the child. That can make the child wait
/// forever, but it cannot break memory safety: the child's memory is a private copy,
/// and `child` cannot return into code that expects the other threads. Callers take
/// the locks the child needs (stdout, stderr, mpcore's registries) before calling,
/// as CPython's at-fork handlers do.
pub fn fork_into<F: FnOnce() -> std::convert::Infallible>(child: F) -> io::Result<Pid> {
    // SAFETY: see above; `child` ends the process (it returns `Infallible`, which
    // cannot be constructed), and a panic in it is caught below and ends the child,
    // so the child never unwinds or returns into the caller's frames. The parent
    // side does nothing unusual.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(child),
        nix::unistd::ForkResult::Child => {
            // `child()` has the uninhabited type `Infallible`: it only comes back by
            // panicking, which ends the child as an uncaught exception does in Python.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child));
            exit_immediately(1)
        }
    }
}

/// Ends the calling process at once with `code`, without running `atexit` handlers
/// or flushing Rust's buffers (POSIX `_exit(2)`; Python's `os._exit`).
///
/// Callers flush stdout and stderr first.
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit(2) takes an int, touches no memory of ours and always succeeds.
    unsafe { libc::_exit(code) }
}

/// Opens a pidfd for `pid` (Linux `pidfd_open(2)`, kernel 5.3 and later).
///
/// A pidfd refers to one process for its whole life, never to a later process that
/// reuses the pid, and polls readable once that process has exited: it is what
/// Python calls the process `sentinel`.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and a flags word and returns a new descriptor or
    // -1; it reads and writes no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("pidfd out of range"))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `signal` to the process `pidfd` refers to (Linux `pidfd_send_signal(2)`,
/// kernel 5.1 and later).
///
/// Unlike `kill(2)` with a pid, this can never reach a later process that reused the
/// pid: once the process has exited, the call fails with `ESRCH`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: Signal) -> io::Result<()> {
    // SAFETY: pidfd_send_signal takes a descriptor, a signal number, a null `siginfo`
    // pointer (which the kernel reads as "as kill(2) would fill it") and a flags word;
    // it reads and writes no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Registers `handler` to run when the process ends through `exit(3)`, which is how
/// a Rust program ends when `main` returns (Python's `atexit.register`).
pub fn atexit(handler: extern "C" fn()) -> io::Result<()> {
    // SAFETY: `handler` is a plain `extern "C" fn()` with a 'static lifetime, which is
    // what atexit(3) expects; atexit only stores the pointer.
    let rc = unsafe { libc::atexit(handler) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::other("atexit: no room to register a handler"))
    }
}
