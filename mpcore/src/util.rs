//! Finalizers, the at-exit handling, and mpcore's logger (CPython: `util.py`).
//!
//! # At exit
//!
//! CPython registers `_exit_function` with `atexit` when `multiprocessing` is
//! imported. mpcore registers the same work with `atexit(3)` the first time a process
//! starts a child (or in [`init`](crate::init), [`log_to_stderr`], or when a
//! [`Finalize`] with an exit priority is made), so it runs when `main` returns or
//! [`exit`](crate::exit) is called. A child runs it when its target returns or
//! panics, or when it calls [`exit`](crate::exit), and then leaves with `_exit`.
//! In that order, as CPython's `_exit_function`:
//!
//! 1. the finalizers whose exit priority is 0 or more, highest first;
//! 2. daemonic children are terminated, then every child is joined;
//! 3. the remaining finalizers with an exit priority (negative), highest first; the
//!    queues' feeder threads flush what they buffered among them, at CPython's
//!    priority for that work (-5).
//!
//! Finalizers of equal priority run in reverse order of creation; finalizers without
//! an exit priority never run at exit.
//!
//! # Logging
//!
//! A small logger mirrors the `multiprocessing` logger of Python's `logging`
//! module: levels are Python's numbers ([`DEBUG`] is 10, [`INFO`] 20, ...; mpcore's
//! own [`SUBDEBUG`] 5 and [`SUBWARNING`] 25), [`log_to_stderr`] prints records as
//! `[LEVEL/ProcessName] message`, and children inherit the level under every start
//! method. mpcore logs what CPython logs at the same levels: a child's start
//! (`child process calling self.run()`), the at-exit steps, and a child's exit code.
//! Until [`log_to_stderr`] is called, nothing is printed, and a message costs one
//! relaxed atomic load.

use std::any::type_name;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::panic;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

use serde::{Deserialize, Serialize};

use crate::process;
use crate::sys::atfork;

/// Locks `mutex`, ignoring poisoning: mpcore's global state stays consistent even if
/// a thread panicked while holding a lock (every update is a single assignment or
/// push), and a poisoned registry must not stop the at-exit handler.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Flushes stdout and stderr, ignoring errors (a closed stdout must not turn a
/// child's exit into a panic).
pub(crate) fn flush_std_streams() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

// ---------------------------------------------------------------------------
// Logging

/// No level set: the logger's effective level is then [`WARNING`] (Python:
/// `logging.NOTSET`).
pub const NOTSET: i32 = 0;
/// Finer than [`DEBUG`]: mpcore's finalizer bookkeeping (Python:
/// `multiprocessing.util.SUBDEBUG`).
pub const SUBDEBUG: i32 = 5;
/// Details of mpcore's work, such as the at-exit steps (Python: `logging.DEBUG`).
pub const DEBUG: i32 = 10;
/// The life of a process: start, shutdown, exit code (Python: `logging.INFO`).
pub const INFO: i32 = 20;
/// Between [`INFO`] and [`WARNING`] (Python: `multiprocessing.util.SUBWARNING`).
pub const SUBWARNING: i32 = 25;
/// Something unexpected; the effective level of a logger whose level is [`NOTSET`]
/// (Python: `logging.WARNING`, `multiprocessing.util.WARNING` since 3.14).
pub const WARNING: i32 = 30;
/// Python: `logging.ERROR`.
pub const ERROR: i32 = 40;
/// Python: `logging.CRITICAL`.
pub const CRITICAL: i32 = 50;

/// The name of mpcore's logger, Python's: `"multiprocessing"`.
pub const LOGGER_NAME: &str = "multiprocessing";

/// The format of the records [`log_to_stderr`] prints, in Python's notation; the
/// level's name is [`level_name`]'s and the process name
/// [`current_process`](crate::current_process)'s.
pub const DEFAULT_LOGGING_FORMAT: &str = "[%(levelname)s/%(processName)s] %(message)s";

/// The logger's level and whether it prints to stderr, in one word so that a message
/// is checked with a single relaxed load: bits 0-31 hold the level, bit 32 the flag.
static LOG_STATE: AtomicU64 = AtomicU64::new(0);

const TO_STDERR: u64 = 1 << 32;

