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
//! Generated names are `mpcore-<creator pid>-<random letters>`: leftovers are easy
//! to find, and the pid says whose they are.
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
//! A [`ShareableList`] keeps a fixed-length list of simple values ([`Obj`] ints,
//! floats, bools, `None`, strings and bytes) in such a segment.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::obj::Obj;
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

/// `mpcore-<pid>-<12 random letters>`: the creator's pid is the only run of digits
/// in the name, so tools (the lesson harness) can tell whose segment it is.
fn random_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut bits = hasher.finish();
    let letters: String = (0..12)
        .map(|_| {
            let c = char::from(b'a' + (bits % 26) as u8);
            bits /= 26;
            c
        })
        .collect();
    format!("{NAME_PREFIX}{}-{letters}", std::process::id())
}

impl SharedMemory {
    /// Creates a segment of `size` bytes (at least 1), zero-filled. With `None`, a
    /// fresh name `mpcore-<pid>-<random letters>` is chosen. Errors: size 0, a name that
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

// ---------------------------------------------------------------------------
// ShareableList

/// First 8 bytes of every [`ShareableList`] segment.
const SL_MAGIC: [u8; 8] = *b"mpcSL\0\0\x01";
/// Bytes before the slot descriptors: magic and item count.
const SL_HEADER: usize = 16;
/// Bytes of one slot descriptor: kind, capacity, length (three little-endian u64).
const SL_DESCRIPTOR: usize = 24;
/// Slots are multiples of this many bytes (CPython's `_alignment`).
const SL_ALIGN: usize = 8;

/// The type of the value a slot holds now (stored as the descriptor's kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    None = 0,
    Bool = 1,
    Int = 2,
    Float = 3,
    Str = 4,
    Bytes = 5,
}

impl Kind {
    fn from_u64(v: u64) -> Option<Kind> {
        Some(match v {
            0 => Kind::None,
            1 => Kind::Bool,
            2 => Kind::Int,
            3 => Kind::Float,
            4 => Kind::Str,
            5 => Kind::Bytes,
            _ => return None,
        })
    }
}

/// An item as stored: its kind and its bytes (at most the slot's capacity).
fn encode(item: &Obj) -> Result<(Kind, Vec<u8>)> {
    Ok(match item {
        Obj::None => (Kind::None, Vec::new()),
        Obj::Bool(b) => (Kind::Bool, vec![u8::from(*b)]),
        Obj::Int(i) => (Kind::Int, i.to_le_bytes().to_vec()),
        Obj::Float(f) => (Kind::Float, f.to_le_bytes().to_vec()),
        Obj::Str(s) => (Kind::Str, s.as_bytes().to_vec()),
        Obj::Bytes(b) => (Kind::Bytes, b.clone()),
        other => {
            return Err(Error::invalid(format!(
                "ShareableList items must be int, float, bool, None, str or bytes, not {}",
                other.type_name()
            )));
        }
    })
}

/// A slot's capacity for its initial item: 8 bytes for a scalar; for str and bytes,
/// CPython's `8 * (len // 8 + 1)` of the encoded length.
fn capacity(kind: Kind, len: usize) -> Result<usize> {
    match kind {
        Kind::Str | Kind::Bytes => (len / SL_ALIGN)
            .checked_add(1)
            .and_then(|n| n.checked_mul(SL_ALIGN))
            .ok_or_else(|| Error::invalid("ShareableList item too large")),
        _ => Ok(SL_ALIGN),
    }
}

