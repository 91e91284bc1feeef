//! Connections between processes: [`pipe`], [`Connection`], [`Listener`],
//! [`Client`] and [`wait`] (CPython: `connection.py`).
//!
//! A [`Connection`] is one end of a byte stream (a Unix socket or an OS pipe) that
//! carries whole *messages*: [`send`](Connection::send) encodes any serde value with
//! the crate's one codec ([`reduction`]) and
//! [`recv`](Connection::recv) decodes it; [`send_bytes`](Connection::send_bytes)
//! and [`recv_bytes`](Connection::recv_bytes) carry raw bytes.
//!
//! ```
//! let (a, b) = mpcore::pipe()?;
//! a.send(&vec![1.5, 2.25])?;
//! assert_eq!(b.recv::<Vec<f64>>()?, [1.5, 2.25]);
//! b.send_bytes(b"hello world")?;
//! assert_eq!(a.recv_bytes()?, b"hello world");
//! # Ok::<(), mpcore::Error>(())
//! ```
//!
//! # Wire format
//!
//! Python's, byte for byte: each message is a 4-byte big-endian length and the
//! payload; a payload of 2 GiB or more is announced by the length `0xFFFFFFFF`
//! (Python's `-1`) followed by an 8-byte big-endian length. The payload of `send` is
//! the bincode form of the value instead of a pickle, so only the byte-level calls
//! (and the authentication handshake) interoperate with CPython.
//!
//! # Design choices
//!
//! - **Few copies, few system calls.** A message goes out in one gathered write
//!   (`sendmsg`/`writev` of the header and the caller's buffer, so `send_bytes`
//!   never copies the payload; tiny ones are copied next to their header and sent
//!   with a plain `send`/`write`). `send` encodes straight into a buffer that
//!   already holds room for the header. A message comes in with one read for the
//!   header and reads straight into the result's spare capacity (no zeroing);
//!   `recv_bytes_into` reads straight into the caller's buffer.
//! - **No read-ahead.** Reading more than one message at a time would save the
//!   header's system call, but the surplus would live in one process's memory:
//!   processes that share a reading end under a lock (CPython's `SimpleQueue` and
//!   pool task pipes do exactly that, and a forked child gets a copy of the
//!   `Connection`) would each hold part of the stream, and `poll`, [`wait`] and raw
//!   `fileno` users would miss it. Like CPython, a `Connection` reads exactly one
//!   message and never more. The price is one `read` per message, measured at
//!   1.0-1.1x a raw ping-pong over a socket pair and 1.2-1.3x over OS pipes.
//! - **A defensive frame decoder.** The length in a header is a claim, not a fact:
//!   at most 4 MiB is reserved up front, and beyond that the buffer grows as bytes
//!   actually arrive. A stream that ends inside a frame gives [`Error::Eof`]
//!   (CPython raises `OSError("got end of file during message")` there); a header
//!   with a length that is neither valid nor the large-message marker gives
//!   [`Error::Codec`] and, like a too-long message for
//!   [`recv_bytes_max`](Connection::recv_bytes_max), leaves the connection
//!   unreadable, since the stream is no longer at a message boundary.
//! - **No `SIGPIPE` deaths.** Sending to a peer that has gone returns
//!   `Error::Io` with `ErrorKind::BrokenPipe`. Sockets use `MSG_NOSIGNAL`; for OS
//!   pipes mpcore ignores `SIGPIPE` process-wide, as CPython and Rust's runtime
//!   already do at start-up (see [`sys::pipe::ignore_sigpipe`]).
//! - **Passing to children.** A `Connection` is `Serialize + Deserialize`: as an
//!   argument of a child's target it travels as its descriptor (see
//!   [`reduction::serialize_fd`]). Under fork
//!   nothing is encoded: the end is moved into the child, and the parent's copy is
//!   closed when `start()` returns, so the reader of a pipe whose only writer went to
//!   a child that died sees [`Error::Eof`]. The converse is fork's (and CPython's)
//!   classic trap: a forked child inherits *every* descriptor the parent had open,
//!   including the parent's own end of the pipe, so a child waiting for end of file
//!   on its end waits forever. Stop a child with a message, not by closing.
//! - **Sending handles to a running process.** Over a Unix socket ([`pipe`], or a
//!   [`Listener`]/[`Client`] on a Unix address), [`send`](Connection::send) may carry
//!   handles: a `Connection`, a lock, a queue, a shared value. Their descriptors
//!   travel with the message's first byte (`SCM_RIGHTS`) and
//!   [`recv`](Connection::recv) turns them into working handles of the receiver;
//!   the sender keeps its own. CPython can send only a `Connection` this way (by a
//!   helper thread, `resource_sharer`); an OS pipe or TCP cannot carry descriptors,
//!   so there such a `send` is an error and nothing is sent.
//!   [`reduction::send_handle`] and [`reduction::recv_handle`] pass a bare
//!   descriptor.
//!
//! # Authentication
//!
//! [`Listener`] and [`Client`] take an optional authkey. With one, the two sides run
//! Python 3.12's mutual challenge ([`deliver_challenge`], [`answer_challenge`]):
//! each sends `#CHALLENGE#{sha256}` and 40 random bytes, and checks that the other
//! answers with `{sha256}` and the HMAC-SHA256 of that message under the key. A
//! wrong key fails both sides with [`Error::Authentication`]; nothing an
//! unauthenticated peer sends is decoded, each handshake message is at most 256
//! bytes, and a peer that stops answering is dropped after 20 s (Python's
//! `CONNECTION_TIMEOUT`) with [`Error::Timeout`]. Legacy HMAC-MD5 peers (Python
//! 3.11 and older) are refused.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::de::{DeserializeOwned, Error as _};
use serde::ser::{Error as _, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::reduction;
use crate::sys;

/// The length word that announces an 8-byte length (Python's `struct.pack("!i", -1)`).
const LARGE_MARKER: u32 = 0xFFFF_FFFF;
/// The largest length a 4-byte header carries (Python's `0x7fffffff`).
const MAX_SHORT_LEN: usize = 0x7FFF_FFFF;
/// Messages up to this size are copied next to their header and sent with one
/// plain `send`/`write`; longer ones go out as a gathered write without a copy.
const SMALL_MESSAGE: usize = 512;
/// At most this much is reserved on the strength of a header's claim alone.
const MAX_UPFRONT: usize = 4 << 20;

/// A duplex pipe: two connected ends, each of which can send and receive
/// (Python: `multiprocessing.Pipe()`, a Unix socket pair).
///
/// ```
/// let (parent, child) = mpcore::pipe()?;
/// child.send(&("ping", 1u8))?;
/// assert_eq!(parent.recv::<(String, u8)>()?, ("ping".to_string(), 1));
/// # Ok::<(), mpcore::Error>(())
/// ```
pub fn pipe() -> Result<(Connection, Connection)> {
    let (a, b) = sys::socket::socketpair()?;
    Ok((
        Connection::new(a, true, true, true),
        Connection::new(b, true, true, true),
    ))
}

/// A one-way pipe: `(reader, writer)` (Python: `multiprocessing.Pipe(duplex=False)`,
/// an OS pipe). The reader refuses to send ("connection is read-only") and the
/// writer to receive ("connection is write-only").
///
/// ```
/// let (reader, writer) = mpcore::pipe_simplex()?;
/// writer.send(&42u32)?;
/// assert_eq!(reader.recv::<u32>()?, 42);
/// assert!(writer.recv::<u32>().is_err());
/// # Ok::<(), mpcore::Error>(())
/// ```
pub fn pipe_simplex() -> Result<(Connection, Connection)> {
    let (r, w) = sys::pipe::pipe()?;
    Ok((
        Connection::new(r, false, true, false),
        Connection::new(w, false, false, true),
    ))
}

fn os_error(msg: &str) -> Error {
    Error::Io(io::Error::other(msg.to_string()))
}

/// One end of a pipe or socket that carries whole messages
/// (Python: `multiprocessing.connection.Connection`).
///
/// Made by [`pipe`], [`pipe_simplex`], [`Listener::accept`] and [`Client::connect`].
/// Dropping it closes the descriptor. It is `Send` and `Sync` but not `Clone` (one
/// descriptor, one owner); it can be passed to a child as an argument of its target.
/// As in Python, two threads receiving on the same connection at once may each get
/// part of a message: give each thread its own connection.
pub struct Connection {
    fd: Option<OwnedFd>,
    socket: bool,
    readable: AtomicBool,
    writable: bool,
}

impl Connection {
    fn new(fd: OwnedFd, socket: bool, readable: bool, writable: bool) -> Connection {
        if !socket {
            sys::pipe::ignore_sigpipe();
        }
        Connection {
            fd: Some(fd),
            socket,
            readable: AtomicBool::new(readable),
            writable,
        }
    }

    /// Wraps a descriptor that is already connected: a stream socket or one end of
    /// a pipe (Python: `Connection(handle, readable, writable)`). Errors if neither
    /// direction is allowed.
    pub fn from_fd(fd: OwnedFd, readable: bool, writable: bool) -> Result<Connection> {
        if !readable && !writable {
            return Err(Error::invalid(
                "at least one of `readable` and `writable` must be True",
            ));
        }
        let socket = sys::socket::is_socket(fd.as_fd());
        Ok(Connection::new(fd, socket, readable, writable))
    }

    /// Wraps a connected stream socket, readable and writable.
    fn from_socket(fd: OwnedFd) -> Connection {
        Connection::new(fd, true, true, true)
    }

    fn fd(&self) -> Result<BorrowedFd<'_>> {
        self.fd
            .as_ref()
            .map(AsFd::as_fd)
            .ok_or_else(|| os_error("handle is closed"))
    }

    fn check_readable(&self) -> Result<BorrowedFd<'_>> {
        let fd = self.fd()?;
        if self.readable.load(Ordering::Relaxed) {
            Ok(fd)
        } else if self.writable {
            Err(os_error("connection is write-only"))
        } else {
            Err(os_error(
                "connection is unusable: the stream lost its message boundaries",
            ))
        }
    }

    fn check_writable(&self) -> Result<BorrowedFd<'_>> {
        let fd = self.fd()?;
        if self.writable {
            Ok(fd)
        } else {
            Err(os_error("connection is read-only"))
        }
    }

    /// Sends `obj`, encoded with the crate's codec (Python: `send(obj)`, which
    /// pickles). The peer decodes it with [`recv`](Connection::recv) of the same type.
    pub fn send<T: Serialize + ?Sized>(&self, obj: &T) -> Result<()> {
        let fd = self.check_writable()?;
        // Encode straight after room for the short header: one buffer, no copy.
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; 4]);
        let handles = reduction::encode_with_handles_into(obj, &mut buf)?;
        let len = buf.len() - 4;
        if !handles.is_empty() {
            return self.send_with_handles(fd, &buf[4..], &handles);
        }
        if len <= MAX_SHORT_LEN {
            buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
            sys::socket::write_all_vectored(fd, self.socket, &[&buf])?;
        } else {
            let (header, n) = frame_header(len);
            sys::socket::write_all_vectored(fd, self.socket, &[&header[..n], &buf[4..]])?;
        }
        Ok(())
    }

    /// Sends a message whose value holds handles (connections, locks, queues,
    /// shared values): their descriptors go with its first byte (`SCM_RIGHTS`),
    /// which only a Unix socket can carry.
    fn send_with_handles(
        &self,
        fd: BorrowedFd<'_>,
        payload: &[u8],
        handles: &[OwnedFd],
    ) -> Result<()> {
        if !(self.socket && sys::socket::is_unix(fd)) {
            return Err(Error::invalid(
                "handles (connections, locks, queues, shared values) can only be sent \
                 over a Unix-socket connection: pipe() or a Unix-address Listener/Client",
            ));
        }
        let (header, n) = frame_header(payload.len());
        let mut frame = Vec::with_capacity(n + payload.len());
        frame.extend_from_slice(&header[..n]);
        frame.extend_from_slice(payload);
        let handles: Vec<BorrowedFd<'_>> = handles.iter().map(AsFd::as_fd).collect();
        let sent = sys::scm::send_with_fds(fd, &frame, &handles)?;
        sys::socket::write_all_vectored(fd, true, &[&frame[sent..]])?;
        Ok(())
    }

    /// Receives a message sent by [`send`](Connection::send) and decodes it as a `T`
    /// (Python: `recv()`). Blocks until a whole message has arrived.
    ///
    /// On a Unix socket the message may carry handles: a `Connection`, a lock, a
    /// queue or a shared value sent by the peer arrives as a working handle of this
    /// process (Python pickles a `Connection` with `DupFd` for the same effect).
    ///
    /// Errors: [`Error::Eof`] when the peer has closed and nothing is left;
    /// [`Error::Codec`] when the bytes are not a `T`.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T> {
        if !self.socket {
            return reduction::decode(&self.recv_message(None)?);
        }
        let mut handles = Vec::new();
        let buf = self.recv_message_with_handles(None, Some(&mut handles))?;
        reduction::decode_with_handles(&buf, handles)
    }

    /// Sends `buf` as one message (Python: `send_bytes(buf)`).
    pub fn send_bytes(&self, buf: &[u8]) -> Result<()> {
        let fd = self.check_writable()?;
        send_frame(fd, self.socket, buf)
    }

    /// Sends `buf[offset..offset + size]` as one message; `size: None` means "to
    /// the end" (Python: `send_bytes(buf, offset, size)`). A range outside `buf` is
    /// an error (`"buffer length < offset"`, `"buffer length < offset + size"`) and
    /// nothing is sent.
    pub fn send_bytes_range(&self, buf: &[u8], offset: usize, size: Option<usize>) -> Result<()> {
        let fd = self.check_writable()?;
        if offset > buf.len() {
            return Err(Error::invalid("buffer length < offset"));
        }
        let size = size.unwrap_or(buf.len() - offset);
        if size > buf.len() - offset {
            return Err(Error::invalid("buffer length < offset + size"));
        }
        send_frame(fd, self.socket, &buf[offset..offset + size])
    }

    /// Receives one message as bytes (Python: `recv_bytes()`).
    ///
    /// Errors: [`Error::Eof`] when the peer has closed and nothing is left.
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.recv_message(None)
    }

    /// Receives one message of at most `maxlength` bytes (Python:
    /// `recv_bytes(maxlength)`).
    ///
    /// A longer message is an error (`"bad message length"`). As in CPython, the
    /// connection then stops being readable, since the rest of that message is still
    /// in the stream: [`readable`](Connection::readable) turns false and later
    /// receives fail; sending on a duplex end still works.
    pub fn recv_bytes_max(&self, maxlength: usize) -> Result<Vec<u8>> {
        self.recv_message(Some(maxlength))
    }

    /// Receives one message into `buf` starting at byte `offset`, and returns its
    /// length (Python: `recv_bytes_into(buf, offset)`).
    ///
    /// `offset > buf.len()` is an error (`"offset too large"`) raised before
    /// anything is read. If the message does not fit in `buf[offset..]`, it is
    /// consumed and returned whole in [`Error::BufferTooShort`].
    pub fn recv_bytes_into(&self, buf: &mut [u8], offset: usize) -> Result<usize> {
        let fd = self.check_readable()?;
        if offset > buf.len() {
            return Err(Error::invalid("offset too large"));
        }
        let len = self.recv_len(fd, None)?;
        let room = buf.len() - offset;
        match usize::try_from(len) {
            Ok(n) if n <= room => {
                read_exact(fd, &mut buf[offset..offset + n])?;
                Ok(n)
            }
            _ => {
                let mut whole = Vec::new();
                read_body(fd, len, &mut whole)?;
                Err(Error::BufferTooShort(whole))
            }
        }
    }

    fn recv_message(&self, maxlength: Option<usize>) -> Result<Vec<u8>> {
        self.recv_message_with_handles(maxlength, None)
    }

    /// Receives one message; with `handles`, also the descriptors that came with it
    /// (without, the kernel closes any that did).
    fn recv_message_with_handles(
        &self,
        maxlength: Option<usize>,
        handles: Option<&mut Vec<OwnedFd>>,
    ) -> Result<Vec<u8>> {
        let fd = self.check_readable()?;
        let len = self.recv_len(fd, handles)?;
        if let Some(max) = maxlength
            && len > max as u64
        {
            self.readable.store(false, Ordering::Relaxed);
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad message length",
            )));
        }
        let mut buf = Vec::new();
        read_body(fd, len, &mut buf)?;
        Ok(buf)
    }

    /// Reads a frame header and returns the payload length.
    fn recv_len(&self, fd: BorrowedFd<'_>, handles: Option<&mut Vec<OwnedFd>>) -> Result<u64> {
        let mut short = [0u8; 4];
        match handles {
            // Descriptors sent with a message come with its first byte.
            Some(handles) => read_exact_with_fds(fd, &mut short, handles)?,
            None => read_exact(fd, &mut short)?,
        }
        match u32::from_be_bytes(short) {
            LARGE_MARKER => {
                let mut long = [0u8; 8];
                read_exact(fd, &mut long)?;
                Ok(u64::from_be_bytes(long))
            }
            n if n as usize <= MAX_SHORT_LEN => Ok(u64::from(n)),
            n => {
                // A negative length in Python's signed header: the stream is garbage.
                self.readable.store(false, Ordering::Relaxed);
                Err(Error::Codec(format!(
                    "invalid message length header {n:#x}"
                )))
            }
        }
    }

    /// Whether a message (or the end of the stream) is waiting to be read, without
    /// blocking (Python: `poll()`). True at end of file: the next receive returns
    /// [`Error::Eof`] at once. False on a closed or write-only end (where Python
    /// raises `OSError`).
    pub fn poll(&self) -> bool {
        self.poll_timeout(Duration::ZERO)
    }

    /// Waits up to `timeout` for a message (or the end of the stream) to be ready
    /// (Python: `poll(timeout)`). See [`poll`](Connection::poll). `Duration::MAX`
    /// waits as long as it takes (Python: `poll(None)`).
    pub fn poll_timeout(&self, timeout: Duration) -> bool {
        match self.check_readable() {
            Ok(fd) => sys::poll::wait_readable(&[fd.as_raw_fd()], Some(timeout))
                .is_ok_and(|ready| ready[0]),
            Err(_) => false,
        }
    }

    /// The descriptor (Python: `fileno()`); an error once closed
    /// (`"handle is closed"`).
    pub fn fileno(&self) -> Result<RawFd> {
        Ok(self.fd()?.as_raw_fd())
    }

    /// Closes the connection (Python: `close()`). Closing twice is fine; every other
    /// call afterwards fails with `"handle is closed"`.
    pub fn close(&mut self) -> Result<()> {
        drop(self.fd.take());
        Ok(())
    }

    /// Whether [`close`](Connection::close) was called (Python: `closed`).
    pub fn closed(&self) -> bool {
        self.fd.is_none()
    }

    /// Whether this end can receive (Python: `readable`).
    pub fn readable(&self) -> bool {
        self.readable.load(Ordering::Relaxed)
    }

    /// Whether this end can send (Python: `writable`).
    pub fn writable(&self) -> bool {
        self.writable
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Connection");
        match &self.fd {
            Some(fd) => d.field("fd", &fd.as_raw_fd()),
            None => d.field("fd", &"closed"),
        };
        d.field("kind", &if self.socket { "socket" } else { "pipe" })
            .field("readable", &self.readable())
            .field("writable", &self.writable)
            .finish()
    }
}

