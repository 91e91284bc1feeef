//! Python's `multiprocessing`, in Rust.
//!
//! mpcore gives a Rust program the tools Python's `multiprocessing` gives a Python
//! one: processes started by fork, spawn or a fork server; pipes and queues between
//! them; locks, semaphores and other synchronization that works across processes;
//! shared values, arrays and shared memory; managers; and pools. The modules mirror
//! CPython's `Lib/multiprocessing` one for one, so `process.rs` can be read beside
//! `process.py`.
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
//! are terminated and the others joined when `main` returns), and in a child started
//! by re-executing the program it runs that child's target instead of the rest of
//! `main`.
//!
//! # Exit codes
//!
//! As in Python: 0 when the target returns, 1 when it panics (the child prints
//! `Process Process-1:` and the panic message on stderr), `n` after
//! [`exit`]`(n)` (modulo 256), and `-s` when a signal `s` killed it.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod connection;
pub mod error;
pub mod obj;
pub(crate) mod popen;
pub mod process;
pub mod queues;
pub mod reduction;
pub mod sys;
pub mod util;

pub use connection::{Connection, pipe, pipe_simplex};
pub use error::{Error, Result};
pub use obj::Obj;
pub use process::{
    Process, ProcessInfo, Run, Target, active_children, current_process, parent_process,
};
pub use queues::{JoinableQueue, Queue, SimpleQueue};

/// Prepares mpcore; call it first in `main`, before anything else runs.
///
/// In the main process it registers the at-exit work and returns at once. It is the
/// Rust counterpart of Python's `if __name__ == "__main__":` guard: a child started by
/// re-executing the program (the spawn start method) runs its target inside `init()`
/// and never returns into the rest of `main`.
pub fn init() {
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
