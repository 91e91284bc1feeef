//! Value, Array, RawValue and RawArray shared with child processes.
//!
//! Tests of what children see and do are in `per_method!`, which makes a `fork::NAME`,
//! `spawn::NAME` and `forkserver::NAME` test of each.

mod common;

use std::thread;
use std::time::Duration;

use common::{BOUND, finish, per_method, process, run, start, start_n};
use mpcore::{Array, Event, RLock, RawArray, RawValue, StartMethod, Value};

fn assign(i: Value<i32>, d: Value<f64>, h: Value<i16>, q: Value<i64>, c: Value<u8>) {
    i.set(24234);
    d.set(-4.25);
    h.set(234);
    q.set(1 << 34);
    c.set(b'y');
}

fn assign_raw(i: RawValue<i32>, d: RawValue<f64>, b: RawValue<bool>) {
    i.set(24234);
    d.set(-4.25);
    b.set(true);
}

#[test]
fn typecodes_are_checked_against_the_rust_type() {
    assert!(Value::with_typecode('B', 1u8).is_ok());
    assert!(Value::with_typecode('c', 1u8).is_ok());
    assert!(Value::with_typecode('b', -1i8).is_ok());
    assert!(Value::with_typecode('H', 1u16).is_ok());
    assert!(Value::with_typecode('I', 1u32).is_ok());
    assert!(Value::with_typecode('l', 1i64).is_ok());
    assert!(Value::with_typecode('L', 1u64).is_ok());
    assert!(Value::with_typecode('Q', 1u64).is_ok());
    assert!(Value::with_typecode('f', 1.0f32).is_ok());
    let mismatch = Value::with_typecode('d', 1i32).unwrap_err();
    assert!(
        mismatch.to_string().contains("does not match"),
        "{mismatch}"
    );
    let unknown = Value::with_typecode('x', 1i32).unwrap_err();
    assert!(unknown.to_string().contains("bad typecode"), "{unknown}");
    assert!(Array::with_typecode('i', &[1u32]).is_err());
    assert!(RawArray::with_typecode('I', &[1u32]).is_ok());
    assert!(RawValue::with_typecode('q', 1i32).is_err());
    assert_eq!(Value::new(1.5f32).unwrap().typecode(), 'f');
}

#[test]
fn get_and_set_inside_get_lock_do_not_deadlock() {
    let v = Value::new(5i32).unwrap();
    let _held = v.get_lock().lock();
    v.set(v.get() + 1);
    assert_eq!(v.get(), 6);
    let a = Array::new(&[1i32, 2]).unwrap();
    let _held = a.get_lock().lock();
    a.set(0, a.get(1).unwrap()).unwrap();
    assert_eq!(a.to_vec(), [2, 2]);
}

#[test]
fn a_value_uses_the_lock_it_was_given() {
    let lock = RLock::new().unwrap();
    let v = Value::new_with_lock(1u64, lock.clone()).unwrap();
    let w = Value::new_with_lock(2u64, lock.clone()).unwrap();
    let _held = lock.lock();
    assert!(v.get_lock().locked() && w.get_lock().locked());
    let v2 = v.clone();
    thread::spawn(move || assert!(!v2.get_lock().try_acquire()))
        .join()
        .unwrap();
    // The holder may use both values.
    v.set(w.get() + 1);
    assert_eq!(v.get(), 3);
}

#[test]
fn another_thread_waits_for_the_values_lock() {
    let v = Value::new(0i32).unwrap();
    let guard = v.lock();
    let v2 = v.clone();
    let t = thread::spawn(move || {
        v2.set(7); // blocks until the guard is dropped
    });
    thread::sleep(Duration::from_millis(30));
    assert_eq!(*guard, 0);
    drop(guard);
    t.join().unwrap();
    assert_eq!(v.get(), 7);
}

fn increment(v: Value<i64>, times: u32) {
    for _ in 0..times {
        *v.lock() += 1;
    }
}

fn hold_value_forever(v: Value<i64>, held: Event) {
    let mut guard = v.lock();
    *guard = 99; // never written back: the process dies first
    held.set();
    loop {
        thread::park();
    }
}

#[test]
fn a_value_guard_works_on_a_copy_written_back_on_drop() {
    let v = Value::new(1i32).unwrap();
    {
        let mut g = v.lock();
        *g += 1;
        // Same thread, same object: the shared value is not yet updated.
        assert_eq!(v.get(), 1);
    }
    assert_eq!(v.get(), 2);
    {
        let g = v.lock();
        v.set(10); // a read-only guard writes nothing back
        assert_eq!(*g, 2);
    }
    assert_eq!(v.get(), 10);
}

fn prefix_sum(arr: Array<i32>) {
    let mut a = arr.lock();
    for i in 1..a.len() {
        a[i] += a[i - 1];
    }
}

#[test]
fn arrays_are_zeroed_and_indexes_are_checked() {
    let arr = Array::<i32>::zeroed(10).unwrap();
    assert_eq!(arr.to_vec(), [0; 10]);
    assert_eq!(arr.get(10), None);
    assert_eq!(arr.set(10, 1).unwrap_err().to_string(), "invalid index");
    for i in 0..10 {
        arr.set(i, i as i32).unwrap();
    }
    assert_eq!(arr.to_vec(), (0..10).collect::<Vec<_>>());
    let empty = Array::<f64>::new(&[]).unwrap();
    assert!(empty.is_empty());
    assert!(empty.to_vec().is_empty());
    let raw = RawArray::<u8>::zeroed(3).unwrap();
    assert_eq!(raw.get(3), None);
    assert!(raw.set(3, 1).is_err());
}

