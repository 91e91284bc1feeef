//! Anonymous shared memory that can be handed to other processes: `memfd_create(2)`
//! mapped with `MAP_SHARED`.
//!
//! A memfd is a file that lives only in memory and has no name in any directory. The
//! pages belong to the file, so every process that maps it (inherited across fork, or
//! received as a descriptor by a spawned or forkserver child) sees the same bytes, and
//! the kernel frees them when the last descriptor and the last mapping are gone:
//! nothing can leak in `/dev/shm`, whatever way the processes end.
//!
//! A [`SharedMapping`] only hands out *atomic* views of its bytes (`&AtomicU32`, ...).
//! Atomics are valid for every bit pattern and may be changed by anyone at any time,
//! which is exactly what memory shared with other processes is; so every accessor is
//! safe, and code above `sys` never needs a raw pointer.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};

use nix::sys::mman::{MapFlags, ProtFlags};

/// A memfd and its `MAP_SHARED` read-write mapping in this process.
///
/// ```
/// use std::sync::atomic::Ordering;
/// use mpcore::sys::memfd::SharedMapping;
///
/// let map = SharedMapping::create("mpcore-example", 4096)?;
/// map.atomic_u32(8).store(7, Ordering::Relaxed);
/// assert_eq!(map.atomic_u32(8).load(Ordering::Relaxed), 7);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct SharedMapping {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
    id: (u64, u64),
}

// SAFETY: the mapping is plain shared memory owned by this value; it is only ever
// accessed through atomics (see the accessors), which are themselves Send + Sync.
unsafe impl Send for SharedMapping {}
// SAFETY: as above: shared access goes through `&AtomicUxx` only.
unsafe impl Sync for SharedMapping {}

impl SharedMapping {
    /// Creates a zero-filled memfd of `len` bytes (rounded up to whole pages) named
    /// `name` (visible as `/memfd:NAME` in `/proc/PID/maps`), and maps it.
    pub fn create(name: &str, len: usize) -> io::Result<SharedMapping> {
        let cname = std::ffi::CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))?;
        // SAFETY: `cname` is a valid NUL-terminated string for the duration of the
        // call; memfd_create returns a new descriptor or -1.
        let raw = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let len = round_to_pages(len.max(1));
        let size = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "size too large"))?;
        nix::unistd::ftruncate(&fd, size)?;
        SharedMapping::map(fd, len)
    }

    /// Maps a memfd received from another process (its whole size).
    pub fn from_fd(fd: OwnedFd) -> io::Result<SharedMapping> {
        let stat = nix::sys::stat::fstat(&fd)?;
        let len = usize::try_from(stat.st_size)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "empty shared memory"))?;
        SharedMapping::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> io::Result<SharedMapping> {
        let stat = nix::sys::stat::fstat(&fd)?;
        let nonzero = NonZeroUsize::new(len).ok_or(io::ErrorKind::InvalidInput)?;
        // SAFETY: a fresh MAP_SHARED mapping at an address the kernel chooses does
        // not overlap any Rust object. The file is at least `len` bytes long (we
        // sized it, or fstat said so), so every byte of the mapping is backed.
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
        Ok(SharedMapping {
            fd,
            ptr: ptr.cast(),
            len,
            id: (stat.st_dev as u64, stat.st_ino as u64),
        })
    }

    /// The memfd, to pass to another process.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The mapped length in bytes (a whole number of pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The file's identity `(st_dev, st_ino)`: two descriptors with the same identity
    /// refer to the same memory.
    pub fn identity(&self) -> (u64, u64) {
        self.id
    }

    /// The byte at `offset`, as an atomic. Panics if out of bounds.
    #[inline]
    pub fn atomic_u8(&self, offset: usize) -> &AtomicU8 {
        let p = self.checked::<AtomicU8>(offset);
        // SAFETY: `checked` proved the 1 byte lies inside our live mapping; the
        // reference lives no longer than `&self`, which keeps the mapping; any bit
        // pattern is a valid AtomicU8, and atomics tolerate concurrent writers.
        unsafe { &*p }
    }

    /// The 2 bytes at `offset` (2-aligned), as an atomic. Panics if out of bounds
    /// or misaligned.
    #[inline]
    pub fn atomic_u16(&self, offset: usize) -> &AtomicU16 {
        let p = self.checked::<AtomicU16>(offset);
        // SAFETY: as in `atomic_u8`; `checked` also proved the alignment.
        unsafe { &*p }
    }

    /// The 4 bytes at `offset` (4-aligned), as an atomic. Panics if out of bounds
    /// or misaligned.
    #[inline]
    pub fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        let p = self.checked::<AtomicU32>(offset);
        // SAFETY: as in `atomic_u8`; `checked` also proved the alignment.
        unsafe { &*p }
    }

    /// The 8 bytes at `offset` (8-aligned), as an atomic. Panics if out of bounds
    /// or misaligned.
    #[inline]
    pub fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        let p = self.checked::<AtomicU64>(offset);
        // SAFETY: as in `atomic_u8`; `checked` also proved the alignment.
        unsafe { &*p }
    }

    #[inline]
    fn checked<T>(&self, offset: usize) -> *const T {
        let size = std::mem::size_of::<T>();
        assert!(
            offset.checked_add(size).is_some_and(|end| end <= self.len),
            "offset {offset} out of bounds of a {}-byte mapping",
            self.len
        );
        assert!(
            offset.is_multiple_of(std::mem::align_of::<T>()),
            "offset {offset} is not aligned for a {size}-byte atomic"
        );
        self.ptr
            .as_ptr()
            .wrapping_add(offset)
            .cast::<T>()
            .cast_const()
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe the mapping created in `map`, unmapped only
        // here; every reference handed out borrowed `self`, so none outlives it.
        let _ = unsafe { nix::sys::mman::munmap(self.ptr.cast(), self.len) };
    }
}

/// The size of a memory page.
pub fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(4096)
}

fn round_to_pages(len: usize) -> usize {
    let page = page_size();
    len.div_ceil(page).saturating_mul(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn two_mappings_of_one_memfd_share_bytes() {
        let a = SharedMapping::create("mpcore-test", 100).unwrap();
        assert_eq!(a.len(), page_size());
        let b = SharedMapping::from_fd(a.fd().try_clone_to_owned().unwrap()).unwrap();
        assert_eq!(a.identity(), b.identity());
        a.atomic_u64(16).store(0xdead_beef, Ordering::Relaxed);
        assert_eq!(b.atomic_u64(16).load(Ordering::Relaxed), 0xdead_beef);
        assert_eq!(b.atomic_u8(16).load(Ordering::Relaxed), 0xef);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn out_of_bounds_panics() {
        let a = SharedMapping::create("mpcore-test", 10).unwrap();
        a.atomic_u32(a.len() - 2);
    }

    #[test]
    #[should_panic(expected = "not aligned")]
    fn misaligned_panics() {
        let a = SharedMapping::create("mpcore-test", 10).unwrap();
        a.atomic_u64(4);
    }
}
