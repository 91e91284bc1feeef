//! Queues between processes: [`Queue`], [`SimpleQueue`] and [`JoinableQueue`]
//! (CPython: `queues.py`).
//!
//! ```
//! fn produce(q: mpcore::Queue<String>) {
//!     q.put(format!("hello from {}", mpcore::current_process().name)).unwrap();
//! }
//!
//! let q = mpcore::Queue::new()?;
//! let mut p = mpcore::Process::new(produce, (q.clone(),));
//! p.start()?;
//! assert_eq!(q.get()?, "hello from Process-1");
//! p.join()?;
//! # Ok::<(), mpcore::Error>(())
//! ```
//!
//! # How a queue works
//!
//! CPython builds a queue from an OS pipe, a reader lock, a writer lock, a
//! semaphore that counts items, and a *feeder thread* per process that pickles
//! buffered items and writes them into the pipe, so that `put` never waits for a
//! reader. mpcore keeps that shape and changes the medium:
//!
//! - **The pipe is a ring in shared memory.** Each queue owns a memfd mapped
//!   `MAP_SHARED` (256 KiB of data plus a header page), inherited by fork children
//!   and passed as a descriptor to spawned ones. Items are encoded with the crate's
//!   codec into *records* (an 8-byte length, then the bytes). A writer copies a
//!   record in and publishes it by moving the ring's head; a reader copies it out
//!   and moves the tail. Records larger than the ring stream through it in pieces,
//!   the writer and the reader each holding their side's lock.
//! - **Locks and counters are futexes in the same header page**: a writer lock and a
//!   reader lock (like CPython's `_wlock` and `_rlock`), the item count (CPython's
//!   semaphore: [`qsize`](Queue::qsize) and `maxsize`), the unfinished-task count of
//!   a [`JoinableQueue`], and sequence words to sleep on while the ring is empty,
//!   full, or the queue is at `maxsize`. Waiters sleep in the kernel; a wake-up is a
//!   system call only when someone is actually asleep.
//! - **The feeder thread runs only when needed.** `put` encodes the item and, if
//!   nothing of this process is waiting to be written and the ring has room, writes
//!   the record itself: the common case costs no thread hand-off and no system call.
//!   Otherwise (the ring is full, the item is larger than the free space, or the
//!   writer lock is busy for more than a few microseconds) the record goes to this
//!   process's buffer and a feeder thread writes it when it can, so `put` on an
//!   unbounded queue never waits for a reader, as in Python. Items one thread puts
//!   keep their order either way.
//!
//! Why this and not CPython's pipe, by measurement on this project's 2-core
//! machine: a raw pipe moving one small message per `write`/`read` pair tops out
//! near 2.8M messages/s (DESIGN.md's reference table), and a pipe queue needs a
//! `write`, two `read`s and a lock round trip per item on top of that, while the
//! ring needs no system call at all while both sides are busy. `benches/queues.rs`
//! measured 2.2M to 5.5M small items/s for one producer and one consumer (the
//! machine was shared and noisy), against 0.10M to 0.16M/s for CPython's `Queue`
//! in the same runs (`benches/python/queues.py`). A bounded queue of small items
//! could go faster still with per-slot sequence numbers instead of two locks, at
//! the price of fixed-size slots; the locks keep any item size, streaming through
//! the ring, and CPython's semantics.
//!
//! # Differences from CPython, and what survives a crash
//!
//! - `put` encodes the item in the caller, so an item that cannot be encoded is an
//!   error returned by `put` (CPython's feeder thread prints a traceback and drops
//!   it).
//! - [`empty`](Queue::empty) is `qsize() == 0`: it counts items from the moment
//!   `put` returns, like `qsize`, instead of CPython's "is the pipe readable now".
//! - Locks record the pid of their holder. A process killed while holding one (for
//!   instance a consumer terminated in the middle of `get`) does not block the
//!   others forever, which it does in CPython: a waiter notices the holder is dead
//!   within about 100 ms and takes the lock over. If the dead reader was half-way
//!   through a record, the rest of that record is skipped (the item is lost, as it
//!   would be had the reader got it). If a dead *writer* was half-way through a
//!   record (only records that do not fit in the free space are written in
//!   pieces), the stream can no longer be trusted: the queue is marked broken and
//!   every later call fails with an error that says so, instead of returning
//!   garbage.
//! - When every process that could put has died, a reader has no way to know that
//!   nobody else holds a handle: `get()` blocks, as in CPython, and
//!   [`get_timeout`](Queue::get_timeout) returns [`Error::Empty`] after its time-out.
//! - Items a child put are not lost when its target returns: before it exits the
//!   child waits until its feeder thread has written everything (unless it called
//!   [`cancel_join_thread`](Queue::cancel_join_thread)), as CPython's child does.
//!   Like CPython, the process that *created* the queue does not wait at exit: every
//!   other user is its descendant and has been joined by then.
//! - After [`close`](Queue::close), `put` and `get` in this process fail (CPython's
//!   `ValueError("Queue ... is closed")`); a forked child starts with an open queue.

use std::collections::VecDeque;
use std::fmt;
use std::hint::spin_loop;
use std::marker::PhantomData;
use std::ops::Deref;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::reduction;
use crate::sys::atfork;
use crate::sys::futex;
use crate::sys::identity;
use crate::sys::memfd::{self, SharedMapping};
use crate::util::{self, lock};

// ---------------------------------------------------------------------------
// The shared ring.

/// Bytes of record data in a queue's ring (a power of two).
const RING_CAPACITY: usize = 256 << 10;
/// The header page in front of the data.
const HEADER: usize = 4096;
const MAGIC: u32 = 0x6d70_7175; // "mpqu"
/// A record's length prefix.
const LEN_BYTES: usize = 8;

// Header layout: one cache line per party, so that producers and consumers do not
// bounce each other's lines.
const OFF_MAGIC: usize = 0; // u32
const OFF_BROKEN: usize = 4; // u32: non-zero once the stream cannot be trusted
const OFF_CAPACITY: usize = 8; // u64
const OFF_MAXSIZE: usize = 16; // u64, 0 = unbounded
// Writers' line.
const OFF_WLOCK: usize = 64; // u32 lock word
const OFF_WPARTIAL: usize = 68; // u32: 1 while a record is written in pieces
const OFF_HEAD: usize = 72; // u64: bytes ever written
const OFF_SPACE_SEQ: usize = 80; // u32: bumped when space frees and someone waits
const OFF_SPACE_WAITERS: usize = 84; // u32
// Readers' line.
const OFF_RLOCK: usize = 128; // u32 lock word
const OFF_RPARTIAL: usize = 132; // u32: 1 while a record is read in pieces
const OFF_TAIL: usize = 136; // u64: bytes ever read
const OFF_DATA_SEQ: usize = 144; // u32: bumped when data arrives and someone waits
const OFF_DATA_WAITERS: usize = 148; // u32
const OFF_REND: usize = 152; // u64: where the record being read in pieces ends
// Counts.
const OFF_PUTS: usize = 192; // u64: items ever put (counted when `put` returns)
const OFF_COUNT_SEQ: usize = 200; // u32
const OFF_COUNT_WAITERS: usize = 204; // u32
const OFF_UNFINISHED: usize = 256; // u64: JoinableQueue's unfinished tasks
const OFF_UNFINISHED_SEQ: usize = 264; // u32
const OFF_UNFINISHED_WAITERS: usize = 268; // u32
const OFF_GETS: usize = 320; // u64: items ever got; qsize = puts - gets

