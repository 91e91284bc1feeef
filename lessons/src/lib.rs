//! Small helpers shared by the lessons, and only by them.
//!
//! Each lesson is one binary in `src/bin/` that redoes one section of the tutorials
//! with mpcore. What every lesson needs besides mpcore lives here:
//!
//! - time: the articles sleep for seconds; [`sleep`] scales those seconds by
//!   [`time_scale`] so a lesson finishes in about two seconds (`--real-time` and the
//!   `LESSON_TIME_SCALE` variable change that), and [`time`] prints a Unix
//!   timestamp as Python's `time.time()` does;
//! - the command line: [`has_flag`];
//! - what the articles print with `os.getppid()`: [`ppid`];
//! - the banners around lines whose order is free: [`any_order`], [`back_in_order`];
//! - [`Event`], a stand-in for `mpcore::Event` until mpcore has one.
//!
//! The Python reference scripts in `lessons/reference/` repeat the few lines of this
//! file they need, so that each of them runs on its own.

use std::fmt;
use std::io::{self, PipeReader, PipeWriter, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The time scale used when neither `--real-time` nor [`TIME_SCALE_ENV`] says
/// otherwise: one article second lasts a tenth of a second.
pub const DEFAULT_TIME_SCALE: f64 = 0.1;

/// The environment variable that sets the time scale (a float; `1` is the article's
/// own durations). It wins over `--real-time`; the tests use it.
pub const TIME_SCALE_ENV: &str = "LESSON_TIME_SCALE";

/// How many real seconds one second of the article lasts.
///
/// [`TIME_SCALE_ENV`] if it is set, else `1.0` with the flag `--real-time`, else
/// [`DEFAULT_TIME_SCALE`]. Read once per process.
///
/// # Panics
///
/// If [`TIME_SCALE_ENV`] is set to something that is not a number at least 0.
pub fn time_scale() -> f64 {
    static SCALE: OnceLock<f64> = OnceLock::new();
    *SCALE.get_or_init(|| match std::env::var(TIME_SCALE_ENV) {
        Ok(text) if !text.is_empty() => match text.parse::<f64>() {
            Ok(scale) if scale >= 0.0 && scale.is_finite() => scale,
            _ => panic!("{TIME_SCALE_ENV} must be a number at least 0, not {text:?}"),
        },
        _ if has_flag("--real-time") => 1.0,
        _ => DEFAULT_TIME_SCALE,
    })
}

/// `secs` article seconds as a real [`Duration`], after [`time_scale`].
pub fn scaled(secs: f64) -> Duration {
    Duration::from_secs_f64(secs * time_scale())
}

/// Sleeps for `secs` article seconds, scaled by [`time_scale`] (the articles'
/// `time.sleep(secs)`).
pub fn sleep(secs: f64) {
    std::thread::sleep(scaled(secs));
}

/// Whether `flag` (e.g. `"--sequential"`) is one of the program's arguments.
pub fn has_flag(flag: &str) -> bool {
    std::env::args().skip(1).any(|arg| arg == flag)
}

// ANCHOR: ppid
/// The parent's pid, as the articles print it with `os.getppid()`.
///
/// In a child this is the parent mpcore reports ([`mpcore::parent_process`]): the
/// process that called `start()`. That is also the operating system's parent under
/// fork and spawn, but not under forkserver, where the fork server is. In the main
/// process, which mpcore did not start, it is the operating system's parent (the
/// shell, `just` or the test harness).
pub fn ppid() -> i32 {
    match mpcore::parent_process() {
        Some(parent) => parent.pid,
        None => std::os::unix::process::parent_id() as i32,
    }
}
// ANCHOR_END: ppid

/// A Unix timestamp that prints as Python prints `time.time()`: the shortest
/// decimal that reads back as the same float, e.g. `1763783912.3457205`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Timestamp(pub f64);

/// Now, as seconds since the Unix epoch (Python's `time.time()`).
pub fn time() -> Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(since_epoch.as_secs_f64())
}

