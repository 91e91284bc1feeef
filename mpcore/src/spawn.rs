//! Starting a child by executing the program again, and the child's side of it
//! (CPython: `spawn.py`).
//!
//! # The bootstrap
//!
//! A spawned child (and the fork server, and each child the fork server forks) is
//! told who it is by a *bootstrap*: the bincode encoding of [`Bootstrap`], behind a
//! magic prefix. For a child it holds
//!
//! - the target, as the distance from an anchor function of mpcore to a
//!   monomorphised trampoline ([`target_entry`] or [`run_entry`]) that decodes the
//!   arguments and calls the target (ASLR moves the whole image, not the distance);
//! - the target's encoded arguments, whose handles refer by index to the descriptors
//!   passed with the bootstrap;
//! - the child's name, identity, daemon flag, parent and start method (`ChildSetup`);
//! - the parent's logger level, and whether it logs to stderr;
//! - the identity of the executable, so a child never jumps into another program.
//!
//! # How a re-executed program finds it
//!
//! The parent writes the bootstrap into a memfd and starts `/proc/self/exe` with
//! `posix_spawn`, passing that memfd as descriptor 3 and the handles' descriptors as
//! 4, 5, ... The environment variable `MPCORE_BOOTSTRAP_FD=3` tells the new program
//! that it is a child. An ELF constructor of mpcore (`sys::spawn`) checks that
//! variable before `main` runs, removes it, and runs the child there: the target
//! runs, and the process exits with `_exit`, so no code of `main` (nor of libtest's
//! generated `main`) ever runs in it. [`crate::init`] makes the same check, for
//! platforms where no constructor runs.

use std::ffi::{CString, OsStr};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::context::StartMethod;
use crate::error::{Error, Result};
use crate::forkserver::ServerBoot;
use crate::process::{self, ChildSetup, Prepared, Run, Target};
use crate::reduction;
use crate::sys::spawn::{self as sys_spawn, FIRST_PASSED_FD, ImageId};
use crate::util;

/// The environment variable naming the descriptor that holds a child's bootstrap.
pub const BOOTSTRAP_ENV: &str = "MPCORE_BOOTSTRAP_FD";

/// The first bytes of every bootstrap: a stale or foreign descriptor never passes.
const MAGIC: &[u8; 16] = b"mpcore-bootstrap";

/// Everything a re-executed program needs to become what its parent asked for.
#[derive(Serialize, Deserialize)]
pub(crate) struct Bootstrap {
    pub(crate) image: ImageId,
    /// How many descriptors follow the bootstrap's own.
    nfds: u32,
    pub(crate) role: Role,
}

/// What the new process is to be.
#[derive(Serialize, Deserialize)]
pub(crate) enum Role {
    /// A child process that runs a target.
    Child(ChildBoot),
    /// The fork server.
    Server(ServerBoot),
}

/// A child's bootstrap proper: who it is and what it runs.
#[derive(Serialize, Deserialize)]
pub(crate) struct ChildBoot {
    entry: i64,
    args: Vec<u8>,
    setup: ChildSetup,
    /// The parent's logger level and handler (fork children inherit them in memory).
    log: util::LogSetup,
}

impl ChildBoot {
    /// The bootstrap of a child that is `setup` and runs `prepared`; also returns the
    /// descriptors to pass with it.
    pub(crate) fn new(setup: ChildSetup, prepared: Prepared) -> (ChildBoot, Vec<OwnedFd>) {
        let boot = ChildBoot {
            entry: sys_spawn::entry_offset(prepared.entry),
            args: prepared.args,
            setup,
            log: util::LogSetup::current(),
        };
        (boot, prepared.fds)
    }
}

/// Encodes a bootstrap (with its magic prefix) for a process that will receive
/// `nfds` descriptors with it.
pub(crate) fn encode_bootstrap(role: Role, nfds: usize) -> Result<Vec<u8>> {
    let boot = Bootstrap {
        image: ImageId::current()?,
        nfds: u32::try_from(nfds).map_err(|_| Error::invalid("too many handles"))?,
        role,
    };
    let mut bytes = MAGIC.to_vec();
    reduction::encode_into(&boot, &mut bytes)?;
    Ok(bytes)
}

/// Decodes a bootstrap made by [`encode_bootstrap`]; `None` without the magic.
pub(crate) fn decode_bootstrap(bytes: &[u8]) -> Option<Result<Bootstrap>> {
    let body = bytes.strip_prefix(MAGIC.as_slice())?;
    Some(reduction::decode(body))
}

/// Runs a child from its bootstrap: becomes the process it describes, resolves the
/// entry point and runs the target with Python's exit-code rules. Never returns.
pub(crate) fn run_child_boot(image: &ImageId, boot: ChildBoot, fds: Vec<OwnedFd>) -> ! {
    let same = match sys_spawn::verify_image(image) {
        Ok(same) => same,
        Err(err) => fail(&format!("cannot start the child: {err}")),
    };
    let entry = sys_spawn::resolve_entry(boot.entry, &same);
    boot.log.apply();
    process::become_child(boot.setup);
    let args = boot.args;
    process::run_child(move || entry(&args, fds))
}

/// Reports a failure to start on stderr and exits with 1.
fn fail(message: &str) -> ! {
    let _ = std::io::stderr().write_all(format!("mpcore: {message}\n").as_bytes());
    sys_spawn::exit_now(1)
}

