//! Values and arrays in shared memory (CPython: `sharedctypes.py`).
//!
//! [`Value`] and [`Array`] hold numbers in a [`heap`](crate::heap) block together
//! with an [`RLock`]; [`RawValue`] and [`RawArray`] are the same without the lock.
//! The element types are those of Python's typecodes ([`CType`]).
//!
//! # Design
//!
//! - **Every access is atomic.** Elements are read and written with relaxed atomic
//!   loads and stores of their own width, so a reader never sees a torn number and
//!   no access is a data race, even when another process writes without the lock
//!   (through a `RawValue`, or because it misbehaves). The lock is for
//!   read-modify-write sequences such as `v += 1`, as in Python.
//! - **`get` and `set` take the lock**, as Python's `v.value` does; the lock is
//!   reentrant, so calling them while holding [`get_lock`](Value::get_lock) is fine.
//! - **Guards work on a copy.** [`Value::lock`] and [`Array::lock`] hold the lock and
//!   give a `&mut T` / `&mut [T]` to a private copy of the shared contents, written
//!   back when the guard is dropped (only if it was borrowed mutably). A guard
//!   never hands out a Rust reference into memory that another process may write,
//!   so the API stays free of undefined behaviour whatever the other processes do.
//!   The price: while a guard is alive, `get`/`set` on the same object in the same
//!   thread see the shared contents, not the guard's copy (and a `set` is
//!   overwritten when the guard is dropped); and an `ArrayGuard` copies the whole
//!   array twice. For one element, use [`Array::get`]/[`Array::set`].
//! - A `Value`'s lock shares the value's cache line, so an increment under the lock
//!   touches one line.
//!
//! # Example: two processes increment one counter
//!
//! ```
//! fn work(counter: mpcore::Value<i64>) {
//!     for _ in 0..1000 {
//!         *counter.lock() += 1; // Python: `with v.get_lock(): v.value += 1`
//!     }
//! }
//!
//! let counter = mpcore::Value::new(0i64)?;
//! let mut children: Vec<_> = (0..2)
//!     .map(|_| mpcore::Process::new(work, (counter.clone(),)))
//!     .collect();
//! for p in &mut children {
//!     p.start()?;
//! }
//! for p in &mut children {
//!     p.join()?;
//! }
//! assert_eq!(counter.get(), 2000);
//! # Ok::<(), mpcore::Error>(())
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::heap::Block;
use crate::synchronize::{RLock, RLockGuard};

mod sealed {
    pub trait Sealed {}
}

/// A type that can live in shared memory: the types of Python's typecodes.
///
/// | Rust | typecodes |
/// |---|---|
/// | `i8` | `'b'` |
/// | `u8` | `'B'`, `'c'` (a byte, Python's `c_char`) |
/// | `i16` / `u16` | `'h'` / `'H'` |
/// | `i32` / `u32` | `'i'` / `'I'` |
/// | `i64` / `u64` | `'q'`, `'l'` / `'Q'`, `'L'` (64-bit `long` on Linux) |
/// | `f32` / `f64` | `'f'` / `'d'` |
/// | `bool` | `'?'` |
pub trait CType: Copy + Send + Sync + 'static + sealed::Sealed {
    /// The main Python typecode of this type.
    const TYPECODE: char;
    /// Every Python typecode this type stands for.
    const TYPECODES: &'static [char];
    /// The size in bytes.
    #[doc(hidden)]
    const SIZE: usize;
    /// The value's bytes, zero-extended.
    #[doc(hidden)]
    fn to_bits(self) -> u64;
    /// The value from the low [`SIZE`](CType::SIZE) bytes of `bits`.
    #[doc(hidden)]
    fn from_bits(bits: u64) -> Self;
}

macro_rules! int_ctype {
    ($t:ty, $u:ty, $code:literal, [$($codes:literal),*]) => {
        impl sealed::Sealed for $t {}
        impl CType for $t {
            const TYPECODE: char = $code;
            const TYPECODES: &'static [char] = &[$($codes),*];
            const SIZE: usize = std::mem::size_of::<$t>();
            fn to_bits(self) -> u64 {
                u64::from(self as $u)
            }
            fn from_bits(bits: u64) -> Self {
                bits as $u as $t
            }
        }
    };
}