fn read_u64(buf: &[u8], at: usize) -> Option<u64> {
    let bytes = buf.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

fn write_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn corrupt(name: &str, what: &str) -> Error {
    Error::invalid(format!(
        "shared memory segment '{name}' is not a valid ShareableList: {what}"
    ))
}

/// A fixed-length list of simple values stored in a [`SharedMemory`] segment, which
/// any process can open by name (Python:
/// `multiprocessing.shared_memory.ShareableList`).
///
/// Items are `int` ([`Obj::Int`]), `float`, `bool`, `None`, `str` and `bytes`; any
/// other [`Obj`] is an error. The list never changes length. Each slot's capacity is
/// fixed at creation, as in CPython: 8 bytes for a scalar, and for `str` and `bytes`
/// their initial encoded length rounded up to the next multiple of 8 (`8 * (len / 8 +
/// 1)`). [`set`](ShareableList::set) may change a slot's type, but a `str` or `bytes`
/// longer than the slot is an error ("bytes/str item exceeds available storage").
/// Unlike CPython, trailing NUL bytes of `str` and `bytes` items are kept.
///
/// # Layout
///
/// mpcore's own, not CPython's (the two cannot open each other's lists); all numbers
/// are little-endian `u64`:
///
/// | offset | content |
/// |---|---|
/// | 0 | magic `b"mpcSL\0\0\x01"` |
/// | 8 | item count `n` |
/// | 16 + 24 i | slot `i`: kind (0 None, 1 bool, 2 int, 3 float, 4 str, 5 bytes), capacity, length |
/// | 16 + 24 n | the slots' data, one after another, each `capacity` bytes |
///
/// [`open`](ShareableList::open) checks all of it against the segment's size (magic,
/// count, kinds, capacities multiple of 8, lengths within capacity, data within the
/// segment) and fails on anything else; [`get`](ShareableList::get) re-checks the kind
/// and length it reads, since any process may write the segment.
///
/// As in Python, reads and writes are not synchronized: use a [`Lock`](crate::Lock)
/// when several processes write. Passed to a child (serialized), a list travels as
/// its segment's name and the child opens it again.
///
/// ```
/// use mpcore::Obj;
/// use mpcore::shared_memory::ShareableList;
///
/// let mut sl = ShareableList::new(&[Obj::Int(1), Obj::from("ab"), Obj::None], None)?;
/// sl.set(1, Obj::from("abcdefg"))?; // fits: the slot holds 8 bytes
/// assert!(sl.set(1, Obj::from("abcdefghi")).is_err());
/// let other = ShareableList::open(sl.shm().name())?; // another process would do this
/// assert_eq!(other.get(1)?, Obj::from("abcdefg"));
/// assert_eq!(other.len(), 3);
/// sl.shm().unlink()?;
/// # Ok::<(), mpcore::Error>(())
/// ```
pub struct ShareableList {
    shm: SharedMemory,
    /// Per slot: absolute offset of its data and its capacity (validated at open).
    slots: Vec<(usize, usize)>,
}

impl ShareableList {
    /// Creates a segment named `name` (or a generated name with `None`) holding
    /// `items` (Python: `ShareableList(sequence, name=name)`). Errors: an item of an
    /// unsupported type, and those of [`SharedMemory::create`].
    pub fn new(items: &[Obj], name: Option<&str>) -> Result<ShareableList> {
        let encoded = items.iter().map(encode).collect::<Result<Vec<_>>>()?;
        let too_large = || Error::invalid("ShareableList too large");
        let mut offset = items
            .len()
            .checked_mul(SL_DESCRIPTOR)
            .and_then(|d| d.checked_add(SL_HEADER))
            .ok_or_else(too_large)?;
        let mut slots = Vec::with_capacity(items.len());
        for (kind, bytes) in &encoded {
            let cap = capacity(*kind, bytes.len())?;
            slots.push((offset, cap));
            offset = offset.checked_add(cap).ok_or_else(too_large)?;
        }
        let mut shm = SharedMemory::create(name, offset)?;
        let buf = shm.buf_mut();
        buf[..8].copy_from_slice(&SL_MAGIC);
        write_u64(buf, 8, items.len() as u64);
        let mut list = ShareableList { shm, slots };
        for (i, (kind, bytes)) in encoded.iter().enumerate() {
            let cap = list.slots[i].1;
            let desc = SL_HEADER + i * SL_DESCRIPTOR;
            write_u64(list.shm.buf_mut(), desc + 8, cap as u64);
            list.store(i, *kind, bytes);
        }
        Ok(list)
    }

    /// Opens the list in the existing segment `name` (Python:
    /// `ShareableList(name=name)`). Errors: a missing segment, and a segment whose
    /// contents are not a valid list (see the [layout](ShareableList#layout)).
    pub fn open(name: &str) -> Result<ShareableList> {
        let shm = SharedMemory::open(name)?;
        let slots = Self::validate(shm.buf()).map_err(|what| corrupt(shm.name(), what))?;
        Ok(ShareableList { shm, slots })
    }

    /// Checks a segment's header and returns the slots' (data offset, capacity).
    fn validate(buf: &[u8]) -> std::result::Result<Vec<(usize, usize)>, &'static str> {
        if buf.get(..8) != Some(&SL_MAGIC[..]) {
            return Err("bad magic");
        }
        let n = read_u64(buf, 8).ok_or("too short")?;
        // Every descriptor must fit, which bounds `n` by the segment's size.
        let max = (buf.len() - SL_HEADER) / SL_DESCRIPTOR;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= max)
            .ok_or("item count exceeds the segment")?;
        let mut offset = SL_HEADER + n * SL_DESCRIPTOR;
        let mut slots = Vec::with_capacity(n);
        for i in 0..n {
            let desc = SL_HEADER + i * SL_DESCRIPTOR;
            let kind = read_u64(buf, desc).ok_or("too short")?;
            let cap = read_u64(buf, desc + 8).ok_or("too short")?;
            let len = read_u64(buf, desc + 16).ok_or("too short")?;
            Kind::from_u64(kind).ok_or("unknown item type")?;
            if cap == 0 || cap % SL_ALIGN as u64 != 0 {
                return Err("bad slot capacity");
            }
            if len > cap {
                return Err("item length exceeds its slot");
            }
            let cap = usize::try_from(cap).map_err(|_| "slot exceeds the segment")?;
            let end = offset
                .checked_add(cap)
                .filter(|&end| end <= buf.len())
                .ok_or("slot exceeds the segment")?;
            slots.push((offset, cap));
            offset = end;
        }
        Ok(slots)
    }

    /// The number of items (Python: `len(sl)`).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn slot(&self, i: usize) -> Result<(usize, usize)> {
        self.slots.get(i).copied().ok_or_else(|| {
            Error::invalid(format!(
                "index {i} out of range for ShareableList of length {}",
                self.slots.len()
            ))
        })
    }

    /// The item at `i` (Python: `sl[i]`). Errors: `i` out of range, and a slot another
    /// process filled with garbage.
    pub fn get(&self, i: usize) -> Result<Obj> {
        let (offset, cap) = self.slot(i)?;
        let buf = self.shm.buf();
        let desc = SL_HEADER + i * SL_DESCRIPTOR;
        let bad = || corrupt(self.shm.name(), "bad slot");
        let kind = read_u64(buf, desc)
            .and_then(Kind::from_u64)
            .ok_or_else(bad)?;
        let len = read_u64(buf, desc + 16)
            .and_then(|l| usize::try_from(l).ok())
            .filter(|&l| l <= cap)
            .ok_or_else(bad)?;
        let data = buf.get(offset..offset + len).ok_or_else(bad)?;
        let word = || -> Result<[u8; 8]> { data.try_into().map_err(|_| bad()) };
        Ok(match kind {
            Kind::None => Obj::None,
            Kind::Bool => Obj::Bool(data.first().is_some_and(|&b| b != 0)),
            Kind::Int => Obj::Int(i64::from_le_bytes(word()?)),
            Kind::Float => Obj::Float(f64::from_le_bytes(word()?)),
            Kind::Str => Obj::Str(
                String::from_utf8(data.to_vec())
                    .map_err(|_| corrupt(self.shm.name(), "str item is not UTF-8"))?,
            ),
            Kind::Bytes => Obj::Bytes(data.to_vec()),
        })
    }

    /// Replaces the item at `i` (Python: `sl[i] = value`); the new item may be of
    /// another type. Errors: `i` out of range, an unsupported type, and a `str` or
    /// `bytes` longer than the slot ("bytes/str item exceeds available storage").
    pub fn set(&mut self, i: usize, value: Obj) -> Result<()> {
        let (_, cap) = self.slot(i)?;
        let (kind, bytes) = encode(&value)?;
        if bytes.len() > cap {
            return Err(Error::invalid("bytes/str item exceeds available storage"));
        }
        self.store(i, kind, &bytes);
        Ok(())
    }

    /// Writes an item known to fit slot `i`.
    fn store(&mut self, i: usize, kind: Kind, bytes: &[u8]) {
        let (offset, cap) = self.slots[i];
        let desc = SL_HEADER + i * SL_DESCRIPTOR;
        let buf = self.shm.buf_mut();
        // The length first (as 0), so a concurrent reader never sees a length longer
        // than the new bytes.
        write_u64(buf, desc + 16, 0);
        write_u64(buf, desc, kind as u64);
        buf[offset..offset + cap].fill(0);
        buf[offset..offset + bytes.len()].copy_from_slice(bytes);
        write_u64(buf, desc + 16, bytes.len() as u64);
    }

    /// The segment holding the list (Python: `sl.shm`); call
    /// [`unlink`](SharedMemory::unlink) on it once the list is no longer needed.
    pub fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    /// All items, in order.
    pub fn to_vec(&self) -> Result<Vec<Obj>> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }

    /// The position of the first item equal to `value` (Python: `sl.index(value)`).
    /// Items compare with Python's `==` ([`Obj::py_eq`]), so `Obj::Int(1)` matches
    /// `1.0` and `True`, but never `"1"`.
    ///
    /// Errors: no item is equal, with Python's `ValueError` message
    /// ("'100' not in this container", the value's repr), and a slot another process
    /// filled with garbage.
    ///
    /// ```
    /// use mpcore::Obj;
    /// use mpcore::shared_memory::ShareableList;
    ///
    /// let sl = ShareableList::new(&[Obj::from("howdy"), Obj::Int(100)], None)?;
    /// assert_eq!(sl.index(&Obj::Int(100))?, 1);
    /// let err = sl.index(&Obj::from("100")).unwrap_err();
    /// assert_eq!(err.to_string(), "'100' not in this container");
    /// sl.shm().unlink()?;
    /// # Ok::<(), mpcore::Error>(())
    /// ```
    pub fn index(&self, value: &Obj) -> Result<usize> {
        for i in 0..self.len() {
            if self.get(i)?.py_eq(value) {
                return Ok(i);
            }
        }
        Err(Error::invalid(format!("{value} not in this container")))
    }

    /// How many items are equal to `value` under Python's `==` (Python:
    /// `sl.count(value)`; see [`index`](ShareableList::index)). Errors: a slot
    /// another process filled with garbage.
    pub fn count(&self, value: &Obj) -> Result<usize> {
        let mut n = 0;
        for i in 0..self.len() {
            if self.get(i)?.py_eq(value) {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Python's repr without the items: `ShareableList(len=3, name='mpcore-...')`.
impl fmt::Debug for ShareableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ShareableList(len={}, name={:?})",
            self.slots.len(),
            self.shm.name()
        )
    }
}

impl Serialize for ShareableList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.shm.name().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ShareableList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ShareableList::open(&name).map_err(D::Error::custom)
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
        let pid = std::process::id().to_string();
        assert!(a.starts_with(&format!("{NAME_PREFIX}{pid}-")), "{a}");
        // The pid is the only run of digits.
        let digits: Vec<&str> = a
            .split(|c: char| !c.is_ascii_digit())
            .filter(|run| !run.is_empty())
            .collect();
        assert_eq!(digits, [pid.as_str()], "{a}");
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
