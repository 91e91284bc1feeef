"""CPython twin of benches/synchronize.rs: uncontended Lock acquire+release.

Prints one JSON object: {"bench": "synchronize", "results": [{"name", "seconds_per_op", ...}]}.
"""

import json
import multiprocessing as mp
import sys
import time


def per_op(fn, n):
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        fn(n)
        best = min(best, (time.perf_counter() - start) / n)
    return best


def lock_acquire_release(n):
    lock = mp.Lock()
    acquire, release = lock.acquire, lock.release
    for _ in range(n):
        acquire()
        release()


def lock_with(n):
    lock = mp.Lock()
    for _ in range(n):
        with lock:
            pass


def rlock_acquire_release(n):
    lock = mp.RLock()
    acquire, release = lock.acquire, lock.release
    for _ in range(n):
        acquire()
        release()


def main():
    mp.set_start_method("fork")
    n = 1_000_000
    results = [
        {"name": "lock_uncontended/cpython_lock_acquire_release", "seconds_per_op": per_op(lock_acquire_release, n)},
        {"name": "lock_uncontended/cpython_lock_with", "seconds_per_op": per_op(lock_with, n)},
        {"name": "lock_uncontended/cpython_rlock_acquire_release", "seconds_per_op": per_op(rlock_acquire_release, n)},
    ]
    json.dump({"bench": "synchronize", "python": sys.version.split()[0], "results": results}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
