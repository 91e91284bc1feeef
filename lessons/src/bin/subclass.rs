//! Subclassing `Process`: the `Run` trait is the Rust form of Python's
//! `class MyProcess(Process)` with its own `__init__` and `run()`. Five of them run at
//! once; the parent joins every one before it says "end the test".
//!
//! Source: `001_4b3cdbbaf17f337e.txt` §3 (and the class form of
//! `000_a4853b86a63cc66d.txt` §(8)). Run it with `just lesson subclass`.

use mpcore::{Process, Run};
use serde::{Deserialize, Serialize};

// ANCHOR: main
/// Python's `class MyProcess(Process)`: its fields are the state `__init__` stores,
/// `run` is the overridden `run()`. It travels to the child, so it is serde.
#[derive(Serialize, Deserialize)]
struct MyProcess {
    name: String,
}

impl MyProcess {
    /// `MyProcess('Python')`: `super().__init__()` (here `Process::from_run`), then
    /// the name, which is also the process's name.
    fn process(name: &str) -> Process {
        let me = MyProcess {
            name: name.to_string(),
        };
        Process::from_run(me).with_name(name)
    }
}

impl Run for MyProcess {
    fn run(&mut self) {
        println!("test {} multiprocess", self.name);
    }
}

fn main() -> mpcore::Result<()> {
    mpcore::init();
    let mut process_list = Vec::new();
    lessons::any_order(); // five processes print at once
    for _ in 0..5 {
        let mut p = MyProcess::process("Python");
        p.start()?;
        process_list.push(p);
    }
    for p in &mut process_list {
        p.join()?; // every one of them, not only the last
    }
    lessons::back_in_order();
    println!("end the test");
    Ok(())
}
// ANCHOR_END: main
