//! Uncontended lock acquire+release: mpcore's `Lock` and `RLock` against a raw futex
//! mutex in shared memory. The CPython twin is `python/synchronize.py`.

use std::hint::black_box;

use criterion::Criterion;
use mpcore::sys::memfd::SharedMapping;
use mpcore::{Lock, RLock};

mod raw_futex;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("lock_uncontended");
    let lock = Lock::new().unwrap();
    group.bench_function("mpcore_lock_acquire_release", |b| {
        b.iter(|| {
            black_box(lock.acquire());
            lock.release().unwrap();
        })
    });
    group.bench_function("mpcore_lock_guard", |b| {
        b.iter(|| drop(black_box(lock.lock())))
    });
    let rlock = RLock::new().unwrap();
    group.bench_function("mpcore_rlock_acquire_release", |b| {
        b.iter(|| {
            black_box(rlock.acquire());
            rlock.release().unwrap();
        })
    });
    let map = SharedMapping::create("mpcore-bench", 4096).unwrap();
    let word = map.atomic_u32(0);
    group.bench_function("raw_futex_mutex", |b| {
        b.iter(|| {
            raw_futex::lock(black_box(word));
            raw_futex::unlock(word);
        })
    });
    group.finish();
}

/// What sharing heap arenas buys: creating a `Lock` (a block cut from a shared
/// memfd arena) against creating one memfd + mapping per object.
fn creation(c: &mut Criterion) {
    let mut group = c.benchmark_group("create");
    group.bench_function("mpcore_lock_new", |b| {
        b.iter(|| black_box(Lock::new().unwrap()))
    });
    group.bench_function("memfd_per_object", |b| {
        b.iter(|| black_box(SharedMapping::create("mpcore-bench", 64).unwrap()))
    });
    group.finish();
}

fn main() {
    mpcore::init();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    creation(&mut c);
    c.final_summary();
}
