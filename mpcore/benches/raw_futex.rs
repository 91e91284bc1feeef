//! The raw twin: a futex mutex in a few lines (Drepper, "Futexes Are Tricky",
//! mutex #2), over a word of shared memory, with nothing else around it.

use std::sync::atomic::{AtomicU32, Ordering};

use mpcore::sys::futex;

/// Locks the mutex word: 0 free, 1 locked, 2 locked with waiters.
#[inline]
pub fn lock(word: &AtomicU32) {
    if word
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        return;
    }
    let mut c = word.swap(2, Ordering::Acquire);
    while c != 0 {
        futex::wait(word, 2, None);
        c = word.swap(2, Ordering::Acquire);
    }
}

/// Unlocks the mutex word, waking one waiter if there may be one.
#[inline]
pub fn unlock(word: &AtomicU32) {
    if word.swap(0, Ordering::Release) == 2 {
        futex::wake(word, 1);
    }
}
