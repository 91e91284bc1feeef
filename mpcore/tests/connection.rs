//! Connections, pipes, listeners and `wait`: the behaviours of CPython's
//! `_test_multiprocessing.py` (rows 38-59 of the behaviour catalogue), under fork,
//! and those about children under every start method.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{BOUND, PROMPT, finish, per_method, run, start};
use mpcore::connection::{Address, Client, Listener, Waitable, wait};
use mpcore::reduction::{recv_handle, send_handle};
use mpcore::{Connection, Error, Process, StartMethod, get_context, pipe, pipe_simplex};

fn io_message(err: &Error) -> String {
    match err {
        Error::Io(e) => e.to_string(),
        other => panic!("expected an OSError-like Error::Io, got {other:?}"),
    }
}

fn assert_send_sync<T: Send + Sync>() {}

/// Serialises the tests of this file. Under fork a child inherits *every*
/// descriptor open in the parent, including the pipe ends other tests running on
/// other threads hold at that moment; a test that waits for end of file (or for a
/// send to fail because the peer closed) would then wait for someone else's child.
/// CPython's suite runs serially for the same reason.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn connection_is_send_and_sync_and_listener_is_send() {
    let _serial = serial();
    assert_send_sync::<Connection>();
    fn assert_send<T: Send>() {}
    assert_send::<Listener>();
}

#[test]
fn send_and_recv_values_and_bytes() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    a.send(&(vec![1i64, 2], 2.25f64, None::<u8>)).unwrap();
    assert_eq!(
        b.recv::<(Vec<i64>, f64, Option<u8>)>().unwrap(),
        (vec![1, 2], 2.25, None)
    );
    a.send_bytes(b"hello world").unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"hello world");
    // Both directions of a duplex pipe.
    b.send("back").unwrap();
    assert_eq!(a.recv::<String>().unwrap(), "back");
}

#[test]
fn large_messages_round_trip_intact() {
    let _serial = serial();
    for (a, b) in [
        pipe().unwrap(),
        pipe_simplex().map(|(r, w)| (w, r)).unwrap(),
    ] {
        let big: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
        let expected = big.clone();
        let reader = std::thread::spawn(move || {
            let bytes = b.recv_bytes().unwrap();
            let value = b.recv::<Vec<u32>>().unwrap();
            (bytes, value)
        });
        a.send_bytes(&big).unwrap();
        let numbers: Vec<u32> = (0..1 << 20).collect();
        a.send(&numbers).unwrap();
        let (bytes, value) = reader.join().unwrap();
        assert!(bytes == expected, "16 MiB message corrupted");
        assert_eq!(value, numbers);
    }
}

#[test]
fn recv_bytes_into_counts_bytes_and_honours_the_offset() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    let data: Vec<u8> = [0i32, 1, 2, 3]
        .iter()
        .flat_map(|i| i.to_ne_bytes())
        .collect();
    a.send_bytes(&data).unwrap();
    let mut buf = [0u8; 40];
    assert_eq!(b.recv_bytes_into(&mut buf, 0).unwrap(), 16);
    assert_eq!(&buf[..16], &data[..]);
    assert!(buf[16..].iter().all(|&x| x == 0));
    a.send_bytes(&data).unwrap();
    let mut buf = [0u8; 40];
    assert_eq!(b.recv_bytes_into(&mut buf, 12).unwrap(), 16);
    assert!(buf[..12].iter().all(|&x| x == 0));
    assert_eq!(&buf[12..28], &data[..]);
}

#[test]
fn buffer_too_short_carries_the_whole_message_and_consumes_it() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    let message: Vec<u8> = (0..110).collect();
    a.send_bytes(&message).unwrap();
    a.send_bytes(b"next").unwrap();
    let mut buf = [0u8; 40];
    match b.recv_bytes_into(&mut buf, 0) {
        Err(Error::BufferTooShort(whole)) => assert_eq!(whole, message),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        b.recv_bytes().unwrap(),
        b"next",
        "the long message was consumed"
    );
    // Fits without the offset, not with it.
    a.send_bytes(b"abcd").unwrap();
    let mut buf = [0u8; 6];
    assert!(
        matches!(b.recv_bytes_into(&mut buf, 3), Err(Error::BufferTooShort(m)) if m == b"abcd")
    );
}

#[test]
fn an_offset_past_the_buffer_is_refused_before_reading() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    a.send_bytes(b"kept").unwrap();
    let mut buf = [0u8; 2];
    let err = b.recv_bytes_into(&mut buf, 5).unwrap_err();
    assert!(!matches!(err, Error::BufferTooShort(_)));
    assert!(err.to_string().contains("offset too large"), "{err}");
    assert_eq!(b.recv_bytes().unwrap(), b"kept", "nothing was read");
}

