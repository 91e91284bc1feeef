//! Named POSIX shared memory (`shm_open(3)` in `/dev/shm`), file locks that count
//! its users, and the few process-setup calls the resource tracker needs.
//!
//! Every process that has a segment open holds a shared `flock(2)` on its descriptor
//! for as long as it keeps it. A lock belongs to the open file description, so it is
//! shared with forked children that inherit the descriptor and released only when
//! the last copy is closed, including by the kernel when a process dies. Whoever
//! obtains the *exclusive* lock therefore knows that no process uses the segment.

use std::ffi::CString;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use nix::fcntl::OFlag;
use nix::sys::mman::{MapFlags, ProtFlags};
use nix::sys::stat::Mode;

/// An open, mapped shared memory segment.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Kept open for as long as the segment is used: it holds the shared user lock.
    _fd: OwnedFd,
    /// `None` for a segment of size 0 (which cannot be mapped).
    ptr: Option<NonNull<u8>>,
    len: usize,
}

// SAFETY: the mapping is owned by this value; `buf` hands out `&[u8]` (shared) and
// `buf_mut` needs `&mut self` (exclusive), so Rust's aliasing rules hold within the
// process exactly as for a `Vec<u8>`.
unsafe impl Send for Segment {}
// SAFETY: as above.
unsafe impl Sync for Segment {}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "embedded null character in name",
        )
    })
}

impl Segment {
    /// Creates `/dev/shm/NAME` (it must not exist; `name` starts with `/`) of
    /// exactly `size` bytes, maps it and takes the shared user lock.
    pub(crate) fn create(name: &str, size: usize) -> io::Result<Segment> {
        let cname = c_name(name)?;
        let fd = nix::sys::mman::shm_open(
            cname.as_c_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )?;
        let sized = libc::off_t::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "size too large"))
            .and_then(|n| Ok(nix::unistd::ftruncate(&fd, n)?));
        if let Err(err) = sized {
            let _ = nix::sys::mman::shm_unlink(cname.as_c_str());
            return Err(err);
        }
        Segment::map(fd, size)
    }

    /// Opens the existing `/dev/shm/NAME` (`name` starts with `/`), maps all of it
    /// and takes the shared user lock.
    pub(crate) fn open(name: &str) -> io::Result<Segment> {
        let cname = c_name(name)?;
        let fd = nix::sys::mman::shm_open(cname.as_c_str(), OFlag::O_RDWR, Mode::empty())?;
        let size = usize::try_from(nix::sys::stat::fstat(&fd)?.st_size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "negative size"))?;
        Segment::map(fd, size)
    }

    fn map(fd: OwnedFd, len: usize) -> io::Result<Segment> {
        lock(fd.as_fd(), libc::LOCK_SH)?;
        let ptr = match NonZeroUsize::new(len) {
            None => None,
            Some(nonzero) => {
                // SAFETY: a fresh MAP_SHARED mapping at a kernel-chosen address
                // overlaps no Rust object; the file is `len` bytes long.
                let ptr = unsafe {
                    nix::sys::mman::mmap(
                        None,
                        nonzero,
                        ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                        MapFlags::MAP_SHARED,
                        &fd,
                        0,
                    )
                }?;
                Some(ptr.cast())
            }
        };
        Ok(Segment { _fd: fd, ptr, len })
    }

    /// The segment's bytes. Other processes may change them at any time, as with any
    /// shared memory (memmap2's shared maps have the same contract).
    pub(crate) fn buf(&self) -> &[u8] {
        match self.ptr {
            // SAFETY: the mapping is `len` readable bytes, alive while `self` is;
            // within this process it is only written through `buf_mut(&mut self)`.
            Some(ptr) => unsafe { std::slice::from_raw_parts(ptr.as_ptr(), self.len) },
            None => &[],
        }
    }

    /// The segment's bytes, writable.
    pub(crate) fn buf_mut(&mut self) -> &mut [u8] {
        match self.ptr {
            // SAFETY: as in `buf`, and `&mut self` makes this the only reference
            // into the mapping within this process.
            Some(ptr) => unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), self.len) },
            None => &mut [],
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Some(ptr) = self.ptr {
            // SAFETY: `ptr`/`len` describe our mapping; the slices handed out
            // borrowed `self`, so none outlives it.
            let _ = unsafe { nix::sys::mman::munmap(ptr.cast(), self.len) };
        }
        // Closing `fd` releases our share of the user lock.
    }
}

