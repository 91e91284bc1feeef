//! Starting a child by executing the program again (CPython:
//! `popen_spawn_posix.py`).
//!
//! The child is the current executable, started with `posix_spawn`; it reads its
//! bootstrap from a descriptor it inherits and runs the target before `main` (see
//! [`spawn`](crate::spawn)). It is a direct child, so it is waited for and signalled
//! exactly like a forked one: [`ForkPopen`].

use std::os::fd::{AsFd, BorrowedFd};

use super::fork::ForkPopen;
use crate::error::Result;
use crate::process::{ChildSetup, Prepared};
use crate::spawn::{self, ChildBoot, Role};

/// Spawns a child that runs `prepared` as the process described by `setup`.
pub(crate) fn launch(setup: ChildSetup, prepared: Prepared) -> Result<ForkPopen> {
    let (boot, fds) = ChildBoot::new(setup, prepared);
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    // Output the parent buffered comes before the child's, as under fork.
    crate::util::flush_std_streams();
    let pid = spawn::spawn_bootstrap(Role::Child(boot), &borrowed)?;
    // Our copies of the handles' descriptors close here: the child has its own.
    drop(fds);
    ForkPopen::new(pid)
}
