//! The shared-memory arena that locks, values and arrays live in (CPython: `heap.py`).
//!
//! # Design
//!
//! CPython's `heap.py` carves `multiprocessing.Value`s and `Array`s out of
//! `mmap`ed arenas. mpcore does the same for every shared object, with three choices
//! of its own:
//!
//! - **Arenas are memfds** ([`sys::memfd`](crate::sys::memfd)). A memfd can be
//!   inherited by a forked child *and* passed by descriptor to a spawned or
//!   forkserver child, and the kernel frees its pages once the last process that
//!   maps it is gone, however the processes end: nothing can leak.
//! - **Small objects share arenas.** A lock is a few words; one memfd each would
//!   cost a descriptor per lock (a program with 2 000 locks would hit the default
//!   limit of 1 024 open files) and a `memfd_create` + `ftruncate` + `mmap` per lock.
//!   Blocks up to [`LARGE_BLOCK`] bytes are cut from 64 KiB arenas, 64-byte aligned so
//!   that two independent locks never share a cache line; larger blocks (arrays) get a
//!   memfd of their own. The `small_objects_share_arenas` test pins the descriptor
//!   count, and the `create` group of `benches/synchronize.rs` the cost: creating a
//!   `Lock` took 73 ns from a shared arena against 12.8 µs for a memfd and mapping
//!   of its own (175x), on the project's 2-core machine.
//! - **Blocks are never reused.** An arena hands out blocks by bumping an offset and
//!   is unmapped when the last block cut from it is dropped in this process. A freed
//!   block is not given out again, because a child may still use it: CPython reuses
//!   freed blocks, so an object a child still holds can alias a new one in the
//!   parent. The cost is bounded: at most one partly used 64 KiB arena per live
//!   small object, and typically far less.
//!
//! A forked child starts with a fresh heap state (see
//! [`ForkLocal`]): parent and child both still map
//! the parent's current arena, and if both kept cutting blocks from it they would
//! hand out the same bytes twice.
//!
//! # Passing blocks to children
//!
//! A [`Block`] serializes as (the arena's memfd, offset, length) with
//! [`reduction::serialize_fd`]; the child maps the
//! memfd. Several blocks of one arena arrive as several descriptors of one file;
//! the child recognises the file by `(st_dev, st_ino)` and maps it once, so every
//! handle to an object has the same address in a process. Under fork nothing is
//! serialized: the child inherits the mapping.

use std::collections::HashMap;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex, Weak};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Result;
use crate::reduction;
use crate::sys::identity::ForkLocal;
use crate::sys::memfd::{SharedAtomic, SharedMapping};
use crate::util::lock;

/// The size of an arena shared by small blocks.
pub const ARENA_SIZE: usize = 64 * 1024;
/// Blocks larger than this get a memfd of their own.
pub const LARGE_BLOCK: usize = 16 * 1024;
/// Every block starts on a multiple of this (a cache line).
pub const ALIGN: usize = 64;

/// The name of every memfd the heap creates (`/memfd:mpcore-heap` in
/// `/proc/PID/maps`).
const MEMFD_NAME: &str = "mpcore-heap";

/// One memfd and its mapping.
struct Arena {
    map: Arc<SharedMapping>,
}

/// The heap of one process: the arena small blocks are cut from, and the arenas
/// received from a parent, by file identity.
#[derive(Default)]
struct HeapState {
    current: Option<(Arc<Arena>, usize)>,
    attached: HashMap<(u64, u64), Weak<Arena>>,
}

static HEAP: ForkLocal<Mutex<HeapState>> = ForkLocal::new(|| Mutex::new(HeapState::default()));

/// A block of shared memory from the heap: the storage of a lock, a value or an
/// array (Python: `heap.BufferWrapper`).
///
/// Clones refer to the same bytes. The bytes are zero when the block is new and are
/// reached only through atomics, so a block is safe to share with any process.
///
/// ```
/// use std::sync::atomic::Ordering;
/// let block = mpcore::heap::Block::new(16)?;
/// block.u64_at(8).store(42, Ordering::Relaxed);
/// assert_eq!(block.clone().u64_at(8).load(Ordering::Relaxed), 42);
/// # Ok::<(), mpcore::Error>(())
/// ```
#[derive(Clone)]
pub struct Block {
    arena: Arc<Arena>,
    offset: usize,
    len: usize,
}