fn pack(level: i32, to_stderr: bool) -> u64 {
    u64::from(level as u32) | if to_stderr { TO_STDERR } else { 0 }
}

fn unpack(state: u64) -> (i32, bool) {
    (state as u32 as i32, state & TO_STDERR != 0)
}

/// A level of [`NOTSET`] stands for Python's default root level, [`WARNING`].
fn effective(level: i32) -> i32 {
    if level == NOTSET { WARNING } else { level }
}

/// Whether a record at `level` is printed: the logger prints to stderr and `level`
/// is at least its effective level.
#[inline]
fn emits(level: i32) -> bool {
    let (own, to_stderr) = unpack(LOG_STATE.load(Ordering::Relaxed));
    to_stderr && level >= effective(own)
}

/// Prints one record on stderr, in one `write`.
#[cold]
#[inline(never)]
fn emit(level: i32, msg: &dyn fmt::Display) {
    let process = process::current_process().name;
    let line = format!("[{}/{process}] {msg}\n", level_name(level));
    // Straight to the descriptor (Rust's stderr is unbuffered): a test harness's
    // output capture does not swallow it, and lines of concurrent processes never mix.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

fn update_log_state(change: impl Fn(i32, bool) -> (i32, bool)) {
    let _ = LOG_STATE.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |state| {
        let (level, to_stderr) = unpack(state);
        let (level, to_stderr) = change(level, to_stderr);
        Some(pack(level, to_stderr))
    });
}

/// The name Python's `logging` gives `level` (`logging.getLevelName`): `DEBUG`,
/// `INFO`, `WARNING`, `ERROR`, `CRITICAL`, `NOTSET`, and `Level N` for any other
/// number. Python 3 gives mpcore's own levels no name either: a [`SUBDEBUG`] record
/// prints as `[Level 5/MainProcess] ...`.
///
/// ```
/// use mpcore::util::{INFO, SUBWARNING, level_name};
///
/// assert_eq!(level_name(INFO), "INFO");
/// assert_eq!(level_name(SUBWARNING), "Level 25");
/// ```
pub fn level_name(level: i32) -> Cow<'static, str> {
    match level {
        CRITICAL => "CRITICAL".into(),
        ERROR => "ERROR".into(),
        WARNING => "WARNING".into(),
        INFO => "INFO".into(),
        DEBUG => "DEBUG".into(),
        NOTSET => "NOTSET".into(),
        other => format!("Level {other}").into(),
    }
}

/// mpcore's logger, Python's `multiprocessing` logger (what
/// `multiprocessing.get_logger()` returns): a handle on one per-process logger, so
/// every copy is the same logger.
///
/// Its level is a Python level number ([`DEBUG`], [`INFO`], ... or any other
/// number). It prints only once [`log_to_stderr`] was called: it has no other
/// handler, and unlike Python's `logging` it prints nothing (not even warnings)
/// before that. There is no root logger above it: a level of [`NOTSET`] means
/// [`WARNING`], Python's default root level.
///
/// ```
/// use mpcore::util::{self, INFO, WARNING};
///
/// let logger = util::get_logger();
/// assert_eq!(logger.name(), "multiprocessing");
/// assert_eq!(logger.effective_level(), WARNING); // nothing set yet
/// logger.set_level(INFO);
/// assert!(logger.is_enabled_for(INFO));
/// logger.info("not printed: nothing logs to stderr yet");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logger {
    _private: (),
}

