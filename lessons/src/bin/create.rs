//! Create a process: call a function in the parent, then the same function in a
//! child started with `Process::new(target, args)`, and wait for it with `join`.
//!
//! Source: `000_a4853b86a63cc66d.txt` §(1) 如何创建; `001_4b3cdbbaf17f337e.txt` §2
//! and `003_72388b9411e63b21.txt` 创建进程 build their processes the same way.
//! Run it with `just lesson create`.

use lessons::{ppid, sleep};
use mpcore::{Process, current_process};

// ANCHOR: main
/// Says who runs it, then "works" for five seconds (scaled).
fn info(title: String) {
    let me = current_process();
    println!("{title}");
    println!("{}", me.name); // the article prints __name__
    println!("father ppid {}", ppid());
    println!("self pid {}", me.pid);
    println!("-----------");
    println!("执行被调用函数中.......");
    sleep(5.0);
}

fn main() -> mpcore::Result<()> {
    mpcore::init();
    info("hello".to_string()); // an ordinary call, in this process

    let mut p = Process::new(info, ("apple".to_string(),));
    p.start()?; // the same function, in a new process
    p.join()?; // the parent waits until the child is done
    println!("继续执行父进程");
    Ok(())
}
// ANCHOR_END: main
