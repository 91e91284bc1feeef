"""Reference for lessons/src/bin/globals-not-shared.rs: a global list is not shared."""
import multiprocessing as mp
import os
import sys
import time

sys.stdout.reconfigure(line_buffering=True)
SCALE = float(os.environ.get("LESSON_TIME_SCALE") or (1 if "--real-time" in sys.argv else 0.1))

datalist = []  # the global list: each process has its own


def ppid():
    parent = mp.parent_process()  # None in the main process
    return parent.pid if parent else os.getppid()


def adddata():
    datalist.append(1)
    datalist.append(2)
    datalist.append(3)
    print(os.getpid(), ppid(), datalist, time.time())


if __name__ == "__main__":
    if os.environ.get("MPCORE_START_METHOD"):
        mp.set_start_method(os.environ["MPCORE_START_METHOD"], force=True)
    p = mp.Process(target=adddata)
    p.start()
    time.sleep(2 * SCALE)
    p.join()
    datalist.append("a")
    datalist.append("b")
    datalist.append("c")
    print(os.getpid(), ppid(), datalist, time.time())
