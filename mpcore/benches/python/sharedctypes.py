"""CPython twin of benches/sharedctypes.rs: 2 processes x 100 000 increments of a
Value under its lock, and a child writing Array('d', 1_000_000) (a lock per item,
one `with get_lock()`, a RawArray). Children start with fork, as in the Rust bench.

    python3 mpcore/benches/python/sharedctypes.py [--quick] [--time S] [--warmup S]

Each variant runs (a whole 2 x 100k or 1M-item run being one operation) until
--time seconds are spent, at least once; --warmup is accepted and ignored (every
run starts fresh processes). Prints one JSON object per line: name, median_ns (per
run), iterations (runs), python. Standard library only.
"""

import argparse
import json
import multiprocessing as mp
import platform
import statistics
import sys
import time

INCREMENTS = 100_000
ITEMS = 1_000_000


def increment(v):
    for _ in range(INCREMENTS):
        with v.get_lock():
            v.value += 1


def write_locked(arr):
    for i in range(ITEMS):
        arr[i] = float(i)


def write_one_lock(arr):
    with arr.get_lock():
        raw = arr.get_obj()
        for i in range(ITEMS):
            raw[i] = float(i)


def in_children(n, target, arg):
    start = time.perf_counter()
    children = [mp.Process(target=target, args=(arg,)) for _ in range(n)]
    for p in children:
        p.start()
    for p in children:
        p.join()
        assert p.exitcode == 0
    return time.perf_counter() - start


def median_of(seconds, fn):
    """Median wall time of fn() in ns, over runs until `seconds` are spent."""
    times = []
    end = time.perf_counter() + seconds
    while not times or time.perf_counter() < end:
        times.append(fn())
    return statistics.median(times) * 1e9, len(times)


def increments():
    v = mp.Value("q", 0)
    t = in_children(2, increment, v)
    assert v.value == 2 * INCREMENTS, v.value
    return t


def array(kind, writer):
    def run():
        arr = mp.Array("d", ITEMS) if kind == "locked" else mp.RawArray("d", ITEMS)
        t = in_children(1, writer, arr)
        assert arr[ITEMS - 1] == float(ITEMS - 1)
        return t
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run")
    parser.add_argument("--time", type=float, help="seconds of runs per variant")
    parser.add_argument("--warmup", type=float, help="ignored")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else 3.0
    seconds = seconds if args.time is None else args.time
    mp.set_start_method("fork")
    for name, fn in (
        ("value_2x100k_increments/cpython_value_lock", increments),
        ("child_writes_1m_f64/cpython_array_lock_per_item", array("locked", write_locked)),
        ("child_writes_1m_f64/cpython_array_one_lock", array("locked", write_one_lock)),
        ("child_writes_1m_f64/cpython_rawarray", array("raw", write_locked)),
    ):
        median, runs = median_of(seconds, fn)
        print(json.dumps({"name": name, "median_ns": round(median), "iterations": runs,
                          "python": platform.python_version()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
