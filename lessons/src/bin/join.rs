//! `join`: the parent waits for its children. Three processes started together and
//! then joined take about as long as one of them; `--sequential` starts and joins
//! them one at a time, which takes about three times as long.
//!
//! Source: `000_a4853b86a63cc66d.txt` §(2) join函数 (the commented-out variant is
//! `--sequential`). Run it with `just lesson join` or `just lesson join --sequential`.

use std::time::Instant;

use lessons::{ppid, scaled, secs, sleep};
use mpcore::{Process, current_process};

// ANCHOR: main
/// Prints its title, "works" for two seconds (scaled), then says who it is.
fn info(title: String) {
    println!("{title}");
    sleep(2.0);
    let me = current_process();
    println!("{}", me.name); // the article prints __name__
    println!("father ppid {}", ppid());
    println!("self pid {}", me.pid);
    println!("-----------");
}

fn main() -> mpcore::Result<()> {
    mpcore::init();
    let mut p1 = Process::new(info, ("A1".to_string(),));
    let mut p2 = Process::new(info, ("A2".to_string(),));
    let mut p3 = Process::new(info, ("A3".to_string(),));
    let begin = Instant::now();
    if lessons::has_flag("--sequential") {
        // 进程轮流干活: each one is done before the next starts.
        p1.start()?;
        p1.join()?;
        p2.start()?;
        p2.join()?;
        p3.start()?;
        p3.join()?;
    } else {
        // 并发干活: all three work at once, so their lines interleave.
        lessons::any_order();
        p1.start()?;
        p2.start()?;
        p3.start()?;
        p1.join()?;
        p2.join()?;
        p3.join()?;
        lessons::back_in_order();
    }
    let took = begin.elapsed();
    println!(
        "three processes that each sleep {} took {}",
        secs(scaled(2.0)),
        secs(took)
    );
    println!("all over"); // after every child's last line
    Ok(())
}
// ANCHOR_END: main
