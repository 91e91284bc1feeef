//! What the spawn and forkserver start methods need from the system: the ELF
//! constructor that turns a re-executed binary into a child before `main`, launching
//! with `posix_spawn(3)`, taking over inherited descriptors, and finding a target's
//! code again in the new process image.
//!
//! # Finding the target again
//!
//! A spawned child runs the same executable file as its parent (the parent executes
//! `/proc/self/exe`, which names the file it runs even if its path was replaced on
//! disk since). Under address-space layout randomisation the whole image moves, but
//! every function keeps its distance from every other. So the parent sends the
//! distance from an anchor function of this module to the target's monomorphised
//! trampoline ([`entry_offset`]), and the child adds it to its own anchor
//! ([`resolve_entry`]). That is sound only if both processes run the same image,
//! which [`ImageId`] checks: the device, inode, size and modification time of the
//! executable, and the distance between two functions of this module.

use std::ffi::{CStr, CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use nix::sys::signal::{SigHandler, SigSet, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------
// The constructor.

/// The ELF constructor: the dynamic loader (or, in a static binary, libc's start
/// code) calls every function listed in `.init_array` before `main`. This one asks
/// [`spawn`](crate::spawn) whether the process is a spawned child (or a fork server)
/// and, if so, runs it there and never returns; otherwise it returns at once.
///
/// The linker only keeps an object file of an rlib if something references it, so
/// `Process::start` and `init()` name this static (through `std::hint::black_box`);
/// any program that can start a spawned child therefore carries the constructor.
#[used]
#[cfg_attr(
    any(target_os = "linux", target_os = "android", target_os = "freebsd"),
    unsafe(link_section = ".init_array")
)]
#[cfg_attr(
    target_vendor = "apple",
    unsafe(link_section = "__DATA,__mod_init_func")
)]
pub(crate) static CONSTRUCTOR: extern "C" fn() = constructor;

extern "C" fn constructor() {
    // A panic must not unwind into the loader (that would abort with a confusing
    // message): report it like any other failure of a child's start.
    if std::panic::catch_unwind(crate::spawn::on_load).is_err() {
        exit_now(1);
    }
}

/// Makes sure the object holding [`CONSTRUCTOR`] is linked into the program.
#[inline]
pub(crate) fn keep_constructor() {
    std::hint::black_box(&CONSTRUCTOR);
}

/// Removes `name` from the environment and returns its value. Only for the
/// constructor, which runs before `main`.
pub(crate) fn take_env_before_main(name: &str) -> Option<OsString> {
    let value = std::env::var_os(name)?;
    // SAFETY: `set_var`/`remove_var` are unsound only if another thread reads or
    // writes the environment at the same time. This runs in the `.init_array`
    // constructor, before `main`: the Rust runtime has started no thread, and a
    // constructor of another library that started one and reads the environment
    // concurrently would be extraordinary. Removing the variable keeps the child's
    // own children (started by any means) from seeing it.
    unsafe { std::env::remove_var(name) };
    Some(value)
}

/// Ends the process at once (`_exit(2)`), as [`process::exit_immediately`](super::process::exit_immediately).
pub(crate) fn exit_now(code: i32) -> ! {
    super::process::exit_immediately(code)
}

// ---------------------------------------------------------------------------
// Finding a target again.

/// The function a child's bootstrap calls: decodes the arguments (resolving handle
/// indices against the descriptors) and runs the target.
pub(crate) type Entry = fn(&[u8], Vec<OwnedFd>);

#[inline(never)]
fn anchor() -> u32 {
    std::hint::black_box(0x6d70_636f)
}

#[inline(never)]
fn second_anchor() -> u32 {
    std::hint::black_box(0x7265_2121)
}

fn distance(from: usize, to: usize) -> i64 {
    (to as i64).wrapping_sub(from as i64)
}

/// The distance from this module's anchor to `entry`, the same in every process that
/// runs this executable.
pub(crate) fn entry_offset(entry: Entry) -> i64 {
    distance(anchor as fn() -> u32 as usize, entry as usize)
}

/// Which executable image a process runs; a child checks that it runs its parent's
/// before it trusts an [`entry_offset`] from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ImageId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    layout: i64,
}

impl ImageId {
    /// This process's image, or an error if `/proc/self/exe` cannot be read.
    pub(crate) fn current() -> io::Result<ImageId> {
        static CURRENT: OnceLock<ImageId> = OnceLock::new();
        if let Some(id) = CURRENT.get() {
            return Ok(id.clone());
        }
        let meta = std::fs::metadata(EXE)?;
        let id = ImageId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            layout: distance(
                anchor as fn() -> u32 as usize,
                second_anchor as fn() -> u32 as usize,
            ),
        };
        Ok(CURRENT.get_or_init(|| id).clone())
    }
}

