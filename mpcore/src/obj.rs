//! `Obj`: a dynamic value that stands for a Python object, and prints like one.
//!
//! Python's `multiprocessing` moves arbitrary Python objects around: a manager's
//! `dict()` holds `{'id': 54321, 'name': 'python'}`, a `list()` holds
//! `['张三', '李四']`, and the lessons print them with `print(d)`. Rust needs one
//! type for "any value a Python program could have put there", and mpcore's lessons
//! and managers need it to print exactly what Python prints, so that their output
//! can be compared with CPython's line by line. [`Obj`] is that type: `None`,
//! `bool`, `int`, `float`, `str`, `bytes`, `list`, `tuple` and `dict`, with
//! [`Display`](fmt::Display) being CPython 3.11's `repr()` to the character
//! (floats with the shortest digits that round-trip, strings with Python's quoting
//! and escapes, `(1,)` for a one-element tuple, and so on).
//!
//! ```
//! use mpcore::Obj;
//!
//! let d = Obj::dict([("id", Obj::from(54321)), ("name", Obj::from("python"))]);
//! assert_eq!(d.to_string(), "{'id': 54321, 'name': 'python'}");
//! assert_eq!(Obj::from(vec!["张三", "李四"]).to_string(), "['张三', '李四']");
//! assert_eq!(Obj::from((10.78, true, None::<i64>)).to_string(), "(10.78, True, None)");
//! assert_eq!(Obj::from("it's").to_string(), r#""it's""#);
//! assert_eq!(Obj::bytes(b"\x00ab").to_string(), r"b'\x00ab'");
//! ```
//!
//! # Differences from Python objects
//!
//! - `int` is an `i64`. Rust integers that may not fit (`u64`, `usize`, `isize`,
//!   `i128`, `u128`) convert with `TryFrom`, which fails with
//!   [`Error::InvalidState`] when the value is out of range.
//! - `==` on `Obj` is the derived, structural `PartialEq`: `Int(1) != Float(1.0)`,
//!   `Int(1) != Bool(true)`, `NaN != NaN`, and two dicts with the same items in a
//!   different order are not equal. Python says `1 == 1.0 == True` and compares
//!   dicts regardless of order; [`Obj::py_eq`] does that, and the dict helpers
//!   ([`Obj::dict_get`], [`Obj::dict_set`], ...) find keys with it, so `d[1]` and
//!   `d[True]` are the same entry, as in Python. [`Obj::py_lt`] is Python's `<`.
//! - A `Dict` is a `Vec` of pairs in insertion order (Python dicts keep insertion
//!   order too); lookups are linear.
//! - Values are trees, not graphs: no sharing and no cycles, so no `[[...]]`.
//!
//! # Encoding
//!
//! `Obj` implements serde's `Serialize` and `Deserialize` so it can cross process
//! boundaries through [`reduction`](crate::reduction). Decoding is written by hand
//! for untrusted input: containers may nest at most [`MAX_DEPTH`] levels (deeper
//! input is an error, never a stack overflow), a length prefix reserves at most a
//! few KiB before the items it claims have actually arrived, and malformed bytes
//! are [`Error::Codec`]. Encoding refuses the same depth, so whatever is sent can be
//! received.
//!
//! Building a value nested far deeper than [`MAX_DEPTH`] by hand (say a million
//! levels) and printing, cloning, comparing or dropping it recurses once per level,
//! and may overflow the stack, as any recursive Rust tree does.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeSeed, EnumAccess, SeqAccess, VariantAccess, Visitor};
use serde::ser::{self, SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// The deepest nesting of containers (lists, tuples, dicts) that an [`Obj`] may
/// have to be encoded or decoded: `[]` is one level, `[[1]]` two.
///
/// Decoding recurses once per level, so this bounds the stack a malicious message
/// can make a receiver use: 256 levels of dicts take about 1.2 MiB of stack in an
/// unoptimized build and 230 KiB in an optimized one, within the 2 MiB a thread
/// gets by default. (CPython's recursion limit is 1000, but real data is rarely
/// more than a few levels deep.)
pub const MAX_DEPTH: usize = 256;

/// A Python object: a dynamic value whose [`Display`](fmt::Display) is exactly
/// CPython 3.11's `repr()`.
///
/// Build one with `From` (`Obj::from(3)`, `Obj::from("a")`, `Obj::from(vec![1, 2])`,
/// `Obj::from((1, "a"))`, `Obj::from(Some(2.5))`, a `BTreeMap` or `HashMap`) or with
/// the constructors [`Obj::bytes`], [`Obj::tuple`], [`Obj::list`] and [`Obj::dict`];
/// take one apart with the `as_*` accessors or `TryFrom` (`i64::try_from(obj)?`).
/// See the [module documentation](self) for how it differs from Python.
///
/// ```
/// use mpcore::Obj;
///
/// let mut d = Obj::dict([(1, "one")]);
/// d.dict_set("pi", 3.14)?;
/// d.dict_set((1, 2), vec![Obj::None, Obj::from(1e16), Obj::from(f64::NAN)])?;
/// assert_eq!(d.to_string(), "{1: 'one', 'pi': 3.14, (1, 2): [None, 1e+16, nan]}");
///
/// // Python's dict lookup: True == 1, so d[True] is d[1].
/// assert_eq!(d.dict_get(&Obj::from(true)).and_then(Obj::as_str), Some("one"));
/// assert_eq!(d.dict_get(&Obj::from("pi")).and_then(Obj::as_float), Some(3.14));
///
/// // Lists are unhashable, as in Python.
/// let err = d.dict_set(vec![1], 0).unwrap_err();
/// assert_eq!(err.to_string(), "unhashable type: 'list'");
///
/// // Taking a value out checks its type.
/// let n: i64 = Obj::from(7).try_into()?;
/// assert_eq!(n, 7);
/// let err = i64::try_from(Obj::from("7")).unwrap_err();
/// assert_eq!(err.to_string(), "expected int, got str");
/// # Ok::<(), mpcore::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Obj {
    /// Python's `None`.
    #[default]
    None,
    /// A `bool`: `True` or `False`.
    Bool(bool),
    /// An `int` (limited to `i64` here).
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `bytes` (build one with [`Obj::bytes`]: a `Vec<u8>` converts to a list of
    /// ints, as `list(b'..')` would).
    Bytes(Vec<u8>),
    /// A `list`.
    List(Vec<Obj>),
    /// A `tuple`.
    Tuple(Vec<Obj>),
    /// A `dict`, its items in insertion order. Keys are expected to be distinct
    /// under [`Obj::py_eq`] and hashable; the dict helpers keep it so.
    Dict(Vec<(Obj, Obj)>),
}

/// A number for Python's mixed `bool`/`int`/`float` comparisons.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Obj {
    /// A `bytes` value (Python: `b'...'`).
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Obj {
        Obj::Bytes(bytes.into())
    }

    /// A `list` of the items (Python: `list(items)`).
    pub fn list<T: Into<Obj>>(items: impl IntoIterator<Item = T>) -> Obj {
        Obj::List(items.into_iter().map(Into::into).collect())
    }

    /// A `tuple` of the items (Python: `tuple(items)`), for tuples of any length;
    /// `From` takes Rust tuples of one to four elements.
    pub fn tuple<T: Into<Obj>>(items: impl IntoIterator<Item = T>) -> Obj {
        Obj::Tuple(items.into_iter().map(Into::into).collect())
    }

    /// A `dict` of the pairs, in order (Python: `dict(pairs)`): a key seen again
    /// replaces the value and keeps its first position, as in Python. Keys are
    /// compared with [`Obj::py_eq`], which makes building a dict of `n` items
    /// O(n²); hashability is not checked here (see [`Obj::dict_set`]).
    pub fn dict<K: Into<Obj>, V: Into<Obj>>(pairs: impl IntoIterator<Item = (K, V)>) -> Obj {
        let mut items: Vec<(Obj, Obj)> = Vec::new();
        for (k, v) in pairs {
            let (k, v) = (k.into(), v.into());
            match items.iter_mut().find(|(key, _)| key.py_eq(&k)) {
                Some(slot) => slot.1 = v,
                None => items.push((k, v)),
            }
        }
        Obj::Dict(items)
    }

    /// Python's name for the type: `'NoneType'`, `'bool'`, `'int'`, `'float'`,
    /// `'str'`, `'bytes'`, `'list'`, `'tuple'` or `'dict'` (Python:
    /// `type(x).__name__`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Obj::None => "NoneType",
            Obj::Bool(_) => "bool",
            Obj::Int(_) => "int",
            Obj::Float(_) => "float",
            Obj::Str(_) => "str",
            Obj::Bytes(_) => "bytes",
            Obj::List(_) => "list",
            Obj::Tuple(_) => "tuple",
            Obj::Dict(_) => "dict",
        }
    }

    /// Whether this is `None` (Python: `x is None`).
    pub fn is_none(&self) -> bool {
        matches!(self, Obj::None)
    }

    /// The value of a `bool`; `None` for any other type.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Obj::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value of an `int`; `None` for any other type, `bool` included (Rust
    /// code rarely wants `True` read as 1).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Obj::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value of a `float`, or of an `int` converted to the nearest float
    /// (Python accepts an `int` wherever a `float` is expected); `None` for any
    /// other type.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Obj::Float(x) => Some(*x),
            Obj::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The text of a `str`; `None` for any other type.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The contents of a `bytes`; `None` for any other type.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Obj::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The items of a `list`; `None` for any other type (a `tuple` too: see
    /// [`Obj::as_tuple`]).
    pub fn as_list(&self) -> Option<&[Obj]> {
        match self {
            Obj::List(items) => Some(items),
            _ => None,
        }
    }

    /// The items of a `tuple`; `None` for any other type.
    pub fn as_tuple(&self) -> Option<&[Obj]> {
        match self {
            Obj::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// The items of a `dict`, in insertion order; `None` for any other type.
    pub fn as_dict(&self) -> Option<&[(Obj, Obj)]> {
        match self {
            Obj::Dict(items) => Some(items),
            _ => None,
        }
    }

    /// Python's truth value (`bool(x)`): `None`, `False`, zero and empty
    /// containers are false, everything else true.
    pub fn is_truthy(&self) -> bool {
        match self {
            Obj::None => false,
            Obj::Bool(b) => *b,
            Obj::Int(i) => *i != 0,
            Obj::Float(x) => *x != 0.0,
            Obj::Str(s) => !s.is_empty(),
            Obj::Bytes(b) => !b.is_empty(),
            Obj::List(items) | Obj::Tuple(items) => !items.is_empty(),
            Obj::Dict(items) => !items.is_empty(),
        }
    }

    /// Whether Python could use this as a dict key: everything but lists, dicts
    /// and tuples that contain one.
    pub fn is_hashable(&self) -> bool {
        match self {
            Obj::List(_) | Obj::Dict(_) => false,
            Obj::Tuple(items) => items.iter().all(Obj::is_hashable),
            _ => true,
        }
    }

    /// The value stored under `key` in a dict (Python: `d.get(key)`); `None` when
    /// the key is missing or `self` is not a dict. Keys match under
    /// [`Obj::py_eq`], so `1`, `1.0` and `True` find the same entry.
    pub fn dict_get(&self, key: &Obj) -> Option<&Obj> {
        match self {
            Obj::Dict(items) => items.iter().find(|(k, _)| k.py_eq(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A mutable reference to the value stored under `key` in a dict; `None` when
    /// the key is missing or `self` is not a dict.
    pub fn dict_get_mut(&mut self, key: &Obj) -> Option<&mut Obj> {
        match self {
            Obj::Dict(items) => items.iter_mut().find(|(k, _)| k.py_eq(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Stores `value` under `key` in a dict (Python: `d[key] = value`) and returns
    /// the value it replaces. A key already present keeps its position (and its
    /// original spelling: setting `True` where `1` is stored keeps the key `1`, as
    /// Python does); a new one goes last.
    ///
    /// Fails with [`Error::InvalidState`] when `self` is not a dict (`expected
    /// dict, got list`) or the key is unhashable (`unhashable type: 'list'`,
    /// Python's `TypeError` message).
    pub fn dict_set(&mut self, key: impl Into<Obj>, value: impl Into<Obj>) -> Result<Option<Obj>> {
        let Obj::Dict(items) = self else {
            return Err(type_error("dict", self));
        };
        let key = key.into();
        if !key.is_hashable() {
            return Err(unhashable(&key));
        }
        let value = value.into();
        match items.iter_mut().find(|(k, _)| k.py_eq(&key)) {
            Some(slot) => Ok(Some(std::mem::replace(&mut slot.1, value))),
            None => {
                items.push((key, value));
                Ok(None)
            }
        }
    }

    /// Removes `key` from a dict and returns its value (Python: `d.pop(key)`),
    /// keeping the order of the others; `None` when the key is missing or `self`
    /// is not a dict.
    pub fn dict_remove(&mut self, key: &Obj) -> Option<Obj> {
        let Obj::Dict(items) = self else {
            return None;
        };
        let at = items.iter().position(|(k, _)| k.py_eq(key))?;
        Some(items.remove(at).1)
    }

    /// Python's `==`: numbers compare by value across `bool`, `int` and `float`
    /// (`1 == 1.0 == True`, exactly, without rounding the int), `NaN` equals
    /// nothing, lists and tuples compare item by item (a list never equals a
    /// tuple), dicts compare their items regardless of order, and `'a' != b'a'`.
    pub fn py_eq(&self, other: &Obj) -> bool {
        match (self, other) {
            (Obj::None, Obj::None) => true,
            (Obj::Str(a), Obj::Str(b)) => a == b,
            (Obj::Bytes(a), Obj::Bytes(b)) => a == b,
            (Obj::List(a), Obj::List(b)) | (Obj::Tuple(a), Obj::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.py_eq(y))
            }
            (Obj::Dict(a), Obj::Dict(_)) => {
                a.len() == other.as_dict().map_or(0, <[_]>::len)
                    && a.iter()
                        .all(|(k, v)| other.dict_get(k).is_some_and(|w| v.py_eq(w)))
            }
            _ => match (self.num(), other.num()) {
                (Some(a), Some(b)) => num_cmp(a, b) == Some(Ordering::Equal),
                _ => false,
            },
        }
    }

    /// Python's `<`: numbers by value across `bool`, `int` and `float` (`False`
    /// when a `NaN` is involved), `str` by code point, `bytes` by byte, lists and
    /// tuples lexicographically (the first items that differ under
    /// [`Obj::py_eq`] decide, else the shorter is less).
    ///
    /// Other pairs fail with [`Error::InvalidState`] carrying Python's `TypeError`
    /// message, e.g. `'<' not supported between instances of 'str' and 'int'`.
    pub fn py_lt(&self, other: &Obj) -> Result<bool> {
        match (self, other) {
            (Obj::Str(a), Obj::Str(b)) => Ok(a < b),
            (Obj::Bytes(a), Obj::Bytes(b)) => Ok(a < b),
            (Obj::List(a), Obj::List(b)) | (Obj::Tuple(a), Obj::Tuple(b)) => {
                match a.iter().zip(b).find(|(x, y)| !x.py_eq(y)) {
                    Some((x, y)) => x.py_lt(y),
                    None => Ok(a.len() < b.len()),
                }
            }
            _ => match (self.num(), other.num()) {
                (Some(a), Some(b)) => Ok(num_cmp(a, b) == Some(Ordering::Less)),
                _ => Err(Error::InvalidState(format!(
                    "'<' not supported between instances of '{}' and '{}'",
                    self.type_name(),
                    other.type_name()
                ))),
            },
        }
    }

    /// Python's `str(x)`, what `print(x)` shows: the text itself for a `str`, the
    /// `repr` (this type's `Display`) for everything else.
    pub fn py_str(&self) -> Cow<'_, str> {
        match self {
            Obj::Str(s) => Cow::Borrowed(s),
            other => Cow::Owned(other.to_string()),
        }
    }

    fn num(&self) -> Option<Num> {
        match self {
            Obj::Bool(b) => Some(Num::Int(i64::from(*b))),
            Obj::Int(i) => Some(Num::Int(*i)),
            Obj::Float(x) => Some(Num::Float(*x)),
            _ => None,
        }
    }
}

/// Compares numbers exactly, as Python does (an `int` is not rounded to a float).
fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
        (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b),
        (Num::Int(i), Num::Float(x)) => int_float_cmp(i, x),
        (Num::Float(x), Num::Int(i)) => int_float_cmp(i, x).map(Ordering::reverse),
    }
}

fn int_float_cmp(i: i64, x: f64) -> Option<Ordering> {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if x.is_nan() {
        return None;
    }
    if x >= TWO_POW_63 {
        return Some(Ordering::Less);
    }
    if x < -TWO_POW_63 {
        return Some(Ordering::Greater);
    }
    // In range, so the integral part is exactly an i64.
    let whole = x.trunc();
    Some(i.cmp(&(whole as i64)).then_with(|| {
        if x > whole {
            Ordering::Less
        } else if x < whole {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    }))
}

/// The error of a conversion that found the wrong type: `expected int, got str`.
fn type_error(expected: &str, got: &Obj) -> Error {
    Error::InvalidState(format!("expected {expected}, got {}", got.type_name()))
}

fn unhashable(key: &Obj) -> Error {
    // A tuple is unhashable because of an item; Python names that item's type.
    let mut culprit = key;
    while let Obj::Tuple(items) = culprit {
        match items.iter().find(|item| !item.is_hashable()) {
            Some(item) => culprit = item,
            None => break,
        }
    }
    Error::InvalidState(format!("unhashable type: '{}'", culprit.type_name()))
}

/// Python's `repr()`, exactly as CPython 3.11 prints it.
impl fmt::Display for Obj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Obj::None => f.write_str("None"),
            Obj::Bool(true) => f.write_str("True"),
            Obj::Bool(false) => f.write_str("False"),
            Obj::Int(i) => write!(f, "{i}"),
            Obj::Float(x) => write_float_repr(f, *x),
            Obj::Str(s) => write_str_repr(f, s),
            Obj::Bytes(b) => write_bytes_repr(f, b),
            Obj::List(items) => {
                f.write_char('[')?;
                write_items(f, items)?;
                f.write_char(']')
            }
            Obj::Tuple(items) => {
                f.write_char('(')?;
                write_items(f, items)?;
                if items.len() == 1 {
                    f.write_char(',')?;
                }
                f.write_char(')')
            }
            Obj::Dict(items) => {
                f.write_char('{')?;
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    fmt::Display::fmt(k, f)?;
                    f.write_str(": ")?;
                    fmt::Display::fmt(v, f)?;
                }
                f.write_char('}')
            }
        }
    }
}

fn write_items(f: &mut fmt::Formatter<'_>, items: &[Obj]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        fmt::Display::fmt(item, f)?;
    }
    Ok(())
}

/// `repr(float)`: the shortest digits that read back as the same float (Rust's
/// `{:e}` finds the same digits as CPython's `dtoa` mode 0), laid out as
/// `float_repr_style = 'short'` does: positional when the decimal exponent is in
/// `-4..16` (with `.0` added to integral values), else scientific with a sign and
/// at least two exponent digits.
fn write_float_repr(out: &mut impl fmt::Write, x: f64) -> fmt::Result {
    if x.is_nan() {
        return out.write_str("nan");
    }
    if x.is_infinite() {
        return out.write_str(if x > 0.0 { "inf" } else { "-inf" });
    }
    if x == 0.0 {
        return out.write_str(if x.is_sign_negative() { "-0.0" } else { "0.0" });
    }
    if x < 0.0 {
        out.write_char('-')?;
    }
    let x = x.abs();
    let mut sci = format!("{x:e}"); // "1.2345e-7", "1e16"
    // When two shortest candidates are equally close to `x` (2**-25 is
    // 2.98023223876953125e-08 exactly), Rust's shortest mode rounds the last digit
    // up and Python's dtoa rounds it to even. Rust's fixed-precision mode rounds
    // exactly, half to even: take its digits when they also read back as `x`.
    let digit_count = sci.find('e').map_or(1, |e| e - usize::from(e > 1));
    let even = format!("{x:.*e}", digit_count - 1);
    if even != sci && even.parse::<f64>() == Ok(x) {
        sci = even;
    }
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.write_str("0.")?;
            for _ in 1..-exp {
                out.write_char('0')?;
            }
            out.write_str(&digits)
        } else {
            // `exp` is 0..16, so this is the count of digits before the point.
            let point = exp.unsigned_abs() as usize + 1;
            if digits.len() <= point {
                out.write_str(&digits)?;
                for _ in digits.len()..point {
                    out.write_char('0')?;
                }
                out.write_str(".0")
            } else {
                out.write_str(&digits[..point])?;
                out.write_char('.')?;
                out.write_str(&digits[point..])
            }
        }
    } else {
        let (first, rest) = digits.split_at(1);
        out.write_str(first)?;
        if !rest.is_empty() {
            out.write_char('.')?;
            out.write_str(rest)?;
        }
        let sign = if exp < 0 { '-' } else { '+' };
        write!(out, "e{sign}{:02}", exp.unsigned_abs())
    }
}