#[test]
fn poll_is_false_on_an_empty_pipe_and_true_once_a_message_is_there() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    assert!(!b.poll());
    let start = Instant::now();
    assert!(!b.poll_timeout(Duration::from_millis(200)));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < PROMPT,
        "{waited:?}"
    );
    a.send(&1u8).unwrap();
    let start = Instant::now();
    assert!(b.poll_timeout(Duration::from_secs(30)));
    assert!(start.elapsed() < PROMPT);
    assert!(b.poll(), "poll does not consume");
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    assert!(!b.poll());
}

#[test]
fn a_closed_peer_gives_eof_and_poll_true() {
    let _serial = serial();
    for (mut writer, reader) in [
        pipe().unwrap(),
        pipe_simplex().map(|(r, w)| (w, r)).unwrap(),
    ] {
        writer.send(&7u32).unwrap();
        writer.close().unwrap();
        assert!(reader.poll(), "a message is there");
        assert_eq!(
            reader.recv::<u32>().unwrap(),
            7,
            "what was sent is still read"
        );
        assert!(reader.poll(), "EOF counts as readable");
        assert!(matches!(reader.recv::<u32>(), Err(Error::Eof)));
        assert!(matches!(reader.recv_bytes(), Err(Error::Eof)));
        let mut buf = [0u8; 4];
        assert!(matches!(
            reader.recv_bytes_into(&mut buf, 0),
            Err(Error::Eof)
        ));
    }
}

#[test]
fn sending_to_a_closed_peer_is_an_error_not_a_sigpipe() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    drop(b);
    let err = a.send_bytes(b"anyone?").unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == ErrorKind::BrokenPipe),
        "{err:?}"
    );
    let (r, w) = pipe_simplex().unwrap();
    drop(r);
    let err = w.send(&vec![0u8; 100_000]).unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == ErrorKind::BrokenPipe),
        "{err:?}"
    );
}

/// Puts SIGPIPE back to its default action (death), as a C program has it.
fn default_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: installing SIG_DFL runs no code in signal context.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.unwrap();
}

fn write_to_closed_peers_with_default_sigpipe(report: Connection) {
    default_sigpipe();
    let outcome = |result: mpcore::Result<()>| match result {
        Err(Error::Io(e)) if e.kind() == ErrorKind::BrokenPipe => "EPIPE".to_string(),
        other => format!("{other:?}"),
    };
    // A socket pair: MSG_NOSIGNAL.
    let (a, b) = pipe().unwrap();
    drop(b);
    report.send(&outcome(a.send_bytes(b"x"))).unwrap();
    // An OS pipe made after SIGPIPE was reset.
    let (r, w) = pipe_simplex().unwrap();
    drop(r);
    report.send(&outcome(w.send_bytes(b"x"))).unwrap();
}

#[test]
fn a_child_with_default_sigpipe_survives_writes_to_closed_peers() {
    let _serial = serial();
    let (report_r, report_w) = pipe_simplex().unwrap();
    let p = Process::new(write_to_closed_peers_with_default_sigpipe, (report_w,));
    assert_eq!(run(p), 0, "the child was not killed by SIGPIPE");
    assert_eq!(report_r.recv::<String>().unwrap(), "EPIPE");
    assert_eq!(report_r.recv::<String>().unwrap(), "EPIPE");
}

#[test]
fn a_closed_end_refuses_everything_and_closes_twice() {
    let _serial = serial();
    let (mut a, _b) = pipe().unwrap();
    assert!(!a.closed());
    a.close().unwrap();
    assert!(a.closed());
    for err in [
        a.send(&1u8).unwrap_err(),
        a.recv::<u8>().unwrap_err(),
        a.fileno().unwrap_err(),
        a.send_bytes(b"").unwrap_err(),
    ] {
        assert_eq!(io_message(&err), "handle is closed");
    }
    assert!(!a.poll());
    a.close().unwrap();
}

#[test]
fn simplex_ends_refuse_the_wrong_direction() {
    let _serial = serial();
    let (r, w) = pipe_simplex().unwrap();
    w.send(&1u8).unwrap();
    assert_eq!(r.recv::<u8>().unwrap(), 1);
    assert!(r.readable() && !r.writable());
    assert!(!w.readable() && w.writable());
    assert_eq!(
        io_message(&r.send(&2u8).unwrap_err()),
        "connection is read-only"
    );
    assert_eq!(
        io_message(&r.send_bytes(b"x").unwrap_err()),
        "connection is read-only"
    );
    assert_eq!(
        io_message(&w.recv::<u8>().unwrap_err()),
        "connection is write-only"
    );
    assert_eq!(
        io_message(&w.recv_bytes().unwrap_err()),
        "connection is write-only"
    );
    assert!(!w.poll());
    assert!(wait(&[Waitable::from(&w)], Some(Duration::ZERO)).is_err());
    let (a, b) = pipe().unwrap();
    assert!(a.readable() && a.writable() && b.readable() && b.writable());
}

