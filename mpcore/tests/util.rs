//! `util`: finalizers and their order at exit, and mpcore's logger, under every
//! start method (CPython behaviours 145-147).
//!
//! The logger is global to a process, so the tests that turn it on run in a fresh
//! copy of this test binary (`scenario`), whose stderr is a pipe: its children
//! inherit that stderr, so the lines a child logs before its target runs are
//! captured too.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use common::{Pipe, Writer, per_method, process, run, scenario, stdout};
use mpcore::util::{self, Finalize};
use mpcore::{Process, StartMethod, get_context};

/// Row 147 (CPython's `test_finalize`), in a child. The Rust form of each step:
///
/// - `a = Foo(); Finalize(a, send, ('a',)); del a`: the handle plays the object, so
///   `drop(a)` is the object's death and runs the callback;
/// - `close_b = Finalize(b, ...); close_b(); close_b(); del b`: two `call()`s and a
///   drop, of which only the first runs it;
/// - `c` has no exit priority and its object stays alive: a handle that is never
///   dropped (the process ends first), so it never runs;
/// - `d10`, `d01`, `d02`, `d03` have priorities 1, 0, 0, 0, and their objects stay
///   alive until the exit: live handles;
/// - `Finalize(None, send, ('e',), exitpriority=-10)` and `('STOP', -100)` belong
///   to no object: [`Finalize::detach`];
/// - `util._exit_function(); os._exit(0)`, which ends the child without collecting
///   its locals: [`mpcore::exit`], which runs the at-exit work and leaves with
///   `_exit`, dropping nothing.
fn finalize_steps(w: Writer) {
    let say = |word: &'static str| {
        let w = w.clone();
        move || w.say(word)
    };

    let a = Finalize::new(say("a"));
    drop(a);

    let close_b = Finalize::new(say("b"));
    assert!(close_b.call());
    assert!(!close_b.call());
    drop(close_b);

    let _c = Finalize::new(say("c"));

    let _d10 = Finalize::with_exit_priority(say("d10"), 1);
    let _d01 = Finalize::with_exit_priority(say("d01"), 0);
    let _d02 = Finalize::with_exit_priority(say("d02"), 0);
    let _d03 = Finalize::with_exit_priority(say("d03"), 0);

    Finalize::with_exit_priority(say("e"), -10).detach();
    Finalize::with_exit_priority(say("STOP"), -100).detach();

    drop(w);
    mpcore::exit(0);
}

/// A child that reports what it inherited of the logger.
fn report_logger(w: Writer) {
    let logger = mpcore::get_logger();
    w.say(&format!(
        "{} {} {}",
        logger.level(),
        logger.effective_level(),
        logger.logs_to_stderr()
    ));
}

/// Panics in callbacks, in a child: a panic in this multi-threaded test process
/// while another test forks could leave the panic machinery's locks held in that
/// test's child.
fn panicking_finalizers(w: Writer, err: Writer) {
    nix::unistd::dup2_stderr(&err.0).unwrap();
    drop(err);
    drop(Finalize::new(|| panic!("dropped")));
    w.say("drop contained");

    let f = Finalize::new(|| panic!("called"));
    let called = panic::catch_unwind(AssertUnwindSafe(|| f.call()));
    w.say(&format!(
        "call panicked {} active {}",
        called.is_err(),
        f.still_active()
    ));

    let detached = panic::catch_unwind(|| Finalize::new(|| {}).detach());
    w.say(&format!("detach panicked {}", detached.is_err()));

    // At exit, a panic is reported and the next finalizer still runs.
    Finalize::with_exit_priority(|| panic!("at exit"), 2).detach();
    let last = w.clone();
    Finalize::with_exit_priority(move || last.say("after the panic"), 1).detach();
}

fn report_exiting(w: Writer) {
    w.say(&format!("exiting {}", util::is_exiting()));
}

