//! The thin unsafe layer: every system call that needs `unsafe` lives here.
//!
//! This is the Rust counterpart of the C half of CPython's `_multiprocessing` and of
//! the `os` functions `multiprocessing` calls. Like `rustix` and `nix`, each wrapper is
//! small, safe to call where it can be, and documents in a `// SAFETY:` comment why
//! its `unsafe` block is sound. Everything above this module is safe Rust; the crate
//! root denies `unsafe_code` everywhere else.
//!
//! Platform code stays here so that a port to another Unix touches only this folder.

#![allow(unsafe_code)]

pub mod atfork;
pub mod futex;
pub mod identity;
pub mod memfd;
pub mod pipe;
pub mod poll;
pub mod process;
pub(crate) mod scm;
pub(crate) mod shm;
pub mod socket;
pub(crate) mod spawn;
