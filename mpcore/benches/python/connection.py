"""CPython twin of benches/connection.rs: Pipe round trips and throughput.

    python3 mpcore/benches/python/connection.py [--quick] [--time S] [--warmup S]

Measures, with CPython's multiprocessing under fork:
  - round trip of a small message to a child and back: send/recv of (42, 'small')
    and send_bytes/recv_bytes of 16 bytes, over Pipe() (a socket pair) and over
    two Pipe(duplex=False) (OS pipes);
  - throughput of 64 KiB and 1 MiB messages streamed by a child, received with
    recv_bytes and recv_bytes_into.
Prints one JSON object per line: name, median_ns (per operation), iterations,
and bytes_per_s for the throughput rows. Standard library only.
"""

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time

SMALL = b"0123456789abcdef"


def measure(op, seconds, warmup, batch):
    """Median ns per call of op() over batches of `batch` calls."""
    clock = time.perf_counter_ns
    end = clock() + warmup * 1e9
    while clock() < end:
        op()
    samples = []
    calls = 0
    end = clock() + seconds * 1e9
    while clock() < end or len(samples) < 5:
        start = clock()
        for _ in range(batch):
            op()
        samples.append((clock() - start) / batch)
        calls += batch
    return statistics.median(samples), calls


def emit(name, median_ns, calls, size=None):
    row = {"name": name, "median_ns": round(median_ns, 1), "iterations": calls}
    if size is not None:
        row["bytes_per_s"] = round(size / (median_ns / 1e9))
    print(json.dumps(row), flush=True)


def echo_objects(rx, tx):
    while True:
        try:
            tx.send(rx.recv())
        except (EOFError, OSError):
            return


def echo_bytes(rx, tx):
    while True:
        try:
            tx.send_bytes(rx.recv_bytes())
        except (EOFError, OSError):
            return


def stream(tx, size):
    payload = b"\x07" * size
    while True:
        try:
            tx.send_bytes(payload)
        except OSError:
            return


def channel(duplex):
    """(parent rx, parent tx), (child rx, child tx)."""
    if duplex:
        a, b = mp.Pipe()
        return (a, a), (b, b)
    r1, w1 = mp.Pipe(duplex=False)
    r2, w2 = mp.Pipe(duplex=False)
    return (r1, w2), (r2, w1)


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

    for duplex in (True, False):
        kind = "socketpair" if duplex else "pipe"
        for what, target in (("send+recv", echo_objects), ("send_bytes+recv_bytes", echo_bytes)):
            (rx, tx), (crx, ctx) = channel(duplex)
            p = mp.Process(target=target, args=(crx, ctx))
            p.start()
            if what == "send+recv":
                value = (42, "small")

                def op():
                    tx.send(value)
                    rx.recv()
            else:

                def op():
                    tx.send_bytes(SMALL)
                    rx.recv_bytes()

            median, calls = measure(op, seconds, warmup, 100)
            emit(f"round trip/CPython {what}/{kind}", median, calls)
            p.kill()
            p.join()

    for size, label in ((64 << 10, "64KiB"), (1 << 20, "1MiB")):
        for duplex in (True, False):
            kind = "socketpair" if duplex else "pipe"
            for into in (False, True):
                rx, tx = mp.Pipe(duplex=duplex)
                p = mp.Process(target=stream, args=(tx, size))
                p.start()
                buf = bytearray(size)
                if into:

                    def op():
                        rx.recv_bytes_into(buf)
                else:

                    def op():
                        rx.recv_bytes()

                name = "recv_bytes_into" if into else "recv_bytes"
                median, calls = measure(op, seconds, warmup, 10)
                emit(f"throughput/CPython {name}/{kind} {label}", median, calls, size)
                p.kill()
                p.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
