//! Processes: [`Process`], [`current_process`], [`parent_process`],
//! [`active_children`] (CPython: `process.py`).
//!
//! A [`Process`] describes a child before it starts (target, name, daemon flag) and
//! is the parent's handle on it afterwards. Three ways to say what the child runs:
//!
//! - [`Process::new`] with a plain `fn` and a tuple of serde arguments, Python's
//!   `Process(target=f, args=(...))`;
//! - [`Process::from_run`] with a value implementing [`Run`], the Rust form of
//!   subclassing `Process` and overriding `run()`;
//! - [`Process::from_closure`] with any `FnOnce`, which only the fork start method can
//!   carry into a child.
//!
//! The bookkeeping mirrors CPython's: a per-process counter names children
//! (`Process-1`, `Process-1:1`, ...), a registry of started children lets
//! [`active_children`] reap finished ones, and the at-exit handler of
//! [`util`] terminates daemonic children and joins the others.
//!
//! How the child is made depends on the [start method](crate::context): `start()`
//! hands the child's description to `popen::fork`, `popen::spawn` or
//! `popen::forkserver`. Under spawn and forkserver the target travels as data (see
//! [the crate docs](crate#start-methods)), so only [`Process::new`] and [`Process::from_run`] work
//! there.

use std::backtrace::Backtrace;
use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, TryLockError};
use std::thread::ThreadId;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::{Pid, getpid};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::{self, StartMethod};
use crate::error::{Error, Result};
use crate::popen::{self, Popen};
use crate::reduction;
use crate::spawn;
use crate::sys::spawn::Entry;
use crate::util::{self, lock};

/// A function that can be the target of a [`Process`]: a plain `fn` (or a closure
/// that captures nothing) taking 0 to 6 arguments, each of them serde-serializable,
/// passed as a tuple. The return value is ignored, as in Python.
///
/// ```
/// fn greet(name: String, times: u32) {
///     for _ in 0..times {
///         println!("hello, {name}");
///     }
/// }
/// let p = mpcore::Process::new(greet, ("world".to_string(), 2));
/// assert_eq!(p.name(), "Process-1");
/// ```
pub trait Target<A>: Send + Sync + Copy + 'static {
    /// Calls the function with the arguments unpacked from the tuple.
    #[doc(hidden)]
    fn call(self, args: A);

    /// Encodes the arguments for a child started by spawn or forkserver, collecting
    /// the descriptors of the handles among them.
    #[doc(hidden)]
    fn encode_args(args: &A) -> Result<(Vec<u8>, Vec<OwnedFd>)>;

    /// Decodes, in such a child, what [`encode_args`](Target::encode_args) made.
    #[doc(hidden)]
    fn decode_args(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<A>;
}

macro_rules! impl_target {
    ($($arg:ident),*) => {
        impl<F, R, $($arg,)*> Target<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> R + Send + Sync + Copy + 'static,
            $($arg: Serialize + DeserializeOwned + Send + 'static,)*
        {
            #[allow(non_snake_case)]
            fn call(self, ($($arg,)*): ($($arg,)*)) {
                let _ = self($($arg),*);
            }

            fn encode_args(args: &($($arg,)*)) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
                reduction::encode_with_handles(args)
            }

            fn decode_args(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<($($arg,)*)> {
                reduction::decode_with_handles(bytes, fds)
            }
        }
    };
}

impl_target!();
impl_target!(A1);
impl_target!(A1, A2);
impl_target!(A1, A2, A3);
impl_target!(A1, A2, A3, A4);
impl_target!(A1, A2, A3, A4, A5);
impl_target!(A1, A2, A3, A4, A5, A6);

/// The Rust form of subclassing Python's `Process` and overriding `run()`: a value
/// that carries its own state and knows what to do in the child.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Counter { upto: u32 }
///
/// impl mpcore::Run for Counter {
///     fn run(&mut self) {
///         for i in 0..self.upto {
///             println!("{i}");
///         }
///     }
/// }
///
/// let p = mpcore::Process::from_run(Counter { upto: 3 });
/// assert!(!p.is_alive());
/// ```
pub trait Run: Serialize + DeserializeOwned + Send + 'static {
    /// The work the child does (Python: `Process.run`).
    fn run(&mut self);
}

/// What a child runs, boxed so that every way of giving a target looks the same.
pub(crate) type Payload = Box<dyn Job>;

/// A child's work, as each start method needs it.
pub(crate) trait Job: Send + 'static {
    /// Runs it here (in a forked child).
    fn run(self: Box<Self>);
    /// Describes it as data for a child that does not share our memory (spawn and
    /// forkserver): the entry point to call there and the encoded arguments.
    fn prepare(&self, method: StartMethod) -> Result<Prepared>;
}

