//! Locks, semaphores, conditions, events and barriers, across threads and processes.
//!
//! Tests of behaviour across processes are in `per_method!`, which makes a `fork::NAME`,
//! `spawn::NAME` and `forkserver::NAME` test of each; tests that need a closure in
//! the child stay fork-only.
//!
//! Timing rules for a loaded machine: never assert that something took *about* a
//! time; only "returned before a generous bound" or "waited at least d".

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{BOUND, finish, per_method, process, run, start, start_n};
use mpcore::synchronize::{ConditionLock, SEM_VALUE_MAX};
use mpcore::{
    Barrier, BoundedSemaphore, Condition, Error, Event, Lock, Process, RLock, Semaphore,
    StartMethod, Value,
};

// ---------------------------------------------------------------------------
// Lock
// ---------------------------------------------------------------------------

#[test]
fn lock_acquire_release_and_release_too_many_times() {
    let lock = Lock::new().unwrap();
    assert!(lock.acquire());
    assert!(!lock.try_acquire());
    assert!(lock.locked());
    lock.release().unwrap();
    assert!(!lock.locked());
    let err = lock.release().unwrap_err();
    assert!(matches!(err, Error::InvalidState(_)));
    assert_eq!(err.to_string(), "semaphore or lock released too many times");
}

#[test]
fn a_lock_guard_releases_on_drop() {
    let lock = Lock::new().unwrap();
    {
        let _g = lock.lock();
        assert!(!lock.try_acquire());
    }
    assert!(lock.try_acquire());
}

#[test]
fn acquire_timeout_on_a_held_lock_waits_then_fails() {
    let lock = Lock::new().unwrap();
    lock.acquire();
    let start = Instant::now();
    assert!(!lock.acquire_timeout(Duration::from_millis(100)));
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(100), "{waited:?}");
    assert!(waited < BOUND);
    // A zero timeout is a non-blocking attempt.
    assert!(!lock.acquire_timeout(Duration::ZERO));
}

fn release_lock(lock: Lock) {
    lock.release().unwrap();
}

#[test]
fn another_thread_blocks_until_release_without_spinning() {
    let lock = Lock::new().unwrap();
    lock.acquire();
    let l2 = lock.clone();
    let t = thread::spawn(move || {
        let start = Instant::now();
        assert!(l2.acquire());
        start.elapsed()
    });
    thread::sleep(Duration::from_millis(50));
    lock.release().unwrap();
    let waited = t.join().unwrap();
    assert!(waited >= Duration::from_millis(40), "{waited:?}");
}

fn hold_forever(lock: Lock, held: Event) {
    lock.acquire();
    held.set();
    loop {
        thread::park();
    }
}

/// Kills a child that holds `lock` (or whatever it signals with `held` for).
fn kill_holder(mut child: Process, held: &Event, join: bool) -> Process {
    child.start().unwrap();
    assert!(held.wait_timeout(BOUND), "the child never took the lock");
    child.kill().unwrap();
    if join {
        child.join().unwrap();
        assert_eq!(child.exitcode(), Some(-9));
    }
    child
}

// ---------------------------------------------------------------------------
// RLock
// ---------------------------------------------------------------------------

#[test]
fn rlock_is_reentrant_and_counts() {
    let rlock = RLock::new().unwrap();
    for _ in 0..3 {
        assert!(rlock.acquire());
    }
    for _ in 0..3 {
        assert!(rlock.locked());
        rlock.release().unwrap();
    }
    assert!(!rlock.locked());
    let err = rlock.release().unwrap_err();
    assert_eq!(
        err.to_string(),
        "attempt to release recursive lock not owned by thread"
    );
}

fn release_foreign_rlock(rlock: RLock) {
    let err = rlock.release().expect_err("a non-owner released the RLock");
    assert!(err.to_string().contains("not owned"), "{err}");
    assert!(!rlock.try_acquire(), "the parent still owns it");
}

#[test]
fn rlock_release_by_another_thread_is_refused() {
    let rlock = RLock::new().unwrap();
    rlock.acquire();
    let r2 = rlock.clone();
    thread::spawn(move || {
        assert!(r2.release().is_err());
        assert!(!r2.try_acquire());
    })
    .join()
    .unwrap();
    rlock.release().unwrap();
}