/// The header of a frame of `len` bytes: 4 bytes, or 12 for 2 GiB and more.
fn frame_header(len: usize) -> ([u8; 12], usize) {
    let mut header = [0u8; 12];
    if len <= MAX_SHORT_LEN {
        header[..4].copy_from_slice(&(len as u32).to_be_bytes());
        (header, 4)
    } else {
        header[..4].copy_from_slice(&LARGE_MARKER.to_be_bytes());
        header[4..].copy_from_slice(&(len as u64).to_be_bytes());
        (header, 12)
    }
}

fn send_frame(fd: BorrowedFd<'_>, socket: bool, payload: &[u8]) -> Result<()> {
    let (header, n) = frame_header(payload.len());
    if payload.len() <= SMALL_MESSAGE {
        let mut small = [0u8; 4 + SMALL_MESSAGE];
        small[..4].copy_from_slice(&header[..4]);
        small[4..4 + payload.len()].copy_from_slice(payload);
        sys::socket::write_all_vectored(fd, socket, &[&small[..4 + payload.len()]])?;
    } else {
        sys::socket::write_all_vectored(fd, socket, &[&header[..n], payload])?;
    }
    Ok(())
}

fn read_error(err: io::Error) -> Error {
    if err.kind() == io::ErrorKind::WouldBlock {
        // Only a receive time-out (the authentication handshake) makes a blocking
        // descriptor report this.
        Error::Timeout
    } else {
        Error::Io(err)
    }
}

