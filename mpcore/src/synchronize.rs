//! Locks, semaphores, conditions, events and barriers shared between processes
//! (CPython: `synchronize.py`).
//!
//! Every object lives in a [`heap`](crate::heap) block: a few atomic words in memfd
//! pages that every process using the object maps. Clones of a handle are the same
//! object; a handle passed to a child (as an argument of its target) is the same
//! object in the child. Blocking uses shared futexes
//! ([`sys::futex`](crate::sys::futex)): a waiter sleeps in the kernel until another
//! process or thread changes the word it waits on. Nothing spins and nothing sleeps
//! in a polling loop; the one periodic wake-up is the dead-holder check below.
//!
//! # Python's semantics, and where mpcore differs
//!
//! - [`Lock`] has no owner, as in Python: any thread or process may release it.
//!   Releasing it when it is not held is an error, "semaphore or lock released too
//!   many times".
//! - [`RLock`] belongs to one thread of one process (pid and thread). Only that
//!   thread may release it; anyone else gets "attempt to release recursive lock not
//!   owned by thread", and the owner keeps the lock.
//! - [`Semaphore`] may be released beyond its initial value; [`BoundedSemaphore`]
//!   may not ("semaphore or lock released too many times").
//! - [`Condition::wait`] and [`Condition::notify`] need the condition's lock held by
//!   the calling thread ("must acquire() condition before using wait()", "lock is not
//!   owned"). `notify(n)` wakes exactly `n` of the waiters (or all there are), oldest
//!   first, like `threading.Condition`.
//! - [`Barrier`] is `threading.Barrier` (same states, same `reset`/`abort` rules),
//!   across threads and processes. A time-out breaks it for every party.
//! - Timeouts are measured on the monotonic clock.
//!
//! # A holder that dies does not hang the others
//!
//! In CPython, a process killed while it holds a `Lock` leaves the lock held forever
//! and every other process that wants it hangs. In mpcore the lock word records the
//! holder as its pid *and* the low 32 bits of its start time, changed together in one
//! 64-bit compare-and-swap. A waiter that has slept a while (10 ms, then doubling up
//! to 200 ms) checks in `/proc` whether that process still exists, is not a zombie,
//! and has the same start time (so a recycled pid is not mistaken for the holder). If
//! the holder is dead, the waiter takes the lock over: `acquire` returns true as
//! usual, and [`Lock::owner_died`] (or [`RLock::owner_died`], or the one of a
//! `Value`'s lock) returns true until the lock is next released. The protected data
//! may be half-updated; checking `owner_died()` after acquiring is how a program
//! learns that it must repair it (POSIX robust mutexes report the same with
//! `EOWNERDEAD`). An `RLock` held several times by the dead process is taken over
//! with a count of 1. Semaphores have no single holder and are not repaired.
//!
//! Limits of the check: the processes must share a pid namespace (those mpcore
//! starts do), and a holder whose `/proc` entry cannot be read (a `hidepid` mount)
//! is assumed alive, so its lock is never taken from it. A thread that ends while
//! holding a lock, in a process that lives on, keeps it held, as in Python.
//!
//! The futex word of a lock is the low half of that 64-bit word (pid and flags); the
//! kernel compares those 32 bits, and Rust code only ever touches the word whole.
//!
//! # Passing objects to children
//!
//! Every handle is `Clone + Send + Serialize + Deserialize`. Under fork, a child
//! inherits the mapping and the handle is moved into it. For a spawned or forkserver
//! child, the handle serializes as the memfd of its block, which
//! [`reduction`](crate::reduction) passes as a descriptor. Serializing a handle at any
//! other time is an error, as in Python ("Lock objects should only be shared between
//! processes through inheritance").

use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::heap::Block;
use crate::sys::memfd::SharedAtomic;
use crate::sys::{futex, identity};

const RELEASED_TOO_MANY: &str = "semaphore or lock released too many times";
const RLOCK_NOT_OWNED: &str = "attempt to release recursive lock not owned by thread";

/// How long an acquire may block.
#[derive(Clone, Copy)]
enum Blocking {
    No,
    Until(Instant),
    Forever,
}

impl Blocking {
    fn timeout(d: Duration) -> Blocking {
        Instant::now()
            .checked_add(d)
            .map_or(Blocking::Forever, Blocking::Until)
    }

    fn from_option(d: Option<Duration>) -> Blocking {
        d.map_or(Blocking::Forever, Blocking::timeout)
    }

    fn deadline(self) -> Option<Instant> {
        match self {
            Blocking::No => Some(Instant::now()),
            Blocking::Until(t) => Some(t),
            Blocking::Forever => None,
        }
    }
}

/// The time left until `deadline` (`None`: forever), or `None` inside `Some` when it
/// has passed.
fn remaining(deadline: Option<Instant>) -> Option<Option<Duration>> {
    match deadline {
        None => Some(None),
        Some(t) => {
            let now = Instant::now();
            (now < t).then(|| Some(t - now))
        }
    }
}

// ---------------------------------------------------------------------------
// The robust lock word
// ---------------------------------------------------------------------------

/// Low bits of the state word: the holder's pid (0: free).
const PID_MASK: u64 = (1 << 29) - 1;
/// A waiter is taking the lock over from a dead holder and has not yet recorded
/// itself as owner; ownership checks fail meanwhile.
const TAKING: u64 = 1 << 29;
/// The holder took the lock over from a holder that died.
const DIED: u64 = 1 << 30;
/// Someone may be sleeping on the word: release must wake one.
const WAITERS: u64 = 1 << 31;

/// The first dead-holder check happens after this long asleep...
const FIRST_CHECK: Duration = Duration::from_millis(10);
/// ...and the interval doubles up to this.
const MAX_CHECK: Duration = Duration::from_millis(200);

/// Size of a [`RawLock`]: state (u64), owner thread (u64), recursion count (u32).
const RAW_LOCK_SIZE: usize = 24;

