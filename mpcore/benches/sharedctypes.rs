//! Shared data across processes: 2 processes x 100 000 increments of a `Value` under
//! its lock (the final count is checked), against a raw futex mutex and counter in
//! shared memory; and a child writing an `Array` of 1 000 000 f64 (a lock per item,
//! one guard, a `RawArray`), against raw stores into a shared mapping. The CPython
//! twin is `python/sharedctypes.py`. Children are started the same way (mpcore's
//! fork) in every variant, so the differences are the shared-data costs.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use criterion::Criterion;
use mpcore::sys::memfd::SharedMapping;
use mpcore::{Array, Process, RawArray, Value};

mod raw_futex;

const INCREMENTS: u64 = 100_000;
const ITEMS: usize = 1_000_000;

/// Runs `work` in `n` fork children at once; returns the wall time until all ended.
fn in_children(n: usize, work: impl Fn() + Clone + Send + 'static) -> Duration {
    let start = Instant::now();
    let mut children: Vec<Process> = (0..n)
        .map(|_| {
            let work = work.clone();
            let mut p = Process::from_closure(move || work());
            p.start().unwrap();
            p
        })
        .collect();
    for p in &mut children {
        p.join().unwrap();
        assert_eq!(p.exitcode(), Some(0));
    }
    start.elapsed()
}

fn increments(c: &mut Criterion) {
    let mut group = c.benchmark_group("value_2x100k_increments");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    group.bench_function("mpcore_value_lock", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let v = Value::new(0u64).unwrap();
                let w = v.clone();
                total += in_children(2, move || {
                    for _ in 0..INCREMENTS {
                        *w.lock() += 1;
                    }
                });
                assert_eq!(v.get(), 2 * INCREMENTS, "lost increments");
            }
            total
        })
    });
    group.bench_function("raw_futex_mutex", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let map = std::sync::Arc::new(SharedMapping::create("mpcore-bench", 4096).unwrap());
                let m = std::sync::Arc::clone(&map);
                total += in_children(2, move || {
                    let (word, counter) = (m.atomic_u32(0), m.atomic_u64(64));
                    for _ in 0..INCREMENTS {
                        raw_futex::lock(word);
                        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                        raw_futex::unlock(word);
                    }
                });
                assert_eq!(map.atomic_u64(64).load(Ordering::Relaxed), 2 * INCREMENTS);
            }
            total
        })
    });
    group.finish();
}

fn array_writes(c: &mut Criterion) {
    let mut group = c.benchmark_group("child_writes_1m_f64");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("mpcore_array_lock_per_item", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let arr = Array::<f64>::zeroed(ITEMS).unwrap();
                    let a = arr.clone();
                    let t = in_children(1, move || {
                        for i in 0..ITEMS {
                            a.set(i, i as f64).unwrap();
                        }
                    });
                    assert_eq!(arr.get(ITEMS - 1), Some((ITEMS - 1) as f64));
                    t
                })
                .sum()
        })
    });
    group.bench_function("mpcore_array_one_guard", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let arr = Array::<f64>::zeroed(ITEMS).unwrap();
                    let a = arr.clone();
                    let t = in_children(1, move || {
                        let mut all = a.lock();
                        for (i, x) in all.iter_mut().enumerate() {
                            *x = i as f64;
                        }
                    });
                    assert_eq!(arr.get(ITEMS - 1), Some((ITEMS - 1) as f64));
                    t
                })
                .sum()
        })
    });
    group.bench_function("mpcore_rawarray", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let arr = RawArray::<f64>::zeroed(ITEMS).unwrap();
                    let a = arr.clone();
                    let t = in_children(1, move || {
                        for i in 0..ITEMS {
                            a.set(i, i as f64).unwrap();
                        }
                    });
                    assert_eq!(arr.get(ITEMS - 1), Some((ITEMS - 1) as f64));
                    t
                })
                .sum()
        })
    });
    group.bench_function("raw_shared_mapping", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let map = std::sync::Arc::new(
                        SharedMapping::create("mpcore-bench", ITEMS * 8).unwrap(),
                    );
                    let m = std::sync::Arc::clone(&map);
                    let t = in_children(1, move || {
                        for i in 0..ITEMS {
                            m.atomic_u64(i * 8)
                                .store((i as f64).to_bits(), Ordering::Relaxed);
                        }
                    });
                    let last = map.atomic_u64((ITEMS - 1) * 8).load(Ordering::Relaxed);
                    assert_eq!(f64::from_bits(last), (ITEMS - 1) as f64);
                    t
                })
                .sum()
        })
    });
    group.finish();
}

fn main() {
    mpcore::init();
    let mut c = Criterion::default().configure_from_args();
    increments(&mut c);
    array_writes(&mut c);
    c.final_summary();
}