/// A [`Job`] as data: what a spawned or forkserver child calls, with what.
pub(crate) struct Prepared {
    pub(crate) entry: Entry,
    pub(crate) args: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

/// `Process::new`: a target and its arguments.
struct TargetJob<F, A> {
    target: F,
    args: A,
}

impl<F: Target<A>, A: Send + 'static> Job for TargetJob<F, A> {
    fn run(self: Box<Self>) {
        self.target.call(self.args)
    }

    fn prepare(&self, method: StartMethod) -> Result<Prepared> {
        if size_of::<F>() != 0 {
            return Err(spawn::closure_error(method));
        }
        let (args, fds) = F::encode_args(&self.args)?;
        Ok(Prepared {
            entry: spawn::target_entry::<F, A>,
            args,
            fds,
        })
    }
}

/// `Process::from_run`: a value that runs itself.
struct RunJob<R>(R);

impl<R: Run> Job for RunJob<R> {
    fn run(mut self: Box<Self>) {
        self.0.run()
    }

    fn prepare(&self, _method: StartMethod) -> Result<Prepared> {
        let (args, fds) = reduction::encode_with_handles(&self.0)?;
        Ok(Prepared {
            entry: spawn::run_entry::<R>,
            args,
            fds,
        })
    }
}

/// `Process::from_closure`: fork only.
struct ClosureJob<F>(F);

impl<F: FnOnce() + Send + 'static> Job for ClosureJob<F> {
    fn run(self: Box<Self>) {
        (self.0)()
    }

    fn prepare(&self, method: StartMethod) -> Result<Prepared> {
        Err(spawn::closure_error(method))
    }
}

/// Public facts about a process: what [`current_process`] and [`active_children`]
/// return ([`parent_process`] returns a [`ParentProcess`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ProcessInfo {
    /// The process name, e.g. `MainProcess` or `Process-1`.
    pub name: String,
    /// The operating-system process id.
    pub pid: i32,
    /// Whether the process is daemonic.
    pub daemon: bool,
}

/// The process that started this one, as [`parent_process`] returns it (CPython's
/// `_ParentProcess`): its name and pid, and whether it is still alive.
///
/// This is the process that called `start()`, under every start method: under
/// forkserver the operating system's parent is the fork server, but the parent
/// here is still the process that asked for the child.
///
/// CPython watches a pipe the parent holds open; mpcore knows the parent by its pid
/// and start time, and asks the kernel (a pidfd of the parent, opened on demand),
/// so it works the same under fork, spawn and forkserver and never mistakes a later
/// process that reused the pid for the parent. A parent that has exited but was not
/// yet reaped (a zombie) counts as ended, as it does in Python.
///
/// ```
/// // In the main process there is no parent.
/// assert_eq!(mpcore::parent_process(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ParentProcess {
    /// The parent's name, e.g. `MainProcess` or `Process-1`.
    pub name: String,
    /// The parent's process id (Python: `parent_process().pid`).
    pub pid: i32,
    /// The low 32 bits of the parent's start time (see `sys::identity`): tells the
    /// parent from a later process with the same pid.
    start_tag: u32,
}

impl ParentProcess {
    /// This process, as its children will know it.
    fn of_current(name: String) -> ParentProcess {
        let identity = crate::sys::identity::process();
        ParentProcess {
            name,
            pid: identity as u32 as i32,
            start_tag: (identity >> 32) as u32,
        }
    }

    /// Whether the parent is still running (Python: `parent_process().is_alive()`).
    pub fn is_alive(&self) -> bool {
        match self.pidfd() {
            Ok(Some(pidfd)) => matches!(
                crate::sys::poll::wait_readable(&[pidfd.as_raw_fd()], Some(Duration::ZERO)),
                Ok(ready) if !ready[0]
            ),
            Ok(None) => false,
            // No descriptor to spare: the answer of /proc alone.
            Err(_) => crate::sys::identity::is_alive(self.pid as u32, self.start_tag),
        }
    }

    /// Waits until the parent ends (Python: `parent_process().join()`).
    pub fn join(&self) -> Result<()> {
        self.wait(None)
    }

    /// Waits up to `timeout` for the parent to end (Python:
    /// `parent_process().join(timeout)`). Returns `Ok` whether or not it ended; ask
    /// [`is_alive`](ParentProcess::is_alive) to tell.
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait(Some(timeout))
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<()> {
        if let Some(pidfd) = self.pidfd()? {
            crate::sys::poll::wait_readable(&[pidfd.as_raw_fd()], timeout)?;
        }
        Ok(())
    }

    /// A pidfd of the parent, or `None` if the parent has ended.
    fn pidfd(&self) -> io::Result<Option<OwnedFd>> {
        let pidfd = match crate::sys::process::pidfd_open(Pid::from_raw(self.pid)) {
            Ok(pidfd) => pidfd,
            Err(err) if err.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
            Err(err) => return Err(err),
        };
        // Opened before the check: the parent existed before this process, so if it
        // is still alive now, the pidfd is the parent's and not a later process's.
        if crate::sys::identity::is_alive(self.pid as u32, self.start_tag) {
            Ok(Some(pidfd))
        } else {
            Ok(None)
        }
    }
}

