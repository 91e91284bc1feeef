//! Named shared memory in `/dev/shm` (CPython: `shared_memory.py`).
//!
//! A [`SharedMemory`] is a block of bytes with a name; any process that knows the
//! name can open it, whether or not mpcore started it. The segment exists until
//! someone calls [`unlink`](SharedMemory::unlink), as in Python; closing or dropping
//! a handle only unmaps it from this process.
//!
//! Beyond Python: if the process that created a segment ends without unlinking it
//! (a crash, a kill, a forgotten `unlink`), the
//! [`resource_tracker`] removes it once no process has it
//! open any more. A process that merely opened a segment never causes it to be
//! removed.
//!
//! Generated names start with `mpcore-`, so leftovers are easy to find.
//!
//! ```
//! use mpcore::shared_memory::SharedMemory;
//!
//! let mut shm = SharedMemory::create(None, 512)?;
//! shm.buf_mut()[0] = 42;
//! let other = SharedMemory::open(shm.name())?; // another process would do this
//! assert_eq!(other.buf()[0], 42);
//! assert!(shm.name().starts_with("mpcore-"));
//! shm.unlink()?;
//! assert!(shm.unlink().is_err()); // already gone
//! # Ok::<(), mpcore::Error>(())
//! ```
//!
//! `ShareableList` is not here yet: it stores `Obj` values, and `Obj` lands on
//! another branch.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::resource_tracker;
use crate::sys::shm::{self, Segment};

/// The prefix of every generated segment name.
pub const NAME_PREFIX: &str = "mpcore-";

/// A named block of shared memory (Python: `multiprocessing.shared_memory.SharedMemory`).
///
/// Its bytes are shared with every process that opens the same name, which may
/// change them at any time; use a [`Lock`](crate::Lock) to agree on who writes when,
/// as in Python.
///
/// A handle passed to a child (or serialized) travels as the name; the other side
/// opens the segment again, as Python's pickling does.
pub struct SharedMemory {
    /// Without the leading `/`.
    name: String,
    size: usize,
    segment: Option<Segment>,
}

fn with_name(err: io::Error, name: &str) -> Error {
    Error::Io(io::Error::new(err.kind(), format!("{err}: '/{name}'")))
}

/// Validates a user-given name and returns it without its leading `/`.
fn clean_name(name: &str) -> Result<&str> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() || bare.contains('/') || bare.contains('\0') {
        return Err(Error::invalid(format!(
            "invalid shared memory name {name:?} (no '/' inside, no NUL, not empty)"
        )));
    }
    Ok(bare)
}

fn random_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{NAME_PREFIX}{:016x}", hasher.finish())
}

impl SharedMemory {
    /// Creates a segment of `size` bytes (at least 1), zero-filled. With `None`, a
    /// fresh name starting with `mpcore-` is chosen. Errors: size 0, a name that
    /// exists (`io::ErrorKind::AlreadyExists`, Python's `FileExistsError`).
    pub fn create(name: Option<&str>, size: usize) -> Result<SharedMemory> {
        if size == 0 {
            return Err(Error::invalid(
                "'size' must be a positive number different from zero",
            ));
        }
        let (bare, segment) = match name {
            Some(name) => {
                let bare = clean_name(name)?.to_string();
                let segment =
                    Segment::create(&format!("/{bare}"), size).map_err(|e| with_name(e, &bare))?;
                (bare, segment)
            }
            None => loop {
                let bare = random_name();
                match Segment::create(&format!("/{bare}"), size) {
                    Ok(segment) => break (bare, segment),
                    Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(err) => return Err(with_name(err, &bare)),
                }
            },
        };
        resource_tracker::register(&format!("/{bare}"));
        Ok(SharedMemory {
            name: bare,
            size,
            segment: Some(segment),
        })
    }

    /// Opens the existing segment `name` (with or without a leading `/`). Error if
    /// it does not exist (`io::ErrorKind::NotFound`, Python's `FileNotFoundError`).
    pub fn open(name: &str) -> Result<SharedMemory> {
        let bare = clean_name(name)?.to_string();
        let segment = Segment::open(&format!("/{bare}")).map_err(|e| with_name(e, &bare))?;
        Ok(SharedMemory {
            name: bare,
            size: segment.buf().len(),
            segment: Some(segment),
        })
    }

    /// The name, without a leading `/` (Python: `name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The bytes; empty after [`close`](SharedMemory::close).
    pub fn buf(&self) -> &[u8] {
        self.segment.as_ref().map_or(&[], Segment::buf)
    }

    /// The bytes, writable; empty after [`close`](SharedMemory::close).
    pub fn buf_mut(&mut self) -> &mut [u8] {
        match self.segment.as_mut() {
            Some(segment) => segment.buf_mut(),
            None => &mut [],
        }
    }

    /// Unmaps the segment from this process (it stays in `/dev/shm`). Closing twice
    /// is fine.
    pub fn close(&mut self) -> Result<()> {
        self.segment = None;
        Ok(())
    }

    /// Removes the name from `/dev/shm`; processes that have the segment open keep
    /// using it. Call it once, in one process: a second call is an error
    /// (`io::ErrorKind::NotFound`).
    pub fn unlink(&self) -> Result<()> {
        let path = format!("/{}", self.name);
        shm::unlink(&path).map_err(|e| with_name(e, &self.name))?;
        resource_tracker::unregister(&path);
        Ok(())
    }
}

/// Python's repr: `SharedMemory('mpcore-...', size=512)`.
impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedMemory({:?}, size={})", self.name, self.size)
    }
}

impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.name.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        SharedMemory::open(&name).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert_eq!(clean_name("/abc").unwrap(), "abc");
        assert_eq!(clean_name("abc").unwrap(), "abc");
        assert!(clean_name("").is_err());
        assert!(clean_name("/").is_err());
        assert!(clean_name("a/b").is_err());
        assert!(clean_name("a\0b").is_err());
    }

    #[test]
    fn generated_names_differ() {
        let (a, b) = (random_name(), random_name());
        assert_ne!(a, b);
        assert!(a.starts_with(NAME_PREFIX) && a.len() == NAME_PREFIX.len() + 16);
    }

    #[test]
    fn missing_segments_are_not_found() {
        let err = SharedMemory::open("mpcore-surely-missing-segment").unwrap_err();
        assert!(
            matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::NotFound),
            "{err}"
        );
    }
}
