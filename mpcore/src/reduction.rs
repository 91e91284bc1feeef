//! The one codec, and how handles travel to children (CPython: `reduction.py`).
//!
//! Every value that crosses a process boundary (a target's arguments, a message on a
//! connection, a queue item, a manager request) is encoded with serde and bincode 2
//! here; no other module names bincode, so swapping the codec is a one-file change.
//!
//! Decoding is defensive: the input came from another process, so a length prefix
//! is never trusted beyond the bytes actually present, malformed input returns
//! [`Error::Codec`], and nothing panics.
//!
//! # Handles
//!
//! Types that own a file descriptor (a `Connection`, the shared page of a `Lock`, a
//! queue) can be passed to a child as part of its arguments, or sent to another
//! process over a Unix-socket `Connection`. While such a value is encoded
//! ([`encode_with_handles`]), [`serialize_fd`] duplicates the descriptor into a list
//! that travels beside the bytes (inherited across `exec`, or sent with
//! `SCM_RIGHTS` to the fork server or the peer of a connection) and encodes its
//! index; on the receiving side, [`decode_with_handles`] gives [`deserialize_fd`]
//! the descriptors that arrived, and it turns the index back into one. Encoding a
//! handle anywhere else (a queue item, a plain [`encode`]) is an error, as Python's
//! "Lock objects should only be shared between processes through inheritance".
//!
//! A type declares what it owns by calling these two functions from its serde
//! impls:
//!
//! ```ignore
//! impl Serialize for Connection {
//!     fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
//!         reduction::serialize_fd("Connection", self.fd.as_fd(), s)
//!     }
//! }
//! impl<'de> Deserialize<'de> for Connection {
//!     fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
//!         Ok(Connection::from_fd(reduction::deserialize_fd(d)?))
//!     }
//! }
//! ```

use std::cell::RefCell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::Connection;
use crate::error::{Error, Result};

/// The largest encoded value mpcore decodes, in bytes (1 TiB).
pub const MAX_DECODE_LEN: usize = 1 << 40;

/// The codec's settings. `LIMIT` caps the bytes that length prefixes may claim while
/// decoding (bincode allocates a string's claimed length before reading it).
fn config<const LIMIT: usize>() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_variable_int_encoding()
        .with_limit::<LIMIT>()
}

/// Encodes `value` into bytes.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, config::<MAX_DECODE_LEN>())
        .map_err(|e| Error::Codec(e.to_string()))
}

/// Encodes `value` by appending to `buf` (saves a copy when a frame header is
/// already in the buffer).
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<()> {
    struct VecWriter<'a>(&'a mut Vec<u8>);
    impl bincode::enc::write::Writer for VecWriter<'_> {
        fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), bincode::error::EncodeError> {
            self.0.extend_from_slice(bytes);
            Ok(())
        }
    }
    bincode::serde::encode_into_writer(value, VecWriter(buf), config::<MAX_DECODE_LEN>())
        .map_err(|e| Error::Codec(e.to_string()))
}

fn decode_limited<T: DeserializeOwned, const LIMIT: usize>(bytes: &[u8]) -> Result<(T, usize)> {
    bincode::serde::decode_from_slice::<T, _>(bytes, config::<LIMIT>())
        .map_err(|e| Error::Codec(e.to_string()))
}

/// Decodes a `T` from exactly `bytes`: trailing bytes are an error too, since they
/// mean the two sides disagree on the type.
///
/// bincode counts every value's in-memory size against a claim limit before it
/// allocates (a one-byte varint `u128` claims 16 bytes), so a valid value claims at
/// most 16 bytes per input byte. The limit is that bound rounded up to a size class
/// (so at most 64 times the input): a forged length prefix fails instead of
/// allocating.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let claim = bytes.len().saturating_mul(16);
    macro_rules! by_size_class {
        ($($bits:literal),*) => {
            $(if claim <= 1 << $bits {
                decode_limited::<T, { 1 << $bits }>(bytes)
            } else)* {
                Err(Error::Codec(format!("a message of {} bytes is too large to decode", bytes.len())))
            }
        };
    }
    let (value, used) = by_size_class!(12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40)?;
    if used != bytes.len() {
        return Err(Error::Codec(format!(
            "{} unexpected bytes after the value",
            bytes.len() - used
        )));
    }
    Ok(value)
}

thread_local! {
    /// Descriptors collected while a child's arguments are encoded; `None` outside.
    static OUTGOING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    /// Descriptors received by a child, taken as its arguments are decoded.
    static INCOMING: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
}