/// What this process knows about itself (CPython's `_current_process` and
/// `_process_counter`).
struct Current {
    name: Cow<'static, str>,
    identity: Vec<u32>,
    daemon: bool,
    /// How many `Process` objects this process has created; names the next one.
    counter: u32,
    parent: Option<ParentProcess>,
    /// The thread that runs a child's target: its panics get Python's report.
    target_thread: Option<ThreadId>,
}

static CURRENT: Mutex<Current> = Mutex::new(Current {
    name: Cow::Borrowed("MainProcess"),
    identity: Vec::new(),
    daemon: false,
    counter: 0,
    parent: None,
    target_thread: None,
});

/// A started child in the registry (CPython's `process._children`).
struct Child {
    name: String,
    daemon: bool,
    popen: Arc<dyn Popen>,
}

static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

/// Who a child will be: set in the child before its target runs.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct ChildSetup {
    pub(crate) name: String,
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    pub(crate) parent: ParentProcess,
    pub(crate) start_method: StartMethod,
}

/// A process to run in a child: Python's `multiprocessing.Process`.
///
/// ```
/// fn square(x: i64) {
///     println!("{x} squared is {}", x * x);
/// }
///
/// let mut p = mpcore::Process::new(square, (7,));
/// p.start()?;
/// p.join()?;
/// assert_eq!(p.exitcode(), Some(0));
/// # Ok::<(), mpcore::Error>(())
/// ```
///
/// # How a child ends: its other threads end with its target
///
/// The target is the child's `main`. When it returns (or panics, or calls
/// [`exit`](crate::exit)), the child joins its own children (terminating the
/// daemonic ones), runs mpcore's exit work (queues write out what they buffered),
/// flushes stdout and stderr, and leaves with `_exit(2)` and the target's exit code.
/// Any other thread the child started ends right there, wherever it is: it is not
/// waited for and does not unwind, so its destructors (and thread-local destructors)
/// never run, and neither do handlers registered with `atexit(3)`. That is what
/// returning from `main` does to a Rust program's threads too.
///
/// Python differs: its child waits for its non-daemon threads after `run()` returns
/// and kills only the daemon ones. Rust threads have no daemon flag; to wait for a
/// thread, join it in the target (or start it with `std::thread::scope`).
///
/// # A handle in another process
///
/// A `Process` is its creator's handle: only the process that created it may start
/// it ("can only start a process object created by current process") or join it
/// ("can only join a child process"). A forked child that got a copy (a closure
/// that owns a sibling's handle) can still read [`name`](Process::name) and
/// [`pid`](Process::pid), send signals, and ask [`is_alive`](Process::is_alive), which
/// answers truly there (Python raises "can only test a child process"); its
/// [`exitcode`](Process::exitcode) is only what the handle knew when it was copied.
pub struct Process {
    name: String,
    identity: Vec<u32>,
    daemon: bool,
    payload: Option<Payload>,
    /// The start method of the context that made it; `None`: the program-wide one.
    method: Option<StartMethod>,
    popen: Option<Arc<dyn Popen>>,
    /// The pid of the process that created this handle: only it may start the child.
    creator: Pid,
    closed: bool,
}

