//! Anonymous shared memory that can be handed to other processes: `memfd_create(2)`
//! mapped with `MAP_SHARED`.
//!
//! A memfd is a file that lives only in memory and has no name in any directory. The
//! pages belong to the file, so every process that maps it (inherited across fork, or
//! received as a descriptor by a spawned or forkserver child) sees the same bytes, and
//! the kernel frees them when the last descriptor and the last mapping are gone:
//! nothing can leak in `/dev/shm`, whatever way the processes end. Its debugging name
//! (`/memfd:NAME` in `/proc/PID/maps` and `/proc/PID/fd`) starts with `mpcore-`.
//! Its size is sealed when it is made, so no process can shrink the file under
//! another's mapping (which would make the next access die of `SIGBUS`), and a
//! descriptor received from elsewhere without those seals is refused.
//!
//! A [`SharedMapping`] hands out its bytes in two ways only, both safe to call:
//!
//! - *atomic* views (`&AtomicU32`, ..., or a [`SharedAtomic`] handle). Atomics are
//!   valid for every bit pattern and may be changed by anyone at any time, which is
//!   exactly what memory shared with other processes is.
//! - bounds-checked *copies* of byte ranges in and out of private memory
//!   ([`write`](SharedMapping::write), [`read`](SharedMapping::read),
//!   [`read_append`](SharedMapping::read_append)), for bulk data such as a queue's
//!   records. No `&[u8]` into the mapping is ever made, so no Rust reference promises
//!   bytes that another process may change under it. What the bytes mean, and who
//!   may touch which bytes when, is the protocol of the caller (the queue ring),
//!   built on the atomics' acquire/release ordering; a process that breaks it can
//!   only make the others copy garbage bytes, never read outside the mapping.
//!
//! Code above `sys` never needs a raw pointer.

use std::io;
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// The seals that fix a memfd's size.
const FIXED_SIZE: SealFlag = SealFlag::F_SEAL_SHRINK.union(SealFlag::F_SEAL_GROW);

/// A memfd and its `MAP_SHARED` read-write mapping in this process.
///
/// ```
/// use std::sync::atomic::Ordering;
/// use mpcore::sys::memfd::SharedMapping;
///
/// let map = SharedMapping::create("mpcore-example", 4096)?;
/// map.atomic_u32(8).store(7, Ordering::Relaxed);
/// assert_eq!(map.atomic_u32(8).load(Ordering::Relaxed), 7);
/// map.write(100, b"hello");
/// let mut buf = [0u8; 5];
/// map.read(100, &mut buf);
/// assert_eq!(&buf, b"hello");
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
// accessed through atomics (themselves Send + Sync) and bounds-checked copies into
// or out of the caller's private memory, never through a reference to plain bytes.
unsafe impl Send for SharedMapping {}
// SAFETY: as above: `&SharedMapping` exposes only `&AtomicUxx` and copies.
unsafe impl Sync for SharedMapping {}

