"""CPython twin of benches/start_methods.rs: Process(target=noop) start+join.

Prints JSON: {"python": VERSION, "benchmarks": [{"name", "median_ns", "mean_ns",
"min_ns", "iterations"}, ...]} with one entry per start method, named as the
criterion benchmarks (start_join/fork, start_join/spawn, start_join/forkserver).

    python3 mpcore/benches/python/start_methods.py [--quick]
"""

import json
import multiprocessing as mp
import statistics
import sys
import time


def noop():
    pass


def measure(method, iterations, warmup):
    ctx = mp.get_context(method)
    samples = []
    for i in range(warmup + iterations):
        start = time.perf_counter_ns()
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        elapsed = time.perf_counter_ns() - start
        assert p.exitcode == 0
        if i >= warmup:
            samples.append(elapsed)
    return {
        "name": f"start_join/{method}",
        "median_ns": statistics.median(samples),
        "mean_ns": statistics.fmean(samples),
        "min_ns": min(samples),
        "iterations": iterations,
    }


def main():
    quick = "--quick" in sys.argv
    plan = [
        ("fork", 20 if quick else 200, 5),
        ("spawn", 5 if quick else 30, 2),
        ("forkserver", 20 if quick else 200, 5),
    ]
    results = [measure(method, n, warmup) for method, n, warmup in plan]
    print(json.dumps({"python": sys.version.split()[0], "benchmarks": results}, indent=2))


if __name__ == "__main__":
    main()