impl Block {
    /// A new zero-filled block of `len` bytes.
    pub fn new(len: usize) -> Result<Block> {
        if len > LARGE_BLOCK {
            let map = SharedMapping::create(MEMFD_NAME, len)?;
            return Ok(Block {
                arena: Arc::new(Arena { map: Arc::new(map) }),
                offset: 0,
                len,
            });
        }
        let mut heap = lock(HEAP.get());
        let size = len.max(1).next_multiple_of(ALIGN);
        let fits = matches!(&heap.current, Some((_, next)) if next + size <= ARENA_SIZE);
        if !fits {
            let map = SharedMapping::create(MEMFD_NAME, ARENA_SIZE)?;
            heap.current = Some((Arc::new(Arena { map: Arc::new(map) }), 0));
        }
        let (arena, next) = heap.current.as_mut().expect("an arena was just made");
        let block = Block {
            arena: Arc::clone(arena),
            offset: *next,
            len,
        };
        *next += size;
        Ok(block)
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the block has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The part of this block at `offset..offset + len`, sharing its memory.
    /// Panics if it does not fit.
    pub fn sub(&self, offset: usize, len: usize) -> Block {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "sub-block {offset}+{len} outside a block of {}",
            self.len
        );
        Block {
            arena: Arc::clone(&self.arena),
            offset: self.offset + offset,
            len,
        }
    }

    /// Whether two handles refer to the same bytes.
    pub fn same_as(&self, other: &Block) -> bool {
        Arc::ptr_eq(&self.arena, &other.arena) && self.offset == other.offset
    }

    #[inline]
    fn at(&self, offset: usize, size: usize) -> usize {
        assert!(
            offset.checked_add(size).is_some_and(|end| end <= self.len),
            "offset {offset} outside a block of {}",
            self.len
        );
        self.offset + offset
    }

    /// The byte at `offset`.
    #[inline]
    pub fn u8_at(&self, offset: usize) -> &AtomicU8 {
        self.arena.map.atomic_u8(self.at(offset, 1))
    }

    /// The 2 bytes at `offset` (2-aligned).
    #[inline]
    pub fn u16_at(&self, offset: usize) -> &AtomicU16 {
        self.arena.map.atomic_u16(self.at(offset, 2))
    }

    /// The 4 bytes at `offset` (4-aligned).
    #[inline]
    pub fn u32_at(&self, offset: usize) -> &AtomicU32 {
        self.arena.map.atomic_u32(self.at(offset, 4))
    }

    /// A handle on the 4 bytes at `offset` (4-aligned) that checks the bounds once
    /// and keeps the memory mapped: for words used on hot paths.
    pub fn shared_u32(&self, offset: usize) -> SharedAtomic<AtomicU32> {
        SharedAtomic::new(&self.arena.map, self.at(offset, 4))
    }

    /// A handle on the 8 bytes at `offset` (8-aligned), as
    /// [`shared_u32`](Block::shared_u32).
    pub fn shared_u64(&self, offset: usize) -> SharedAtomic<AtomicU64> {
        SharedAtomic::new(&self.arena.map, self.at(offset, 8))
    }

    /// The 8 bytes at `offset` (8-aligned).
    #[inline]
    pub fn u64_at(&self, offset: usize) -> &AtomicU64 {
        self.arena.map.atomic_u64(self.at(offset, 8))
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Block(memfd {:?}, offset {}, len {})",
            self.arena.map.identity(),
            self.offset,
            self.len
        )
    }
}

/// The memfd of a block, encoded by [`reduction::serialize_fd`].
struct FdOut<'a>(&'a SharedMapping);

impl Serialize for FdOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        reduction::serialize_fd("Lock", self.0.fd().as_fd(), s)
    }
}

struct FdIn(OwnedFd);

impl<'de> Deserialize<'de> for FdIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(FdIn(reduction::deserialize_fd(d)?))
    }
}