/// Proof that this process runs the image a bootstrap was made for.
pub(crate) struct SameImage(());

/// Checks that `parent` (from a bootstrap) is this process's image.
pub(crate) fn verify_image(parent: &ImageId) -> io::Result<SameImage> {
    let mine = ImageId::current()?;
    if mine == *parent {
        Ok(SameImage(()))
    } else {
        Err(io::Error::other(format!(
            "the spawned program is not the parent's executable ({mine:?} vs {parent:?})"
        )))
    }
}

/// Turns an [`entry_offset`] made by a process running the same image back into the
/// function.
pub(crate) fn resolve_entry(offset: i64, _same: &SameImage) -> Entry {
    let address = (anchor as fn() -> u32 as usize as i64).wrapping_add(offset) as usize;
    // SAFETY: `SameImage` proves that this process runs the very executable file the
    // parent ran (same device, inode, size and mtime, same layout of this module),
    // and the parent computed `offset` with `entry_offset` from a real `Entry` of that
    // image. Both images are the same bytes relocated by one ASLR slide, so anchor +
    // offset is the address of that same `Entry` function here. The bootstrap that
    // carries the offset only comes from the parent, through a descriptor it passed.
    unsafe { std::mem::transmute::<usize, Entry>(address) }
}

/// Makes a value of the zero-sized `Copy` type `F` (a function item or a closure that
/// captures nothing), or `None` if `F` has a size.
///
/// Only for a spawned child's trampoline, instantiated by `Process::new` for the type
/// of a target the parent held: the child makes the copy of that value the parent
/// would have passed.
pub(crate) fn conjure_zero_sized<F: Copy + 'static>() -> Option<F> {
    if size_of::<F>() != 0 {
        return None;
    }
    // SAFETY: a zero-sized type has a single value made of no bytes, so there is
    // nothing to initialise. `F: Copy` means it has no drop glue and may be
    // duplicated freely. The value is inhabited and allowed to exist: the parent
    // process held one (the target given to `Process::new`, the only place that
    // instantiates the trampoline calling this), and this is the copy it sends.
    Some(unsafe { std::mem::zeroed::<F>() })
}

// ---------------------------------------------------------------------------
// Launching and inheriting descriptors.

/// The executable the spawn start method runs: the parent's own image.
pub(crate) const EXE: &str = "/proc/self/exe";

/// The first descriptor number a spawned child receives: the bootstrap, then the
/// handles in order.
pub(crate) const FIRST_PASSED_FD: RawFd = 3;

