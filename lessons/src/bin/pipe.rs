//! A pipe connects two processes, and both ends can send and receive: the child and
//! the parent each send a message and receive the other's. Then the rest of the
//! `Connection` API, one call at a time: `send_bytes` with an offset and a size,
//! `recv_bytes`, `poll` with a timeout, `recv_bytes_into` (and `BufferTooShort`),
//! end of file once the other end is closed, and `close`.
//!
//! Source: `000_a4853b86a63cc66d.txt` §(4) 管道; `002_d6eb6e5df7f7677e.txt`
//! 使用Pipe实现进程间通信 (the API list and its example); `001_4b3cdbbaf17f337e.txt`
//! "Pipeline Pipe" does the same exchange as §(4).
//! Run it with `just lesson pipe`.

use lessons::{any_order, back_in_order, scaled, time};
use mpcore::connection::{Connection, pipe};
use mpcore::{Error, Obj, Process, current_process};

// ANCHOR: main
/// 000 §(4)'s child: sends first, then prints what the parent sent.
fn showdata(mut conn: Connection) {
    conn.send("发送的数据a").unwrap();
    let msg: String = conn.recv().unwrap();
    println!("{} {msg} {}", std::process::id(), time());
    conn.close().unwrap();
}

/// The child of the API tour: waits for the parent's bytes, then sends three
/// messages and closes its end.
fn tour(mut conn: Connection) {
    let data = conn.recv_bytes().unwrap(); // waits for the parent's first message
    println!("child: recv_bytes() -> {}", Obj::bytes(data)); // b'...' as Python prints it
    println!("({}) 进程开始发送数据...", current_process().pid);
    conn.send("Python").unwrap();
    conn.send_bytes(b"hello").unwrap();
    conn.send_bytes(b"too long for the buffer").unwrap();
    conn.close().unwrap();
}

fn main() -> mpcore::Result<()> {
    mpcore::init();

    // 000 §(4): each end sends, then receives what the other end sent.
    let (conn_a, mut conn_b) = pipe()?; // a duplex pipe: two ends
    let mut p = Process::new(showdata, (conn_a,)); // conn_a moves to the child
    any_order();
    p.start()?;
    conn_b.send("要发送的数据b")?;
    let msg: String = conn_b.recv()?;
    println!("{} {msg} {}", std::process::id(), time());
    conn_b.close()?;
    p.join()?;
    back_in_order();

    // 002: the rest of the Connection API.
    println!("-----------");
    let (mut parent_conn, child_conn) = pipe()?;
    let mut p = Process::new(tour, (child_conn,));
    p.start()?; // the parent's copy of child_conn is closed now: it moved
    println!("({}) 进程开始接收数据...", current_process().pid);
    let ready = parent_conn.poll_timeout(scaled(0.5));
    println!("poll(0.5) before anything is sent: {}", Obj::from(ready));
    println!("send_bytes(b'abcdefghij', 2, 5)");
    parent_conn.send_bytes_range(b"abcdefghij", 2, Some(5))?;
    let ready = parent_conn.poll_timeout(scaled(60.0)); // returns as soon as data is there
    println!("poll(60) once the child has sent: {}", Obj::from(ready));
    println!("recv() -> {}", parent_conn.recv::<String>()?);

    let mut buf = [0u8; 10];
    let n = parent_conn.recv_bytes_into(&mut buf, 3)?; // written at buf[3..3 + n]
    println!("recv_bytes_into(buf, 3) -> {n} {}", Obj::bytes(buf));
    match parent_conn.recv_bytes_into(&mut buf, 0) {
        Err(Error::BufferTooShort(whole)) => println!(
            "recv_bytes_into(buf): BufferTooShort, the whole message: {}",
            Obj::bytes(whole)
        ),
        other => panic!("expected BufferTooShort, got {other:?}"),
    }
    match parent_conn.recv::<String>() {
        Err(Error::Eof) => println!("recv() once the child has closed its end: EOFError"),
        other => panic!("expected end of file, got {other:?}"),
    }
    p.join()?;

    parent_conn.close()?;
    println!("closed: {}", Obj::from(parent_conn.closed()));
    match parent_conn.recv::<String>() {
        Err(Error::Io(e)) => println!("recv() on a closed connection: OSError: {e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    Ok(())
}
// ANCHOR_END: main
