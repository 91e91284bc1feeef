"""Shared timing loop for the CPython twins of mpcore's criterion benchmarks.

A twin defines one operation and calls `main(name, op, setup=...)`. The loop warms
up, picks a batch size so that one timed batch lasts at least `MIN_BATCH_NS` (a
single op for anything slower, several for a lock acquire), then times batches with
`time.perf_counter_ns` until the time budget is spent, and prints one JSON object on
stdout: the median ns per op over the batches, how many ops ran, and the settings.
report.py reads that line. Standard library only.
"""

import argparse
import json
import platform
import statistics
import sys
import time

MIN_BATCH_NS = 1_000_000  # a timed batch lasts at least 1 ms
MIN_SAMPLES = 10
MAX_SAMPLES = 100_000


def parse_args(argv=None, methods=True):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if methods:
        parser.add_argument(
            "--method",
            default="fork",
            choices=["fork", "spawn", "forkserver"],
            help="multiprocessing start method (default: fork)",
        )
    parser.add_argument(
        "--time",
        type=float,
        default=3.0,
        help="seconds of measurement, after warm-up (default: 3)",
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of warm-up (default: 1)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 s of measurement and 0.3 s of warm-up"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.time, args.warmup = 1.0, 0.3
    return args


def measure(op, seconds, warmup):
    """Median ns per call of `op()` and the number of calls timed."""
    clock = time.perf_counter_ns
    # Warm-up, which also estimates the cost of one call.
    calls = 0
    start = clock()
    deadline = start + warmup * 1e9
    while True:
        op()
        calls += 1
        now = clock()
        if now >= deadline and calls >= 3:
            break
    per_call = max((now - start) // calls, 1)
    batch = max(1, MIN_BATCH_NS // per_call)

    samples = []
    end = clock() + seconds * 1e9
    while len(samples) < MAX_SAMPLES:
        t0 = clock()
        for _ in range(batch):
            op()
        t1 = clock()
        samples.append((t1 - t0) / batch)
        if t1 >= end and len(samples) >= MIN_SAMPLES:
            break
    return statistics.median(samples), len(samples) * batch, batch


def main(name, op, args, **extra):
    """Times `op` as `args` say and prints the JSON result line."""
    median_ns, iterations, batch = measure(op, args.time, args.warmup)
    result = {
        "name": name,
        "median_ns": median_ns,
        "iterations": iterations,
        "batch": batch,
        "seconds": args.time,
        "python": platform.python_version(),
        **extra,
    }
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
