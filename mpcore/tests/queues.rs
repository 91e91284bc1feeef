//! Queues across processes: the behaviours of CPython's `_test_multiprocessing.py`
//! (rows 60-75 of the behaviour catalogue), plus mpcore's guarantees, under fork.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{BOUND, PROMPT, finish, run, start};
use mpcore::{Connection, Error, JoinableQueue, Process, Queue, SimpleQueue, pipe_simplex};
use serde::{Deserialize, Serialize};

#[test]
fn handles_are_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Queue<String>>();
    check::<JoinableQueue<Vec<u8>>>();
    check::<SimpleQueue<u8>>();
}

#[test]
fn a_bounded_queue_fills_and_refuses_more() {
    let q = Queue::with_maxsize(6).unwrap();
    for i in 1..=5 {
        q.put(i).unwrap();
    }
    q.put_nowait(6).unwrap();
    assert!(!q.empty());
    assert!(q.full());
    assert_eq!(q.qsize(), 6);
    let start = Instant::now();
    assert!(matches!(q.put_nowait(7), Err(Error::Full)));
    assert!(matches!(q.put_timeout(7, Duration::ZERO), Err(Error::Full)));
    assert!(start.elapsed() < PROMPT);
    let start = Instant::now();
    assert!(matches!(
        q.put_timeout(7, Duration::from_millis(300)),
        Err(Error::Full)
    ));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < PROMPT,
        "{waited:?}"
    );
    assert_eq!(q.qsize(), 6, "failed puts are not counted");
    assert_eq!(q.get().unwrap(), 1);
    assert!(!q.full());
    q.put_nowait(7).unwrap();
    let got: Vec<i32> = (0..6).map(|_| q.get().unwrap()).collect();
    assert_eq!(got, [2, 3, 4, 5, 6, 7]);
}

fn get_after(q: Queue<u32>, delay_ms: u64) {
    std::thread::sleep(Duration::from_millis(delay_ms));
    assert_eq!(q.get().unwrap(), 1);
}

#[test]
fn a_put_blocked_on_a_full_queue_resumes_when_another_process_gets() {
    let q = Queue::with_maxsize(1).unwrap();
    q.put(1u32).unwrap();
    let p = start(Process::new(get_after, (q.clone(), 200)));
    q.put_timeout(2, BOUND).unwrap();
    assert_eq!(finish(p), 0);
    assert_eq!(q.get().unwrap(), 2);
}

fn put_one_to_five(q: Queue<i32>) {
    for i in 1..=5 {
        q.put(i).unwrap();
    }
}

#[test]
fn items_a_child_puts_come_out_in_order() {
    let q = Queue::new().unwrap();
    assert_eq!(run(Process::new(put_one_to_five, (q.clone(),))), 0);
    assert_eq!(q.get_nowait().unwrap(), 1);
    assert_eq!(q.get().unwrap(), 2);
    assert_eq!(q.get_timeout(BOUND).unwrap(), 3);
    assert_eq!(q.get_timeout(Duration::from_secs(1)).unwrap(), 4);
    assert_eq!(q.get().unwrap(), 5);
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
}

#[test]
fn get_on_an_empty_queue_is_empty_at_once_or_after_the_timeout() {
    let q = Queue::<u8>::new().unwrap();
    let start = Instant::now();
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    assert!(matches!(q.get_timeout(Duration::ZERO), Err(Error::Empty)));
    assert!(start.elapsed() < PROMPT);
    let start = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(300)),
        Err(Error::Empty)
    ));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < PROMPT,
        "{waited:?}"
    );
}

#[test]
fn qsize_counts_puts_and_gets() {
    let q = Queue::new().unwrap();
    assert_eq!(q.qsize(), 0);
    assert!(q.empty());
    q.put(1).unwrap();
    assert_eq!(q.qsize(), 1);
    q.put(2).unwrap();
    assert_eq!(q.qsize(), 2);
    q.get().unwrap();
    assert_eq!(q.qsize(), 1);
    q.get().unwrap();
    assert_eq!(q.qsize(), 0);
    assert!(q.empty());
}