/// Starts `path` with `argv` and `env` by `posix_spawn(3)`, passing `fds` as the
/// descriptors `3, 4, ...` of the child, in order. Nothing else is inherited on
/// purpose: mpcore's descriptors are close-on-exec, and the child closes any other
/// inherited descriptor first thing ([`close_from`]).
///
/// The file actions act in the child only, between its creation and `exec`, so no
/// descriptor is ever made inheritable in the parent, where a program spawned by
/// another thread at the same moment could catch it.
pub(crate) fn spawn_passing_fds(
    path: &CStr,
    argv: &[CString],
    env: &[CString],
    fds: &[BorrowedFd<'_>],
) -> io::Result<Pid> {
    let mut actions = PosixSpawnFileActions::init()?;
    // Two passes, so that no move clobbers a descriptor a later move reads: first
    // above every source and every target, then down to 3, 4, ...
    let n = fds.len() as RawFd;
    let high = fds
        .iter()
        .map(|fd| fd.as_raw_fd() + 1)
        .chain([FIRST_PASSED_FD + n])
        .max()
        .unwrap_or(FIRST_PASSED_FD);
    for (i, fd) in fds.iter().enumerate() {
        actions.add_dup2(fd.as_raw_fd(), high + i as RawFd)?;
    }
    for i in 0..n {
        // dup2 to another number clears close-on-exec on the new descriptor.
        actions.add_dup2(high + i, FIRST_PASSED_FD + i)?;
    }
    let mut attr = PosixSpawnAttr::init()?;
    // A fresh signal mask: the parent's thread may block signals its child should get.
    attr.set_sigmask(&SigSet::empty())?;
    attr.set_flags(PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK)?;
    Ok(posix_spawn(path, &actions, &attr, argv, env)?)
}

/// An anonymous, close-on-exec file holding `bytes` (a memfd named
/// `mpcore-bootstrap` on Linux), for a child to read its bootstrap from.
pub(crate) fn bootstrap_file(bytes: &[u8]) -> io::Result<OwnedFd> {
    use std::io::Write;
    let fd =
        nix::sys::memfd::memfd_create(c"mpcore-bootstrap", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
    std::fs::File::from(fd.try_clone()?).write_all(bytes)?;
    Ok(fd)
}

/// Takes ownership of descriptor `fd`, inherited from the parent, if it is open.
///
/// Only for a spawned child's start, on the numbers its bootstrap names, before any
/// other code of the program could have taken them.
pub(crate) fn adopt_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: the parent passed this descriptor to us by number (file actions of
    // posix_spawn); nothing in this process owns it: the child's start runs before
    // `main`, and mpcore's own descriptors are all close-on-exec, so none of them
    // survived the exec to share the number.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    match fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)) {
        Ok(_) => Ok(owned),
        Err(err) => {
            // Not open: forget it rather than close a number that is not ours.
            std::mem::forget(owned);
            Err(err.into())
        }
    }
}

/// Whether descriptor `fd` is open, without owning it.
pub(crate) fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags; an invalid number gives EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Reads the whole of the file open as `fd` from offset 0, without moving its offset
/// and without taking ownership.
pub(crate) fn read_fd_from_start(fd: RawFd) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes; pread writes
        // at most that many and returns how many, or -1.
        let n = unsafe {
            libc::pread(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                out.len() as libc::off_t,
            )
        };
        match n {
            0 => return Ok(out),
            n if n > 0 => out.extend_from_slice(&buf[..n as usize]),
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

/// Closes every descriptor numbered `low` or more (Linux `close_range(2)`; a scan of
/// `/proc/self/fd` where that is missing). For a spawned child's start only, when no
/// other code owns those descriptors yet (a descriptor another library's constructor
/// opened before mpcore's ran would be closed too: none of the usual ones do).
pub(crate) fn close_from(low: RawFd) {
    // SAFETY: close_range takes two numbers and flags and touches no memory of ours.
    // Closing descriptors this process's code may own would be a logic error, but the
    // caller runs before `main`, when only inherited strays have those numbers.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, low as libc::c_uint, !0u32, 0u32) };
    if rc == 0 {
        return;
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let numbers: Vec<RawFd> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd >= low)
            .collect();
        for fd in numbers {
            // SAFETY: as above; EBADF (the directory's own descriptor, already
            // closed) is harmless.
            unsafe { libc::close(fd) };
        }
    }
}

/// Ignores SIGPIPE, as the Rust runtime does before `main` (a write to a closed pipe
/// then fails with `EPIPE` instead of killing the process). A spawned child starts
/// before that runtime code, so it does it itself.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN runs no handler code of ours, so none of the
    // async-signal-safety rules of `signal` apply.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// Sets the disposition of `signal` to ignore (`ignore == true`) or the default.
/// Handler-free dispositions only, so always sound.
pub(crate) fn set_signal_ignored(signal: Signal, ignore: bool) -> io::Result<()> {
    let handler = if ignore {
        SigHandler::SigIgn
    } else {
        SigHandler::SigDfl
    };
    // SAFETY: SIG_IGN and SIG_DFL run no code of ours.
    unsafe { nix::sys::signal::signal(signal, handler) }
        .map(|_| ())
        .map_err(|e: Errno| e.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(_: &[u8], _: Vec<OwnedFd>) {}

    #[test]
    fn an_entry_resolves_to_itself_in_the_same_image() {
        let same = verify_image(&ImageId::current().unwrap()).unwrap();
        let offset = entry_offset(probe);
        assert_eq!(
            resolve_entry(offset, &same) as usize,
            probe as Entry as usize
        );
    }

    #[test]
    fn only_zero_sized_values_are_conjured() {
        fn f() -> u8 {
            7
        }
        assert!(
            conjure_zero_sized::<fn() -> u8>().is_none(),
            "a fn pointer has a size"
        );
        fn call<F: Fn() -> u8 + Copy + 'static>(_: F) -> Option<u8> {
            conjure_zero_sized::<F>().map(|f| f())
        }
        assert_eq!(call(f), Some(7));
        let y = 3u8;
        assert_eq!(call(move || y), None, "a capturing closure has a size");
        assert_eq!(call(|| 9), Some(9));
    }

    #[test]
    fn another_image_is_refused() {
        let mut other = ImageId::current().unwrap();
        other.ino ^= 1;
        assert!(verify_image(&other).is_err());
    }
}