impl Process {
    /// A process that will call `target` with `args` (a tuple), as Python's
    /// `Process(target=target, args=args)`.
    ///
    /// The name (`Process-N`) is given now, not at `start()`, as in Python.
    ///
    /// Under every start method when `target` is a plain `fn` (or a closure that
    /// captures nothing); a closure that captures state can only be started by fork,
    /// and `start()` under spawn or forkserver returns an error saying so.
    pub fn new<F: Target<A>, A: Send + 'static>(target: F, args: A) -> Process {
        Process::with_payload(Box::new(TargetJob { target, args }))
    }

    /// A process that runs any closure. Only the fork start method can carry a
    /// closure's captured state into a child: under spawn or forkserver, `start()`
    /// returns an error.
    pub fn from_closure<F: FnOnce() + Send + 'static>(f: F) -> Process {
        Process::with_payload(Box::new(ClosureJob(f)))
    }

    /// A process that calls `obj.run()` in the child: the Rust form of subclassing
    /// `Process` and overriding `run()`. Under spawn and forkserver, `obj` travels
    /// encoded with serde, so fields marked `#[serde(skip)]` arrive as their default.
    pub fn from_run<R: Run>(obj: R) -> Process {
        Process::with_payload(Box::new(RunJob(obj)))
    }

    fn with_payload(payload: Payload) -> Process {
        let (identity, daemon) = {
            let mut current = lock(&CURRENT);
            current.counter += 1;
            let mut identity = current.identity.clone();
            identity.push(current.counter);
            (identity, current.daemon)
        };
        let name = format!("Process-{}", join_identity(&identity));
        Process {
            name,
            identity,
            daemon,
            payload: Some(payload),
            method: None,
            popen: None,
            creator: getpid(),
            closed: false,
        }
    }

    /// Binds the process to a context's start method and gives it the default name of
    /// that context's process class (`SpawnProcess-N`, ...).
    pub(crate) fn bind_to_context(mut self, method: StartMethod) -> Process {
        self.method = Some(method);
        self.name = format!("{}-{}", self.class_name(), join_identity(&self.identity));
        self
    }

    /// The name of the CPython class this process corresponds to: `Process` for one
    /// made without a context (`multiprocessing.Process`), else the context's class,
    /// `ForkProcess`, `SpawnProcess` or `ForkServerProcess`.
    fn class_name(&self) -> &'static str {
        self.method.map_or("Process", StartMethod::process_class)
    }

    /// Whether this handle is used in a process other than the one that created it:
    /// a forked child that got a copy of it (CPython: `_parent_pid != os.getpid()`).
    fn is_foreign(&self) -> bool {
        // The cached pid: `exitcode` and `is_alive` ask this on every call.
        self.creator.as_raw() != crate::sys::atfork::pid()
    }

    /// Sets the name (builder form of [`set_name`](Process::set_name)).
    pub fn with_name(mut self, name: impl Into<String>) -> Process {
        self.name = name.into();
        self
    }

    /// Sets the daemon flag (builder form of [`set_daemon`](Process::set_daemon)).
    /// A daemonic child is terminated when its parent's `main` ends.
    pub fn with_daemon(mut self, daemon: bool) -> Process {
        self.daemon = daemon;
        self
    }

    /// The process name. Names need not be unique; they are for people to read.
    /// Readable after [`close`](Process::close) and in any process.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the process. A child started afterwards sees the new name.
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }

    /// Whether the process is daemonic. The default is the daemon flag of the process
    /// that created it. Readable after [`close`](Process::close).
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// Sets the daemon flag. Errors once the process has started
    /// ("process has already started").
    pub fn set_daemon(&mut self, daemon: bool) -> Result<()> {
        self.check_closed()?;
        if self.popen.is_some() {
            return Err(Error::invalid("process has already started"));
        }
        self.daemon = daemon;
        Ok(())
    }

    /// Starts the child with the process's start method: its context's, or else the
    /// program-wide one (which this fixes, see [`context`] for the rules).
    ///
    /// Errors if it was started before ("cannot start a process twice"), if this
    /// process is itself daemonic ("daemonic processes are not allowed to have
    /// children"), if the handle was closed, or if the target is a closure and the
    /// start method is not fork.
    pub fn start(&mut self) -> Result<()> {
        spawn::keep_linked();
        self.check_closed()?;
        if self.popen.is_some() || self.payload.is_none() {
            return Err(Error::invalid("cannot start a process twice"));
        }
        if self.is_foreign() {
            return Err(Error::invalid(
                "can only start a process object created by current process",
            ));
        }
        if lock(&CURRENT).daemon {
            return Err(Error::invalid(
                "daemonic processes are not allowed to have children",
            ));
        }
        util::register_exit_function();
        cleanup();
        let start_method = self.method.unwrap_or_else(context::method_for_start);
        let setup = ChildSetup {
            name: self.name.clone(),
            identity: self.identity.clone(),
            daemon: self.daemon,
            parent: ParentProcess::of_current(lock(&CURRENT).name.to_string()),
            start_method,
        };
        let popen: Arc<dyn Popen> = match start_method {
            StartMethod::Fork => {
                let payload = self.payload.take().expect("checked above");
                Arc::new(popen::fork::launch(setup, payload)?)
            }
            StartMethod::Spawn => {
                let prepared = self.payload.as_ref().expect("checked above");
                let prepared = prepared.prepare(start_method)?;
                self.payload = None;
                Arc::new(popen::spawn::launch(setup, prepared)?)
            }
            StartMethod::Forkserver => {
                let prepared = self.payload.as_ref().expect("checked above");
                let prepared = prepared.prepare(start_method)?;
                self.payload = None;
                Arc::new(popen::forkserver::launch(setup, prepared)?)
            }
        };
        lock(&CHILDREN).push(Child {
            name: self.name.clone(),
            daemon: self.daemon,
            popen: Arc::clone(&popen),
        });
        self.popen = Some(popen);
        Ok(())
    }

    /// Waits until the child ends. Errors before `start()` ("can only join a started
    /// process") and in a process other than the one that created the handle ("can
    /// only join a child process": only the parent can wait for a child).
    pub fn join(&mut self) -> Result<()> {
        let popen = self.joinable_popen()?;
        if popen.wait(None).is_some() {
            forget_child(popen);
        }
        Ok(())
    }

    /// Waits up to `timeout` for the child to end. Returns `Ok` whether or not it
    /// ended, as Python's `join(timeout)`; check [`exitcode`](Process::exitcode) or
    /// [`is_alive`](Process::is_alive) to tell. Errors as [`join`](Process::join).
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<()> {
        let popen = self.joinable_popen()?;
        if popen.wait(Some(timeout)).is_some() {
            forget_child(popen);
        }
        Ok(())
    }

    /// Whether the child has started and not yet ended. Reaps it if it has ended.
    /// False before `start()` and after [`close`](Process::close).
    ///
    /// **In a process that did not create the handle** (a forked child that got a
    /// copy of its parent's handle on a sibling), Python raises `AssertionError("can
    /// only test a child process")`. mpcore answers truly instead of failing: it asks
    /// the kernel whether the child still runs (through the sentinel's pidfd, or for
    /// a forkserver child its pid), without reaping it and without reading anything
    /// its real parent waits for. A child that has exited counts as ended even if its
    /// parent has not reaped it yet.
    pub fn is_alive(&self) -> bool {
        match (&self.popen, self.closed) {
            (Some(popen), false) if self.is_foreign() => popen.alive_from_afar(),
            (Some(popen), false) => {
                if popen.poll().is_none() {
                    true
                } else {
                    forget_child(popen);
                    false
                }
            }
            _ => false,
        }
    }

    /// The child's pid: `None` before `start()` and after `close()` (where Python
    /// raises "process object is closed"), and still `Some` after it ended.
    pub fn pid(&self) -> Option<i32> {
        self.popen.as_ref().map(|p| p.pid())
    }

    /// The exit code: `None` while the child runs, before start and after `close()`
    /// (where Python raises "process object is closed"); 0 after a normal return; 1
    /// after a panic; `n` after [`exit(n)`](crate::exit); `-s` after it was killed by
    /// signal `s`.
    ///
    /// In a process that did not create the handle, only the parent can learn the
    /// exit code (by reaping the child): this is the code the handle already knew when
    /// it was copied, else `None`, as in Python. Ask [`is_alive`](Process::is_alive)
    /// whether the child still runs.
    pub fn exitcode(&self) -> Option<i32> {
        let popen = self.popen.as_ref()?;
        if self.is_foreign() {
            popen.known_exitcode()
        } else {
            popen.poll()
        }
    }

    /// Sends SIGTERM to the child (Python's `terminate()`). Does nothing if it has
    /// already ended.
    pub fn terminate(&mut self) -> Result<()> {
        self.signal(Signal::SIGTERM)
    }

    /// Sends SIGKILL to the child (Python's `kill()`). Does nothing if it has
    /// already ended.
    pub fn kill(&mut self) -> Result<()> {
        self.signal(Signal::SIGKILL)
    }

    fn signal(&mut self, signal: Signal) -> Result<()> {
        let popen = self.started_popen("can only signal a started process")?;
        if self.is_foreign() {
            popen.signal_from_afar(signal)
        } else {
            popen.send_signal(signal)
        }
    }

    /// Releases the resources of a finished child (its sentinel). Every later use
    /// except reading `name` and `daemon` is an error ("process object is closed"),
    /// and [`pid`](Process::pid) and [`exitcode`](Process::exitcode) return `None`.
    /// Closing a running child is an error; closing twice is fine.
    pub fn close(&mut self) -> Result<()> {
        if let Some(popen) = &self.popen {
            let running = if self.is_foreign() {
                popen.alive_from_afar()
            } else {
                popen.poll().is_none()
            };
            if running {
                return Err(Error::invalid(
                    "Cannot close a process while it is still running. \
                     You should first call join() or terminate().",
                ));
            }
            forget_child(popen);
        }
        self.popen = None;
        self.payload = None;
        self.closed = true;
        Ok(())
    }

    /// A descriptor that polls readable once the child has ended: Python's
    /// `sentinel`, for use with [`connection::wait`](crate::sys::poll) style waits.
    /// A pidfd under fork and spawn; under forkserver, the connection on which the
    /// server reports the exit code.
    pub fn sentinel(&self) -> Result<RawFd> {
        Ok(self.started_popen("process not started")?.sentinel())
    }

    fn check_closed(&self) -> Result<()> {
        if self.closed {
            Err(Error::invalid("process object is closed"))
        } else {
            Ok(())
        }
    }

    /// The child to wait for, checked as Python's `join` checks it.
    fn joinable_popen(&self) -> Result<&Arc<dyn Popen>> {
        self.check_closed()?;
        if self.is_foreign() {
            return Err(Error::invalid("can only join a child process"));
        }
        self.started_popen("can only join a started process")
    }

    fn started_popen(&self, not_started: &str) -> Result<&Arc<dyn Popen>> {
        self.check_closed()?;
        self.popen
            .as_ref()
            .ok_or_else(|| Error::invalid(not_started))
    }
}