/// Lock words hold the holder's pid, plus this bit when someone sleeps on it.
const WAITERS: u32 = 1 << 31;
/// How often a sleeper checks that the holder it waits for is still alive.
const LIVENESS_INTERVAL: Duration = Duration::from_millis(100);
/// Spins before sleeping: a holder usually keeps a lock for a copy of a few
/// hundred bytes.
const SPINS: u32 = 200;
/// Polls of a condition (data, room, a count) before sleeping on it: cheaper than
/// a futex round trip when the other side is about to act.
const WAIT_SPINS: u32 = 200;

const BROKEN_MESSAGE: &str = "queue is broken: a process died in the middle of writing an item";

/// When a wait gives up.
#[derive(Clone, Copy, Debug)]
enum Deadline {
    /// Never: block until the condition holds.
    Never,
    /// At this instant (an instant in the past means "do not sleep").
    At(Instant),
}

impl Deadline {
    fn after(d: Duration) -> Deadline {
        Instant::now()
            .checked_add(d)
            .map_or(Deadline::Never, Deadline::At)
    }

    fn now() -> Deadline {
        Deadline::At(Instant::now())
    }

    /// Time left, `None` for no limit; `Some(ZERO)` once expired.
    fn left(self) -> Option<Duration> {
        match self {
            Deadline::Never => None,
            Deadline::At(t) => Some(t.saturating_duration_since(Instant::now())),
        }
    }

    fn expired(self) -> bool {
        self.left() == Some(Duration::ZERO)
    }

    /// The next sleep: what is left, but at most `cap`.
    fn slice(self, cap: Duration) -> Duration {
        self.left().map_or(cap, |left| left.min(cap))
    }
}

/// How a lock was acquired.
#[derive(Debug, PartialEq, Eq)]
enum Acquired {
    Clean,
    /// From a holder that died.
    TookOver,
}

/// The shared part of a queue: the mapping and typed views of its header.
#[derive(Debug)]
struct Ring {
    map: SharedMapping,
    capacity: usize,
}

impl Ring {
    fn create(maxsize: usize) -> Result<Ring> {
        atfork::register();
        let map = SharedMapping::create("mpcore-queue", HEADER + RING_CAPACITY)?;
        let ring = Ring {
            map,
            capacity: RING_CAPACITY,
        };
        ring.u64(OFF_CAPACITY)
            .store(RING_CAPACITY as u64, Ordering::Relaxed);
        ring.u64(OFF_MAXSIZE)
            .store(maxsize as u64, Ordering::Relaxed);
        ring.u32(OFF_MAGIC).store(MAGIC, Ordering::Release);
        Ok(ring)
    }

    /// Maps a ring received from another process, checking that its header is
    /// one: the capacity it states is a power of two, and the mapping has exactly
    /// the size `create` gives a ring of that capacity (the header page and the
    /// data, rounded up to whole pages), so indexing stays inside the data.
    fn from_fd(fd: OwnedFd) -> Result<Ring> {
        atfork::register();
        let map = SharedMapping::from_fd(fd)?;
        let bad = || Error::Codec("not a queue's shared memory".to_string());
        if map.len() <= HEADER || map.atomic_u32(OFF_MAGIC).load(Ordering::Acquire) != MAGIC {
            return Err(bad());
        }
        let capacity = usize::try_from(map.atomic_u64(OFF_CAPACITY).load(Ordering::Relaxed))
            .ok()
            .filter(|c| {
                c.is_power_of_two()
                    && HEADER.checked_add(*c).map(memfd::round_to_pages) == Some(map.len())
            })
            .ok_or_else(bad)?;
        Ok(Ring { map, capacity })
    }

    fn u32(&self, offset: usize) -> &AtomicU32 {
        self.map.atomic_u32(offset)
    }

    fn u64(&self, offset: usize) -> &AtomicU64 {
        self.map.atomic_u64(offset)
    }

    fn maxsize(&self) -> u64 {
        self.u64(OFF_MAXSIZE).load(Ordering::Relaxed)
    }

    fn check_broken(&self) -> Result<()> {
        if self.u32(OFF_BROKEN).load(Ordering::Acquire) != 0 {
            Err(Error::Io(std::io::Error::other(BROKEN_MESSAGE)))
        } else {
            Ok(())
        }
    }

    fn mark_broken(&self) {
        self.u32(OFF_BROKEN).store(1, Ordering::Release);
        // Wake every sleeper so that it sees the flag.
        for seq in [OFF_DATA_SEQ, OFF_SPACE_SEQ] {
            self.u32(seq).fetch_add(1, Ordering::SeqCst);
            futex::wake(self.u32(seq), u32::MAX);
        }
    }

    /// Bytes readable now. A corrupt header (a writer that broke the protocol)
    /// reads as empty rather than as a huge amount.
    fn available(&self) -> usize {
        let head = self.u64(OFF_HEAD).load(Ordering::Acquire);
        let tail = self.u64(OFF_TAIL).load(Ordering::Acquire);
        let used = head.wrapping_sub(tail);
        if used > self.capacity as u64 {
            0
        } else {
            used as usize
        }
    }

    /// Free bytes now.
    fn free(&self) -> usize {
        let head = self.u64(OFF_HEAD).load(Ordering::Acquire);
        let tail = self.u64(OFF_TAIL).load(Ordering::Acquire);
        let used = head.wrapping_sub(tail);
        if used > self.capacity as u64 {
            0
        } else {
            self.capacity - used as usize
        }
    }

    // -- locks ----------------------------------------------------------------