/// Fills `buf` from `fd`; end of file before it is full is [`Error::Eof`].
fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match sys::socket::read(fd, &mut buf[done..]).map_err(read_error)? {
            0 => return Err(Error::Eof),
            n => done += n,
        }
    }
    Ok(())
}

/// [`read_exact`] on a Unix socket, keeping the descriptors that come with the bytes.
fn read_exact_with_fds(fd: BorrowedFd<'_>, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let (n, received) = sys::scm::recv_with_fds(fd, &mut buf[done..]).map_err(read_error)?;
        fds.extend(received);
        match n {
            0 => return Err(Error::Eof),
            n => done += n,
        }
    }
    Ok(())
}

/// Appends a payload of `len` bytes from `fd` to `out`, reserving memory as bytes
/// arrive rather than trusting `len` (at most [`MAX_UPFRONT`] is reserved ahead).
fn read_body(fd: BorrowedFd<'_>, len: u64, out: &mut Vec<u8>) -> Result<()> {
    let Ok(len) = usize::try_from(len) else {
        return Err(Error::Codec(format!("message of {len} bytes is too large")));
    };
    if len > isize::MAX as usize {
        return Err(Error::Codec(format!("message of {len} bytes is too large")));
    }
    out.reserve_exact(len.min(MAX_UPFRONT));
    let mut left = len;
    while left > 0 {
        // Ask for what is left, but never for more than the buffer already holds
        // plus what was reserved: growth doubles with the data actually received.
        let room = out.capacity() - out.len();
        let ask = if room > 0 {
            left.min(room)
        } else {
            left.min(out.len().max(MAX_UPFRONT))
        };
        match sys::socket::read_append(fd, out, ask).map_err(read_error)? {
            0 => return Err(Error::Eof),
            n => left -= n,
        }
    }
    Ok(())
}