#[test]
fn another_thread_blocks_on_a_held_rlock() {
    let rlock = RLock::new().unwrap();
    let guard = rlock.lock();
    let r2 = rlock.clone();
    let t = thread::spawn(move || {
        assert!(!r2.acquire_timeout(Duration::from_millis(20)));
        assert!(r2.acquire_timeout(BOUND));
        r2.release().unwrap();
    });
    thread::sleep(Duration::from_millis(60));
    drop(guard);
    t.join().unwrap();
}

fn hold_rlock_twice(rlock: RLock, held: Event) {
    rlock.acquire();
    rlock.acquire();
    held.set();
    loop {
        thread::park();
    }
}

// ---------------------------------------------------------------------------
// Semaphores
// ---------------------------------------------------------------------------

#[test]
fn semaphore_counts_and_may_exceed_its_initial_value() {
    let sem = Semaphore::new(2).unwrap();
    assert_eq!(sem.get_value(), 2);
    assert!(sem.acquire());
    assert_eq!(sem.get_value(), 1);
    assert!(sem.try_acquire());
    assert_eq!(sem.get_value(), 0);
    assert!(!sem.try_acquire());
    assert_eq!(sem.get_value(), 0);
    for expected in 1..=4 {
        sem.release().unwrap();
        assert_eq!(sem.get_value(), expected);
    }
    assert!(Semaphore::new(SEM_VALUE_MAX + 1).is_err());
}

#[test]
fn bounded_semaphore_refuses_over_release() {
    let sem = BoundedSemaphore::new(1).unwrap();
    let err = sem.release().unwrap_err();
    assert_eq!(err.to_string(), "semaphore or lock released too many times");
    assert_eq!(sem.get_value(), 1);
    assert!(sem.acquire());
    sem.release().unwrap();
    assert!(sem.release().is_err());
    assert_eq!(
        format!("{sem:?}"),
        "<BoundedSemaphore(value=1, maxvalue=1)>"
    );
}

#[test]
fn an_empty_semaphore_times_out() {
    let sem = Semaphore::new(0).unwrap();
    assert!(!sem.try_acquire());
    let start = Instant::now();
    assert!(!sem.acquire_timeout(Duration::from_millis(100)));
    assert!(start.elapsed() >= Duration::from_millis(100));
}

fn admit(sem: Semaphore, inside: Value<u32>, most: Value<u32>) {
    for _ in 0..3 {
        assert!(sem.acquire());
        {
            let mut now = inside.lock();
            *now += 1;
            let mut top = most.lock();
            *top = (*top).max(*now);
        }
        thread::sleep(Duration::from_millis(15));
        *inside.lock() -= 1;
        sem.release().unwrap();
    }
}

// ---------------------------------------------------------------------------
// Condition
// ---------------------------------------------------------------------------

#[test]
fn condition_wait_and_notify_need_the_lock() {
    let cond = Condition::new(None).unwrap();
    let err = cond.wait().unwrap_err();
    assert_eq!(
        err.to_string(),
        "must acquire() condition before using wait()"
    );
    assert_eq!(cond.notify(1).unwrap_err().to_string(), "lock is not owned");
    assert!(cond.notify_all().is_err());
    // Held by another thread is not held by us.
    let c2 = cond.clone();
    let guard = cond.lock();
    thread::spawn(move || {
        assert!(c2.wait_timeout(Duration::from_millis(1)).is_err());
        assert!(c2.notify(1).is_err());
    })
    .join()
    .unwrap();
    drop(guard);
    // With a plain Lock too.
    let cond = Condition::new(Some(Lock::new().unwrap().into())).unwrap();
    assert!(cond.wait().is_err());
    cond.acquire();
    cond.notify(1).unwrap();
    cond.release().unwrap();
}

