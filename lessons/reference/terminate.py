"""Reference for lessons/src/bin/terminate.rs: terminate a long-running child."""
import multiprocessing as mp
import os
import sys
import time

sys.stdout.reconfigure(line_buffering=True)
SCALE = float(os.environ.get("LESSON_TIME_SCALE") or (1 if "--real-time" in sys.argv else 0.1))


def test(started):
    print("子进程")
    started.set()
    for _ in range(60):
        time.sleep(1 * SCALE)


if __name__ == "__main__":
    if os.environ.get("MPCORE_START_METHOD"):
        mp.set_start_method(os.environ["MPCORE_START_METHOD"], force=True)
    started = mp.Event()
    process = mp.Process(target=test, args=(started,))
    print("父进程")
    process.start()
    started.wait()
    print("exitcode while it runs:", process.exitcode)
    patience = 5 * SCALE
    try:
        process.join(patience)  # returns after `patience`: the child runs on
        print("no Ctrl-C for %.2fs, terminating the process..." % patience)
    except KeyboardInterrupt:
        print("Received KeyboardInterrupt, terminating the process...")
    process.terminate()
    process.join()
    print("exitcode after terminate:", process.exitcode)
    process.close()  # only after join: a closed process cannot be joined
    print("所有子进程退出")