int_ctype!(i8, u8, 'b', ['b']);
int_ctype!(u8, u8, 'B', ['B', 'c']);
int_ctype!(i16, u16, 'h', ['h']);
int_ctype!(u16, u16, 'H', ['H']);
int_ctype!(i32, u32, 'i', ['i']);
int_ctype!(u32, u32, 'I', ['I']);
int_ctype!(i64, u64, 'q', ['q', 'l']);
int_ctype!(u64, u64, 'Q', ['Q', 'L']);

impl sealed::Sealed for f32 {}
impl CType for f32 {
    const TYPECODE: char = 'f';
    const TYPECODES: &'static [char] = &['f'];
    const SIZE: usize = 4;
    fn to_bits(self) -> u64 {
        u64::from(f32::to_bits(self))
    }
    fn from_bits(bits: u64) -> Self {
        f32::from_bits(bits as u32)
    }
}

impl sealed::Sealed for f64 {}
impl CType for f64 {
    const TYPECODE: char = 'd';
    const TYPECODES: &'static [char] = &['d'];
    const SIZE: usize = 8;
    fn to_bits(self) -> u64 {
        f64::to_bits(self)
    }
    fn from_bits(bits: u64) -> Self {
        f64::from_bits(bits)
    }
}

impl sealed::Sealed for bool {}
impl CType for bool {
    const TYPECODE: char = '?';
    const TYPECODES: &'static [char] = &['?'];
    const SIZE: usize = 1;
    fn to_bits(self) -> u64 {
        u64::from(self)
    }
    fn from_bits(bits: u64) -> Self {
        bits as u8 != 0
    }
}

/// Every typecode mpcore knows.
const KNOWN_TYPECODES: &str = "bBchHiIqlQLfd?";

/// Checks that `typecode` is one of `T`'s (Python raises `TypeError` for an unknown
/// code; a code of another type is an error here because Rust's `T` is fixed).
fn check_typecode<T: CType>(typecode: char) -> Result<()> {
    if T::TYPECODES.contains(&typecode) {
        Ok(())
    } else if KNOWN_TYPECODES.contains(typecode) {
        Err(Error::invalid(format!(
            "typecode '{typecode}' does not match the Rust type {} (typecodes {:?})",
            std::any::type_name::<T>(),
            T::TYPECODES
        )))
    } else {
        Err(Error::invalid(format!(
            "bad typecode '{typecode}' (must be b, B, c, h, H, i, I, l, L, q, Q, f, d or ?)"
        )))
    }
}

/// Element `i` of `T`s stored from byte 0 of `block`.
fn load<T: CType>(block: &Block, i: usize) -> T {
    let at = i * T::SIZE;
    let bits = match T::SIZE {
        1 => u64::from(block.u8_at(at).load(Ordering::Relaxed)),
        2 => u64::from(block.u16_at(at).load(Ordering::Relaxed)),
        4 => u64::from(block.u32_at(at).load(Ordering::Relaxed)),
        _ => block.u64_at(at).load(Ordering::Relaxed),
    };
    T::from_bits(bits)
}

fn store<T: CType>(block: &Block, i: usize, value: T) {
    let at = i * T::SIZE;
    let bits = value.to_bits();
    match T::SIZE {
        1 => block.u8_at(at).store(bits as u8, Ordering::Relaxed),
        2 => block.u16_at(at).store(bits as u16, Ordering::Relaxed),
        4 => block.u32_at(at).store(bits as u32, Ordering::Relaxed),
        _ => block.u64_at(at).store(bits, Ordering::Relaxed),
    }
}

fn load_all<T: CType>(block: &Block, len: usize) -> Vec<T> {
    (0..len).map(|i| load(block, i)).collect()
}

fn store_all<T: CType>(block: &Block, values: &[T]) {
    for (i, &v) in values.iter().enumerate() {
        store(block, i, v);
    }
}