/// Python's repr, over the lifecycle:
///
/// - `<Process name='Process-1' parent=100 initial>` before `start()`;
/// - `<Process name='Process-1' pid=123 parent=100 started>` while the child runs;
/// - `<Process name='Process-1' pid=123 parent=100 stopped exitcode=0>` once it
///   ended, with Python's signal names for a signal: `exitcode=-SIGTERM`;
/// - `<Process name='Process-1' parent=100 closed>` after `close()`;
/// - `... unknown>` in a process other than the one that created the handle;
///
/// and ` daemon` before the `>` for a daemonic process. `parent` is the pid of the
/// process that created the handle. The class name is CPython's: `Process` for a
/// process made without a context ([`Process::new`], Python's
/// `multiprocessing.Process`), and `ForkProcess`, `SpawnProcess` or
/// `ForkServerProcess` for one made by [`Context::process`](crate::Context::process)
/// (Python's `get_context(m).Process`), whatever the name was set to.
///
/// Formatting a started process asks whether the child has ended, and reaps it if
/// it has, as Python's repr does.
impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} name='{}'", self.class_name(), self.name)?;
        let mut exitcode = None;
        let status = if self.closed {
            "closed"
        } else if self.is_foreign() {
            "unknown"
        } else if let Some(popen) = &self.popen {
            exitcode = popen.poll();
            if exitcode.is_some() {
                "stopped"
            } else {
                "started"
            }
        } else {
            "initial"
        };
        if let Some(popen) = &self.popen {
            write!(f, " pid={}", popen.pid())?;
        }
        write!(f, " parent={} {status}", self.creator)?;
        if let Some(code) = exitcode {
            match exitcode_signal_name(code) {
                Some(name) => write!(f, " exitcode=-{name}")?,
                None => write!(f, " exitcode={code}")?,
            }
        }
        if self.daemon {
            f.write_str(" daemon")?;
        }
        f.write_str(">")
    }
}