/// Runs `encode` while collecting the descriptors of the handles it serializes.
fn collecting_handles<R>(encode: impl FnOnce() -> R) -> (R, Vec<OwnedFd>) {
    let previous = OUTGOING.with(|out| out.borrow_mut().replace(Vec::new()));
    let encoded = encode();
    let fds = OUTGOING.with(|out| std::mem::replace(&mut *out.borrow_mut(), previous));
    (encoded, fds.unwrap_or_default())
}

/// Encodes `value` (a child's arguments, or a message for a Unix-socket
/// connection), collecting the descriptors of the handles in it. The descriptors
/// are duplicates owned by the caller, which sends them along and closes its copies
/// once they are delivered.
pub fn encode_with_handles<T: Serialize + ?Sized>(value: &T) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let (encoded, fds) = collecting_handles(|| encode(value));
    Ok((encoded?, fds))
}

/// [`encode_with_handles`], appending to `buf`.
pub fn encode_with_handles_into<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<Vec<OwnedFd>> {
    let (encoded, fds) = collecting_handles(|| encode_into(value, buf));
    encoded.map(|()| fds)
}

/// Decodes bytes made by [`encode_with_handles`], resolving handle indices to the
/// descriptors in `fds` (in the order the sender had them). Descriptors the value
/// does not claim are closed.
pub fn decode_with_handles<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T> {
    let incoming = fds.into_iter().map(Some).collect();
    let previous = INCOMING.with(|inc| inc.borrow_mut().replace(incoming));
    let decoded = decode(bytes);
    INCOMING.with(|inc| *inc.borrow_mut() = previous);
    decoded
}

/// Serializes a descriptor-owning handle: inside [`encode_with_handles`] the
/// descriptor is duplicated into the list that travels with the bytes and its index
/// is encoded; anywhere else this is an error naming `what` ("Lock objects should
/// only be shared between processes through inheritance").
pub fn serialize_fd<S: Serializer>(
    what: &str,
    fd: BorrowedFd<'_>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let index = OUTGOING.with(|out| -> std::result::Result<u32, String> {
        let mut out = out.borrow_mut();
        let Some(list) = out.as_mut() else {
            return Err(format!(
                "{what} objects should only be shared between processes through inheritance \
                 (pass them to a child as arguments of its target, or send them over a \
                 Unix-socket Connection)"
            ));
        };
        let dup = fd
            .try_clone_to_owned()
            .map_err(|e| format!("cannot duplicate {what}: {e}"))?;
        list.push(dup);
        u32::try_from(list.len() - 1).map_err(|_| "too many handles".to_string())
    });
    match index {
        Ok(index) => index.serialize(s),
        Err(msg) => Err(S::Error::custom(msg)),
    }
}

/// Deserializes a descriptor-owning handle serialized by [`serialize_fd`]: takes
/// the descriptor with the encoded index from those that arrived with the bytes
/// (see [`decode_with_handles`]). Each index can be taken once; a missing or
/// repeated index is an error.
pub fn deserialize_fd<'de, D: Deserializer<'de>>(d: D) -> Result<OwnedFd, D::Error> {
    let index = u32::deserialize(d)? as usize;
    INCOMING.with(|inc| {
        let mut inc = inc.borrow_mut();
        let list = inc
            .as_mut()
            .ok_or_else(|| D::Error::custom("no descriptors came with this handle"))?;
        list.get_mut(index)
            .and_then(Option::take)
            .ok_or_else(|| D::Error::custom(format!("no descriptor for handle {index}")))
    })
}

/// A descriptor as a value: what [`send_handle`] sends and [`recv_handle`] receives.
struct Descriptor<F>(F);

impl<F: AsFd> Serialize for Descriptor<F> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_fd("descriptor", self.0.as_fd(), s)
    }
}

impl<'de> Deserialize<'de> for Descriptor<OwnedFd> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_fd(d).map(Descriptor)
    }
}

/// Sends a duplicate of the descriptor `fd` to the process at the other end of
/// `conn`, a Unix-socket connection (Python: `reduction.send_handle(conn, handle,
/// destination_pid)`; no pid is needed on Unix). The peer takes it with
/// [`recv_handle`]; `fd` stays open here.
///
/// ```
/// use std::io::{Read, Write};
/// let (a, b) = mpcore::pipe()?;
/// let (mut reader, writer) = std::io::pipe()?;
/// mpcore::reduction::send_handle(&a, &writer)?;
/// let received = mpcore::reduction::recv_handle(&b)?;
/// std::fs::File::from(received).write_all(b"via a passed descriptor")?;
/// drop(writer);
/// let mut text = String::new();
/// reader.read_to_string(&mut text)?;
/// assert_eq!(text, "via a passed descriptor");
/// # Ok::<(), mpcore::Error>(())
/// ```
pub fn send_handle(conn: &Connection, fd: impl AsFd) -> crate::Result<()> {
    conn.send(&Descriptor(fd))
}

