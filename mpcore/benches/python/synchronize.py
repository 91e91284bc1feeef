"""CPython twin of benches/synchronize.rs: uncontended Lock acquire+release.

    python3 mpcore/benches/python/synchronize.py [--quick] [--time S] [--warmup S]

Times batches of 10 000 acquire+release pairs (the loop inline, methods bound
once) for each variant: Lock acquire/release, `with lock`, RLock acquire/release.
Prints one JSON object per line: name, median_ns (per acquire+release over the
batches), iterations, python. Standard library only.
"""

import argparse
import json
import multiprocessing as mp
import platform
import statistics
import sys
import time

BATCH = 10_000


def lock_acquire_release(lock, n):
    acquire, release = lock.acquire, lock.release
    for _ in range(n):
        acquire()
        release()


def lock_with(lock, n):
    for _ in range(n):
        with lock:
            pass


def measure(loop, lock, seconds, warmup):
    clock = time.perf_counter_ns
    end = clock() + warmup * 1e9
    while clock() < end:
        loop(lock, BATCH)
    samples = []
    end = clock() + seconds * 1e9
    while clock() < end or len(samples) < 5:
        start = clock()
        loop(lock, BATCH)
        samples.append((clock() - start) / BATCH)
    return statistics.median(samples), len(samples) * BATCH


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
    for name, loop, lock in (
        ("lock_uncontended/cpython_lock_acquire_release", lock_acquire_release, mp.Lock()),
        ("lock_uncontended/cpython_lock_with", lock_with, mp.Lock()),
        ("lock_uncontended/cpython_rlock_acquire_release", lock_acquire_release, mp.RLock()),
    ):
        median, calls = measure(loop, lock, seconds, warmup)
        print(json.dumps({"name": name, "median_ns": round(median, 2), "iterations": calls,
                          "python": platform.python_version()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
