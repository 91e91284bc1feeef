"""Reference for lessons/src/bin/subclass.rs: five Process subclasses, all joined."""
import multiprocessing as mp
import os
import sys

sys.stdout.reconfigure(line_buffering=True)


class MyProcess(mp.Process):
    def __init__(self, name):
        super().__init__()  # first: Process.__init__ sets a default name
        self.name = name

    def run(self):
        print("test %s multiprocess" % self.name)


if __name__ == "__main__":
    if os.environ.get("MPCORE_START_METHOD"):
        mp.set_start_method(os.environ["MPCORE_START_METHOD"], force=True)
    process_list = []
    print("--- the next lines may come in any order ---")
    for i in range(5):
        p = MyProcess("Python")
        p.start()
        process_list.append(p)
    for p in process_list:
        p.join()  # every one of them, not only the last
    print("--- back in order ---")
    print("end the test")
