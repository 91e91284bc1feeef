//! Queue benchmarks: producers in child processes put small integers, the parent
//! gets them (`Queue 1P1C`, `Queue 2P1C`; also `SimpleQueue 1P1C`).
//!
//! Each measurement asks the producers for `iters` items in all and times the
//! parent's `iters` gets, so the figure is the sustained rate of items through the
//! queue. CPython twin: `benches/python/queues.py`. Run with
//! `cargo bench -p mpcore --bench queues` (add `-- --quick` for a short run).

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use mpcore::{Connection, Process, Queue, SimpleQueue, pipe};

/// Starts `n` producers; each waits for a count on its control connection and
/// puts that many items.
fn producers<Q: Clone + Send + 'static>(
    n: usize,
    queue: &Q,
    put: fn(&Q, u64),
) -> (Vec<Connection>, Vec<Process>) {
    let mut controls = Vec::new();
    let mut processes = Vec::new();
    for _ in 0..n {
        let (parent, child) = pipe().unwrap();
        let q = queue.clone();
        let mut p = Process::from_closure(move || {
            while let Ok(count) = child.recv::<u64>() {
                for i in 0..count {
                    put(&q, i);
                }
            }
        });
        p.start().unwrap();
        controls.push(parent);
        processes.push(p);
    }
    (controls, processes)
}

/// Under fork a producer holds copies of every descriptor, so it never sees end
/// of file on its control connection: kill it.
fn stop(processes: Vec<Process>) {
    for mut p in processes {
        p.kill().unwrap();
        p.join().unwrap();
    }
}

fn rate<Q: Clone + Send + 'static>(
    c: &mut Criterion,
    name: &str,
    n: usize,
    queue: Q,
    put: fn(&Q, u64),
    get: fn(&Q) -> u64,
) {
    let (controls, processes) = producers(n, &queue, put);
    let mut group = c.benchmark_group("queue");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            for (i, control) in controls.iter().enumerate() {
                let share = iters / n as u64 + u64::from((i as u64) < iters % n as u64);
                control.send(&share).unwrap();
            }
            let start = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(get(&queue));
            }
            start.elapsed()
        })
    });
    group.finish();
    stop(processes);
}

fn main() {
    mpcore::init();
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    for n in [1, 2] {
        rate(
            &mut c,
            &format!("Queue {n}P1C"),
            n,
            Queue::<u64>::new().unwrap(),
            |q, i| q.put(i).unwrap(),
            |q| q.get().unwrap(),
        );
    }
    rate(
        &mut c,
        "SimpleQueue 1P1C",
        1,
        SimpleQueue::<u64>::new().unwrap(),
        |q, i| q.put(i).unwrap(),
        |q| q.get().unwrap(),
    );
    c.final_summary();
}