impl Logger {
    /// The logger's name, [`LOGGER_NAME`].
    pub fn name(&self) -> &'static str {
        LOGGER_NAME
    }

    /// The level set on the logger, [`NOTSET`] if none was (Python: `logger.level`).
    pub fn level(&self) -> i32 {
        unpack(LOG_STATE.load(Ordering::Relaxed)).0
    }

    /// Sets the level: records below it are dropped (Python: `setLevel`). Children
    /// started afterwards inherit it, under every start method.
    pub fn set_level(&self, level: i32) {
        update_log_state(|_, to_stderr| (level, to_stderr));
    }

    /// The level that decides which records pass: the logger's own, or [`WARNING`]
    /// when it is [`NOTSET`] (Python: `getEffectiveLevel()`, with the root logger at
    /// its default level).
    pub fn effective_level(&self) -> i32 {
        effective(self.level())
    }

    /// Whether a record at `level` passes the logger's level (Python:
    /// `isEnabledFor`); it is printed if [`log_to_stderr`] was called, too.
    pub fn is_enabled_for(&self, level: i32) -> bool {
        level >= self.effective_level()
    }

    /// Whether [`log_to_stderr`] was called in this process or inherited from its
    /// parent.
    pub fn logs_to_stderr(&self) -> bool {
        unpack(LOG_STATE.load(Ordering::Relaxed)).1
    }

    /// Logs `msg` at `level` (Python: `logger.log(level, msg)`). `msg` is formatted
    /// only if the record is printed, so `format_args!` costs nothing otherwise:
    ///
    /// ```
    /// let logger = mpcore::get_logger();
    /// let n = 3;
    /// logger.log(mpcore::util::DEBUG, format_args!("{n} children left"));
    /// ```
    #[inline]
    pub fn log(&self, level: i32, msg: impl fmt::Display) {
        if emits(level) {
            emit(level, &msg);
        }
    }

    /// Logs `msg` at [`DEBUG`].
    pub fn debug(&self, msg: impl fmt::Display) {
        self.log(DEBUG, msg);
    }

    /// Logs `msg` at [`INFO`].
    pub fn info(&self, msg: impl fmt::Display) {
        self.log(INFO, msg);
    }

    /// Logs `msg` at [`WARNING`].
    pub fn warning(&self, msg: impl fmt::Display) {
        self.log(WARNING, msg);
    }

    /// Logs `msg` at [`ERROR`].
    pub fn error(&self, msg: impl fmt::Display) {
        self.log(ERROR, msg);
    }

    /// Logs `msg` at [`CRITICAL`].
    pub fn critical(&self, msg: impl fmt::Display) {
        self.log(CRITICAL, msg);
    }
}

/// mpcore's logger (Python: `multiprocessing.get_logger()`). It prints nothing
/// until [`log_to_stderr`] is called.
pub fn get_logger() -> Logger {
    Logger { _private: () }
}

/// Makes mpcore's logger print its records on stderr, as
/// `[LEVEL/ProcessName] message`, and sets its level unless `level` is [`NOTSET`]
/// (Python: `multiprocessing.log_to_stderr(level=None)`, whose `None` and `0` both
/// leave the level alone). Returns the logger.
///
/// Children started afterwards print too, at the same level, under every start
/// method. Calling it again adds no second handler (Python's would print every
/// record twice).
///
/// ```
/// use mpcore::util::INFO;
///
/// fn work() {
///     mpcore::get_logger().info("from child");
/// }
///
/// fn main() -> mpcore::Result<()> {
///     mpcore::init();
///     mpcore::log_to_stderr(INFO);
///     let mut p = mpcore::Process::new(work, ());
///     p.start()?;
///     p.join()?;
///     // stderr now holds, among others:
///     // [INFO/Process-1] child process calling self.run()
///     // [INFO/Process-1] from child
///     // [INFO/Process-1] process exiting with exitcode 0
///     Ok(())
/// }
/// ```
pub fn log_to_stderr(level: i32) -> Logger {
    update_log_state(|old, _| (if level == NOTSET { old } else { level }, true));
    // As CPython's, whose `_exit_function` is always registered: the process's own
    // shutdown shows in the log.
    register_exit_function();
    get_logger()
}

/// Logs `msg` at [`SUBDEBUG`] through mpcore's logger (Python:
/// `multiprocessing.util.sub_debug`).
#[inline]
pub fn sub_debug(msg: impl fmt::Display) {
    get_logger().log(SUBDEBUG, msg);
}

/// Logs `msg` at [`DEBUG`] through mpcore's logger (Python:
/// `multiprocessing.util.debug`).
#[inline]
pub fn debug(msg: impl fmt::Display) {
    get_logger().log(DEBUG, msg);
}

/// Logs `msg` at [`INFO`] through mpcore's logger (Python:
/// `multiprocessing.util.info`).
#[inline]
pub fn info(msg: impl fmt::Display) {
    get_logger().log(INFO, msg);
}

