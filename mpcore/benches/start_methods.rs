//! Process start+join under each start method, against the raw floor.
//!
//! - `start_join/fork`, `start_join/spawn`, `start_join/forkserver`: a
//!   `Process::new(noop, ())` of that method, started and joined.
//! - `raw/posix_spawn_same_binary`: `posix_spawn` of this very bench binary in a
//!   mode that exits at once (`MPCORE_BENCH_RAW_CHILD`, checked first thing in
//!   `main`), then `waitpid`: the floor for spawn, which also executes this binary.
//!
//! Targets (DESIGN.md): spawn within 2x of the raw spawn; forkserver within 2x of
//! fork. The CPython twin is `python/start_methods.py`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use mpcore::{StartMethod, get_context};
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, posix_spawn};
use nix::sys::wait::waitpid;

/// In a process started with this variable, `main` exits at once.
const RAW_CHILD_ENV: &str = "MPCORE_BENCH_RAW_CHILD";

fn noop() {}

fn start_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("start_join");
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ] {
        let ctx = get_context(method);
        group.bench_function(method.to_string(), |b| {
            b.iter(|| {
                let mut p = ctx.process(noop, ());
                p.start().unwrap();
                p.join().unwrap();
                assert_eq!(p.exitcode(), Some(0));
            })
        });
    }
    group.finish();
}

fn raw(c: &mut Criterion) {
    let exe = CString::new(std::env::current_exe().unwrap().as_os_str().as_bytes()).unwrap();
    let argv = [exe.clone()];
    let mut env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend_from_slice(v.as_encoded_bytes());
            CString::new(kv).unwrap()
        })
        .collect();
    env.push(CString::new(format!("{RAW_CHILD_ENV}=1")).unwrap());
    let actions = PosixSpawnFileActions::init().unwrap();
    let attr = PosixSpawnAttr::init().unwrap();
    c.bench_function("raw/posix_spawn_same_binary", |b| {
        b.iter(|| {
            let pid = posix_spawn(exe.as_c_str(), &actions, &attr, &argv, &env).unwrap();
            waitpid(pid, None).unwrap();
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = start_join, raw
}

fn main() {
    if std::env::var_os(RAW_CHILD_ENV).is_some() {
        std::process::exit(0);
    }
    mpcore::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
