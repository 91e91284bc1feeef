//! A lock shared by processes: ten children sleep, then each prints its number while
//! holding one `RLock`, so the lines never mix, yet they come in any order. With
//! `--kill-holder`, a child is killed while it holds the lock, and the parent still
//! gets it: mpcore notices the dead holder, where CPython waits forever.
//!
//! Source: `000_a4853b86a63cc66d.txt` §(3) 锁; the lock notes of
//! `004_b9c4f45d0419849c.txt` (2) 加互斥锁. Run it with `just lesson lock`, or
//! `just lesson lock --kill-holder`.

use lessons::{any_order, back_in_order, has_flag, scaled, sleep};
use mpcore::{Event, Obj, Process, RLock, current_process};

// ANCHOR: main
/// Works five seconds (scaled) without the lock, then prints `i` holding it.
fn showdata(lock: RLock, i: i32) {
    sleep(5.0);
    let _held = lock.lock(); // Python: `with lock:`
    println!("{i}");
} // `_held` is dropped here: the lock is released

fn main() -> mpcore::Result<()> {
    mpcore::init();
    if has_flag("--kill-holder") {
        return kill_holder();
    }
    let lock = RLock::new()?;
    any_order(); // who gets the lock first is up to the scheduler
    let mut children = Vec::new();
    for num in 0..10 {
        let mut p = Process::new(showdata, (lock.clone(), num));
        p.start()?;
        children.push(p);
    }
    for p in &mut children {
        p.join()?;
    }
    back_in_order();
    Ok(())
}
// ANCHOR_END: main

// ANCHOR: kill_holder
/// Takes the lock, says so, and keeps it until it is killed.
fn hold_forever(lock: RLock, holding: Event) {
    let _held = lock.lock();
    println!("{} holds the lock", current_process().name);
    holding.set();
    loop {
        sleep(60.0);
    }
}

/// A holder is killed with SIGKILL: no destructor runs, nothing releases the lock.
fn kill_holder() -> mpcore::Result<()> {
    let lock = RLock::new()?;
    let holding = Event::new()?;
    let mut holder = Process::new(hold_forever, (lock.clone(), holding.clone()));
    holder.start()?;
    holding.wait();
    holder.kill()?;
    holder.join()?;
    println!("killed it: exitcode {}", Obj::from(holder.exitcode()));

    // CPython waits out the timeout here and gets False.
    let got_it = lock.acquire_timeout(scaled(5.0));
    println!("acquire(timeout=5): {}", Obj::from(got_it));
    if got_it {
        println!("owner_died: {}", Obj::from(lock.owner_died())); // repair the data here
        lock.release()?;
        println!(
            "after release, owner_died: {}",
            Obj::from(lock.owner_died())
        );
    }
    Ok(())
}
// ANCHOR_END: kill_holder