/// `repr(str)`: single quotes unless the text has `'` and no `"`; backslash, the
/// quote in use, `\t`, `\n` and `\r` escaped; other ASCII controls and DEL as
/// `\xNN`; non-ASCII characters as they are when Python deems them printable,
/// else `\xNN`, `\uNNNN` or `\UNNNNNNNN` (CPython's `unicode_repr`).
fn write_str_repr(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.write_char(quote)?;
    let mut run = 0; // start of the characters not yet written, which need no escape
    for (at, c) in s.char_indices() {
        let plain = match c {
            '\\' | '\t' | '\n' | '\r' | '\x00'..='\x1f' | '\x7f' => false,
            ' '..='\x7e' => c != quote,
            _ => is_printable(c),
        };
        if plain {
            continue;
        }
        out.write_str(&s[run..at])?;
        run = at + c.len_utf8();
        let n = u32::from(c);
        match c {
            '\\' => out.write_str("\\\\")?,
            '\t' => out.write_str("\\t")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            _ if c == quote => {
                out.write_char('\\')?;
                out.write_char(c)?;
            }
            _ if n <= 0xff => write!(out, "\\x{n:02x}")?,
            _ if n <= 0xffff => write!(out, "\\u{n:04x}")?,
            _ => write!(out, "\\U{n:08x}")?,
        }
    }
    out.write_str(&s[run..])?;
    out.write_char(quote)
}

/// `repr(bytes)`: `b` and the quote chosen as for `str`; backslash, the quote,
/// `\t`, `\n` and `\r` escaped; printable ASCII as is; every other byte `\xNN`.
fn write_bytes_repr(out: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.write_char('b')?;
    out.write_char(char::from(quote))?;
    for &b in bytes {
        match b {
            b'\\' => out.write_str("\\\\")?,
            b'\t' => out.write_str("\\t")?,
            b'\n' => out.write_str("\\n")?,
            b'\r' => out.write_str("\\r")?,
            _ if b == quote => {
                out.write_char('\\')?;
                out.write_char(char::from(b))?;
            }
            b' '..=b'~' => out.write_char(char::from(b))?,
            _ => write!(out, "\\x{b:02x}")?,
        }
    }
    out.write_char(char::from(quote))
}

/// Python's `str.isprintable()` for one character (`Py_UNICODE_ISPRINTABLE`):
/// false for the categories Cc, Cf, Cs, Co, Cn, Zl, Zp and Zs other than the
/// ASCII space.
fn is_printable(c: char) -> bool {
    let n = u32::from(c);
    if n < 0x80 {
        return (0x20..0x7f).contains(&n);
    }
    let after = NON_PRINTABLE.partition_point(|&(start, _)| start <= n);
    !(after > 0 && n <= NON_PRINTABLE[after - 1].1)
}