fn array_block<T: CType>(len: usize) -> Result<Block> {
    let bytes = len
        .checked_mul(T::SIZE)
        .ok_or_else(|| Error::invalid("array too large"))?;
    Block::new(bytes)
}

/// Checks that a received block fits `len` elements of `T`.
fn check_len<T: CType, E: serde::de::Error>(block: &Block, len: usize) -> Result<(), E> {
    if len.checked_mul(T::SIZE) == Some(block.len()) {
        Ok(())
    } else {
        Err(E::custom("shared array of the wrong size"))
    }
}

// ---------------------------------------------------------------------------
// Value
// ---------------------------------------------------------------------------

/// A number in shared memory with a lock (Python: `multiprocessing.Value`).
///
/// ```
/// let v = mpcore::Value::with_typecode('d', 3.625)?;
/// assert_eq!(v.get(), 3.625);
/// v.set(-4.25);
/// {
///     let _held = v.get_lock().lock();
///     v.set(v.get() * 2.0); // get/set inside get_lock(): no deadlock
/// }
/// *v.lock() += 1.0;
/// assert_eq!(v.get(), -7.5);
/// # Ok::<(), mpcore::Error>(())
/// ```
pub struct Value<T: CType> {
    lock: RLock,
    data: Block,
    _type: PhantomData<T>,
}

impl<T: CType> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            lock: self.lock.clone(),
            data: self.data.clone(),
            _type: PhantomData,
        }
    }
}

impl<T: CType> Value<T> {
    /// A shared value with a new [`RLock`] of its own.
    pub fn new(value: T) -> Result<Value<T>> {
        // The lock and the value share one cache line.
        let block = Block::new(32 + T::SIZE)?;
        let v = Value {
            lock: RLock::in_block(block.sub(0, RLock::SIZE)),
            data: block.sub(32, T::SIZE),
            _type: PhantomData,
        };
        store(&v.data, 0, value);
        Ok(v)
    }

    /// A shared value protected by `lock`, which may be shared with other objects
    /// (Python: `Value(typecode, v, lock=lock)`).
    pub fn new_with_lock(value: T, lock: RLock) -> Result<Value<T>> {
        let data = Block::new(T::SIZE)?;
        store(&data, 0, value);
        Ok(Value {
            lock,
            data,
            _type: PhantomData,
        })
    }

    /// A shared value given with a Python typecode, which must be one of `T`'s
    /// ([`CType`]): `Value::with_typecode('i', 7i32)`.
    pub fn with_typecode(typecode: char, value: T) -> Result<Value<T>> {
        check_typecode::<T>(typecode)?;
        Value::new(value)
    }

    /// The value (Python: `v.value`), read under the lock.
    pub fn get(&self) -> T {
        let _held = self.lock.lock();
        load(&self.data, 0)
    }

    /// Sets the value (Python: `v.value = x`), under the lock.
    pub fn set(&self, value: T) {
        let _held = self.lock.lock();
        store(&self.data, 0, value);
    }

    /// The lock (Python: `get_lock()`).
    pub fn get_lock(&self) -> &RLock {
        &self.lock
    }

    /// Holds the lock and gives the value to read and change; the change is stored
    /// when the guard is dropped (Python: `with v.get_lock(): v.value += 1`).
    pub fn lock(&self) -> ValueGuard<'_, T> {
        let held = self.lock.lock();
        ValueGuard {
            value: load(&self.data, 0),
            data: &self.data,
            dirty: false,
            _held: held,
        }
    }

    /// The Python typecode of `T`.
    pub fn typecode(&self) -> char {
        T::TYPECODE
    }
}

impl<T: CType + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<Synchronized wrapper for {:?}>",
            load::<T>(&self.data, 0)
        )
    }
}

impl<T: CType> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.lock, &self.data).serialize(s)
    }
}

impl<'de, T: CType> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (lock, data) = <(RLock, Block)>::deserialize(d)?;
        check_len::<T, D::Error>(&data, 1)?;
        Ok(Value {
            lock,
            data,
            _type: PhantomData,
        })
    }
}

