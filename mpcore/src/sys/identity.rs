//! Who holds a lock: process identities that survive pid reuse, thread tokens,
//! liveness checks, and state that must start afresh in a forked child.
//!
//! A lock word records its holder as `(pid, tag)`, where the tag is the low 32 bits of
//! the process start time (`/proc/PID/stat` field 22, in clock ticks since boot). A
//! pid alone is not enough to tell that a holder died: the kernel may give the same
//! pid to a new process. A pid with the same start time would need the kernel to
//! cycle through every pid within one clock tick, which it cannot.
//!
//! Fork copies this process's memory, including the cached identity, so a
//! `pthread_atfork` child handler clears the cache and bumps a *fork generation*;
//! [`ForkLocal`] uses the generation to give a child fresh state instead of a copy of
//! the parent's (whose mutexes another thread may have held at the moment of fork).

use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// `(tag << 32) | pid` of this process, or 0 when not yet computed in this process.
static IDENTITY: AtomicU64 = AtomicU64::new(0);
/// How many forks separate this process from the one that first registered the
/// handler.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
/// The next thread token to hand out in this process.
static NEXT_THREAD: AtomicU32 = AtomicU32::new(1);

thread_local! {
    static THREAD_TOKEN: Cell<u32> = const { Cell::new(0) };
    /// `(pid << 32) | token` of this thread, or 0 when not yet computed. The forking
    /// thread is the only thread of a child, and the handler below clears its copy.
    static OWNER_ID: Cell<u64> = const { Cell::new(0) };
}

extern "C" fn after_fork_in_child() {
    // Only async-signal-safe work here: atomic stores and a store to an already
    // initialised thread-local cell (const-initialised, no destructor).
    IDENTITY.store(0, Ordering::Relaxed);
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
    OWNER_ID.with(|id| id.set(0));
}

fn register_atfork() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: pthread_atfork stores three function pointers; ours is a plain
        // `extern "C" fn()` valid for the whole program and async-signal-safe.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
        assert_eq!(rc, 0, "pthread_atfork failed");
    });
}

/// This process's identity, `(tag << 32) | pid`: never 0, and never equal to the
/// identity of another process alive at the same time or earlier.
#[inline]
pub fn process() -> u64 {
    let id = IDENTITY.load(Ordering::Relaxed);
    if id != 0 {
        return id;
    }
    compute_identity()
}

#[cold]
fn compute_identity() -> u64 {
    register_atfork();
    let pid = std::process::id();
    let tag = read_stat(pid).map_or(1, |s| s.start_tag);
    let id = (u64::from(tag) << 32) | u64::from(pid);
    IDENTITY.store(id, Ordering::Relaxed);
    id
}

/// The pid part of [`process`].
#[inline]
pub fn pid() -> u32 {
    process() as u32
}

/// A number for the calling thread, unique among the threads of this process
/// (never 0). Together with the pid it names a thread system-wide.
#[inline]
pub fn thread_token() -> u32 {
    THREAD_TOKEN.with(|t| {
        let token = t.get();
        if token != 0 {
            return token;
        }
        let token = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
        t.set(token);
        token
    })
}

/// `(pid << 32) | thread_token()`: names the calling thread across processes.
#[inline]
pub fn thread_owner_id() -> u64 {
    let cached = OWNER_ID.with(Cell::get);
    if cached != 0 {
        return cached;
    }
    // `pid()` registers the fork handler before the first value is cached.
    let id = (u64::from(pid()) << 32) | u64::from(thread_token());
    OWNER_ID.with(|c| c.set(id));
    id
}

/// How many times the process was forked since the first call: differs in a
/// forked child from what the parent saw.
pub fn fork_generation() -> u64 {
    register_atfork();
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// What `/proc/PID/stat` says about a process.
struct Stat {
    state: u8,
    start_tag: u32,
}

fn read_stat(pid: u32) -> std::io::Result<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may contain anything, so
    // parse from the last ')'.
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad /proc stat");
    let rest = &text[text.rfind(')').ok_or_else(bad)? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
    let state = fields
        .first()
        .and_then(|s| s.bytes().next())
        .ok_or_else(bad)?;
    let start: u64 = fields
        .get(19)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok(Stat {
        state,
        start_tag: start as u32,
    })
}

/// Whether the process `pid` whose start tag is `tag` is still running. A zombie
/// (dead, not yet reaped) counts as dead, and so does a different process that
/// reused the pid. When `/proc` cannot tell (hidden by the mount options), the
/// answer is "alive": a lock is never taken from a holder that may live.
pub fn is_alive(pid: u32, tag: u32) -> bool {
    if pid == 0 {
        return false;
    }
    match read_stat(pid) {
        Ok(stat) => !matches!(stat.state, b'Z' | b'X' | b'x') && stat.start_tag == tag,
        Err(err) => err.kind() != std::io::ErrorKind::NotFound,
    }
}

/// Whether a process `pid` is running: it exists and is not a zombie. Says nothing
/// about *which* process has the pid (see [`is_alive`] for that). When `/proc`
/// cannot tell (hidden by the mount options), asks `kill(pid, 0)` instead.
pub fn is_running(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    match read_stat(pid) {
        Ok(stat) => !matches!(stat.state, b'Z' | b'X' | b'x'),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => pid_exists(pid),
    }
}

/// A cheap liveness probe (`kill(pid, 0)`): false only if no process has this pid.
/// A zombie or a process that reused the pid counts as alive; use [`is_alive`] for a
/// definite answer.
pub fn pid_exists(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// A lazily created value that a forked child gets afresh instead of inheriting.
///
/// Used for process-local registries guarded by a mutex: after fork, another thread
/// of the parent might have held that mutex, and the child (which has only the
/// forking thread) would wait for it forever. Each fork generation gets its own
/// value; the parent's copy is leaked in the child, which is harmless since the
/// child's memory is a copy anyway.
pub struct ForkLocal<T: Send + Sync + 'static> {
    slot: AtomicPtr<(u64, T)>,
    init: fn() -> T,
}

impl<T: Send + Sync + 'static> ForkLocal<T> {
    /// A value that `init` creates on first use in each process.
    pub const fn new(init: fn() -> T) -> ForkLocal<T> {
        ForkLocal {
            slot: AtomicPtr::new(std::ptr::null_mut()),
            init,
        }
    }

    /// This process's value.
    pub fn get(&self) -> &T {
        let generation = fork_generation();
        let mut current = self.slot.load(Ordering::Acquire);
        loop {
            if !current.is_null() {
                // SAFETY: every non-null pointer stored in `slot` came from
                // `Box::into_raw` below and is never freed (values are leaked, not
                // dropped), so it is valid for 'static.
                let entry = unsafe { &*current };
                if entry.0 == generation {
                    return &entry.1;
                }
            }
            let fresh = Box::into_raw(Box::new((generation, (self.init)())));
            match self
                .slot
                .compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // The previous value (another generation's) is leaked on purpose.
                // SAFETY: `fresh` came from Box::into_raw just above and is now
                // owned by `slot` forever.
                Ok(_) => return unsafe { &(*fresh).1 },
                Err(other) => {
                    // SAFETY: the exchange failed, so `fresh` was never published;
                    // we still own it and free it exactly once.
                    drop(unsafe { Box::from_raw(fresh) });
                    current = other;
                }
            }
        }
    }
}