impl SharedMapping {
    /// Creates a zero-filled, close-on-exec memfd of `len` bytes (rounded up to whole
    /// pages, see [`round_to_pages`]) named `name` (which should start with `mpcore-`),
    /// and maps it.
    pub fn create(name: &str, len: usize) -> io::Result<SharedMapping> {
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
        let size = libc::off_t::try_from(round_to_pages(len.max(1)))
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "size too large"))?;
        nix::unistd::ftruncate(&fd, size)?;
        // Fix the size for good: no process holding the descriptor can shrink the
        // file under another's mapping (which would turn its next access into a
        // SIGBUS), and `from_fd` can check that.
        fcntl(
            &fd,
            FcntlArg::F_ADD_SEALS(FIXED_SIZE | SealFlag::F_SEAL_SEAL),
        )?;
        SharedMapping::from_fd(fd)
    }

    /// Maps the whole of a memfd (one received from another process, or one
    /// [`create`](SharedMapping::create) just sized). Its size is whatever the file's
    /// is: a caller that expects a layout must check [`len`](SharedMapping::len).
    pub fn from_fd(fd: OwnedFd) -> io::Result<SharedMapping> {
        let seals = SealFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GET_SEALS)?);
        if !seals.contains(FIXED_SIZE) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "shared memory whose size is not sealed",
            ));
        }
        let stat = nix::sys::stat::fstat(&fd)?;
        let len = usize::try_from(stat.st_size)
            .ok()
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "empty shared memory"))?;
        // SAFETY: a fresh MAP_SHARED mapping at an address the kernel chooses does
        // not overlap any Rust object. The file is `len` bytes long (fstat just said
        // so) and sealed against shrinking, so every byte of the mapping is backed
        // for as long as it exists.
        let ptr = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )
        }?;
        Ok(SharedMapping {
            fd,
            ptr: ptr.cast(),
            len: len.get(),
            id: (stat.st_dev as u64, stat.st_ino as u64),
        })
    }

    /// The memfd, to pass to another process.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The mapped length in bytes: the file's size (a whole number of pages for a
    /// memfd made by [`create`](SharedMapping::create)).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one byte.
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

    /// Copies `src` into the mapping at `offset`. Panics if out of bounds.
    pub fn write(&self, offset: usize, src: &[u8]) {
        let dst = self.range(offset, src.len());
        // SAFETY: `range` proved the `src.len()` destination bytes lie inside our
        // live mapping, which cannot overlap `src` (a Rust slice of private memory).
        // No reference to the mapping's bytes exists, so no `&[u8]` is invalidated.
        // Other processes (and other threads of this one) reach these bytes too:
        // those following the ring's protocol do not touch them until we publish
        // them with a release store; one that breaks it can only leave garbage bytes
        // there, which the reader decodes as untrusted data.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) }
    }

    /// Copies bytes of the mapping at `offset` into `dst`. Panics if out of bounds.
    pub fn read(&self, offset: usize, dst: &mut [u8]) {
        let src = self.range(offset, dst.len());
        // SAFETY: as in `write`, in the other direction: the source is inside the
        // mapping, `dst` is private memory, and a concurrent writer that breaks the
        // protocol can only make us copy garbage; any byte value is a valid u8.
        unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) }
    }

    /// Appends `n` bytes of the mapping at `offset` to `vec`, without zeroing them
    /// first. Panics if out of bounds.
    pub fn read_append(&self, offset: usize, n: usize, vec: &mut Vec<u8>) {
        let src = self.range(offset, n);
        vec.reserve(n);
        let len = vec.len();
        // SAFETY: the source is inside the mapping (`range`); the destination is `n`
        // bytes of spare capacity just reserved in `vec`; the two cannot overlap.
        // Concurrent writers are as in `read`: any byte value is a valid u8. After
        // the copy those `n` bytes are initialised, so the new length is valid.
        unsafe {
            std::ptr::copy_nonoverlapping(src, vec.as_mut_ptr().add(len), n);
            vec.set_len(len + n);
        }
    }

    /// The address of byte `offset`, after checking that `size` bytes from there lie
    /// inside the mapping. Panics otherwise (a bug in the caller's layout, not a
    /// run-time condition).
    #[inline]
    fn range(&self, offset: usize, size: usize) -> *mut u8 {
        assert!(
            offset.checked_add(size).is_some_and(|end| end <= self.len),
            "offset {offset} out of bounds of a {}-byte mapping",
            self.len
        );
        self.ptr.as_ptr().wrapping_add(offset)
    }

    /// The address of the `T` at `offset`: in bounds (see `range`) and aligned.
    #[inline]
    fn checked<T>(&self, offset: usize) -> *const T {
        let size = std::mem::size_of::<T>();
        let p = self.range(offset, size);
        assert!(
            offset.is_multiple_of(std::mem::align_of::<T>()),
            "offset {offset} is not aligned for a {size}-byte atomic"
        );
        p.cast::<T>().cast_const()
    }
}

mod sealed {
    pub trait Atomic {}
    impl Atomic for std::sync::atomic::AtomicU8 {}
    impl Atomic for std::sync::atomic::AtomicU16 {}
    impl Atomic for std::sync::atomic::AtomicU32 {}
    impl Atomic for std::sync::atomic::AtomicU64 {}
}