/// The name CPython's repr gives a negative exit code `-s` (`SIGTERM` for -15), from
/// the table `process.py` builds out of the `signal` module on Linux (3.11 to 3.13:
/// the aliases it keeps are `SIGABRT`, `SIGCHLD` and `SIGPOLL`, and glibc's
/// `SIGRTMIN` is 34). `None` for other codes, which print as numbers.
fn exitcode_signal_name(code: i32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGPOLL",
        "SIGPWR",
        "SIGSYS",
    ];
    match code {
        -31..=-1 => Some(NAMES[(-code - 1) as usize]),
        -34 => Some("SIGRTMIN"),
        -64 => Some("SIGRTMAX"),
        _ => None,
    }
}

fn join_identity(identity: &[u32]) -> String {
    identity
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(":")
}

/// Removes a finished child from the registry.
fn forget_child(popen: &Arc<dyn Popen>) {
    lock(&CHILDREN).retain(|child| !Arc::ptr_eq(&child.popen, popen));
}

/// Reaps children that have ended (CPython's `process._cleanup`).
fn cleanup() {
    lock(&CHILDREN).retain(|child| child.popen.poll().is_none());
}

/// The process this code runs in (Python: `multiprocessing.current_process()`).
///
/// ```
/// let me = mpcore::current_process();
/// assert_eq!(me.name, "MainProcess");
/// assert_eq!(me.pid, std::process::id() as i32);
/// ```
pub fn current_process() -> ProcessInfo {
    let current = lock(&CURRENT);
    ProcessInfo {
        name: current.name.to_string(),
        pid: getpid().as_raw(),
        daemon: current.daemon,
    }
}

/// The process that started this one, or `None` in the main process
/// (Python: `multiprocessing.parent_process()`). Under forkserver too it is the
/// process that called `start()`, not the fork server; see [`ParentProcess`] for
/// how a child tells whether it is still alive.
pub fn parent_process() -> Option<ParentProcess> {
    lock(&CURRENT).parent.clone()
}

/// The children started by this process that are still running; finished ones are
/// reaped (Python: `multiprocessing.active_children()`).
pub fn active_children() -> Vec<ProcessInfo> {
    cleanup();
    lock(&CHILDREN)
        .iter()
        .map(|child| ProcessInfo {
            name: child.name.clone(),
            pid: child.popen.pid(),
            daemon: child.daemon,
        })
        .collect()
}

/// Terminates the daemonic children and waits for all of them (CPython's
/// `util._exit_function`, the part about children). Runs when `main` returns, when a
/// child's target ends, and in [`exit`](crate::exit).
pub(crate) fn finish_children() {
    cleanup();
    // Copied out first: the log takes CURRENT, which a fork takes before CHILDREN.
    let children: Vec<(Arc<dyn Popen>, String, bool)> = lock(&CHILDREN)
        .iter()
        .map(|c| (Arc::clone(&c.popen), c.name.clone(), c.daemon))
        .collect();
    for (popen, name, _) in children.iter().filter(|c| c.2) {
        util::info(format_args!("calling terminate() for daemon {name}"));
        let _ = popen.send_signal(Signal::SIGTERM);
    }
    for (popen, name, _) in &children {
        util::info(format_args!("calling join() for process {name}"));
        popen.wait(None);
        forget_child(popen);
    }
    // The fork server outlives no one: stop it once every child has ended.
    crate::forkserver::stop();
}

