//! Ordinary global variables are not shared between processes: the child appends to
//! its copy of a global list, the parent to its own, and neither sees the other's
//! items.
//!
//! Source: `000_a4853b86a63cc66d.txt` §(6) 多进程中普通全局变量无法共享.
//! Run it with `just lesson globals-not-shared`.

use std::fmt;
use std::sync::Mutex;

use lessons::{ppid, sleep, time};
use mpcore::Process;

// ANCHOR: main
/// The global list, Python's `datalist = []`. Each process has its own.
static DATALIST: Mutex<Vec<Item>> = Mutex::new(Vec::new());

/// The child: appends 1, 2, 3 and prints the list.
fn adddata() {
    let mut datalist = DATALIST.lock().unwrap();
    datalist.extend([Item::Int(1), Item::Int(2), Item::Int(3)]);
    println!(
        "{} {} {} {}",
        std::process::id(),
        ppid(),
        List(&datalist),
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
    datalist.extend([Item::Str("a"), Item::Str("b"), Item::Str("c")]);
    println!(
        "{} {} {} {}",
        std::process::id(),
        ppid(),
        List(&datalist),
        time()
    );
    Ok(())
}
// ANCHOR_END: main

/// An item of the list: Python's list holds ints in the child and strings in the
/// parent. (To become `mpcore::Obj`, whose `Display` is Python's repr.)
enum Item {
    Int(i64),
    Str(&'static str),
}

/// A list printed as Python prints it: `[1, 2, 3]`, `['a', 'b', 'c']`.
struct List<'a>(&'a [Item]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match item {
                Item::Int(n) => write!(f, "{n}")?,
                Item::Str(s) => write!(f, "'{s}'")?,
            }
        }
        f.write_str("]")
    }
}
