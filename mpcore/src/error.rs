//! Errors: one variant per Python exception that mpcore stands in for.
//!
//! Python's `multiprocessing` raises a handful of exception types (`ValueError`,
//! `AssertionError`, `queue.Empty`, `EOFError`, `BufferTooShort`, ...). mpcore returns
//! one [`Error`] enum instead, with a variant per exception and `Display` texts that
//! contain Python's own messages, so a learner can match what they read in the
//! CPython docs.

use std::fmt;
use std::io;

/// The result type of every fallible call in mpcore.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in mpcore.
///
/// Python raises a different exception class for each of these; the doc of each
/// variant names it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A timed operation ran out of time (Python: `multiprocessing.TimeoutError`).
    Timeout,
    /// Nothing to get from a queue (Python: `queue.Empty`).
    Empty,
    /// No room to put into a bounded queue (Python: `queue.Full`).
    Full,
    /// The other end of a connection was closed and nothing is left to read
    /// (Python: `EOFError`).
    Eof,
    /// The buffer given to `recv_bytes_into` was too short; carries the whole
    /// message (Python: `multiprocessing.BufferTooShort`, whose `args[0]` is the message).
    BufferTooShort(Vec<u8>),
    /// The peer failed the authkey challenge (Python: `multiprocessing.AuthenticationError`).
    Authentication(String),
    /// A task panicked in another process; carries its message (Python re-raises the
    /// remote exception with a `RemoteTraceback` cause).
    Remote(String),
    /// A barrier was aborted, reset or timed out (Python: `threading.BrokenBarrierError`).
    BrokenBarrier,
    /// A pool worker died while it ran the task (CPython's pool hangs forever here).
    WorkerLost(String),
    /// A lock was taken over from a process that died holding it.
    OwnerDied,
    /// A process-level failure (Python: `multiprocessing.ProcessError`).
    Process(String),
    /// An object was used in a state that does not allow it (Python: `ValueError`
    /// and `AssertionError`, e.g. "process object is closed").
    InvalidState(String),
    /// Bytes from another process could not be encoded or decoded.
    Codec(String),
    /// An operating-system error (Python: `OSError`).
    Io(io::Error),
}

impl Error {
    /// Shorthand for [`Error::InvalidState`] with Python's message.
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidState(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout => f.write_str("timed out"),
            Error::Empty => f.write_str("queue is empty"),
            Error::Full => f.write_str("queue is full"),
            Error::Eof => f.write_str("end of file: the other end of the connection is closed"),
            Error::BufferTooShort(msg) => {
                write!(f, "buffer too short for a message of {} bytes", msg.len())
            }
            Error::Authentication(msg) => write!(f, "authentication failed: {msg}"),
            Error::Remote(msg) => write!(f, "remote error: {msg}"),
            Error::BrokenBarrier => f.write_str("the barrier is broken"),
            Error::WorkerLost(msg) => write!(f, "worker lost: {msg}"),
            Error::OwnerDied => f.write_str("the previous owner of the lock died holding it"),
            Error::Process(msg) => write!(f, "process error: {msg}"),
            Error::InvalidState(msg) => f.write_str(msg),
            Error::Codec(msg) => write!(f, "codec error: {msg}"),
            Error::Io(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Error::Io(err)
    }
}

impl From<nix::errno::Errno> for Error {
    fn from(errno: nix::errno::Errno) -> Self {
        Error::Io(io::Error::from(errno))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_state_displays_python_message() {
        let err = Error::invalid("process object is closed");
        assert_eq!(err.to_string(), "process object is closed");
    }

    #[test]
    fn io_errors_convert_and_keep_their_source() {
        let err = Error::from(nix::errno::Errno::ESRCH);
        assert!(matches!(err, Error::Io(_)));
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn buffer_too_short_carries_the_whole_message() {
        let err = Error::BufferTooShort(b"hello".to_vec());
        assert!(err.to_string().contains("5 bytes"));
    }
}