/// Logs `msg` at [`SUBWARNING`] through mpcore's logger (Python:
/// `multiprocessing.util.sub_warning`).
#[inline]
pub fn sub_warning(msg: impl fmt::Display) {
    get_logger().log(SUBWARNING, msg);
}

/// Logs `msg` at [`WARNING`] through mpcore's logger (Python 3.14:
/// `multiprocessing.util.warn`).
#[inline]
pub fn warn(msg: impl fmt::Display) {
    get_logger().log(WARNING, msg);
}

/// The logger's state, as it travels to a spawned or forkserver child in its
/// bootstrap (CPython's `log_level` and `log_to_stderr` preparation data). A forked
/// child has it already, in its copy of the parent's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LogSetup {
    level: i32,
    to_stderr: bool,
}

impl LogSetup {
    /// This process's logger state.
    pub(crate) fn current() -> LogSetup {
        let (level, to_stderr) = unpack(LOG_STATE.load(Ordering::Relaxed));
        LogSetup { level, to_stderr }
    }

    /// Makes it this process's logger state.
    pub(crate) fn apply(self) {
        LOG_STATE.store(pack(self.level, self.to_stderr), Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------
// Finalizers

/// Where a finalizer stands: by exit priority, then by order of creation. Keys sort
/// in the order CPython sorts its `(exitpriority, counter)` keys; finalizers run at
/// exit from the greatest key down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    priority: Option<i32>,
    seq: u64,
}

/// A registered callback.
struct Entry {
    callback: Box<dyn FnOnce() + Send>,
    /// The callback's type name, for the log and `Debug`.
    name: &'static str,
    /// The process that registered it: only that one runs it.
    pid: i32,
}

/// The finalizers of this process (CPython's `_finalizer_registry` and
/// `_finalizer_counter`), and mpcore's own exit hooks.
struct Registry {
    entries: BTreeMap<Key, Entry>,
    next_seq: u64,
    /// Work of mpcore's modules, registered once per program and kept by forked
    /// children (the queues' feeder flush): run with the finalizers of priority -5.
    hooks: Vec<fn()>,
}

impl Registry {
    const fn new() -> Registry {
        Registry {
            entries: BTreeMap::new(),
            next_seq: 0,
            hooks: Vec::new(),
        }
    }

    fn insert(&mut self, priority: Option<i32>, entry: Entry) -> Key {
        let key = Key {
            priority,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.entries.insert(key, entry);
        key
    }

    /// The keys `_run_finalizers(minpriority)` runs, in the order it runs them: those
    /// with an exit priority of at least `min_priority` (any, for `None`), highest
    /// priority first, and the later-made first among equals.
    fn exit_order(&self, min_priority: Option<i32>) -> Vec<Key> {
        self.entries
            .keys()
            .rev()
            .filter(|key| {
                key.priority
                    .is_some_and(|p| min_priority.is_none_or(|m| p >= m))
            })
            .copied()
            .collect()
    }
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry::new());

/// The priority at which mpcore's exit hooks run among the finalizers: CPython's
/// queues join their feeder threads at -5.
const EXIT_HOOK_PRIORITY: i32 = -5;

/// Removes the finalizer `key` and, if it belongs to this process, runs it (the body
/// of CPython's `Finalize.__call__`). The registry is not locked while it runs.
/// Returns whether it ran.
fn run_finalizer(key: Key) -> bool {
    let entry = lock(&REGISTRY).entries.remove(&key);
    let Some(entry) = entry else {
        sub_debug("finalizer no longer registered");
        return false;
    };
    if entry.pid != atfork::pid() {
        sub_debug("finalizer ignored because different process");
        // The callback and what it captured belong to the process that made it: a
        // copy made by fork is not ours to drop either.
        std::mem::forget(entry);
        return false;
    }
    sub_debug(format_args!("finalizer calling {}", entry.name));
    (entry.callback)();
    true
}

/// A callback that runs once: when it is [called](Finalize::call), when the handle
/// is dropped, or when the process exits if it has an exit priority, whichever
/// comes first (Python: `multiprocessing.util.Finalize`).
///
/// # What plays Python's `obj`
///
/// Python's `Finalize(obj, callback, ...)` runs `callback` when `obj` is garbage
/// collected. In Rust the handle plays `obj`'s part: keep it in the value whose end
/// it marks, and it runs when that value is dropped, as with CPython's
/// `self._close = Finalize(self, ...)`. Python's `Finalize(None, callback,
/// exitpriority=n)`, which belongs to no object, is [`detach`](Finalize::detach):
/// the callback then runs at exit (or never, if it was cancelled through another
/// path).
///
/// - A finalizer runs only in the process that made it. A forked child starts with
///   none of its parent's (CPython clears them too), and dropping a copied handle in
///   the child does nothing.
/// - At exit, only finalizers with an exit priority run: those of priority 0 and
///   more before the process's children are joined, the others after; higher
///   priorities first, and among equal priorities the one made last first. The
///   [module docs](self#at-exit) give the whole sequence.
/// - A panic in the callback reaches the caller of [`call`](Finalize::call). When a
///   drop or the exit runs it, the panic is reported on stderr and the program goes
///   on (Python: "Exception ignored in ..."), even in a drop during unwinding.
///
/// ```
/// use std::path::PathBuf;
/// use mpcore::util::Finalize;
///
/// /// A scratch file that is removed when the value is dropped, or at exit if the
/// /// value is still alive then (say, in a global, or in a child that calls
/// /// `mpcore::exit`).
/// struct Scratch {
///     path: PathBuf,
///     remove: Finalize,
/// }
///
/// impl Scratch {
///     fn new(path: PathBuf) -> std::io::Result<Scratch> {
///         std::fs::write(&path, b"scratch")?;
///         let target = path.clone();
///         let remove = Finalize::with_exit_priority(
///             move || {
///                 let _ = std::fs::remove_file(&target);
///             },
///             0,
///         );
///         Ok(Scratch { path, remove })
///     }
///
///     /// Removes the file now (a second call, or the drop, does nothing).
///     fn close(&self) {
///         self.remove.call();
///     }
/// }
///
/// let path = std::env::temp_dir().join(format!("mpcore-doc-{}", std::process::id()));
/// let scratch = Scratch::new(path.clone())?;
/// assert!(scratch.remove.still_active());
/// scratch.close();
/// assert!(!scratch.path.exists());
/// assert!(!scratch.remove.still_active());
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "dropping a Finalize runs its callback at once; keep it, or detach() it to run it at exit"]
pub struct Finalize {
    key: Key,
}

impl Finalize {
    /// A finalizer that runs `callback` when called or dropped, never at exit
    /// (Python: `Finalize(obj, callback)`).
    pub fn new<F: FnOnce() + Send + 'static>(callback: F) -> Finalize {
        Finalize::register(callback, None)
    }

    /// A finalizer that runs `callback` when called or dropped, or else at exit,
    /// where higher priorities run first and those below 0 after the process's
    /// children were joined (Python: `Finalize(obj, callback,
    /// exitpriority=exit_priority)`).
    pub fn with_exit_priority<F: FnOnce() + Send + 'static>(
        callback: F,
        exit_priority: i32,
    ) -> Finalize {
        Finalize::register(callback, Some(exit_priority))
    }