#[test]
fn condition_wait_times_out_and_keeps_the_lock() {
    for lock in [
        ConditionLock::from(RLock::new().unwrap()),
        ConditionLock::from(Lock::new().unwrap()),
    ] {
        let cond = Condition::new(Some(lock)).unwrap();
        let _g = cond.lock();
        let start = Instant::now();
        assert!(!cond.wait_timeout(Duration::from_millis(100)).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert!(!cond.wait_timeout(Duration::ZERO).unwrap());
        // Still held: notify is allowed.
        cond.notify_all().unwrap();
    }
}

#[test]
fn a_condition_wait_restores_every_rlock_level() {
    let rlock = RLock::new().unwrap();
    let cond = Condition::new(Some(rlock.clone().into())).unwrap();
    rlock.acquire();
    rlock.acquire();
    let c2 = cond.clone();
    let t = thread::spawn(move || {
        // The waiter released both levels, so this thread can take the lock.
        let _g = c2.lock();
        c2.notify(1).unwrap();
    });
    assert!(cond.wait_timeout(BOUND).unwrap());
    t.join().unwrap();
    rlock.release().unwrap();
    rlock.release().unwrap();
    assert!(rlock.release().is_err());
}

fn wait_for_notify(cond: Condition, ready: Event) {
    let _g = cond.lock();
    ready.set();
    assert!(cond.wait_timeout(BOUND).unwrap(), "never notified");
}

fn count_wakeups(cond: Condition, sleeping: Value<u32>, woken: Value<u32>) {
    let _g = cond.lock();
    sleeping.set(sleeping.get() + 1);
    if cond.wait_timeout(BOUND).unwrap() {
        woken.set(woken.get() + 1);
    }
}

/// Waits until `cond` (whose waiters count themselves in `sleeping`) has `n`
/// sleepers; holding the lock then means they all are inside wait().
fn until(what: impl Fn() -> bool) {
    let start = Instant::now();
    while !what() {
        assert!(start.elapsed() < BOUND, "condition never reached");
        thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------
// Event
// ---------------------------------------------------------------------------

#[test]
fn event_set_clear_and_timeouts() {
    let ev = Event::new().unwrap();
    assert!(!ev.is_set());
    assert!(!ev.wait_timeout(Duration::ZERO));
    let start = Instant::now();
    assert!(!ev.wait_timeout(Duration::from_millis(100)));
    assert!(start.elapsed() >= Duration::from_millis(100));
    ev.set();
    assert!(ev.wait());
    assert!(ev.wait_timeout(Duration::from_millis(1)));
    assert_eq!(format!("{ev:?}"), "<Event set>");
    ev.clear();
    assert!(!ev.is_set());
    assert_eq!(format!("{ev:?}"), "<Event unset>");
}

fn set_later(ev: Event) {
    thread::sleep(Duration::from_millis(30));
    ev.set();
}

// ---------------------------------------------------------------------------
// Barrier
// ---------------------------------------------------------------------------

fn barrier_party(barrier: Barrier, arrived: Value<u32>, indices: Value<u32>) {
    for pass in 1..=3u32 {
        *arrived.lock() += 1;
        let index = barrier.wait().unwrap();
        assert!(
            arrived.get() >= 3 * pass,
            "released before every party arrived"
        );
        *indices.lock() += 1 << (8 * index);
        // The next pass must not start before everyone has left this one.
        barrier.wait().unwrap();
    }
}

static ACTIONS: AtomicUsize = AtomicUsize::new(0);

fn count_action() {
    ACTIONS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_barrier_action_runs_once_per_pass_before_release() {
    let barrier = Barrier::new(3, Some(count_action), None).unwrap();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let b = barrier.clone();
            thread::spawn(move || {
                let mut zeros = 0;
                for pass in 1..=2 {
                    if b.wait().unwrap() == 0 {
                        zeros += 1;
                    }
                    assert!(ACTIONS.load(Ordering::SeqCst) >= pass);
                }
                zeros
            })
        })
        .collect();
    let zeros: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(ACTIONS.load(Ordering::SeqCst), 2);
    assert_eq!(zeros, 2, "exactly one party per pass gets index 0");
}

#[test]
fn abort_breaks_the_barrier_for_every_waiter_until_reset() {
    let barrier = Barrier::new(3, None, None).unwrap();
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let b = barrier.clone();
            thread::spawn(move || b.wait())
        })
        .collect();
    until(|| barrier.n_waiting() == 2);
    barrier.abort();
    for w in waiters {
        assert!(matches!(w.join().unwrap(), Err(Error::BrokenBarrier)));
    }
    assert!(barrier.broken());
    assert!(matches!(barrier.wait(), Err(Error::BrokenBarrier)));
    barrier.reset();
    assert!(!barrier.broken());
    let passers: Vec<_> = (0..2)
        .map(|_| {
            let b = barrier.clone();
            thread::spawn(move || b.wait())
        })
        .collect();
    barrier.wait().unwrap();
    for p in passers {
        p.join().unwrap().unwrap();
    }
}

