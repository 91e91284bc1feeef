"""CPython twin of benches/sharedctypes.rs: 2 processes x 100 000 increments of a
Value under its lock, and a child writing Array('d', 1_000_000) (a lock per item,
one `with get_lock()`, a RawArray). Children start with fork, as in the Rust bench.

Prints one JSON object: {"bench": "sharedctypes", "results": [{"name", "seconds_per_op", ...}]}.
"""

import json
import multiprocessing as mp
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


def best_of(runs, fn):
    return min(fn() for _ in range(runs))


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
    mp.set_start_method("fork")
    results = [
        {"name": "value_2x100k_increments/cpython_value_lock", "seconds_per_op": best_of(3, increments)},
        {"name": "child_writes_1m_f64/cpython_array_lock_per_item", "seconds_per_op": best_of(3, array("locked", write_locked))},
        {"name": "child_writes_1m_f64/cpython_array_one_lock", "seconds_per_op": best_of(3, array("locked", write_one_lock))},
        {"name": "child_writes_1m_f64/cpython_rawarray", "seconds_per_op": best_of(3, array("raw", write_locked))},
    ]
    json.dump({"bench": "sharedctypes", "python": sys.version.split()[0], "results": results}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