/// The shared words of a lock: `state` = `tag << 32 | flags | pid` of the holding
/// process (0 when free), `owner` = the holding thread (`pid << 32 | thread token`),
/// `count` = the recursion depth of an `RLock`. The words' addresses are checked once,
/// when the handle is made.
#[derive(Clone)]
struct RawLock {
    block: Block,
    state: SharedAtomic<AtomicU64>,
    owner: SharedAtomic<AtomicU64>,
    count: SharedAtomic<AtomicU32>,
}

impl RawLock {
    fn new() -> Result<RawLock> {
        Ok(RawLock::in_block(Block::new(RAW_LOCK_SIZE)?))
    }

    /// The lock stored in `block` (at least [`RAW_LOCK_SIZE`] bytes).
    fn in_block(block: Block) -> RawLock {
        RawLock {
            state: block.shared_u64(0),
            owner: block.shared_u64(8),
            count: block.shared_u32(16),
            block,
        }
    }

    #[inline]
    fn state(&self) -> &AtomicU64 {
        &self.state
    }

    #[inline]
    fn owner(&self) -> &AtomicU64 {
        &self.owner
    }

    #[inline]
    fn count(&self) -> &AtomicU32 {
        &self.count
    }

    /// Takes the lock, recording the calling thread as owner.
    #[inline]
    fn acquire(&self, blocking: Blocking) -> bool {
        self.acquire_as(identity::process(), identity::thread_owner_id(), blocking)
    }

    /// [`acquire`](RawLock::acquire) for the process `me` and the thread `id`.
    #[inline]
    fn acquire_as(&self, me: u64, id: u64, blocking: Blocking) -> bool {
        let taken = self
            .state()
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            || self.acquire_slow(me, blocking);
        if taken {
            self.owner().store(id, Ordering::Relaxed);
        }
        taken
    }

    #[cold]
    fn acquire_slow(&self, me: u64, blocking: Blocking) -> bool {
        let state = self.state();
        let deadline = blocking.deadline();
        let mut interval = FIRST_CHECK;
        let mut next_check: Option<Instant> = None;
        loop {
            let s = state.load(Ordering::Relaxed);
            if s & PID_MASK == 0 {
                // Free. Keep WAITERS set: others may still sleep on the word.
                if state
                    .compare_exchange(s, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            if matches!(blocking, Blocking::No) {
                return false;
            }
            if s & WAITERS == 0
                && state
                    .compare_exchange(s, s | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let s = s | WAITERS;
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            let check_at = *next_check.get_or_insert(now + interval);
            if now >= check_at {
                if self.holder_died(s)
                    && state
                        .compare_exchange(
                            s,
                            me | WAITERS | DIED | TAKING,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    self.owner()
                        .store(identity::thread_owner_id(), Ordering::Relaxed);
                    self.count().store(1, Ordering::Relaxed);
                    state.fetch_and(!TAKING, Ordering::Release);
                    return true;
                }
                interval = (interval * 2).min(MAX_CHECK);
                next_check = Some(now + interval);
                continue;
            }
            let mut wait = check_at - now;
            if let Some(d) = deadline {
                wait = wait.min(d - now);
            }
            futex::wait_low(state, s as u32, Some(wait));
        }
    }

    /// Whether the process recorded in state `s` has died (never true for us).
    fn holder_died(&self, s: u64) -> bool {
        let pid = (s & PID_MASK) as u32;
        pid != identity::pid() && !identity::is_alive(pid, (s >> 32) as u32)
    }

    /// Frees the lock word, waking a sleeper if there may be one. False if it was
    /// not held.
    #[inline]
    fn unlock(&self) -> bool {
        self.owner().store(0, Ordering::Relaxed);
        let prev = self.state().swap(0, Ordering::Release);
        if prev & WAITERS != 0 {
            futex::wake_low(self.state(), 1);
        }
        prev & PID_MASK != 0
    }

    fn is_held(&self) -> bool {
        self.state().load(Ordering::Relaxed) & PID_MASK != 0
    }

    /// Whether the calling thread holds the lock.
    #[inline]
    fn is_mine(&self) -> bool {
        self.is_mine_as(identity::thread_owner_id())
    }

    /// Whether the thread `id` (see [`identity::thread_owner_id`]) holds the lock.
    #[inline]
    fn is_mine_as(&self, id: u64) -> bool {
        let s = self.state().load(Ordering::Relaxed);
        (s & PID_MASK) as u32 == (id >> 32) as u32
            && s & TAKING == 0
            && self.owner().load(Ordering::Relaxed) == id
    }

    fn owner_died(&self) -> bool {
        self.state().load(Ordering::Relaxed) & DIED != 0
    }

    /// Who holds the lock, as Python's reprs show it.
    fn owner_name(&self) -> String {
        let s = self.state().load(Ordering::Relaxed);
        if s & PID_MASK == 0 {
            "None".to_string()
        } else if self.is_mine() {
            let me = crate::current_process().name;
            if is_main_thread() {
                me
            } else {
                format!("{me}|{}", std::thread::current().name().unwrap_or("Thread"))
            }
        } else if (s & PID_MASK) as u32 == identity::pid() {
            "SomeOtherThread".to_string()
        } else {
            "SomeOtherProcess".to_string()
        }
    }
}

impl Serialize for RawLock {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.block.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawLock {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let block = Block::deserialize(d)?;
        if block.len() < RAW_LOCK_SIZE {
            return Err(serde::de::Error::custom("lock block too small"));
        }
        Ok(RawLock::in_block(block))
    }
}

/// Whether the calling thread is its process's main thread, the one Python calls
/// `MainThread`: on Linux, the thread whose id is the process id. In a forked child
/// that is the thread that called `fork` (the only thread the child has), and in a
/// spawned or forkserver child the thread that runs the target.
fn is_main_thread() -> bool {
    nix::unistd::gettid() == nix::unistd::getpid()
}

// ---------------------------------------------------------------------------
// Lock
// ---------------------------------------------------------------------------

/// A non-recursive lock shared between processes (Python: `multiprocessing.Lock`).
///
/// It has no owner: any thread or process may release it. A process that dies
/// holding it does not block the others forever (see the [module docs](self)):
/// the next acquirer takes it over and [`owner_died`](Lock::owner_died) says so.
///
/// ```
/// let lock = mpcore::Lock::new()?;
/// {
///     let _guard = lock.lock(); // Python: `with lock:`
///     assert!(!lock.try_acquire());
/// }
/// assert!(lock.acquire());
/// lock.release()?;
/// assert!(lock.release().is_err()); // released too many times
/// # Ok::<(), mpcore::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Lock {
    raw: RawLock,
}

impl Lock {
    /// A new, unlocked lock.
    pub fn new() -> Result<Lock> {
        Ok(Lock {
            raw: RawLock::new()?,
        })
    }

    /// Blocks until the lock is acquired; returns true (Python: `acquire()`).
    #[inline]
    pub fn acquire(&self) -> bool {
        self.raw.acquire(Blocking::Forever)
    }

    /// Acquires the lock if it is free, without blocking (Python:
    /// `acquire(False)`).
    pub fn try_acquire(&self) -> bool {
        self.raw.acquire(Blocking::No)
    }

    /// Waits up to `timeout` for the lock; false if it stayed taken (Python:
    /// `acquire(timeout=t)`).
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.raw.acquire(Blocking::timeout(timeout))
    }

    /// Releases the lock, whoever acquired it. Error if it is not held: "semaphore
    /// or lock released too many times".
    #[inline]
    pub fn release(&self) -> Result<()> {
        if !self.raw.unlock() {
            return Err(Error::invalid(RELEASED_TOO_MANY));
        }
        Ok(())
    }

    /// Acquires the lock and returns a guard that releases it when dropped (Python:
    /// `with lock:`).
    #[inline]
    pub fn lock(&self) -> LockGuard<'_> {
        self.acquire();
        LockGuard { lock: self }
    }

