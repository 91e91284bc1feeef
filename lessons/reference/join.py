"""Reference for lessons/src/bin/join.rs: three processes, joined together or in turn."""
import multiprocessing as mp
import os
import sys
import time

sys.stdout.reconfigure(line_buffering=True)
SCALE = float(os.environ.get("LESSON_TIME_SCALE") or (1 if "--real-time" in sys.argv else 0.1))


def ppid():
    parent = mp.parent_process()  # None in the main process
    return parent.pid if parent else os.getppid()


def info(title):
    print(title)
    time.sleep(2 * SCALE)
    print(mp.current_process().name)  # the article prints __name__
    print("father ppid", ppid())
    print("self pid", os.getpid())
    print("-----------")


if __name__ == "__main__":
    if os.environ.get("MPCORE_START_METHOD"):
        mp.set_start_method(os.environ["MPCORE_START_METHOD"], force=True)
    p1 = mp.Process(target=info, args=("A1",))
    p2 = mp.Process(target=info, args=("A2",))
    p3 = mp.Process(target=info, args=("A3",))
    begin = time.monotonic()
    if "--sequential" in sys.argv:
        p1.start()
        p1.join()
        p2.start()
        p2.join()
        p3.start()
        p3.join()
    else:
        print("--- the next lines may come in any order ---")
        p1.start()
        p2.start()
        p3.start()
        p1.join()
        p2.join()
        p3.join()
        print("--- back in order ---")
    took = time.monotonic() - begin
    print("three processes that each sleep %.2fs took %.2fs" % (2 * SCALE, took))
    print("all over")