per_method! {
    fn finalizers_run_in_cpythons_order_in_a_child(method: StartMethod) {
        let pipe = Pipe::new();
        let code = run(process(method, finalize_steps, (pipe.writer.clone(),)));
        assert_eq!(code, 0);
        let out = pipe.read_all();
        let words: Vec<&str> = out.lines().collect();
        assert_eq!(words, ["a", "b", "d10", "d03", "d02", "d01", "e", "STOP"]);
    }

    fn panics_in_finalizers_are_contained(method: StartMethod) {
        let (pipe, err) = (Pipe::new(), Pipe::new());
        let p = process(method, panicking_finalizers, (pipe.writer.clone(), err.writer.clone()));
        // The target returned: the exit code is 0 whatever the finalizers do.
        assert_eq!(run(p), 0);
        assert_eq!(
            pipe.read_all(),
            "drop contained\ncall panicked true active false\ndetach panicked true\n\
             after the panic\n"
        );
        // Each panic was reported on the child's stderr.
        let err = err.read_all();
        for message in ["dropped", "called", "cannot be detached", "at exit", "was ignored"] {
            assert!(err.contains(message), "{message:?} missing from:\n{err}");
        }
    }

    fn a_child_inherits_the_level_set_before_start(method: StartMethod) {
        // Every test of this binary shares the logger: this is the only one that
        // changes it in this process, and it never turns printing on.
        let logger = mpcore::get_logger();
        let pipe = Pipe::new();
        logger.set_level(32);
        run(process(method, report_logger, (pipe.writer.clone(),)));
        logger.set_level(util::NOTSET);
        run(process(method, report_logger, (pipe.writer.clone(),)));
        let out = pipe.read_all();
        // The level, the effective level, and whether the child prints.
        assert_eq!(out, "32 32 false\n0 30 false\n");
    }

    fn a_child_is_not_exiting_while_its_target_runs(method: StartMethod) {
        let pipe = Pipe::new();
        run(process(method, report_exiting, (pipe.writer.clone(),)));
        assert_eq!(pipe.read_all(), "exiting false\n");
    }

    fn a_child_logs_its_life_at_info(method: StartMethod) {
        let out = scenario("log_life", method);
        let err = stderr(&out);
        let child: Vec<&str> = err.lines().filter(|l| l.contains("/Process-1]")).collect();
        assert_eq!(
            child,
            [
                "[INFO/Process-1] child process calling self.run()",
                "[INFO/Process-1] from child",
                "[INFO/Process-1] process shutting down",
                "[INFO/Process-1] process exiting with exitcode 0",
            ],
            "{err}"
        );
        let main: Vec<&str> = err.lines().filter(|l| l.contains("/MainProcess]")).collect();
        assert_eq!(main, ["[INFO/MainProcess] process shutting down"], "{err}");
        // Nothing else: no DEBUG line at INFO, no record in another format.
        assert_eq!(err.lines().count(), 5, "{err}");
    }

    fn the_logger_and_its_level_reach_every_child(method: StartMethod) {
        let out = scenario("log_level", method);
        let text = stdout(&out);
        assert_eq!(values(&text, "child level"), ["32 32 false", "10 10 true"], "{text}");
        let err = stderr(&out);
        // Set to 32 and not logging to stderr: the first child printed nothing.
        assert!(!err.contains("/Process-1]"), "{err}");
        // The second child logs at DEBUG, as its parent.
        for line in [
            "[INFO/Process-2] child process calling self.run()",
            "[DEBUG/Process-2] running all \"atexit\" finalizers with priority >= 0",
            "[DEBUG/Process-2] running the remaining \"atexit\" finalizers",
            "[INFO/Process-2] process exiting with exitcode 0",
        ] {
            assert!(err.lines().any(|l| l == line), "{line:?} missing from:\n{err}");
        }
    }

    fn nothing_is_printed_while_logging_is_off(method: StartMethod) {
        let out = scenario("log_off", method);
        // The child ran and logged at every level, with its level as low as it goes.
        assert_eq!(values(&stdout(&out), "child"), ["done"]);
        assert_eq!(stderr(&out), "");
    }

    fn the_main_process_runs_its_finalizers_around_the_joins(method: StartMethod) {
        let out = scenario("main_at_exit", method);
        let text = stdout(&out);
        let at = |word: &str| text.find(word).unwrap_or_else(|| panic!("{word} missing: {text}"));
        // Priority 0 runs before the joins: the daemon (asleep for 30 s) is still
        // there. Priority -1 runs after them: no child is left, and the worker has
        // printed its last line.
        let p0 = values(&text, "main p0 children");
        assert!(p0.len() == 1 && p0[0].contains("Process-2"), "{text}");
        assert_eq!(values(&text, "main m1 children"), ["[]"], "{text}");
        assert!(at("main p0") < at("main m1"), "{text}");
        assert!(at("child end") < at("main m1"), "{text}");
        assert!(!text.contains("never"), "{text}");
        assert!(!text.contains("daemon end"), "{text}");
        let err = stderr(&out);
        let main: Vec<&str> = err.lines().filter(|l| l.contains("/MainProcess]")).collect();
        assert_eq!(
            main,
            [
                "[INFO/MainProcess] process shutting down",
                "[DEBUG/MainProcess] running all \"atexit\" finalizers with priority >= 0",
                "[INFO/MainProcess] calling terminate() for daemon Process-2",
                "[INFO/MainProcess] calling join() for process Process-1",
                "[INFO/MainProcess] calling join() for process Process-2",
                "[DEBUG/MainProcess] running the remaining \"atexit\" finalizers",
            ],
            "{err}"
        );
    }
}

