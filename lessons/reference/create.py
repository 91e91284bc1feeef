"""Reference for lessons/src/bin/create.rs: call info() here, then in a child."""
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
    print(mp.current_process().name)  # the article prints __name__
    print("father ppid", ppid())
    print("self pid", os.getpid())
    print("-----------")
    print("执行被调用函数中.......")
    time.sleep(5 * SCALE)


if __name__ == "__main__":
    if os.environ.get("MPCORE_START_METHOD"):
        mp.set_start_method(os.environ["MPCORE_START_METHOD"], force=True)
    info("hello")
    p = mp.Process(target=info, args=("apple",))
    p.start()
    p.join()
    print("继续执行父进程")