#[test]
fn reset_breaks_current_waiters() {
    let barrier = Barrier::new(3, None, None).unwrap();
    let b = barrier.clone();
    let waiter = thread::spawn(move || b.wait());
    until(|| barrier.n_waiting() == 1);
    barrier.reset();
    assert!(matches!(waiter.join().unwrap(), Err(Error::BrokenBarrier)));
    assert!(!barrier.broken());
}

#[test]
fn a_lonely_party_times_out_with_the_default_timeout() {
    let barrier = Barrier::new(2, None, Some(Duration::from_millis(100))).unwrap();
    assert!(matches!(barrier.wait(), Err(Error::BrokenBarrier)));
    assert_eq!(
        (barrier.broken(), barrier.n_waiting(), barrier.parties()),
        (true, 0, 2)
    );
    assert!(matches!(barrier.wait(), Err(Error::BrokenBarrier)));
    barrier.reset();
    assert!(!barrier.broken());
    let single = Barrier::new(1, None, None).unwrap();
    assert_eq!(single.wait().unwrap(), 0);
    assert_eq!(single.wait().unwrap(), 0);
    assert!(Barrier::new(0, None, None).is_err());
}

fn panicking_action() {
    panic!("action failed");
}

#[test]
fn a_panicking_action_breaks_the_barrier() {
    // In a child: a panic in this (multi-threaded) test process while another test
    // forks would leave the panic-hook lock held in that test's child.
    let child = Process::from_closure(|| {
        let barrier = Barrier::new(2, Some(panicking_action), None).unwrap();
        let b = barrier.clone();
        let other = thread::spawn(move || b.wait());
        until(|| barrier.n_waiting() == 1);
        let outcome = std::panic::catch_unwind(|| barrier.wait());
        assert!(
            outcome.is_err(),
            "the action's panic reaches the last party"
        );
        assert!(matches!(other.join().unwrap(), Err(Error::BrokenBarrier)));
        assert!(barrier.broken());
        mpcore::exit(0);
    });
    assert_eq!(run(child), 0);
}

// ---------------------------------------------------------------------------
// Passing handles
// ---------------------------------------------------------------------------

#[test]
fn handles_cannot_be_serialized_outside_a_child_start() {
    let err = mpcore::reduction::encode(&Lock::new().unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .contains("should only be shared between processes through inheritance"),
        "{err}"
    );
    assert!(mpcore::reduction::encode(&Event::new().unwrap()).is_err());
}

static SPAWNED_ACTIONS: AtomicUsize = AtomicUsize::new(0);

