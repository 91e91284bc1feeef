//! A `Queue` carries items between processes: a child puts, the parent gets. Both
//! sides may put into the same queue (the article says they cannot), and when three
//! children put, the parent gets all three items, in whatever order they arrived.
//!
//! Source: `000_a4853b86a63cc66d.txt` §(5) 队列; `001_4b3cdbbaf17f337e.txt`
//! "Process alignment Queue"; `002_d6eb6e5df7f7677e.txt` 使用Queue实现进程间通信
//! does the same as §(5).
//! Run it with `just lesson queue`.

use lessons::{any_order, back_in_order};
use mpcore::{Process, Queue};

// ANCHOR: main
/// 000 §(5)'s child: puts one item.
fn func(queue: Queue<String>) {
    queue.put("子进程加入数据".to_string()).unwrap();
}

/// The same child with the article's commented-out `get` put back.
fn func_both(queue: Queue<String>) {
    queue.put("子进程加入数据".to_string()).unwrap();
    println!("{}", queue.get().unwrap());
}

/// 001's child: says it starts, then puts a message with its number.
fn fun1(q: Queue<String>, i: u32) {
    println!("child process {i} starts put data");
    let message = format!("I am {i} communicating through Queue");
    q.put(message).unwrap();
}

fn main() -> mpcore::Result<()> {
    mpcore::init();

    // 000 §(5): the child puts, the parent gets.
    let myqueue = Queue::new()?;
    let mut p = Process::new(func, (myqueue.clone(),)); // a clone is the same queue
    p.start()?;
    println!("{}", myqueue.get()?);
    p.join()?;

    // The same with the article's two commented-out lines put back: both put, both get.
    any_order();
    let mut p = Process::new(func_both, (myqueue.clone(),));
    p.start()?;
    myqueue.put("主进程加入数据".to_string())?;
    println!("{}", myqueue.get()?);
    p.join()?;
    back_in_order();

    // 001: three children put, the parent gets all three.
    println!("-----------");
    let q = Queue::new()?;
    let mut process_list = Vec::new();
    any_order();
    for i in 0..3 {
        let mut p = Process::new(fun1, (q.clone(), i));
        p.start()?;
        process_list.push(p);
    }
    for p in &mut process_list {
        p.join()?;
    }
    back_in_order();
    println!("the main process obtains Queue data");
    any_order();
    for _ in &process_list {
        println!("{}", q.get()?); // one get per child, not just one
    }
    back_in_order();
    println!("end test");
    Ok(())
}
// ANCHOR_END: main