    /// Takes the lock at `offset` (see the module docs: the word holds the holder's
    /// pid). `None` if `deadline` passed first.
    fn lock(&self, offset: usize, deadline: Deadline) -> Option<Acquired> {
        let word = self.u32(offset);
        let me = atfork::pid() as u32 & !WAITERS;
        if word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Some(Acquired::Clean);
        }
        for _ in 0..SPINS {
            spin_loop();
            if word.load(Ordering::Relaxed) == 0
                && word
                    .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return Some(Acquired::Clean);
            }
        }
        loop {
            let v = word.load(Ordering::Relaxed);
            if v == 0 {
                // Others may sleep: keep the waiters bit so our unlock wakes them.
                if word
                    .compare_exchange(0, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Some(Acquired::Clean);
                }
                continue;
            }
            // Give up before announcing a sleeper, so that a `put` that falls back
            // to its feeder does not cost the holder a wake-up.
            if deadline.expired() {
                return None;
            }
            if v & WAITERS == 0
                && word
                    .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let woken = futex::wait(word, v | WAITERS, Some(deadline.slice(LIVENESS_INTERVAL)))
                != futex::WaitResult::TimedOut;
            if !woken {
                let holder = (v & !WAITERS) as i32;
                if holder != me as i32
                    && !identity::is_running(holder as u32)
                    && word
                        .compare_exchange(
                            v | WAITERS,
                            me | WAITERS,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    return Some(Acquired::TookOver);
                }
            }
        }
    }

    fn unlock(&self, offset: usize) {
        let word = self.u32(offset);
        if word.swap(0, Ordering::Release) & WAITERS != 0 {
            futex::wake(word, 1);
        }
    }

    /// Takes the writer lock and checks the stream.
    fn lock_writer(&self, deadline: Deadline) -> Result<Option<WriterGuard<'_>>> {
        self.check_broken()?;
        match self.lock(OFF_WLOCK, deadline) {
            None => Ok(None),
            Some(how) => {
                let guard = WriterGuard { ring: self };
                if how == Acquired::TookOver && self.u32(OFF_WPARTIAL).load(Ordering::Acquire) != 0
                {
                    self.mark_broken();
                }
                self.check_broken()?;
                Ok(Some(guard))
            }
        }
    }

    /// Takes the reader lock; finishes (skips) a record a dead reader left half-read.
    fn lock_reader(&self, deadline: Deadline) -> Result<Option<ReaderGuard<'_>>> {
        self.check_broken()?;
        match self.lock(OFF_RLOCK, deadline) {
            None => Ok(None),
            Some(how) => {
                let guard = ReaderGuard { ring: self };
                if how == Acquired::TookOver && self.u32(OFF_RPARTIAL).load(Ordering::Acquire) != 0
                {
                    guard.skip_dead_readers_record()?;
                }
                Ok(Some(guard))
            }
        }
    }

    // -- sleeping until something changes -------------------------------------

    /// Sleeps on `seq` until `ready()` holds, `deadline` passes (false), or the
    /// queue breaks. `check` runs at each liveness interval and may give up with an
    /// error (a writer that died mid-record).
    fn sleep_until(
        &self,
        seq: usize,
        waiters: usize,
        deadline: Deadline,
        ready: impl Fn() -> bool,
        check: impl Fn() -> Result<()>,
    ) -> Result<bool> {
        for _ in 0..WAIT_SPINS {
            if ready() {
                return Ok(true);
            }
            spin_loop();
        }
        let seq = self.u32(seq);
        let waiters = self.u32(waiters);
        loop {
            let observed = seq.load(Ordering::SeqCst);
            if ready() {
                return Ok(true);
            }
            self.check_broken()?;
            if deadline.expired() {
                return Ok(false);
            }
            // Register as a sleeper. The waker clears the registration when it
            // wakes everyone (see `notify`), so only the first change after we
            // fall asleep costs it a system call; a registration left behind by a
            // sleeper that timed out costs at most one spare wake-up.
            waiters.fetch_add(1, Ordering::SeqCst);
            let woken = ready()
                || futex::wait(seq, observed, Some(deadline.slice(LIVENESS_INTERVAL)))
                    != futex::WaitResult::TimedOut;
            if !woken {
                check()?;
            }
        }
    }

    /// Wakes every sleeper of `seq`, if any registered since the last wake-up.
    fn notify(&self, seq: usize, waiters: usize) {
        if self.u32(waiters).load(Ordering::SeqCst) > 0
            && self.u32(waiters).swap(0, Ordering::SeqCst) > 0
        {
            self.u32(seq).fetch_add(1, Ordering::SeqCst);
            futex::wake(self.u32(seq), u32::MAX);
        }
    }

    /// Waits until the ring holds at least one byte.
    fn wait_for_data(&self, deadline: Deadline) -> Result<bool> {
        self.sleep_until(
            OFF_DATA_SEQ,
            OFF_DATA_WAITERS,
            deadline,
            || self.available() > 0,
            || Ok(()),
        )
    }

    /// Errors if the writer lock is held by a process that died (used while a
    /// reader waits for the rest of a record).
    fn check_writer_alive(&self) -> Result<()> {
        let v = self.u32(OFF_WLOCK).load(Ordering::Acquire) & !WAITERS;
        if v != 0 && !identity::is_running(v) {
            if self.u32(OFF_WPARTIAL).load(Ordering::Acquire) != 0 {
                self.mark_broken();
            }
            self.check_broken()?;
        }
        Ok(())
    }

    // -- copying --------------------------------------------------------------

    fn copy_in(&self, pos: u64, bytes: &[u8]) {
        let at = (pos as usize) & (self.capacity - 1);
        let first = bytes.len().min(self.capacity - at);
        self.map.write(HEADER + at, &bytes[..first]);
        if first < bytes.len() {
            self.map.write(HEADER, &bytes[first..]);
        }
    }

    fn copy_out(&self, pos: u64, n: usize, out: &mut Vec<u8>) {
        let at = (pos as usize) & (self.capacity - 1);
        let first = n.min(self.capacity - at);
        self.map.read_append(HEADER + at, first, out);
        if first < n {
            self.map.read_append(HEADER, n - first, out);
        }
    }

    fn peek(&self, pos: u64, buf: &mut [u8]) {
        let at = (pos as usize) & (self.capacity - 1);
        let first = buf.len().min(self.capacity - at);
        let (a, b) = buf.split_at_mut(first);
        self.map.read(HEADER + at, a);
        if !b.is_empty() {
            self.map.read(HEADER, b);
        }
    }
}

/// Proof of holding the writer lock; releases it on drop.
struct WriterGuard<'a> {
    ring: &'a Ring,
}

impl WriterGuard<'_> {
    fn publish(&self, head: u64) {
        self.ring.u64(OFF_HEAD).store(head, Ordering::SeqCst);
        self.ring.notify(OFF_DATA_SEQ, OFF_DATA_WAITERS);
    }

    /// Writes a whole record if it fits in the free space now; false otherwise.
    fn try_write(&self, record: &[u8]) -> bool {
        let ring = self.ring;
        if record.len() + LEN_BYTES > ring.free() {
            return false;
        }
        let head = ring.u64(OFF_HEAD).load(Ordering::Relaxed);
        ring.copy_in(head, &(record.len() as u64).to_le_bytes());
        ring.copy_in(head + LEN_BYTES as u64, record);
        self.publish(head + (LEN_BYTES + record.len()) as u64);
        true
    }

    /// Writes a record of any size, waiting for readers to make room as often as
    /// needed (forever if nobody reads).
    fn write(&self, record: &[u8]) -> Result<()> {
        if self.try_write(record) {
            return Ok(());
        }
        let ring = self.ring;
        ring.u32(OFF_WPARTIAL).store(1, Ordering::SeqCst);
        let len = (record.len() as u64).to_le_bytes();
        for part in [&len[..], record] {
            let mut done = 0;
            while done < part.len() {
                ring.sleep_until(
                    OFF_SPACE_SEQ,
                    OFF_SPACE_WAITERS,
                    Deadline::Never,
                    || ring.free() > 0,
                    || Ok(()),
                )?;
                let n = ring.free().min(part.len() - done);
                let head = ring.u64(OFF_HEAD).load(Ordering::Relaxed);
                ring.copy_in(head, &part[done..done + n]);
                self.publish(head + n as u64);
                done += n;
            }
        }
        ring.u32(OFF_WPARTIAL).store(0, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        self.ring.unlock(OFF_WLOCK);
    }
}

