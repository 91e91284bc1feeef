#!/usr/bin/env python3
"""Runs mpcore's benchmarks beside their CPython twins and prints one table.

    python3 mpcore/benches/report.py [--quick] [--check] [--list] [FILTER ...]

(`just bench` runs this.) For the rows selected (all, or those whose label or bench
ids contain one of the FILTERs, case-insensitive), it runs `cargo bench -p mpcore
--bench NAME` once per bench target with a criterion filter naming exactly the ids
those rows need, reads the medians criterion writes
(`target/criterion/<id>/new/estimates.json`), runs each CPython twin
(`mpcore/benches/python/*.py`, which print one JSON line per operation, each with
`name` and `median_ns`; a twin measuring several operations runs once per round),
and prints

    operation | mpcore | CPython | raw | mpcore/raw | CPython/mpcore | target | met

with the target of DESIGN.md's "Performance contract" and whether this run met it.
Targets are ratios taken within one run; absolute figures on a shared machine are
noise. To keep a change of load from landing on one column, the whole set (criterion
and twins) runs in several short rounds, A B C A B C ..., and each figure is the
median of its rounds. Criterion saves under the baseline `report`, leaving `base`
to plain `cargo bench`. Criterion's and the twins' own output goes to stderr; only
the table goes to stdout. Every child runs in its own process group, which is
killed when the child ends, fails, times out or on Ctrl-C (or SIGTERM), so nothing
is left running.

To add a benchmark: write the criterion bench (and register it as a `[[bench]]` in
mpcore/Cargo.toml), its twin in python/, and add a `Row` to `ROWS` below.

Standard library only.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON_TWINS = HERE / "python"
WORKSPACE = HERE.parent.parent


@dataclass(frozen=True)
class Row:
    """One line of the table.

    `mpcore` and `raw` name criterion benchmarks as "TARGET/ID": TARGET is the bench
    target (mpcore/benches/TARGET.rs), ID criterion's full id (group/function) in it.
    `python` is the twin: a script in python/ and its arguments; `python_result` the
    `name` of the twin's result line for this row (None: its last line). All figures
    are times per operation (for throughput: per message), so the ratios read the
    same way on every row. `target` is the text of DESIGN.md; the numeric fields are the same target in a form the report checks
    (times per operation: a throughput of ">= 80% of raw" is `max_vs_raw=1.25`).
    """

    label: str
    mpcore: str
    raw: str | None = None
    python: tuple[str, ...] | None = None
    python_result: str | None = None
    target: str = ""
    max_vs_raw: float | None = None  # mpcore/raw must be at most this
    min_vs_cpython: float | None = None  # CPython/mpcore must be at least this
    max_ns: float | None = None  # mpcore's time per operation must be at most this


FORK_TARGET = "within 1.5x of raw fork+_exit+waitpid; >=10x faster than CPython"

# The table, in order. One entry per operation.
ROWS = [
    Row(
        label="process start+join, fork",
        mpcore="process/fork_start_join/mpcore_new",
        raw="process/fork_start_join/raw",
        python=("process.py", "--method", "fork"),
        target=FORK_TARGET,
        max_vs_raw=1.5,
        min_vs_cpython=10,
    ),
    Row(
        label="process start+join, fork, closure",
        mpcore="process/fork_start_join/mpcore_closure",
        raw="process/fork_start_join/raw",
        python=("process.py", "--method", "fork"),
        target=FORK_TARGET,
        max_vs_raw=1.5,
        min_vs_cpython=10,
    ),
    Row(
        label="process start+join, spawn",
        mpcore="start_methods/start_join/spawn",
        raw="start_methods/raw/posix_spawn_same_binary",
        python=("process.py", "--method", "spawn"),
        target="within 2x of a raw posix_spawn of the same binary",
        max_vs_raw=2,
    ),
    Row(
        label="process start+join, forkserver (raw: mpcore fork)",
        mpcore="start_methods/start_join/forkserver",
        raw="start_methods/start_join/fork",
        python=("process.py", "--method", "forkserver"),
        target="within 2x of fork",
        max_vs_raw=2,
    ),
    *[
        Row(
            label=f"pipe round trip, {label}, {kind}",
            mpcore=f"connection/round trip/mpcore {op}/{kind}",
            raw=f"connection/round trip/raw write+read/{kind}",
            python=("connection.py",),
            python_result=f"round trip/CPython {op}/{kind}",
            target="within 1.3x of raw ping-pong",
            max_vs_raw=1.3,
        )
        for op, label in (("send+recv", "send/recv"),
                          ("send_bytes+recv_bytes", "send_bytes/recv_bytes"))
        for kind in ("socketpair", "pipe")
    ],
    *[
        Row(
            label=f"pipe throughput {size}, {kind} (per msg)",
            mpcore=f"connection/throughput/mpcore recv_bytes/{kind} {size}",
            raw=f"connection/throughput/raw read/{kind} {size}",
            python=("connection.py",),
            python_result=f"throughput/CPython recv_bytes/{kind} {size}",
            target=">=80% of raw throughput" if size == "1MiB" else "",
            max_vs_raw=1.25 if size == "1MiB" else None,
        )
        for size in ("64KiB", "1MiB")
        for kind in ("socketpair", "pipe")
    ],
    *[
        Row(
            label=f"Queue {n}P1C, small ints (per item)",
            mpcore=f"queues/queue/Queue {n}P1C",
            python=("queues.py",),
            python_result=f"queue/CPython Queue {n}P1C",
            target=">=10x CPython's Queue",
            min_vs_cpython=10,
        )
        for n in (1, 2)
    ],
    Row(
        label="uncontended Lock acquire+release",
        mpcore="synchronize/lock_uncontended/mpcore_lock_acquire_release",
        raw="synchronize/lock_uncontended/raw_futex_mutex",
        python=("synchronize.py",),
        python_result="lock_uncontended/cpython_lock_acquire_release",
        target="within 2x of a raw futex mutex; >=10x CPython",
        max_vs_raw=2,
        min_vs_cpython=10,
    ),
    Row(
        label="2 x 100k Value increments under lock",
        mpcore="sharedctypes/value_2x100k_increments/mpcore_value_lock",
        raw="sharedctypes/value_2x100k_increments/raw_futex_mutex",
        python=("sharedctypes.py",),
        python_result="value_2x100k_increments/cpython_value_lock",
        target="within 2x of a raw futex mutex",
        max_vs_raw=2,
    ),
    Row(
        label="child writes Array 1M f64, lock per item",
        mpcore="sharedctypes/child_writes_1m_f64/mpcore_array_lock_per_item",
        raw="sharedctypes/child_writes_1m_f64/raw_shared_mapping",
        python=("sharedctypes.py",),
        python_result="child_writes_1m_f64/cpython_array_lock_per_item",
        target="",
    ),
    Row(
        label="child writes RawArray 1M f64",
        mpcore="sharedctypes/child_writes_1m_f64/mpcore_rawarray",
        raw="sharedctypes/child_writes_1m_f64/raw_shared_mapping",
        python=("sharedctypes.py",),
        python_result="child_writes_1m_f64/cpython_rawarray",
        target="",
    ),
]


@dataclass(frozen=True)
class Budget:
    """How long to measure: per benchmark and per round, for criterion and twins."""

    rounds: int
    warm_up: float  # seconds
    measure: float  # seconds
    samples: int  # criterion's sample size (at least 10)

    def criterion_args(self):
        return ["--warm-up-time", str(self.warm_up), "--measurement-time",
                str(self.measure), "--sample-size", str(self.samples)]

    def twin_args(self):
        return ["--warmup", str(self.warm_up), "--time", str(self.measure)]


FULL = Budget(rounds=3, warm_up=0.5, measure=1.0, samples=20)
QUICK = Budget(rounds=1, warm_up=0.3, measure=0.5, samples=10)
CARGO_TIMEOUT = 30 * 60  # includes building the benches on a busy machine
TWIN_TIMEOUT = 5 * 60


def log(message):
    print(message, file=sys.stderr, flush=True)


def split_id(bench_id):
    target, _, criterion_id = bench_id.partition("/")
    if not criterion_id:
        raise SystemExit(f"report.py: bench id {bench_id!r} is not TARGET/ID")
    return target, criterion_id


def run_in_group(cmd, timeout, stdout=None, cwd=WORKSPACE):
    """Runs `cmd` in a new process group and returns its exit status.

    Whatever the outcome, the group is killed before the leader is reaped: the
    leader's pid (the group id) cannot be reused while it is an unreaped zombie, so
    the kill reaches only what `cmd` started. Grandchildren a benchmark leaked are
    reported.
    """
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=stdout, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            # Wait for the exit without reaping (WNOWAIT), polling for the deadline.
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
            if info is not None:
                break
            if time.monotonic() > deadline:
                log(f"report.py: {cmd[0]} took more than {timeout} s: killed")
                break
            time.sleep(0.05)
    finally:
        # Also on KeyboardInterrupt: nothing of the run outlives it.
        leftover = group_members(proc.pid) - {proc.pid}
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        status = proc.wait()
    if leftover:
        log(f"report.py: {' '.join(cmd[:3])} left {len(leftover)} processes behind: killed")
    return status


def group_members(pgid):
    """The pids in process group `pgid` (Linux /proc)."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid:  # state, ppid, pgrp, ...
            members.add(int(stat.parent.name))
    return members