/// Whether this process is a child started by mpcore.
pub(crate) fn is_child() -> bool {
    lock(&CURRENT).parent.is_some()
}

/// The locks a fork must hold, taken in a fixed order before forking so that no
/// other thread holds one of them at the moment of the fork.
pub(crate) struct ForkLocks {
    /// The forking thread, which goes on to run the target in the child.
    thread: ThreadId,
    current: MutexGuard<'static, Current>,
    children: MutexGuard<'static, Vec<Child>>,
    method: MutexGuard<'static, Option<StartMethod>>,
    forkserver: crate::forkserver::ForkGuard,
    finalizers: util::ForkGuard,
    _stderr: io::StderrLock<'static>,
    _stdout: io::StdoutLock<'static>,
}

/// Flushes stdout and stderr (no buffered line is printed twice) and takes the locks
/// of [`ForkLocks`].
pub(crate) fn before_fork() -> ForkLocks {
    let mut stdout = io::stdout().lock();
    let mut stderr = io::stderr().lock();
    let _ = stdout.flush();
    let _ = stderr.flush();
    ForkLocks {
        thread: std::thread::current().id(),
        current: lock(&CURRENT),
        children: lock(&CHILDREN),
        method: context::lock_for_fork(),
        forkserver: crate::forkserver::lock_for_fork(),
        finalizers: util::lock_for_fork(),
        _stderr: stderr,
        _stdout: stdout,
    }
}

/// The child side of a fork: becomes the process `setup` describes, runs `payload`
/// and exits (CPython's `BaseProcess._bootstrap`). Never returns.
pub(crate) fn child_main(mut held: ForkLocks, setup: ChildSetup, payload: Payload) -> ! {
    // The parent's children are not ours: forget them (closing their pidfds), and
    // its fork server is not ours either (we start our own if we need one).
    held.children.clear();
    held.forkserver.forget();
    held.finalizers.forget_inherited();
    FORKED.store(true, Ordering::Relaxed);
    context::fix_in_child(&mut held.method, setup.start_method);
    util::log_pid(&setup.name);
    *held.current = Current {
        name: Cow::Owned(setup.name),
        identity: setup.identity,
        daemon: setup.daemon,
        counter: 0,
        parent: Some(setup.parent),
        target_thread: Some(held.thread),
    };
    drop(held);
    run_child(move || payload.run())
}

/// Becomes the process `setup` describes in a child that did not fork from its
/// parent (spawn, or forked by the fork server): a fresh program image.
pub(crate) fn become_child(setup: ChildSetup) {
    context::fix_in_new_child(setup.start_method);
    util::log_pid(&setup.name);
    install_panic_report();
    *lock(&CURRENT) = Current {
        name: Cow::Owned(setup.name),
        identity: setup.identity,
        daemon: setup.daemon,
        counter: 0,
        parent: Some(setup.parent),
        target_thread: Some(std::thread::current().id()),
    };
}

/// Runs a child's target and ends the process with Python's exit code: 0 after a
/// normal return, 1 after a panic (reported as `Process NAME:` and the message).
///
/// The child's setup (`child_main`, `become_child`) has already recorded who it is,
/// so this path allocates nothing before the target runs: every page a forked child
/// writes is a copy-on-write fault, the main cost of a fork start.
pub(crate) fn run_child(target: impl FnOnce()) -> ! {
    util::info("child process calling self.run()");
    let code = match panic::catch_unwind(AssertUnwindSafe(target)) {
        Ok(()) => 0,
        Err(_) => 1,
    };
    exit_child(code)
}

/// Installs, once per process, the panic hook that gives a child's target Python's
/// report; panics elsewhere go to the hook that was there before. Installed in the
/// parent (by `init()` or the first `start()`), so forked children inherit it.
pub(crate) fn install_panic_report() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Asked here, before any fork: whether backtraces are wanted, by std's rule
        // for `Backtrace::capture` (which would unwind the stack to tell).
        let wanted = std::env::var_os("RUST_LIB_BACKTRACE")
            .or_else(|| std::env::var_os("RUST_BACKTRACE"))
            .is_some_and(|v| v != "0");
        BACKTRACES.store(wanted, Ordering::Relaxed);
        let previous_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            // `try_lock`: a panic while this thread holds CURRENT must not deadlock.
            let target = match CURRENT.try_lock() {
                Ok(current) => current_target(&current),
                Err(TryLockError::Poisoned(poisoned)) => current_target(&poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            // Every thread of a forked child gets our report: std's hook could
            // deadlock there (see `report_panic`).
            if target.is_some() || FORKED.load(Ordering::Relaxed) {
                report_panic(target.as_deref(), info);
            } else {
                previous_hook(info);
            }
        }));
    });
}

