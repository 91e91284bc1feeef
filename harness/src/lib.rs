//! The lesson harness (being written).