impl Serialize for Block {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (FdOut(&self.arena.map), self.offset as u64, self.len as u64).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Block {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (FdIn(fd), offset, len) = <(FdIn, u64, u64)>::deserialize(d)?;
        let arena = attach(fd).map_err(|e| D::Error::custom(format!("shared memory: {e}")))?;
        let offset = usize::try_from(offset).map_err(D::Error::custom)?;
        let len = usize::try_from(len).map_err(D::Error::custom)?;
        if offset
            .checked_add(len)
            .is_none_or(|end| end > arena.map.len())
        {
            return Err(D::Error::custom("block outside its shared memory"));
        }
        Ok(Block { arena, offset, len })
    }
}

/// Maps a received arena, or reuses this process's mapping of the same memfd.
fn attach(fd: OwnedFd) -> std::io::Result<Arc<Arena>> {
    let stat = nix::sys::stat::fstat(&fd)?;
    let id = (stat.st_dev as u64, stat.st_ino as u64);
    let mut heap = lock(HEAP.get());
    if let Some(arena) = heap.attached.get(&id).and_then(Weak::upgrade) {
        return Ok(arena);
    }
    if let Some((arena, _)) = &heap.current
        && arena.map.identity() == id
    {
        return Ok(Arc::clone(arena));
    }
    let arena = Arc::new(Arena {
        map: Arc::new(SharedMapping::from_fd(fd)?),
    });
    heap.attached.retain(|_, weak| weak.strong_count() > 0);
    heap.attached.insert(id, Arc::downgrade(&arena));
    Ok(arena)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    #[test]
    fn blocks_are_zeroed_aligned_and_distinct() {
        let a = Block::new(24).unwrap();
        let b = Block::new(24).unwrap();
        assert!(!a.same_as(&b));
        assert_eq!(a.u64_at(16).load(Ordering::Relaxed), 0);
        a.u64_at(0).store(1, Ordering::Relaxed);
        assert_eq!(b.u64_at(0).load(Ordering::Relaxed), 0);
        assert_eq!(a.offset % ALIGN, 0);
        assert_eq!(b.offset % ALIGN, 0);
    }

    #[test]
    fn small_objects_share_arenas() {
        let before = open_fds();
        let blocks: Vec<Block> = (0..500).map(|_| Block::new(32).unwrap()).collect();
        // 500 blocks of 64 bytes need 1 arena (or 2 if a test thread's arena was
        // nearly full), not 500 descriptors.
        assert!(open_fds() <= before + 3, "{} -> {}", before, open_fds());
        drop(blocks);
    }

    #[test]
    fn large_blocks_get_their_own_memfd() {
        let big = Block::new(LARGE_BLOCK + 1).unwrap();
        assert_eq!(big.offset, 0);
        big.u8_at(LARGE_BLOCK).store(9, Ordering::Relaxed);
        assert_eq!(big.u8_at(LARGE_BLOCK).load(Ordering::Relaxed), 9);
    }

    #[test]
    fn blocks_travel_by_descriptor_and_map_once() {
        let a = Block::new(8).unwrap();
        let b = Block::new(8).unwrap();
        a.u32_at(0).store(5, Ordering::Relaxed);
        let (bytes, fds) = reduction::encode_with_handles(&(a.clone(), b.clone())).unwrap();
        assert_eq!(fds.len(), 2);
        // Decoding in the same process finds the arena already mapped.
        let (a2, b2): (Block, Block) = reduction::decode_with_handles(&bytes, fds).unwrap();
        assert!(a2.same_as(&a) && b2.same_as(&b));
        assert_eq!(a2.u32_at(0).load(Ordering::Relaxed), 5);
    }

    #[test]
    fn a_received_arena_is_mapped_once() {
        let big = Block::new(LARGE_BLOCK * 2).unwrap();
        let (bytes, fds) = reduction::encode_with_handles(&(big.clone(), big.sub(64, 8))).unwrap();
        let (x, y): (Block, Block) = reduction::decode_with_handles(&bytes, fds).unwrap();
        assert!(Arc::ptr_eq(&x.arena, &y.arena));
        assert!(!Arc::ptr_eq(&x.arena, &big.arena));
        big.u64_at(64).store(77, Ordering::Relaxed);
        assert_eq!(y.u64_at(0).load(Ordering::Relaxed), 77);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn access_outside_the_block_panics() {
        let a = Block::new(8).unwrap();
        a.u64_at(8);
    }
}
