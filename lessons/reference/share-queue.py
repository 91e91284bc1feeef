"""Reference for lessons/src/bin/share-queue.rs: ten children put, the parent gets ten."""
import multiprocessing as mp
import os
import sys
import time

sys.stdout.reconfigure(line_buffering=True)


def ppid():
    parent = mp.parent_process()  # None in the main process
    return parent.pid if parent else os.getppid()


def adddata(queue, i):
    queue.put(i)
    print("put", i, ppid(), os.getpid(), time.time())


if __name__ == "__main__":
    if os.environ.get("MPCORE_START_METHOD"):
        mp.set_start_method(os.environ["MPCORE_START_METHOD"], force=True)
    queue = mp.Queue()
    mylist = []
    process_list = []
    print("--- the next lines may come in any order ---")
    for i in range(10):
        p = mp.Process(target=adddata, args=(queue, i))
        p.start()
        process_list.append(p)
    for _ in process_list:
        mylist.append(queue.get())  # in the order the items arrived
    for p in process_list:
        p.join()
    print("--- back in order ---")
    print(sorted(mylist))  # the order they arrived in changes from run to run
