//! A semaphore shared by processes: `Semaphore(3)` lets at most three of ten
//! processes into a room at once, and a shared counter records the most it ever
//! held; `Semaphore(1)` lets in one at a time, so it behaves as a lock.
//!
//! Source: `000_a4853b86a63cc66d.txt` §(9) 进程信号量 (one sentence: a semaphore of
//! 1 is a lock; the example is ours). Run it with `just lesson semaphore`.

use std::time::{Duration, Instant};

use lessons::{secs, sleep};
use mpcore::{Event, Process, Semaphore, Value};

// ANCHOR: main
/// How long the first holders wait for the room to fill up: a safety net that a
/// healthy run never reaches.
const FILL_UP_LIMIT: Duration = Duration::from_secs(10);

/// Enters the room (one unit of `sem`), counts itself in, works one second (scaled),
/// counts itself out and leaves.
fn worker(sem: Semaphore, limit: i32, inside: Value<i32>, most: Value<i32>, full: Event) {
    sem.acquire();
    {
        let mut now = inside.lock(); // `most` shares this lock
        *now += 1;
        most.set(most.get().max(*now));
        if *now == limit {
            full.set(); // the room is full for the first time
        }
    }
    // The first ones in wait until the room is full, so that the limit is reached
    // however slowly the children start; the event stays set for the later ones.
    full.wait_timeout(FILL_UP_LIMIT);
    sleep(1.0);
    *inside.lock() -= 1;
    sem.release().expect("give back the unit taken above");
}

/// Ten processes share one room guarded by `Semaphore(limit)`.
fn room(limit: u32) -> mpcore::Result<()> {
    let sem = Semaphore::new(limit)?;
    let inside = Value::new(0)?; // how many are in the room now
    let most = Value::new_with_lock(0, inside.get_lock().clone())?; // the most at once
    let full = Event::new()?;
    println!("Semaphore({limit}), ten processes:");
    let start = Instant::now();
    let mut children = Vec::new();
    for _ in 0..10 {
        let args = (
            sem.clone(),
            limit as i32,
            inside.clone(),
            most.clone(),
            full.clone(),
        );
        let mut p = Process::new(worker, args);
        p.start()?;
        children.push(p);
    }
    for p in &mut children {
        p.join()?;
    }
    println!("most inside at once: {}", most.get());
    println!("took {}", secs(start.elapsed()));
    Ok(())
}

fn main() -> mpcore::Result<()> {
    mpcore::init();
    room(3)?; // three at a time: four rounds of work
    room(1)?; // one at a time, as with a lock: ten rounds
    Ok(())
}
// ANCHOR_END: main
