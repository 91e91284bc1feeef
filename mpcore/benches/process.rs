//! Process start+join under fork: mpcore against CPython and against the raw floor.
//!
//! Each iteration creates a `Process` whose target does nothing, starts it and joins
//! it; the raw twin is the same work with nothing of mpcore around it: `fork`, a child
//! that calls `_exit(0)` at once, and `waitpid`. `benches/report.py` (`just bench`)
//! reads the medians that criterion writes and sets them beside CPython's
//! (`benches/python/process.py`). Run alone: `cargo bench -p mpcore --bench process`.

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use mpcore::Process;
use mpcore::sys::process::{exit_immediately, fork_into};
use nix::sys::wait::{WaitStatus, waitpid};

/// The target of every child: the cost measured is mpcore's alone.
fn noop() {}

fn fork_start_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("fork_start_join");
    // Python: `p = Process(target=noop); p.start(); p.join()`.
    group.bench_function("mpcore_new", |b| {
        b.iter(|| {
            let mut p = Process::new(noop, ());
            p.start().expect("start");
            p.join().expect("join");
            assert_eq!(p.exitcode(), Some(0));
        });
    });
    // The same with a closure that captures a value (fork only).
    group.bench_function("mpcore_closure", |b| {
        let captured = 42_u64;
        b.iter(|| {
            let mut p = Process::from_closure(move || {
                black_box(captured);
            });
            p.start().expect("start");
            p.join().expect("join");
            assert_eq!(p.exitcode(), Some(0));
        });
    });
    // The floor: fork + _exit + waitpid.
    group.bench_function("raw", |b| {
        b.iter(|| {
            let pid = fork_into(|| exit_immediately(0)).expect("fork");
            let status = waitpid(pid, None).expect("waitpid");
            assert_eq!(status, WaitStatus::Exited(pid, 0));
        });
    });
    group.finish();
}

/// Short runs by default: the machine is shared and the report compares ratios taken
/// in one run. Command-line options (`--measurement-time`, `--sample-size`, ...)
/// override these.
fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args()
}

fn main() {
    // First, as in every mpcore program: a child started by spawn runs its target
    // here and never reaches criterion.
    mpcore::init();
    let mut c = criterion();
    fork_start_join(&mut c);
    c.final_summary();
}
