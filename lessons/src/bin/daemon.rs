//! Daemonic processes: a daemon cannot start children of its own, and it is
//! terminated as soon as the main process ends, so its last line never comes.
//!
//! Source: `000_a4853b86a63cc66d.txt` §(8) 守护进程, and the daemon notes of
//! `001_4b3cdbbaf17f337e.txt` §3. Run it with `just lesson daemon`.

use lessons::{Event, sleep};
use mpcore::{Process, Run, current_process};
use serde::{Deserialize, Serialize};

// ANCHOR: main
/// A daemon that tries to start a child: `start()` refuses.
fn try_to_have_children() {
    let mut child = Process::new(|| {}, ());
    match child.start() {
        Ok(()) => println!("a daemon started a child?!"),
        Err(err) => println!("{} cannot start a child: {err}", current_process().name),
    }
}

/// Python's `class Piao(Process)`: says it started, works for two seconds
/// (scaled), says it ended.
#[derive(Serialize, Deserialize)]
struct Piao {
    /// Set once the first line is out, so the parent knows it was printed.
    started: Event,
}

impl Run for Piao {
    fn run(&mut self) {
        let name = current_process().name;
        println!("{name} is piaoing");
        self.started.set().expect("tell the parent");
        sleep(2.0);
        println!("{name} is piao end"); // never printed: main ends first
    }
}

fn main() -> mpcore::Result<()> {
    mpcore::init();
    // A daemon may not have children.
    let mut d = Process::new(try_to_have_children, ()).with_daemon(true);
    d.start()?;
    d.join()?;

    // A daemon ends when the main process ends.
    let started = Event::new()?;
    let piao = Piao {
        started: started.clone(),
    };
    let mut p = Process::from_run(piao).with_name("egon").with_daemon(true);
    p.start()?;
    started.wait()?; // without this, main could end before the daemon prints a line
    println!("主");
    Ok(()) // main ends here: mpcore terminates the daemon (and reaps it)
}
// ANCHOR_END: main