/// The lock of a [`Value`] and a copy of its contents (from [`Value::lock`]); the
/// copy is written back when the guard is dropped, then the lock is released.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T: CType> {
    value: T,
    data: &'a Block,
    dirty: bool,
    _held: RLockGuard<'a>,
}

impl<T: CType> ValueGuard<'_, T> {
    /// Whether the lock was taken over from a process that died holding it: the
    /// value may be half-updated.
    pub fn owner_died(&self) -> bool {
        self._held.owner_died()
    }
}

impl<T: CType> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: CType> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.dirty = true;
        &mut self.value
    }
}

impl<T: CType> Drop for ValueGuard<'_, T> {
    fn drop(&mut self) {
        if self.dirty {
            store(self.data, 0, self.value);
        }
        // `_held` is dropped after this, releasing the lock.
    }
}

// ---------------------------------------------------------------------------
// Array
// ---------------------------------------------------------------------------

/// A fixed-length array of numbers in shared memory with a lock (Python:
/// `multiprocessing.Array`).
///
/// ```
/// let arr = mpcore::Array::new(&[1i32, 2, 3])?;
/// arr.set(0, 10)?;
/// assert_eq!(arr.get(0), Some(10));
/// assert_eq!(arr.get(3), None);
/// {
///     let mut all = arr.lock(); // Python: `with arr.get_lock(): ...`
///     for x in all.iter_mut() {
///         *x *= 2;
///     }
/// }
/// assert_eq!(arr.to_vec(), [20, 4, 6]); // Python: arr[:]
/// # Ok::<(), mpcore::Error>(())
/// ```
pub struct Array<T: CType> {
    lock: RLock,
    data: Block,
    len: usize,
    _type: PhantomData<T>,
}

impl<T: CType> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            lock: self.lock.clone(),
            data: self.data.clone(),
            len: self.len,
            _type: PhantomData,
        }
    }
}

impl<T: CType> Array<T> {
    /// A shared array holding a copy of `values`, with a new [`RLock`].
    pub fn new(values: &[T]) -> Result<Array<T>> {
        let array = Array::zeroed(values.len())?;
        store_all(&array.data, values);
        Ok(array)
    }

    /// A shared array of `len` zeros (Python: `Array('d', 10)`).
    pub fn zeroed(len: usize) -> Result<Array<T>> {
        Ok(Array {
            lock: RLock::new()?,
            data: array_block::<T>(len)?,
            len,
            _type: PhantomData,
        })
    }

    /// A shared array given with a Python typecode, which must be one of `T`'s.
    pub fn with_typecode(typecode: char, values: &[T]) -> Result<Array<T>> {
        check_typecode::<T>(typecode)?;
        Array::new(values)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Element `i` (Python: `arr[i]`), read under the lock; `None` out of range.
    pub fn get(&self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        let _held = self.lock.lock();
        Some(load(&self.data, i))
    }

    /// Sets element `i` (Python: `arr[i] = v`), under the lock. Error out of range
    /// ("invalid index").
    pub fn set(&self, i: usize, value: T) -> Result<()> {
        if i >= self.len {
            return Err(Error::invalid("invalid index"));
        }
        let _held = self.lock.lock();
        store(&self.data, i, value);
        Ok(())
    }

    /// A copy of every element (Python: `arr[:]`), read under the lock.
    pub fn to_vec(&self) -> Vec<T> {
        let _held = self.lock.lock();
        load_all(&self.data, self.len)
    }

    /// The lock (Python: `get_lock()`).
    pub fn get_lock(&self) -> &RLock {
        &self.lock
    }

    /// Holds the lock and gives the elements as a slice to read and change; changes
    /// are stored when the guard is dropped.
    pub fn lock(&self) -> ArrayGuard<'_, T> {
        let held = self.lock.lock();
        ArrayGuard {
            values: load_all(&self.data, self.len),
            data: &self.data,
            dirty: false,
            _held: held,
        }
    }
}

impl<T: CType + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<SynchronizedArray wrapper for {:?}>",
            load_all::<T>(&self.data, self.len)
        )
    }
}

