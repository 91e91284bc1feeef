//! Helpers shared by the integration tests in `mpcore/tests/*.rs`; each test file
//! says `mod common;` and imports what it needs.
//!
//! - [`per_method!`] makes a `fork::NAME`, `spawn::NAME` and `forkserver::NAME` test
//!   of each function of the start method.
//! - [`process`], [`start`], [`start_n`], [`finish`] and [`run`] make, start and
//!   join children.
//! - [`Writer`] and [`Pipe`]: plain OS pipes children of any start method report
//!   back over.
//! - [`scenario_command`], [`in_scenario`] and [`stdout`]: whole programs run in a
//!   fresh copy of the test binary.

// Every file in `tests/` is a test binary of its own, and each uses only part of
// this module: what one of them leaves unused is not dead.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Output};
use std::time::Duration;

use mpcore::{Process, StartMethod, Target, get_context};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A bound no healthy test comes near, even on a loaded machine: the longest a
/// test waits for something another process does.
pub const BOUND: Duration = Duration::from_secs(60);

/// A generous bound for "returns promptly" on a loaded 2-core machine.
pub const PROMPT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Children

/// Makes `fork::NAME`, `spawn::NAME` and `forkserver::NAME` tests of each
/// `fn NAME(method: StartMethod)`; a test file imports it with
/// `use common::per_method;`.
// Unused in some test binaries, as the rest of this module: `dead_code` does not
// cover a macro and its re-export.
#[allow(unused_macros)]
macro_rules! per_method {
    ($(fn $name:ident($m:ident: StartMethod) $body:block)*) => {
        $(fn $name($m: StartMethod) $body)*

        mod fork {
            $(#[test] fn $name() { super::$name(mpcore::StartMethod::Fork) })*
        }
        mod spawn {
            $(#[test] fn $name() { super::$name(mpcore::StartMethod::Spawn) })*
        }
        mod forkserver {
            $(#[test] fn $name() { super::$name(mpcore::StartMethod::Forkserver) })*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use per_method;

/// A process of `method` that calls `target(args)`.
pub fn process<F: Target<A>, A: Send + 'static>(
    method: StartMethod,
    target: F,
    args: A,
) -> Process {
    get_context(method).process(target, args)
}

/// Starts `p` and returns it, running.
pub fn start(mut p: Process) -> Process {
    p.start().unwrap();
    p
}

/// Waits for the started `p` to end; returns its exit code.
pub fn finish(mut p: Process) -> i32 {
    p.join().unwrap();
    p.exitcode().unwrap()
}

/// Starts `p` and waits for it; returns its exit code.
pub fn run(p: Process) -> i32 {
    finish(start(p))
}

/// Starts `n` processes of `method`, each calling `target` with its own clone of
/// `args`.
pub fn start_n<F: Target<A>, A: Clone + Send + 'static>(
    n: usize,
    method: StartMethod,
    target: F,
    args: A,
) -> Vec<Process> {
    (0..n)
        .map(|_| start(process(method, target, args.clone())))
        .collect()
}

/// A target that does nothing.
pub fn noop() {}

/// A target that exits with `code` (`mpcore::exit`).
pub fn exit_with(code: i32) {
    mpcore::exit(code);
}

// ---------------------------------------------------------------------------
// Reporting back over OS pipes

/// The write end of a pipe, passable to a child of any start method (it travels
/// with the reduction mechanism, as a handle).
pub struct Writer(pub OwnedFd);

impl Serialize for Writer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        mpcore::reduction::serialize_fd("Writer", self.0.as_fd(), s)
    }
}

impl<'de> Deserialize<'de> for Writer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Writer(mpcore::reduction::deserialize_fd(d)?))
    }
}

impl Clone for Writer {
    /// Another descriptor for the same pipe.
    fn clone(&self) -> Writer {
        Writer(self.0.try_clone().unwrap())
    }
}

impl Writer {
    /// Writes `line` and a newline, in one write.
    pub fn say(&self, line: &str) {
        let mut f = File::from(self.0.try_clone().unwrap());
        f.write_all(format!("{line}\n").as_bytes()).unwrap();
    }
}

/// A one-way OS pipe: children write lines, the parent reads everything.
pub struct Pipe {
    pub reader: File,
    /// The parent's write end: give children clones of it.
    pub writer: Writer,
}

impl Pipe {
    pub fn new() -> Pipe {
        let (r, w) = nix::unistd::pipe().unwrap();
        Pipe {
            reader: File::from(r),
            writer: Writer(w),
        }
    }

    /// Closes the parent's write end and reads everything the children wrote, up to
    /// the end of file that comes once every child's write end is closed too.
    pub fn read_all(mut self) -> String {
        drop(self.writer);
        let mut out = String::new();
        self.reader.read_to_string(&mut out).unwrap();
        out
    }
}

// ---------------------------------------------------------------------------
// Scenarios: whole programs in a fresh copy of the test binary

/// Names the scenario a copy of the test binary was started for.
pub const SCENARIO_ENV: &str = "MPCORE_TEST_SCENARIO";

/// A command that runs the test `scenarios::NAME` alone in a new copy of this test
/// binary, where it acts as a program's `main`: with `MPCORE_START_METHOD` set to
/// `method`, or unset for `None`.
pub fn scenario_command(name: &str, method: Option<StartMethod>) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        &format!("scenarios::{name}"),
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(SCENARIO_ENV, name)
    .env_remove("MPCORE_START_METHOD");
    if let Some(method) = method {
        cmd.env("MPCORE_START_METHOD", method.to_string());
    }
    cmd
}

/// Runs the test `scenarios::NAME` alone in a new copy of this test binary, where it
/// acts as a program's `main` with `method` as its start method, checks that it
/// succeeded, and returns what it printed.
pub fn scenario(name: &str, method: StartMethod) -> Output {
    let output = scenario_command(name, Some(method))
        .arg("-q")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "scenario {name} failed: {output:?}"
    );
    output
}

/// Whether this copy of the test binary was started to run the scenario `name`:
/// a test `scenarios::NAME` does nothing otherwise.
pub fn in_scenario(name: &str) -> bool {
    std::env::var(SCENARIO_ENV).is_ok_and(|s| s == name)
}

/// What a program printed to its standard output.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