#[test]
fn send_bytes_range_sends_the_slice() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    let msg = b"abcdefghijklmnopqrstuvwxyz";
    a.send_bytes_range(msg, 5, None).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), &msg[5..]);
    a.send_bytes_range(msg, 7, Some(8)).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), &msg[7..15]);
    a.send_bytes_range(msg, 26, None).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"");
    a.send_bytes_range(msg, 26, Some(0)).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"");
}

#[test]
fn send_bytes_range_out_of_range_is_an_error_and_sends_nothing() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    let msg = b"abcdefghijklmnopqrstuvwxyz";
    for (offset, size, text) in [
        (27, None, "buffer length < offset"),
        (22, Some(5), "buffer length < offset + size"),
        (26, Some(1), "buffer length < offset + size"),
        (usize::MAX, Some(1), "buffer length < offset"),
        (1, Some(usize::MAX), "buffer length < offset + size"),
    ] {
        let err = a.send_bytes_range(msg, offset, size).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidState(m) if m == text),
            "{err:?}"
        );
    }
    assert!(!b.poll(), "nothing was sent");
}

#[test]
fn a_message_longer_than_maxlength_makes_the_end_unreadable() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    a.send_bytes(&[7u8; 100]).unwrap();
    let err = b.recv_bytes_max(10).unwrap_err();
    assert_eq!(io_message(&err), "bad message length");
    assert!(!b.readable());
    assert!(!b.poll());
    assert_eq!(
        io_message(&b.recv_bytes().unwrap_err()),
        "connection is write-only"
    );
    // The duplex end can still send.
    b.send_bytes(b"still writable").unwrap();
    assert_eq!(a.recv_bytes().unwrap(), b"still writable");
    // A message within the limit is fine.
    let (a, b) = pipe().unwrap();
    a.send_bytes(&[1u8; 10]).unwrap();
    assert_eq!(b.recv_bytes_max(10).unwrap(), [1u8; 10]);
    assert!(b.readable());
    // A read-only end is left neither readable nor writable.
    let (r, w) = pipe_simplex().unwrap();
    w.send_bytes(&[0u8; 11]).unwrap();
    assert!(r.recv_bytes_max(10).is_err());
    assert!(!r.readable() && r.recv_bytes().is_err());
}

#[test]
fn an_empty_message_is_a_message() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    a.send_bytes(b"").unwrap();
    assert!(b.poll_timeout(PROMPT));
    assert!(b.poll());
    assert_eq!(b.recv_bytes().unwrap(), b"");
    assert!(!b.poll());
}

fn send_three(conn: Connection) {
    conn.send_bytes(b"a").unwrap();
    conn.send_bytes(b"b").unwrap();
    conn.send_bytes(b"cd").unwrap();
}

#[test]
fn messages_from_a_child_are_never_merged() {
    let _serial = serial();
    for (r, w) in [pipe().unwrap(), pipe_simplex().unwrap()] {
        assert_eq!(run(Process::new(send_three, (w,))), 0);
        for expected in [&b"a"[..], b"b", b"cd"] {
            assert!(r.poll_timeout(PROMPT));
            assert_eq!(r.recv_bytes().unwrap(), expected);
        }
        assert!(r.poll(), "EOF: the child's end is closed");
        assert!(matches!(r.recv_bytes(), Err(Error::Eof)));
    }
}

fn echo_doubled(conn: Connection) {
    // Under fork the child also holds a copy of the parent's end, so it cannot
    // wait for end of file: a 0 says "stop" (as in Python's examples).
    while let Ok(n) = conn.recv::<u64>() {
        if n == 0 {
            break;
        }
        conn.send(&(n * 2)).unwrap();
    }
}

#[test]
fn a_child_sends_and_receives_across_a_pipe() {
    let _serial = serial();
    let (parent, child) = pipe().unwrap();
    let p = start(Process::new(echo_doubled, (child,)));
    for n in 1..100u64 {
        parent.send(&n).unwrap();
        assert_eq!(parent.recv::<u64>().unwrap(), 2 * n);
    }
    parent.send(&0u64).unwrap();
    assert_eq!(finish(p), 0);
}

