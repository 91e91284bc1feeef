//! Connection benchmarks, next to their raw-syscall twins.
//!
//! - `round trip/*`: a small message to a child and back (ping-pong), with
//!   `send`/`recv` of a small value and `send_bytes`/`recv_bytes` of 16 bytes, over
//!   a socket pair (`pipe()`) and over two OS pipes (`pipe_simplex()`), against a
//!   raw `write`/`read` ping-pong of the same bytes (header included) over the same
//!   kind of descriptor, through nix.
//! - `throughput/*`: a child streams 64 KiB or 1 MiB messages, the parent receives
//!   them, against a raw `write`/`read` stream of the same sizes.
//!
//! CPython twin: `benches/python/connection.py`. Run with
//! `cargo bench -p mpcore --bench connection` (add `-- --quick` for a short run).

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use mpcore::{Connection, Process, pipe, pipe_simplex};

const SMALL: &[u8; 16] = b"0123456789abcdef";

/// A child that runs `body` and the parent's handle on it.
fn child(body: impl FnOnce() + Send + 'static) -> Process {
    let mut p = Process::from_closure(body);
    p.start().expect("start child");
    p
}

/// One side of a ping-pong: a duplex end used both ways, or a pipe in each
/// direction.
struct Ends<T> {
    rx: T,
    tx: Option<T>,
}

impl<T> Ends<T> {
    fn tx(&self) -> &T {
        self.tx.as_ref().unwrap_or(&self.rx)
    }
}

/// The parent's and the child's ends of a ping-pong channel: one socket pair, or
/// two OS pipes.
fn channel(duplex: bool) -> (Ends<Connection>, Ends<Connection>) {
    if duplex {
        let (a, b) = pipe().unwrap();
        (Ends { rx: a, tx: None }, Ends { rx: b, tx: None })
    } else {
        let (r1, w1) = pipe_simplex().unwrap();
        let (r2, w2) = pipe_simplex().unwrap();
        (
            Ends {
                rx: r1,
                tx: Some(w2),
            },
            Ends {
                rx: r2,
                tx: Some(w1),
            },
        )
    }
}

/// The same with raw descriptors.
fn raw_channel(duplex: bool) -> (Ends<OwnedFd>, Ends<OwnedFd>) {
    if duplex {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        (Ends { rx: a, tx: None }, Ends { rx: b, tx: None })
    } else {
        let (r1, w1) = nix::unistd::pipe().unwrap();
        let (r2, w2) = nix::unistd::pipe().unwrap();
        (
            Ends {
                rx: r1,
                tx: Some(w2),
            },
            Ends {
                rx: r2,
                tx: Some(w1),
            },
        )
    }
}

fn round_trips(c: &mut Criterion) {
    let mut group = c.benchmark_group("round trip");
    for duplex in [true, false] {
        let kind = if duplex { "socketpair" } else { "pipe" };
        // mpcore send/recv of a small value.
        {
            let (mine, theirs) = channel(duplex);
            let p = child(move || {
                while let Ok(v) = theirs.rx.recv::<(u64, String)>() {
                    if theirs.tx().send(&v).is_err() {
                        break;
                    }
                }
            });
            let (rx, tx) = (&mine.rx, mine.tx());
            let value = (42u64, "small".to_string());
            group.bench_function(BenchmarkId::new("mpcore send+recv", kind), |b| {
                b.iter(|| {
                    tx.send(&value).unwrap();
                    rx.recv::<(u64, String)>().unwrap()
                })
            });
            finish(mine, p);
        }
        // mpcore send_bytes/recv_bytes.
        {
            let (mine, theirs) = channel(duplex);
            let p = child(move || {
                while let Ok(v) = theirs.rx.recv_bytes() {
                    if theirs.tx().send_bytes(&v).is_err() {
                        break;
                    }
                }
            });
            let (rx, tx) = (&mine.rx, mine.tx());
            group.bench_function(
                BenchmarkId::new("mpcore send_bytes+recv_bytes", kind),
                |b| {
                    b.iter(|| {
                        tx.send_bytes(SMALL).unwrap();
                        rx.recv_bytes().unwrap()
                    })
                },
            );
            finish(mine, p);
        }
        // Raw: the same 20 bytes (4-byte header + 16), one write and one read each way.
        {
            let (mine, theirs) = raw_channel(duplex);
            let p = child(move || {
                let mut buf = [0u8; 20];
                while raw_read_exact(&theirs.rx, &mut buf) && raw_write_all(theirs.tx(), &buf) {}
            });
            let (rx, tx) = (&mine.rx, mine.tx());
            let mut frame = [0u8; 20];
            frame[..4].copy_from_slice(&16u32.to_be_bytes());
            frame[4..].copy_from_slice(SMALL);
            group.bench_function(BenchmarkId::new("raw write+read", kind), |b| {
                let mut buf = [0u8; 20];
                b.iter(|| {
                    assert!(raw_write_all(tx, &frame));
                    assert!(raw_read_exact(rx, &mut buf));
                })
            });
            finish(mine, p);
        }
    }
    group.finish();
}

