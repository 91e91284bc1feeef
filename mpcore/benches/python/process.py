"""CPython twin of benches/process.rs: `Process(target=noop).start(); p.join()`.

    python3 mpcore/benches/python/process.py [--method fork|spawn|forkserver] [--quick]

Prints one JSON line: {"name": ..., "median_ns": ..., "iterations": ..., ...}.
"""

import multiprocessing

import benchlib


def noop():
    pass


def start_join(ctx):
    def op():
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"child ended with exit code {p.exitcode}")

    return op


if __name__ == "__main__":
    args = benchlib.parse_args()
    ctx = multiprocessing.get_context(args.method)
    benchlib.main(
        f"process start+join, {args.method}",
        start_join(ctx),
        args,
        method=args.method,
    )
