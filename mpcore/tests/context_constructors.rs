//! Every constructor on [`Context`](mpcore::Context): objects made from a context pass
//! to a child started from that same context and work there (Python:
//! `ctx = get_context('spawn'); v = ctx.Value('i', 0); ctx.Process(target=f, args=(v,))`),
//! and, unlike CPython, to children of every other context too (row 35).

mod common;

use std::time::Duration;

use common::{finish, per_method, start};
use mpcore::connection::Connection;
use mpcore::{
    Array, Barrier, BoundedSemaphore, Condition, Event, JoinableQueue, Lock, Queue, RLock,
    RawArray, RawValue, Semaphore, SimpleQueue, StartMethod, Value, get_context,
};

const LONG: Duration = Duration::from_secs(30);

const METHODS: [StartMethod; 2] = [StartMethod::Spawn, StartMethod::Forkserver];

fn child_sync(v: Value<i64>, a: Array<f64>, e: Event, l: Lock, q: Queue<String>, c: Connection) {
    v.set(42);
    a.set(1, 2.5).unwrap();
    assert!(l.acquire());
    l.release().unwrap();
    q.put("from child".to_string()).unwrap();
    c.send(&7u32).unwrap();
    e.set();
}

#[test]
fn sync_objects_and_queue_from_a_context_work_in_its_child() {
    for method in METHODS {
        let ctx = get_context(method);
        let v = ctx.value(0i64).unwrap();
        let a = ctx.array(&[0.0f64, 0.0]).unwrap();
        let e = ctx.event().unwrap();
        let l = ctx.lock().unwrap();
        let q = ctx.queue::<String>().unwrap();
        let (ours, theirs) = ctx.pipe().unwrap();
        let p = start(ctx.process(
            child_sync,
            (
                v.clone(),
                a.clone(),
                e.clone(),
                l.clone(),
                q.clone(),
                theirs,
            ),
        ));
        assert!(e.wait_timeout(LONG), "{method}");
        assert_eq!(q.get_timeout(LONG).unwrap(), "from child", "{method}");
        assert_eq!(ours.recv::<u32>().unwrap(), 7, "{method}");
        assert_eq!(finish(p), 0, "{method}");
        assert_eq!(v.get(), 42, "{method}");
        assert_eq!(a.to_vec(), [0.0, 2.5], "{method}");
        assert!(!l.locked());
    }
}

fn child_raw(
    rv: RawValue<u32>,
    ra: RawArray<i32>,
    s: Semaphore,
    bs: BoundedSemaphore,
    sq: SimpleQueue<Vec<u8>>,
    jq: JoinableQueue<u32>,
) {
    rv.set(9);
    ra.set(0, -3).unwrap();
    s.release().unwrap();
    assert!(bs.acquire());
    sq.put(vec![1, 2]).unwrap();
    let n = jq.get().unwrap();
    jq.task_done().unwrap();
    sq.put(vec![n as u8]).unwrap();
}

#[test]
fn raw_objects_semaphores_and_other_queues_work_in_its_child() {
    for method in METHODS {
        let ctx = get_context(method);
        let rv = ctx.raw_value(0u32).unwrap();
        let ra = ctx.raw_array(&[0i32, 5]).unwrap();
        let s = ctx.semaphore(0).unwrap();
        let bs = ctx.bounded_semaphore(1).unwrap();
        let sq = ctx.simple_queue::<Vec<u8>>().unwrap();
        let jq = ctx.joinable_queue::<u32>().unwrap();
        jq.put(11).unwrap();
        let p = start(ctx.process(
            child_raw,
            (
                rv.clone(),
                ra.clone(),
                s.clone(),
                bs.clone(),
                sq.clone(),
                jq.clone(),
            ),
        ));
        assert!(s.acquire_timeout(LONG), "{method}");
        assert_eq!(sq.get().unwrap(), [1, 2], "{method}");
        assert_eq!(sq.get().unwrap(), [11], "{method}");
        jq.join().unwrap();
        assert_eq!(finish(p), 0, "{method}");
        assert_eq!(rv.get(), 9, "{method}");
        assert_eq!(ra.to_vec(), [-3, 5], "{method}");
        assert_eq!(bs.get_value(), 0, "{method}");
    }
}

fn child_rest(b: Barrier, cond: Condition, r: RLock, w: Connection, q: Queue<u8>) {
    assert!(r.acquire());
    assert!(r.acquire());
    r.release().unwrap();
    r.release().unwrap();
    assert!(cond.acquire());
    cond.notify_all().unwrap();
    cond.release().unwrap();
    w.send(&"simplex").unwrap();
    q.put(1).unwrap();
    b.wait_timeout(LONG).unwrap();
}

#[test]
fn barrier_condition_rlock_simplex_pipe_and_bounded_queue_work_in_its_child() {
    for method in METHODS {
        let ctx = get_context(method);
        let b = ctx.barrier(2, None, None).unwrap();
        let cond = ctx.condition(None).unwrap();
        let r = ctx.rlock().unwrap();
        let (reader, writer) = ctx.pipe_simplex().unwrap();
        let q = ctx.queue_with_maxsize::<u8>(1).unwrap();
        let p = start(ctx.process(
            child_rest,
            (b.clone(), cond.clone(), r.clone(), writer, q.clone()),
        ));
        b.wait_timeout(LONG).unwrap();
        assert_eq!(reader.recv::<String>().unwrap(), "simplex", "{method}");
        assert_eq!(q.get_timeout(LONG).unwrap(), 1, "{method}");
        assert_eq!(finish(p), 0, "{method}");
        assert!(!r.locked());
        assert!(!b.broken());
    }
}

/// Checks from a child that `lock` is the parent's (held), waits for the parent
/// to release it, takes it, and reports each step on `q`.
fn use_a_foreign_lock_and_queue(lock: Lock, q: Queue<String>) {
    q.put(format!("held elsewhere: {}", !lock.try_acquire()))
        .unwrap();
    assert!(lock.acquire_timeout(LONG));
    q.put("acquired".to_string()).unwrap();
    lock.release().unwrap();
}

per_method! {
    // Row 35, a documented difference (context.rs): in CPython a Queue or Lock
    // made by get_context('fork') cannot go to a spawn or forkserver child ("A
    // SemLock created in a fork context..."). In mpcore the objects of every
    // context work in children of every start method: `method` starts the child,
    // the objects come from each context in turn.
    fn objects_of_every_context_work_in_children_of_this_method(method: StartMethod) {
        for made_by in mpcore::get_all_start_methods() {
            let maker = get_context(made_by);
            let lock = maker.lock().unwrap();
            let q = maker.queue::<String>().unwrap();
            assert!(lock.acquire());
            let p = start(
                get_context(method).process(use_a_foreign_lock_and_queue, (lock.clone(), q.clone())),
            );
            let what = format!("made by {made_by}, child by {method}");
            assert_eq!(q.get_timeout(LONG).unwrap(), "held elsewhere: true", "{what}");
            lock.release().unwrap();
            assert_eq!(q.get_timeout(LONG).unwrap(), "acquired", "{what}");
            assert_eq!(finish(p), 0, "{what}");
            assert!(!lock.locked(), "{what}");
        }
    }
}
