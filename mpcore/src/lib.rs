//! Python's `multiprocessing`, in Rust.
//!
//! mpcore gives a Rust program the tools Python's `multiprocessing` gives a Python
//! one: processes started by fork, spawn or a fork server; pipes and queues between
//! them; locks, semaphores and other synchronization that works across processes;
//! shared values, arrays and shared memory (managers and pools are still to come).
//! The modules mirror CPython's `Lib/multiprocessing` one for one, so `process.rs`
//! can be read beside `process.py`.
//!
//! # A first process
//!
//! ```
//! fn info(title: String) {
//!     println!("{title}: I am {}", mpcore::current_process().name);
//! }
//!
//! fn main() -> mpcore::Result<()> {
//!     mpcore::init(); // first line of main, always
//!     let mut p = mpcore::Process::new(info, ("apple".to_string(),));
//!     p.start()?;
//!     p.join()?;
//!     assert_eq!(p.exitcode(), Some(0));
//!     Ok(())
//! }
//! ```
//!
//! # `init()`: the `if __name__ == "__main__":` of Rust
//!
//! Call [`init`] first in `main`. It registers the at-exit work (daemonic children
//! are terminated and the others joined when `main` returns), and it is the guard of
//! a child started by re-executing the program: such a child runs its target and
//! exits instead of running the rest of `main`.
//!
//! # Start methods
//!
//! Three ways to start a child, as in Python ([`StartMethod`], [`context`]):
//!
//! - **fork** (the default): the child is a copy of the parent at `start()`. It can
//!   run any closure ([`Process::from_closure`]).
//! - **spawn**: the program is executed again (`/proc/self/exe`, by `posix_spawn`)
//!   and the child runs only the target, a plain `fn` (or a closure that captures
//!   nothing) with serde arguments ([`Process::new`]) or a [`Run`] value
//!   ([`Process::from_run`]). It inherits nothing but its arguments: not the
//!   parent's globals, not its descriptors (handles among the arguments are passed).
//! - **forkserver**: a fork server, started from a clean copy of the program on first
//!   use, forks each child. Children inherit nothing of the parent, as under spawn,
//!   and start about as fast as forked ones.
//!
//! `MPCORE_START_METHOD=fork|spawn|forkserver` replaces the default, and
//! [`set_start_method`] / [`get_context`] choose one in code.
//!
//! ## How a re-executed child avoids running `main`
//!
//! A spawned child (and the fork server) is the same executable, started with the
//! environment variable `MPCORE_BOOTSTRAP_FD` naming an inherited descriptor that
//! holds its *bootstrap*: the target (as the offset of a monomorphised trampoline
//! from an anchor of this crate), the encoded arguments, the child's name and
//! identity, and the descriptors of its handles. mpcore reads it in an **ELF
//! constructor** (a function in `.init_array`, which the loader runs before `main`):
//! the constructor removes the variable, runs the target with the usual exit-code
//! rules, and leaves with `_exit`. So a child never runs any of `main`, not even the
//! code before `init()`: this is stricter than DESIGN's "like Python, code before
//! `init()` runs again", on purpose. It is what makes the guard impossible to get
//! wrong, and what lets mpcore's own test binaries (whose `main` libtest generates)
//! start spawn and forkserver children.
//!
//! - **Your own test binaries**: nothing to do. Any binary that calls
//!   `Process::start` or `init()` links the constructor, so `#[test]` functions may
//!   start children under every start method.
//! - **`init()`** stays the documented first line of `main`: it registers the
//!   at-exit work, and on a platform where no constructor runs it is where a child
//!   is recognised and run instead.
//! - **The catch**: code in other constructors that run before mpcore's still runs
//!   in the child, and the child runs before the Rust runtime's own set-up of `main`
//!   (it ignores SIGPIPE itself, as that set-up would; the main thread has no name,
//!   and a stack overflow is a plain SIGSEGV).
//! - The target must live in the same executable, and mpcore must be linked
//!   statically (the default rlib), so that the anchor and the trampoline move
//!   together under ASLR. The child checks that it runs its parent's executable file
//!   before it calls anything.
//!
//! # Exit codes
//!
//! As in Python: 0 when the target returns, 1 when it panics (the child prints
//! `Process Process-1:` and the panic message on stderr), `n` after
//! [`exit`]`(n)` (modulo 256), and `-s` when a signal `s` killed it.
//!
//! A child ends when its target returns, as a Rust program ends when `main` returns:
//! its other threads end with it, unjoined (Python would wait for its non-daemon
//! threads). See [`Process`] for the details.
//!
//! # Logging and finalizers
//!
//! As Python's `multiprocessing.log_to_stderr(logging.INFO)`, [`log_to_stderr`]
//! turns on mpcore's logger, which prints `[LEVEL/ProcessName] message` lines on
//! stderr. Children inherit its level under every start method, and mpcore logs
//! what CPython logs: `child process calling self.run()`, the at-exit steps,
//! `process exiting with exitcode 0`. [`get_logger`] gives the logger itself, for
//! your own records; levels are Python's numbers ([`util::DEBUG`],
//! [`util::INFO`], ...). Nothing is printed until `log_to_stderr` is called.
//!
//! [`util::Finalize`] is Python's `multiprocessing.util.Finalize`: a callback that
//! runs once, when called, when its handle is dropped, or at exit in the order of
//! its exit priority (those of priority 0 and more before the process's children
//! are joined, the others after). Keep the handle in the value whose end it marks.
//!
//! ```
//! use mpcore::util::{Finalize, INFO};
//!
//! fn work() {
//!     mpcore::get_logger().info("working");
//!     // Runs when this child exits, after its own children were joined.
//!     Finalize::with_exit_priority(|| println!("child cleanup"), -1).detach();
//! }
//!
//! fn main() -> mpcore::Result<()> {
//!     mpcore::init();
//!     mpcore::log_to_stderr(INFO); // [INFO/Process-1] working, ...
//!     let mut p = mpcore::Process::new(work, ());
//!     p.start()?;
//!     p.join()?;
//!     Ok(())
//! }
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod connection;
pub mod context;
pub mod error;
pub(crate) mod forkserver;
pub mod heap;
pub mod obj;
pub(crate) mod popen;
pub mod process;
pub mod queues;
pub mod reduction;
pub mod resource_tracker;
pub mod shared_memory;
pub mod sharedctypes;
pub(crate) mod spawn;
pub mod synchronize;
pub mod sys;
pub mod util;

