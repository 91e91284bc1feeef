"""Reference for lessons/src/bin/daemon.rs: daemons have no children and end with main."""
import multiprocessing as mp
import os
import sys
import time

sys.stdout.reconfigure(line_buffering=True)
SCALE = float(os.environ.get("LESSON_TIME_SCALE") or (1 if "--real-time" in sys.argv else 0.1))


def try_to_have_children():
    try:
        mp.Process(target=print).start()
        print("a daemon started a child?!")
    except AssertionError as err:
        print(mp.current_process().name, "cannot start a child:", err)


class Piao(mp.Process):
    def __init__(self, name, started):
        super().__init__()  # first, or it resets the name set below
        self.name = name
        self.started = started

    def run(self):
        print("%s is piaoing" % self.name)
        self.started.set()
        time.sleep(2 * SCALE)
        print("%s is piao end" % self.name)  # never printed: main ends first


if __name__ == "__main__":
    if os.environ.get("MPCORE_START_METHOD"):
        mp.set_start_method(os.environ["MPCORE_START_METHOD"], force=True)
    d = mp.Process(target=try_to_have_children, daemon=True)
    d.start()
    d.join()

    started = mp.Event()
    p = Piao("egon", started)
    p.daemon = True
    p.start()
    started.wait()
    print("主")
