//! Byte I/O on the descriptors behind a `Connection`: socket pairs, sends that
//! never raise `SIGPIPE`, gathered writes, and reads straight into a `Vec`'s spare
//! capacity.
//!
//! CPython's `Connection` calls `os.write`/`os.read` on the descriptor; these are
//! the same system calls, with the two details Python gets from its runtime made
//! explicit: `EINTR` is retried, and a send to a closed socket returns `EPIPE`
//! (`MSG_NOSIGNAL`) instead of killing the process.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, sockopt};
use nix::sys::time::TimeVal;

/// A connected pair of Unix stream sockets, both close-on-exec (Python:
/// `socket.socketpair()`, what a duplex `Pipe()` is made of).
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socket::socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// Whether `fd` is a socket (as opposed to a pipe or a file).
pub fn is_socket(fd: BorrowedFd<'_>) -> bool {
    nix::sys::stat::fstat(fd)
        .map(|st| (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK)
        .unwrap_or(false)
}

/// Whether `fd` is a Unix-domain socket (the kind that can carry descriptors).
pub fn is_unix(fd: BorrowedFd<'_>) -> bool {
    socket::getsockname::<socket::UnixAddr>(fd.as_raw_fd()).is_ok()
}

/// Writes every byte of `bufs`, in order, as one gathered write where the kernel
/// takes it all (`sendmsg` with `MSG_NOSIGNAL` on a socket, `writev` otherwise),
/// continuing after partial writes and `EINTR`.
///
/// A peer that has gone gives `EPIPE` (`ErrorKind::BrokenPipe`) rather than a
/// `SIGPIPE`: sockets by `MSG_NOSIGNAL`; for pipes the caller makes sure `SIGPIPE`
/// is ignored ([`ignore_sigpipe`](super::pipe::ignore_sigpipe)).
pub fn write_all_vectored(fd: BorrowedFd<'_>, socket: bool, bufs: &[&[u8]]) -> io::Result<()> {
    // Skip empty slices up front, so `first` always points at unsent bytes.
    let mut first = 0;
    let mut offset = 0;
    let skip_empty = |first: &mut usize, offset: &mut usize| {
        while *first < bufs.len() && *offset == bufs[*first].len() {
            *first += 1;
            *offset = 0;
        }
    };
    skip_empty(&mut first, &mut offset);
    while first < bufs.len() {
        let mut slices: [IoSlice<'_>; 4] = [IoSlice::new(&[]); 4];
        let mut count = 0;
        for (i, buf) in bufs[first..].iter().enumerate().take(slices.len()) {
            let start = if i == 0 { offset } else { 0 };
            slices[count] = IoSlice::new(&buf[start..]);
            count += 1;
        }
        let written = if count == 1 {
            // One buffer: the plain calls are a little cheaper than their
            // gathering twins.
            if socket {
                socket::send(fd.as_raw_fd(), &slices[0], MsgFlags::MSG_NOSIGNAL)
            } else {
                nix::unistd::write(fd, &slices[0])
            }
        } else if socket {
            socket::sendmsg::<()>(
                fd.as_raw_fd(),
                &slices[..count],
                &[],
                MsgFlags::MSG_NOSIGNAL,
                None,
            )
        } else {
            nix::sys::uio::writev(fd, &slices[..count])
        };
        let mut written = match written {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(err.into()),
        };
        if written == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "wrote 0 bytes"));
        }
        // Advance over what the kernel took.
        while written > 0 {
            let left = bufs[first].len() - offset;
            if written >= left {
                written -= left;
                first += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
        skip_empty(&mut first, &mut offset);
    }
    Ok(())
}

/// Reads at most `buf.len()` bytes (`read(2)`), retrying on `EINTR`; 0 means end of
/// file. A receive time-out set by [`set_recv_timeout`] shows as
/// `ErrorKind::WouldBlock`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::read(fd, buf) {
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(err.into()),
        }
    }
}

/// Reads at most `max` bytes into the spare capacity of `vec` (reserving room for
/// them first) and extends its length by what was read, without zeroing the
/// memory first. Retries on `EINTR`; returns 0 at end of file.
pub fn read_append(fd: BorrowedFd<'_>, vec: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    vec.reserve(max);
    let spare = vec.spare_capacity_mut();
    let want = max.min(spare.len());
    loop {
        // SAFETY: `spare` is writable memory owned by `vec` with at least `want`
        // bytes; read(2) writes at most `want` bytes into it and nothing else. The
        // pointer is valid for the duration of the call.
        let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), want) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        let n = n as usize;
        let len = vec.len();
        // SAFETY: the kernel initialised the first `n <= want` bytes of the spare
        // capacity, so `len + n` bytes are initialised and within capacity.
        unsafe { vec.set_len(len + n) };
        return Ok(n);
    }
}

/// Sets (`Some`) or clears (`None`) the receive time-out of the socket `fd`
/// (`SO_RCVTIMEO`): a `read` that waits longer fails with `WouldBlock`.
pub fn set_recv_timeout(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<()> {
    let tv = match timeout {
        None => TimeVal::new(0, 0),
        Some(t) => {
            // A zero time-out would mean "forever" to the kernel: use 1 us instead.
            let t = t.max(Duration::from_micros(1));
            TimeVal::new(
                t.as_secs().min(i64::MAX as u64) as i64,
                i64::from(t.subsec_micros()),
            )
        }
    };
    Ok(socket::setsockopt(&fd, sockopt::ReceiveTimeout, &tv)?)
}
