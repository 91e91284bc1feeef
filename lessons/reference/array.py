"""Reference for lessons/src/bin/array.rs: a child writes a shared Array.

Run it with `python3 -P`: without -P, this file would shadow the standard library's
`array` module for every script in its folder.
"""
import ctypes
import multiprocessing as mp
import os
import sys

sys.stdout.reconfigure(line_buffering=True)


def func(array):
    array[2] = 9999
    try:
        array[5] = 888  # no append: the length is fixed
    except IndexError as err:
        print("array[5] = 888:", err)


def test(shared_array):
    print(shared_array[0])
    shared_array[0] = 10


if __name__ == "__main__":
    if os.environ.get("MPCORE_START_METHOD"):
        mp.set_start_method(os.environ["MPCORE_START_METHOD"], force=True)
    myarray = mp.Array("i", [1, 2, 3, 4, 5])
    print(myarray[:])
    p = mp.Process(target=func, args=(myarray,))
    p.start()
    p.join()
    print(myarray[:])

    shared_array = mp.Array(ctypes.c_int, 10)
    for i in range(len(shared_array)):
        shared_array[i] = i
    process = mp.Process(target=test, args=(shared_array,))
    process.start()
    process.join()
    print(shared_array[:])