fn fill(arr: RawArray<f64>) {
    for i in 0..arr.len() {
        arr.set(i, i as f64 * 0.5).unwrap();
    }
}

#[test]
fn shared_data_travels_by_descriptor_as_for_a_spawned_child() {
    type Shared = (Value<i16>, Array<u64>, RawValue<f32>, RawArray<bool>);
    let original: Shared = (
        Value::new(-3).unwrap(),
        Array::new(&[1, 2, 3]).unwrap(),
        RawValue::new(0.5).unwrap(),
        RawArray::new(&[false, true]).unwrap(),
    );
    let (bytes, fds) = mpcore::reduction::encode_with_handles(&original).unwrap();
    let (v, a, rv, ra): Shared = mpcore::reduction::decode_with_handles(&bytes, fds).unwrap();
    v.set(7);
    a.set(2, 30).unwrap();
    rv.set(2.5);
    ra.set(0, true).unwrap();
    assert_eq!(original.0.get(), 7);
    assert_eq!(original.1.to_vec(), [1, 2, 30]);
    assert_eq!(original.2.get(), 2.5);
    assert_eq!(original.3.to_vec(), [true, true]);
    // The lock travelled too.
    let _held = v.get_lock().lock();
    assert!(original.0.get_lock().locked());
    // Wrong element types are refused (the sizes do not match).
    let (bytes, fds) = mpcore::reduction::encode_with_handles(&original.1).unwrap();
    assert!(mpcore::reduction::decode_with_handles::<Array<u8>>(&bytes, fds).is_err());
    // And outside a child's start, handles do not serialize at all.
    assert!(mpcore::reduction::encode(&original.0).is_err());
}

#[test]
fn every_shared_type_is_send_clone_and_serde() {
    fn check<T: Send + Sync + Clone + serde::Serialize + serde::de::DeserializeOwned>() {}
    check::<Value<f64>>();
    check::<Array<i8>>();
    check::<RawValue<u16>>();
    check::<RawArray<bool>>();
}

// ---------------------------------------------------------------------------
// Across processes, under every start method
// ---------------------------------------------------------------------------

per_method! {
    fn a_child_assigns_values_the_parent_reads(method: StartMethod) {
        let i = Value::with_typecode('i', 4343i32).unwrap();
        let d = Value::with_typecode('d', 3.625f64).unwrap();
        let h = Value::with_typecode('h', -232i16).unwrap();
        let q = Value::with_typecode('q', 1i64 << 33).unwrap();
        let c = Value::with_typecode('c', b'x').unwrap();
        assert_eq!(
            (i.get(), d.get(), h.get(), q.get(), c.get()),
            (4343, 3.625, -232, 1 << 33, b'x')
        );
        let args = (i.clone(), d.clone(), h.clone(), q.clone(), c.clone());
        assert_eq!(run(process(method, assign, args)), 0);
        assert_eq!(
            (i.get(), d.get(), h.get(), q.get(), c.get()),
            (24234, -4.25, 234, 1 << 34, b'y')
        );
    }

    fn a_child_assigns_raw_values_the_parent_reads(method: StartMethod) {
        let i = RawValue::with_typecode('i', 4343i32).unwrap();
        let d = RawValue::new(3.625f64).unwrap();
        let b = RawValue::with_typecode('?', false).unwrap();
        assert_eq!(
            run(process(method, assign_raw, (i.clone(), d.clone(), b.clone()))),
            0
        );
        assert_eq!((i.get(), d.get(), b.get()), (24234, -4.25, true));
    }

    fn two_processes_increment_a_value_exactly(method: StartMethod) {
        let v = Value::new(0i64).unwrap();
        let children = start_n(2, method, increment, (v.clone(), 20_000u32));
        increment(v.clone(), 20_000);
        for p in children {
            assert_eq!(finish(p), 0);
        }
        assert_eq!(v.get(), 60_000);
    }

    fn a_values_lock_held_by_a_killed_process_is_taken_over(method: StartMethod) {
        let v = Value::new(5i64).unwrap();
        let held = Event::new().unwrap();
        let mut child = start(process(method, hold_value_forever, (v.clone(), held.clone())));
        assert!(held.wait_timeout(BOUND));
        child.kill().unwrap();
        child.join().unwrap();
        let mut guard = v.lock();
        assert!(guard.owner_died());
        assert_eq!(*guard, 5);
        *guard += 1;
        drop(guard);
        assert_eq!(v.get(), 6);
        assert!(!v.get_lock().owner_died());
    }

    fn a_childs_prefix_sum_is_visible_to_the_parent(method: StartMethod) {
        let seq = [681, 626, -822, -1, 0, 5, 22, 3, 1, 8];
        let arr = Array::with_typecode('i', &seq).unwrap();
        assert_eq!(arr.len(), 10);
        assert_eq!(arr.get(3), Some(seq[3]));
        assert_eq!(arr.to_vec()[2..7], seq[2..7]);
        assert_eq!(run(process(method, prefix_sum, (arr.clone(),))), 0);
        let mut expected = seq;
        for i in 1..expected.len() {
            expected[i] += expected[i - 1];
        }
        assert_eq!(arr.to_vec(), expected);
    }

    fn a_child_fills_a_raw_array(method: StartMethod) {
        let arr = RawArray::<f64>::zeroed(100_000).unwrap();
        assert_eq!(run(process(method, fill, (arr.clone(),))), 0);
        let values = arr.to_vec();
        assert!(values.iter().enumerate().all(|(i, &x)| x == i as f64 * 0.5));
    }
}
