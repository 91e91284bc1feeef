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
//! - the banners around lines whose order is free: [`any_order`], [`back_in_order`].
//!
//! The Python reference scripts in `lessons/reference/` repeat the few lines of this
//! file they need, so that each of them runs on its own.

use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
}