/// The process name, if the calling thread runs a child's target.
fn current_target(current: &Current) -> Option<String> {
    (current.target_thread == Some(std::thread::current().id())).then(|| current.name.to_string())
}

/// Whether this process is a forked child (not one forked by the fork server,
/// which has no other threads): see [`report_panic`].
static FORKED: AtomicBool = AtomicBool::new(false);
/// Whether `RUST_BACKTRACE` asks for backtraces (read once, in the parent).
static BACKTRACES: AtomicBool = AtomicBool::new(false);

/// Writes Python's report of an uncaught exception in a child: `Process NAME:` then
/// the panic's location and message (and a backtrace if `RUST_BACKTRACE` asks).
/// `name` is `None` for a panic in another thread of a forked child, reported as
/// std reports it: `thread 'NAME' panicked at ...`.
///
/// It writes to the stderr descriptor directly, not through `eprintln!`, whose output
/// a test harness may capture and a forked child would never print.
///
/// A forked child gets no backtrace: capturing one takes a lock of std's that some
/// other thread of the parent may have held at the moment of the fork, and that
/// nobody in the child would ever release (std's own hook has the same hazard).
fn report_panic(name: Option<&str>, info: &panic::PanicHookInfo<'_>) {
    let message = info
        .payload()
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    let location = info
        .location()
        .map(|l| format!(" at {l}"))
        .unwrap_or_default();
    let mut report = match name {
        Some(name) => format!("Process {name}:\npanicked{location}:\n{message}\n"),
        None => {
            let thread = std::thread::current();
            let thread = thread.name().unwrap_or("<unnamed>");
            format!("thread '{thread}' panicked{location}:\n{message}\n")
        }
    };
    if !BACKTRACES.load(Ordering::Relaxed) {
        // Nothing asked for.
    } else if FORKED.load(Ordering::Relaxed) {
        report.push_str("note: no backtrace in a forked child; run under spawn for one\n");
    } else {
        report.push_str(&format!("stack backtrace:\n{}\n", Backtrace::capture()));
    }
    let _ = io::stderr().lock().write_all(report.as_bytes());
}

/// Ends a child: runs its at-exit work (finalizers, its own children joined), flushes,
/// and leaves with `_exit`, so that nothing of the parent's `main` or at-exit work
/// runs.
pub(crate) fn exit_child(code: i32) -> ! {
    util::exit_function();
    util::info(format_args!("process exiting with exitcode {code}"));
    util::flush_std_streams();
    crate::sys::process::exit_immediately(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_joins_with_colons() {
        assert_eq!(join_identity(&[1]), "1");
        assert_eq!(join_identity(&[1, 2, 3]), "1:2:3");
    }

    #[test]
    fn exit_codes_are_named_as_cpython_names_them() {
        // `sorted(multiprocessing.process._exitcode_to_name.items())` on Linux,
        // Python 3.11.7, 3.12.1 and 3.13.0 alike.
        let python = "(-64, '-SIGRTMAX'), (-34, '-SIGRTMIN'), (-31, '-SIGSYS'), \
            (-30, '-SIGPWR'), (-29, '-SIGPOLL'), (-28, '-SIGWINCH'), (-27, '-SIGPROF'), \
            (-26, '-SIGVTALRM'), (-25, '-SIGXFSZ'), (-24, '-SIGXCPU'), (-23, '-SIGURG'), \
            (-22, '-SIGTTOU'), (-21, '-SIGTTIN'), (-20, '-SIGTSTP'), (-19, '-SIGSTOP'), \
            (-18, '-SIGCONT'), (-17, '-SIGCHLD'), (-16, '-SIGSTKFLT'), (-15, '-SIGTERM'), \
            (-14, '-SIGALRM'), (-13, '-SIGPIPE'), (-12, '-SIGUSR2'), (-11, '-SIGSEGV'), \
            (-10, '-SIGUSR1'), (-9, '-SIGKILL'), (-8, '-SIGFPE'), (-7, '-SIGBUS'), \
            (-6, '-SIGABRT'), (-5, '-SIGTRAP'), (-4, '-SIGILL'), (-3, '-SIGQUIT'), \
            (-2, '-SIGINT'), (-1, '-SIGHUP')";
        let ours: Vec<String> = (-70..=300)
            .filter_map(|code| {
                exitcode_signal_name(code).map(|name| format!("({code}, '-{name}')"))
            })
            .collect();
        assert_eq!(ours.join(", "), python);
    }

    #[test]
    fn a_new_process_is_named_initial_and_not_alive() {
        let p = Process::new(|| {}, ());
        assert!(p.name().starts_with("Process-"));
        assert!(!p.is_alive());
        assert_eq!(p.pid(), None);
        assert_eq!(p.exitcode(), None);
        assert!(format!("{p:?}").ends_with("initial>"));
        // Row 1: not a child yet.
        assert!(active_children().iter().all(|c| c.name != p.name()));
    }
}