fn put_big_and_small_then_report(q: Queue<Vec<u8>>, report: Connection) {
    q.put(vec![7u8; 3 << 20]).unwrap();
    q.put(vec![1, 2, 3]).unwrap();
    report.send(&()).unwrap();
    // Stay alive until told to go, so that qsize is read while the big item may
    // still sit in this process's feeder buffer.
    let _ = report.recv::<()>();
}

#[test]
fn qsize_counts_across_processes_from_the_moment_put_returns() {
    let q = Queue::new().unwrap();
    let (parent, child) = mpcore::pipe().unwrap();
    let p = start(Process::new(
        put_big_and_small_then_report,
        (q.clone(), child),
    ));
    parent.recv::<()>().unwrap();
    assert_eq!(q.qsize(), 2);
    assert!(!q.empty());
    parent.send(&()).unwrap();
    assert_eq!(q.get_timeout(BOUND).unwrap().len(), 3 << 20);
    assert_eq!(q.get_timeout(BOUND).unwrap(), [1, 2, 3]);
    assert_eq!(finish(p), 0);
    assert_eq!(q.qsize(), 0);
}

fn put_ten_to_nineteen(q: Queue<u32>) {
    for i in 10..20 {
        q.put(i).unwrap();
    }
}

#[test]
fn a_child_started_after_the_parent_put_continues_the_sequence() {
    let q = Queue::new().unwrap();
    for i in 0..10u32 {
        q.put(i).unwrap();
    }
    assert_eq!(run(Process::new(put_ten_to_nineteen, (q.clone(),))), 0);
    let got: Vec<u32> = (0..20).map(|_| q.get_timeout(BOUND).unwrap()).collect();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
}

#[test]
fn close_and_join_thread_on_an_unused_queue_are_no_ops() {
    let q = Queue::<u8>::new().unwrap();
    q.close();
    q.join_thread();
    assert!(q.empty());
    let jq = JoinableQueue::<u8>::new().unwrap();
    jq.close();
    jq.join_thread();
    assert!(jq.empty());
}

#[test]
fn put_and_get_after_close_are_errors() {
    let q = Queue::<String>::new().unwrap();
    q.put("foo".into()).unwrap();
    q.close();
    q.join_thread();
    let err = q.put("bar".into()).unwrap_err();
    assert!(err.to_string().contains("is closed"), "{err}");
    let err = q.get_nowait().unwrap_err();
    assert!(err.to_string().contains("is closed"), "{err}");
}

#[test]
fn an_unbounded_put_never_waits_for_a_reader() {
    let q = Queue::new().unwrap();
    let start = Instant::now();
    // Far larger than the shared ring, with nobody reading.
    q.put(vec![3u8; 32 << 20]).unwrap();
    for i in 0..10_000u32 {
        q.put(vec![i as u8; 100]).unwrap();
    }
    assert!(start.elapsed() < BOUND);
    assert_eq!(q.qsize(), 10_001);
    assert_eq!(q.get_timeout(BOUND).unwrap().len(), 32 << 20);
    for i in 0..10_000u32 {
        assert_eq!(q.get_timeout(BOUND).unwrap(), vec![i as u8; 100]);
    }
}

fn put_large_item(q: Queue<Vec<u8>>, cancel: bool) {
    if cancel {
        q.cancel_join_thread();
    }
    q.put(vec![9u8; 10 << 20]).unwrap();
}

#[test]
fn a_child_waits_until_its_items_are_written_before_exiting() {
    let q = Queue::new().unwrap();
    let mut p = start(Process::new(put_large_item, (q.clone(), false)));
    p.join_timeout(Duration::from_millis(500)).unwrap();
    assert!(p.is_alive(), "the child waits for its feeder to flush");
    let item = q.get_timeout(BOUND).unwrap();
    assert_eq!(item.len(), 10 << 20);
    assert!(item.iter().all(|&b| b == 9));
    assert_eq!(finish(p), 0);
}

#[test]
fn cancel_join_thread_lets_a_child_exit_without_flushing() {
    let q = Queue::new().unwrap();
    let mut p = start(Process::new(put_large_item, (q.clone(), true)));
    p.join_timeout(BOUND).unwrap();
    assert_eq!(p.exitcode(), Some(0), "exited without waiting for a reader");
}