impl<T: CType> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.lock, &self.data, self.len as u64).serialize(s)
    }
}

impl<'de, T: CType> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (lock, data, len) = <(RLock, Block, u64)>::deserialize(d)?;
        let len = usize::try_from(len).map_err(D::Error::custom)?;
        check_len::<T, D::Error>(&data, len)?;
        Ok(Array {
            lock,
            data,
            len,
            _type: PhantomData,
        })
    }
}

/// The lock of an [`Array`] and a copy of its elements (from [`Array::lock`]); the
/// copy is written back when the guard is dropped, if it was borrowed mutably.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T: CType> {
    values: Vec<T>,
    data: &'a Block,
    dirty: bool,
    _held: RLockGuard<'a>,
}

impl<T: CType> ArrayGuard<'_, T> {
    /// Whether the lock was taken over from a process that died holding it: the
    /// array may be half-updated.
    pub fn owner_died(&self) -> bool {
        self._held.owner_died()
    }
}

impl<T: CType> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.values
    }
}

impl<T: CType> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.dirty = true;
        &mut self.values
    }
}

impl<T: CType> Drop for ArrayGuard<'_, T> {
    fn drop(&mut self) {
        if self.dirty {
            store_all(self.data, &self.values);
        }
    }
}

// ---------------------------------------------------------------------------
// RawValue, RawArray
// ---------------------------------------------------------------------------

/// A number in shared memory without a lock (Python: `multiprocessing.RawValue`).
///
/// Reads and writes are atomic, but a read-modify-write such as `v.set(v.get() + 1)`
/// is not: use a [`Value`] (or a separate lock) for that.
///
/// ```
/// let v = mpcore::RawValue::new(4343i32)?;
/// v.set(24234);
/// assert_eq!(v.get(), 24234);
/// # Ok::<(), mpcore::Error>(())
/// ```
pub struct RawValue<T: CType> {
    data: Block,
    _type: PhantomData<T>,
}

impl<T: CType> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        RawValue {
            data: self.data.clone(),
            _type: PhantomData,
        }
    }
}

impl<T: CType> RawValue<T> {
    /// A shared value without a lock.
    pub fn new(value: T) -> Result<RawValue<T>> {
        let data = Block::new(T::SIZE)?;
        store(&data, 0, value);
        Ok(RawValue {
            data,
            _type: PhantomData,
        })
    }

    /// A shared value given with a Python typecode, which must be one of `T`'s.
    pub fn with_typecode(typecode: char, value: T) -> Result<RawValue<T>> {
        check_typecode::<T>(typecode)?;
        RawValue::new(value)
    }

    /// The value.
    pub fn get(&self) -> T {
        load(&self.data, 0)
    }

    /// Sets the value.
    pub fn set(&self, value: T) {
        store(&self.data, 0, value);
    }
}

impl<T: CType + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawValue({:?})", self.get())
    }
}

impl<T: CType> Serialize for RawValue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.data.serialize(s)
    }
}

impl<'de, T: CType> Deserialize<'de> for RawValue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let data = Block::deserialize(d)?;
        check_len::<T, D::Error>(&data, 1)?;
        Ok(RawValue {
            data,
            _type: PhantomData,
        })
    }
}

/// A fixed-length array of numbers in shared memory without a lock (Python:
/// `multiprocessing.RawArray`).
///
/// ```
/// let arr = mpcore::RawArray::<f64>::zeroed(4)?;
/// arr.set(2, 1.5)?;
/// assert_eq!(arr.to_vec(), [0.0, 0.0, 1.5, 0.0]);
/// # Ok::<(), mpcore::Error>(())
/// ```
pub struct RawArray<T: CType> {
    data: Block,
    len: usize,
    _type: PhantomData<T>,
}

impl<T: CType> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        RawArray {
            data: self.data.clone(),
            len: self.len,
            _type: PhantomData,
        }
    }
}