    /// Whether the current holder took the lock over from a process that died
    /// holding it. Read it after acquiring; it is cleared by the next release.
    pub fn owner_died(&self) -> bool {
        self.raw.owner_died()
    }

    /// Whether the lock is held by anyone (Python 3.14: `locked()`).
    pub fn locked(&self) -> bool {
        self.raw.is_held()
    }

    fn is_mine(&self) -> bool {
        self.raw.is_mine()
    }
}

/// Python's repr, which names the holder as the caller sees it:
/// `<Lock(owner=None)>` when free; the current process's name when the calling
/// thread holds it (`<Lock(owner=MainProcess)>` in the main thread,
/// `<Lock(owner=MainProcess|T1)>` in a thread named `T1`, `<Lock(owner=P1)>` in the
/// main thread of a child named `P1`); `<Lock(owner=SomeOtherThread)>` when another
/// thread of this process holds it, and `<Lock(owner=SomeOtherProcess)>` when
/// another process does. An unnamed thread shows as `Thread`.
impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Lock(owner={})>", self.raw.owner_name())
    }
}

/// Holds a [`Lock`] until dropped (from [`Lock::lock`]).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl LockGuard<'_> {
    /// Whether the lock was taken over from a holder that died ([`Lock::owner_died`]).
    pub fn owner_died(&self) -> bool {
        self.lock.owner_died()
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}

// ---------------------------------------------------------------------------
// RLock
// ---------------------------------------------------------------------------

/// A recursive lock shared between processes (Python: `multiprocessing.RLock`).
///
/// The thread that acquired it may acquire it again; it is free once released as
/// many times. Only the owning thread (of the owning process) may release it.
///
/// ```
/// let rlock = mpcore::RLock::new()?;
/// let outer = rlock.lock();
/// let inner = rlock.lock(); // the same thread: no deadlock
/// drop(inner);
/// drop(outer);
/// assert!(rlock.release().is_err()); // not owned any more
/// # Ok::<(), mpcore::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct RLock {
    raw: RawLock,
}

impl RLock {
    /// A new, unlocked recursive lock.
    pub fn new() -> Result<RLock> {
        Ok(RLock {
            raw: RawLock::new()?,
        })
    }

    /// An RLock stored in `block` (at least [`RAW_LOCK_SIZE`] bytes, zeroed).
    pub(crate) fn in_block(block: Block) -> RLock {
        RLock {
            raw: RawLock::in_block(block),
        }
    }

    /// The size of the block [`in_block`](RLock::in_block) needs.
    pub(crate) const SIZE: usize = RAW_LOCK_SIZE;

    #[inline]
    fn acquire_with(&self, blocking: Blocking) -> bool {
        let me = identity::process();
        let id = identity::thread_owner_id();
        let count = self.raw.count();
        // Free: take it. Otherwise it may be ours already (reentrant acquire).
        if self
            .raw
            .state()
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.raw.owner().store(id, Ordering::Relaxed);
            count.store(1, Ordering::Relaxed);
            return true;
        }
        if self.raw.is_mine_as(id) {
            count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            return true;
        }
        let taken = self.raw.acquire_as(me, id, blocking);
        if taken {
            count.store(1, Ordering::Relaxed);
        }
        taken
    }

    /// Blocks until the lock is acquired (or acquires it again); returns true.
    #[inline]
    pub fn acquire(&self) -> bool {
        self.acquire_with(Blocking::Forever)
    }

    /// Acquires without blocking; false if another thread holds it.
    pub fn try_acquire(&self) -> bool {
        self.acquire_with(Blocking::No)
    }

    /// Waits up to `timeout`; false if another thread kept it.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.acquire_with(Blocking::timeout(timeout))
    }

    /// Releases one level. Error if the calling thread does not own the lock
    /// ("attempt to release recursive lock not owned by thread"); the owner keeps it.
    #[inline]
    pub fn release(&self) -> Result<()> {
        if !self.raw.is_mine() {
            return Err(Error::invalid(RLOCK_NOT_OWNED));
        }
        let count = self.raw.count();
        let c = count.load(Ordering::Relaxed);
        if c > 1 {
            count.store(c - 1, Ordering::Relaxed);
        } else {
            count.store(0, Ordering::Relaxed);
            self.raw.unlock();
        }
        Ok(())
    }

    /// Acquires the lock and returns a guard that releases one level when dropped.
    #[inline]
    pub fn lock(&self) -> RLockGuard<'_> {
        self.acquire();
        RLockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Whether the current holder took the lock over from a process that died
    /// holding it (however many times it held it).
    pub fn owner_died(&self) -> bool {
        self.raw.owner_died()
    }

    /// Whether the lock is held by anyone (Python 3.14: `locked()`).
    pub fn locked(&self) -> bool {
        self.raw.is_held()
    }

    /// Whether the calling thread owns the lock.
    pub(crate) fn is_mine(&self) -> bool {
        self.raw.is_mine()
    }

    /// Releases every level the calling thread holds (it must own the lock);
    /// returns how many, for [`acquire_restore`](RLock::acquire_restore).
    fn release_all(&self) -> u32 {
        let levels = self.raw.count().swap(0, Ordering::Relaxed).max(1);
        self.raw.unlock();
        levels
    }

    fn acquire_restore(&self, levels: u32) {
        self.raw.acquire(Blocking::Forever);
        self.raw.count().store(levels, Ordering::Relaxed);
    }
}

