//! Start methods and contexts: [`StartMethod`], [`Context`], [`get_context`],
//! [`set_start_method`], [`get_start_method`], [`get_all_start_methods`]
//! (CPython: `context.py`).
//!
//! # When the start method is fixed
//!
//! As in Python, the program-wide start method is chosen once:
//!
//! - [`set_start_method`] fixes it; a second call fails with "context has already
//!   been set" (Python's `RuntimeError`; mpcore has no `force=True`).
//! - [`get_start_method`] fixes it to the default if nothing did before, as Python's
//!   `get_start_method()` (without `allow_none`): a later `set_start_method` fails.
//! - Starting a [`Process`] made without a context (`Process::new`, ...) fixes it the
//!   same way, as Python's `Process.start()` does through `get_context()`.
//! - Creating a `Process`, calling [`init`](crate::init), and starting a process made
//!   by [`Context::process`] do **not** fix it (Python rows: constructing `Process()`
//!   does not; a process from `get_context('spawn')` leaves the default unset).
//! - A child starts with its start method fixed to the one it was started by, so the
//!   children it starts use the same method, and `get_start_method()` in it reports it.
//!
//! The default is [`StartMethod::Fork`]; the environment variable
//! `MPCORE_START_METHOD=fork|spawn|forkserver` replaces it (an unknown value is
//! reported on stderr once and ignored).
//!
//! # Objects work with every start method
//!
//! The objects a context makes (locks, semaphores, conditions, events, barriers,
//! queues, pipes, shared values and arrays) are the same whatever its start method,
//! and they work in children of **every** method: a [`Queue`](crate::Queue) or a
//! [`Lock`](crate::Lock) made by `get_context(StartMethod::Fork)` may be passed to a
//! child started by `get_context(StartMethod::Spawn)`, and the other way round.
//! Objects made without a context (`Lock::new()`, ...) are the same too.
//!
//! This differs from CPython on purpose. There, a lock made by a fork context is a
//! named POSIX semaphore that is unlinked at once (fork children inherit it), so it
//! cannot be opened by name from a spawned process, and passing it (or a queue,
//! which holds one) to a spawn or forkserver child fails with `RuntimeError: A
//! SemLock created in a fork context is being shared with a process in a spawn
//! context. This is not supported.` mpcore has nothing to open by name: every
//! object lives in shared memory reached through a descriptor, and descriptors
//! travel with the child's arguments under every method (see
//! [`reduction`](crate::reduction)). So the start method only decides how the
//! *process* is started, never what the objects are.
//!
//! # Constructors on `Context`
//!
//! A [`Context`] offers the constructors of the library bound to its start method.
//! Each module adds its own with an `impl Context` block of its own file (inherent
//! impls may be split across modules of a crate), so `context` never depends on the
//! modules above it:
//!
//! ```ignore
//! // in connection.rs
//! impl crate::context::Context {
//!     /// Python: `ctx.Pipe()`.
//!     pub fn pipe(&self) -> Result<(Connection, Connection)> { pipe() }
//! }
//! ```
//!
//! A constructor whose object depends on the start method reads it with
//! [`Context::get_start_method`].

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, Once};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::process::{Process, Run, Target};
use crate::util::lock;

/// The environment variable that replaces the default start method.
pub const START_METHOD_ENV: &str = "MPCORE_START_METHOD";

/// How a child process is started (Python's start method names).
///
/// ```
/// use mpcore::StartMethod;
/// assert_eq!("forkserver".parse::<StartMethod>()?, StartMethod::Forkserver);
/// assert_eq!(StartMethod::Spawn.to_string(), "spawn");
/// # Ok::<(), mpcore::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StartMethod {
    /// `fork(2)`: the child is a copy of the parent at `start()` and runs the target
    /// from the copied memory. Fast; carries closures; inherits everything.
    Fork,
    /// The program is executed again (`/proc/self/exe` by `posix_spawn`); the child
    /// runs only the target, decoded from its serde arguments, and inherits nothing
    /// but what it is passed.
    Spawn,
    /// A fork server, a clean copy of the program started on first use, forks each
    /// child; the child inherits nothing from the parent but what it is passed.
    Forkserver,
}

impl StartMethod {
    /// Python's name for the method: `fork`, `spawn` or `forkserver`.
    pub fn as_str(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::Forkserver => "forkserver",
        }
    }

    /// The name of CPython's process class for a context of this method
    /// (`ForkProcess`, `SpawnProcess`, `ForkServerProcess`): the prefix of default
    /// names and the class name in a process's repr.
    pub(crate) fn process_class(self) -> &'static str {
        match self {
            StartMethod::Fork => "ForkProcess",
            StartMethod::Spawn => "SpawnProcess",
            StartMethod::Forkserver => "ForkServerProcess",
        }
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StartMethod {
    type Err = Error;

    /// Parses `fork`, `spawn` or `forkserver`; anything else is Python's
    /// "cannot find context for 'bogus'".
    fn from_str(s: &str) -> Result<StartMethod> {
        match s {
            "fork" => Ok(StartMethod::Fork),
            "spawn" => Ok(StartMethod::Spawn),
            "forkserver" => Ok(StartMethod::Forkserver),
            other => Err(Error::invalid(format!("cannot find context for '{other}'"))),
        }
    }
}

/// The program-wide start method once fixed (CPython's `_actual_context`).
static FIXED: Mutex<Option<StartMethod>> = Mutex::new(None);