fn put_many(q: Queue<(u32, String)>, n: u32) {
    for i in 0..n {
        q.put((i, "x".repeat((i % 97) as usize))).unwrap();
    }
}

#[test]
fn nothing_a_child_put_is_lost_when_its_target_returns() {
    let q = Queue::new().unwrap();
    let n = 50_000;
    let p = start(Process::new(put_many, (q.clone(), n)));
    for i in 0..n {
        let (j, s) = q.get_timeout(BOUND).unwrap();
        assert_eq!((j, s.len()), (i, (i % 97) as usize));
    }
    assert_eq!(finish(p), 0);
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
}

/// An item that says who made it and checks itself.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Item {
    producer: u32,
    seq: u32,
    payload: Vec<u8>,
}

impl Item {
    fn new(producer: u32, seq: u32) -> Item {
        // Mostly small, some larger than the 256 KiB ring.
        let len = match seq % 50 {
            0 => 300_000 + seq as usize,
            n => (n as usize) * 13,
        };
        let fill = (producer * 31 + seq) as u8;
        Item {
            producer,
            seq,
            payload: vec![fill; len],
        }
    }

    fn is_intact(&self) -> bool {
        *self == Item::new(self.producer, self.seq)
    }
}

const PRODUCERS: u32 = 3;
const PER_PRODUCER: u32 = 400;

fn producer(q: Queue<Option<Item>>, id: u32) {
    for seq in 0..PER_PRODUCER {
        q.put(Some(Item::new(id, seq))).unwrap();
    }
}

fn consumer(q: Queue<Option<Item>>, out: Queue<(u32, u32, bool)>) {
    while let Some(item) = q.get().unwrap() {
        out.put((item.producer, item.seq, item.is_intact()))
            .unwrap();
    }
}

#[test]
fn many_producers_and_consumers_never_tear_or_lose_items() {
    let q = Queue::new().unwrap();
    let out = Queue::new().unwrap();
    let consumers: Vec<Process> = (0..3)
        .map(|_| start(Process::new(consumer, (q.clone(), out.clone()))))
        .collect();
    let producers: Vec<Process> = (0..PRODUCERS)
        .map(|id| start(Process::new(producer, (q.clone(), id))))
        .collect();
    let mut seen: BTreeMap<(u32, u32), u32> = BTreeMap::new();
    let mut last_seq: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for _ in 0..PRODUCERS * PER_PRODUCER {
        let (producer, seq, intact) = out.get_timeout(BOUND).unwrap();
        assert!(intact, "item {producer}/{seq} arrived torn");
        *seen.entry((producer, seq)).or_default() += 1;
        last_seq.entry(producer).or_default().push(seq);
    }
    assert_eq!(seen.len(), (PRODUCERS * PER_PRODUCER) as usize);
    assert!(seen.values().all(|&n| n == 1), "no duplicates");
    for p in producers {
        assert_eq!(finish(p), 0);
    }
    for _ in &consumers {
        q.put(None).unwrap();
    }
    for p in consumers {
        assert_eq!(finish(p), 0);
    }
    assert!(q.empty() && out.empty());
}

fn put_then_die(q: Queue<u8>) {
    q.put(1).unwrap();
}

#[test]
fn when_every_writer_died_get_timeout_returns_empty() {
    let q = Queue::new().unwrap();
    assert_eq!(run(Process::new(put_then_die, (q.clone(),))), 0);
    assert_eq!(q.get_timeout(BOUND).unwrap(), 1);
    let start = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(200)),
        Err(Error::Empty)
    ));
    assert!(start.elapsed() < PROMPT);
}

fn get_forever(q: Queue<u8>, started: Connection) {
    started.send(&()).unwrap();
    let _ = q.get();
}

#[test]
fn a_consumer_killed_while_waiting_does_not_block_the_others() {
    let q = Queue::new().unwrap();
    let (started_r, started_w) = pipe_simplex().unwrap();
    let mut p = start(Process::new(get_forever, (q.clone(), started_w)));
    started_r.recv::<()>().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    p.kill().unwrap();
    p.join().unwrap();
    q.put(5).unwrap();
    assert_eq!(q.get_timeout(BOUND).unwrap(), 5);
}

