"""Reference for lessons/src/bin/value.rs: a child writes a shared Value."""
import ctypes
import multiprocessing as mp
import os
import sys

sys.stdout.reconfigure(line_buffering=True)


def func(num):
    num.value = 10.78


if __name__ == "__main__":
    if os.environ.get("MPCORE_START_METHOD"):
        mp.set_start_method(os.environ["MPCORE_START_METHOD"], force=True)
    num = mp.Value("d", 10.0)
    print(num.value)
    p = mp.Process(target=func, args=(num,))
    p.start()
    p.join()
    print(num.value)

    print("Value('i', 0).value =", mp.Value("i", 0).value)
    print("Value('b', True).value =", mp.Value("b", True).value)
    print("Value('d', 0.0).value =", mp.Value("d", 0.0).value)
    print("Value(c_bool, True).value =", mp.Value(ctypes.c_bool, True).value)  # "?" is refused