fn hold_and_die(_writer: Connection, started: Connection) {
    started.send(&()).unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn recv_from_a_pipe_whose_writer_died_is_eof() {
    let _serial = serial();
    let (r, w) = pipe_simplex().unwrap();
    let (started_r, started_w) = pipe_simplex().unwrap();
    let mut p = start(Process::new(hold_and_die, (w, started_w)));
    // The parent's copies of both writers were closed by start().
    started_r.recv::<()>().unwrap();
    p.kill().unwrap();
    p.join().unwrap();
    let start = Instant::now();
    assert!(matches!(r.recv_bytes(), Err(Error::Eof)));
    assert!(start.elapsed() < PROMPT);
}

#[test]
fn wait_times_out_with_nothing_ready_and_reports_ready_ones() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    let (c, d) = pipe().unwrap();
    let start = Instant::now();
    let ready = wait(
        &[Waitable::from(&a), Waitable::from(&c)],
        Some(Duration::from_millis(300)),
    )
    .unwrap();
    assert!(ready.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(250));
    assert!(
        wait(&[Waitable::from(&a)], Some(Duration::ZERO))
            .unwrap()
            .is_empty()
    );
    d.send(&()).unwrap();
    let ready = wait(
        &[Waitable::from(&a), Waitable::from(&c)],
        Some(Duration::from_secs(20)),
    )
    .unwrap();
    assert_eq!(ready, [1]);
    b.send(&()).unwrap();
    let mut ready = wait(&[(&a).into(), (&c).into()], None).unwrap();
    ready.sort();
    assert_eq!(ready, [0, 1]);
}

fn exit_after_signal(go: Connection) {
    let _ = go.recv::<()>();
}

#[test]
fn wait_sees_a_process_sentinel_and_connections_together() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    let (go_r, go_w) = pipe_simplex().unwrap();
    let mut p = start(Process::new(exit_after_signal, (go_r,)));
    let sentinel = p.sentinel().unwrap();
    assert!(
        wait(
            &[Waitable::from(&a), Waitable::Fd(sentinel)],
            Some(Duration::from_millis(100))
        )
        .unwrap()
        .is_empty()
    );
    go_w.send(&()).unwrap();
    let ready = wait(
        &[Waitable::from(&a), Waitable::from(sentinel)],
        Some(Duration::from_secs(30)),
    )
    .unwrap();
    assert_eq!(ready, [1]);
    b.send(&1u8).unwrap();
    let mut ready = wait(
        &[Waitable::from(&a), Waitable::from(sentinel)],
        Some(PROMPT),
    )
    .unwrap();
    ready.sort();
    assert_eq!(ready, [0, 1]);
    p.join().unwrap();
}

#[test]
fn serializing_a_connection_outside_a_child_start_is_refused() {
    let _serial = serial();
    let (a, _b) = pipe().unwrap();
    let err = mpcore::reduction::encode(&a).unwrap_err();
    assert!(err.to_string().contains("through inheritance"), "{err}");
}

#[test]
fn a_connection_travels_with_a_child_start_by_descriptor() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    let (bytes, fds) = mpcore::reduction::encode_with_handles(&b).unwrap();
    let b2: Connection = mpcore::reduction::decode_with_handles(&bytes, fds).unwrap();
    drop(b);
    a.send(&"via the copy").unwrap();
    assert_eq!(b2.recv::<String>().unwrap(), "via the copy");
    let (r, _w) = pipe_simplex().unwrap();
    let (bytes, fds) = mpcore::reduction::encode_with_handles(&r).unwrap();
    let r2: Connection = mpcore::reduction::decode_with_handles(&bytes, fds).unwrap();
    assert!(r2.readable() && !r2.writable());
}

// ---------------------------------------------------------------------------
// Listener and Client.

fn client_says_hello(address: String, tcp: bool) {
    let address = if tcp {
        Address::Tcp(address.parse().unwrap())
    } else {
        Address::Unix(PathBuf::from(address))
    };
    let conn = Client::connect(address, Some(b"abc")).unwrap();
    conn.send("hello").unwrap();
}

#[test]
fn listener_and_client_on_unix_and_tcp_across_processes() {
    let _serial = serial();
    for listener in [
        Listener::bind_temp(Some(b"abc")).unwrap(),
        Listener::bind(Address::Tcp("127.0.0.1:0".parse().unwrap()), Some(b"abc")).unwrap(),
    ] {
        let (text, tcp) = match listener.address() {
            Address::Unix(path) => (path.to_str().unwrap().to_string(), false),
            Address::Tcp(addr) => {
                assert_ne!(addr.port(), 0, "the real port is reported");
                (addr.to_string(), true)
            }
        };
        let p = start(Process::new(client_says_hello, (text, tcp)));
        let conn = listener.accept().unwrap();
        assert_eq!(conn.recv::<String>().unwrap(), "hello");
        assert_eq!(finish(p), 0);
        // A second listener on the same address is an error.
        assert!(Listener::bind(listener.address(), None).is_err());
    }
}