/// The non-ASCII code points that Python 3.11 (Unicode 14.0.0) does not consider
/// printable, as sorted, disjoint, inclusive ranges. Generated with:
///
/// ```text
/// python3.11 -c '
/// r, start = [], None
/// for c in range(0x80, 0x110000):
///     if not chr(c).isprintable():
///         start = c if start is None else start
///     elif start is not None:
///         r.append((start, c - 1)); start = None
/// r.append((start, 0x10ffff))
/// print(", ".join("(0x%04x, 0x%04x)" % p for p in r))'
/// ```
#[rustfmt::skip]
const NON_PRINTABLE: &[(u32, u32)] = &[
    (0x0080, 0x00a0), (0x00ad, 0x00ad), (0x0378, 0x0379), (0x0380, 0x0383), (0x038b, 0x038b),
    (0x038d, 0x038d), (0x03a2, 0x03a2), (0x0530, 0x0530), (0x0557, 0x0558), (0x058b, 0x058c),
    (0x0590, 0x0590), (0x05c8, 0x05cf), (0x05eb, 0x05ee), (0x05f5, 0x0605), (0x061c, 0x061c),
    (0x06dd, 0x06dd), (0x070e, 0x070f), (0x074b, 0x074c), (0x07b2, 0x07bf), (0x07fb, 0x07fc),
    (0x082e, 0x082f), (0x083f, 0x083f), (0x085c, 0x085d), (0x085f, 0x085f), (0x086b, 0x086f),
    (0x088f, 0x0897), (0x08e2, 0x08e2), (0x0984, 0x0984), (0x098d, 0x098e), (0x0991, 0x0992),
    (0x09a9, 0x09a9), (0x09b1, 0x09b1), (0x09b3, 0x09b5), (0x09ba, 0x09bb), (0x09c5, 0x09c6),
    (0x09c9, 0x09ca), (0x09cf, 0x09d6), (0x09d8, 0x09db), (0x09de, 0x09de), (0x09e4, 0x09e5),
    (0x09ff, 0x0a00), (0x0a04, 0x0a04), (0x0a0b, 0x0a0e), (0x0a11, 0x0a12), (0x0a29, 0x0a29),
    (0x0a31, 0x0a31), (0x0a34, 0x0a34), (0x0a37, 0x0a37), (0x0a3a, 0x0a3b), (0x0a3d, 0x0a3d),
    (0x0a43, 0x0a46), (0x0a49, 0x0a4a), (0x0a4e, 0x0a50), (0x0a52, 0x0a58), (0x0a5d, 0x0a5d),
    (0x0a5f, 0x0a65), (0x0a77, 0x0a80), (0x0a84, 0x0a84), (0x0a8e, 0x0a8e), (0x0a92, 0x0a92),
    (0x0aa9, 0x0aa9), (0x0ab1, 0x0ab1), (0x0ab4, 0x0ab4), (0x0aba, 0x0abb), (0x0ac6, 0x0ac6),
    (0x0aca, 0x0aca), (0x0ace, 0x0acf), (0x0ad1, 0x0adf), (0x0ae4, 0x0ae5), (0x0af2, 0x0af8),
    (0x0b00, 0x0b00), (0x0b04, 0x0b04), (0x0b0d, 0x0b0e), (0x0b11, 0x0b12), (0x0b29, 0x0b29),
    (0x0b31, 0x0b31), (0x0b34, 0x0b34), (0x0b3a, 0x0b3b), (0x0b45, 0x0b46), (0x0b49, 0x0b4a),
    (0x0b4e, 0x0b54), (0x0b58, 0x0b5b), (0x0b5e, 0x0b5e), (0x0b64, 0x0b65), (0x0b78, 0x0b81),
    (0x0b84, 0x0b84), (0x0b8b, 0x0b8d), (0x0b91, 0x0b91), (0x0b96, 0x0b98), (0x0b9b, 0x0b9b),
    (0x0b9d, 0x0b9d), (0x0ba0, 0x0ba2), (0x0ba5, 0x0ba7), (0x0bab, 0x0bad), (0x0bba, 0x0bbd),
    (0x0bc3, 0x0bc5), (0x0bc9, 0x0bc9), (0x0bce, 0x0bcf), (0x0bd1, 0x0bd6), (0x0bd8, 0x0be5),
    (0x0bfb, 0x0bff), (0x0c0d, 0x0c0d), (0x0c11, 0x0c11), (0x0c29, 0x0c29), (0x0c3a, 0x0c3b),
    (0x0c45, 0x0c45), (0x0c49, 0x0c49), (0x0c4e, 0x0c54), (0x0c57, 0x0c57), (0x0c5b, 0x0c5c),
    (0x0c5e, 0x0c5f), (0x0c64, 0x0c65), (0x0c70, 0x0c76), (0x0c8d, 0x0c8d), (0x0c91, 0x0c91),
    (0x0ca9, 0x0ca9), (0x0cb4, 0x0cb4), (0x0cba, 0x0cbb), (0x0cc5, 0x0cc5), (0x0cc9, 0x0cc9),
    (0x0cce, 0x0cd4), (0x0cd7, 0x0cdc), (0x0cdf, 0x0cdf), (0x0ce4, 0x0ce5), (0x0cf0, 0x0cf0),
    (0x0cf3, 0x0cff), (0x0d0d, 0x0d0d), (0x0d11, 0x0d11), (0x0d45, 0x0d45), (0x0d49, 0x0d49),
    (0x0d50, 0x0d53), (0x0d64, 0x0d65), (0x0d80, 0x0d80), (0x0d84, 0x0d84), (0x0d97, 0x0d99),
    (0x0db2, 0x0db2), (0x0dbc, 0x0dbc), (0x0dbe, 0x0dbf), (0x0dc7, 0x0dc9), (0x0dcb, 0x0dce),
    (0x0dd5, 0x0dd5), (0x0dd7, 0x0dd7), (0x0de0, 0x0de5), (0x0df0, 0x0df1), (0x0df5, 0x0e00),
    (0x0e3b, 0x0e3e), (0x0e5c, 0x0e80), (0x0e83, 0x0e83), (0x0e85, 0x0e85), (0x0e8b, 0x0e8b),
    (0x0ea4, 0x0ea4), (0x0ea6, 0x0ea6), (0x0ebe, 0x0ebf), (0x0ec5, 0x0ec5), (0x0ec7, 0x0ec7),
    (0x0ece, 0x0ecf), (0x0eda, 0x0edb), (0x0ee0, 0x0eff), (0x0f48, 0x0f48), (0x0f6d, 0x0f70),
    (0x0f98, 0x0f98), (0x0fbd, 0x0fbd), (0x0fcd, 0x0fcd), (0x0fdb, 0x0fff), (0x10c6, 0x10c6),
    (0x10c8, 0x10cc), (0x10ce, 0x10cf), (0x1249, 0x1249), (0x124e, 0x124f), (0x1257, 0x1257),
    (0x1259, 0x1259), (0x125e, 0x125f), (0x1289, 0x1289), (0x128e, 0x128f), (0x12b1, 0x12b1),
    (0x12b6, 0x12b7), (0x12bf, 0x12bf), (0x12c1, 0x12c1), (0x12c6, 0x12c7), (0x12d7, 0x12d7),
    (0x1311, 0x1311), (0x1316, 0x1317), (0x135b, 0x135c), (0x137d, 0x137f), (0x139a, 0x139f),
    (0x13f6, 0x13f7), (0x13fe, 0x13ff), (0x1680, 0x1680), (0x169d, 0x169f), (0x16f9, 0x16ff),
    (0x1716, 0x171e), (0x1737, 0x173f), (0x1754, 0x175f), (0x176d, 0x176d), (0x1771, 0x1771),
    (0x1774, 0x177f), (0x17de, 0x17df), (0x17ea, 0x17ef), (0x17fa, 0x17ff), (0x180e, 0x180e),
    (0x181a, 0x181f), (0x1879, 0x187f), (0x18ab, 0x18af), (0x18f6, 0x18ff), (0x191f, 0x191f),
    (0x192c, 0x192f), (0x193c, 0x193f), (0x1941, 0x1943), (0x196e, 0x196f), (0x1975, 0x197f),
    (0x19ac, 0x19af), (0x19ca, 0x19cf), (0x19db, 0x19dd), (0x1a1c, 0x1a1d), (0x1a5f, 0x1a5f),
    (0x1a7d, 0x1a7e), (0x1a8a, 0x1a8f), (0x1a9a, 0x1a9f), (0x1aae, 0x1aaf), (0x1acf, 0x1aff),
    (0x1b4d, 0x1b4f), (0x1b7f, 0x1b7f), (0x1bf4, 0x1bfb), (0x1c38, 0x1c3a), (0x1c4a, 0x1c4c),
    (0x1c89, 0x1c8f), (0x1cbb, 0x1cbc), (0x1cc8, 0x1ccf), (0x1cfb, 0x1cff), (0x1f16, 0x1f17),
    (0x1f1e, 0x1f1f), (0x1f46, 0x1f47), (0x1f4e, 0x1f4f), (0x1f58, 0x1f58), (0x1f5a, 0x1f5a),
    (0x1f5c, 0x1f5c), (0x1f5e, 0x1f5e), (0x1f7e, 0x1f7f), (0x1fb5, 0x1fb5), (0x1fc5, 0x1fc5),
    (0x1fd4, 0x1fd5), (0x1fdc, 0x1fdc), (0x1ff0, 0x1ff1), (0x1ff5, 0x1ff5), (0x1fff, 0x200f),
    (0x2028, 0x202f), (0x205f, 0x206f), (0x2072, 0x2073), (0x208f, 0x208f), (0x209d, 0x209f),
    (0x20c1, 0x20cf), (0x20f1, 0x20ff), (0x218c, 0x218f), (0x2427, 0x243f), (0x244b, 0x245f),
    (0x2b74, 0x2b75), (0x2b96, 0x2b96), (0x2cf4, 0x2cf8), (0x2d26, 0x2d26), (0x2d28, 0x2d2c),
    (0x2d2e, 0x2d2f), (0x2d68, 0x2d6e), (0x2d71, 0x2d7e), (0x2d97, 0x2d9f), (0x2da7, 0x2da7),
    (0x2daf, 0x2daf), (0x2db7, 0x2db7), (0x2dbf, 0x2dbf), (0x2dc7, 0x2dc7), (0x2dcf, 0x2dcf),
    (0x2dd7, 0x2dd7), (0x2ddf, 0x2ddf), (0x2e5e, 0x2e7f), (0x2e9a, 0x2e9a), (0x2ef4, 0x2eff),
    (0x2fd6, 0x2fef), (0x2ffc, 0x3000), (0x3040, 0x3040), (0x3097, 0x3098), (0x3100, 0x3104),
    (0x3130, 0x3130), (0x318f, 0x318f), (0x31e4, 0x31ef), (0x321f, 0x321f), (0xa48d, 0xa48f),
    (0xa4c7, 0xa4cf), (0xa62c, 0xa63f), (0xa6f8, 0xa6ff), (0xa7cb, 0xa7cf), (0xa7d2, 0xa7d2),
    (0xa7d4, 0xa7d4), (0xa7da, 0xa7f1), (0xa82d, 0xa82f), (0xa83a, 0xa83f), (0xa878, 0xa87f),
    (0xa8c6, 0xa8cd), (0xa8da, 0xa8df), (0xa954, 0xa95e), (0xa97d, 0xa97f), (0xa9ce, 0xa9ce),
    (0xa9da, 0xa9dd), (0xa9ff, 0xa9ff), (0xaa37, 0xaa3f), (0xaa4e, 0xaa4f), (0xaa5a, 0xaa5b),
    (0xaac3, 0xaada), (0xaaf7, 0xab00), (0xab07, 0xab08), (0xab0f, 0xab10), (0xab17, 0xab1f),
    (0xab27, 0xab27), (0xab2f, 0xab2f), (0xab6c, 0xab6f), (0xabee, 0xabef), (0xabfa, 0xabff),
    (0xd7a4, 0xd7af), (0xd7c7, 0xd7ca), (0xd7fc, 0xf8ff), (0xfa6e, 0xfa6f), (0xfada, 0xfaff),
    (0xfb07, 0xfb12), (0xfb18, 0xfb1c), (0xfb37, 0xfb37), (0xfb3d, 0xfb3d), (0xfb3f, 0xfb3f),
    (0xfb42, 0xfb42), (0xfb45, 0xfb45), (0xfbc3, 0xfbd2), (0xfd90, 0xfd91), (0xfdc8, 0xfdce),
    (0xfdd0, 0xfdef), (0xfe1a, 0xfe1f), (0xfe53, 0xfe53), (0xfe67, 0xfe67), (0xfe6c, 0xfe6f),
    (0xfe75, 0xfe75), (0xfefd, 0xff00), (0xffbf, 0xffc1), (0xffc8, 0xffc9), (0xffd0, 0xffd1),
    (0xffd8, 0xffd9), (0xffdd, 0xffdf), (0xffe7, 0xffe7), (0xffef, 0xfffb), (0xfffe, 0xffff),
    (0x1000c, 0x1000c), (0x10027, 0x10027), (0x1003b, 0x1003b), (0x1003e, 0x1003e), (0x1004e, 0x1004f),
    (0x1005e, 0x1007f), (0x100fb, 0x100ff), (0x10103, 0x10106), (0x10134, 0x10136), (0x1018f, 0x1018f),
    (0x1019d, 0x1019f), (0x101a1, 0x101cf), (0x101fe, 0x1027f), (0x1029d, 0x1029f), (0x102d1, 0x102df),
    (0x102fc, 0x102ff), (0x10324, 0x1032c), (0x1034b, 0x1034f), (0x1037b, 0x1037f), (0x1039e, 0x1039e),
    (0x103c4, 0x103c7), (0x103d6, 0x103ff), (0x1049e, 0x1049f), (0x104aa, 0x104af), (0x104d4, 0x104d7),
    (0x104fc, 0x104ff), (0x10528, 0x1052f), (0x10564, 0x1056e), (0x1057b, 0x1057b), (0x1058b, 0x1058b),
    (0x10593, 0x10593), (0x10596, 0x10596), (0x105a2, 0x105a2), (0x105b2, 0x105b2), (0x105ba, 0x105ba),
    (0x105bd, 0x105ff), (0x10737, 0x1073f), (0x10756, 0x1075f), (0x10768, 0x1077f), (0x10786, 0x10786),
    (0x107b1, 0x107b1), (0x107bb, 0x107ff), (0x10806, 0x10807), (0x10809, 0x10809), (0x10836, 0x10836),
    (0x10839, 0x1083b), (0x1083d, 0x1083e), (0x10856, 0x10856), (0x1089f, 0x108a6), (0x108b0, 0x108df),
    (0x108f3, 0x108f3), (0x108f6, 0x108fa), (0x1091c, 0x1091e), (0x1093a, 0x1093e), (0x10940, 0x1097f),
    (0x109b8, 0x109bb), (0x109d0, 0x109d1), (0x10a04, 0x10a04), (0x10a07, 0x10a0b), (0x10a14, 0x10a14),
    (0x10a18, 0x10a18), (0x10a36, 0x10a37), (0x10a3b, 0x10a3e), (0x10a49, 0x10a4f), (0x10a59, 0x10a5f),
    (0x10aa0, 0x10abf), (0x10ae7, 0x10aea), (0x10af7, 0x10aff), (0x10b36, 0x10b38), (0x10b56, 0x10b57),
    (0x10b73, 0x10b77), (0x10b92, 0x10b98), (0x10b9d, 0x10ba8), (0x10bb0, 0x10bff), (0x10c49, 0x10c7f),
    (0x10cb3, 0x10cbf), (0x10cf3, 0x10cf9), (0x10d28, 0x10d2f), (0x10d3a, 0x10e5f), (0x10e7f, 0x10e7f),
    (0x10eaa, 0x10eaa), (0x10eae, 0x10eaf), (0x10eb2, 0x10eff), (0x10f28, 0x10f2f), (0x10f5a, 0x10f6f),
    (0x10f8a, 0x10faf), (0x10fcc, 0x10fdf), (0x10ff7, 0x10fff), (0x1104e, 0x11051), (0x11076, 0x1107e),
    (0x110bd, 0x110bd), (0x110c3, 0x110cf), (0x110e9, 0x110ef), (0x110fa, 0x110ff), (0x11135, 0x11135),
    (0x11148, 0x1114f), (0x11177, 0x1117f), (0x111e0, 0x111e0), (0x111f5, 0x111ff), (0x11212, 0x11212),
    (0x1123f, 0x1127f), (0x11287, 0x11287), (0x11289, 0x11289), (0x1128e, 0x1128e), (0x1129e, 0x1129e),
    (0x112aa, 0x112af), (0x112eb, 0x112ef), (0x112fa, 0x112ff), (0x11304, 0x11304), (0x1130d, 0x1130e),
    (0x11311, 0x11312), (0x11329, 0x11329), (0x11331, 0x11331), (0x11334, 0x11334), (0x1133a, 0x1133a),
    (0x11345, 0x11346), (0x11349, 0x1134a), (0x1134e, 0x1134f), (0x11351, 0x11356), (0x11358, 0x1135c),
    (0x11364, 0x11365), (0x1136d, 0x1136f), (0x11375, 0x113ff), (0x1145c, 0x1145c), (0x11462, 0x1147f),
    (0x114c8, 0x114cf), (0x114da, 0x1157f), (0x115b6, 0x115b7), (0x115de, 0x115ff), (0x11645, 0x1164f),
    (0x1165a, 0x1165f), (0x1166d, 0x1167f), (0x116ba, 0x116bf), (0x116ca, 0x116ff), (0x1171b, 0x1171c),
    (0x1172c, 0x1172f), (0x11747, 0x117ff), (0x1183c, 0x1189f), (0x118f3, 0x118fe), (0x11907, 0x11908),
    (0x1190a, 0x1190b), (0x11914, 0x11914), (0x11917, 0x11917), (0x11936, 0x11936), (0x11939, 0x1193a),
    (0x11947, 0x1194f), (0x1195a, 0x1199f), (0x119a8, 0x119a9), (0x119d8, 0x119d9), (0x119e5, 0x119ff),
    (0x11a48, 0x11a4f), (0x11aa3, 0x11aaf), (0x11af9, 0x11bff), (0x11c09, 0x11c09), (0x11c37, 0x11c37),
    (0x11c46, 0x11c4f), (0x11c6d, 0x11c6f), (0x11c90, 0x11c91), (0x11ca8, 0x11ca8), (0x11cb7, 0x11cff),
    (0x11d07, 0x11d07), (0x11d0a, 0x11d0a), (0x11d37, 0x11d39), (0x11d3b, 0x11d3b), (0x11d3e, 0x11d3e),
    (0x11d48, 0x11d4f), (0x11d5a, 0x11d5f), (0x11d66, 0x11d66), (0x11d69, 0x11d69), (0x11d8f, 0x11d8f),
    (0x11d92, 0x11d92), (0x11d99, 0x11d9f), (0x11daa, 0x11edf), (0x11ef9, 0x11faf), (0x11fb1, 0x11fbf),
    (0x11ff2, 0x11ffe), (0x1239a, 0x123ff), (0x1246f, 0x1246f), (0x12475, 0x1247f), (0x12544, 0x12f8f),
    (0x12ff3, 0x12fff), (0x1342f, 0x143ff), (0x14647, 0x167ff), (0x16a39, 0x16a3f), (0x16a5f, 0x16a5f),
    (0x16a6a, 0x16a6d), (0x16abf, 0x16abf), (0x16aca, 0x16acf), (0x16aee, 0x16aef), (0x16af6, 0x16aff),
    (0x16b46, 0x16b4f), (0x16b5a, 0x16b5a), (0x16b62, 0x16b62), (0x16b78, 0x16b7c), (0x16b90, 0x16e3f),
    (0x16e9b, 0x16eff), (0x16f4b, 0x16f4e), (0x16f88, 0x16f8e), (0x16fa0, 0x16fdf), (0x16fe5, 0x16fef),
    (0x16ff2, 0x16fff), (0x187f8, 0x187ff), (0x18cd6, 0x18cff), (0x18d09, 0x1afef), (0x1aff4, 0x1aff4),
    (0x1affc, 0x1affc), (0x1afff, 0x1afff), (0x1b123, 0x1b14f), (0x1b153, 0x1b163), (0x1b168, 0x1b16f),
    (0x1b2fc, 0x1bbff), (0x1bc6b, 0x1bc6f), (0x1bc7d, 0x1bc7f), (0x1bc89, 0x1bc8f), (0x1bc9a, 0x1bc9b),
    (0x1bca0, 0x1ceff), (0x1cf2e, 0x1cf2f), (0x1cf47, 0x1cf4f), (0x1cfc4, 0x1cfff), (0x1d0f6, 0x1d0ff),
    (0x1d127, 0x1d128), (0x1d173, 0x1d17a), (0x1d1eb, 0x1d1ff), (0x1d246, 0x1d2df), (0x1d2f4, 0x1d2ff),
    (0x1d357, 0x1d35f), (0x1d379, 0x1d3ff), (0x1d455, 0x1d455), (0x1d49d, 0x1d49d), (0x1d4a0, 0x1d4a1),
    (0x1d4a3, 0x1d4a4), (0x1d4a7, 0x1d4a8), (0x1d4ad, 0x1d4ad), (0x1d4ba, 0x1d4ba), (0x1d4bc, 0x1d4bc),
    (0x1d4c4, 0x1d4c4), (0x1d506, 0x1d506), (0x1d50b, 0x1d50c), (0x1d515, 0x1d515), (0x1d51d, 0x1d51d),
    (0x1d53a, 0x1d53a), (0x1d53f, 0x1d53f), (0x1d545, 0x1d545), (0x1d547, 0x1d549), (0x1d551, 0x1d551),
    (0x1d6a6, 0x1d6a7), (0x1d7cc, 0x1d7cd), (0x1da8c, 0x1da9a), (0x1daa0, 0x1daa0), (0x1dab0, 0x1deff),
    (0x1df1f, 0x1dfff), (0x1e007, 0x1e007), (0x1e019, 0x1e01a), (0x1e022, 0x1e022), (0x1e025, 0x1e025),
    (0x1e02b, 0x1e0ff), (0x1e12d, 0x1e12f), (0x1e13e, 0x1e13f), (0x1e14a, 0x1e14d), (0x1e150, 0x1e28f),
    (0x1e2af, 0x1e2bf), (0x1e2fa, 0x1e2fe), (0x1e300, 0x1e7df), (0x1e7e7, 0x1e7e7), (0x1e7ec, 0x1e7ec),
    (0x1e7ef, 0x1e7ef), (0x1e7ff, 0x1e7ff), (0x1e8c5, 0x1e8c6), (0x1e8d7, 0x1e8ff), (0x1e94c, 0x1e94f),
    (0x1e95a, 0x1e95d), (0x1e960, 0x1ec70), (0x1ecb5, 0x1ed00), (0x1ed3e, 0x1edff), (0x1ee04, 0x1ee04),
    (0x1ee20, 0x1ee20), (0x1ee23, 0x1ee23), (0x1ee25, 0x1ee26), (0x1ee28, 0x1ee28), (0x1ee33, 0x1ee33),
    (0x1ee38, 0x1ee38), (0x1ee3a, 0x1ee3a), (0x1ee3c, 0x1ee41), (0x1ee43, 0x1ee46), (0x1ee48, 0x1ee48),
    (0x1ee4a, 0x1ee4a), (0x1ee4c, 0x1ee4c), (0x1ee50, 0x1ee50), (0x1ee53, 0x1ee53), (0x1ee55, 0x1ee56),
    (0x1ee58, 0x1ee58), (0x1ee5a, 0x1ee5a), (0x1ee5c, 0x1ee5c), (0x1ee5e, 0x1ee5e), (0x1ee60, 0x1ee60),
    (0x1ee63, 0x1ee63), (0x1ee65, 0x1ee66), (0x1ee6b, 0x1ee6b), (0x1ee73, 0x1ee73), (0x1ee78, 0x1ee78),
    (0x1ee7d, 0x1ee7d), (0x1ee7f, 0x1ee7f), (0x1ee8a, 0x1ee8a), (0x1ee9c, 0x1eea0), (0x1eea4, 0x1eea4),
    (0x1eeaa, 0x1eeaa), (0x1eebc, 0x1eeef), (0x1eef2, 0x1efff), (0x1f02c, 0x1f02f), (0x1f094, 0x1f09f),
    (0x1f0af, 0x1f0b0), (0x1f0c0, 0x1f0c0), (0x1f0d0, 0x1f0d0), (0x1f0f6, 0x1f0ff), (0x1f1ae, 0x1f1e5),
    (0x1f203, 0x1f20f), (0x1f23c, 0x1f23f), (0x1f249, 0x1f24f), (0x1f252, 0x1f25f), (0x1f266, 0x1f2ff),
    (0x1f6d8, 0x1f6dc), (0x1f6ed, 0x1f6ef), (0x1f6fd, 0x1f6ff), (0x1f774, 0x1f77f), (0x1f7d9, 0x1f7df),
    (0x1f7ec, 0x1f7ef), (0x1f7f1, 0x1f7ff), (0x1f80c, 0x1f80f), (0x1f848, 0x1f84f), (0x1f85a, 0x1f85f),
    (0x1f888, 0x1f88f), (0x1f8ae, 0x1f8af), (0x1f8b2, 0x1f8ff), (0x1fa54, 0x1fa5f), (0x1fa6e, 0x1fa6f),
    (0x1fa75, 0x1fa77), (0x1fa7d, 0x1fa7f), (0x1fa87, 0x1fa8f), (0x1faad, 0x1faaf), (0x1fabb, 0x1fabf),
    (0x1fac6, 0x1facf), (0x1fada, 0x1fadf), (0x1fae8, 0x1faef), (0x1faf7, 0x1faff), (0x1fb93, 0x1fb93),
    (0x1fbcb, 0x1fbef), (0x1fbfa, 0x1ffff), (0x2a6e0, 0x2a6ff), (0x2b739, 0x2b73f), (0x2b81e, 0x2b81f),
    (0x2cea2, 0x2ceaf), (0x2ebe1, 0x2f7ff), (0x2fa1e, 0x2ffff), (0x3134b, 0xe00ff), (0xe01f0, 0x10ffff),
];