impl<T: CType> RawArray<T> {
    /// A shared array holding a copy of `values`.
    pub fn new(values: &[T]) -> Result<RawArray<T>> {
        let array = RawArray::zeroed(values.len())?;
        store_all(&array.data, values);
        Ok(array)
    }

    /// A shared array of `len` zeros.
    pub fn zeroed(len: usize) -> Result<RawArray<T>> {
        Ok(RawArray {
            data: array_block::<T>(len)?,
            len,
            _type: PhantomData,
        })
    }

    /// A shared array given with a Python typecode, which must be one of `T`'s.
    pub fn with_typecode(typecode: char, values: &[T]) -> Result<RawArray<T>> {
        check_typecode::<T>(typecode)?;
        RawArray::new(values)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Element `i`; `None` out of range.
    pub fn get(&self, i: usize) -> Option<T> {
        (i < self.len).then(|| load(&self.data, i))
    }

    /// Sets element `i`. Error out of range ("invalid index").
    pub fn set(&self, i: usize, value: T) -> Result<()> {
        if i >= self.len {
            return Err(Error::invalid("invalid index"));
        }
        store(&self.data, i, value);
        Ok(())
    }

    /// A copy of every element.
    pub fn to_vec(&self) -> Vec<T> {
        load_all(&self.data, self.len)
    }
}

impl<T: CType + fmt::Debug> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawArray({:?})", self.to_vec())
    }
}

impl<T: CType> Serialize for RawArray<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.data, self.len as u64).serialize(s)
    }
}

impl<'de, T: CType> Deserialize<'de> for RawArray<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (data, len) = <(Block, u64)>::deserialize(d)?;
        let len = usize::try_from(len).map_err(D::Error::custom)?;
        check_len::<T, D::Error>(&data, len)?;
        Ok(RawArray {
            data,
            len,
            _type: PhantomData,
        })
    }
}

impl crate::context::Context {
    /// A new synchronized [`Value`] holding `value` (Python: `ctx.Value(typecode, value)`).
    pub fn value<T: CType>(&self, value: T) -> Result<Value<T>> {
        Value::new(value)
    }

    /// A new synchronized [`Array`] holding a copy of `values` (Python:
    /// `ctx.Array(typecode, values)`).
    pub fn array<T: CType>(&self, values: &[T]) -> Result<Array<T>> {
        Array::new(values)
    }

    /// A new unsynchronized [`RawValue`] holding `value` (Python:
    /// `ctx.RawValue(typecode, value)`).
    pub fn raw_value<T: CType>(&self, value: T) -> Result<RawValue<T>> {
        RawValue::new(value)
    }

    /// A new unsynchronized [`RawArray`] holding a copy of `values` (Python:
    /// `ctx.RawArray(typecode, values)`).
    pub fn raw_array<T: CType>(&self, values: &[T]) -> Result<RawArray<T>> {
        RawArray::new(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_for_every_type() {
        fn rt<T: CType + PartialEq + fmt::Debug>(v: T) {
            assert_eq!(T::from_bits(v.to_bits()), v);
        }
        rt(-5i8);
        rt(200u8);
        rt(-232i16);
        rt(65000u16);
        rt(-7i32);
        rt(u32::MAX);
        rt(-(1i64 << 40));
        rt(u64::MAX);
        rt(-4.25f32);
        rt(f64::MIN_POSITIVE);
        rt(true);
        rt(false);
    }

    #[test]
    fn typecodes_match_their_types() {
        assert!(check_typecode::<u8>('c').is_ok());
        assert!(check_typecode::<u8>('B').is_ok());
        assert!(check_typecode::<i64>('l').is_ok());
        assert!(check_typecode::<i64>('q').is_ok());
        assert!(check_typecode::<u64>('L').is_ok());
        assert!(check_typecode::<u64>('Q').is_ok());
        assert!(check_typecode::<bool>('?').is_ok());
        let mismatch = check_typecode::<i32>('d').unwrap_err().to_string();
        assert!(mismatch.contains("does not match"), "{mismatch}");
        let unknown = check_typecode::<i32>('x').unwrap_err().to_string();
        assert!(unknown.contains("bad typecode"), "{unknown}");
    }
}