#[test]
fn a_closed_listener_refuses_accept_and_removes_its_file() {
    let _serial = serial();
    let mut listener = Listener::bind_temp(None).unwrap();
    let Address::Unix(path) = listener.address() else {
        unreachable!()
    };
    let dir = path.parent().unwrap().to_path_buf();
    assert!(path.exists());
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("mpcore-"), "{name}");
    assert!(
        dir.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("mpcore-")
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "a private directory");
    }
    let c = Client::connect(listener.address(), None).unwrap();
    let d = listener.accept().unwrap();
    c.send(&1729u32).unwrap();
    assert_eq!(d.recv::<u32>().unwrap(), 1729);
    listener.close().unwrap();
    assert!(!path.exists() && !dir.exists());
    assert_eq!(
        io_message(&listener.accept().unwrap_err()),
        "listener is closed"
    );
    listener.close().unwrap();
}

#[test]
fn dropping_a_listener_removes_a_socket_file_at_a_given_path() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("mpcore-test-{}-drop", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mpcore-given.sock");
    let listener = Listener::bind(Address::Unix(path.clone()), None).unwrap();
    assert!(path.exists());
    // A failed second bind must not remove the first listener's file.
    assert!(Listener::bind(Address::Unix(path.clone()), None).is_err());
    assert!(path.exists());
    drop(listener);
    assert!(!path.exists());
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn an_abstract_socket_works_and_leaves_no_file() {
    let _serial = serial();
    let mut name = std::ffi::OsString::from("\0");
    name.push(format!("mpcore-test-abstract-{}", std::process::id()));
    let address = Address::Unix(PathBuf::from(name));
    let listener = Listener::bind(address.clone(), None).unwrap();
    let c = Client::connect(address, None).unwrap();
    let d = listener.accept().unwrap();
    d.send(&"abstract").unwrap();
    assert_eq!(c.recv::<String>().unwrap(), "abstract");
}

#[test]
fn an_empty_authkey_is_valid() {
    let _serial = serial();
    let listener = Listener::bind(Address::Tcp("127.0.0.1:0".parse().unwrap()), Some(b"")).unwrap();
    let address = listener.address();
    let server = std::thread::spawn(move || listener.accept().map(|c| c.recv::<u8>()));
    let c = Client::connect(address, Some(b"")).unwrap();
    c.send(&9u8).unwrap();
    assert_eq!(server.join().unwrap().unwrap().unwrap(), 9);
}

#[test]
fn a_wrong_authkey_fails_both_sides() {
    let _serial = serial();
    let listener = Listener::bind_temp(Some(b"k")).unwrap();
    let address = listener.address();
    let server = std::thread::spawn(move || {
        let wrong = listener.accept().map(|_| ());
        let right = listener.accept().map(|c| c.recv::<String>());
        (wrong, right)
    });
    let client_err = Client::connect(address.clone(), Some(b"bad")).unwrap_err();
    assert!(
        matches!(&client_err, Error::Authentication(m) if m == "digest sent was rejected"),
        "{client_err:?}"
    );
    let c = Client::connect(address, Some(b"k")).unwrap();
    c.send("welcome").unwrap();
    let (wrong, right) = server.join().unwrap();
    assert!(
        matches!(&wrong, Err(Error::Authentication(m)) if m == "digest received was wrong"),
        "{wrong:?}"
    );
    assert_eq!(right.unwrap().unwrap(), "welcome");
}

#[test]
fn a_client_without_a_key_is_refused_by_a_listener_with_one() {
    let _serial = serial();
    let listener = Listener::bind_temp(Some(b"k")).unwrap();
    let address = listener.address();
    let server = std::thread::spawn(move || listener.accept().map(|_| ()));
    // The client expects no challenge: it sends a message the server takes as a
    // (wrong) answer; nothing the client sent is decoded.
    let c = Client::connect(address, None).unwrap();
    let challenge = c.recv_bytes().unwrap();
    assert!(challenge.starts_with(b"#CHALLENGE#{sha256}"));
    c.send(&"not a digest").unwrap();
    assert!(matches!(
        server.join().unwrap(),
        Err(Error::Authentication(_))
    ));
    assert_eq!(c.recv_bytes().unwrap(), b"#FAILURE#");
}

#[test]
fn connecting_to_a_missing_path_is_not_found() {
    let _serial = serial();
    let err =
        Client::connect(Address::Unix("/nonexistent/mpcore-nothing".into()), None).unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == ErrorKind::NotFound),
        "{err:?}"
    );
}