    fn register<F: FnOnce() + Send + 'static>(callback: F, priority: Option<i32>) -> Finalize {
        // The pid cache must follow forks, so that a forked child tells its
        // parent's finalizers from its own.
        atfork::register();
        if priority.is_some() {
            register_exit_function();
        }
        let entry = Entry {
            callback: Box::new(callback),
            name: type_name::<F>(),
            pid: atfork::pid(),
        };
        let key = lock(&REGISTRY).insert(priority, entry);
        Finalize { key }
    }

    /// Runs the callback unless it already ran or was cancelled; returns whether it
    /// ran now (Python: calling the `Finalize` object).
    ///
    /// ```
    /// let f = mpcore::util::Finalize::new(|| println!("closing"));
    /// assert!(f.call());
    /// assert!(!f.call()); // once only
    /// ```
    pub fn call(&self) -> bool {
        run_finalizer(self.key)
    }

    /// Unregisters the callback without running it; dropping the handle then does
    /// nothing either (Python: `cancel()`).
    ///
    /// ```
    /// let f = mpcore::util::Finalize::with_exit_priority(|| unreachable!(), 10);
    /// f.cancel();
    /// assert!(!f.still_active());
    /// assert!(!f.call());
    /// ```
    pub fn cancel(&self) {
        let entry = lock(&REGISTRY).entries.remove(&self.key);
        // Dropped with the registry unlocked: what the callback captured may itself
        // hold finalizers.
        drop(entry);
    }

    /// Whether the callback is still waiting to run (Python: `still_active()`).
    pub fn still_active(&self) -> bool {
        lock(&REGISTRY).entries.contains_key(&self.key)
    }

    /// The exit priority it was made with, if any.
    pub fn exit_priority(&self) -> Option<i32> {
        self.key.priority
    }

    /// Lets the finalizer outlive its handle: it stays registered and runs at exit,
    /// in the order of its exit priority (Python: `Finalize(None, callback,
    /// exitpriority=n)`, a finalizer that belongs to no object).
    ///
    /// # Panics
    ///
    /// If it has no exit priority: nothing could ever run it (CPython raises
    /// `ValueError: Without object, exitpriority cannot be None`). The callback is
    /// cancelled first.
    ///
    /// ```
    /// // Runs when this program exits, after its children were joined.
    /// mpcore::util::Finalize::with_exit_priority(|| println!("goodbye"), -10).detach();
    /// ```
    pub fn detach(self) {
        let this = std::mem::ManuallyDrop::new(self);
        if this.key.priority.is_none() {
            this.cancel();
            panic!(
                "a Finalize without an exit priority cannot be detached: nothing could \
                 ever run it (Python: Without object, exitpriority cannot be None)"
            );
        }
    }
}