macro_rules! from_int {
    ($($t:ty),*) => {$(
        /// An `int`.
        impl From<$t> for Obj {
            fn from(v: $t) -> Obj {
                Obj::Int(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

macro_rules! try_from_int {
    ($($t:ty),*) => {$(
        /// An `int`, or [`Error::InvalidState`] when the value does not fit in an
        /// `i64` (Python's ints are unbounded; this type's are not).
        impl TryFrom<$t> for Obj {
            type Error = Error;
            fn try_from(v: $t) -> Result<Obj> {
                i64::try_from(v).map(Obj::Int).map_err(|_| {
                    Error::InvalidState(format!(
                        "int too large to convert to Obj::Int (an i64): {v}"
                    ))
                })
            }
        }
    )*};
}
try_from_int!(u64, usize, isize, i128, u128);

/// A `bool`.
impl From<bool> for Obj {
    fn from(v: bool) -> Obj {
        Obj::Bool(v)
    }
}

/// A `float` (an `f32` is widened exactly: `0.1f32` prints as
/// `0.10000000149011612`, as Python prints a C float it reads).
impl From<f32> for Obj {
    fn from(v: f32) -> Obj {
        Obj::Float(f64::from(v))
    }
}

/// A `float`.
impl From<f64> for Obj {
    fn from(v: f64) -> Obj {
        Obj::Float(v)
    }
}

/// A `str` of one character.
impl From<char> for Obj {
    fn from(v: char) -> Obj {
        Obj::Str(v.to_string())
    }
}

/// A `str`.
impl From<&str> for Obj {
    fn from(v: &str) -> Obj {
        Obj::Str(v.to_owned())
    }
}

/// A `str`.
impl From<String> for Obj {
    fn from(v: String) -> Obj {
        Obj::Str(v)
    }
}

/// A `str`.
impl From<&String> for Obj {
    fn from(v: &String) -> Obj {
        Obj::Str(v.clone())
    }
}

/// A clone.
impl From<&Obj> for Obj {
    fn from(v: &Obj) -> Obj {
        v.clone()
    }
}

/// `None` for `None`, else the value.
impl<T: Into<Obj>> From<Option<T>> for Obj {
    fn from(v: Option<T>) -> Obj {
        v.map_or(Obj::None, Into::into)
    }
}

/// A `list` (a `Vec<u8>` too: a list of ints; use [`Obj::bytes`] for `bytes`).
impl<T: Into<Obj>> From<Vec<T>> for Obj {
    fn from(v: Vec<T>) -> Obj {
        Obj::List(v.into_iter().map(Into::into).collect())
    }
}

/// A `list` of clones of the items (a `&[u8]` too: a list of ints).
impl<T: Clone + Into<Obj>> From<&[T]> for Obj {
    fn from(v: &[T]) -> Obj {
        Obj::List(v.iter().cloned().map(Into::into).collect())
    }
}

/// A `list`.
impl<T: Into<Obj>, const N: usize> From<[T; N]> for Obj {
    fn from(v: [T; N]) -> Obj {
        Obj::List(v.into_iter().map(Into::into).collect())
    }
}

/// A `dict`, in the map's (sorted) order.
impl<K: Into<Obj>, V: Into<Obj>> From<BTreeMap<K, V>> for Obj {
    fn from(v: BTreeMap<K, V>) -> Obj {
        Obj::Dict(v.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// A `dict`, in the map's iteration order (which a `HashMap` does not fix: use a
/// `BTreeMap` or [`Obj::dict`] when the printed order matters).
impl<K: Into<Obj>, V: Into<Obj>, S> From<HashMap<K, V, S>> for Obj {
    fn from(v: HashMap<K, V, S>) -> Obj {
        Obj::Dict(v.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// A `list` of the items (Python: `list(iterable)`).
impl<T: Into<Obj>> FromIterator<T> for Obj {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Obj {
        Obj::list(iter)
    }
}

macro_rules! from_tuple {
    ($(($($name:ident),+)),*) => {$(
        /// A `tuple`.
        impl<$($name: Into<Obj>),+> From<($($name,)+)> for Obj {
            #[allow(non_snake_case)]
            fn from(($($name,)+): ($($name,)+)) -> Obj {
                Obj::Tuple(vec![$($name.into()),+])
            }
        }
    )*};
}
from_tuple!((A), (A, B), (A, B, C), (A, B, C, D));

// Taking values out. The error is `Error::InvalidState`: Python raises a
// `TypeError` here, and `InvalidState` is the variant for Python's errors about an
// unsuitable value (`ValueError`, `AssertionError`). `Error::Codec` is kept for
// bytes that cannot be decoded at all, so a caller can tell a broken connection
// from a well-formed value of another type than expected.

/// The value of an `int` (not a `bool`); else [`Error::InvalidState`] saying
/// `expected int, got str`. (`InvalidState`, not `Codec`: the value arrived intact
/// and is just of another type, Python's `TypeError`.)
impl TryFrom<Obj> for i64 {
    type Error = Error;
    fn try_from(obj: Obj) -> Result<i64> {
        obj.as_int().ok_or_else(|| type_error("int", &obj))
    }
}

/// The value of a `float` or an `int` (Python takes an `int` where a `float` is
/// expected); else [`Error::InvalidState`] saying `expected float, got str`.
impl TryFrom<Obj> for f64 {
    type Error = Error;
    fn try_from(obj: Obj) -> Result<f64> {
        obj.as_float().ok_or_else(|| type_error("float", &obj))
    }
}

/// The value of a `bool`; else [`Error::InvalidState`] saying
/// `expected bool, got int` (use [`Obj::is_truthy`] for Python's `bool(x)`).
impl TryFrom<Obj> for bool {
    type Error = Error;
    fn try_from(obj: Obj) -> Result<bool> {
        obj.as_bool().ok_or_else(|| type_error("bool", &obj))
    }
}

/// The text of a `str`; else [`Error::InvalidState`] saying
/// `expected str, got bytes`.
impl TryFrom<Obj> for String {
    type Error = Error;
    fn try_from(obj: Obj) -> Result<String> {
        match obj {
            Obj::Str(s) => Ok(s),
            other => Err(type_error("str", &other)),
        }
    }
}

/// The items of a `list` or a `tuple`; else [`Error::InvalidState`] saying
/// `expected list, got dict`.
impl TryFrom<Obj> for Vec<Obj> {
    type Error = Error;
    fn try_from(obj: Obj) -> Result<Vec<Obj>> {
        match obj {
            Obj::List(items) | Obj::Tuple(items) => Ok(items),
            other => Err(type_error("list", &other)),
        }
    }
}

// Serde. The format is an enum with a unit variant for `None` and a newtype variant
// for each other type, as `#[derive(Serialize)]` writes it (with `Bytes` as serde
// bytes), written by hand to count the depth.
// Decoding is hand-written too: bincode cannot `deserialize_any`, recursion must be
// bounded, and strings and bytes are read borrowed (bincode then checks that the
// claimed length is present before anything is allocated, where reading an owned
// `String` would allocate the claimed length first).

const NAME: &str = "Obj";
const VARIANTS: &[&str] = &[
    "None", "Bool", "Int", "Float", "Str", "Bytes", "List", "Tuple", "Dict",
];
/// The most a length prefix may make a decoder reserve before the items arrive.
const PREALLOC_BYTES: usize = 4096;

fn too_deep() -> String {
    format!("Obj nested deeper than {MAX_DEPTH} levels")
}

/// Encodes in serde's data model as `#[derive(Serialize)]` would, refusing values
/// nested deeper than [`MAX_DEPTH`].
impl Serialize for Obj {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Nested {
            obj: self,
            depth: 0,
        }
        .serialize(s)
    }
}

/// An `Obj` inside `depth` containers.
struct Nested<'a> {
    obj: &'a Obj,
    depth: usize,
}

impl Serialize for Nested<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let inner = self.depth + 1;
        if matches!(self.obj, Obj::List(_) | Obj::Tuple(_) | Obj::Dict(_)) && inner > MAX_DEPTH {
            return Err(ser::Error::custom(too_deep()));
        }
        match self.obj {
            Obj::None => s.serialize_unit_variant(NAME, 0, VARIANTS[0]),
            Obj::Bool(b) => s.serialize_newtype_variant(NAME, 1, VARIANTS[1], b),
            Obj::Int(i) => s.serialize_newtype_variant(NAME, 2, VARIANTS[2], i),
            Obj::Float(x) => s.serialize_newtype_variant(NAME, 3, VARIANTS[3], x),
            Obj::Str(text) => s.serialize_newtype_variant(NAME, 4, VARIANTS[4], text.as_str()),
            Obj::Bytes(b) => s.serialize_newtype_variant(NAME, 5, VARIANTS[5], &RawBytes(b)),
            Obj::List(items) => {
                let items = Items {
                    items,
                    depth: inner,
                };
                s.serialize_newtype_variant(NAME, 6, VARIANTS[6], &items)
            }
            Obj::Tuple(items) => {
                let items = Items {
                    items,
                    depth: inner,
                };
                s.serialize_newtype_variant(NAME, 7, VARIANTS[7], &items)
            }
            Obj::Dict(items) => {
                let items = Pairs {
                    items,
                    depth: inner,
                };
                s.serialize_newtype_variant(NAME, 8, VARIANTS[8], &items)
            }
        }
    }
}

struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

struct Items<'a> {
    items: &'a [Obj],
    depth: usize,
}

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.items.len()))?;
        for obj in self.items {
            seq.serialize_element(&Nested {
                obj,
                depth: self.depth,
            })?;
        }
        seq.end()
    }
}

struct Pairs<'a> {
    items: &'a [(Obj, Obj)],
    depth: usize,
}

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.items.len()))?;
        for (k, v) in self.items {
            seq.serialize_element(&Pair {
                k,
                v,
                depth: self.depth,
            })?;
        }
        seq.end()
    }
}

