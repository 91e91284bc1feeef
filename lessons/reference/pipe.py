"""Reference for lessons/src/bin/pipe.rs: a duplex pipe, then the Connection API."""
import multiprocessing as mp
import os
import sys
import time

sys.stdout.reconfigure(line_buffering=True)
SCALE = float(os.environ.get("LESSON_TIME_SCALE") or (1 if "--real-time" in sys.argv else 0.1))


def showdata(conn):
    conn.send("发送的数据a")
    print(os.getpid(), conn.recv(), time.time())
    conn.close()


def tour(conn):
    data = conn.recv_bytes()  # waits for the parent's first message
    print("child: recv_bytes() ->", data)
    print("(%s) 进程开始发送数据..." % mp.current_process().pid)
    conn.send("Python")
    conn.send_bytes(b"hello")
    conn.send_bytes(b"too long for the buffer")
    conn.close()


if __name__ == "__main__":
    if os.environ.get("MPCORE_START_METHOD"):
        mp.set_start_method(os.environ["MPCORE_START_METHOD"], force=True)

    # 000 §(4): each end sends, then receives what the other end sent.
    conn_a, conn_b = mp.Pipe()
    p = mp.Process(target=showdata, args=(conn_a,))
    print("--- the next lines may come in any order ---")
    p.start()
    conn_b.send("要发送的数据b")
    print(os.getpid(), conn_b.recv(), time.time())
    conn_b.close()
    p.join()
    print("--- back in order ---")

    # 002: the rest of the Connection API.
    print("-----------")
    parent_conn, child_conn = mp.Pipe()
    p = mp.Process(target=tour, args=(child_conn,))
    p.start()
    child_conn.close()  # the child has its own copy; keep only ours
    print("(%s) 进程开始接收数据..." % mp.current_process().pid)
    print("poll(0.5) before anything is sent:", parent_conn.poll(0.5 * SCALE))
    print("send_bytes(b'abcdefghij', 2, 5)")
    parent_conn.send_bytes(b"abcdefghij", 2, 5)
    print("poll(60) once the child has sent:", parent_conn.poll(60 * SCALE))
    print("recv() ->", parent_conn.recv())
    buf = bytearray(10)
    n = parent_conn.recv_bytes_into(buf, 3)
    print("recv_bytes_into(buf, 3) ->", n, bytes(buf))
    try:
        parent_conn.recv_bytes_into(buf)
    except mp.BufferTooShort as e:
        print("recv_bytes_into(buf): BufferTooShort, the whole message:", e.args[0])
    try:
        parent_conn.recv()
    except EOFError:
        print("recv() once the child has closed its end: EOFError")
    p.join()
    parent_conn.close()
    print("closed:", parent_conn.closed)
    try:
        parent_conn.recv()
    except OSError as e:
        print("recv() on a closed connection: OSError:", e)