impl Drop for Finalize {
    /// The handle's owner is gone, as Python's `obj` when it is collected: runs the
    /// callback if it has not run yet.
    fn drop(&mut self) {
        let key = self.key;
        if panic::catch_unwind(|| run_finalizer(key)).is_err() {
            let _ = std::io::stderr()
                .write_all(b"mpcore: a panic in a Finalize callback run by drop was ignored\n");
        }
    }
}

/// Python's repr: `<Finalize object, callback=NAME, exitpriority=N>`, or
/// `<Finalize object, dead>` once it ran or was cancelled.
impl fmt::Debug for Finalize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = lock(&REGISTRY).entries.get(&self.key).map(|e| e.name);
        match name {
            None => f.write_str("<Finalize object, dead>"),
            Some(name) => {
                write!(f, "<Finalize object, callback={name}")?;
                if let Some(priority) = self.key.priority {
                    write!(f, ", exitpriority={priority}")?;
                }
                f.write_str(">")
            }
        }
    }
}

/// Runs the finalizers with an exit priority of at least `min_priority` (all with
/// one, for `None`), in CPython's order; a panic in one is reported and the next
/// runs (CPython's `_run_finalizers`).
///
/// The set is taken before the first one runs: a finalizer made meanwhile waits for
/// the next pass. After the last pass (`None`) the registry is emptied: finalizers
/// without an exit priority never run, and their callbacks are not dropped either
/// (the process is ending; Rust drops no statics at exit).
fn run_finalizers(min_priority: Option<i32>) {
    let keys = lock(&REGISTRY).exit_order(min_priority);
    for key in keys {
        if let Some(priority) = key.priority {
            sub_debug(format_args!(
                "calling finalizer #{} with exitpriority {priority}",
                key.seq
            ));
        }
        // The panic hook has reported it already.
        let _ = panic::catch_unwind(|| run_finalizer(key));
    }
    if min_priority.is_none() {
        let left = std::mem::take(&mut lock(&REGISTRY).entries);
        std::mem::forget(left);
    }
}