struct Pair<'a> {
    k: &'a Obj,
    v: &'a Obj,
    depth: usize,
}

impl Serialize for Pair<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut tuple = s.serialize_tuple(2)?;
        tuple.serialize_element(&Nested {
            obj: self.k,
            depth: self.depth,
        })?;
        tuple.serialize_element(&Nested {
            obj: self.v,
            depth: self.depth,
        })?;
        tuple.end()
    }
}

/// Decodes what [`Serialize`] wrote, from untrusted input: deeper nesting than
/// [`MAX_DEPTH`] is an error, not a stack overflow, and length prefixes reserve
/// little memory before the items are actually there.
impl<'de> Deserialize<'de> for Obj {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Obj, D::Error> {
        ObjSeed { depth: 0 }.deserialize(d)
    }
}

/// Deserializes an `Obj` inside `depth` containers.
#[derive(Clone, Copy)]
struct ObjSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ObjSeed {
    type Value = Obj;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Obj, D::Error> {
        d.deserialize_enum(NAME, VARIANTS, self)
    }
}

impl<'de> Visitor<'de> for ObjSeed {
    type Value = Obj;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an Obj")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Obj, A::Error> {
        let (tag, variant) = data.variant::<Tag>()?;
        let inner = self.depth + 1;
        if matches!(tag, Tag::List | Tag::Tuple | Tag::Dict) && inner > MAX_DEPTH {
            return Err(de::Error::custom(too_deep()));
        }
        Ok(match tag {
            Tag::None => {
                variant.unit_variant()?;
                Obj::None
            }
            Tag::Bool => Obj::Bool(variant.newtype_variant()?),
            Tag::Int => Obj::Int(variant.newtype_variant()?),
            Tag::Float => Obj::Float(variant.newtype_variant()?),
            Tag::Str => Obj::Str(variant.newtype_variant_seed(StrSeed)?),
            Tag::Bytes => Obj::Bytes(variant.newtype_variant_seed(BytesSeed)?),
            Tag::List => Obj::List(variant.newtype_variant_seed(ItemsSeed { depth: inner })?),
            Tag::Tuple => Obj::Tuple(variant.newtype_variant_seed(ItemsSeed { depth: inner })?),
            Tag::Dict => Obj::Dict(variant.newtype_variant_seed(PairsSeed { depth: inner })?),
        })
    }
}