#[test]
fn clones_are_the_same_queue() {
    let q = Queue::new().unwrap();
    let q2 = q.clone();
    q.put("shared".to_string()).unwrap();
    assert_eq!(q2.qsize(), 1);
    assert_eq!(q2.get().unwrap(), "shared");
    assert!(q.empty());
}

#[test]
fn a_queue_travels_with_a_child_start_by_descriptor() {
    let q = Queue::new().unwrap();
    let err = mpcore::reduction::encode(&q).unwrap_err();
    assert!(err.to_string().contains("through inheritance"), "{err}");
    let (bytes, fds) = mpcore::reduction::encode_with_handles(&q).unwrap();
    let q2: Queue<u64> = mpcore::reduction::decode_with_handles(&bytes, fds).unwrap();
    q.put(99u64).unwrap();
    assert_eq!(q2.qsize(), 1);
    assert_eq!(q2.get().unwrap(), 99);
    let jq = JoinableQueue::<u8>::new().unwrap();
    let (bytes, fds) = mpcore::reduction::encode_with_handles(&jq).unwrap();
    let jq2: JoinableQueue<u8> = mpcore::reduction::decode_with_handles(&bytes, fds).unwrap();
    jq2.put(1).unwrap();
    jq.get().unwrap();
    jq.task_done().unwrap();
    jq2.join().unwrap();
    let sq = SimpleQueue::<u8>::new().unwrap();
    let (bytes, fds) = mpcore::reduction::encode_with_handles(&sq).unwrap();
    let sq2: SimpleQueue<u8> = mpcore::reduction::decode_with_handles(&bytes, fds).unwrap();
    sq2.put(3).unwrap();
    assert_eq!(sq.get().unwrap(), 3);
}

struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("cannot encode this"))
    }
}

impl<'de> Deserialize<'de> for Unencodable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unencodable)
    }
}

#[test]
fn an_item_that_cannot_be_encoded_fails_in_the_caller_and_is_not_counted() {
    let q = Queue::<Unencodable>::with_maxsize(1).unwrap();
    assert!(matches!(q.put(Unencodable), Err(Error::Codec(_))));
    assert_eq!(q.qsize(), 0);
    assert!(!q.full());
    let sq = SimpleQueue::<Unencodable>::new().unwrap();
    assert!(matches!(sq.put(Unencodable), Err(Error::Codec(_))));
    assert!(sq.empty());
}

// ---------------------------------------------------------------------------
// JoinableQueue.

fn worker(q: JoinableQueue<u32>, done: Queue<u32>) {
    loop {
        let item = q.get().unwrap();
        if item == u32::MAX {
            q.task_done().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
        done.put(item).unwrap();
        q.task_done().unwrap();
    }
}

#[test]
fn join_returns_once_every_task_is_done() {
    let q = JoinableQueue::new().unwrap();
    let start = Instant::now();
    q.join().unwrap();
    assert!(start.elapsed() < PROMPT, "an unused queue joins at once");
    let done = Queue::new().unwrap();
    let mut workers: Vec<Process> = (0..4)
        .map(|_| Process::new(worker, (q.clone(), done.clone())))
        .collect();
    for w in &mut workers {
        w.start().unwrap();
    }
    for i in 0..10 {
        q.put(i).unwrap();
    }
    q.join().unwrap();
    // Every task was done before join returned.
    assert_eq!(done.qsize(), 10);
    let mut got: Vec<u32> = (0..10).map(|_| done.get().unwrap()).collect();
    got.sort();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    for _ in &workers {
        q.put(u32::MAX).unwrap();
    }
    for w in workers {
        assert_eq!(finish(w), 0);
    }
    q.join().unwrap();
}

#[test]
fn task_done_too_often_is_an_error() {
    let q = JoinableQueue::<u8>::new().unwrap();
    let err = q.task_done().unwrap_err();
    assert_eq!(err.to_string(), "task_done() called too many times");
    q.put(1).unwrap();
    q.get().unwrap();
    q.task_done().unwrap();
    let err = q.task_done().unwrap_err();
    assert!(matches!(&err, Error::InvalidState(m) if m == "task_done() called too many times"));
}

#[test]
fn joinable_queue_has_the_queue_api() {
    let q = JoinableQueue::with_maxsize(1).unwrap();
    q.put_nowait("a".to_string()).unwrap();
    assert!(q.full());
    assert!(matches!(
        q.put_timeout("b".to_string(), Duration::from_millis(10)),
        Err(Error::Full)
    ));
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.get_timeout(PROMPT).unwrap(), "a");
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    q.task_done().unwrap();
    q.close();
    assert!(q.put("c".to_string()).is_err());
}