/// A plain `fn()` encoded as its distance from a function of this crate, so that it
/// can travel to a child that runs the same executable (ASLR moves both alike).
pub fn fn_to_offset(f: fn()) -> i64 {
    (f as usize as i64).wrapping_sub(base_address())
}

/// Turns an offset from [`fn_to_offset`] back into the function.
///
/// Only decoding a child's arguments calls this (a `Barrier`'s action cannot be
/// encoded at any other time, see `reduction::serialize_fd`), so the offset comes
/// from the parent, which runs the same executable.
pub(crate) fn fn_from_offset(offset: i64) -> fn() {
    let addr = base_address().wrapping_add(offset) as usize;
    // SAFETY: `addr` is `f as usize` for a `fn()` `f` of this same executable,
    // computed by `fn_to_offset` in the parent: the code layout is identical in the
    // child and only shifted as a whole by ASLR, which the base address absorbs.
    // Encoding is only possible while a child's start is prepared, so the bytes come
    // from our own parent (see the doc comment above).
    unsafe { std::mem::transmute::<usize, fn()>(addr) }
}

#[inline(never)]
fn base_marker() {}

fn base_address() -> i64 {
    base_marker as fn() as usize as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_has_our_pid_and_start_time() {
        let id = process();
        assert_eq!(id as u32, std::process::id());
        assert!(is_alive(id as u32, (id >> 32) as u32));
        // Same pid, another start time: a different process.
        assert!(!is_alive(id as u32, ((id >> 32) as u32).wrapping_add(1)));
        assert!(pid_exists(std::process::id()));
        assert!(is_running(std::process::id()));
        assert!(!is_running(0));
    }

    #[test]
    fn a_zombie_is_not_running() {
        let child =
            crate::sys::process::fork_into(|| crate::sys::process::exit_immediately(0)).unwrap();
        let pid = child.as_raw() as u32;
        // Exited, not reaped: a zombie, which the pidfd reports as ended.
        let pidfd = crate::sys::process::pidfd_open(child).unwrap();
        use std::os::fd::AsRawFd;
        crate::sys::poll::wait_readable(&[pidfd.as_raw_fd()], None).unwrap();
        assert!(pid_exists(pid), "a zombie still has its pid");
        assert!(!is_running(pid));
        nix::sys::wait::waitpid(child, None).unwrap();
    }

    #[test]
    fn a_forked_child_gets_its_own_owner_id() {
        let mine = thread_owner_id();
        assert_eq!(mine >> 32, u64::from(std::process::id()));
        let (r, w) = nix::unistd::pipe().unwrap();
        let child = crate::sys::process::fork_into(|| {
            let ok = thread_owner_id() >> 32 == u64::from(std::process::id())
                && process() as u32 == std::process::id();
            let _ = nix::unistd::write(&w, &[u8::from(ok)]);
            crate::sys::process::exit_immediately(0)
        })
        .unwrap();
        let mut byte = [0u8];
        nix::unistd::read(&r, &mut byte).unwrap();
        nix::sys::wait::waitpid(child, None).unwrap();
        assert_eq!(byte[0], 1, "the child kept its parent's identity");
    }

    #[test]
    fn thread_tokens_differ_between_threads() {
        let mine = thread_token();
        assert_eq!(mine, thread_token());
        let other = std::thread::spawn(thread_token).join().unwrap();
        assert_ne!(mine, other);
    }

    #[test]
    fn functions_round_trip_through_offsets() {
        fn hello() {}
        let f: fn() = hello;
        assert_eq!(fn_from_offset(fn_to_offset(f)) as usize, f as usize);
    }

    #[test]
    fn fork_local_is_shared_within_a_generation() {
        static VALUE: ForkLocal<AtomicU32> = ForkLocal::new(|| AtomicU32::new(0));
        VALUE.get().fetch_add(1, Ordering::Relaxed);
        VALUE.get().fetch_add(1, Ordering::Relaxed);
        assert_eq!(VALUE.get().load(Ordering::Relaxed), 2);
    }
}