/// Removes `/dev/shm/NAME` (`name` starts with `/`).
pub(crate) fn unlink(name: &str) -> io::Result<()> {
    Ok(nix::sys::mman::shm_unlink(c_name(name)?.as_c_str())?)
}

/// Opens `/dev/shm/NAME` only to lock it (the resource tracker's view).
pub(crate) fn open_for_lock(name: &str) -> io::Result<OwnedFd> {
    Ok(nix::sys::mman::shm_open(
        c_name(name)?.as_c_str(),
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// Takes the exclusive lock on `fd`, which succeeds once no other process has the
/// segment open. With `wait` false, returns `Ok(false)` instead of blocking.
pub(crate) fn lock_exclusive(fd: BorrowedFd<'_>, wait: bool) -> io::Result<bool> {
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    match lock(fd, op) {
        Ok(()) => Ok(true),
        Err(err) if err.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(err) => Err(err),
    }
}

fn lock(fd: BorrowedFd<'_>, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock takes a descriptor we borrow (open for the call) and an
        // operation code; it touches no memory of ours.
        let rc = unsafe { libc::flock(fd.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Prepares a freshly forked helper process (the resource tracker): moves `keep` to
/// descriptor 3, points 0, 1 and 2 at `/dev/null`, closes every other descriptor
/// inherited from the parent (so that no pipe or socket of the parent stays open
/// because of us), ignores SIGINT and SIGTERM (a Ctrl-C aimed at the program must
/// not stop the cleanup), unmaps the shared memory it inherited (a mapping keeps
/// its file open, and so its user lock held; see [`unmap_inherited_shared_memory`]),
/// and names the process `name` in `ps`.
pub(crate) fn become_helper(keep: RawFd, name: &str) -> io::Result<OwnedFd> {
    const KEPT: RawFd = 3;
    // First move `keep` out of the way (to 10 or above), so that neither /dev/null
    // nor the standard descriptors can land on it.
    // SAFETY: F_DUPFD on a descriptor number touches no memory of ours.
    let high = unsafe { libc::fcntl(keep, libc::F_DUPFD, 10) };
    if high < 0 {
        return Err(io::Error::last_os_error());
    }
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for target in 0..3 {
        dup2_raw(devnull.as_raw_fd(), target)?;
    }
    dup2_raw(high, KEPT)?;
    // `devnull` may itself be descriptor 3, now the socket: forget it instead of
    // closing it; close_range below closes it if it is above 3.
    std::mem::forget(devnull);
    unmap_inherited_shared_memory();
    // SAFETY: close_range closes descriptors 4.. of this process; the only Rust
    // objects that own any of them are copies inherited from the parent, which this
    // helper never uses again (it runs only the tracker loop and `_exit`s).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, KEPT as u32 + 1, u32::MAX, 0u32) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    for signal in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        // SAFETY: SIG_IGN installs no handler code, so no async-signal-safety
        // question arises.
        unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigIgn) }?;
    }
    if let Ok(cname) = CString::new(name) {
        let _ = nix::sys::prctl::set_name(&cname);
    }
    // SAFETY: descriptor 3 is the duplicate of `keep` made above; the Rust value
    // that owned the original is never used in this helper again, so this is the
    // only owner of descriptor 3.
    Ok(unsafe { OwnedFd::from_raw_fd(KEPT) })
}

/// Unmaps every `/dev/shm` segment and mpcore heap memfd this process inherited
/// from its parent. A mapping holds a reference to its open file, so a helper that
/// kept them would keep every segment "in use" (and every heap arena alive) for as
/// long as it runs.
fn unmap_inherited_shared_memory() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        // "start-end perms offset dev inode   path"
        let mut fields = line.split_whitespace();
        let range = fields.next().unwrap_or("");
        let path = fields.nth(4).unwrap_or("");
        if !(path.starts_with("/dev/shm/") || path.starts_with("/memfd:mpcore")) {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        if let Some(len) = end.checked_sub(start).filter(|&n| n > 0) {
            // SAFETY: this runs only in a freshly forked helper that never touches
            // the objects of its parent again (it runs the tracker loop and
            // `_exit`s), so no live Rust reference points into these mappings.
            unsafe { libc::munmap(start as *mut libc::c_void, len) };
        }
    }
}

fn dup2_raw(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: dup2 on two descriptor numbers touches no memory; `to` is one of the
    // standard descriptors or 3, which the helper takes over on purpose.
    let rc = unsafe { libc::dup2(from, to) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