#[test]
fn connection_is_not_clone() {
    // Resolves only if exactly one impl applies: adding `Clone` to `Connection`
    // makes the call ambiguous and this file stop compiling.
    trait AmbiguousIfClone<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfClone<()> for T {}
    #[allow(dead_code)]
    struct Marker;
    impl<T: Clone> AmbiguousIfClone<Marker> for T {}
    <Connection as AmbiguousIfClone<_>>::check();
}

#[test]
fn the_wire_format_is_cpythons() {
    // A CPython process on the other end of a socket pair, if python3 is there.
    use std::os::fd::AsRawFd;
    use std::process::{Command, Stdio};
    let _serial = serial();
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = theirs.as_raw_fd();
    let script = format!(
        "from multiprocessing.connection import Connection\n\
         c = Connection({fd})\n\
         m = c.recv_bytes()\n\
         c.send_bytes(m[::-1])\n\
         c.send_bytes(b'x' * 70000)\n\
         c.send_bytes(b'')\n\
         assert c.recv_bytes() == b'y' * 100000\n\
         c.send_bytes(b'done')\n"
    );
    let child = {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(script).stdin(Stdio::null());
        // Keep the descriptor open across exec in the child only.
        // SAFETY: the closure only calls fcntl, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                nix::fcntl::fcntl(
                    std::os::fd::BorrowedFd::borrow_raw(fd),
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                )
                .map(drop)
                .map_err(std::io::Error::from)
            })
        };
        cmd.spawn()
    };
    let Ok(mut child) = child else {
        eprintln!("python3 not found: skipping the CPython wire-format check");
        return;
    };
    drop(theirs);
    let conn = Connection::from_fd(ours.into(), true, true).unwrap();
    conn.send_bytes(b"hello").unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"olleh");
    assert_eq!(conn.recv_bytes().unwrap(), vec![b'x'; 70000]);
    assert_eq!(conn.recv_bytes().unwrap(), b"");
    conn.send_bytes(&vec![b'y'; 100000]).unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"done");
    assert!(child.wait().unwrap().success());
}

#[test]
fn from_fd_wraps_a_descriptor_and_needs_a_direction() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    assert!(Connection::from_fd(a.into(), false, false).is_err());
    let (r, w) = nix::unistd::pipe().unwrap();
    let r = Connection::from_fd(r, true, false).unwrap();
    let w = Connection::from_fd(w, false, true).unwrap();
    w.send(&[1u8, 2]).unwrap();
    assert_eq!(r.recv::<[u8; 2]>().unwrap(), [1, 2]);
    let b = Connection::from_fd(b.into(), true, true).unwrap();
    assert!(b.readable() && b.writable());
}

fn echo_until_zero(conn: Connection, reader: Connection, writer: Connection) {
    // A duplex end and a simplex pair, all received as arguments.
    while let Ok(n) = conn.recv::<u64>() {
        if n == 0 {
            break;
        }
        conn.send(&(n + 1)).unwrap();
    }
    let message = reader.recv_bytes().unwrap();
    writer.send_bytes(&message).unwrap();
}