/// Python's repr: the holder, named as in the repr of a [`Lock`],
/// and the recursion level: `<RLock(None, 0)>`, `<RLock(MainProcess, 3)>`,
/// `<RLock(MainProcess|T2, 2)>`, `<RLock(P1, 1)>`; the level of a holder elsewhere
/// is not known: `<RLock(SomeOtherThread, nonzero)>`,
/// `<RLock(SomeOtherProcess, nonzero)>`.
impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owner = self.raw.owner_name();
        let count = match owner.as_str() {
            "None" => "0".to_string(),
            "SomeOtherThread" | "SomeOtherProcess" => "nonzero".to_string(),
            _ => self.raw.count().load(Ordering::Relaxed).to_string(),
        };
        write!(f, "<RLock({owner}, {count})>")
    }
}

/// Holds one level of an [`RLock`] until dropped (from [`RLock::lock`]). It must be
/// dropped by the thread that created it, so it is not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    _not_send: PhantomData<*const ()>,
}

impl RLockGuard<'_> {
    /// Whether the lock was taken over from a holder that died
    /// ([`RLock::owner_died`]).
    pub fn owner_died(&self) -> bool {
        self.lock.owner_died()
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}

// ---------------------------------------------------------------------------
// Semaphores
// ---------------------------------------------------------------------------

/// The largest semaphore value (Python: `SEM_VALUE_MAX`).
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

/// Shared words: value (the futex word), sleepers, maximum value.
#[derive(Clone, Serialize, Deserialize)]
struct RawSemaphore {
    block: Block,
}

impl RawSemaphore {
    fn new(value: u32, max: u32) -> Result<RawSemaphore> {
        if value > max {
            return Err(Error::invalid(format!(
                "semaphore value {value} is larger than its maximum {max}"
            )));
        }
        let block = Block::new(12)?;
        block.u32_at(0).store(value, Ordering::Relaxed);
        block.u32_at(8).store(max, Ordering::Relaxed);
        Ok(RawSemaphore { block })
    }

    fn value(&self) -> &AtomicU32 {
        self.block.u32_at(0)
    }

    fn sleepers(&self) -> &AtomicU32 {
        self.block.u32_at(4)
    }

    fn max(&self) -> u32 {
        self.block.u32_at(8).load(Ordering::Relaxed)
    }

    fn acquire(&self, blocking: Blocking) -> bool {
        let value = self.value();
        let deadline = blocking.deadline();
        loop {
            let v = value.load(Ordering::Relaxed);
            if v > 0 {
                if value
                    .compare_exchange(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            let Some(wait) = remaining(deadline) else {
                return false;
            };
            self.sleepers().fetch_add(1, Ordering::SeqCst);
            futex::wait(value, 0, wait);
            self.sleepers().fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn release(&self) -> Result<()> {
        let max = self.max();
        let value = self.value();
        let mut v = value.load(Ordering::Relaxed);
        loop {
            if v >= max {
                return Err(Error::invalid(RELEASED_TOO_MANY));
            }
            match value.compare_exchange(v, v + 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        if self.sleepers().load(Ordering::SeqCst) > 0 {
            futex::wake(value, 1);
        }
        Ok(())
    }

    fn get_value(&self) -> u32 {
        self.value().load(Ordering::Relaxed)
    }
}

/// A counting semaphore shared between processes (Python:
/// `multiprocessing.Semaphore`).
///
/// `acquire` takes one unit, blocking while there is none; `release` gives one
/// back and may raise the value above its initial value.
///
/// ```
/// let sem = mpcore::Semaphore::new(2)?;
/// assert!(sem.acquire());
/// assert!(sem.try_acquire());
/// assert!(!sem.try_acquire());
/// assert_eq!(sem.get_value(), 0);
/// sem.release()?;
/// assert_eq!(sem.get_value(), 1);
/// # Ok::<(), mpcore::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Semaphore {
    raw: RawSemaphore,
}

impl Semaphore {
    /// A semaphore holding `value` units (at most [`SEM_VALUE_MAX`]).
    pub fn new(value: u32) -> Result<Semaphore> {
        Ok(Semaphore {
            raw: RawSemaphore::new(value, SEM_VALUE_MAX)?,
        })
    }

    /// Takes a unit, blocking until one is available; returns true.
    pub fn acquire(&self) -> bool {
        self.raw.acquire(Blocking::Forever)
    }

    /// Takes a unit if one is available, without blocking.
    pub fn try_acquire(&self) -> bool {
        self.raw.acquire(Blocking::No)
    }

    /// Waits up to `timeout` for a unit; false if none came.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.raw.acquire(Blocking::timeout(timeout))
    }

    /// Gives a unit back, waking one waiter. Error only past [`SEM_VALUE_MAX`].
    pub fn release(&self) -> Result<()> {
        self.raw.release()
    }

    /// The number of units available now.
    pub fn get_value(&self) -> u32 {
        self.raw.get_value()
    }
}

/// Python's repr: `<Semaphore(value=3)>`.
impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Semaphore(value={})>", self.get_value())
    }
}

/// A semaphore that may not be released above its initial value (Python:
/// `multiprocessing.BoundedSemaphore`).
///
/// ```
/// let sem = mpcore::BoundedSemaphore::new(1)?;
/// let err = sem.release().unwrap_err();
/// assert!(err.to_string().contains("released too many times"));
/// # Ok::<(), mpcore::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct BoundedSemaphore {
    raw: RawSemaphore,
}

impl BoundedSemaphore {
    /// A semaphore holding `value` units, which is also its maximum.
    pub fn new(value: u32) -> Result<BoundedSemaphore> {
        Ok(BoundedSemaphore {
            raw: RawSemaphore::new(value, value.min(SEM_VALUE_MAX))?,
        })
    }