/// The trampoline of [`Process::new`](crate::Process::new) targets: decodes the
/// arguments and calls `F`, a zero-sized function item or capture-free closure that
/// the child conjures from its type.
pub(crate) fn target_entry<F: Target<A>, A>(args: &[u8], fds: Vec<OwnedFd>) {
    let Some(target) = sys_spawn::conjure_zero_sized::<F>() else {
        unreachable!("Process::new only sends zero-sized targets to a spawned child");
    };
    let args = F::decode_args(args, fds)
        .unwrap_or_else(|err| panic!("cannot decode the target's arguments: {err}"));
    target.call(args);
}

/// The trampoline of [`Process::from_run`](crate::Process::from_run): decodes the
/// value and calls its `run`.
pub(crate) fn run_entry<R: Run>(args: &[u8], fds: Vec<OwnedFd>) {
    let mut obj: R = reduction::decode_with_handles(args, fds)
        .unwrap_or_else(|err| panic!("cannot decode the process object: {err}"));
    obj.run();
}

/// The error `start()` returns for a closure under spawn or forkserver.
pub(crate) fn closure_error(method: StartMethod) -> Error {
    Error::invalid(format!(
        "the {method} start method cannot run a closure that captures state, nor a \
         target given as a fn pointer (only fork can carry those into a child): give \
         Process::new a plain fn item or a closure that captures nothing, with serde \
         arguments, or use Process::from_run"
    ))
}

/// Makes sure the constructor that runs spawned children is linked into the program.
pub(crate) fn keep_linked() {
    sys_spawn::keep_constructor();
}

/// Starts the current executable as the process `role` describes, passing it `fds`.
/// The new process is a direct child of this one.
///
/// Takes no lock of mpcore's (the fork server's start calls it under the server
/// lock, which `process::before_fork` takes after stdout's).
pub(crate) fn spawn_bootstrap(role: Role, fds: &[BorrowedFd<'_>]) -> Result<Pid> {
    let bytes = encode_bootstrap(role, fds.len())?;
    let memfd = sys_spawn::bootstrap_file(&bytes)?;
    let mut passed = Vec::with_capacity(fds.len() + 1);
    passed.push(memfd.as_fd());
    passed.extend_from_slice(fds);

    let argv0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| sys_spawn::EXE.into());
    let argv = [cstring(&argv0)?];
    let mut env = Vec::new();
    for (key, value) in std::env::vars_os() {
        if key != BOOTSTRAP_ENV {
            let mut entry = key.into_encoded_bytes();
            entry.push(b'=');
            entry.extend_from_slice(value.as_encoded_bytes());
            env.push(cstring(OsStr::from_bytes(&entry))?);
        }
    }
    env.push(cstring(OsStr::new(&format!(
        "{BOOTSTRAP_ENV}={FIRST_PASSED_FD}"
    )))?);
    let exe = CString::new(sys_spawn::EXE).expect("no NUL in the path");
    Ok(sys_spawn::spawn_passing_fds(&exe, &argv, &env, &passed)?)
}

fn cstring(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::invalid("a NUL byte in the environment"))
}

/// The constructor's work: if the environment names a bootstrap, run it (never
/// returning); otherwise return at once.
pub(crate) fn on_load() {
    if let Some(value) = sys_spawn::take_env_before_main(BOOTSTRAP_ENV) {
        run_from_env(&value);
    }
}

/// [`crate::init`]'s check, for where no constructor ran: the same as [`on_load`],
/// except that the variable stays in the environment (removing it is only sound
/// before other threads may exist), which is harmless: a stale variable names no
/// bootstrap and is ignored.
pub(crate) fn init_guard() {
    keep_linked();
    if let Some(value) = std::env::var_os(BOOTSTRAP_ENV) {
        run_from_env(&value);
    }
}

/// Runs the bootstrap in the descriptor `value` names, if there is one.
fn run_from_env(value: &OsStr) {
    let Some(fd) = value.to_str().and_then(|v| v.parse::<RawFd>().ok()) else {
        return;
    };
    if fd < 0 || !sys_spawn::fd_is_open(fd) {
        return;
    }
    let Ok(bytes) = sys_spawn::read_fd_from_start(fd) else {
        return;
    };
    let Some(boot) = decode_bootstrap(&bytes) else {
        // Not ours: a variable inherited by some other route.
        return;
    };
    // From here on, the process belongs to its bootstrap.
    sys_spawn::ignore_sigpipe();
    let boot = match boot {
        Ok(boot) => boot,
        Err(err) => fail(&format!("cannot decode the bootstrap: {err}")),
    };
    let nfds = boot.nfds as RawFd;
    let own = sys_spawn::adopt_inherited_fd(fd);
    let fds: Vec<OwnedFd> = match (1..=nfds)
        .map(|i| sys_spawn::adopt_inherited_fd(fd + i))
        .collect::<std::io::Result<_>>()
    {
        Ok(fds) => fds,
        Err(err) => fail(&format!(
            "a descriptor passed to the child is missing: {err}"
        )),
    };
    drop(own);
    // Nothing else was meant to be inherited (CPython's spawn closes every other
    // descriptor too): stray non-close-on-exec descriptors of the parent go.
    sys_spawn::close_from(fd + nfds + 1);
    match boot.role {
        Role::Child(child) => run_child_boot(&boot.image, child, fds),
        Role::Server(server) => crate::forkserver::serve(server, fds),
    }
}