// ---------------------------------------------------------------------------
// SimpleQueue.

fn simple_put_three(q: SimpleQueue<u32>, go: Connection) {
    for i in 0..3 {
        go.recv::<()>().unwrap();
        q.put(i).unwrap();
        go.send(&()).unwrap();
    }
}

#[test]
fn simple_queue_put_is_synchronous_and_ordered_across_processes() {
    let q = SimpleQueue::new().unwrap();
    assert!(q.empty());
    q.put(1u32).unwrap();
    assert!(!q.empty(), "empty() is false right after put");
    assert_eq!(q.get().unwrap(), 1);
    assert!(q.empty());
    let (parent, child) = mpcore::pipe().unwrap();
    let p = start(Process::new(simple_put_three, (q.clone(), child)));
    for i in 0..3 {
        assert!(q.empty());
        parent.send(&()).unwrap();
        parent.recv::<()>().unwrap();
        assert!(!q.empty());
        assert_eq!(q.get().unwrap(), i);
    }
    assert!(q.empty());
    assert_eq!(finish(p), 0);
}

#[test]
fn simple_queue_after_close_refuses_put_and_get_and_closes_twice() {
    let q = SimpleQueue::<u8>::new().unwrap();
    q.close();
    q.close();
    let err = q.put(1).unwrap_err();
    assert!(err.to_string().contains("is closed"), "{err}");
    assert!(q.get().unwrap_err().to_string().contains("is closed"));
}

fn simple_put_big(q: SimpleQueue<Vec<u8>>) {
    q.put(vec![5u8; 4 << 20]).unwrap();
}

#[test]
fn simple_queue_carries_items_larger_than_its_memory() {
    let q = SimpleQueue::new().unwrap();
    let p = start(Process::new(simple_put_big, (q.clone(),)));
    let item = q.get().unwrap();
    assert_eq!(item.len(), 4 << 20);
    assert!(item.iter().all(|&b| b == 5));
    assert_eq!(finish(p), 0);
}

fn use_every_queue(q: Queue<String>, jq: JoinableQueue<u32>, sq: SimpleQueue<Vec<u8>>) {
    let name = mpcore::current_process().name;
    q.put(format!("hello from {name}")).unwrap();
    // Larger than the ring: it goes through the feeder, flushed before exit.
    q.put("x".repeat(1 << 20)).unwrap();
    let task = jq.get().unwrap();
    sq.put(vec![task as u8; 3]).unwrap();
    jq.task_done().unwrap();
}

#[test]
fn queues_pass_to_children_under_every_start_method() {
    for method in mpcore::get_all_start_methods() {
        let ctx = mpcore::get_context(method);
        let q = ctx.queue().unwrap();
        let jq = ctx.joinable_queue().unwrap();
        let sq = ctx.simple_queue().unwrap();
        jq.put(4).unwrap();
        let p = start(ctx.process(use_every_queue, (q.clone(), jq.clone(), sq.clone())));
        let hello = q.get_timeout(BOUND).unwrap();
        // Context processes are named after their method ("ForkProcess-1").
        assert!(
            hello.starts_with("hello from ") && hello.contains("Process-"),
            "{method:?}: {hello}"
        );
        assert_eq!(q.get_timeout(BOUND).unwrap().len(), 1 << 20, "{method:?}");
        // Only the child gets from `jq`: join returns once it called task_done.
        jq.join().unwrap();
        assert_eq!(sq.get().unwrap(), [4, 4, 4]);
        assert!(jq.empty());
        assert_eq!(finish(p), 0, "{method:?}");
    }
}