    /// Takes a unit, blocking until one is available; returns true.
    pub fn acquire(&self) -> bool {
        self.raw.acquire(Blocking::Forever)
    }

    /// Takes a unit if one is available, without blocking.
    pub fn try_acquire(&self) -> bool {
        self.raw.acquire(Blocking::No)
    }

    /// Waits up to `timeout` for a unit; false if none came.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.raw.acquire(Blocking::timeout(timeout))
    }

    /// Gives a unit back. Error if the value is already at its maximum: "semaphore
    /// or lock released too many times".
    pub fn release(&self) -> Result<()> {
        self.raw.release()
    }

    /// The number of units available now.
    pub fn get_value(&self) -> u32 {
        self.raw.get_value()
    }
}

/// Python's repr: `<BoundedSemaphore(value=3, maxvalue=3)>`.
impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<BoundedSemaphore(value={}, maxvalue={})>",
            self.get_value(),
            self.raw.max()
        )
    }
}

// ---------------------------------------------------------------------------
// Condition
// ---------------------------------------------------------------------------

/// The lock a [`Condition`] uses: Python accepts a `Lock` or an `RLock`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ConditionLock {
    /// A plain lock.
    Lock(Lock),
    /// A recursive lock (the default).
    RLock(RLock),
}

impl From<Lock> for ConditionLock {
    fn from(lock: Lock) -> Self {
        ConditionLock::Lock(lock)
    }
}

impl From<RLock> for ConditionLock {
    fn from(lock: RLock) -> Self {
        ConditionLock::RLock(lock)
    }
}

impl ConditionLock {
    fn acquire(&self) -> bool {
        match self {
            ConditionLock::Lock(l) => l.acquire(),
            ConditionLock::RLock(l) => l.acquire(),
        }
    }

    fn release(&self) -> Result<()> {
        match self {
            ConditionLock::Lock(l) => l.release(),
            ConditionLock::RLock(l) => l.release(),
        }
    }

    fn is_mine(&self) -> bool {
        match self {
            ConditionLock::Lock(l) => l.is_mine(),
            ConditionLock::RLock(l) => l.is_mine(),
        }
    }

    /// Releases the lock completely; returns what `restore` needs.
    fn release_all(&self) -> u32 {
        match self {
            ConditionLock::Lock(l) => {
                l.raw.unlock();
                1
            }
            ConditionLock::RLock(l) => l.release_all(),
        }
    }

    fn restore(&self, levels: u32) {
        match self {
            ConditionLock::Lock(l) => {
                l.acquire();
            }
            ConditionLock::RLock(l) => l.acquire_restore(levels),
        }
    }
}

/// How many processes and threads may wait on one [`Condition`] at a time.
pub const CONDITION_MAX_WAITERS: usize = 256;

const SLOT_FREE: u32 = 0;
const SLOT_WAITING: u32 = 1;
const SLOT_NOTIFIED: u32 = 2;
const SLOTS_AT: usize = 64;
const SLOT_SIZE: usize = 32;

/// A condition variable shared between processes (Python:
/// `multiprocessing.Condition`).
///
/// Each waiter sleeps on a slot of its own (its pid, start tag, arrival ticket and a
/// futex word), so `notify(n)` wakes exactly `n` waiters, the longest-waiting first,
/// and a waiter that arrives after a `notify` never takes a wake-up meant for an
/// earlier one. At most [`CONDITION_MAX_WAITERS`] wait at once (a slot of a waiter
/// that died is reclaimed). All slot changes happen under the condition's lock.
///
/// ```
/// let cond = mpcore::Condition::new(None)?;
/// let _held = cond.lock();
/// assert!(!cond.wait_timeout(std::time::Duration::from_millis(10))?); // nobody notifies
/// cond.notify_all()?;
/// # Ok::<(), mpcore::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Condition {
    lock: ConditionLock,
    block: Block,
}

/// One waiter's slot in a [`Condition`].
struct Slot<'a> {
    state: &'a AtomicU32,
    pid: &'a AtomicU32,
    tag: &'a AtomicU32,
    ticket: &'a AtomicU64,
}

impl Condition {
    /// A condition using `lock`, or a new [`RLock`] when `None` (as Python).
    pub fn new(lock: Option<ConditionLock>) -> Result<Condition> {
        let lock = match lock {
            Some(lock) => lock,
            None => ConditionLock::RLock(RLock::new()?),
        };
        Ok(Condition {
            lock,
            block: Block::new(SLOTS_AT + SLOT_SIZE * CONDITION_MAX_WAITERS)?,
        })
    }

    fn next_ticket(&self) -> &AtomicU64 {
        self.block.u64_at(0)
    }