/// One atomic word inside a [`SharedMapping`], with its address checked once: a
/// handle for hot paths (a lock word) that keeps the mapping alive and derefs to
/// the atomic without a bounds check.
pub struct SharedAtomic<T: sealed::Atomic> {
    ptr: NonNull<T>,
    _map: Arc<SharedMapping>,
}

// SAFETY: the pointee is an atomic (Send + Sync) inside a mapping that `_map`
// keeps alive; sharing or sending the handle shares only that atomic.
unsafe impl<T: sealed::Atomic> Send for SharedAtomic<T> {}
// SAFETY: as above.
unsafe impl<T: sealed::Atomic> Sync for SharedAtomic<T> {}

impl<T: sealed::Atomic> SharedAtomic<T> {
    /// The atomic at `offset` of `map`. Panics if out of bounds or misaligned.
    pub fn new(map: &Arc<SharedMapping>, offset: usize) -> SharedAtomic<T> {
        let ptr = map.checked::<T>(offset).cast_mut();
        SharedAtomic {
            // The mapping's base is non-null, and `checked` stays inside it.
            ptr: NonNull::new(ptr).expect("a mapping is never at address 0"),
            _map: Arc::clone(map),
        }
    }
}

impl<T: sealed::Atomic> Clone for SharedAtomic<T> {
    fn clone(&self) -> Self {
        SharedAtomic {
            ptr: self.ptr,
            _map: Arc::clone(&self._map),
        }
    }
}

impl<T: sealed::Atomic> Deref for SharedAtomic<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: `new` checked that `ptr` is an aligned, in-bounds atomic of the
        // mapping, which `_map` keeps mapped for as long as `self` lives; any bit
        // pattern is a valid atomic and concurrent writers are fine.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: sealed::Atomic> std::fmt::Debug for SharedAtomic<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedAtomic({:p})", self.ptr)
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe the mapping created in `from_fd`, unmapped
        // only here; every reference handed out borrowed `self` (a `SharedAtomic`
        // keeps its mapping alive), so none outlives it.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
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

/// `len` rounded up to whole pages: the size [`SharedMapping::create`] gives a memfd
/// asked for `len` bytes (`len > 0`).
pub fn round_to_pages(len: usize) -> usize {
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

    #[test]
    fn bytes_copied_in_are_seen_by_another_mapping() {
        let a = SharedMapping::create("mpcore-test", 100).unwrap();
        let b = SharedMapping::from_fd(a.fd().try_clone_to_owned().unwrap()).unwrap();
        let end = a.len();
        a.write(end - 3, b"xyz");
        a.write(0, b"");
        let mut buf = [0u8; 3];
        b.read(end - 3, &mut buf);
        assert_eq!(&buf, b"xyz");
        let mut v = b"ab".to_vec();
        b.read_append(end - 3, 3, &mut v);
        b.read_append(end, 0, &mut v);
        assert_eq!(v, b"abxyz");
        assert_eq!(b.atomic_u8(end - 1).load(Ordering::Relaxed), b'z');
    }

    #[test]
    fn the_size_is_sealed_and_unsealed_memfds_are_refused() {
        let map = SharedMapping::create("mpcore-test", 100).unwrap();
        assert!(
            nix::unistd::ftruncate(map.fd(), 0).is_err(),
            "cannot shrink"
        );
        assert!(
            nix::unistd::ftruncate(map.fd(), 1 << 20).is_err(),
            "cannot grow"
        );
        let plain = memfd_create("mpcore-test", MFdFlags::MFD_CLOEXEC).unwrap();
        nix::unistd::ftruncate(&plain, 4096).unwrap();
        let err = SharedMapping::from_fd(plain).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn write_out_of_bounds_panics() {
        let a = SharedMapping::create("mpcore-test", 10).unwrap();
        a.write(a.len() - 2, b"abc");
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn read_append_past_the_end_of_the_address_space_panics() {
        let a = SharedMapping::create("mpcore-test", 10).unwrap();
        a.read_append(usize::MAX, 2, &mut Vec::new());
    }
}
