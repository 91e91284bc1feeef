//! Ten processes share one `Queue`: each puts its number, and the parent gets ten
//! items. They arrive in whatever order the children ran, so the parent prints the
//! list sorted.
//!
//! Source: `000_a4853b86a63cc66d.txt` §(7) 进程间数据共享, 1. 使用multiprocessing.Queue().
//! Run it with `just lesson share-queue`.

use lessons::{any_order, back_in_order, ppid, time};
use mpcore::{Obj, Process, Queue};

// ANCHOR: main
/// Each child: puts its number, then says so with its parent's pid and its own.
fn adddata(queue: Queue<u32>, i: u32) {
    queue.put(i).unwrap();
    println!("put {i} {} {} {}", ppid(), std::process::id(), time());
}

fn main() -> mpcore::Result<()> {
    mpcore::init();
    let queue = Queue::new()?;
    let mut mylist = Vec::new();
    let mut process_list = Vec::new();
    any_order();
    for i in 0..10 {
        let mut p = Process::new(adddata, (queue.clone(), i));
        p.start()?;
        process_list.push(p);
    }
    for _ in &process_list {
        mylist.push(queue.get()?); // in the order the items arrived
    }
    for p in &mut process_list {
        p.join()?;
    }
    back_in_order();
    mylist.sort(); // the order they arrived in changes from run to run
    println!("{}", Obj::from(mylist)); // Python's repr of a list
    Ok(())
}
// ANCHOR_END: main
