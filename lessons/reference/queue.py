"""Reference for lessons/src/bin/queue.rs: children put into a Queue, the parent gets."""
import os
import sys

# This file has the name of the standard library's `queue` module, which
# multiprocessing imports. Run as `python3 -P` (as the harness does), its folder is
# not on sys.path; run without -P, these lines take the folder off so that the
# import below finds the real module.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import multiprocessing as mp  # noqa: E402

sys.stdout.reconfigure(line_buffering=True)


def func(queue):
    queue.put("子进程加入数据")


def func_both(queue):
    queue.put("子进程加入数据")
    print(queue.get())  # the article's commented-out line


def fun1(q, i):
    print("child process %s starts put data" % i)
    q.put("I am %s communicating through Queue" % i)


if __name__ == "__main__":
    if os.environ.get("MPCORE_START_METHOD"):
        mp.set_start_method(os.environ["MPCORE_START_METHOD"], force=True)

    # 000 §(5): the child puts, the parent gets.
    myqueue = mp.Queue()
    p = mp.Process(target=func, args=(myqueue,))
    p.start()
    print(myqueue.get())
    p.join()

    # The same with the article's two commented-out lines put back: both put, both get.
    print("--- the next lines may come in any order ---")
    p = mp.Process(target=func_both, args=(myqueue,))
    p.start()
    myqueue.put("主进程加入数据")
    print(myqueue.get())
    p.join()
    print("--- back in order ---")

    # 001: three children put, the parent gets all three.
    print("-----------")
    q = mp.Queue()
    process_list = []
    print("--- the next lines may come in any order ---")
    for i in range(3):
        p = mp.Process(target=fun1, args=(q, i))
        p.start()
        process_list.append(p)
    for p in process_list:
        p.join()
    print("--- back in order ---")
    print("the main process obtains Queue data")
    print("--- the next lines may come in any order ---")
    for _ in process_list:
        print(q.get())
    print("--- back in order ---")
    print("end test")
