//! Helpers shared by the other modules, and the at-exit handling
//! (CPython: `util.py`).
//!
//! CPython registers `_exit_function` with `atexit` when `multiprocessing` is
//! imported; it terminates daemonic children and joins the others when the main
//! module ends. mpcore registers the same work with `atexit(3)` the first time a
//! process starts (or in [`init`](crate::init)), so it runs when `main` returns.

use std::io::Write;
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

use crate::process;

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

extern "C" fn exit_function() {
    // Runs inside libc's `exit`: a panic here would abort, so catch it.
    let _ = std::panic::catch_unwind(|| {
        process::finish_children();
        run_exit_hooks();
    });
}

/// Work to do when a process ends, after its children were joined: queues flush
/// their feeder threads here (CPython: the `Finalize` callbacks with a negative
/// exit priority that `_exit_function` runs last).
static EXIT_HOOKS: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Adds `hook` to the work done when this process ends (normally from `main`, by
/// [`exit`](crate::exit), or when a child's target returns). Register each hook once.
pub(crate) fn register_exit_hook(hook: fn()) {
    lock(&EXIT_HOOKS).push(hook);
}

/// Runs the hooks of [`register_exit_hook`], in registration order.
pub(crate) fn run_exit_hooks() {
    let hooks = lock(&EXIT_HOOKS).clone();
    for hook in hooks {
        hook();
    }
}

/// Makes sure [`exit_function`] runs when this process ends normally. Idempotent.
pub(crate) fn register_exit_function() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // If libc has no room left, children are still joined by `exit()` and by
        // children themselves; nothing better can be done.
        let _ = crate::sys::process::atexit(exit_function);
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