/// Proof of holding the reader lock; releases it on drop.
struct ReaderGuard<'a> {
    ring: &'a Ring,
}

impl ReaderGuard<'_> {
    fn advance(&self, tail: u64) {
        self.ring.u64(OFF_TAIL).store(tail, Ordering::SeqCst);
        self.ring.notify(OFF_SPACE_SEQ, OFF_SPACE_WAITERS);
    }

    /// Waits (holding the lock) for more bytes of a record a writer is streaming.
    fn wait_more(&self) -> Result<()> {
        let ring = self.ring;
        ring.sleep_until(
            OFF_DATA_SEQ,
            OFF_DATA_WAITERS,
            Deadline::Never,
            || ring.available() > 0,
            || ring.check_writer_alive(),
        )?;
        Ok(())
    }

    /// Reads the next record into a new buffer. The caller saw data in the ring.
    fn read(&self) -> Result<Vec<u8>> {
        let ring = self.ring;
        // The length prefix: whole records are published at once, so it is
        // normally there; a streamed one may arrive in pieces.
        while ring.available() < LEN_BYTES {
            self.wait_more()?;
        }
        let tail = ring.u64(OFF_TAIL).load(Ordering::Relaxed);
        let mut len = [0u8; LEN_BYTES];
        ring.peek(tail, &mut len);
        let len = u64::from_le_bytes(len);
        if len > reduction::MAX_DECODE_LEN as u64 {
            ring.mark_broken();
            return Err(Error::Codec(format!("queue record of {len} bytes")));
        }
        let len = len as usize;
        let start = tail + LEN_BYTES as u64;
        if ring.available() >= LEN_BYTES + len {
            let mut out = Vec::with_capacity(len);
            ring.copy_out(start, len, &mut out);
            self.advance(start + len as u64);
            return Ok(out);
        }
        // A record larger than what is there: read it as it streams in, recording
        // where it ends so that a reader taking over from us can skip the rest.
        ring.u64(OFF_REND)
            .store(start + len as u64, Ordering::SeqCst);
        ring.u32(OFF_RPARTIAL).store(1, Ordering::SeqCst);
        self.advance(start);
        let mut out = Vec::with_capacity(len.min(ring.capacity));
        let mut pos = start;
        let mut left = len;
        while left > 0 {
            let n = ring.available().min(left);
            if n == 0 {
                self.wait_more()?;
                continue;
            }
            ring.copy_out(pos, n, &mut out);
            pos += n as u64;
            left -= n;
            self.advance(pos);
        }
        ring.u32(OFF_RPARTIAL).store(0, Ordering::SeqCst);
        Ok(out)
    }

    /// A reader died half-way through a record: consume the rest of it. The item
    /// counted in `qsize` is given up too.
    fn skip_dead_readers_record(&self) -> Result<()> {
        let ring = self.ring;
        let end = ring.u64(OFF_REND).load(Ordering::SeqCst);
        loop {
            let tail = ring.u64(OFF_TAIL).load(Ordering::Relaxed);
            let left = end.wrapping_sub(tail);
            if left == 0 || left > reduction::MAX_DECODE_LEN as u64 {
                break;
            }
            let n = (ring.available() as u64).min(left);
            if n == 0 {
                self.wait_more()?;
                continue;
            }
            self.advance(tail + n);
        }
        ring.u32(OFF_RPARTIAL).store(0, Ordering::SeqCst);
        release_count(ring);
        Ok(())
    }
}

impl Drop for ReaderGuard<'_> {
    fn drop(&mut self) {
        self.ring.unlock(OFF_RLOCK);
    }
}

/// The number of items put and not yet got. Puts and gets are counted on separate
/// cache lines, so that a producer and a consumer do not fight over one; a count
/// that another process corrupted reads as 0, never as a huge number.
fn count(ring: &Ring) -> u64 {
    let gets = ring.u64(OFF_GETS).load(Ordering::SeqCst);
    let puts = ring.u64(OFF_PUTS).load(Ordering::SeqCst);
    let n = puts.wrapping_sub(gets);
    if n > u64::MAX / 2 { 0 } else { n }
}

/// One item less in the queue: CPython's `_sem.release()` after a `get`.
fn release_count(ring: &Ring) {
    ring.u64(OFF_GETS).fetch_add(1, Ordering::SeqCst);
    if ring.maxsize() > 0 {
        ring.notify(OFF_COUNT_SEQ, OFF_COUNT_WAITERS);
    }
}

/// One item more: CPython's `_sem.acquire(block, timeout)` before a `put`. Fails
/// with [`Error::Full`] when a bounded queue stays full until `deadline`.
fn acquire_count(ring: &Ring, deadline: Deadline) -> Result<()> {
    let puts = ring.u64(OFF_PUTS);
    let max = ring.maxsize();
    if max == 0 {
        puts.fetch_add(1, Ordering::SeqCst);
        return Ok(());
    }
    // Gets only grow, so a slot seen free stays free until a put takes it.
    let take = || {
        let gets = ring.u64(OFF_GETS).load(Ordering::SeqCst);
        puts.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
            let n = p.wrapping_sub(gets);
            (n > u64::MAX / 2 || n < max).then_some(p + 1)
        })
        .is_ok()
    };
    if ring.sleep_until(OFF_COUNT_SEQ, OFF_COUNT_WAITERS, deadline, take, || Ok(()))? {
        Ok(())
    } else {
        Err(Error::Full)
    }
}

/// Gets one record: waits for data without holding the reader lock, then takes
/// the lock and reads. [`Error::Empty`] if `deadline` passes first.
fn get_record(ring: &Ring, deadline: Deadline) -> Result<Vec<u8>> {
    loop {
        if !ring.wait_for_data(deadline)? {
            return Err(Error::Empty);
        }
        // Spin a little even for `get_nowait`: the lock is held for a copy.
        let lock_deadline = match deadline {
            Deadline::At(t) if t <= Instant::now() => Deadline::now(),
            other => other,
        };
        let Some(guard) = ring.lock_reader(lock_deadline)? else {
            return Err(Error::Empty);
        };
        if ring.available() > 0 {
            let record = guard.read()?;
            drop(guard);
            return Ok(record);
        }
        drop(guard);
        if deadline.expired() {
            return Err(Error::Empty);
        }
    }
}

// ---------------------------------------------------------------------------
// State kept per process: the feeder thread and its buffer.