    fn slot(&self, i: usize) -> Slot<'_> {
        let at = SLOTS_AT + SLOT_SIZE * i;
        Slot {
            state: self.block.u32_at(at),
            pid: self.block.u32_at(at + 4),
            tag: self.block.u32_at(at + 8),
            ticket: self.block.u64_at(at + 16),
        }
    }

    /// Acquires the underlying lock; returns true.
    pub fn acquire(&self) -> bool {
        self.lock.acquire()
    }

    /// Releases the underlying lock.
    pub fn release(&self) -> Result<()> {
        self.lock.release()
    }

    /// Acquires the underlying lock and returns a guard that releases it when
    /// dropped (Python: `with cond:`).
    pub fn lock(&self) -> ConditionGuard<'_> {
        self.acquire();
        ConditionGuard {
            cond: self,
            _not_send: PhantomData,
        }
    }

    /// The lock this condition uses.
    pub fn get_lock(&self) -> &ConditionLock {
        &self.lock
    }

    /// Releases the lock, sleeps until notified, re-acquires the lock; returns true.
    /// Error if the calling thread does not hold the lock.
    pub fn wait(&self) -> Result<bool> {
        self.wait_until(None)
    }

    /// As [`wait`](Condition::wait), for at most `timeout`: false if it timed out.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait_until(Blocking::timeout(timeout).deadline())
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<bool> {
        if !self.lock.is_mine() {
            return Err(Error::invalid(
                "must acquire() condition before using wait()",
            ));
        }
        let index = self.claim_slot()?;
        let slot = self.slot(index);
        let levels = self.lock.release_all();
        loop {
            if slot.state.load(Ordering::Acquire) == SLOT_NOTIFIED {
                break;
            }
            let Some(wait) = remaining(deadline) else {
                break;
            };
            futex::wait(slot.state, SLOT_WAITING, wait);
        }
        self.lock.restore(levels);
        // A notify that came between the time-out and re-acquiring still counts.
        let notified = slot.state.load(Ordering::Acquire) == SLOT_NOTIFIED;
        slot.state.store(SLOT_FREE, Ordering::Release);
        Ok(notified)
    }

    /// Takes a free slot (the lock is held).
    fn claim_slot(&self) -> Result<usize> {
        for pass in 0..2 {
            for i in 0..CONDITION_MAX_WAITERS {
                let slot = self.slot(i);
                if slot.state.load(Ordering::Relaxed) == SLOT_FREE {
                    let me = identity::process();
                    slot.pid.store(me as u32, Ordering::Relaxed);
                    slot.tag.store((me >> 32) as u32, Ordering::Relaxed);
                    slot.ticket.store(
                        self.next_ticket().fetch_add(1, Ordering::Relaxed),
                        Ordering::Relaxed,
                    );
                    slot.state.store(SLOT_WAITING, Ordering::Release);
                    return Ok(i);
                }
            }
            if pass == 0 {
                // Full: reclaim the slots of waiters that died.
                for i in 0..CONDITION_MAX_WAITERS {
                    let slot = self.slot(i);
                    if slot.state.load(Ordering::Relaxed) != SLOT_FREE && self.waiter_died(&slot) {
                        slot.state.store(SLOT_FREE, Ordering::Relaxed);
                    }
                }
            }
        }
        Err(Error::invalid(format!(
            "more than {CONDITION_MAX_WAITERS} waiters on one Condition"
        )))
    }

    fn waiter_died(&self, slot: &Slot<'_>) -> bool {
        let pid = slot.pid.load(Ordering::Relaxed);
        pid != identity::pid() && !identity::is_alive(pid, slot.tag.load(Ordering::Relaxed))
    }

    /// Wakes up to `n` waiters, the longest-waiting first. Error if the calling
    /// thread does not hold the lock ("lock is not owned").
    pub fn notify(&self, n: usize) -> Result<()> {
        if !self.lock.is_mine() {
            return Err(Error::invalid("lock is not owned"));
        }
        let mut waiting: Vec<(u64, usize)> = (0..CONDITION_MAX_WAITERS)
            .filter_map(|i| {
                let slot = self.slot(i);
                (slot.state.load(Ordering::Relaxed) == SLOT_WAITING)
                    .then(|| (slot.ticket.load(Ordering::Relaxed), i))
            })
            .collect();
        waiting.sort_unstable();
        let mut woken = 0;
        for (_, i) in waiting {
            if woken == n {
                break;
            }
            let slot = self.slot(i);
            if self.waiter_died(&slot) {
                slot.state.store(SLOT_FREE, Ordering::Relaxed);
                continue;
            }
            slot.state.store(SLOT_NOTIFIED, Ordering::Release);
            futex::wake(slot.state, 1);
            woken += 1;
        }
        Ok(())
    }

    /// Wakes every waiter. Error if the calling thread does not hold the lock.
    pub fn notify_all(&self) -> Result<()> {
        self.notify(usize::MAX)
    }

    /// Waits until `predicate` returns true, for at most `timeout` (`None`: no
    /// limit); returns the predicate's last result (Python: `wait_for`).
    pub fn wait_for<P: FnMut() -> bool>(
        &self,
        mut predicate: P,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        let deadline = Blocking::from_option(timeout).deadline();
        let mut result = predicate();
        while !result {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            self.wait_until(deadline)?;
            result = predicate();
        }
        Ok(result)
    }

    fn n_waiting(&self) -> usize {
        (0..CONDITION_MAX_WAITERS)
            .filter(|&i| self.slot(i).state.load(Ordering::Relaxed) == SLOT_WAITING)
            .count()
    }
}

/// Python's repr: `<Condition(<RLock(None, 0)>, 0)>` (the lock, then the number of
/// waiters).
impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lock = match &self.lock {
            ConditionLock::Lock(l) => format!("{l:?}"),
            ConditionLock::RLock(l) => format!("{l:?}"),
        };
        write!(f, "<Condition({lock}, {})>", self.n_waiting())
    }
}

/// Holds a [`Condition`]'s lock until dropped (from [`Condition::lock`]).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    cond: &'a Condition,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        let _ = self.cond.release();
    }
}

// ---------------------------------------------------------------------------
// Event
// ---------------------------------------------------------------------------

/// A flag that processes can wait for (Python: `multiprocessing.Event`).
///
/// ```
/// let ev = mpcore::Event::new()?;
/// assert!(!ev.wait_timeout(std::time::Duration::from_millis(1)));
/// ev.set();
/// assert!(ev.wait());
/// ev.clear();
/// assert!(!ev.is_set());
/// # Ok::<(), mpcore::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Event {
    block: Block,
}

impl Event {
    /// A new event, not set.
    pub fn new() -> Result<Event> {
        Ok(Event {
            block: Block::new(8)?,
        })
    }

    fn flag(&self) -> &AtomicU32 {
        self.block.u32_at(0)
    }

