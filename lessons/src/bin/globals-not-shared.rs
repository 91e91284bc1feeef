//! Ordinary global variables are not shared between processes: the child appends to
//! its copy of a global list, the parent to its own, and neither sees the other's
//! items.
//!
//! Source: `000_a4853b86a63cc66d.txt` §(6) 多进程中普通全局变量无法共享.
//! Run it with `just lesson globals-not-shared`.

use std::sync::Mutex;

use lessons::{ppid, sleep, time};
use mpcore::{Obj, Process};

// ANCHOR: main
/// The global list, Python's `datalist = []`. Each process has its own.
static DATALIST: Mutex<Vec<Obj>> = Mutex::new(Vec::new());

/// The child: appends 1, 2, 3 and prints the list.
fn adddata() {
    let mut datalist = DATALIST.lock().unwrap();
    datalist.extend([1, 2, 3].map(Obj::from));
    println!(
        "{} {} {} {}",
        std::process::id(),
        ppid(),
        Obj::List(datalist.clone()), // Display is Python's repr
        time()
    );
}

fn main() -> mpcore::Result<()> {
    mpcore::init();
    let mut p = Process::new(adddata, ());
    p.start()?;
    sleep(2.0);
    p.join()?; // the child has appended and printed: its lines come first

    let mut datalist = DATALIST.lock().unwrap(); // still empty here
    datalist.extend(["a", "b", "c"].map(Obj::from));
    println!(
        "{} {} {} {}",
        std::process::id(),
        ppid(),
        Obj::List(datalist.clone()), // Display is Python's repr
        time()
    );
    Ok(())
}
// ANCHOR_END: main
