//! Futexes: kernel wait queues keyed by a 32-bit word of memory (Linux `futex(2)`).
//!
//! Every blocking primitive of [`synchronize`](crate::synchronize) sleeps here. A
//! waiter calls [`wait`] with the value it saw; the kernel puts it to sleep only if
//! the word still holds that value, atomically with respect to [`wake`], so a wake-up
//! between "I saw the lock taken" and "I sleep" is never lost. The operations are the
//! *shared* ones (no `FUTEX_PRIVATE_FLAG`): the kernel keys the queue by the physical
//! page, so processes that map the same memfd page at different addresses meet in the
//! same queue.
//!
//! Some lock words are 64 bits wide (a holder's pid and its start-time tag change
//! together in one compare-and-swap). [`wait_low`] and [`wake_low`] sleep on the low
//! 32 bits of such a word: the kernel reads those 4 bytes itself, and Rust code only
//! ever accesses the word as a whole `AtomicU64`, so no mixed-size atomic access
//! happens in Rust's memory model.

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

/// How a [`wait`] ended. Callers re-check their condition in every case: the
/// kernel allows spurious wake-ups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitResult {
    /// Woken by a [`wake`] (or spuriously).
    Woken,
    /// The word no longer held the expected value: nothing to wait for.
    Changed,
    /// The timeout passed.
    TimedOut,
    /// A signal handler ran.
    Interrupted,
}

/// Sleeps while `*word == expected`, for at most `timeout` (`None`: no limit),
/// measured on the monotonic clock.
///
/// ```
/// use std::sync::atomic::AtomicU32;
/// use std::time::Duration;
/// use mpcore::sys::futex::{wait, WaitResult};
///
/// let word = AtomicU32::new(1);
/// // The word is not 0, so there is nothing to wait for.
/// assert_eq!(wait(&word, 0, None), WaitResult::Changed);
/// assert_eq!(wait(&word, 1, Some(Duration::from_millis(1))), WaitResult::TimedOut);
/// ```
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> WaitResult {
    futex_wait(word.as_ptr().cast_const(), expected, timeout)
}

/// Wakes at most `n` waiters sleeping on `word`; returns how many were woken.
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    futex_wake(word.as_ptr().cast_const(), n)
}

/// [`wait`] on the low 32 bits of a 64-bit word (`expected` is compared with
/// `*word as u32`).
pub fn wait_low(word: &AtomicU64, expected: u32, timeout: Option<Duration>) -> WaitResult {
    futex_wait(low_half(word), expected, timeout)
}

/// [`wake`] for waiters of [`wait_low`] on the same word.
pub fn wake_low(word: &AtomicU64, n: u32) -> usize {
    futex_wake(low_half(word), n)
}

/// The address of the 4 bytes that hold the low 32 bits of `word`.
fn low_half(word: &AtomicU64) -> *const u32 {
    let base = word.as_ptr().cast::<u32>().cast_const();
    if cfg!(target_endian = "little") {
        base
    } else {
        base.wrapping_add(1)
    }
}

fn futex_wait(addr: *const u32, expected: u32, timeout: Option<Duration>) -> WaitResult {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        // Always below 1e9, so it fits every `c_long`.
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `addr` points into a live atomic that the caller borrows for the whole
    // call (4-byte aligned: an `AtomicU32`, or the low half of an 8-aligned
    // `AtomicU64`). FUTEX_WAIT only reads that word, atomically, in the kernel;
    // `ts_ptr` is null or points to a timespec on our stack; the last two arguments
    // are ignored by FUTEX_WAIT.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if rc == 0 {
        return WaitResult::Woken;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => WaitResult::Changed,
        Some(libc::ETIMEDOUT) => WaitResult::TimedOut,
        Some(libc::EINTR) => WaitResult::Interrupted,
        // EFAULT/EINVAL cannot happen for a valid aligned address; treat anything
        // else as a spurious wake-up, which every caller handles.
        _ => WaitResult::Woken,
    }
}

fn futex_wake(addr: *const u32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32);
    // SAFETY: `addr` points into a live, aligned atomic borrowed by the caller;
    // FUTEX_WAKE does not access the word at all, it only uses its address as the
    // key of the wait queue.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    usize::try_from(rc).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    #[test]
    fn wait_returns_at_once_when_the_word_differs() {
        let word = AtomicU32::new(5);
        assert_eq!(wait(&word, 4, None), WaitResult::Changed);
        let wide = AtomicU64::new(0x1234_5678_0000_0007);
        assert_eq!(wait_low(&wide, 6, None), WaitResult::Changed);
        assert_eq!(
            wait_low(&wide, 7, Some(Duration::from_millis(1))),
            WaitResult::TimedOut
        );
    }

    #[test]
    fn wake_releases_a_sleeper() {
        let word = Arc::new(AtomicU32::new(0));
        let w2 = Arc::clone(&word);
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            while w2.load(Ordering::Acquire) == 0 {
                wait(&w2, 0, Some(Duration::from_secs(60)));
            }
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(20));
        word.store(1, Ordering::Release);
        wake(&word, 1);
        assert!(t.join().unwrap() < Duration::from_secs(50));
    }
}