/// A value per process, for state attached to an object that forked children
/// share: each fork generation gets its own (see [`atfork`]), created on first use,
/// so a child never touches the parent's copy (whose locks another thread of the
/// parent may have held at the moment of the fork).
struct PerProcess<T> {
    generation: u64,
    value: T,
    next: OnceLock<Box<PerProcess<T>>>,
}

impl<T> PerProcess<T> {
    fn new(value: T) -> PerProcess<T> {
        PerProcess {
            generation: atfork::generation(),
            value,
            next: OnceLock::new(),
        }
    }

    /// This process's value, made by `make` on first use.
    fn get(&self, make: impl Fn() -> T) -> &T {
        let generation = atfork::generation();
        let mut node = self;
        while node.generation != generation {
            node = node.next.get_or_init(|| {
                Box::new(PerProcess {
                    generation,
                    value: make(),
                    next: OnceLock::new(),
                })
            });
        }
        &node.value
    }

    /// This process's value if it has one.
    fn existing(&self) -> Option<&T> {
        let generation = atfork::generation();
        let mut node = self;
        while node.generation != generation {
            node = node.next.get()?;
        }
        Some(&node.value)
    }
}

/// What one process keeps for one queue.
#[derive(Default)]
struct Local {
    feed: Mutex<Feed>,
    /// Signals both "an item was buffered" (to the feeder) and "the buffer is
    /// flushed" (to `join_thread` and the exit hook).
    changed: Condvar,
    closed: AtomicBool,
    join_cancelled: AtomicBool,
}

#[derive(Default)]
struct Feed {
    buffer: VecDeque<Vec<u8>>,
    /// The feeder took records out of `buffer` and is writing them.
    writing: bool,
    /// A feeder thread is running.
    running: bool,
    /// The feeder should exit once the buffer is flushed.
    stop: bool,
}

impl Local {
    fn stop_feeder(&self) {
        lock(&self.feed).stop = true;
        self.changed.notify_all();
    }

    /// Waits until everything buffered has been written.
    fn wait_flushed(&self) {
        let mut feed = lock(&self.feed);
        while feed.running && (!feed.buffer.is_empty() || feed.writing) {
            feed = self
                .changed
                .wait(feed)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// Feeders running in this process, flushed at exit by [`flush_at_exit`].
struct Registered {
    local: Arc<Local>,
    /// The pid that created the queue: that process does not wait at exit.
    opid: i32,
}

fn feeders() -> &'static Mutex<Vec<Registered>> {
    static FEEDERS: OnceLock<PerProcess<Mutex<Vec<Registered>>>> = OnceLock::new();
    FEEDERS
        .get_or_init(|| PerProcess::new(Mutex::new(Vec::new())))
        .get(|| Mutex::new(Vec::new()))
}

/// The exit hook: waits for the feeders of queues this process did not create,
/// unless their join was cancelled (CPython's `Queue._finalize_join`).
fn flush_at_exit() {
    let me = atfork::pid();
    let registered: Vec<Arc<Local>> = lock(feeders())
        .iter()
        .filter(|r| r.opid != me)
        .map(|r| Arc::clone(&r.local))
        .collect();
    for local in registered {
        if !local.join_cancelled.load(Ordering::SeqCst) {
            local.stop_feeder();
            local.wait_flushed();
        }
    }
}

/// The feeder thread: writes buffered records into the ring, in order, until told
/// to stop and the buffer is empty (CPython's `Queue._feed`).
fn feeder_thread(ring: Arc<Ring>, local: Arc<Local>) {
    loop {
        let batch: Vec<Vec<u8>> = {
            let mut feed = lock(&local.feed);
            while feed.buffer.is_empty() {
                if feed.stop {
                    feed.running = false;
                    drop(feed);
                    local.changed.notify_all();
                    lock(feeders()).retain(|r| !Arc::ptr_eq(&r.local, &local));
                    return;
                }
                feed = local
                    .changed
                    .wait(feed)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            feed.writing = true;
            feed.buffer.drain(..).collect()
        };
        let written = ring.lock_writer(Deadline::Never).and_then(|guard| {
            let guard = guard.expect("no deadline");
            batch.iter().try_for_each(|record| guard.write(record))
        });
        if let Err(err) = written {
            // Like CPython's feeder: report and keep serving (the items are lost).
            eprintln!("mpcore: queue feeder thread: {err}");
        }
        lock(&local.feed).writing = false;
        local.changed.notify_all();
    }
}

// ---------------------------------------------------------------------------
// The queue core shared by Queue and JoinableQueue.

struct Core {
    ring: Arc<Ring>,
    /// The pid of the process that created the queue (CPython's `_opid`).
    opid: i32,
    /// Whether `put` adds an unfinished task (a [`JoinableQueue`]).
    joinable: bool,
    locals: PerProcess<Arc<Local>>,
}

impl Core {
    fn new(maxsize: usize, joinable: bool) -> Result<Core> {
        let ring = Ring::create(maxsize)?;
        Ok(Core::with_ring(ring, atfork::pid(), joinable))
    }

    fn with_ring(ring: Ring, opid: i32, joinable: bool) -> Core {
        Core {
            ring: Arc::new(ring),
            opid,
            joinable,
            locals: PerProcess::new(Arc::default()),
        }
    }

    fn local(&self) -> &Arc<Local> {
        self.locals.get(Arc::default)
    }

    fn check_open(&self) -> Result<&Arc<Local>> {
        let local = self.local();
        if local.closed.load(Ordering::Relaxed) {
            Err(Error::invalid("Queue is closed"))
        } else {
            Ok(local)
        }
    }

    /// Writes `record` now if nothing of ours is pending and the ring has room;
    /// otherwise buffers it for the feeder thread.
    fn put_record(&self, local: &Arc<Local>, record: Vec<u8>) -> Result<()> {
        let ring = &self.ring;
        let mut feed = lock(&local.feed);
        if feed.buffer.is_empty()
            && !feed.writing
            && let Some(guard) = ring.lock_writer(Deadline::now())?
            && guard.try_write(&record)
        {
            return Ok(());
        }
        feed.buffer.push_back(record);
        if !feed.running {
            feed.running = true;
            feed.stop = false;
            static HOOK: std::sync::Once = std::sync::Once::new();
            HOOK.call_once(|| util::register_exit_hook(flush_at_exit));
            lock(feeders()).push(Registered {
                local: Arc::clone(local),
                opid: self.opid,
            });
            let (ring, local) = (Arc::clone(ring), Arc::clone(local));
            let spawned = std::thread::Builder::new()
                .name("QueueFeederThread".to_string())
                .spawn(move || feeder_thread(ring, local));
            if let Err(err) = spawned {
                feed.running = false;
                feed.buffer.pop_back();
                return Err(err.into());
            }
        }
        drop(feed);
        local.changed.notify_all();
        Ok(())
    }

    fn put(&self, record: Vec<u8>, deadline: Deadline) -> Result<()> {
        let joinable = self.joinable;
        let local = self.check_open()?;
        self.ring.check_broken()?;
        acquire_count(&self.ring, deadline)?;
        if joinable {
            self.ring.u64(OFF_UNFINISHED).fetch_add(1, Ordering::SeqCst);
        }
        self.put_record(local, record).inspect_err(|_| {
            // Not queued after all: take back what was counted.
            release_count(&self.ring);
            if joinable {
                self.ring.u64(OFF_UNFINISHED).fetch_sub(1, Ordering::SeqCst);
            }
        })
    }

    fn get(&self, deadline: Deadline) -> Result<Vec<u8>> {
        self.check_open()?;
        let record = get_record(&self.ring, deadline)?;
        release_count(&self.ring);
        Ok(record)
    }

    fn qsize(&self) -> usize {
        count(&self.ring) as usize
    }

    fn full(&self) -> bool {
        let max = self.ring.maxsize();
        max > 0 && count(&self.ring) >= max
    }

    fn close(&self) {
        let local = self.local();
        local.closed.store(true, Ordering::SeqCst);
        local.stop_feeder();
    }

    fn join_thread(&self) {
        self.local().wait_flushed();
    }

    fn cancel_join_thread(&self) {
        self.local().join_cancelled.store(true, Ordering::SeqCst);
    }

    fn name(&self) -> &'static str {
        if self.joinable {
            "JoinableQueue"
        } else {
            "Queue"
        }
    }

    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&FdRef(self.name(), self.ring.map.fd()))?;
        t.serialize_element(&self.opid)?;
        t.end()
    }

    fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
        joinable: bool,
    ) -> std::result::Result<Core, D::Error> {
        let (fd, opid) = <(FdOwned, i32)>::deserialize(d)?;
        let ring = Ring::from_fd(fd.0).map_err(D::Error::custom)?;
        Ok(Core::with_ring(ring, opid, joinable))
    }
}

impl Drop for Core {
    /// The last handle of this process is gone: the feeder exits once it has
    /// flushed (CPython's `_finalize_close`); nobody waits for it here.
    fn drop(&mut self) {
        if let Some(local) = self.locals.existing() {
            local.stop_feeder();
        }
    }
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(self.name())
            .field("qsize", &self.qsize())
            .field("maxsize", &self.ring.maxsize())
            .finish()
    }
}

/// A borrowed descriptor that serializes through [`reduction::serialize_fd`].
struct FdRef<'a>(&'a str, BorrowedFd<'a>);

impl Serialize for FdRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        reduction::serialize_fd(self.0, self.1, s)
    }
}

/// An owned descriptor that deserializes through [`reduction::deserialize_fd`].
struct FdOwned(OwnedFd);

impl<'de> Deserialize<'de> for FdOwned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        reduction::deserialize_fd(d).map(FdOwned)
    }
}

fn encode_item<T: Serialize>(item: &T) -> Result<Vec<u8>> {
    reduction::encode(item)
}

// ---------------------------------------------------------------------------
// Queue.

/// A first-in first-out queue shared by processes (Python: `multiprocessing.Queue`).
///
/// Items are any serde type; they are encoded when put and decoded when got, so a
/// value put in one process arrives as a copy in another. A clone is the same queue
/// (another handle), and a queue passes to a child as an argument of its target.
/// See the [module docs](self) for how it works and how it differs from CPython.
///
/// ```
/// use std::time::Duration;
/// use mpcore::{Error, Queue};
///
/// let q = Queue::with_maxsize(2)?;
/// q.put(1)?;
/// q.put(2)?;
/// assert!(q.full());
/// assert!(matches!(q.put_nowait(3), Err(Error::Full)));
/// assert_eq!(q.qsize(), 2);
/// assert_eq!(q.get()?, 1);
/// assert_eq!(q.get_timeout(Duration::from_secs(1))?, 2);
/// assert!(matches!(q.get_nowait(), Err(Error::Empty)));
/// # Ok::<(), mpcore::Error>(())
/// ```
pub struct Queue<T> {
    core: Arc<Core>,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            core: Arc::clone(&self.core),
            _items: PhantomData,
        }
    }
}

impl<T> Queue<T> {
    fn from_core(core: Core) -> Self {
        Queue {
            core: Arc::new(core),
            _items: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Queue<T> {
    /// An unbounded queue (Python: `Queue()`).
    pub fn new() -> Result<Self> {
        Queue::with_maxsize(0)
    }

    /// A queue that holds at most `maxsize` items; 0 means unbounded (Python:
    /// `Queue(maxsize)`).
    pub fn with_maxsize(maxsize: usize) -> Result<Self> {
        Ok(Queue::from_core(Core::new(maxsize, false)?))
    }

    /// Puts `item` (Python: `put(item)`). On an unbounded queue this never waits for
    /// a reader; on a full bounded one it waits for room. Errors after
    /// [`close`](Queue::close).
    pub fn put(&self, item: T) -> Result<()> {
        self.core.put(encode_item(&item)?, Deadline::Never)
    }

    /// Puts `item`, waiting at most `timeout` for room (Python: `put(item,
    /// timeout=t)`): [`Error::Full`] if there is none by then.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        self.core.put(encode_item(&item)?, Deadline::after(timeout))
    }

    /// Puts `item` only if there is room now (Python: `put_nowait(item)`):
    /// [`Error::Full`] otherwise.
    pub fn put_nowait(&self, item: T) -> Result<()> {
        self.core.put(encode_item(&item)?, Deadline::now())
    }

    /// Removes and returns the oldest item, waiting as long as it takes (Python:
    /// `get()`).
    pub fn get(&self) -> Result<T> {
        reduction::decode(&self.core.get(Deadline::Never)?)
    }

    /// Like [`get`](Queue::get), but [`Error::Empty`] if no item comes within
    /// `timeout` (Python: `get(timeout=t)`).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        reduction::decode(&self.core.get(Deadline::after(timeout))?)
    }

    /// Returns an item only if one is there now (Python: `get_nowait()`):
    /// [`Error::Empty`] otherwise.
    pub fn get_nowait(&self) -> Result<T> {
        reduction::decode(&self.core.get(Deadline::now())?)
    }

    /// The number of items put and not yet got, by any process, counted from the
    /// moment `put` returns (Python: `qsize()`).
    pub fn qsize(&self) -> usize {
        self.core.qsize()
    }

    /// Whether [`qsize`](Queue::qsize) is 0 (Python: `empty()`; see the module docs).
    pub fn empty(&self) -> bool {
        self.core.qsize() == 0
    }

    /// Whether a bounded queue holds `maxsize` items (Python: `full()`).
    pub fn full(&self) -> bool {
        self.core.full()
    }

    /// Says this process will put and get no more (Python: `close()`): later
    /// `put`/`get` calls here fail, and the feeder thread exits once it has written
    /// what is buffered. Other processes are not affected.
    pub fn close(&self) {
        self.core.close();
    }

    /// Waits until this process's feeder thread has written everything buffered
    /// (Python: `join_thread()`, usually after [`close`](Queue::close)).
    pub fn join_thread(&self) {
        self.core.join_thread();
    }

    /// Lets this process exit without waiting for buffered items to be written;
    /// they may be lost (Python: `cancel_join_thread()`).
    pub fn cancel_join_thread(&self) {
        self.core.cancel_join_thread();
    }
}

/// A queue passes to a child as its shared memory's descriptor (Python:
/// `Queue.__getstate__`, which refuses outside a child's start as this does).
impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.core.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Queue::from_core(Core::deserialize(d, false)?))
    }
}

