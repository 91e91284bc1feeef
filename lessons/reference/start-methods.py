"""Reference for lessons/src/bin/start-methods.rs: fork, spawn and forkserver side by side."""
import multiprocessing as mp
import os
import sys
import time

sys.stdout.reconfigure(line_buffering=True)

GLOBAL = "set when the program started"  # the parent changes it before each start
METHODS = ("fork", "spawn", "forkserver")
BUDGET = 0.1  # seconds of starting children per method, for the timing
AT_LEAST = 3  # children timed per method, however slow one start is


def show():
    me = mp.current_process()
    print(f"{me.name} sees GLOBAL = {GLOBAL}")
    parent = mp.parent_process()  # multiprocessing's view
    print(f"{me.name}: pid {os.getpid()}, parent_process() {parent.pid}, getppid() {os.getppid()}")


def nothing():
    pass


def ms(secs):
    return "%.2fms" % (secs * 1000)


if __name__ == "__main__":
    # Spawned children and the fork server import this file as __mp_main__: they run
    # the lines above, never this block.
    print(f"main process {os.getpid()}: GLOBAL = {GLOBAL}")

    for method in METHODS:
        ctx = mp.get_context(method)  # this method, whatever the default is
        p = ctx.Process(target=show)
        print(f"== {method}: the parent changes GLOBAL, then starts {p.name} ==")
        GLOBAL = "changed by the parent"  # module level: this is the global
        p.start()
        p.join()

    print("== start and join children one at a time, for %.2fs per method ==" % BUDGET)
    for method in METHODS:
        ctx = mp.get_context(method)
        begin = time.perf_counter()
        children = 0
        while children < AT_LEAST or time.perf_counter() - begin < BUDGET:
            p = ctx.Process(target=nothing)
            p.start()
            p.join()
            children += 1
        print(f"{method}: {ms((time.perf_counter() - begin) / children)} per child")