/// The variant of an encoded `Obj`, by index (bincode) or name.
#[derive(Clone, Copy)]
enum Tag {
    None,
    Bool,
    Int,
    Float,
    Str,
    Bytes,
    List,
    Tuple,
    Dict,
}

const TAGS: [Tag; 9] = [
    Tag::None,
    Tag::Bool,
    Tag::Int,
    Tag::Float,
    Tag::Str,
    Tag::Bytes,
    Tag::List,
    Tag::Tuple,
    Tag::Dict,
];

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tag, D::Error> {
        d.deserialize_identifier(TagVisitor)
    }
}

struct TagVisitor;

impl Visitor<'_> for TagVisitor {
    type Value = Tag;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an Obj variant")
    }

    fn visit_u64<E: de::Error>(self, index: u64) -> Result<Tag, E> {
        usize::try_from(index)
            .ok()
            .and_then(|i| TAGS.get(i).copied())
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(index), &self))
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Tag, E> {
        VARIANTS
            .iter()
            .position(|v| *v == name)
            .map(|i| TAGS[i])
            .ok_or_else(|| E::unknown_variant(name, VARIANTS))
    }

    fn visit_bytes<E: de::Error>(self, name: &[u8]) -> Result<Tag, E> {
        match std::str::from_utf8(name) {
            Ok(name) => self.visit_str(name),
            Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(name), &self)),
        }
    }
}

/// How many items of type `T` to reserve for a sequence that claims `hint` of them.
fn cautious<T>(hint: Option<usize>) -> usize {
    hint.unwrap_or(0)
        .min(PREALLOC_BYTES / std::mem::size_of::<T>().max(1))
}

struct StrSeed;