/// The registry, held across a fork so that no other thread holds it at that moment
/// (part of `process::ForkLocks`).
pub(crate) struct ForkGuard(MutexGuard<'static, Registry>);

/// Locks the registry for a fork.
pub(crate) fn lock_for_fork() -> ForkGuard {
    ForkGuard(lock(&REGISTRY))
}

impl ForkGuard {
    /// In a forked child: forgets the parent's finalizers (CPython's child clears
    /// `_finalizer_registry`), keeping mpcore's exit hooks and the counter, so that
    /// a handle copied from the parent matches nothing. Allocates nothing and drops
    /// nothing of the parent's. Also clears the exiting flag.
    pub(crate) fn forget_inherited(&mut self) {
        std::mem::forget(std::mem::take(&mut self.0.entries));
        EXITING.store(false, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------
// At exit

static EXITING: AtomicBool = AtomicBool::new(false);

/// Whether this process is running its at-exit work (Python:
/// `multiprocessing.util.is_exiting()`): true from the start of that work on.
pub fn is_exiting() -> bool {
    EXITING.load(Ordering::Relaxed)
}

/// The at-exit work of a process (CPython's `_exit_function`): finalizers of
/// priority 0 and more, then daemonic children terminated and all children joined,
/// then the remaining finalizers and mpcore's exit hooks. Runs once per process.
pub(crate) fn exit_function() {
    if EXITING.swap(true, Ordering::SeqCst) {
        return;
    }
    info("process shutting down");
    debug("running all \"atexit\" finalizers with priority >= 0");
    run_finalizers(Some(0));
    process::finish_children();
    debug("running the remaining \"atexit\" finalizers");
    run_finalizers(Some(EXIT_HOOK_PRIORITY + 1));
    run_exit_hooks();
    run_finalizers(None);
}

extern "C" fn at_exit() {
    // Runs inside libc's `exit`: a panic here would abort, so catch it.
    let _ = panic::catch_unwind(exit_function);
}

/// Adds `hook` to the work done when this process ends (normally from `main`, by
/// [`exit`](crate::exit), or when a child's target returns), after its children
/// were joined. Forked children keep it. Register each hook once.
pub(crate) fn register_exit_hook(hook: fn()) {
    lock(&REGISTRY).hooks.push(hook);
}

/// Runs the hooks of [`register_exit_hook`], in registration order, without
/// allocating or holding the registry while one runs.
fn run_exit_hooks() {
    let mut i = 0;
    loop {
        let hook = lock(&REGISTRY).hooks.get(i).copied();
        let Some(hook) = hook else { break };
        hook();
        i += 1;
    }
}

/// Makes sure [`exit_function`] runs when this process ends normally. Idempotent.
pub(crate) fn register_exit_function() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // If libc has no room left, children are still joined by `exit()` and by
        // children themselves; nothing better can be done.
        let _ = crate::sys::process::atexit(at_exit);
        // Done once here, in the parent, so that forked children inherit them.
        let _ = pid_log_path();
        process::install_panic_report();
    });
}

/// The environment variable naming a file to which every child appends the line
/// `PID NAME` as it starts. Tools that show pids by process name (the lesson
/// harness turns `4242` into `<pid Process-1>`) read it; mpcore never reads it back.
pub const PID_LOG_ENV: &str = "MPCORE_PID_LOG";

/// Appends `PID NAME` to the file named by [`PID_LOG_ENV`], if it is set.
pub(crate) fn log_pid(name: &str) {
    if let Some(path) = pid_log_path() {
        let line = format!("{} {name}\n", std::process::id());
        // One `write` on an O_APPEND file: lines from concurrent children never mix.
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// The value of [`PID_LOG_ENV`], read once per program.
fn pid_log_path() -> Option<&'static std::path::Path> {
    static PATH: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    PATH.get_or_init(|| std::env::var_os(PID_LOG_ENV).map(Into::into))
        .as_deref()
}

impl crate::context::Context {
    /// mpcore's logger (Python: `ctx.get_logger()`); the same for every context.
    pub fn get_logger(&self) -> Logger {
        get_logger()
    }

    /// Makes mpcore's logger print to stderr (Python: `ctx.log_to_stderr(level)`);
    /// see [`log_to_stderr`].
    pub fn log_to_stderr(&self, level: i32) -> Logger {
        log_to_stderr(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    fn entry() -> Entry {
        Entry {
            callback: Box::new(|| {}),
            name: "noop",
            pid: atfork::pid(),
        }
    }

    #[test]
    fn exit_order_is_cpythons() {
        // Row 147's registrations, in the same order: c has no priority, then d10 (1),
        // d01, d02, d03 (0), e (-10), STOP (-100).
        let mut registry = Registry::new();
        let mut names = BTreeMap::new();
        for (name, priority) in [
            ("c", None),
            ("d10", Some(1)),
            ("d01", Some(0)),
            ("d02", Some(0)),
            ("d03", Some(0)),
            ("e", Some(-10)),
            ("STOP", Some(-100)),
        ] {
            names.insert(registry.insert(priority, entry()), name);
        }
        let order = |min| -> Vec<&str> {
            registry
                .exit_order(min)
                .iter()
                .map(|key| names[key])
                .collect()
        };
        assert_eq!(order(Some(0)), ["d10", "d03", "d02", "d01"]);
        assert_eq!(order(Some(-10)), ["d10", "d03", "d02", "d01", "e"]);
        assert_eq!(order(None), ["d10", "d03", "d02", "d01", "e", "STOP"]);
        assert!(registry.exit_order(Some(2)).is_empty());
    }

    fn counter() -> (Arc<AtomicUsize>, impl FnOnce() + Send + 'static) {
        let count = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&count);
        (count, move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
    }

    #[test]
    fn a_finalizer_runs_once_by_call_or_drop() {
        let (count, callback) = counter();
        let f = Finalize::new(callback);
        assert!(f.still_active());
        assert_eq!(f.exit_priority(), None);
        assert!(f.call());
        assert!(!f.still_active());
        assert!(!f.call());
        drop(f);
        assert_eq!(count.load(Ordering::SeqCst), 1);

        let (count, callback) = counter();
        drop(Finalize::with_exit_priority(callback, 3));
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_cancelled_finalizer_never_runs_and_drops_its_callback() {
        let (count, callback) = counter();
        let witness = Arc::new(());
        let held = Arc::clone(&witness);
        let f = Finalize::new(move || {
            let _ = &held;
            callback();
        });
        assert_eq!(Arc::strong_count(&witness), 2);
        f.cancel();
        assert!(!f.still_active());
        assert_eq!(Arc::strong_count(&witness), 1);
        assert!(!f.call());
        drop(f);
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_finalizer_of_another_process_is_ignored() {
        let (count, callback) = counter();
        let f = Finalize::new(callback);
        // As if it had been copied from a parent by fork.
        lock(&REGISTRY)
            .entries
            .get_mut(&f.key)
            .expect("registered")
            .pid += 1;
        assert!(!f.call());
        assert!(!f.still_active());
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }

    // Panicking callbacks are tested in a child (tests/util.rs): a panic in this
    // multi-threaded test process while another test forks could leave the panic
    // machinery's locks held in that test's child.

    #[test]
    fn a_detached_finalizer_stays_registered() {
        let (count, callback) = counter();
        let f = Finalize::with_exit_priority(callback, 7);
        let key = f.key;
        f.detach();
        assert!(lock(&REGISTRY).entries.contains_key(&key));
        assert!(run_finalizer(key));
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn debug_is_pythons_repr() {
        let f = Finalize::with_exit_priority(|| {}, 5);
        let repr = format!("{f:?}");
        assert!(repr.starts_with("<Finalize object, callback="), "{repr}");
        assert!(repr.contains("{{closure}}"), "{repr}");
        assert!(repr.ends_with(", exitpriority=5>"), "{repr}");
        f.cancel();
        assert_eq!(format!("{f:?}"), "<Finalize object, dead>");
    }

    #[test]
    fn finalize_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Finalize>();
        check::<Logger>();
    }

    #[test]
    fn levels_have_pythons_names() {
        let names: Vec<_> = [NOTSET, SUBDEBUG, DEBUG, INFO, SUBWARNING, WARNING, 32]
            .into_iter()
            .map(level_name)
            .collect();
        assert_eq!(
            names,
            [
                "NOTSET", "Level 5", "DEBUG", "INFO", "Level 25", "WARNING", "Level 32"
            ]
        );
        assert_eq!(level_name(ERROR), "ERROR");
        assert_eq!(level_name(CRITICAL), "CRITICAL");
    }

    #[test]
    fn the_log_state_packs_any_level() {
        for level in [NOTSET, SUBDEBUG, 32, -7, i32::MAX, i32::MIN] {
            for to_stderr in [false, true] {
                assert_eq!(unpack(pack(level, to_stderr)), (level, to_stderr));
            }
        }
        assert_eq!(effective(NOTSET), WARNING);
        assert_eq!(effective(SUBDEBUG), SUBDEBUG);
    }
}