// ---------------------------------------------------------------------------
// JoinableQueue.

/// A [`Queue`] that also counts unfinished tasks (Python:
/// `multiprocessing.JoinableQueue`): each `put` adds one, each
/// [`task_done`](JoinableQueue::task_done) removes one, and
/// [`join`](JoinableQueue::join) waits until none are left.
///
/// ```
/// let q = mpcore::JoinableQueue::new()?;
/// q.put("task".to_string())?;
/// assert_eq!(q.get()?, "task");
/// q.task_done()?;
/// q.join()?; // returns at once: every task is done
/// assert!(q.task_done().is_err()); // "task_done() called too many times"
/// # Ok::<(), mpcore::Error>(())
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.queue.fmt(f)
    }
}

/// Every [`Queue`] method works on a `JoinableQueue` (Python: `JoinableQueue` is a
/// subclass of `Queue`); its puts, from any handle, add an unfinished task.
impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;

    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> JoinableQueue<T> {
    /// An unbounded joinable queue (Python: `JoinableQueue()`).
    pub fn new() -> Result<Self> {
        JoinableQueue::with_maxsize(0)
    }

    /// A joinable queue of at most `maxsize` items; 0 means unbounded.
    pub fn with_maxsize(maxsize: usize) -> Result<Self> {
        Ok(JoinableQueue {
            queue: Queue::from_core(Core::new(maxsize, true)?),
        })
    }

    /// Marks one task got from the queue as done (Python: `task_done()`). Called
    /// more times than items were put, it fails with
    /// "task_done() called too many times".
    pub fn task_done(&self) -> Result<()> {
        let ring = &self.queue.core.ring;
        let unfinished = ring.u64(OFF_UNFINISHED);
        match unfinished.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
            Err(_) => Err(Error::invalid("task_done() called too many times")),
            Ok(1) => {
                ring.notify(OFF_UNFINISHED_SEQ, OFF_UNFINISHED_WAITERS);
                Ok(())
            }
            Ok(_) => Ok(()),
        }
    }

    /// Waits until every item put has been marked done with
    /// [`task_done`](JoinableQueue::task_done) (Python: `join()`).
    pub fn join(&self) -> Result<()> {
        let ring = &self.queue.core.ring;
        let unfinished = ring.u64(OFF_UNFINISHED);
        ring.sleep_until(
            OFF_UNFINISHED_SEQ,
            OFF_UNFINISHED_WAITERS,
            Deadline::Never,
            || unfinished.load(Ordering::SeqCst) == 0,
            || Ok(()),
        )?;
        Ok(())
    }
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.queue.core.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(JoinableQueue {
            queue: Queue::from_core(Core::deserialize(d, true)?),
        })
    }
}

// ---------------------------------------------------------------------------
// SimpleQueue.

struct SimpleCore {
    ring: Ring,
    closed: AtomicBool,
}

/// A queue without a feeder thread or counters (Python:
/// `multiprocessing.SimpleQueue`): `put` writes the item before it returns, waiting
/// for room if the queue's 256 KiB of shared memory is full.
///
/// ```
/// let q = mpcore::SimpleQueue::new()?;
/// assert!(q.empty());
/// q.put(vec![1, 2, 3])?;
/// assert!(!q.empty()); // put is synchronous
/// assert_eq!(q.get()?, [1, 2, 3]);
/// # Ok::<(), mpcore::Error>(())
/// ```
pub struct SimpleQueue<T> {
    core: Arc<SimpleCore>,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue {
            core: Arc::clone(&self.core),
            _items: PhantomData,
        }
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueue")
            .field("empty", &(self.core.ring.available() == 0))
            .field("closed", &self.core.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> SimpleQueue<T> {
    /// A new, empty queue (Python: `SimpleQueue()`).
    pub fn new() -> Result<Self> {
        Ok(SimpleQueue {
            core: Arc::new(SimpleCore {
                ring: Ring::create(0)?,
                closed: AtomicBool::new(false),
            }),
            _items: PhantomData,
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.core.closed.load(Ordering::Relaxed) {
            Err(Error::Io(std::io::Error::other("SimpleQueue is closed")))
        } else {
            Ok(())
        }
    }

    /// Puts `item`, written before this returns (Python: `put(item)`). An item that
    /// cannot be encoded is an error here, in the caller.
    pub fn put(&self, item: T) -> Result<()> {
        self.check_open()?;
        let record = encode_item(&item)?;
        let guard = self
            .core
            .ring
            .lock_writer(Deadline::Never)?
            .expect("no deadline");
        guard.write(&record)
    }

    /// Removes and returns the oldest item, waiting as long as it takes (Python:
    /// `get()`).
    pub fn get(&self) -> Result<T> {
        self.check_open()?;
        reduction::decode(&get_record(&self.core.ring, Deadline::Never)?)
    }

    /// Whether no item is waiting (Python: `empty()`). After
    /// [`close`](SimpleQueue::close) this still reports the shared state (CPython
    /// raises `OSError` there).
    pub fn empty(&self) -> bool {
        self.core.ring.available() == 0
    }

    /// Says this process will put and get no more (Python: `close()`); later
    /// `put`/`get` calls here fail. Closing twice is fine.
    pub fn close(&self) {
        self.core.closed.store(true, Ordering::Relaxed);
    }
}

impl<T> Serialize for SimpleQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        FdRef("SimpleQueue", self.core.ring.map.fd()).serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let fd = FdOwned::deserialize(d)?;
        Ok(SimpleQueue {
            core: Arc::new(SimpleCore {
                ring: Ring::from_fd(fd.0).map_err(D::Error::custom)?,
                closed: AtomicBool::new(false),
            }),
            _items: PhantomData,
        })
    }
}

impl crate::context::Context {
    /// An unbounded [`Queue`] (Python: `ctx.Queue()`).
    pub fn queue<T: Serialize + DeserializeOwned + Send + 'static>(&self) -> Result<Queue<T>> {
        Queue::new()
    }

    /// A [`Queue`] of at most `maxsize` items; 0 means unbounded (Python:
    /// `ctx.Queue(maxsize)`).
    pub fn queue_with_maxsize<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
        maxsize: usize,
    ) -> Result<Queue<T>> {
        Queue::with_maxsize(maxsize)
    }