#[test]
fn connections_pass_to_children_under_every_start_method() {
    let _serial = serial();
    for method in mpcore::get_all_start_methods() {
        let ctx = mpcore::get_context(method);
        let (parent, child) = ctx.pipe().unwrap();
        let (child_reader, parent_writer) = ctx.pipe_simplex().unwrap();
        let (parent_reader, child_writer) = ctx.pipe_simplex().unwrap();
        let p = start(ctx.process(echo_until_zero, (child, child_reader, child_writer)));
        for n in 1..20u64 {
            parent.send(&n).unwrap();
            assert_eq!(parent.recv::<u64>().unwrap(), n + 1, "{method:?}");
        }
        parent.send(&0u64).unwrap();
        parent_writer.send_bytes(b"through two pipes").unwrap();
        assert_eq!(parent_reader.recv_bytes().unwrap(), b"through two pipes");
        assert_eq!(finish(p), 0, "{method:?}");
        // The child's ends are gone with it (the parent's copies were closed by
        // start), so the parent sees end of file.
        assert!(
            matches!(parent_reader.recv_bytes(), Err(Error::Eof)),
            "{method:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Handles sent over a connection (row 52 of the catalogue).

/// Receives a connection, a queue and a shared value from a running parent, and
/// uses each of them.
fn use_received_handles(control: Connection) {
    let (conn, queue, value): (Connection, mpcore::Queue<String>, mpcore::Value<i32>) =
        control.recv().unwrap();
    conn.send("through the received connection").unwrap();
    queue.put("through the received queue".to_string()).unwrap();
    *value.lock() = 42;
    control.send(&"done").unwrap();
}

#[test]
fn handles_sent_over_a_connection_work_in_a_running_child() {
    let _serial = serial();
    for method in mpcore::get_all_start_methods() {
        let ctx = mpcore::get_context(method);
        let (control, child_control) = ctx.pipe().unwrap();
        let p = start(ctx.process(use_received_handles, (child_control,)));
        // Made after the child started: it can only have them from the message.
        let (mine, theirs) = ctx.pipe().unwrap();
        let queue = ctx.queue::<String>().unwrap();
        let value = ctx.value(0i32).unwrap();
        control.send(&(&theirs, &queue, &value)).unwrap();
        assert_eq!(control.recv::<String>().unwrap(), "done", "{method:?}");
        assert_eq!(
            mine.recv::<String>().unwrap(),
            "through the received connection"
        );
        assert_eq!(queue.get().unwrap(), "through the received queue");
        assert_eq!(value.get(), 42, "{method:?}");
        // The sender's handles still work: what was sent was a duplicate.
        theirs.send(&1u8).unwrap();
        assert_eq!(mine.recv::<u8>().unwrap(), 1);
        assert_eq!(finish(p), 0, "{method:?}");
    }
}

#[test]
fn a_large_message_with_a_handle_arrives_whole() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    let (x, y) = pipe().unwrap();
    let big = vec![7u8; 3 << 20];
    let reader = std::thread::spawn(move || b.recv::<(Vec<u8>, Connection)>().unwrap());
    a.send(&(&big, &y)).unwrap();
    let (got, y2) = reader.join().unwrap();
    assert_eq!(got, big);
    y2.send_bytes(b"still a connection").unwrap();
    assert_eq!(x.recv_bytes().unwrap(), b"still a connection");
}

#[test]
fn handles_are_refused_where_no_descriptor_can_travel() {
    let _serial = serial();
    let lock = mpcore::Lock::new().unwrap();
    // A one-way OS pipe cannot carry descriptors.
    let (r, w) = pipe_simplex().unwrap();
    let err = w.send(&lock).unwrap_err();
    assert!(err.to_string().contains("Unix-socket"), "{err}");
    assert!(!r.poll(), "nothing was sent");
    // Nor can TCP.
    let listener = Listener::bind(Address::Tcp("127.0.0.1:0".parse().unwrap()), None).unwrap();
    let client = Client::connect(listener.address(), None).unwrap();
    let server = listener.accept().unwrap();
    let err = client.send(&lock).unwrap_err();
    assert!(err.to_string().contains("Unix-socket"), "{err}");
    assert!(!server.poll(), "nothing was sent");
    // A queue item may not hold a handle either (as in CPython).
    let q = mpcore::Queue::new().unwrap();
    let err = q.put(lock).unwrap_err();
    assert!(err.to_string().contains("through inheritance"), "{err}");
}

#[test]
fn a_handle_without_its_descriptor_is_a_codec_error() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    let (_x, y) = pipe().unwrap();
    // The bytes of a message holding a connection, sent without the descriptor: a
    // peer forging handle indices gets an error, not someone else's descriptor.
    let (bytes, _fds) = mpcore::reduction::encode_with_handles(&y).unwrap();
    a.send_bytes(&bytes).unwrap();
    let err = b.recv::<Connection>().unwrap_err();
    assert!(matches!(err, Error::Codec(_)), "{err:?}");
    assert!(err.to_string().contains("no descriptor"), "{err}");
}

/// Receives two descriptors from a running parent, the write end of an OS pipe and
/// a Unix socket, and writes through each.
fn write_through_received_descriptors(control: Connection) {
    let pipe_end = recv_handle(&control).unwrap();
    std::fs::File::from(pipe_end)
        .write_all(b"through a descriptor numbered above 256")
        .unwrap();
    let socket = recv_handle(&control).unwrap();
    std::os::unix::net::UnixStream::from(socket)
        .write_all(b"through a received socket")
        .unwrap();
    control.send("done").unwrap();
}

/// Polls the read end it is sent, without reading, while the parent writes, and
/// reports what the poll said.
fn poll_without_reading(control: Connection) {
    let reader: Connection = control.recv().unwrap();
    control.send("polling").unwrap();
    let ready = reader.poll_timeout(BOUND);
    // Polling again changes nothing either.
    let still = reader.poll();
    control.send(&(ready, still)).unwrap();
}

per_method! {
    // Row 52 (CPython: test_fd_transfer, test_large_fd_transfer): descriptors
    // made after the child started reach it with send_handle, whatever their
    // number, and work there.
    fn send_handle_passes_descriptors_to_a_running_child(method: StartMethod) {
        use std::os::fd::{AsFd, AsRawFd, OwnedFd};
        let _serial = serial();
        let ctx = get_context(method);
        let (control, child_control) = ctx.pipe().unwrap();
        let p = start(ctx.process(write_through_received_descriptors, (child_control,)));
        let (mut reader, writer) = std::io::pipe().unwrap();
        let high = mpcore::sys::pipe::dup_at_least(OwnedFd::from(writer).as_fd(), 300).unwrap();
        assert!(high.as_raw_fd() > 256, "{}", high.as_raw_fd());
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        send_handle(&control, &high).unwrap();
        send_handle(&control, &theirs).unwrap();
        // The child now holds the only other copies: end of file comes when it exits.
        drop((high, theirs));
        assert_eq!(control.recv::<String>().unwrap(), "done", "{method}");
        assert_eq!(finish(p), 0, "{method}");
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "through a descriptor numbered above 256");
        text.clear();
        ours.read_to_string(&mut text).unwrap();
        assert_eq!(text, "through a received socket");
    }

    // Row 50 (CPython: test_boundaries): a poll in another process takes nothing
    // from the pipe and splits no message.
    fn a_poll_in_another_process_consumes_nothing(method: StartMethod) {
        let _serial = serial();
        let ctx = get_context(method);
        for duplex in [false, true] {
            let (reader, writer) = if duplex {
                ctx.pipe().unwrap()
            } else {
                ctx.pipe_simplex().unwrap()
            };
            let (control, child_control) = ctx.pipe().unwrap();
            let p = start(ctx.process(poll_without_reading, (child_control,)));
            control.send(&reader).unwrap(); // a duplicate: ours stays open
            assert_eq!(control.recv::<String>().unwrap(), "polling");
            std::thread::sleep(Duration::from_millis(50)); // let it sit in poll
            writer.send_bytes(b"first").unwrap();
            writer.send_bytes(b"second").unwrap();
            let polled = control.recv::<(bool, bool)>().unwrap();
            assert_eq!(polled, (true, true), "{method} duplex={duplex}");
            assert_eq!(finish(p), 0, "{method} duplex={duplex}");
            for expected in [&b"first"[..], b"second"] {
                // (A poll first: a consumed message fails the test, not hangs it.)
                assert!(reader.poll_timeout(PROMPT), "{method} duplex={duplex}");
                assert_eq!(reader.recv_bytes().unwrap(), expected, "{method} duplex={duplex}");
            }
            assert!(!reader.poll(), "{method} duplex={duplex}");
        }
    }
}