/// Something [`wait`] can wait for: a connection, or a raw descriptor such as a
/// process [`sentinel`](crate::Process::sentinel).
#[derive(Debug, Clone, Copy)]
pub enum Waitable<'a> {
    /// Ready when a message (or end of file) can be read.
    Conn(&'a Connection),
    /// Ready when the descriptor polls readable (a pidfd: when the process ended).
    Fd(RawFd),
}

impl<'a> From<&'a Connection> for Waitable<'a> {
    fn from(conn: &'a Connection) -> Self {
        Waitable::Conn(conn)
    }
}

impl From<RawFd> for Waitable<'_> {
    fn from(fd: RawFd) -> Self {
        Waitable::Fd(fd)
    }
}

/// Waits until at least one of `objects` is ready, or `timeout` passes (`None`:
/// forever), and returns the indices of the ready ones, in increasing order
/// (Python: `multiprocessing.connection.wait`, which returns the objects).
///
/// A connection is ready when [`Connection::poll`] would be true (a message or end
/// of file); a descriptor when it polls readable: a process sentinel once that
/// process has ended. An empty list with no time-out waits forever, as in Python.
///
/// ```
/// use mpcore::connection::{wait, Waitable};
/// use std::time::Duration;
///
/// let (a, b) = mpcore::pipe()?;
/// let (c, d) = mpcore::pipe()?;
/// d.send(&"wake up")?;
/// let ready = wait(&[Waitable::from(&a), Waitable::from(&c)], Some(Duration::from_secs(5)))?;
/// assert_eq!(ready, [1]);
/// # drop(b);
/// # Ok::<(), mpcore::Error>(())
/// ```
pub fn wait(objects: &[Waitable<'_>], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let fds = objects
        .iter()
        .map(|object| match object {
            Waitable::Conn(conn) => conn.check_readable().map(|fd| fd.as_raw_fd()),
            Waitable::Fd(fd) => Ok(*fd),
        })
        .collect::<Result<Vec<RawFd>>>()?;
    let ready = sys::poll::wait_readable(&fds, timeout)?;
    Ok(ready
        .iter()
        .enumerate()
        .filter_map(|(i, &r)| r.then_some(i))
        .collect())
}

// ---------------------------------------------------------------------------
// Passing a connection to a child.

/// A borrowed descriptor that serializes through [`reduction::serialize_fd`].
struct FdRef<'a>(BorrowedFd<'a>);

