//! Start methods: the same program under fork, spawn and forkserver. The parent
//! changes a global just before each `start()`; a forked child sees the change, a
//! spawned child and a child of the fork server see the value the program started
//! with. The child also compares its parent as mpcore reports it with its parent in
//! the operating system, and the lesson ends by timing how long starting and
//! joining a child takes under each method.
//!
//! Source: `004_b9c4f45d0419849c.txt` §1 1) (the note on the three ways to start a
//! child). The lesson picks each method itself with `get_context`, so
//! `MPCORE_START_METHOD` does not change what it prints. Run it with
//! `just lesson start-methods`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lessons::secs;
use mpcore::{StartMethod, current_process, get_context, parent_process};

// ANCHOR: main
/// A global the parent changes just before it starts each child.
static GLOBAL: Mutex<&str> = Mutex::new("set when the program started");

/// The methods, in the order the lesson shows them.
const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::Forkserver,
];

/// How long each method keeps starting children for the timing: one start is too
/// quick to time on its own, so the lesson repeats it, as Python's `timeit` does.
const BUDGET: Duration = Duration::from_millis(100);

/// The fewest children timed per method, however slow one start is.
const AT_LEAST: u32 = 3;

/// The child: what it sees of the global, and who its parent is.
fn show() {
    let me = current_process();
    println!("{} sees GLOBAL = {}", me.name, GLOBAL.lock().unwrap());
    let parent = parent_process().expect("a child has a parent"); // mpcore's view
    let os_parent = std::os::unix::process::parent_id(); // the kernel's: getppid()
    println!(
        "{}: pid {}, parent_process() {}, getppid() {os_parent}",
        me.name, me.pid, parent.pid
    );
}

/// A child that does nothing: starting and joining it is all the work.
fn nothing() {}

fn main() -> mpcore::Result<()> {
    mpcore::init();
    println!(
        "main process {}: GLOBAL = {}",
        std::process::id(),
        GLOBAL.lock().unwrap()
    );

    // What the child inherits: one child per method, the global changed just before.
    for method in METHODS {
        let ctx = get_context(method); // this method, whatever the default is
        let mut p = ctx.process(show, ());
        println!(
            "== {method}: the parent changes GLOBAL, then starts {} ==",
            p.name()
        );
        *GLOBAL.lock().unwrap() = "changed by the parent";
        p.start()?;
        p.join()?;
    }

    // What a child costs: start and join children one at a time, for a while.
    println!(
        "== start and join children one at a time, for {} per method ==",
        secs(BUDGET)
    );
    for method in METHODS {
        let ctx = get_context(method);
        let begin = Instant::now();
        let mut children = 0;
        while children < AT_LEAST || begin.elapsed() < BUDGET {
            let mut p = ctx.process(nothing, ());
            p.start()?;
            p.join()?;
            children += 1;
        }
        println!("{method}: {} per child", ms(begin.elapsed() / children));
    }
    Ok(())
}
// ANCHOR_END: main

/// A duration in milliseconds with two decimals, e.g. `1.23ms`.
fn ms(duration: Duration) -> String {
    format!("{:.2}ms", duration.as_secs_f64() * 1000.0)
}