def cargo_target_dir():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=WORKSPACE,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return Path(json.loads(out)["target_directory"])


def criterion_results(since):
    """Median ns per iteration of every criterion benchmark written after `since`,
    keyed by criterion's full id."""
    home = os.environ.get("CRITERION_HOME")
    root = Path(home) if home else cargo_target_dir() / "criterion"
    results = {}
    for meta in root.glob("**/new/benchmark.json"):
        estimates = meta.with_name("estimates.json")
        if not estimates.exists() or estimates.stat().st_mtime < since:
            continue  # left over from an earlier run: not comparable
        full_id = json.loads(meta.read_text())["full_id"]
        median = json.loads(estimates.read_text())["median"]["point_estimate"]
        results[full_id] = median
    return results


def regex_escape(text):
    """Escapes `text` for criterion's filter (Rust's regex syntax)."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$#&-~" else c for c in text)


def run_criterion(ids_by_target, budget):
    """Runs the criterion benchmarks named, one `cargo bench` per target; returns
    {"TARGET/ID": median ns}."""
    since = time.time() - 1  # coarse file-system timestamps
    failed = []
    for target, ids in ids_by_target.items():
        pattern = "^(" + "|".join(regex_escape(i) for i in sorted(ids)) + ")$"
        cmd = ["cargo", "bench", "-p", "mpcore", "--bench", target, "--", "--noplot",
               "--save-baseline", "report", *budget.criterion_args(), pattern]
        log("$ " + " ".join(cmd))
        # Criterion prints on stdout; keep ours for the table.
        if run_in_group(cmd, CARGO_TIMEOUT, stdout=sys.stderr) != 0:
            failed.append(target)
    results = criterion_results(since)
    found = {}
    for target, ids in ids_by_target.items():
        for criterion_id in ids:
            if criterion_id in results:
                found[f"{target}/{criterion_id}"] = results[criterion_id]
            elif target not in failed:
                log(f"report.py: no result for {target}/{criterion_id} (is the id right?)")
    return found


def run_twin(twin, budget, python):
    """Runs one CPython twin; returns its results, {name: JSON object with
    `median_ns`}, with the last line also under None, or None if it failed."""
    script, *args = twin
    cmd = [python, str(PYTHON_TWINS / script), *args, *budget.twin_args()]
    log("$ " + " ".join(cmd))
    with tempfile.TemporaryFile(mode="w+") as out:
        status = run_in_group(cmd, TWIN_TIMEOUT, stdout=out)
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.strip()]
    if status != 0 or not lines:
        log(f"report.py: {script} failed (status {status})")
        return None
    results = {}
    for line in lines:
        try:
            result = json.loads(line)
            float(result["median_ns"])
        except (ValueError, TypeError, KeyError):
            log(f"report.py: {script}: not a result line: {line[:100]}")
            continue
        results[result.get("name")] = results[None] = result
        log(f"  {result.get('name')}: {human_time(result['median_ns'])} median over "
            f"{result.get('iterations', '?')} ops")
    return results or None


def human_time(ns):
    """`ns` nanoseconds in the largest unit that keeps it >= 1, 3 significant digits."""
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            value = ns / scale
            break
    else:
        unit, value = "ns", ns
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {unit}"


def ratio(a, b):
    return a / b if a is not None and b is not None and b > 0 else None


def human_ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def verdict(row, mpcore, cpython, raw):
    """'yes', 'NO (why)', or '?' when a figure a check needs is missing."""
    checks = []
    if row.max_vs_raw is not None:
        r = ratio(mpcore, raw)
        checks.append(None if r is None else
                      (r <= row.max_vs_raw, f"{r:.3f}x raw > {row.max_vs_raw:g}x"))
    if row.min_vs_cpython is not None:
        r = ratio(cpython, mpcore)
        checks.append(
            None if r is None else
            (r >= row.min_vs_cpython, f"{r:.2f}x CPython < {row.min_vs_cpython:g}x")
        )
    if row.max_ns is not None:
        checks.append(
            None if mpcore is None else
            (mpcore <= row.max_ns, f"{human_time(mpcore)} > {human_time(row.max_ns)}")
        )
    if not checks:
        return ""
    missed = [check[1] for check in checks if check is not None and not check[0]]
    if missed:
        return "NO (" + ", ".join(missed) + ")"
    return "?" if None in checks else "yes"


def print_table(header, lines):
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
    numeric = {1, 2, 3, 4, 5}

    def fmt(cells):
        out = [
            str(c).rjust(w) if i in numeric else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "| " + " | ".join(out) + " |"

    print(fmt(header))
    rule = ["-" * (w + 1) + ":" if i in numeric else "-" * (w + 2)
            for i, w in enumerate(widths)]
    print("|" + "|".join(rule) + "|")
    for line in lines:
        print(fmt(line))
    sys.stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Run mpcore's benchmarks and their CPython twins; print one table."
    )
    parser.add_argument("filters", nargs="*", metavar="FILTER",
                        help="run only rows whose label or bench ids contain FILTER")
    parser.add_argument("--quick", action="store_true",
                        help=f"one round of {QUICK.measure} s per benchmark (default: "
                        f"{FULL.rounds} rounds of {FULL.measure} s)")
    parser.add_argument("--rounds", type=int, help="number of rounds")
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 if a target was missed")
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    parser.add_argument("--no-python", action="store_true", help="skip the CPython twins")
    parser.add_argument("--python", default=sys.executable,
                        help="the CPython that runs the twins (default: this one)")
    args = parser.parse_args(argv)

    def selected(row):
        haystack = " ".join([row.label, row.mpcore, row.raw or ""]).lower()
        return not args.filters or any(f.lower() in haystack for f in args.filters)

    rows = [row for row in ROWS if selected(row)]
    if not rows:
        log(f"report.py: no row matches {' '.join(args.filters)}; --list lists them")
        return 2
    if args.list:
        for row in rows:
            twin = " ".join(row.python) if row.python else "-"
            print(f"{row.label}: {row.mpcore}, raw {row.raw or '-'}, CPython {twin}")
        return 0

    python_version = None
    ids_by_target = {}
    for row in rows:
        for bench_id in filter(None, (row.mpcore, row.raw)):
            target, criterion_id = split_id(bench_id)
            ids_by_target.setdefault(target, set()).add(criterion_id)
    twins = [] if args.no_python else [r.python for r in rows if r.python]
    twins = list(dict.fromkeys(twins))  # each twin once, in order
    budget = QUICK if args.quick else FULL
    if args.rounds:
        budget = replace(budget, rounds=max(1, args.rounds))

    # {bench id or twin: [figure of each round]}
    runs = {}
    for round_number in range(1, budget.rounds + 1):
        log(f"== round {round_number} of {budget.rounds}")
        for bench_id, median in run_criterion(ids_by_target, budget).items():
            runs.setdefault(bench_id, []).append(median)
        for twin in twins:
            results = run_twin(twin, budget, args.python) or {}
            for name, result in results.items():
                runs.setdefault((twin, name), []).append(float(result["median_ns"]))
                python_version = result.get("python", python_version)
    figures = {key: statistics.median(values) for key, values in runs.items()}

    header = ["operation", "mpcore", "CPython", "raw", "mpcore/raw", "CPython/mpcore",
              "target", "met"]
    lines = []
    missed = False
    for row in rows:
        mpcore = figures.get(row.mpcore)
        raw = figures.get(row.raw)
        cpython = figures.get((row.python, row.python_result))
        if row.python and row.python_result and cpython is None and row.python in twins:
            log(f"report.py: no CPython result {row.python_result!r} from {row.python[0]}")
        met = verdict(row, mpcore, cpython, raw)
        missed |= met.startswith("NO")
        lines.append([row.label, human_time(mpcore), human_time(cpython), human_time(raw),
                      human_ratio(ratio(mpcore, raw)), human_ratio(ratio(cpython, mpcore)),
                      row.target, met])
    log("")
    print(f"Medians of {budget.rounds} round(s) of {budget.measure} s per benchmark, "
          f"{os.cpu_count()} CPUs"
          + (f", CPython {python_version}" if python_version else "")
          + ". Compare ratios, not times, across runs.")
    print_table(header, lines)
    return 1 if args.check and missed else 0


def interrupted(signum, _frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


if __name__ == "__main__":
    # SIGTERM and SIGHUP unwind like Ctrl-C, through run_in_group's cleanup. The
    # children run in their own process groups, so a Ctrl-C reaches only this script.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupted)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("report.py: interrupted")
        sys.exit(130)