/// Ends a child. Under fork it holds copies of every descriptor the parent had,
/// including the parent's own ends, so it never sees end of file: kill it.
fn finish<T>(mine: T, p: Process) {
    drop(mine);
    join(p);
}

fn join(mut p: Process) {
    p.kill().unwrap();
    p.join().unwrap();
}

fn raw_write_all(fd: &OwnedFd, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        match nix::unistd::write(fd.as_fd(), buf) {
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
    true
}

fn raw_read_exact(fd: &OwnedFd, buf: &mut [u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        match nix::unistd::read(fd.as_fd(), &mut buf[done..]) {
            Ok(0) => return false,
            Ok(n) => done += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
    true
}

fn throughputs(c: &mut Criterion) {
    let mut group = c.benchmark_group("throughput");
    for size in [64usize << 10, 1 << 20] {
        let label = if size == 64 << 10 { "64KiB" } else { "1MiB" };
        group.throughput(Throughput::Bytes(size as u64));
        for duplex in [true, false] {
            let kind = if duplex { "socketpair" } else { "pipe" };
            // mpcore: a child streams messages, the parent receives.
            for into in [false, true] {
                let (rx, tx) = if duplex {
                    pipe().unwrap()
                } else {
                    pipe_simplex().unwrap()
                };
                let p = child(move || {
                    let payload = vec![7u8; size];
                    while tx.send_bytes(&payload).is_ok() {}
                });
                let name = if into {
                    "mpcore recv_bytes_into"
                } else {
                    "mpcore recv_bytes"
                };
                let mut buf = vec![0u8; size];
                group.bench_function(BenchmarkId::new(name, format!("{kind} {label}")), |b| {
                    b.iter(|| {
                        if into {
                            assert_eq!(rx.recv_bytes_into(&mut buf, 0).unwrap(), size);
                        } else {
                            assert_eq!(rx.recv_bytes().unwrap().len(), size);
                        }
                    })
                });
                finish(rx, p);
            }
            // Raw: the same bytes, one write of header+payload, reads of exactly that.
            let (mine, theirs) = raw_channel(duplex);
            // For pipes: the parent reads the first pipe, the child writes it.
            let (rx, tx) = (mine.rx, theirs.tx.unwrap_or(theirs.rx));
            drop(mine.tx);
            let p = child(move || {
                let mut frame = vec![7u8; size + 4];
                frame[..4].copy_from_slice(&(size as u32).to_be_bytes());
                while raw_write_all(&tx, &frame) {}
            });
            let mut buf = vec![0u8; size + 4];
            group.bench_function(
                BenchmarkId::new("raw read", format!("{kind} {label}")),
                |b| b.iter(|| assert!(raw_read_exact(&rx, &mut buf))),
            );
            finish(rx, p);
        }
    }
    group.finish();
}

fn main() {
    mpcore::init();
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    round_trips(&mut c);
    throughputs(&mut c);
    c.final_summary();
}