#[test]
fn recv_handle_on_a_message_without_a_descriptor_is_a_codec_error() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    // What a handle's index looks like, sent without the descriptor.
    a.send(&0u32).unwrap();
    let err = recv_handle(&b).unwrap_err();
    assert!(matches!(err, Error::Codec(_)), "{err:?}");
    assert!(err.to_string().contains("no descriptor"), "{err}");
    // Plain values and bytes.
    a.send("not a descriptor").unwrap();
    let err = recv_handle(&b).unwrap_err();
    assert!(matches!(err, Error::Codec(_)), "{err:?}");
    a.send_bytes(b"").unwrap();
    let err = recv_handle(&b).unwrap_err();
    assert!(matches!(err, Error::Codec(_)), "{err:?}");
    // Each failure consumed its message, and the connection still works.
    assert!(!b.poll());
    let (mut r, w) = std::io::pipe().unwrap();
    send_handle(&a, &w).unwrap();
    drop(w);
    std::fs::File::from(recv_handle(&b).unwrap())
        .write_all(b"ok")
        .unwrap();
    let mut text = String::new();
    r.read_to_string(&mut text).unwrap();
    assert_eq!(text, "ok");
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn descriptors_nobody_claims_are_closed() {
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    let (_x, y) = pipe().unwrap();
    let before = open_descriptors();
    for _ in 0..20 {
        // Received as bytes: the kernel drops the descriptors.
        a.send(&y).unwrap();
        b.recv_bytes().unwrap();
        // Received as the wrong type: decoding fails and they are closed.
        a.send(&(&y, &y)).unwrap();
        assert!(matches!(b.recv::<u8>(), Err(Error::Codec(_))));
        // Received and dropped.
        a.send(&y).unwrap();
        drop(b.recv::<Connection>().unwrap());
    }
    assert_eq!(open_descriptors(), before);
}

#[test]
fn poll_with_duration_max_waits_as_long_as_it_takes() {
    // Python's poll(None).
    let _serial = serial();
    let (a, b) = pipe().unwrap();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        a.send(&"late").unwrap();
        a
    });
    assert!(b.poll_timeout(Duration::MAX));
    assert_eq!(b.recv::<String>().unwrap(), "late");
    drop(sender.join().unwrap());
    assert!(b.poll_timeout(Duration::MAX), "end of file is ready too");
}
