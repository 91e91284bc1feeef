//! Futexes on shared memory: the wait/wake primitive under mpcore's cross-process
//! queue locks and counters (Linux `futex(2)`).
//!
//! The words live in a `MAP_SHARED` mapping, so these are *shared* futexes (no
//! `FUTEX_PRIVATE_FLAG`): the kernel keys them by the underlying page, which lets a
//! process wake a waiter in another process.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Blocks while `*word == expected`, until woken by [`wake`], `timeout` passes, or
/// a signal or spurious wake-up ends the wait. Returns `false` only on time-out;
/// callers re-check their condition in a loop in every case.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> bool {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned 32-bit atomic for the duration of the call;
    // FUTEX_WAIT only reads it, and `ts_ptr` is null or points at a live timespec
    // (a relative time-out).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
        )
    };
    !(rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT))
}

/// Wakes up to `count` threads (in any process) waiting on `word`.
pub fn wake(word: &AtomicU32, count: i32) {
    // SAFETY: FUTEX_WAKE only uses the address of `word` as a key; it does not
    // access memory through it.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, count);
    }
}
