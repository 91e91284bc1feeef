//! Anonymous shared memory that can travel to other processes: a `memfd` mapped
//! `MAP_SHARED` (Linux `memfd_create(2)`, `mmap(2)`).
//!
//! A fork child inherits the mapping itself; a spawned child gets the descriptor
//! (see [`reduction`](crate::reduction)) and maps it again. A memfd has no name in
//! any file system, so nothing can be left behind in `/dev/shm`: the memory goes
//! away with the last descriptor and mapping. Its debugging name (seen in
//! `/proc/PID/fd`) starts with `mpcore-`.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// A shared, read-write mapping of a memfd, and the memfd itself.
///
/// Offers atomics at fixed offsets and bounds-checked byte copies. The bytes are
/// plain data that other processes write too: what they mean, and who may touch
/// which bytes when, is the protocol of the user (the queue ring), built on the
/// atomics' acquire/release ordering.
#[derive(Debug)]
pub struct SharedMapping {
    ptr: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping is plain shared memory, accessed only through atomics and
// bounds-checked copies; it can be used from any thread.
unsafe impl Send for SharedMapping {}
// SAFETY: as above; `&SharedMapping` exposes only atomics and copies.
unsafe impl Sync for SharedMapping {}

impl SharedMapping {
    /// A new zero-filled mapping of `len` bytes backed by a memfd named `name`
    /// (which should start with `mpcore-`).
    pub fn create(name: &str, len: usize) -> io::Result<SharedMapping> {
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC)?;
        let size = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mapping too large"))?;
        nix::unistd::ftruncate(&fd, size)?;
        SharedMapping::map(fd, len)
    }

    /// Maps the whole of an existing memfd (received from another process).
    pub fn from_fd(fd: OwnedFd) -> io::Result<SharedMapping> {
        let st = nix::sys::stat::fstat(&fd)?;
        let len = usize::try_from(st.st_size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad memfd size"))?;
        SharedMapping::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> io::Result<SharedMapping> {
        let length = NonZeroUsize::new(len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"))?;
        // SAFETY: a fresh mapping chosen by the kernel (no address hint), of a file we
        // hold open and whose size is at least `len` (we truncated it to `len` or read
        // its size); nothing else in this process refers to the new range.
        let ptr = unsafe {
            mmap(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )
        }?;
        Ok(SharedMapping {
            ptr: ptr.cast(),
            len,
            fd,
        })
    }

    /// The size of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: a mapping has at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memfd, to pass to another process.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The 32-bit atomic at byte `offset`. Panics if it is out of bounds or not
    /// 4-aligned (a bug in the caller's layout, not a run-time condition).
    pub fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        assert!(
            offset.is_multiple_of(4) && offset + 4 <= self.len,
            "bad atomic offset"
        );
        // SAFETY: in bounds and aligned (the mapping is page-aligned); the memory
        // lives as long as `self`, and AtomicU32 has the layout of u32 and allows
        // shared mutation.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU32>() }
    }

    /// The 64-bit atomic at byte `offset`. Panics if it is out of bounds or not
    /// 8-aligned.
    pub fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        assert!(
            offset.is_multiple_of(8) && offset + 8 <= self.len,
            "bad atomic offset"
        );
        // SAFETY: as in `atomic_u32`, with 8-byte alignment.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// Copies `src` into the mapping at `offset`. Panics if out of bounds.
    pub fn write(&self, offset: usize, src: &[u8]) {
        assert!(
            offset <= self.len && src.len() <= self.len - offset,
            "shared write out of bounds"
        );
        // SAFETY: the destination range is inside the mapping, which cannot overlap
        // `src` (a Rust slice of private memory). Other processes following the
        // ring's protocol do not touch these bytes until they are published with a
        // release store; one that breaks it can only make us copy garbage bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(offset), src.len());
        }
    }

    /// Copies bytes of the mapping at `offset` into `dst`. Panics if out of bounds.
    pub fn read(&self, offset: usize, dst: &mut [u8]) {
        assert!(
            offset <= self.len && dst.len() <= self.len - offset,
            "shared read out of bounds"
        );
        // SAFETY: as in `write`, in the other direction; any byte value is a valid u8.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                dst.as_mut_ptr(),
                dst.len(),
            );
        }
    }

    /// Appends `n` bytes of the mapping at `offset` to `vec`, without zeroing them
    /// first. Panics if out of bounds.
    pub fn read_append(&self, offset: usize, n: usize, vec: &mut Vec<u8>) {
        assert!(
            offset <= self.len && n <= self.len - offset,
            "shared read out of bounds"
        );
        vec.reserve(n);
        let len = vec.len();
        // SAFETY: the source is inside the mapping; the destination is `n` bytes of
        // spare capacity just reserved in `vec`; the two cannot overlap. After the
        // copy those bytes are initialised, so the new length is valid.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                vec.as_mut_ptr().add(len),
                n,
            );
            vec.set_len(len + n);
        }
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `map`, and no
        // reference into it outlives `self` (every accessor borrows `self`).
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}
