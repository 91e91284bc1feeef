"""Reference for lessons/src/bin/lock.rs: ten processes print under one RLock."""
import multiprocessing as mp
import os
import sys
import time

sys.stdout.reconfigure(line_buffering=True)
SCALE = float(os.environ.get("LESSON_TIME_SCALE") or (1 if "--real-time" in sys.argv else 0.1))


def showdata(lock, i):
    time.sleep(5 * SCALE)
    with lock:
        print(i)


def hold_forever(lock, holding):
    lock.acquire()
    print(mp.current_process().name, "holds the lock")
    holding.set()
    while True:
        time.sleep(60 * SCALE)


def kill_holder():
    lock = mp.RLock()
    holding = mp.Event()
    holder = mp.Process(target=hold_forever, args=(lock, holding))
    holder.start()
    holding.wait()
    holder.kill()
    holder.join()
    print("killed it: exitcode", holder.exitcode)
    got_it = lock.acquire(timeout=5 * SCALE)  # CPython: False, however long it waits
    print("acquire(timeout=5):", got_it)
    if got_it:
        lock.release()


if __name__ == "__main__":
    if os.environ.get("MPCORE_START_METHOD"):
        mp.set_start_method(os.environ["MPCORE_START_METHOD"], force=True)
    if "--kill-holder" in sys.argv:
        kill_holder()
        sys.exit()
    lock = mp.RLock()
    print("--- the next lines may come in any order ---")
    children = []
    for num in range(10):
        p = mp.Process(target=showdata, args=(lock, num))
        p.start()
        children.append(p)
    for p in children:
        p.join()
    print("--- back in order ---")