pub use connection::{Connection, pipe, pipe_simplex};
pub use context::{
    Context, StartMethod, get_all_start_methods, get_context, get_start_method, set_start_method,
};
pub use error::{Error, Result};
pub use obj::Obj;
pub use process::{
    ParentProcess, Process, ProcessInfo, Run, Target, active_children, current_process,
    parent_process,
};
pub use queues::{JoinableQueue, Queue, SimpleQueue};
pub use shared_memory::{ShareableList, SharedMemory};
pub use sharedctypes::{Array, CType, RawArray, RawValue, Value};
pub use synchronize::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
pub use util::{get_logger, log_to_stderr};

/// Prepares mpcore; call it first in `main`, before anything else runs.
///
/// In the main process it registers the at-exit work and returns at once. It is the
/// Rust counterpart of Python's `if __name__ == "__main__":` guard: a child started by
/// re-executing the program (spawn and forkserver) never returns into the rest of
/// `main`. On Linux such a child is run by mpcore's ELF constructor before `main`
/// even starts (see [the crate docs](crate#how-a-re-executed-child-avoids-running-main));
/// where no constructor runs, `init()` recognises the child and runs it instead.
/// `init()` does not fix the start method.
pub fn init() {
    spawn::init_guard();
    util::register_exit_function();
}

/// Ends the current process with `code` (Python: `sys.exit(code)` in a child).
///
/// In a child started by mpcore, the child's own children are joined (daemonic ones
/// terminated) and the process leaves with `_exit`, so the parent's at-exit work never
/// runs in it. In the main process this is `std::process::exit`, which runs the
/// at-exit work. The kernel keeps the low 8 bits: `exit(256)` gives 0, `exit(-1)` 255.
pub fn exit(code: i32) -> ! {
    if process::is_child() {
        process::exit_child(code)
    }
    util::flush_std_streams();
    std::process::exit(code)
}

/// The number of CPUs this process may run on (Python: `os.cpu_count()`, or
/// `os.process_cpu_count()` since 3.13, which this matches).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
