//! The lesson harness: runs every lesson, normalises what it prints, and checks it.
//!
//! Each lesson has a test file `harness/tests/NAME.rs`. The model is `create.rs`:
//!
//! ```no_run
//! #[test]
//! fn create() {
//!     // Runs `create` under every start method in START_METHODS (the normalised
//!     // outputs must be equal), then `lessons/reference/create.py` under CPython
//!     // (normalised stdout and exit code must be equal), and returns the first run.
//!     let run = harness::check_lesson("create", &[]);
//!
//!     // One snapshot, harness/tests/snapshots/create.snap, in insta-cmd's layout.
//!     harness::assert_lesson_snapshot!(run);
//!
//!     // Then what the lesson teaches, checked on real pids (`run.pids` maps each
//!     // child's pid to its name, from the pid log):
//!     let child = run.pid_of("Process-1").expect("the child logged its pid");
//!     assert_ne!(child, run.main_pid);
//! }
//! ```
//!
//! # What a run does
//!
//! [`Lesson::run`] (and [`run_lesson`]) builds the lesson binaries once per test
//! process (`cargo build -p lessons --bins`, same profile as the tests), then runs the
//! binary in its own process group with stdin from `/dev/null` and the environment
//! `NO_COLOR=1 RUST_BACKTRACE=0 LESSON_TIME_SCALE=0.1 MPCORE_START_METHOD=<method>
//! MPCORE_PID_LOG=<temp file>`. mpcore children append `PID NAME` to the pid log as they
//! start. A run that outlives its limit (60 s) has its whole group killed and fails. After
//! the main process exits, the group must be empty (nothing still running, no zombie)
//! and no new `/dev/shm` entry named `mpcore...` may remain; the failure names what was
//! left, and the harness kills and removes it.
//!
//! The Python reference runs as `python3 -P lessons/reference/NAME.py ARGS` with the same
//! environment and `PYTHONPATH=harness/python`, whose `sitecustomize.py` makes stdout
//! line-buffered, makes `MPCORE_START_METHOD` the default start method, and makes every
//! child append `PID NAME` to the same pid log, so Python's pids normalise exactly like
//! Rust's. Without python3 (3.11 or newer) the comparison is skipped with a note.
//!
//! # Settings
//!
//! Use the [`Lesson`] builder for anything beyond name and arguments:
//!
//! ```no_run
//! use std::time::Duration;
//! let run = harness::Lesson::new("join")
//!     .args(&["--sequential"])        // snapshot `join-sequential`
//!     .time_scale(0.5)                // LESSON_TIME_SCALE
//!     .timeout(Duration::from_secs(120))
//!     .skip_python("the reason, printed with the test output")
//!     .check();
//! harness::assert_lesson_snapshot!(run);
//! ```
//!
//! # Normalisation
//!
//! See [`normalize`](mod@normalize): pids become `<pid MainProcess>`, `<pid shell>` (the
//! main process's parent), `<pid Process-1>`
//! (named from the pid log) or `<pid ?1>` (seen in the group, unnamed); timestamps
//! `<time>`; durations `<dur>`; temp paths, shared-memory names and addresses
//! placeholders; lines inside any-order blocks (after the line
//! `--- the next lines may come in any order ---`, until `--- back in order ---`) are
//! sorted.
//!
//! # Snapshots and the book
//!
//! [`assert_lesson_snapshot!`] stores `harness/tests/snapshots/<snapshot name>.snap`
//! with the description `$ just lesson NAME ARGS`. Each chapter shows a snapshot's
//! stdout in a generated region (see [`docs`]); `just bless` accepts new output and
//! rewrites the regions, and the `docs_are_fresh` test fails when a region is stale.

#![warn(missing_docs)]

pub mod docs;
mod lesson;
pub mod manifest;
pub mod normalize;
pub mod process;

use std::path::Path;

pub use lesson::{
    DEFAULT_TIME_SCALE, DEFAULT_TIMEOUT, Lesson, LessonRun, START_METHODS, assert_same_as_python,
    check_lesson, diff, lesson_binary, python, python_dir, run_lesson,
};

/// insta, re-exported for [`assert_lesson_snapshot!`].
pub use insta;

/// The workspace root (the directory above `harness/`).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ lies inside the workspace")
}

/// Asserts a [`LessonRun`]'s snapshot: `harness/tests/snapshots/<snapshot_name>.snap`
/// holds `run.normalized`, described by the command line (`$ just lesson create`).
///
/// A new or changed snapshot fails the test and is written beside the old one as
/// `.snap.new` (review with `just review`, or accept all with `just bless`); with
/// `INSTA_UPDATE=no` (CI) nothing is written.
#[macro_export]
macro_rules! assert_lesson_snapshot {
    ($run:expr) => {{
        let run: &$crate::LessonRun = &$run;
        let mut settings = $crate::insta::Settings::clone_current();
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.set_description(run.command.clone());
        settings.bind(|| {
            $crate::insta::assert_snapshot!(run.snapshot_name.as_str(), run.normalized.as_str());
        });
    }};
}
