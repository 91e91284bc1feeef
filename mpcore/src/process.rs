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

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::os::fd::{OwnedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
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

/// Public facts about a process: what [`current_process`], [`parent_process`] and
/// [`active_children`] return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ProcessInfo {
    /// The process name, e.g. `MainProcess` or `Process-1`.
    pub name: String,
    /// The operating-system process id.
    pub pid: i32,
    /// Whether the process is daemonic.
    pub daemon: bool,
}

/// What this process knows about itself (CPython's `_current_process` and
/// `_process_counter`).
struct Current {
    name: Cow<'static, str>,
    identity: Vec<u32>,
    daemon: bool,
    /// How many `Process` objects this process has created; names the next one.
    counter: u32,
    parent: Option<ProcessInfo>,
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
    pub(crate) parent: ProcessInfo,
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
    pub(crate) fn bind_to_context(mut self, method: StartMethod, prefix: &str) -> Process {
        self.method = Some(method);
        self.name = format!("{prefix}-{}", join_identity(&self.identity));
        self
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
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the process. A child started afterwards sees the new name.
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }

    /// Whether the process is daemonic. The default is the daemon flag of the process
    /// that created it.
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
        if self.creator != getpid() {
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
            parent: current_process(),
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

    /// Waits until the child ends ("can only join a started process" before
    /// `start()`).
    pub fn join(&mut self) -> Result<()> {
        let popen = self.started_popen("can only join a started process")?;
        if popen.wait(None).is_some() {
            forget_child(popen);
        }
        Ok(())
    }

    /// Waits up to `timeout` for the child to end. Returns `Ok` whether or not it
    /// ended, as Python's `join(timeout)`; check [`exitcode`](Process::exitcode) or
    /// [`is_alive`](Process::is_alive) to tell.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<()> {
        let popen = self.started_popen("can only join a started process")?;
        if popen.wait(Some(timeout)).is_some() {
            forget_child(popen);
        }
        Ok(())
    }

    /// Whether the child has started and not yet ended. Reaps it if it has ended.
    /// False after [`close`](Process::close).
    pub fn is_alive(&self) -> bool {
        match (&self.popen, self.closed) {
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

    /// The child's pid: `None` before `start()` (and after `close()`), and still
    /// `Some` after it ended.
    pub fn pid(&self) -> Option<i32> {
        self.popen.as_ref().map(|p| p.pid())
    }

    /// The exit code: `None` while the child runs (or before start); 0 after a normal
    /// return; 1 after a panic; `n` after [`exit(n)`](crate::exit); `-s` after it was
    /// killed by signal `s`.
    pub fn exitcode(&self) -> Option<i32> {
        self.popen.as_ref().and_then(|p| p.poll())
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
        self.started_popen("can only signal a started process")?
            .send_signal(signal)
    }

    /// Releases the resources of a finished child (its sentinel). Every later use
    /// except reading `name` and `daemon` is an error ("process object is closed").
    /// Closing a running child is an error; closing twice is fine.
    pub fn close(&mut self) -> Result<()> {
        if let Some(popen) = &self.popen {
            if popen.poll().is_none() {
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

    fn started_popen(&self, not_started: &str) -> Result<&Arc<dyn Popen>> {
        self.check_closed()?;
        self.popen
            .as_ref()
            .ok_or_else(|| Error::invalid(not_started))
    }
}

/// Python's repr: `<Process name='Process-1' pid=123 parent=100 started daemon>`.
impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Process name='{}'", self.name)?;
        let status = match (&self.popen, self.closed) {
            (_, true) => "closed".to_string(),
            (None, false) => "initial".to_string(),
            (Some(popen), false) => {
                write!(f, " pid={}", popen.pid())?;
                match popen.poll() {
                    None => "started".to_string(),
                    Some(code) => format!("stopped exitcode={code}"),
                }
            }
        };
        write!(f, " parent={} {status}", self.creator)?;
        if self.daemon {
            f.write_str(" daemon")?;
        }
        f.write_str(">")
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
/// (Python: `multiprocessing.parent_process()`).
pub fn parent_process() -> Option<ProcessInfo> {
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
        let previous_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            // `try_lock`: a panic while this thread holds CURRENT must not deadlock.
            let target = match CURRENT.try_lock() {
                Ok(current) => current_target(&current),
                Err(TryLockError::Poisoned(poisoned)) => current_target(&poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            match target {
                Some(name) => report_panic(&name, info),
                None => previous_hook(info),
            }
        }));
    });
}

/// The process name, if the calling thread runs a child's target.
fn current_target(current: &Current) -> Option<String> {
    (current.target_thread == Some(std::thread::current().id())).then(|| current.name.to_string())
}

/// Writes Python's report of an uncaught exception in a child: `Process NAME:` then
/// the panic's location and message (and a backtrace if `RUST_BACKTRACE` asks).
///
/// It writes to the stderr descriptor directly, not through `eprintln!`, whose output
/// a test harness may capture and a forked child would never print.
fn report_panic(name: &str, info: &panic::PanicHookInfo<'_>) {
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
    let mut report = format!("Process {name}:\npanicked{location}:\n{message}\n");
    let backtrace = std::backtrace::Backtrace::capture();
    if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
        report.push_str(&format!("stack backtrace:\n{backtrace}\n"));
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
    fn a_new_process_is_named_initial_and_not_alive() {
        let p = Process::new(|| {}, ());
        assert!(p.name().starts_with("Process-"));
        assert!(!p.is_alive());
        assert_eq!(p.pid(), None);
        assert_eq!(p.exitcode(), None);
        assert!(format!("{p:?}").ends_with("initial>"));
    }
}
