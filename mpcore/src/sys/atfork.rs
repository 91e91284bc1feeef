//! Knowing cheaply, without a system call, which process we are in after `fork`.
//!
//! Per-process state attached to a shared object (a queue's feeder thread and its
//! buffer) must not be reused by a forked child: the child has none of the parent's
//! threads, and a lock held by one of them at the moment of the fork stays locked in
//! the child. CPython resets such state with `register_after_fork`. mpcore keeps a
//! process-wide *fork generation*, bumped by a `pthread_atfork` child handler, so
//! that the state can be keyed by it; and it caches the pid the same way, since
//! glibc no longer caches `getpid()`.

use std::sync::Once;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);
static PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn after_fork_in_child() {
    // Runs in the child right after fork(): only async-signal-safe work (an atomic
    // add and getpid).
    GENERATION.fetch_add(1, Ordering::Relaxed);
    // SAFETY: getpid(2) takes no arguments and always succeeds.
    PID.store(unsafe { libc::getpid() }, Ordering::Relaxed);
}

/// Registers the fork handler, once per process. Call it before the first fork
/// that matters (constructors of the types that key state by generation do).
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: getpid(2) takes no arguments and always succeeds.
        PID.store(unsafe { libc::getpid() }, Ordering::Relaxed);
        // SAFETY: the handler is a plain `extern "C" fn()` that lives for the whole
        // program and does only async-signal-safe work.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
}

/// How many forks separate this process from the one that first called
/// [`register`]: equal generations in memory copied across a fork mean "made by
/// this very process".
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// This process's id, without a system call once [`register`] has run.
pub fn pid() -> i32 {
    match PID.load(Ordering::Relaxed) {
        0 => std::process::id() as i32,
        pid => pid,
    }
}