fn spawned_action() {
    SPAWNED_ACTIONS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn handles_travel_by_descriptor_as_for_a_spawned_child() {
    // What the spawn start method does with a child's arguments.
    type Handles = (
        Lock,
        RLock,
        Semaphore,
        BoundedSemaphore,
        Condition,
        Event,
        Barrier,
    );
    let original: Handles = (
        Lock::new().unwrap(),
        RLock::new().unwrap(),
        Semaphore::new(2).unwrap(),
        BoundedSemaphore::new(1).unwrap(),
        Condition::new(None).unwrap(),
        Event::new().unwrap(),
        Barrier::new(1, Some(spawned_action), None).unwrap(),
    );
    let (bytes, fds) = mpcore::reduction::encode_with_handles(&original).unwrap();
    let (lock, rlock, sem, bsem, cond, ev, barrier): Handles =
        mpcore::reduction::decode_with_handles(&bytes, fds).unwrap();
    assert!(lock.try_acquire());
    assert!(original.0.locked());
    rlock.acquire();
    assert!(original.1.locked());
    rlock.release().unwrap();
    assert!(sem.try_acquire());
    assert_eq!(original.2.get_value(), 1);
    assert!(bsem.release().is_err());
    cond.acquire();
    cond.notify_all().unwrap();
    cond.release().unwrap();
    ev.set();
    assert!(original.5.is_set());
    assert_eq!(barrier.wait().unwrap(), 0);
    assert_eq!(
        SPAWNED_ACTIONS.load(Ordering::SeqCst),
        1,
        "the action travelled"
    );
}

#[test]
fn every_handle_is_send_clone_and_serde() {
    fn check<T: Send + Sync + Clone + serde::Serialize + serde::de::DeserializeOwned>() {}
    check::<Lock>();
    check::<RLock>();
    check::<Semaphore>();
    check::<BoundedSemaphore>();
    check::<Condition>();
    check::<Event>();
    check::<Barrier>();
}

// ---------------------------------------------------------------------------
// Across processes, under every start method
// ---------------------------------------------------------------------------

fn hold_until_go(lock: Lock, held: Event, go: Event) {
    let _guard = lock.lock();
    held.set();
    assert!(go.wait_timeout(BOUND));
}

fn take_over(lock: Lock, got: Event) {
    assert!(lock.acquire());
    assert!(lock.owner_died());
    got.set();
    lock.release().unwrap();
}

fn acquire_one(sem: Semaphore) {
    assert!(sem.acquire_timeout(BOUND));
}

fn count_to_four(cond: Condition, state: Value<u32>) {
    for _ in 0..4 {
        thread::sleep(Duration::from_millis(5));
        let _g = cond.lock();
        state.set(state.get() + 1);
        cond.notify(1).unwrap();
    }
}

fn wait_event(ev: Event) {
    assert!(ev.wait_timeout(BOUND));
}

fn wait_broken(barrier: Barrier) {
    assert!(matches!(barrier.wait(), Err(Error::BrokenBarrier)));
}

fn hold_both(lock: Lock, rlock: RLock) {
    lock.acquire();
    rlock.acquire();
    rlock.acquire();
    loop {
        thread::park();
    }
}

/// Takes `lock` and `rlock` (once) and sends their reprs as the holder sees them.
fn report_reprs_as_holder(lock: Lock, rlock: RLock, report: mpcore::Connection) {
    lock.acquire();
    rlock.acquire();
    report
        .send(&(format!("{lock:?}"), format!("{rlock:?}")))
        .unwrap();
    rlock.release().unwrap();
    lock.release().unwrap();
}

per_method! {
    // Rows 79 and 81: the holder sees itself by name; others see "SomeOther...".
    // (The main thread of the main process, `MainProcess`, is checked in
    // tests/lock_reprs_in_main.rs: libtest runs tests on threads of their own.)
    fn reprs_name_the_holder_as_it_sees_itself(method: StartMethod) {
        // Held by a thread named T1, which ends still holding them.
        let lock = Lock::new().unwrap();
        let rlock = RLock::new().unwrap();
        let (l, r) = (lock.clone(), rlock.clone());
        let seen_by_t1 = thread::Builder::new()
            .name("T1".into())
            .spawn(move || {
                l.acquire();
                r.acquire();
                r.acquire();
                (format!("{l:?}"), format!("{r:?}"))
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(seen_by_t1.0, "<Lock(owner=MainProcess|T1)>");
        assert_eq!(seen_by_t1.1, "<RLock(MainProcess|T1, 2)>");
        assert_eq!(format!("{lock:?}"), "<Lock(owner=SomeOtherThread)>");
        assert_eq!(format!("{rlock:?}"), "<RLock(SomeOtherThread, nonzero)>");
        lock.release().unwrap(); // anyone may release a Lock

        // Held by this thread, which is not the main thread (libtest named it).
        let me = thread::current().name().unwrap().to_string();
        let rlock = RLock::new().unwrap();
        assert!(lock.acquire());
        for _ in 0..3 {
            assert!(rlock.acquire());
        }
        assert_eq!(format!("{lock:?}"), format!("<Lock(owner=MainProcess|{me})>"));
        assert_eq!(format!("{rlock:?}"), format!("<RLock(MainProcess|{me}, 3)>"));
        for _ in 0..3 {
            rlock.release().unwrap();
        }
        lock.release().unwrap();

        // Held by the main thread of a child named P1, which this thread started.
        let (ours, theirs) = mpcore::pipe().unwrap();
        let child = process(method, report_reprs_as_holder, (lock.clone(), rlock.clone(), theirs))
            .with_name("P1");
        assert_eq!(run(child), 0);
        let (lock_repr, rlock_repr) = ours.recv::<(String, String)>().unwrap();
        assert_eq!(lock_repr, "<Lock(owner=P1)>");
        assert_eq!(rlock_repr, "<RLock(P1, 1)>");
        assert_eq!(format!("{lock:?}"), "<Lock(owner=None)>");
        assert_eq!(format!("{rlock:?}"), "<RLock(None, 0)>");
    }

    fn another_process_may_release_a_lock(method: StartMethod) {
        let lock = Lock::new().unwrap();
        lock.acquire();
        assert_eq!(run(process(method, release_lock, (lock.clone(),))), 0);
        assert!(lock.try_acquire(), "the child's release freed the lock");
    }

    fn a_lock_excludes_another_process_until_released(method: StartMethod) {
        let lock = Lock::new().unwrap();
        let (held, go) = (Event::new().unwrap(), Event::new().unwrap());
        let child = start(process(
            method,
            hold_until_go,
            (lock.clone(), held.clone(), go.clone()),
        ));
        assert!(held.wait_timeout(BOUND));
        assert!(!lock.try_acquire(), "the child holds it");
        go.set();
        assert!(
            lock.acquire_timeout(BOUND),
            "released when the child's guard dropped"
        );
        assert_eq!(finish(child), 0);
    }

    fn a_lock_held_by_a_killed_process_is_taken_over(method: StartMethod) {
        let lock = Lock::new().unwrap();
        let held = Event::new().unwrap();
        let child = process(method, hold_forever, (lock.clone(), held.clone()));
        let _child = kill_holder(child, &held, true);
        let start = Instant::now();
        assert!(
            lock.acquire_timeout(BOUND),
            "the dead holder's lock was never freed"
        );
        assert!(start.elapsed() < BOUND);
        assert!(lock.owner_died());
        lock.release().unwrap();
        // A normal acquire afterwards is not a take-over.
        assert!(lock.try_acquire());
        assert!(!lock.owner_died());
    }

    fn a_lock_held_by_a_killed_unreaped_process_is_taken_over(method: StartMethod) {
        // The holder is a zombie while we wait: it must count as dead.
        let lock = Lock::new().unwrap();
        let held = Event::new().unwrap();
        let child = process(method, hold_forever, (lock.clone(), held.clone()));
        let mut child = kill_holder(child, &held, false);
        let guard = lock.lock();
        assert!(guard.owner_died());
        drop(guard);
        child.join().unwrap();
    }

    fn a_blocked_acquirer_is_released_when_the_holder_is_killed(method: StartMethod) {
        let lock = Lock::new().unwrap();
        let held = Event::new().unwrap();
        let mut holder = start(process(method, hold_forever, (lock.clone(), held.clone())));
        assert!(held.wait_timeout(BOUND));
        let got = Event::new().unwrap();
        let waiter = start(process(method, take_over, (lock.clone(), got.clone())));
        thread::sleep(Duration::from_millis(30));
        assert!(
            !got.is_set(),
            "the waiter must block while the holder lives"
        );
        holder.kill().unwrap();
        holder.join().unwrap();
        assert_eq!(finish(waiter), 0);
        assert!(got.is_set());
    }

    fn rlock_release_by_another_process_is_refused(method: StartMethod) {
        let rlock = RLock::new().unwrap();
        rlock.acquire();
        assert_eq!(
            run(process(method, release_foreign_rlock, (rlock.clone(),))),
            0
        );
        // The owner keeps the lock and can release it.
        assert!(rlock.locked());
        rlock.release().unwrap();
        assert!(!rlock.locked());
    }

    fn an_rlock_held_twice_by_a_killed_process_is_taken_over_once(method: StartMethod) {
        let rlock = RLock::new().unwrap();
        let held = Event::new().unwrap();
        let child = process(method, hold_rlock_twice, (rlock.clone(), held.clone()));
        let _child = kill_holder(child, &held, true);
        assert!(rlock.acquire_timeout(BOUND));
        assert!(rlock.owner_died());
        // The owner is this process; the repr names the thread too unless it is the
        // one the library took for the main thread (the first to ask, in a test
        // binary whichever test asked first).
        let repr = format!("{rlock:?}");
        let thread = thread::current().name().unwrap_or("Thread").to_string();
        assert!(
            repr == "<RLock(MainProcess, 1)>" || repr == format!("<RLock(MainProcess|{thread}, 1)>"),
            "{repr}"
        );
        // One release frees it: the dead process's count is not inherited.
        rlock.release().unwrap();
        assert!(!rlock.locked());
    }

    fn a_semaphore_release_wakes_a_waiting_process(method: StartMethod) {
        let sem = Semaphore::new(0).unwrap();
        let child = start(process(method, acquire_one, (sem.clone(),)));
        thread::sleep(Duration::from_millis(20));
        sem.release().unwrap();
        assert_eq!(finish(child), 0);
        assert_eq!(sem.get_value(), 0);
    }

    fn semaphore_of_three_never_admits_a_fourth_process(method: StartMethod) {
        let sem = Semaphore::new(3).unwrap();
        let inside = Value::new(0u32).unwrap();
        let most = Value::new(0u32).unwrap();
        let children = start_n(6, method, admit, (sem.clone(), inside.clone(), most.clone()));
        for child in children {
            assert_eq!(finish(child), 0);
        }
        assert!(
            most.get() <= 3,
            "{} processes were inside at once",
            most.get()
        );
        assert!(most.get() >= 1);
        assert_eq!(inside.get(), 0);
        assert_eq!(sem.get_value(), 3);
    }

    fn a_condition_is_notified_across_processes(method: StartMethod) {
        let cond = Condition::new(None).unwrap();
        let ready = Event::new().unwrap();
        let child = start(process(method, wait_for_notify, (cond.clone(), ready.clone())));
        assert!(ready.wait_timeout(BOUND));
        {
            // Taking the lock means the child is inside wait(): it released it there.
            let _g = cond.lock();
            cond.notify(1).unwrap();
        }
        assert_eq!(finish(child), 0);
    }

    fn notify_n_wakes_exactly_n_waiters_across_processes_and_threads(method: StartMethod) {
        let cond = Condition::new(None).unwrap();
        let sleeping = Value::new(0u32).unwrap();
        let woken = Value::new(0u32).unwrap();
        let children = start_n(
            3,
            method,
            count_wakeups,
            (cond.clone(), sleeping.clone(), woken.clone()),
        );
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (c, s, w) = (cond.clone(), sleeping.clone(), woken.clone());
                thread::spawn(move || count_wakeups(c, s, w))
            })
            .collect();
        until(|| sleeping.get() == 6);
        let notify = |n| {
            let _g = cond.lock();
            cond.notify(n).unwrap();
        };
        assert_eq!(woken.get(), 0);
        notify(2);
        until(|| woken.get() >= 2);
        thread::sleep(Duration::from_millis(100));
        assert_eq!(woken.get(), 2, "notify(2) woke more than 2");
        notify(4);
        until(|| woken.get() >= 6);
        notify(3);
        thread::sleep(Duration::from_millis(50));
        assert_eq!(woken.get(), 6);
        for child in children {
            assert_eq!(finish(child), 0);
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(format!("{cond:?}"), "<Condition(<RLock(None, 0)>, 0)>");
    }

    fn notify_all_skips_timed_out_waiters_and_wakes_the_rest(method: StartMethod) {
        let cond = Condition::new(None).unwrap();
        // Two waiters that time out.
        let timed: Vec<_> = (0..2)
            .map(|_| {
                let c = cond.clone();
                thread::spawn(move || {
                    let _g = c.lock();
                    assert!(!c.wait_timeout(Duration::from_millis(50)).unwrap());
                })
            })
            .collect();
        for t in timed {
            t.join().unwrap();
        }
        let sleeping = Value::new(0u32).unwrap();
        let woken = Value::new(0u32).unwrap();
        let children = start_n(
            3,
            method,
            count_wakeups,
            (cond.clone(), sleeping.clone(), woken.clone()),
        );
        until(|| sleeping.get() == 3);
        {
            let _g = cond.lock();
            cond.notify_all().unwrap();
        }
        for child in children {
            assert_eq!(finish(child), 0);
        }
        assert_eq!(woken.get(), 3);
    }

    fn wait_for_returns_the_predicate_or_times_out(method: StartMethod) {
        let cond = Condition::new(None).unwrap();
        let state = Value::new(0u32).unwrap();
        let child = start(process(
            method,
            count_to_four,
            (cond.clone(), state.clone()),
        ));
        {
            let _g = cond.lock();
            assert!(cond.wait_for(|| state.get() == 4, Some(BOUND)).unwrap());
        }
        assert_eq!(finish(child), 0);
        let _g = cond.lock();
        let start = Instant::now();
        assert!(
            !cond
                .wait_for(|| state.get() == 5, Some(Duration::from_millis(100)))
                .unwrap()
        );
        assert!(start.elapsed() >= Duration::from_millis(100));
    }

    fn a_waiter_that_died_does_not_swallow_a_notify(method: StartMethod) {
        let cond = Condition::new(None).unwrap();
        let ready = Event::new().unwrap();
        // The first waiter (the oldest) is killed while waiting.
        let mut doomed = start(process(method, wait_for_notify, (cond.clone(), ready.clone())));
        assert!(ready.wait_timeout(BOUND));
        {
            let _g = cond.lock(); // it is inside wait()
        }
        doomed.kill().unwrap();
        doomed.join().unwrap();
        ready.clear();
        let survivor = start(process(method, wait_for_notify, (cond.clone(), ready.clone())));
        assert!(ready.wait_timeout(BOUND));
        {
            let _g = cond.lock();
            cond.notify(1).unwrap();
        }
        assert_eq!(finish(survivor), 0, "the notify went to the dead waiter");
    }

    fn an_event_set_by_a_child_wakes_the_parent(method: StartMethod) {
        let ev = Event::new().unwrap();
        let child = start(process(method, set_later, (ev.clone(),)));
        assert!(ev.wait_timeout(BOUND));
        assert_eq!(finish(child), 0);
    }

    fn an_event_wakes_every_waiter(method: StartMethod) {
        let ev = Event::new().unwrap();
        let children = start_n(3, method, wait_event, (ev.clone(),));
        thread::sleep(Duration::from_millis(20));
        ev.set();
        for child in children {
            assert_eq!(finish(child), 0);
        }
    }

    fn a_barrier_of_three_processes_advances_in_lockstep(method: StartMethod) {
        let barrier = Barrier::new(3, None, None).unwrap();
        let arrived = Value::new(0u32).unwrap();
        let indices = Value::new(0u32).unwrap();
        let children = start_n(
            3,
            method,
            barrier_party,
            (barrier.clone(), arrived.clone(), indices.clone()),
        );
        for child in children {
            assert_eq!(finish(child), 0);
        }
        assert_eq!(arrived.get(), 9);
        // Each pass gave out the indices 0, 1 and 2 exactly once.
        assert_eq!(indices.get(), 0x03_03_03);
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.broken());
    }

    fn a_barrier_timeout_breaks_it_for_every_party_across_processes(method: StartMethod) {
        let barrier = Barrier::new(3, None, None).unwrap();
        // This party has no timeout: it is broken by the other's.
        let patient = start(process(method, wait_broken, (barrier.clone(),)));
        until(|| barrier.n_waiting() == 1);
        let start_at = Instant::now();
        assert!(matches!(
            barrier.wait_timeout(Duration::from_millis(100)),
            Err(Error::BrokenBarrier)
        ));
        assert!(start_at.elapsed() >= Duration::from_millis(100));
        assert_eq!(finish(patient), 0);
        assert!(barrier.broken());
    }

    fn reprs_follow_python(method: StartMethod) {
        let lock = Lock::new().unwrap();
        assert_eq!(format!("{lock:?}"), "<Lock(owner=None)>");
        let rlock = RLock::new().unwrap();
        assert_eq!(format!("{rlock:?}"), "<RLock(None, 0)>");
        let sem = Semaphore::new(3).unwrap();
        assert_eq!(format!("{sem:?}"), "<Semaphore(value=3)>");
        let l2 = Arc::new(lock.clone());
        l2.acquire();
        let seen = thread::spawn(move || format!("{:?}", *l2)).join().unwrap();
        assert_eq!(seen, "<Lock(owner=SomeOtherThread)>");
        lock.release().unwrap();
        let child = start(process(method, hold_both, (lock.clone(), rlock.clone())));
        until(|| rlock.locked() && lock.locked());
        assert_eq!(format!("{lock:?}"), "<Lock(owner=SomeOtherProcess)>");
        assert_eq!(format!("{rlock:?}"), "<RLock(SomeOtherProcess, nonzero)>");
        let mut child = child;
        child.kill().unwrap();
        child.join().unwrap();
    }
}
