"""CPython twin of benches/queues.rs: items per second through a Queue.

    python3 mpcore/benches/python/queues.py [--quick] [--time S] [--warmup S]

Producers in child processes (fork) put small integers, the parent gets them:
Queue with 1 producer and 1 consumer, with 2 producers and 1 consumer, and
SimpleQueue with 1 and 1. Each sample asks the producers for N items and times
the parent's N gets. Prints one JSON object per line: name, median_ns (per item),
iterations, items_per_s. Standard library only.
"""

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time


def producer(q, control):
    while True:
        try:
            count = control.recv()
        except (EOFError, OSError):
            return
        for i in range(count):
            q.put(i)


def rate(name, queue, nproducers, seconds, warmup):
    controls, procs = [], []
    for _ in range(nproducers):
        parent, child = mp.Pipe()
        p = mp.Process(target=producer, args=(queue, child))
        p.start()
        controls.append(parent)
        procs.append(p)

    def sample(n):
        for i, control in enumerate(controls):
            control.send(n // nproducers + (1 if i < n % nproducers else 0))
        start = time.perf_counter_ns()
        for _ in range(n):
            queue.get()
        return (time.perf_counter_ns() - start) / n

    batch = 20_000
    end = time.perf_counter() + warmup
    while time.perf_counter() < end:
        sample(batch)
    samples, items = [], 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(samples) < 5:
        samples.append(sample(batch))
        items += batch
    median = statistics.median(samples)
    print(
        json.dumps(
            {
                "name": f"queue/CPython {name}",
                "median_ns": round(median, 1),
                "iterations": items,
                "items_per_s": round(1e9 / median),
            }
        ),
        flush=True,
    )
    for p in procs:
        p.kill()
        p.join()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run")
    parser.add_argument("--time", type=float, help="seconds of measurement per row")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per row")
    args = parser.parse_args()
    seconds, warmup = (1.0, 0.3) if args.quick else (3.0, 1.0)
    seconds = seconds if args.time is None else args.time
    warmup = warmup if args.warmup is None else args.warmup
    mp.set_start_method("fork")
    rate("Queue 1P1C", mp.Queue(), 1, seconds, warmup)
    rate("Queue 2P1C", mp.Queue(), 2, seconds, warmup)
    rate("SimpleQueue 1P1C", mp.SimpleQueue(), 1, seconds, warmup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