    /// A new [`SimpleQueue`] (Python: `ctx.SimpleQueue()`).
    pub fn simple_queue<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
    ) -> Result<SimpleQueue<T>> {
        SimpleQueue::new()
    }

    /// An unbounded [`JoinableQueue`] (Python: `ctx.JoinableQueue()`).
    pub fn joinable_queue<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
    ) -> Result<JoinableQueue<T>> {
        JoinableQueue::new()
    }

    /// A [`JoinableQueue`] of at most `maxsize` items; 0 means unbounded (Python:
    /// `ctx.JoinableQueue(maxsize)`).
    pub fn joinable_queue_with_maxsize<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
        maxsize: usize,
    ) -> Result<JoinableQueue<T>> {
        JoinableQueue::with_maxsize(maxsize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_wrap_around_the_ring() {
        let ring = Ring::create(0).unwrap();
        let record: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        for _ in 0..20 {
            let w = ring.lock_writer(Deadline::Never).unwrap().unwrap();
            assert!(w.try_write(&record));
            drop(w);
            let r = ring.lock_reader(Deadline::Never).unwrap().unwrap();
            assert_eq!(r.read().unwrap(), record);
        }
    }

    #[test]
    fn a_record_larger_than_the_ring_streams_through_it() {
        let ring = Arc::new(Ring::create(0).unwrap());
        let record: Vec<u8> = (0..(3 * RING_CAPACITY + 12345) as u32)
            .map(|i| (i % 253) as u8)
            .collect();
        let expected = record.clone();
        let writer_ring = Arc::clone(&ring);
        let writer = std::thread::spawn(move || {
            let w = writer_ring.lock_writer(Deadline::Never).unwrap().unwrap();
            w.write(&record).unwrap();
        });
        let got = get_record(&ring, Deadline::Never).unwrap();
        writer.join().unwrap();
        assert!(got == expected);
        assert_eq!(ring.u32(OFF_WPARTIAL).load(Ordering::SeqCst), 0);
        assert_eq!(ring.u32(OFF_RPARTIAL).load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_lock_held_by_a_dead_process_is_taken_over() {
        fn take_and_die(queue: Queue<u8>) {
            // Take the reader lock and vanish without releasing it.
            let guard = queue
                .core
                .ring
                .lock_reader(Deadline::Never)
                .unwrap()
                .unwrap();
            std::mem::forget(guard);
            crate::sys::process::exit_immediately(0);
        }
        let q = Queue::<u8>::new().unwrap();
        let mut p = crate::Process::new(take_and_die, (q.clone(),));
        p.start().unwrap();
        p.join().unwrap();
        assert_ne!(
            q.core.ring.u32(OFF_RLOCK).load(Ordering::SeqCst),
            0,
            "still held"
        );
        q.put(5).unwrap();
        let start = Instant::now();
        assert_eq!(q.get_timeout(Duration::from_secs(30)).unwrap(), 5);
        assert!(start.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn a_writer_dying_mid_record_breaks_the_queue_instead_of_hanging() {
        fn write_half_and_die(queue: Queue<Vec<u8>>) {
            let ring = &queue.core.ring;
            let guard = ring.lock_writer(Deadline::Never).unwrap().unwrap();
            ring.u32(OFF_WPARTIAL).store(1, Ordering::SeqCst);
            let head = ring.u64(OFF_HEAD).load(Ordering::Relaxed);
            ring.copy_in(head, &1000u64.to_le_bytes());
            guard.publish(head + 8);
            std::mem::forget(guard);
            crate::sys::process::exit_immediately(0);
        }
        let q = Queue::<Vec<u8>>::new().unwrap();
        let mut p = crate::Process::new(write_half_and_die, (q.clone(),));
        p.start().unwrap();
        p.join().unwrap();
        q.core.ring.u64(OFF_PUTS).fetch_add(1, Ordering::SeqCst);
        let err = q.get_timeout(Duration::from_secs(30)).unwrap_err();
        assert!(err.to_string().contains("broken"), "{err}");
        assert!(q.put(vec![1]).unwrap_err().to_string().contains("broken"));
    }

    #[test]
    fn a_reader_dying_mid_record_loses_that_item_only() {
        fn read_half_and_die(queue: Queue<Vec<u8>>) {
            // Start reading the first (large) record as `ReaderGuard::read` does,
            // consume part of it, and vanish holding the reader lock.
            let ring = &queue.core.ring;
            let guard = ring.lock_reader(Deadline::Never).unwrap().unwrap();
            let tail = ring.u64(OFF_TAIL).load(Ordering::SeqCst);
            let mut len = [0u8; LEN_BYTES];
            ring.peek(tail, &mut len);
            let start = tail + LEN_BYTES as u64;
            ring.u64(OFF_REND)
                .store(start + u64::from_le_bytes(len), Ordering::SeqCst);
            ring.u32(OFF_RPARTIAL).store(1, Ordering::SeqCst);
            guard.advance(start + 1000);
            std::mem::forget(guard);
            crate::sys::process::exit_immediately(0);
        }
        let q = Queue::<Vec<u8>>::new().unwrap();
        q.put(vec![1u8; 100_000]).unwrap();
        q.put(vec![2u8; 10]).unwrap();
        let mut p = crate::Process::new(read_half_and_die, (q.clone(),));
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(
            q.get_timeout(Duration::from_secs(30)).unwrap(),
            vec![2u8; 10]
        );
        assert_eq!(q.qsize(), 0, "the lost item is no longer counted");
        q.put(vec![3u8; 5]).unwrap();
        assert_eq!(q.get_nowait().unwrap(), vec![3u8; 5]);
    }

    #[test]
    fn per_process_state_is_fresh_in_a_forked_child() {
        fn child(q: Queue<u32>) {
            // The parent closed its handle; the child's is open (CPython's
            // _after_fork) and has no feeder of the parent's.
            q.put(7).unwrap();
        }
        let q = Queue::<u32>::new().unwrap();
        let reader = q.clone();
        q.close();
        assert!(q.put(1).is_err());
        let mut p = crate::Process::new(child, (q,));
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(p.exitcode(), Some(0));
        // `reader` shares the closed local state of this process: closing is per
        // process, like CPython's (one Queue object per process).
        assert!(reader.get_nowait().is_err());
    }

    #[test]
    fn a_forged_mapping_is_refused() {
        let map = SharedMapping::create("mpcore-test", HEADER + RING_CAPACITY).unwrap();
        let fd = map.fd().try_clone_to_owned().unwrap();
        assert!(matches!(Ring::from_fd(fd), Err(Error::Codec(_))));
        let small = SharedMapping::create("mpcore-test", 100).unwrap();
        let fd = small.fd().try_clone_to_owned().unwrap();
        assert!(Ring::from_fd(fd).is_err());
        // A real ring whose header states a capacity its size does not have.
        let ring = Ring::create(0).unwrap();
        let fd = || ring.map.fd().try_clone_to_owned().unwrap();
        assert_eq!(Ring::from_fd(fd()).unwrap().capacity, RING_CAPACITY);
        for forged in [RING_CAPACITY / 2, RING_CAPACITY * 2, RING_CAPACITY - 1] {
            ring.u64(OFF_CAPACITY)
                .store(forged as u64, Ordering::Relaxed);
            assert!(matches!(Ring::from_fd(fd()), Err(Error::Codec(_))));
        }
    }
}