    fn sleepers(&self) -> &AtomicU32 {
        self.block.u32_at(4)
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.flag().store(1, Ordering::SeqCst);
        if self.sleepers().load(Ordering::SeqCst) > 0 {
            futex::wake(self.flag(), u32::MAX);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.flag().store(0, Ordering::SeqCst);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.flag().load(Ordering::Acquire) != 0
    }

    /// Blocks until the flag is set; returns true.
    pub fn wait(&self) -> bool {
        self.wait_until(None)
    }

    /// Blocks until the flag is set or `timeout` passes; returns the flag.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(Blocking::timeout(timeout).deadline())
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        loop {
            if self.is_set() {
                return true;
            }
            let Some(wait) = remaining(deadline) else {
                return false;
            };
            self.sleepers().fetch_add(1, Ordering::SeqCst);
            futex::wait(self.flag(), 0, wait);
            self.sleepers().fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Python's repr, without the address: `<Event set>` or `<Event unset>`.
impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.is_set() { "set" } else { "unset" };
        write!(f, "<Event {state}>")
    }
}

// ---------------------------------------------------------------------------
// Barrier
// ---------------------------------------------------------------------------

const FILLING: u32 = 0;
const DRAINING: u32 = 1;
const RESETTING: u32 = 2;
const BROKEN: u32 = 3;

/// A barrier for a fixed number of parties, threads or processes (Python:
/// `multiprocessing.Barrier`, which is `threading.Barrier` on shared state).
///
/// `wait` blocks until `parties` callers have called it, then releases them all;
/// each gets a distinct index in `0..parties`. The optional action runs once per
/// pass, in the last party to arrive, before anyone is released. `abort`, a time-out
/// or a panicking action break the barrier: every waiting party, and every later
/// one until [`reset`](Barrier::reset), gets [`Error::BrokenBarrier`].
///
/// ```
/// use std::time::Duration;
/// let barrier = mpcore::Barrier::new(2, None, None)?;
/// let other = barrier.clone();
/// let t = std::thread::spawn(move || other.wait());
/// let mine = barrier.wait()?;
/// let theirs = t.join().unwrap()?;
/// assert_eq!(mine + theirs, 1);
///
/// let lonely = mpcore::Barrier::new(2, None, Some(Duration::from_millis(10)))?;
/// assert!(matches!(lonely.wait(), Err(mpcore::Error::BrokenBarrier)));
/// assert!(lonely.broken());
/// # Ok::<(), mpcore::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    block: Block,
    lock: RawLock,
    action: Option<fn()>,
    timeout: Option<Duration>,
}

/// Holds a barrier's internal lock.
struct Held<'a>(&'a RawLock);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

impl Barrier {
    /// A barrier for `parties` parties (at least 1); `action` runs once per pass;
    /// `timeout` is the default for [`wait`](Barrier::wait).
    pub fn new(parties: usize, action: Option<fn()>, timeout: Option<Duration>) -> Result<Barrier> {
        let parties = u32::try_from(parties)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| Error::invalid("parties must be at least 1"))?;
        let block = Block::new(48)?;
        block.u32_at(32).store(parties, Ordering::Relaxed);
        Ok(Barrier {
            lock: RawLock::in_block(block.sub(0, RAW_LOCK_SIZE)),
            block,
            action,
            timeout,
        })
    }

    fn state(&self) -> &AtomicU32 {
        self.block.u32_at(36)
    }

    fn count(&self) -> &AtomicU32 {
        self.block.u32_at(40)
    }

    /// The futex word the parties sleep on; bumped by every broadcast.
    fn seq(&self) -> &AtomicU32 {
        self.block.u32_at(44)
    }

    fn hold(&self) -> Held<'_> {
        self.lock.acquire(Blocking::Forever);
        Held(&self.lock)
    }

    /// Releases the internal lock, sleeps until a broadcast (or `deadline`), and
    /// takes the lock again. False if the deadline has passed.
    fn sleep(&self, deadline: Option<Instant>) -> bool {
        let seen = self.seq().load(Ordering::Acquire);
        self.lock.unlock();
        if let Some(wait) = remaining(deadline) {
            futex::wait(self.seq(), seen, wait);
        }
        self.lock.acquire(Blocking::Forever);
        remaining(deadline).is_some()
    }

    fn broadcast(&self) {
        self.seq().fetch_add(1, Ordering::Release);
        futex::wake(self.seq(), u32::MAX);
    }

    fn set_state(&self, state: u32) {
        self.state().store(state, Ordering::Relaxed);
    }

    fn break_barrier(&self) {
        self.set_state(BROKEN);
        self.broadcast();
    }

    /// Waits for the other parties, with the barrier's default timeout. Returns this
    /// party's index in `0..parties`; [`Error::BrokenBarrier`] if the barrier is or
    /// becomes broken (aborted, reset, timed out).
    pub fn wait(&self) -> Result<usize> {
        self.wait_with(self.timeout)
    }

    /// As [`wait`](Barrier::wait), with `timeout` instead of the default.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        self.wait_with(Some(timeout))
    }

    fn wait_with(&self, timeout: Option<Duration>) -> Result<usize> {
        let deadline = Blocking::from_option(timeout).deadline();
        let held = self.hold();
        // Wait while a previous pass drains or a reset finishes.
        while matches!(self.state().load(Ordering::Relaxed), DRAINING | RESETTING) {
            self.sleep(None);
        }
        if self.state().load(Ordering::Relaxed) == BROKEN {
            return Err(Error::BrokenBarrier);
        }
        let index = self.count().fetch_add(1, Ordering::Relaxed);
        let parties = self.block.u32_at(32).load(Ordering::Relaxed);
        let mut panicked = None;
        let result = if index + 1 == parties {
            match self.action {
                Some(action) => match panic::catch_unwind(AssertUnwindSafe(action)) {
                    Ok(()) => {
                        self.set_state(DRAINING);
                        self.broadcast();
                        Ok(index as usize)
                    }
                    Err(payload) => {
                        self.break_barrier();
                        panicked = Some(payload);
                        Err(Error::BrokenBarrier)
                    }
                },
                None => {
                    self.set_state(DRAINING);
                    self.broadcast();
                    Ok(index as usize)
                }
            }
        } else {
            self.wait_released(deadline).map(|()| index as usize)
        };
        // Leave: the last one out of a pass (or a reset) reopens the barrier.
        let left = self.count().fetch_sub(1, Ordering::Relaxed) - 1;
        if left == 0 && matches!(self.state().load(Ordering::Relaxed), DRAINING | RESETTING) {
            self.set_state(FILLING);
            self.broadcast();
        }
        drop(held);
        if let Some(payload) = panicked {
            panic::resume_unwind(payload);
        }
        result
    }

    fn wait_released(&self, deadline: Option<Instant>) -> Result<()> {
        while self.state().load(Ordering::Relaxed) == FILLING {
            if !self.sleep(deadline) && self.state().load(Ordering::Relaxed) == FILLING {
                self.break_barrier();
                return Err(Error::BrokenBarrier);
            }
        }
        match self.state().load(Ordering::Relaxed) {
            BROKEN | RESETTING => Err(Error::BrokenBarrier),
            _ => Ok(()),
        }
    }

    /// Breaks the barrier: current and later waiters get [`Error::BrokenBarrier`]
    /// until [`reset`](Barrier::reset).
    pub fn abort(&self) {
        let _held = self.hold();
        self.break_barrier();
    }

    /// Returns the barrier to its initial state. Parties waiting now get
    /// [`Error::BrokenBarrier`].
    pub fn reset(&self) {
        let _held = self.hold();
        if self.count().load(Ordering::Relaxed) > 0 {
            if matches!(self.state().load(Ordering::Relaxed), FILLING | BROKEN) {
                self.set_state(RESETTING);
            }
        } else {
            self.set_state(FILLING);
        }
        self.broadcast();
    }

    /// The number of parties the barrier waits for.
    pub fn parties(&self) -> usize {
        self.block.u32_at(32).load(Ordering::Relaxed) as usize
    }

    /// The number of parties waiting now.
    pub fn n_waiting(&self) -> usize {
        let _held = self.hold();
        if self.state().load(Ordering::Relaxed) == FILLING {
            self.count().load(Ordering::Relaxed) as usize
        } else {
            0
        }
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.state().load(Ordering::Relaxed) == BROKEN
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<Barrier(parties={}, n_waiting={}, broken={})>",
            self.parties(),
            self.n_waiting(),
            self.broken()
        )
    }
}