/// Python's `repr(float)` for the timestamps a lesson prints: Rust's `{}` already
/// prints the shortest round-trip digits; Python adds `.0` to whole numbers.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.fract() == 0.0 && self.0.is_finite() {
            write!(f, "{:.1}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// A duration as a lesson prints it: seconds with two decimals, e.g. `1.02s`.
pub fn secs(duration: Duration) -> String {
    format!("{:.2}s", duration.as_secs_f64())
}

/// The line a lesson prints before lines whose order changes from run to run.
pub const ANY_ORDER: &str = "--- the next lines may come in any order ---";

/// The line a lesson prints once its output is in a fixed order again.
pub const BACK_IN_ORDER: &str = "--- back in order ---";

/// Prints [`ANY_ORDER`]. The harness sorts the lines between it and
/// [`BACK_IN_ORDER`] before it compares them.
pub fn any_order() {
    println!("{ANY_ORDER}");
}

/// Prints [`BACK_IN_ORDER`], closing a block opened by [`any_order`].
pub fn back_in_order() {
    println!("{BACK_IN_ORDER}");
}

/// A flag that one process sets and others wait for: the few methods of Python's
/// `multiprocessing.Event` the lessons need, over a pipe.
///
/// Stand-in until `mpcore::Event` exists; a lesson switches by changing the path.
/// Setting writes one byte that nobody reads, so the read end stays readable and
/// every waiter sees it.
///
/// It can be an argument of a child's target or a field of a [`mpcore::Run`] value:
/// under fork the child inherits the pipe, and when mpcore encodes a child's
/// arguments (spawn, forkserver) the two descriptors travel with the child as
/// [`mpcore::reduction`] handles.
#[derive(Debug)]
pub struct Event {
    read: PipeReader,
    write: PipeWriter,
}

impl Event {
    /// A new flag, not set (Python: `multiprocessing.Event()`).
    pub fn new() -> io::Result<Event> {
        let (read, write) = io::pipe()?;
        Ok(Event { read, write })
    }

    /// Sets the flag, waking every waiter (Python: `Event.set()`).
    pub fn set(&self) -> io::Result<()> {
        if !self.is_set()? {
            (&self.write).write_all(b"!")?;
        }
        Ok(())
    }

    /// Whether the flag is set (Python: `Event.is_set()`).
    pub fn is_set(&self) -> io::Result<bool> {
        self.poll(PollTimeout::ZERO)
    }

    /// Waits until the flag is set (Python: `Event.wait()`).
    pub fn wait(&self) -> io::Result<()> {
        self.poll(PollTimeout::NONE).map(drop)
    }

    /// Waits up to `timeout` for the flag; whether it is set (Python:
    /// `Event.wait(timeout)`).
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<bool> {
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        self.poll(timeout)
    }

    /// Clears the flag (Python: `Event.clear()`).
    pub fn clear(&self) -> io::Result<()> {
        while self.is_set()? {
            (&self.read).read_exact(&mut [0])?;
        }
        Ok(())
    }

    fn poll(&self, timeout: PollTimeout) -> io::Result<bool> {
        loop {
            let mut fds = [PollFd::new(self.read.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(ready) => return Ok(ready > 0),
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(errno.into()),
            }
        }
    }
}

/// Another handle on the same flag (both descriptors duplicated).
///
/// # Panics
///
/// If the process has no descriptor left to duplicate into.
impl Clone for Event {
    fn clone(&self) -> Event {
        Event {
            read: self.read.try_clone().expect("duplicate the Event's pipe"),
            write: self.write.try_clone().expect("duplicate the Event's pipe"),
        }
    }
}

/// One descriptor of an [`Event`], encoded as an mpcore handle.
struct Fd<T>(T);

impl<T: AsFd> Serialize for Fd<&T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        mpcore::reduction::serialize_fd("Event", self.0.as_fd(), s)
    }
}

impl<'de> Deserialize<'de> for Fd<OwnedFd> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        mpcore::reduction::deserialize_fd(d).map(Fd)
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (Fd(&self.read), Fd(&self.write)).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (Fd(read), Fd(write)) = <(Fd<OwnedFd>, Fd<OwnedFd>)>::deserialize(d)?;
        Ok(Event {
            read: read.into(),
            write: write.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_python_floats() {
        assert_eq!(
            Timestamp(1763783912.3457205).to_string(),
            "1763783912.3457205"
        );
        assert_eq!(Timestamp(1763783912.0).to_string(), "1763783912.0");
        assert_eq!(Timestamp(1763783912.5).to_string(), "1763783912.5");
    }

    #[test]
    fn durations_print_with_two_decimals() {
        assert_eq!(secs(Duration::from_millis(1020)), "1.02s");
        assert_eq!(secs(Duration::from_millis(5)), "0.01s");
    }

    #[test]
    fn an_event_is_set_once_and_seen_by_every_handle() {
        let event = Event::new().unwrap();
        let other = event.clone();
        assert!(!event.is_set().unwrap());
        assert!(!other.wait_timeout(Duration::from_millis(1)).unwrap());
        other.set().unwrap();
        other.set().unwrap();
        event.wait().unwrap();
        assert!(event.is_set().unwrap() && other.is_set().unwrap());
        event.clear().unwrap();
        assert!(!other.is_set().unwrap());
    }

    #[test]
    fn an_event_set_in_a_child_wakes_the_parent() {
        fn child(started: Event) {
            started.set().unwrap();
        }
        let started = Event::new().unwrap();
        let mut p = mpcore::Process::new(child, (started.clone(),));
        p.start().unwrap();
        started.wait().unwrap();
        p.join().unwrap();
        assert_eq!(p.exitcode(), Some(0));
    }
}