impl Serialize for FdRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        reduction::serialize_fd("Connection", self.0, s)
    }
}

/// An owned descriptor that deserializes through [`reduction::deserialize_fd`].
struct FdOwned(OwnedFd);

impl<'de> Deserialize<'de> for FdOwned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        reduction::deserialize_fd(d).map(FdOwned)
    }
}

/// A connection passed as an argument of a child's target travels as its
/// descriptor and flags (Python: `reduce_connection`). Outside a child's start, and
/// for a closed connection, serializing is an error.
impl Serialize for Connection {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let fd = self
            .fd
            .as_ref()
            .ok_or_else(|| S::Error::custom("cannot pass a closed Connection"))?;
        let mut t = s.serialize_tuple(4)?;
        t.serialize_element(&FdRef(fd.as_fd()))?;
        t.serialize_element(&self.socket)?;
        t.serialize_element(&self.readable())?;
        t.serialize_element(&self.writable)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (fd, socket, readable, writable) = <(FdOwned, bool, bool, bool)>::deserialize(d)?;
        if !readable && !writable {
            return Err(D::Error::custom(
                "at least one of `readable` and `writable` must be true",
            ));
        }
        Ok(Connection::new(fd.0, socket, readable, writable))
    }
}

// ---------------------------------------------------------------------------
// Listener and Client.

/// Where a [`Listener`] listens and a [`Client`] connects (Python: an address of
/// family `AF_UNIX`, a path string, or `AF_INET`, a `(host, port)` tuple).
///
/// A Unix path whose first byte is NUL names a socket in Linux's abstract namespace
/// (Python's `'\0name'`): it has no file and needs no clean-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// A Unix domain socket path.
    Unix(PathBuf),
    /// A TCP address; use port 0 to let the system choose a free port.
    Tcp(SocketAddr),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "{}", path.display()),
            Address::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

fn abstract_name(path: &Path) -> Option<&[u8]> {
    let bytes = path.as_os_str().as_bytes();
    (bytes.first() == Some(&0)).then(|| &bytes[1..])
}