#[test]
fn fork_a_child_runs_none_of_its_parents_finalizers() {
    let pipe = Pipe::new();
    let w = pipe.writer.clone();
    let parent = Arc::new(Finalize::with_exit_priority(
        move || w.say("parent finalizer"),
        5,
    ));
    let copy = Arc::clone(&parent);
    let w = pipe.writer.clone();
    let p = get_context(StartMethod::Fork).process_from_closure(move || {
        // The copied handle is not registered here: calling it does nothing, and
        // the child's exit does not run it either.
        w.say(&format!(
            "active {} ran {}",
            copy.still_active(),
            copy.call()
        ));
    });
    assert_eq!(run(p), 0);
    assert!(parent.still_active());
    parent.cancel();
    drop(parent);
    assert_eq!(pipe.read_all(), "active false ran false\n");
}

#[test]
fn contexts_hand_out_the_one_logger() {
    for method in mpcore::get_all_start_methods() {
        let logger = get_context(method).get_logger();
        assert_eq!(logger, mpcore::get_logger());
        assert_eq!(logger.name(), "multiprocessing");
    }
}

// ---------------------------------------------------------------------------
// Scenarios: whole programs, run in a fresh copy of this binary.

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The rest of each line of `out` that starts with `key` and a space.
fn values<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    let key = format!("{key} ");
    out.lines().filter_map(|l| l.strip_prefix(&key)).collect()
}

fn log_from_child() {
    mpcore::get_logger().info("from child");
}

fn print_logger() {
    let logger = mpcore::get_logger();
    println!(
        "child level {} {} {}",
        logger.level(),
        logger.effective_level(),
        logger.logs_to_stderr()
    );
}

fn log_everything() {
    let logger = mpcore::get_logger();
    for level in [util::SUBDEBUG, util::DEBUG, util::INFO, util::CRITICAL] {
        logger.log(level, "a record");
    }
    util::sub_debug("sub_debug");
    util::info("info");
    util::sub_warning("sub_warning");
    util::warn("warn");
    println!("child done");
}

fn late_print(word: String, millis: u64) {
    std::thread::sleep(Duration::from_millis(millis));
    println!("{word}");
}

mod scenarios {
    use super::*;
    use crate::common::in_scenario;

    #[test]
    fn log_life() {
        if !in_scenario("log_life") {
            return;
        }
        mpcore::init();
        mpcore::log_to_stderr(util::INFO);
        run(Process::new(log_from_child, ()));
    }

    #[test]
    fn log_level() {
        if !in_scenario("log_level") {
            return;
        }
        mpcore::init();
        mpcore::get_logger().set_level(32);
        run(Process::new(print_logger, ()));
        mpcore::log_to_stderr(util::DEBUG);
        run(Process::new(print_logger, ()));
    }

    #[test]
    fn log_off() {
        if !in_scenario("log_off") {
            return;
        }
        mpcore::init();
        mpcore::get_logger().set_level(util::SUBDEBUG);
        let mut daemon =
            Process::new(late_print, ("daemon end".to_string(), 30_000)).with_daemon(true);
        daemon.start().unwrap();
        run(Process::new(log_everything, ()));
    }

    #[test]
    fn main_at_exit() {
        if !in_scenario("main_at_exit") {
            return;
        }
        mpcore::init();
        mpcore::log_to_stderr(util::DEBUG);
        // Each reports the children still registered when it runs.
        let report = |word: &'static str| {
            move || {
                let names: Vec<String> = mpcore::active_children()
                    .into_iter()
                    .map(|c| c.name)
                    .collect();
                println!("{word} children [{}]", names.join(" "));
            }
        };
        Finalize::with_exit_priority(report("main m1"), -1).detach();
        Finalize::with_exit_priority(report("main p0"), 0).detach();
        // No exit priority: never runs at exit, however long the handle lives.
        std::mem::forget(Finalize::new(|| println!("never")));
        let mut worker = Process::new(late_print, ("child end".to_string(), 300));
        worker.start().unwrap();
        let mut daemon =
            Process::new(late_print, ("daemon end".to_string(), 30_000)).with_daemon(true);
        daemon.start().unwrap();
    }
}
