//! `Obj`: a dynamic value whose `Display` is Python's `repr` (being written).

/// A dynamic value with Python's `repr` as its `Display` (placeholder).
#[derive(Clone, Debug, PartialEq)]
pub enum Obj {
    /// Python's `None`.
    None,
}
