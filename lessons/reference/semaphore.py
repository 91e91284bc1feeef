"""Reference for lessons/src/bin/semaphore.rs: Semaphore(3), then Semaphore(1), over ten processes."""
import multiprocessing as mp
import os
import sys
import time

sys.stdout.reconfigure(line_buffering=True)
SCALE = float(os.environ.get("LESSON_TIME_SCALE") or (1 if "--real-time" in sys.argv else 0.1))
FILL_UP_LIMIT = 10  # seconds: a safety net that a healthy run never reaches


def worker(sem, limit, inside, most, full):
    with sem:
        with inside.get_lock():  # `most` shares this lock
            inside.value += 1
            most.value = max(most.value, inside.value)
            if inside.value == limit:
                full.set()  # the room is full for the first time
        full.wait(FILL_UP_LIMIT)
        time.sleep(1 * SCALE)
        with inside.get_lock():
            inside.value -= 1


def room(limit):
    sem = mp.Semaphore(limit)
    inside = mp.Value("i", 0)
    most = mp.Value("i", 0, lock=inside.get_lock())
    full = mp.Event()
    print("Semaphore(%d), ten processes:" % limit)
    start = time.monotonic()
    children = []
    for _ in range(10):
        p = mp.Process(target=worker, args=(sem, limit, inside, most, full))
        p.start()
        children.append(p)
    for p in children:
        p.join()
    print("most inside at once:", most.value)
    print("took %.2fs" % (time.monotonic() - start))


if __name__ == "__main__":
    if os.environ.get("MPCORE_START_METHOD"):
        mp.set_start_method(os.environ["MPCORE_START_METHOD"], force=True)
    room(3)
    room(1)