/// Receives a descriptor sent with [`send_handle`] (Python:
/// `reduction.recv_handle(conn)`). A message that came without one is an
/// [`Error::Codec`] (CPython: `RuntimeError`).
pub fn recv_handle(conn: &Connection) -> crate::Result<OwnedFd> {
    conn.recv::<Descriptor<OwnedFd>>().map(|d| d.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, AsRawFd};

    #[derive(Debug)]
    struct Handle(OwnedFd);

    impl Serialize for Handle {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize_fd("Handle", self.0.as_fd(), s)
        }
    }

    impl<'de> Deserialize<'de> for Handle {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Ok(Handle(deserialize_fd(d)?))
        }
    }

    fn devnull() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn values_round_trip() {
        let value = (42u32, "héllo".to_string(), vec![1.5f64, -2.0], Some(b'x'));
        let bytes = encode(&value).unwrap();
        assert_eq!(
            decode::<(u32, String, Vec<f64>, Option<u8>)>(&bytes).unwrap(),
            value
        );
        let mut buf = vec![9, 9];
        encode_into(&value, &mut buf).unwrap();
        assert_eq!(&buf[2..], &bytes[..]);
    }

    #[test]
    fn malformed_input_is_a_codec_error() {
        assert!(matches!(
            decode::<String>(&[0xff, 0xff]),
            Err(Error::Codec(_))
        ));
        assert!(matches!(decode::<u32>(&[]), Err(Error::Codec(_))));
        // Invalid UTF-8 in a string.
        assert!(matches!(
            decode::<String>(&[2, 0xc3, 0x28]),
            Err(Error::Codec(_))
        ));
        // Trailing bytes mean the sides disagree on the type.
        assert!(matches!(decode::<u8>(&[1, 2]), Err(Error::Codec(_))));
    }

    #[test]
    fn a_huge_length_prefix_fails_without_allocating() {
        // varint 0xfd then a u64 length of 2^62: a Vec<u8> that big must not be
        // allocated; decoding fails on the missing bytes.
        let mut bytes = vec![0xfd];
        bytes.extend_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(matches!(decode::<Vec<u8>>(&bytes), Err(Error::Codec(_))));
        assert!(matches!(
            decode::<Vec<String>>(&bytes),
            Err(Error::Codec(_))
        ));
        assert!(matches!(decode::<String>(&bytes), Err(Error::Codec(_))));
        // 32 GiB: inside the absolute limit, so only the input-sized limit stops it
        // (without it, this test would abort on the allocation).
        let mut bytes = vec![0xfd];
        bytes.extend_from_slice(&(1u64 << 35).to_le_bytes());
        assert!(matches!(decode::<Vec<u8>>(&bytes), Err(Error::Codec(_))));
        assert!(matches!(decode::<String>(&bytes), Err(Error::Codec(_))));
        assert!(matches!(
            decode::<(u8, String)>(&[1, 0xfd, 0, 0, 0, 0, 8, 0, 0, 0]),
            Err(Error::Codec(_))
        ));
    }

    #[test]
    fn large_valid_values_still_decode() {
        let big = "x".repeat(100_000);
        let bytes = encode(&big).unwrap();
        assert_eq!(decode::<String>(&bytes).unwrap(), big);
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic fuzz: every prefix and many byte patterns.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..64 {
            for _ in 0..64 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed as u8
                    })
                    .collect();
                let _ = decode::<(String, Vec<u64>, Option<(i8, f32)>)>(&bytes);
                let _ = decode::<Vec<Vec<u8>>>(&bytes);
            }
        }
    }

    #[test]
    fn handles_travel_by_index_while_a_child_is_prepared() {
        let (bytes, fds) =
            encode_with_handles(&(7u8, Handle(devnull()), Handle(devnull()))).unwrap();
        assert_eq!(fds.len(), 2);
        let (n, a, b): (u8, Handle, Handle) = decode_with_handles(&bytes, fds).unwrap();
        assert_eq!(n, 7);
        assert_ne!(a.0.as_raw_fd(), b.0.as_raw_fd());
    }

    #[test]
    fn handles_outside_a_child_start_are_refused() {
        let err = encode(&Handle(devnull())).unwrap_err();
        assert!(
            err.to_string()
                .contains("should only be shared between processes through inheritance"),
            "{err}"
        );
        let (bytes, _fds) = encode_with_handles(&Handle(devnull())).unwrap();
        // Decoding outside a child, or with the descriptor missing, is an error.
        assert!(matches!(decode::<Handle>(&bytes), Err(Error::Codec(_))));
        assert!(matches!(
            decode_with_handles::<Handle>(&bytes, Vec::new()),
            Err(Error::Codec(_))
        ));
    }
}