enum Socket {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// What a listener removes when it closes: its socket file, and the private
/// directory it made for it.
#[derive(Debug)]
struct Cleanup {
    file: PathBuf,
    dir: Option<PathBuf>,
    /// Only the process that bound the socket removes it (a forked child that
    /// inherited a copy must not).
    owner: i32,
}

impl Cleanup {
    fn run(self) {
        if std::process::id() as i32 == self.owner {
            let _ = std::fs::remove_file(&self.file);
            if let Some(dir) = &self.dir {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// A bound socket that accepts connections (Python:
/// `multiprocessing.connection.Listener`).
///
/// Dropping it, or [`close`](Listener::close), stops listening and removes its Unix
/// socket file. It is `Send`, so a helper thread may accept.
///
/// ```
/// use mpcore::connection::{Address, Client, Listener};
///
/// let listener = Listener::bind(Address::Tcp("127.0.0.1:0".parse().unwrap()), Some(b"secret"))?;
/// let address = listener.address();
/// let server = std::thread::spawn(move || -> mpcore::Result<String> {
///     listener.accept()?.recv::<String>()
/// });
/// let client = Client::connect(address, Some(b"secret"))?;
/// client.send("hello")?;
/// assert_eq!(server.join().unwrap()?, "hello");
/// # Ok::<(), mpcore::Error>(())
/// ```
pub struct Listener {
    socket: Option<Socket>,
    address: Address,
    authkey: Option<Vec<u8>>,
    cleanup: Option<Cleanup>,
}

/// How long each side of the authentication handshake waits for the other
/// (Python: `CONNECTION_TIMEOUT`).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

impl Listener {
    /// Binds to `address` and listens (Python: `Listener(address, authkey=...)`).
    /// With an authkey (`Some(b"")` included), every accepted connection must pass
    /// the challenge of the module docs. A Unix path that exists, or a TCP address
    /// in use, is an error.
    pub fn bind(address: Address, authkey: Option<&[u8]>) -> Result<Listener> {
        Listener::bind_inner(address, authkey, None)
    }

    /// Binds a Unix socket at a fresh path in a new private directory (mode 0700)
    /// under the system's temporary directory, both named `mpcore-...`; closing the
    /// listener removes both (Python: `Listener()` with no address).
    pub fn bind_temp(authkey: Option<&[u8]>) -> Result<Listener> {
        let dir = private_temp_dir()?;
        let path = dir.join(format!("mpcore-listener-{}.sock", std::process::id()));
        Listener::bind_inner(Address::Unix(path), authkey, Some(dir.clone())).inspect_err(|_| {
            let _ = std::fs::remove_dir(&dir);
        })
    }

    fn bind_inner(
        address: Address,
        authkey: Option<&[u8]>,
        dir: Option<PathBuf>,
    ) -> Result<Listener> {
        let (socket, address, cleanup) = match address {
            Address::Unix(path) => {
                let listener = match abstract_name(&path) {
                    Some(name) => {
                        use std::os::linux::net::SocketAddrExt;
                        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                        UnixListener::bind_addr(&addr)?
                    }
                    None => UnixListener::bind(&path)?,
                };
                let cleanup = abstract_name(&path).is_none().then(|| Cleanup {
                    file: path.clone(),
                    dir,
                    owner: std::process::id() as i32,
                });
                (Socket::Unix(listener), Address::Unix(path), cleanup)
            }
            Address::Tcp(addr) => {
                let listener = TcpListener::bind(addr)?;
                let real = listener.local_addr()?;
                (Socket::Tcp(listener), Address::Tcp(real), None)
            }
        };
        Ok(Listener {
            socket: Some(socket),
            address,
            authkey: authkey.map(<[u8]>::to_vec),
            cleanup,
        })
    }

    /// Waits for a client, runs the authentication challenge if there is an authkey,
    /// and returns the connection (Python: `accept()`). A client with the wrong key
    /// makes this return [`Error::Authentication`] ("digest received was wrong").
    pub fn accept(&self) -> Result<Connection> {
        let fd: OwnedFd = match &self.socket {
            None => return Err(os_error("listener is closed")),
            Some(Socket::Unix(l)) => l.accept()?.0.into(),
            Some(Socket::Tcp(l)) => l.accept()?.0.into(),
        };
        let conn = Connection::from_socket(fd);
        if let Some(key) = &self.authkey {
            authenticate(&conn, key, true)?;
        }
        Ok(conn)
    }

    /// The address clients connect to: for TCP the real port when bound to port 0
    /// (Python: `address`).
    pub fn address(&self) -> Address {
        self.address.clone()
    }

    /// Stops listening and removes the Unix socket file (Python: `close()`). Later
    /// `accept` calls fail with "listener is closed". Closing twice is fine.
    pub fn close(&mut self) -> Result<()> {
        drop(self.socket.take());
        if let Some(cleanup) = self.cleanup.take() {
            cleanup.run();
        }
        Ok(())
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .field("closed", &self.socket.is_none())
            .field("authenticated", &self.authkey.is_some())
            .finish()
    }
}

/// Makes a new private directory `mpcore-<pid>-<n>-<random>` (mode 0700) in the
/// system's temporary directory (Python: `util.get_temp_dir()`).
fn private_temp_dir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let mut random = [0u8; 6];
        random_bytes(&mut random)?;
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let dir = base.join(format!(
            "mpcore-{}-{}-{suffix}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(os_error("could not create a private temporary directory"))
}

fn random_bytes(buf: &mut [u8]) -> Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)?;
    Ok(())
}

/// Connects to a [`Listener`] (Python: `multiprocessing.connection.Client`).
#[derive(Debug)]
pub struct Client;

impl Client {
    /// Connects to `address` and, with an authkey, answers and then sends the
    /// challenge. A listener with another key makes this return
    /// [`Error::Authentication`] ("digest sent was rejected"); a missing Unix path
    /// is an `Error::Io` with `ErrorKind::NotFound`.
    pub fn connect(address: Address, authkey: Option<&[u8]>) -> Result<Connection> {
        let fd: OwnedFd = match &address {
            Address::Unix(path) => match abstract_name(path) {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                    UnixStream::connect_addr(&addr)?.into()
                }
                None => UnixStream::connect(path)?.into(),
            },
            Address::Tcp(addr) => TcpStream::connect(addr)?.into(),
        };
        let conn = Connection::from_socket(fd);
        if let Some(key) = authkey {
            authenticate(&conn, key, false)?;
        }
        Ok(conn)
    }
}

// ---------------------------------------------------------------------------
// The authentication handshake (Python 3.12+).

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
const DIGEST_PREFIX: &[u8] = b"{sha256}";
/// Random bytes in a challenge (Python: `MESSAGE_LENGTH`).
const MESSAGE_LENGTH: usize = 40;
/// The longest handshake message either side accepts.
const MAX_HANDSHAKE_MESSAGE: usize = 256;

/// Runs both halves of the challenge, in the server's or the client's order, with
/// a receive time-out on the socket for the duration.
fn authenticate(conn: &Connection, key: &[u8], server: bool) -> Result<()> {
    let fd = conn.fd()?;
    sys::socket::set_recv_timeout(fd, Some(HANDSHAKE_TIMEOUT))?;
    let result = if server {
        deliver_challenge(conn, key).and_then(|()| answer_challenge(conn, key))
    } else {
        answer_challenge(conn, key).and_then(|()| deliver_challenge(conn, key))
    };
    sys::socket::set_recv_timeout(fd, None)?;
    result
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac
}

fn handshake_recv(conn: &Connection) -> Result<Vec<u8>> {
    conn.recv_bytes_max(MAX_HANDSHAKE_MESSAGE)
        .map_err(|err| match err {
            Error::Io(e) if e.kind() == io::ErrorKind::InvalidData => {
                Error::Authentication("handshake message too long".to_string())
            }
            Error::Codec(msg) => Error::Authentication(format!("bad handshake message: {msg}")),
            other => other,
        })
}

/// Sends a challenge to the peer and checks its answer (Python:
/// `multiprocessing.connection.deliver_challenge`): the server's first half of the
/// handshake, and the client's second.
///
/// Sends `#CHALLENGE#{sha256}` and 40 random bytes, expects `{sha256}` followed by
/// the HMAC-SHA256 of `{sha256}<random bytes>` under `authkey`, and answers
/// `#WELCOME#` or `#FAILURE#`. A wrong answer is [`Error::Authentication`]
/// ("digest received was wrong").
pub fn deliver_challenge(conn: &Connection, authkey: &[u8]) -> Result<()> {
    let mut message = DIGEST_PREFIX.to_vec();
    let mut random = [0u8; MESSAGE_LENGTH];
    random_bytes(&mut random)?;
    message.extend_from_slice(&random);
    let mut challenge = CHALLENGE.to_vec();
    challenge.extend_from_slice(&message);
    conn.send_bytes(&challenge)?;
    let response = handshake_recv(conn)?;
    match verify_response(authkey, &message, &response) {
        Ok(()) => conn.send_bytes(WELCOME),
        Err(err) => {
            let _ = conn.send_bytes(FAILURE);
            Err(err)
        }
    }
}

fn verify_response(authkey: &[u8], message: &[u8], response: &[u8]) -> Result<()> {
    let Some(mac) = response.strip_prefix(DIGEST_PREFIX) else {
        return Err(Error::Authentication(
            "unsupported message length, missing digest prefix, or unsupported digest".to_string(),
        ));
    };
    if mac.len() != 32 {
        return Err(Error::Authentication(format!(
            "expected 'sha256' of length 32 got {}",
            mac.len()
        )));
    }
    hmac_sha256(authkey, message)
        .verify_slice(mac)
        .map_err(|_| Error::Authentication("digest received was wrong".to_string()))
}

/// Answers the peer's challenge (Python:
/// `multiprocessing.connection.answer_challenge`): the client's first half of the
/// handshake, and the server's second.
///
/// Expects `#CHALLENGE#{sha256}...`, answers with `{sha256}` and the HMAC-SHA256 of
/// the challenge under `authkey`, and expects `#WELCOME#`. Anything else is
/// [`Error::Authentication`] ("digest sent was rejected" when the peer refused the
/// answer).
pub fn answer_challenge(conn: &Connection, authkey: &[u8]) -> Result<()> {
    let message = handshake_recv(conn)?;
    let Some(message) = message.strip_prefix(CHALLENGE) else {
        return Err(Error::Authentication(
            "protocol error, expected challenge".to_string(),
        ));
    };
    if message.len() < 20 {
        return Err(Error::Authentication(format!(
            "challenge too short: {} bytes",
            message.len()
        )));
    }
    if !message.starts_with(DIGEST_PREFIX) {
        return Err(Error::Authentication(
            "unsupported digest in challenge (only {sha256} is supported)".to_string(),
        ));
    }
    let mut response = DIGEST_PREFIX.to_vec();
    response.extend_from_slice(&hmac_sha256(authkey, message).finalize().into_bytes());
    conn.send_bytes(&response)?;
    let verdict = handshake_recv(conn)?;
    if verdict == WELCOME {
        Ok(())
    } else {
        Err(Error::Authentication(
            "digest sent was rejected".to_string(),
        ))
    }
}

impl crate::context::Context {
    /// A duplex pair of connected [`Connection`]s (Python: `ctx.Pipe()`).
    pub fn pipe(&self) -> Result<(Connection, Connection)> {
        pipe()
    }

    /// A one-way pair `(reader, writer)` (Python: `ctx.Pipe(duplex=False)`).
    pub fn pipe_simplex(&self) -> Result<(Connection, Connection)> {
        pipe_simplex()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A connection whose peer is a raw descriptor the test writes bytes to.
    fn raw_pair() -> (Connection, std::os::unix::net::UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (Connection::from_socket(a.into()), b)
    }

    fn next_random(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn headers_match_python() {
        assert_eq!(frame_header(5).0[..4], [0, 0, 0, 5]);
        assert_eq!(frame_header(5).1, 4);
        assert_eq!(frame_header(MAX_SHORT_LEN).1, 4);
        let (h, n) = frame_header(MAX_SHORT_LEN + 1);
        assert_eq!(n, 12);
        assert_eq!(h[..4], [0xff; 4]);
        assert_eq!(h[4..], (0x8000_0000u64).to_be_bytes());
    }

    #[test]
    fn a_long_header_is_understood_for_any_size() {
        let (conn, mut peer) = raw_pair();
        peer.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
        peer.write_all(&5u64.to_be_bytes()).unwrap();
        peer.write_all(b"hello").unwrap();
        assert_eq!(conn.recv_bytes().unwrap(), b"hello");
    }

    #[test]
    fn a_huge_claimed_length_does_not_allocate_it() {
        let (conn, mut peer) = raw_pair();
        peer.write_all(&[0xff; 4]).unwrap();
        peer.write_all(&(1u64 << 62).to_be_bytes()).unwrap();
        peer.write_all(b"only a few bytes").unwrap();
        drop(peer);
        // Would abort on allocation failure if the claim were trusted.
        assert!(matches!(conn.recv_bytes(), Err(Error::Eof)));
        let (conn, mut peer) = raw_pair();
        peer.write_all(&[0x7f, 0xff, 0xff, 0xff]).unwrap();
        drop(peer);
        let mut buf = [0u8; 8];
        assert!(matches!(conn.recv_bytes_into(&mut buf, 0), Err(Error::Eof)));
    }

    #[test]
    fn a_negative_length_is_a_codec_error_and_stops_reading() {
        let (conn, mut peer) = raw_pair();
        peer.write_all(&[0x80, 0, 0, 1]).unwrap();
        assert!(matches!(conn.recv_bytes(), Err(Error::Codec(_))));
        assert!(!conn.readable());
        assert!(conn.recv_bytes().is_err());
    }

    #[test]
    fn every_truncation_of_a_frame_is_eof() {
        let payload = b"a message of some length".to_vec();
        let (header, n) = frame_header(payload.len());
        let mut frame = header[..n].to_vec();
        frame.extend_from_slice(&payload);
        for cut in 0..frame.len() {
            let (conn, mut peer) = raw_pair();
            peer.write_all(&frame[..cut]).unwrap();
            drop(peer);
            assert!(matches!(conn.recv_bytes(), Err(Error::Eof)), "cut at {cut}");
        }
    }

    #[test]
    fn garbage_streams_give_errors_not_panics_or_hangs() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..300 {
            let len = (next_random(&mut seed) % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next_random(&mut seed) as u8).collect();
            // Sometimes a plausible small header, so that decoding is reached too.
            if round % 3 == 0 && len >= 4 {
                let body = (len - 4) as u32;
                bytes[..4].copy_from_slice(&body.to_be_bytes());
            }
            let (conn, mut peer) = raw_pair();
            peer.write_all(&bytes).unwrap();
            drop(peer);
            for _ in 0..4 {
                let _ = conn.recv::<(String, Vec<u32>, Option<i64>)>();
                let _ = conn.recv_bytes_max(16);
            }
        }
    }

    #[test]
    fn frames_split_at_random_points_arrive_whole() {
        let mut seed = 0x0bad_cafe_dead_beefu64;
        let messages: Vec<Vec<u8>> = (0..200)
            .map(|i| {
                let len = match i % 10 {
                    0 => 70_000,
                    _ => (next_random(&mut seed) % 300) as usize,
                };
                (0..len).map(|_| next_random(&mut seed) as u8).collect()
            })
            .collect();
        let mut stream = Vec::new();
        for m in &messages {
            let (header, n) = frame_header(m.len());
            stream.extend_from_slice(&header[..n]);
            stream.extend_from_slice(m);
        }
        let (conn, mut peer) = raw_pair();
        let writer = std::thread::spawn(move || {
            let mut seed = 42u64;
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let n = ((next_random(&mut seed) % 5000) as usize + 1).min(rest.len());
                peer.write_all(&rest[..n]).unwrap();
                rest = &rest[n..];
                if next_random(&mut seed).is_multiple_of(8) {
                    std::thread::yield_now();
                }
            }
        });
        for m in &messages {
            assert_eq!(&conn.recv_bytes().unwrap(), m);
        }
        writer.join().unwrap();
        assert!(matches!(conn.recv_bytes(), Err(Error::Eof)));
    }

    /// Runs `server` and `client` handshake halves on the two ends of a pair.
    fn handshake(server_key: &'static [u8], client_key: &'static [u8]) -> (Result<()>, Result<()>) {
        let (a, b) = UnixStream::pair().unwrap();
        let server = std::thread::spawn(move || {
            authenticate(&Connection::from_socket(a.into()), server_key, true)
        });
        let client = authenticate(&Connection::from_socket(b.into()), client_key, false);
        (server.join().unwrap(), client)
    }

    #[test]
    fn the_handshake_accepts_the_right_key_and_refuses_a_wrong_one() {
        let (s, c) = handshake(b"key", b"key");
        assert!(s.is_ok() && c.is_ok());
        let (s, c) = handshake(b"", b"");
        assert!(s.is_ok() && c.is_ok(), "an empty key is valid");
        let (s, c) = handshake(b"key", b"bad");
        match (s, c) {
            (Err(Error::Authentication(s)), Err(Error::Authentication(c))) => {
                assert_eq!(s, "digest received was wrong");
                assert_eq!(c, "digest sent was rejected");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_answer_matches_python_hmac() {
        // Python: hmac.new(b"key", b"{sha256}" + bytes(40), "sha256").hexdigest()
        let mut message = DIGEST_PREFIX.to_vec();
        message.extend_from_slice(&[0u8; 40]);
        let mac = hmac_sha256(b"key", &message).finalize().into_bytes();
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "21156a7f747e08a3a4512da2478039425891e6c6c9b383ce5c9151aff97bfbb8"
        );
    }

    #[test]
    fn malformed_handshakes_fail_cleanly() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0, 0],
            vec![
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
            [&[0, 0, 1, 0][..], &[b'x'; 300][..]].concat(),
            [&[0, 0, 0, 11][..], CHALLENGE].concat(),
            [&[0, 0, 0, 31][..], CHALLENGE, &[b'a'; 20][..]].concat(),
        ];
        for _ in 0..100 {
            let len = (next_random(&mut seed) % 80) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next_random(&mut seed) as u8).collect();
            if len >= 4 {
                bytes[..4].copy_from_slice(&((len - 4) as u32).to_be_bytes());
                if len >= 15 && next_random(&mut seed).is_multiple_of(2) {
                    bytes[4..15].copy_from_slice(CHALLENGE);
                }
            }
            cases.push(bytes);
        }
        for bytes in cases {
            for server in [true, false] {
                let (conn, mut peer) = raw_pair();
                peer.write_all(&bytes).unwrap();
                peer.shutdown(std::net::Shutdown::Write).unwrap();
                let result = authenticate(&conn, b"key", server);
                assert!(
                    matches!(
                        result,
                        Err(Error::Authentication(_) | Error::Eof | Error::Io(_))
                    ),
                    "{bytes:?}: {result:?}"
                );
            }
        }
    }
}