/// The default: `MPCORE_START_METHOD` if set and valid, else fork.
fn default_method() -> StartMethod {
    match std::env::var(START_METHOD_ENV) {
        Ok(value) if !value.is_empty() => value.parse().unwrap_or_else(|_| {
            static WARN: Once = Once::new();
            WARN.call_once(|| {
                eprintln!(
                    "mpcore: ignoring {START_METHOD_ENV}={value:?} \
                     (expected fork, spawn or forkserver)"
                );
            });
            StartMethod::Fork
        }),
        _ => StartMethod::Fork,
    }
}

/// Sets the program-wide start method (Python: `multiprocessing.set_start_method`).
///
/// The first call succeeds; once the method is fixed (by an earlier call, by
/// [`get_start_method`], or by starting a process made without a context) it fails
/// with "context has already been set". See the [module docs](self).
///
/// ```
/// use mpcore::StartMethod;
///
/// fn main() -> mpcore::Result<()> {
///     mpcore::init();
///     mpcore::set_start_method(StartMethod::Forkserver)?;
///     assert_eq!(mpcore::get_start_method(), StartMethod::Forkserver);
///     let err = mpcore::set_start_method(StartMethod::Fork).unwrap_err();
///     assert!(err.to_string().contains("already"));
///     Ok(())
/// }
/// ```
pub fn set_start_method(method: StartMethod) -> Result<()> {
    let mut fixed = lock(&FIXED);
    if fixed.is_some() {
        return Err(Error::invalid("context has already been set"));
    }
    *fixed = Some(method);
    Ok(())
}

/// The program-wide start method, fixing the default if nothing was chosen yet
/// (Python: `multiprocessing.get_start_method()`).
///
/// ```
/// let method = mpcore::get_start_method();
/// assert!(mpcore::get_all_start_methods().contains(&method));
/// // Asking fixed it: it can no longer be changed.
/// assert!(mpcore::set_start_method(mpcore::StartMethod::Spawn).is_err());
/// ```
pub fn get_start_method() -> StartMethod {
    *lock(&FIXED).get_or_insert_with(default_method)
}

/// Every start method this platform offers, the default first as on Linux with
/// Python 3.11 to 3.13: `[Fork, Spawn, Forkserver]`
/// (Python: `multiprocessing.get_all_start_methods`).
pub fn get_all_start_methods() -> Vec<StartMethod> {
    vec![
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ]
}

/// A context for `method`: the library's constructors, bound to that start method
/// (Python: `multiprocessing.get_context(method)`). Using a context does not fix the
/// program-wide start method.
///
/// ```
/// use mpcore::StartMethod;
///
/// fn hello(n: u32) {
///     println!("hello {n} from {}", mpcore::current_process().name);
/// }
///
/// fn main() -> mpcore::Result<()> {
///     mpcore::init();
///     let ctx = mpcore::get_context(StartMethod::Spawn);
///     let mut p = ctx.process(hello, (1,));
///     assert!(p.name().starts_with("SpawnProcess-"));
///     p.start()?;
///     p.join()?;
///     assert_eq!(p.exitcode(), Some(0));
///     Ok(())
/// }
/// ```
pub fn get_context(method: StartMethod) -> Context {
    Context { method }
}

/// The library's constructors bound to one start method (Python: the context objects
/// `get_context()` returns). Other modules add their constructors with their own
/// `impl Context` blocks; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    method: StartMethod,
}

impl Context {
    /// The start method of this context (Python: `ctx.get_start_method()`).
    pub fn get_start_method(&self) -> StartMethod {
        self.method
    }

    /// A process that will call `target` with `args` and start with this context's
    /// method (Python: `ctx.Process(target=target, args=args)`). Its default name is
    /// CPython's for the context's process class: `ForkProcess-N`, `SpawnProcess-N` or
    /// `ForkServerProcess-N`.
    pub fn process<F: Target<A>, A: Send + 'static>(&self, target: F, args: A) -> Process {
        self.bind(Process::new(target, args))
    }

    /// [`Process::from_run`] with this context's start method.
    pub fn process_from_run<R: Run>(&self, obj: R) -> Process {
        self.bind(Process::from_run(obj))
    }

    /// [`Process::from_closure`] with this context's start method (which must be
    /// fork for `start()` to succeed).
    pub fn process_from_closure<F: FnOnce() + Send + 'static>(&self, f: F) -> Process {
        self.bind(Process::from_closure(f))
    }

    fn bind(&self, process: Process) -> Process {
        process.bind_to_context(self.method)
    }
}

/// The method a process made without a context starts with: the program-wide one,
/// which this fixes (as Python's `Process.start()`).
pub(crate) fn method_for_start() -> StartMethod {
    get_start_method()
}

/// Holds the start-method lock across a fork, so that no other thread holds it in
/// the child.
pub(crate) fn lock_for_fork() -> MutexGuard<'static, Option<StartMethod>> {
    lock(&FIXED)
}

/// Fixes the start method of a new child to the one that started it.
pub(crate) fn fix_in_child(guard: &mut Option<StartMethod>, method: StartMethod) {
    *guard = Some(method);
}

/// [`fix_in_child`] for children that did not fork (nothing else holds the lock).
pub(crate) fn fix_in_new_child(method: StartMethod) {
    fix_in_child(&mut lock(&FIXED), method);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in get_all_start_methods() {
            assert_eq!(m.to_string().parse::<StartMethod>().unwrap(), m);
        }
        let err = "bogus".parse::<StartMethod>().unwrap_err();
        assert_eq!(err.to_string(), "cannot find context for 'bogus'");
    }

    #[test]
    fn a_context_knows_its_method() {
        for m in get_all_start_methods() {
            let ctx = get_context(m);
            assert_eq!(ctx.get_start_method(), m);
            assert_eq!(ctx.clone(), ctx);
        }
    }
}