/// The serialized form of a [`Barrier`]: the block first (so that decoding fails
/// before the action unless a child is being started), then the action as an offset
/// within this executable.
#[derive(Serialize, Deserialize)]
struct BarrierWire {
    block: Block,
    action: Option<i64>,
    timeout: Option<Duration>,
}

impl Serialize for Barrier {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        BarrierWire {
            block: self.block.clone(),
            action: self.action.map(identity::fn_to_offset),
            timeout: self.timeout,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let wire = BarrierWire::deserialize(d)?;
        if wire.block.len() < 48 {
            return Err(serde::de::Error::custom("barrier block too small"));
        }
        Ok(Barrier {
            lock: RawLock::in_block(wire.block.sub(0, RAW_LOCK_SIZE)),
            block: wire.block,
            action: wire.action.map(identity::fn_from_offset),
            timeout: wire.timeout,
        })
    }
}

impl crate::context::Context {
    /// A new [`Lock`] (Python: `ctx.Lock()`).
    pub fn lock(&self) -> Result<Lock> {
        Lock::new()
    }

    /// A new [`RLock`] (Python: `ctx.RLock()`).
    pub fn rlock(&self) -> Result<RLock> {
        RLock::new()
    }

    /// A new [`Semaphore`] with `value` permits (Python: `ctx.Semaphore(value)`).
    pub fn semaphore(&self, value: u32) -> Result<Semaphore> {
        Semaphore::new(value)
    }

    /// A new [`BoundedSemaphore`] with `value` permits (Python:
    /// `ctx.BoundedSemaphore(value)`).
    pub fn bounded_semaphore(&self, value: u32) -> Result<BoundedSemaphore> {
        BoundedSemaphore::new(value)
    }

    /// A new [`Condition`] over `lock`, or over a new [`RLock`] when `None` (Python:
    /// `ctx.Condition(lock=None)`).
    pub fn condition(&self, lock: Option<ConditionLock>) -> Result<Condition> {
        Condition::new(lock)
    }

    /// A new, cleared [`Event`] (Python: `ctx.Event()`).
    pub fn event(&self) -> Result<Event> {
        Event::new()
    }

    /// A new [`Barrier`] for `parties` processes (Python:
    /// `ctx.Barrier(parties, action, timeout)`).
    pub fn barrier(
        &self,
        parties: usize,
        action: Option<fn()>,
        timeout: Option<Duration>,
    ) -> Result<Barrier> {
        Barrier::new(parties, action, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_word_layout_leaves_room_for_every_pid() {
        // pid_max is at most 2^22 on Linux.
        const { assert!(PID_MASK >= (1 << 22)) };
        const { assert!(PID_MASK & (TAKING | DIED | WAITERS) == 0) };
    }

    #[test]
    fn a_lock_records_its_holder() {
        let lock = Lock::new().unwrap();
        assert!(lock.acquire());
        let s = lock.raw.state().load(Ordering::Relaxed);
        assert_eq!(s & !WAITERS, identity::process());
        assert!(lock.is_mine());
        lock.release().unwrap();
        assert_eq!(lock.raw.state().load(Ordering::Relaxed), 0);
        assert_eq!(lock.raw.owner().load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_dead_holder_is_detected_and_a_live_one_is_not() {
        let lock = Lock::new().unwrap();
        let me = identity::process();
        assert!(!lock.raw.holder_died(me));
        // pid 1 with a start tag that is certainly wrong: dead (or reused).
        let fake = (u64::from(u32::MAX) << 32) | 1;
        assert!(lock.raw.holder_died(fake));
        // Plant a dead holder and take the lock over.
        lock.raw.state().store(fake, Ordering::Relaxed);
        assert!(lock.acquire_timeout(Duration::from_secs(30)));
        assert!(lock.owner_died());
        lock.release().unwrap();
        assert!(!lock.owner_died());
    }
}