impl<'de> DeserializeSeed<'de> for StrSeed {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for StrSeed {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

struct BytesSeed;

impl<'de> DeserializeSeed<'de> for BytesSeed {
    type Value = Vec<u8>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for BytesSeed {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(cautious::<u8>(seq.size_hint()));
        while let Some(b) = seq.next_element()? {
            out.push(b);
        }
        Ok(out)
    }
}

/// The items of a list or tuple at `depth`.
struct ItemsSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed {
    type Value = Vec<Obj>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Obj>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed {
    type Value = Vec<Obj>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of Obj")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Obj>, A::Error> {
        let mut out = Vec::with_capacity(cautious::<Obj>(seq.size_hint()));
        let item = ObjSeed { depth: self.depth };
        while let Some(obj) = seq.next_element_seed(item)? {
            out.push(obj);
        }
        Ok(out)
    }
}

/// The items of a dict at `depth`.
struct PairsSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for PairsSeed {
    type Value = Vec<(Obj, Obj)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for PairsSeed {
    type Value = Vec<(Obj, Obj)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of (Obj, Obj) pairs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(cautious::<(Obj, Obj)>(seq.size_hint()));
        let pair = PairSeed { depth: self.depth };
        while let Some(kv) = seq.next_element_seed(pair)? {
            out.push(kv);
        }
        Ok(out)
    }
}

/// One `(key, value)` pair of a dict at `depth`.
#[derive(Clone, Copy)]
struct PairSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for PairSeed {
    type Value = (Obj, Obj);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(Obj, Obj), D::Error> {
        d.deserialize_tuple(2, self)
    }
}

impl<'de> Visitor<'de> for PairSeed {
    type Value = (Obj, Obj);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a (key, value) pair")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(Obj, Obj), A::Error> {
        let item = ObjSeed { depth: self.depth };
        let k = seq
            .next_element_seed(item)?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let v = seq
            .next_element_seed(item)?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok((k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reduction::{decode, encode};

    fn repr(obj: impl Into<Obj>) -> String {
        obj.into().to_string()
    }

    // Expected strings below were checked against CPython 3.11.7's `repr`.

    #[test]
    fn scalars_print_as_python_does() {
        assert_eq!(repr(Obj::None), "None");
        assert_eq!(repr(true), "True");
        assert_eq!(repr(false), "False");
        assert_eq!(repr(0), "0");
        assert_eq!(repr(-7), "-7");
        assert_eq!(repr(i64::MAX), "9223372036854775807");
        assert_eq!(repr(i64::MIN), "-9223372036854775808");
    }

    #[test]
    fn floats_print_as_python_does() {
        let cases: &[(f64, &str)] = &[
            (10.0, "10.0"),
            (10.78, "10.78"),
            (1e16, "1e+16"),
            (1e-5, "1e-05"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (-f64::NAN, "nan"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (0.1, "0.1"),
            (1e15, "1000000000000000.0"),
            (123456789012345.67, "123456789012345.67"),
            (9999999999999998.0, "9999999999999998.0"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (1.5e-5, "1.5e-05"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (1.0 / 3.0, "0.3333333333333333"),
            (-2.5, "-2.5"),
            (1e22, "1e+22"),
            (1e100, "1e+100"),
            (100.0, "100.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            // Ties between two shortest candidates go to the even digit.
            (2f64.powi(-25), "2.9802322387695312e-08"),
            (2f64.powi(50) + 0.25, "1125899906842624.2"),
        ];
        for &(x, want) in cases {
            assert_eq!(repr(x), want, "{x:?}");
        }
        assert_eq!(repr(0.1f32), "0.10000000149011612");
    }

    #[test]
    fn strings_print_as_python_does() {
        let cases: &[(&str, &str)] = &[
            ("", "''"),
            ("abc", "'abc'"),
            ("it's", r#""it's""#),
            (r#"say "hi""#, r#"'say "hi"'"#),
            (r#"both ' and ""#, r#"'both \' and "'"#),
            (r"back\slash", r"'back\\slash'"),
            ("tab\tnl\nr\r", r"'tab\tnl\nr\r'"),
            ("\x00\x07\x1b\x7f", r"'\x00\x07\x1b\x7f'"),
            ("张三", "'张三'"),
            ("é", "'é'"),
            ("\u{80}\u{9f}\u{a0}\u{ad}\u{ff}", r"'\x80\x9f\xa0\xadÿ'"),
            ("\u{200b}", r"'\u200b'"),
            ("\u{2028}", r"'\u2028'"),
            ("\u{feff}", r"'\ufeff'"),
            ("\u{1F600}", "'\u{1F600}'"),
            ("\u{E0001}", r"'\U000e0001'"),
            ("\u{e000}", r"'\ue000'"),
            ("\u{10FFFF}", r"'\U0010ffff'"),
            ("\u{378}", r"'\u0378'"),
            ("\u{3000}", r"'\u3000'"),
            ("a\u{301}", "'a\u{301}'"),
        ];
        for &(s, want) in cases {
            assert_eq!(repr(s), want, "{s:?}");
        }
        assert_eq!(repr('x'), "'x'");
    }

    #[test]
    fn bytes_print_as_python_does() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "b''"),
            (b"abc", "b'abc'"),
            (b"it's", r#"b"it's""#),
            (b"\"", r#"b'"'"#),
            (b"'\"", r#"b'\'"'"#),
            (b"\\", r"b'\\'"),
            (b"\t\n\r", r"b'\t\n\r'"),
            (b"\x00\x7f\x80\xff", r"b'\x00\x7f\x80\xff'"),
        ];
        for &(b, want) in cases {
            assert_eq!(repr(Obj::bytes(b)), want, "{b:?}");
        }
    }

    #[test]
    fn containers_print_as_python_does() {
        assert_eq!(repr(Obj::List(vec![])), "[]");
        assert_eq!(repr(Obj::list([Obj::from(1), Obj::from("a")])), "[1, 'a']");
        assert_eq!(repr(Obj::Tuple(vec![])), "()");
        assert_eq!(repr((1,)), "(1,)");
        assert_eq!(repr((1, 2)), "(1, 2)");
        assert_eq!(repr(Obj::Dict(vec![])), "{}");
        let d = Obj::dict([("id", Obj::from(54321)), ("name", Obj::from("python"))]);
        assert_eq!(repr(d), "{'id': 54321, 'name': 'python'}");
        assert_eq!(repr(vec!["张三", "李四"]), "['张三', '李四']");
        let nested = Obj::list([
            Obj::List(vec![]),
            Obj::list([Obj::List(vec![])]),
            Obj::Tuple(vec![]),
        ]);
        assert_eq!(repr(nested), "[[], [[]], ()]");
        let d = Obj::dict([
            (Obj::from((1, 2)), Obj::list([Obj::None, Obj::from(1e16)])),
            (Obj::from("k"), Obj::dict([("n", Obj::bytes(*b"x"))])),
        ]);
        assert_eq!(repr(d), "{(1, 2): [None, 1e+16], 'k': {'n': b'x'}}");
        assert_eq!(repr((Obj::Tuple(vec![]),)), "((),)");
        assert_eq!(repr(vec![(1,)]), "[(1,)]");
    }

    #[test]
    fn conversions() {
        assert_eq!(Obj::from(3u8), Obj::Int(3));
        assert_eq!(Obj::from(-3i8), Obj::Int(-3));
        assert_eq!(Obj::from(u32::MAX), Obj::Int(4294967295));
        assert_eq!(Obj::from(2.5f32), Obj::Float(2.5));
        assert_eq!(Obj::from(String::from("s")), Obj::Str("s".into()));
        assert_eq!(Obj::from(&String::from("s")), Obj::Str("s".into()));
        assert_eq!(Obj::from('c'), Obj::Str("c".into()));
        // A Vec<u8> is a list of ints, as list(b'..') is; bytes need Obj::bytes.
        assert_eq!(repr(vec![1u8, 2]), "[1, 2]");
        assert_eq!(repr(&b"ab"[..]), "[97, 98]");
        assert_eq!(repr(Obj::bytes(vec![97u8])), "b'a'");
        assert_eq!(repr([1.5, 2.0]), "[1.5, 2.0]");
        assert_eq!(repr(&["a", "b"][..]), "['a', 'b']");
        assert_eq!(repr(None::<i32>), "None");
        assert_eq!(repr(Some("x")), "'x'");
        assert_eq!(repr((1, "a", 2.0, None::<i32>)), "(1, 'a', 2.0, None)");
        assert_eq!(repr(Obj::tuple(0..5)), "(0, 1, 2, 3, 4)");
        assert_eq!(repr((0..3).collect::<Obj>()), "[0, 1, 2]");
        let btree: BTreeMap<&str, Vec<i32>> = [("b", vec![2]), ("a", vec![])].into();
        assert_eq!(repr(btree), "{'a': [], 'b': [2]}");
        let hash: HashMap<i32, bool> = [(1, true)].into();
        assert_eq!(repr(hash), "{1: True}");
        assert_eq!(Obj::from(&Obj::Int(1)), Obj::Int(1));
        assert_eq!(Obj::default(), Obj::None);

        assert_eq!(Obj::try_from(5u64).unwrap(), Obj::Int(5));
        assert_eq!(Obj::try_from(-5isize).unwrap(), Obj::Int(-5));
        let err = Obj::try_from(u64::MAX).unwrap_err();
        assert!(matches!(err, Error::InvalidState(_)));
        assert_eq!(
            err.to_string(),
            "int too large to convert to Obj::Int (an i64): 18446744073709551615"
        );
        assert!(Obj::try_from(i128::MIN).is_err());
        assert!(Obj::try_from(usize::MAX).is_err());
    }

    #[test]
    fn taking_values_out() {
        assert_eq!(i64::try_from(Obj::from(7)).unwrap(), 7);
        assert_eq!(f64::try_from(Obj::from(7)).unwrap(), 7.0);
        assert_eq!(f64::try_from(Obj::from(0.5)).unwrap(), 0.5);
        assert!(bool::try_from(Obj::from(true)).unwrap());
        assert_eq!(String::try_from(Obj::from("s")).unwrap(), "s");
        assert_eq!(
            Vec::<Obj>::try_from(Obj::from((1, 2))).unwrap(),
            vec![Obj::Int(1), Obj::Int(2)]
        );
        assert_eq!(
            Vec::<Obj>::try_from(Obj::from(vec![3])).unwrap(),
            vec![Obj::Int(3)]
        );

        let err = i64::try_from(Obj::from("7")).unwrap_err();
        assert!(matches!(err, Error::InvalidState(_)));
        assert_eq!(err.to_string(), "expected int, got str");
        assert_eq!(
            i64::try_from(Obj::from(true)).unwrap_err().to_string(),
            "expected int, got bool"
        );
        assert_eq!(
            f64::try_from(Obj::None).unwrap_err().to_string(),
            "expected float, got NoneType"
        );
        assert_eq!(
            bool::try_from(Obj::from(1)).unwrap_err().to_string(),
            "expected bool, got int"
        );
        assert_eq!(
            String::try_from(Obj::bytes(*b"s")).unwrap_err().to_string(),
            "expected str, got bytes"
        );
        assert_eq!(
            Vec::<Obj>::try_from(Obj::dict([(1, 2)]))
                .unwrap_err()
                .to_string(),
            "expected list, got dict"
        );
    }

    #[test]
    fn accessors_and_type_names() {
        let all = [
            (Obj::None, "NoneType"),
            (Obj::from(true), "bool"),
            (Obj::from(1), "int"),
            (Obj::from(1.0), "float"),
            (Obj::from("s"), "str"),
            (Obj::bytes(*b"b"), "bytes"),
            (Obj::from(vec![1]), "list"),
            (Obj::from((1,)), "tuple"),
            (Obj::dict([(1, 1)]), "dict"),
        ];
        for (obj, name) in &all {
            assert_eq!(obj.type_name(), *name);
            assert_eq!(obj.is_truthy(), !obj.is_none(), "{obj}");
        }
        let falsy = [
            Obj::None,
            Obj::from(false),
            Obj::from(0),
            Obj::from(-0.0),
            Obj::from(""),
            Obj::bytes(Vec::new()),
            Obj::List(vec![]),
            Obj::Tuple(vec![]),
            Obj::Dict(vec![]),
        ];
        assert!(falsy.iter().all(|o| !o.is_truthy()));

        assert!(Obj::None.is_none() && !Obj::from(0).is_none());
        assert_eq!(Obj::from(true).as_bool(), Some(true));
        assert_eq!(Obj::from(1).as_bool(), None);
        assert_eq!(Obj::from(4).as_int(), Some(4));
        assert_eq!(Obj::from(true).as_int(), None);
        assert_eq!(Obj::from(4).as_float(), Some(4.0));
        assert_eq!(Obj::from(4.5).as_float(), Some(4.5));
        assert_eq!(Obj::from("s").as_float(), None);
        assert_eq!(Obj::from("s").as_str(), Some("s"));
        assert_eq!(Obj::bytes(*b"b").as_bytes(), Some(&b"b"[..]));
        assert_eq!(Obj::from(vec![1]).as_list(), Some(&[Obj::Int(1)][..]));
        assert_eq!(Obj::from((1,)).as_list(), None);
        assert_eq!(Obj::from((1,)).as_tuple(), Some(&[Obj::Int(1)][..]));
        assert_eq!(Obj::dict([(1, 2)]).as_dict().map(<[_]>::len), Some(1));

        assert_eq!(Obj::from("s").py_str(), "s");
        assert_eq!(Obj::from(vec!["s"]).py_str(), "['s']");
    }

    #[test]
    fn dict_helpers_follow_python_dicts() {
        let mut d = Obj::dict([(1, "a"), (2, "b"), (1, "c")]);
        assert_eq!(repr(d.clone()), "{1: 'c', 2: 'b'}");
        // 1 == 1.0 == True: the same key, which keeps its first spelling.
        assert_eq!(d.dict_get(&Obj::from(1.0)), Some(&Obj::from("c")));
        assert_eq!(d.dict_set(true, "t").unwrap(), Some(Obj::from("c")));
        assert_eq!(repr(d.clone()), "{1: 't', 2: 'b'}");
        assert_eq!(d.dict_set("new", Obj::None).unwrap(), None);
        assert_eq!(repr(d.clone()), "{1: 't', 2: 'b', 'new': None}");
        *d.dict_get_mut(&Obj::from(2)).unwrap() = Obj::from(20);
        assert_eq!(d.dict_remove(&Obj::from(1)), Some(Obj::from("t")));
        assert_eq!(d.dict_remove(&Obj::from(1)), None);
        assert_eq!(repr(d.clone()), "{2: 20, 'new': None}");
        assert_eq!(d.dict_get(&Obj::from("missing")), None);

        let err = d.dict_set(vec![1], 0).unwrap_err();
        assert_eq!(err.to_string(), "unhashable type: 'list'");
        let key = Obj::from((1, (2, Obj::Dict(vec![]))));
        assert_eq!(
            d.dict_set(key, 0).unwrap_err().to_string(),
            "unhashable type: 'dict'"
        );
        assert!(d.dict_set((1, (2, "x")), 0).is_ok());

        let mut not_a_dict = Obj::from(vec![1]);
        assert_eq!(
            not_a_dict.dict_set(1, 1).unwrap_err().to_string(),
            "expected dict, got list"
        );
        assert_eq!(not_a_dict.dict_get(&Obj::from(0)), None);
        assert_eq!(not_a_dict.dict_remove(&Obj::from(0)), None);
    }

    #[test]
    fn python_equality_and_ordering() {
        let one = [Obj::from(1), Obj::from(1.0), Obj::from(true)];
        for a in &one {
            for b in &one {
                assert!(a.py_eq(b), "{a} == {b}");
            }
        }
        // Derived PartialEq is structural, unlike Python.
        assert_ne!(Obj::from(1), Obj::from(1.0));
        assert!(!Obj::from(f64::NAN).py_eq(&Obj::from(f64::NAN)));
        assert!(Obj::from(0.0).py_eq(&Obj::from(-0.0)));
        // Exact int/float comparison: 2**53 + 1 != float(2**53).
        let big = (1i64 << 53) + 1;
        assert!(!Obj::from(big).py_eq(&Obj::from((1i64 << 53) as f64)));
        assert!(
            Obj::from((1i64 << 53) as f64)
                .py_lt(&Obj::from(big))
                .unwrap()
        );
        assert!(Obj::from(i64::MAX).py_lt(&Obj::from(9.3e18)).unwrap());
        assert!(!Obj::from(i64::MAX).py_eq(&Obj::from(i64::MAX as f64)));
        assert!(Obj::from(i64::MIN).py_eq(&Obj::from(i64::MIN as f64)));
        assert!(Obj::from(-2).py_lt(&Obj::from(-1.5)).unwrap());
        assert!(Obj::from(-1.5).py_lt(&Obj::from(-1)).unwrap());
        assert!(Obj::from(1).py_lt(&Obj::from(f64::INFINITY)).unwrap());
        assert!(!Obj::from(1).py_lt(&Obj::from(f64::NAN)).unwrap());
        assert!(!Obj::from("a").py_eq(&Obj::bytes(*b"a")));
        assert!(!Obj::from(vec![1]).py_eq(&Obj::from((1,))));
        assert!(Obj::from(vec![1, 2]).py_eq(&Obj::from(vec![1.0, 2.0])));
        let (d1, d2) = (Obj::dict([(1, 2), (3, 4)]), Obj::dict([(3, 4.0), (1, 2.0)]));
        assert!(d1.py_eq(&d2));
        assert_ne!(d1, d2);
        assert!(!d1.py_eq(&Obj::dict([(1, 2)])));

        assert!(Obj::from("a").py_lt(&Obj::from("b")).unwrap());
        assert!(Obj::from("z").py_lt(&Obj::from("é")).unwrap());
        assert!(Obj::from(vec![1, 2]).py_lt(&Obj::from(vec![1, 3])).unwrap());
        assert!(Obj::from(vec![1]).py_lt(&Obj::from(vec![1, 0])).unwrap());
        assert!(!Obj::from((2,)).py_lt(&Obj::from((1, 5))).unwrap());
        assert_eq!(
            Obj::from("a").py_lt(&Obj::from(1)).unwrap_err().to_string(),
            "'<' not supported between instances of 'str' and 'int'"
        );
        assert!(Obj::None.py_lt(&Obj::None).is_err());
        assert!(Obj::from(vec![1]).py_lt(&Obj::from((1,))).is_err());
        // Like Python: the first differing items decide, and they must be comparable.
        assert!(
            Obj::from(vec![Obj::from(1), Obj::from("a")])
                .py_lt(&Obj::from(vec![2, 0]))
                .unwrap()
        );
        assert!(
            Obj::from(vec![Obj::from("a")])
                .py_lt(&Obj::from(vec![0]))
                .is_err()
        );
    }

    /// Structural equality where NaN equals NaN with the same bits.
    fn same(a: &Obj, b: &Obj) -> bool {
        match (a, b) {
            (Obj::Float(x), Obj::Float(y)) => x.to_bits() == y.to_bits(),
            (Obj::List(a), Obj::List(b)) | (Obj::Tuple(a), Obj::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
            }
            (Obj::Dict(a), Obj::Dict(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((k, v), (l, w))| same(k, l) && same(v, w))
            }
            _ => a == b,
        }
    }

    fn nested(depth: usize) -> Obj {
        let mut obj = Obj::from(1);
        for i in 0..depth {
            obj = match i % 3 {
                0 => Obj::List(vec![obj]),
                1 => Obj::Tuple(vec![Obj::None, obj]),
                _ => Obj::Dict(vec![(Obj::from(i as i64), obj)]),
            };
        }
        obj
    }

    #[test]
    fn values_round_trip_through_the_codec() {
        let values = [
            Obj::None,
            Obj::from(true),
            Obj::from(i64::MIN),
            Obj::from(f64::NAN),
            Obj::from(-0.0),
            Obj::from(f64::NEG_INFINITY),
            Obj::from(""),
            Obj::from("张三 \u{1F600} \0 'q'"),
            Obj::bytes(Vec::new()),
            Obj::bytes((0..=255).collect::<Vec<u8>>()),
            Obj::List(vec![]),
            Obj::Tuple(vec![]),
            Obj::Dict(vec![]),
            Obj::from((1, (vec![Obj::from(f64::NAN)],), "x")),
            Obj::dict([
                (Obj::from("id"), Obj::from(54321)),
                (
                    Obj::from((1, 2)),
                    Obj::dict([(Obj::None, Obj::bytes(*b"\xff"))]),
                ),
            ]),
            nested(MAX_DEPTH),
        ];
        for value in &values {
            let bytes = encode(value).unwrap();
            let back: Obj = decode(&bytes).unwrap();
            assert!(same(value, &back), "{value} came back as {back}");
        }
        // Inside other types too.
        let bytes = encode(&(3u8, values.to_vec())).unwrap();
        let (n, back): (u8, Vec<Obj>) = decode(&bytes).unwrap();
        assert_eq!(n, 3);
        assert!(values.iter().zip(&back).all(|(a, b)| same(a, b)));
    }

    #[test]
    fn too_deep_values_are_refused_both_ways() {
        let err = encode(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert!(matches!(err, Error::Codec(_)), "{err}");
        assert!(err.to_string().contains("nested deeper than 256"), "{err}");

        // Hand-made: MAX_DEPTH + 1 lists of one item around None.
        let mut bytes = [6u8, 1].repeat(MAX_DEPTH + 1);
        bytes.push(0);
        let err = decode::<Obj>(&bytes).unwrap_err();
        assert!(err.to_string().contains("nested deeper than 256"), "{err}");
        // One level less is fine.
        let ok = decode::<Obj>(&bytes[2..]).unwrap();
        assert_eq!(ok.to_string().matches('[').count(), MAX_DEPTH);
    }

    #[test]
    fn a_mebibyte_of_list_tags_is_an_error_not_a_stack_overflow() {
        // Run on the stack std::thread::spawn gives by default (2 MiB), which
        // MAX_DEPTH levels fit in even unoptimized.
        let worker = std::thread::Builder::new().stack_size(2 << 20);
        let handle = worker
            .spawn(|| {
                // Lists of one list each, lists whose length is the tag itself,
                // tuples, and dicts whose values are dicts.
                for pattern in [&[6u8, 1][..], &[6], &[7, 1], &[8, 1, 0], &[8]] {
                    let bytes = pattern.repeat((1 << 20) / pattern.len());
                    let err = decode::<Obj>(&bytes).unwrap_err();
                    assert!(matches!(err, Error::Codec(_)), "{err}");
                }
            })
            .unwrap();
        handle.join().unwrap();
    }

    #[test]
    fn huge_length_prefixes_fail_without_allocating() {
        // A str, a bytes and a list claiming 2^39 items (under the codec's 1 TiB
        // limit), with nothing behind them.
        for tag in [4u8, 5, 6, 7, 8] {
            let mut bytes = vec![tag, 0xfd];
            bytes.extend_from_slice(&(1u64 << 39).to_le_bytes());
            assert!(matches!(decode::<Obj>(&bytes), Err(Error::Codec(_))));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let check = |bytes: &[u8]| {
            let result = decode::<Obj>(bytes);
            assert!(matches!(result, Ok(_) | Err(Error::Codec(_))), "{result:?}");
        };
        assert!(matches!(decode::<Obj>(&[]), Err(Error::Codec(_))));
        assert!(matches!(decode::<Obj>(&[9]), Err(Error::Codec(_))));
        assert!(matches!(
            decode::<Obj>(&[4, 2, 0xc3, 0x28]),
            Err(Error::Codec(_))
        ));
        for len in 0..48 {
            for _ in 0..200 {
                // Mostly small bytes, so that tags and lengths are often valid.
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        let r = next();
                        if r % 4 == 0 { r as u8 } else { (r % 10) as u8 }
                    })
                    .collect();
                check(&bytes);
            }
        }
        // Corrupted encodings of a real value.
        let value = Obj::from((
            "张三",
            vec![Obj::from(1.5), Obj::bytes(*b"xy"), Obj::None],
            Obj::dict([("k", -3)]),
        ));
        let good = encode(&value).unwrap();
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..(next() % 3 + 1) {
                let at = next() as usize % bytes.len();
                bytes[at] = next() as u8;
            }
            let cut = next() as usize % (bytes.len() + 1);
            check(&bytes);
            check(&bytes[..cut]);
        }
    }

    // Comparison with the real CPython.

    /// Asks `python3` for the `repr` of each expression; `None` (and the test is
    /// skipped) when there is no `python3` on PATH. Also returns Python's Unicode
    /// database version.
    fn python_reprs(exprs: &[String]) -> Option<(String, Vec<String>)> {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        const SCRIPT: &str = r#"
import struct, sys, unicodedata
def F(bits): return struct.unpack('<d', bits.to_bytes(8, 'little'))[0]
def S(hex): return bytes.fromhex(hex).decode('utf-8')
def R(a, b): return ''.join(chr(c) for c in range(a, b) if not 0xd800 <= c < 0xe000)
B = bytes.fromhex
sys.stdout.write(unicodedata.unidata_version + '\n')
for line in sys.stdin:
    sys.stdout.write(repr(eval(line)) + '\n')
"#;
        let spawned = Command::new("python3")
            .args(["-c", SCRIPT])
            .env("PYTHONIOENCODING", "utf-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("python3 is not on PATH: skipping the comparison with Python");
                return None;
            }
            Err(e) => panic!("cannot run python3: {e}"),
        };
        let mut stdin = child.stdin.take().unwrap();
        let input: String = exprs.iter().map(|e| format!("{e}\n")).collect();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(output.status.success(), "python3 failed");
        let text = String::from_utf8(output.stdout).unwrap();
        let mut lines = text.split('\n');
        let version = lines.next().unwrap().to_owned();
        let reprs: Vec<String> = lines.take(exprs.len()).map(str::to_owned).collect();
        assert_eq!(reprs.len(), exprs.len(), "python3 printed too few lines");
        Some((version, reprs))
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A Python expression that builds `obj` without relying on any `repr`.
    fn py_expr(obj: &Obj) -> String {
        let items = |items: &[Obj]| items.iter().map(py_expr).collect::<Vec<_>>().join(", ");
        match obj {
            Obj::None => "None".into(),
            Obj::Bool(b) => if *b { "True" } else { "False" }.into(),
            Obj::Int(i) => format!("({i})"),
            Obj::Float(x) => format!("F({})", x.to_bits()),
            Obj::Str(s) => format!("S('{}')", hex(s.as_bytes())),
            Obj::Bytes(b) => format!("B('{}')", hex(b)),
            Obj::List(v) => format!("[{}]", items(v)),
            Obj::Tuple(v) => format!("tuple([{}])", items(v)),
            Obj::Dict(v) => {
                let pairs: Vec<String> = v
                    .iter()
                    .map(|(k, v)| format!("({}, {})", py_expr(k), py_expr(v)))
                    .collect();
                format!("dict([{}])", pairs.join(", "))
            }
        }
    }

    /// Compares our `repr` with Python's for every value; `false` when skipped.
    fn compare_with_python(values: &[Obj], extra: &[(String, String)]) -> bool {
        let mut exprs: Vec<String> = values.iter().map(py_expr).collect();
        exprs.extend(extra.iter().map(|(expr, _)| expr.clone()));
        let Some((_, reprs)) = python_reprs(&exprs) else {
            return false;
        };
        let ours = values
            .iter()
            .map(Obj::to_string)
            .chain(extra.iter().map(|(_, ours)| ours.clone()));
        let wrong: Vec<String> = ours
            .zip(&reprs)
            .zip(&exprs)
            .filter(|((ours, theirs), _)| ours != *theirs)
            .map(|((ours, theirs), expr)| format!("{expr}: ours {ours} python {theirs}"))
            .collect();
        assert!(
            wrong.is_empty(),
            "{} of {} differ from Python:\n{}",
            wrong.len(),
            exprs.len(),
            wrong[..wrong.len().min(20)].join("\n")
        );
        true
    }

    fn tricky_floats() -> Vec<f64> {
        let mut xs = vec![
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            5e-324,
            2.225073858507201e-308,
            0.1,
            0.2,
            0.3,
            0.1 + 0.2,
            1.0 / 3.0,
            2.0 / 3.0,
            10.78,
            123_456_789.123_456_79,
            9007199254740992.0,
            9007199254740993.0,
            1e16,
            9999999999999998.0,
            1e15,
            999999999999999.9,
            0.0001,
            0.00009999999999999999,
            0.00001,
            1e23,
            8.41e21,
            5e-310,
            1.7976931348623157e308,
            4.35,
            0.035,
            2.675,
            1.005,
        ];
        // Powers of ten and two, and their neighbours.
        for e in -325..=310 {
            let x: f64 = format!("1e{e}").parse().unwrap();
            xs.extend([x, x.next_up(), x.next_down(), 5.0 * x, 1.5 * x]);
        }
        for e in -1075..=1024 {
            let x = 2f64.powi(e);
            xs.extend([x, x.next_up(), x.next_down()]);
        }
        // Random bit patterns, and random short decimals.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            xs.push(f64::from_bits(next()));
        }
        // Floats with few significant bits, where the exact decimal value often
        // ends in 5 just past the shortest digits: ties between two candidates.
        for e in -60..80 {
            for _ in 0..50 {
                let mantissa = (next() >> 11) | (1 << 52);
                xs.push(mantissa as f64 * 2f64.powi(e - 52));
            }
        }
        for _ in 0..20_000 {
            let digits = next() % 10u64.pow((next() % 18) as u32 + 1);
            let exp = (next() % 60) as i32 - 30;
            xs.push(format!("{digits}e{exp}").parse().unwrap());
            xs.push(-(digits as f64));
        }
        xs
    }

    #[test]
    fn floats_match_python() {
        let values: Vec<Obj> = tricky_floats().into_iter().map(Obj::Float).collect();
        compare_with_python(&values, &[]);
    }

    #[test]
    fn a_table_of_values_matches_python() {
        let strings = [
            "",
            "a",
            "'",
            "\"",
            "'\"",
            "it's",
            "say \"hi\"",
            "both ' and \"",
            "\\",
            "\\'",
            "\\\"",
            "\t\n\r\x0b\x0c",
            "\x00\x01\x1f\x7f",
            "张三",
            "李四",
            "héllo wörld",
            "\u{80}\u{85}\u{9f}\u{a0}\u{a1}\u{ad}\u{ff}",
            "\u{100}\u{37f}\u{378}",
            "\u{200b}\u{200d}\u{2028}\u{2029}\u{202e}\u{2060}\u{3000}\u{feff}\u{fffd}\u{ffff}",
            "\u{d7ff}\u{e000}\u{f8ff}\u{f900}",
            "\u{1F600}\u{1F468}\u{200D}\u{1F469}",
            "\u{E0001}\u{E0100}\u{F0000}\u{10FFFF}",
            "a\u{301}e\u{308}",
            "\u{1d11e}",
            "mixed 'quotes' and \\ and \n and 张",
        ];
        let mut values: Vec<Obj> = strings.iter().map(|&s| Obj::from(s)).collect();
        values.extend(strings.iter().map(|&s| Obj::bytes(s.as_bytes())));
        values.extend((0..=255u8).map(|b| Obj::bytes([b])));
        values.extend((0..=255u8).map(|b| Obj::bytes([b'\'', b])));
        values.extend((0..=255u8).map(|b| Obj::bytes([b'"', b'\'', b])));
        values.extend([
            Obj::None,
            Obj::from(true),
            Obj::from(false),
            Obj::from(0),
            Obj::from(-1),
            Obj::from(i64::MAX),
            Obj::from(i64::MIN),
            Obj::List(vec![]),
            Obj::Tuple(vec![]),
            Obj::Dict(vec![]),
            Obj::from((1,)),
            Obj::from((1, 2)),
            Obj::from((Obj::Tuple(vec![]),)),
            Obj::from(vec![Obj::Tuple(vec![])]),
            Obj::from(vec!["张三", "李四"]),
            Obj::dict([("id", Obj::from(54321)), ("name", Obj::from("python"))]),
            Obj::dict([
                (
                    Obj::from((1, "a", Obj::None)),
                    Obj::from(vec![1.5, f64::NAN]),
                ),
                (
                    Obj::bytes(*b"k"),
                    Obj::dict([(Obj::from(-0.0), Obj::from((true,)))]),
                ),
                (Obj::from(f64::INFINITY), Obj::List(vec![Obj::List(vec![])])),
            ]),
            nested(30),
        ]);
        compare_with_python(&values, &[]);
    }

    #[test]
    fn every_code_point_matches_python() {
        // Every Unicode scalar value, 256 to a string, printed by Python and by us.
        let mut extra = Vec::new();
        for start in (0..0x11_0000u32).step_by(256) {
            let s: String = (start..start + 256).filter_map(char::from_u32).collect();
            let ours = Obj::from(s).to_string();
            extra.push((format!("R({start}, {})", start + 256), ours));
        }
        let exprs: Vec<String> = vec!["0".into()];
        let Some((version, _)) = python_reprs(&exprs) else {
            return;
        };
        if version != "14.0.0" {
            // Other Pythons know other Unicode versions, whose printable sets differ.
            eprintln!("python3 has Unicode {version}, not 3.11's 14.0.0: skipping");
            return;
        }
        compare_with_python(&[], &extra);
    }
}
