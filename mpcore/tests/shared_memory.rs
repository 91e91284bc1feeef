//! SharedMemory and its clean-up after processes that crash.
//!
//! Every test removes what it creates: no `/dev/shm/mpcore*` entry may survive.
//! Tests with children are in `per_method!`, which makes a `fork::NAME`,
//! `spawn::NAME` and `forkserver::NAME` test of each.

mod common;

use std::io::ErrorKind;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::{BOUND, per_method, process, run, start};
use mpcore::shared_memory::{ShareableList, SharedMemory};
use mpcore::{Error, Event, Obj, Process, StartMethod};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A name unique to this test process and test.
fn name(test: &str) -> String {
    format!("mpcore-test-{}-{test}", std::process::id())
}

fn exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

fn until_gone(name: &str) {
    let start = Instant::now();
    while exists(name) {
        assert!(start.elapsed() < BOUND, "/dev/shm/{name} was never removed");
        thread::sleep(Duration::from_millis(10));
    }
}

fn io_kind(err: &Error) -> Option<ErrorKind> {
    match err {
        Error::Io(e) => Some(e.kind()),
        _ => None,
    }
}

#[test]
fn create_open_and_share_bytes() {
    let n = name("basics");
    let mut shm = SharedMemory::create(Some(&n), 512).unwrap();
    assert_eq!(shm.name(), n);
    assert_eq!(shm.size(), 512);
    assert_eq!(shm.buf().len(), 512);
    assert!(shm.buf().iter().all(|&b| b == 0));
    shm.buf_mut()[0] = 42;
    let other = SharedMemory::open(&format!("/{n}")).unwrap();
    assert_eq!(other.name(), n, "no leading slash");
    assert_eq!(other.buf()[0], 42);
    assert_eq!(other.size(), 512);
    let repr = format!("{shm:?}");
    assert!(repr.contains(&n) && repr.contains("512"), "{repr}");
    shm.unlink().unwrap();
    assert!(!exists(&n));
    // Handles keep working after unlink.
    assert_eq!(other.buf()[0], 42);
    let tiny = SharedMemory::create(None, 1).unwrap();
    assert_eq!((tiny.size(), tiny.buf().len()), (1, 1));
    tiny.unlink().unwrap();
}

#[test]
fn generated_names_start_with_mpcore() {
    let shm = SharedMemory::create(None, 16).unwrap();
    let prefix = format!("mpcore-{}-", std::process::id());
    assert!(shm.name().starts_with(&prefix), "{}", shm.name());
    assert!(!shm.name().starts_with('/'));
    assert!(exists(shm.name()));
    shm.unlink().unwrap();
    assert!(!exists(shm.name()));
}

#[test]
fn invalid_arguments_and_lifecycle_errors() {
    let err = SharedMemory::create(None, 0).unwrap_err();
    assert!(
        err.to_string().contains("'size' must be a positive number"),
        "{err}"
    );
    for bad in ["", "/", "a/b", "a\0b"] {
        assert!(SharedMemory::create(Some(bad), 8).is_err(), "{bad:?}");
    }
    let missing = SharedMemory::open(&name("missing")).unwrap_err();
    assert_eq!(io_kind(&missing), Some(ErrorKind::NotFound), "{missing}");

    let n = name("lifecycle");
    let mut shm = SharedMemory::create(Some(&n), 64).unwrap();
    let dup = SharedMemory::create(Some(&n), 64).unwrap_err();
    assert_eq!(io_kind(&dup), Some(ErrorKind::AlreadyExists), "{dup}");
    assert!(dup.to_string().contains(&n));
    shm.close().unwrap();
    shm.close().unwrap(); // a second close is fine
    assert!(shm.buf().is_empty());
    assert!(shm.buf_mut().is_empty());
    shm.unlink().unwrap();
    let again = shm.unlink().unwrap_err();
    assert_eq!(io_kind(&again), Some(ErrorKind::NotFound), "{again}");
}

fn write_in_child(mut shm: SharedMemory) {
    shm.buf_mut()[..5].copy_from_slice(b"hello");
}

#[test]
fn a_handle_serializes_as_its_name() {
    let shm = SharedMemory::create(None, 8).unwrap();
    let bytes = mpcore::reduction::encode(&shm).unwrap();
    let copy: SharedMemory = mpcore::reduction::decode(&bytes).unwrap();
    assert_eq!(copy.name(), shm.name());
    shm.unlink().unwrap();
    // After unlink the name leads nowhere.
    assert!(mpcore::reduction::decode::<SharedMemory>(&bytes).is_err());
}

fn create_and_hang(name: String, created: Event) {
    let _shm = SharedMemory::create(Some(&name), 8).unwrap();
    created.set();
    loop {
        thread::park();
    }
}

/// A started child that is killed and reaped if it still runs when dropped, so
/// that a test that fails does not leave it behind (and the test binary, which
/// joins its children at exit, does not wait for it).
struct Child(Process);

impl std::ops::Deref for Child {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.0
    }
}

impl std::ops::DerefMut for Child {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.0
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.0.is_alive() {
            let _ = self.0.kill();
        }
        let _ = self.0.join();
    }
}

/// Removes the segments it names when dropped, should a failing test leave them.
struct RemoveOnDrop(Vec<String>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = std::fs::remove_file(Path::new("/dev/shm").join(name));
        }
    }
}

/// Starts a child of `method` that creates the segment `name` and hangs; returns it
/// once the segment is there.
fn start_creator(method: StartMethod, name: &str) -> Child {
    let created = Event::new().unwrap();
    let child = Child(start(process(
        method,
        create_and_hang,
        (name.to_string(), created.clone()),
    )));
    assert!(created.wait_timeout(BOUND));
    child
}

// ---------------------------------------------------------------------------
// Finding the resource tracker

/// `(state, parent pid, name)` of the process `pid` from `/proc/PID/stat`; `None`
/// once it is gone.
fn proc_stat(pid: i32) -> Option<(char, i32, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (NAME) STATE PPID ...": the name may hold spaces and parentheses.
    let name = text.get(text.find('(')? + 1..text.rfind(')')?)?.to_string();
    let mut rest = text.get(text.rfind(')')? + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((state, ppid, name))
}

/// Whether `pid` has ended: gone, or a zombie nobody has reaped yet.
fn ended(pid: i32) -> bool {
    proc_stat(pid).is_none_or(|(state, _, _)| matches!(state, 'Z' | 'X'))
}

fn until_ended(pid: i32) {
    let start = Instant::now();
    while !ended(pid) {
        assert!(start.elapsed() < BOUND, "process {pid} never ended");
        thread::sleep(Duration::from_millis(10));
    }
}

/// The running resource tracker of the process `pid`: the tracker is forked by
/// the process that creates segments, and names itself `mpcore-tracker` (waits
/// until it has).
fn the_tracker_of(pid: i32) -> i32 {
    let start = Instant::now();
    loop {
        let trackers: Vec<i32> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&p| {
                proc_stat(p).is_some_and(|(state, ppid, name)| {
                    ppid == pid && name == "mpcore-tracker" && !matches!(state, 'Z' | 'X')
                })
            })
            .collect();
        match trackers[..] {
            [tracker] => return tracker,
            [] => {}
            _ => panic!("process {pid} runs several trackers: {trackers:?}"),
        }
        assert!(start.elapsed() < BOUND, "process {pid} runs no tracker");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Creates `first`, and `second` once `go` is set; then waits to be killed.
fn create_two(first: String, second: String, created: Event, go: Event) {
    let _first = SharedMemory::create(Some(&first), 8).unwrap();
    created.set();
    assert!(go.wait_timeout(BOUND));
    let _second = SharedMemory::create(Some(&second), 8).unwrap();
    created.set();
    thread::sleep(BOUND);
}

// ---------------------------------------------------------------------------
// ShareableList

fn every_type() -> Vec<Obj> {
    vec![
        Obj::Int(-7),
        Obj::Int(i64::MAX),
        Obj::Float(2.5),
        Obj::Bool(true),
        Obj::Bool(false),
        Obj::None,
        Obj::from("héllo"),
        Obj::from(""),
        Obj::bytes(b"\0raw\0".to_vec()),
        Obj::bytes(Vec::new()),
    ]
}

#[test]
fn shareable_list_round_trips_every_type() {
    let n = name("sl-types");
    let items = every_type();
    let sl = ShareableList::new(&items, Some(&n)).unwrap();
    assert_eq!(sl.shm().name(), n);
    assert_eq!(sl.len(), items.len());
    for (i, item) in items.iter().enumerate() {
        assert_eq!(&sl.get(i).unwrap(), item, "item {i}");
    }
    let other = ShareableList::open(&n).unwrap();
    assert_eq!(other.to_vec().unwrap(), items);
    let empty = ShareableList::new(&[], None).unwrap();
    assert!(empty.is_empty() && empty.get(0).is_err());
    empty.shm().unlink().unwrap();
    sl.shm().unlink().unwrap();
    assert!(!exists(&n));
}

#[test]
fn shareable_list_set_changes_types_within_the_slot() {
    let mut sl = ShareableList::new(&[Obj::Int(1), Obj::from("abc"), Obj::None], None).unwrap();
    let other = ShareableList::open(sl.shm().name()).unwrap();
    sl.set(0, Obj::Float(-0.5)).unwrap();
    sl.set(1, Obj::from("abcdefghi")).unwrap_err();
    sl.set(1, Obj::from("abcdefg")).unwrap(); // 3 rounds up to 8
    sl.set(2, Obj::bytes(b"12345678".to_vec())).unwrap(); // a scalar slot holds 8
    assert_eq!(other.get(0).unwrap(), Obj::Float(-0.5));
    assert_eq!(other.get(1).unwrap(), Obj::from("abcdefg"));
    assert_eq!(other.get(2).unwrap(), Obj::bytes(b"12345678".to_vec()));
    sl.set(1, Obj::from("x")).unwrap();
    assert_eq!(other.get(1).unwrap(), Obj::from("x"));
    sl.set(2, Obj::Bool(true)).unwrap();
    assert_eq!(other.get(2).unwrap(), Obj::Bool(true));
    sl.shm().unlink().unwrap();
}

#[test]
fn shareable_list_errors() {
    let n = name("sl-errors");
    // Unsupported types; nothing is created.
    for bad in [
        Obj::List(vec![]),
        Obj::Tuple(vec![Obj::Int(1)]),
        Obj::Dict(Default::default()),
    ] {
        assert!(ShareableList::new(&[Obj::Int(1), bad.clone()], Some(&n)).is_err());
        assert!(!exists(&n));
    }
    let mut sl = ShareableList::new(&[Obj::from("12345678")], Some(&n)).unwrap();
    // 8 bytes round up to 16.
    sl.set(0, Obj::from("x".repeat(16))).unwrap();
    let err = sl.set(0, Obj::from("x".repeat(17))).unwrap_err();
    assert!(
        err.to_string().contains("exceeds available storage"),
        "{err}"
    );
    // Multi-byte characters count by their encoded length.
    let err = sl.set(0, Obj::from("é".repeat(9))).unwrap_err();
    assert!(
        err.to_string().contains("exceeds available storage"),
        "{err}"
    );
    assert!(sl.set(0, Obj::List(vec![])).is_err());
    assert!(sl.get(1).is_err());
    assert!(sl.set(1, Obj::Int(0)).is_err());
    assert_eq!(sl.get(0).unwrap(), Obj::from("x".repeat(16)));
    assert!(ShareableList::new(&[Obj::Int(1)], Some(&n)).is_err()); // exists
    sl.shm().unlink().unwrap();
    let err = ShareableList::open(&n).unwrap_err();
    assert_eq!(io_kind(&err), Some(ErrorKind::NotFound), "{err}");
    assert!(!exists(&n));
}

#[test]
fn shareable_list_index_and_count_compare_as_python() {
    let mut sl = ShareableList::new(
        &[
            Obj::from("howdy"),
            Obj::bytes(b"HoWdY".to_vec()),
            Obj::Float(-273.154),
            Obj::Int(100),
            Obj::None,
            Obj::Bool(true),
            Obj::Int(42),
        ],
        None,
    )
    .unwrap();
    assert_eq!(sl.index(&Obj::Int(100)).unwrap(), 3);
    let err = sl.index(&Obj::from("100")).unwrap_err();
    assert!(matches!(err, Error::InvalidState(_)), "{err:?}");
    assert_eq!(err.to_string(), "'100' not in this container");
    let err = sl.index(&Obj::from("HoWdY")).unwrap_err(); // str is not bytes
    assert_eq!(err.to_string(), "'HoWdY' not in this container");
    assert_eq!(sl.index(&Obj::bytes(b"HoWdY".to_vec())).unwrap(), 1);
    assert_eq!(sl.index(&Obj::None).unwrap(), 4);
    // Python's ==: True == 1 and 42.0 == 42.
    assert_eq!(sl.index(&Obj::Int(1)).unwrap(), 5);
    assert_eq!(sl.index(&Obj::Float(42.0)).unwrap(), 6);
    assert_eq!(sl.count(&Obj::Int(42)).unwrap(), 1);
    sl.set(3, Obj::Int(42)).unwrap();
    assert_eq!(sl.count(&Obj::Int(42)).unwrap(), 2);
    assert_eq!(sl.index(&Obj::Int(42)).unwrap(), 3, "the first one");
    assert_eq!(sl.count(&Obj::bytes(b"HoWdY".to_vec())).unwrap(), 1);
    assert_eq!(sl.count(&Obj::bytes(b"adios".to_vec())).unwrap(), 0);
    assert_eq!(sl.count(&Obj::Bool(true)).unwrap(), 1);
    let err = sl.index(&Obj::Int(100)).unwrap_err();
    assert_eq!(err.to_string(), "100 not in this container");
    // What another process wrote is what they compare against.
    let mut other = ShareableList::open(sl.shm().name()).unwrap();
    other.set(0, Obj::Int(42)).unwrap();
    assert_eq!(sl.count(&Obj::Int(42)).unwrap(), 3);
    assert_eq!(sl.index(&Obj::Int(42)).unwrap(), 0);
    let empty = ShareableList::new(&[], None).unwrap();
    assert_eq!(empty.count(&Obj::None).unwrap(), 0);
    assert!(empty.index(&Obj::None).is_err());
    empty.shm().unlink().unwrap();
    sl.shm().unlink().unwrap();
}

/// Writes `bytes` at the start of a fresh segment of `size` bytes.
fn garbage_segment(size: usize, bytes: &[u8]) -> SharedMemory {
    let mut shm = SharedMemory::create(None, size).unwrap();
    shm.buf_mut()[..bytes.len()].copy_from_slice(bytes);
    shm
}

fn header(n: u64, slots: &[(u64, u64, u64)]) -> Vec<u8> {
    let mut h = b"mpcSL\0\0\x01".to_vec();
    h.extend(n.to_le_bytes());
    for &(kind, cap, len) in slots {
        for v in [kind, cap, len] {
            h.extend(v.to_le_bytes());
        }
    }
    h
}

#[test]
fn shareable_list_open_rejects_garbage() {
    let cases: Vec<(usize, Vec<u8>)> = vec![
        (1, vec![]),
        (64, vec![0xff; 64]),
        (12, header(0, &[])[..12].to_vec()),
        (64, header(u64::MAX, &[])),
        (64, header(1 << 40, &[])),
        (64, header(2, &[(2, 8, 8)])),
        (64, header(1, &[(9, 8, 8)])),
        (64, header(1, &[(2, 0, 0)])),
        (64, header(1, &[(4, 7, 0)])),
        (64, header(1, &[(4, 8, 9)])),
        (64, header(1, &[(4, u64::MAX - 7, 0)])),
        (64, header(1, &[(4, 1 << 40, 0)])),
        (48, header(1, &[(2, 16, 8)])),
    ];
    for (i, (size, bytes)) in cases.iter().enumerate() {
        let shm = garbage_segment(*size, bytes);
        let res = ShareableList::open(shm.name());
        shm.unlink().unwrap();
        assert!(res.is_err(), "case {i} opened");
    }
    // Pseudo-random bytes after a valid magic never panic.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200 {
        let mut bytes = header(0, &[]);
        for _ in 0..14 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.extend((x % 12).to_le_bytes());
        }
        let shm = garbage_segment(bytes.len() + 32, &bytes);
        if let Ok(sl) = ShareableList::open(shm.name()) {
            for j in 0..sl.len() + 1 {
                let _ = sl.get(j);
            }
        }
        shm.unlink().unwrap();
    }
}

#[test]
fn shareable_list_get_rechecks_a_slot_corrupted_after_open() {
    let sl = ShareableList::new(&[Obj::from("abc"), Obj::Int(3)], None).unwrap();
    let mut raw = SharedMemory::open(sl.shm().name()).unwrap();
    raw.buf_mut()[16..24].copy_from_slice(&77u64.to_le_bytes()); // kind
    assert!(sl.get(0).is_err());
    raw.buf_mut()[16..24].copy_from_slice(&4u64.to_le_bytes());
    raw.buf_mut()[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // length
    assert!(sl.get(0).is_err());
    raw.buf_mut()[32..40].copy_from_slice(&2u64.to_le_bytes());
    assert_eq!(sl.get(0).unwrap(), Obj::from("ab"));
    raw.buf_mut()[56..64].copy_from_slice(&2u64.to_le_bytes()); // int, length 2
    assert!(sl.get(1).is_err());
    sl.shm().unlink().unwrap();
}

fn update_list(mut sl: ShareableList) {
    assert_eq!(sl.get(0).unwrap(), Obj::Int(1));
    sl.set(0, Obj::Int(sl.get(0).unwrap().as_int().unwrap() + 41))
        .unwrap();
    sl.set(1, Obj::from("from child")).unwrap();
    sl.set(2, Obj::Float(1.25)).unwrap();
    sl.set(3, Obj::None).unwrap();
    assert!(sl.set(1, Obj::from("x".repeat(17))).is_err());
}

// ---------------------------------------------------------------------------
// Across processes, under every start method
// ---------------------------------------------------------------------------

/// Opens the segment by its name and writes 1 at its start.
fn attach_and_write(name: String) {
    let mut attached = SharedMemory::open(&name).unwrap();
    attached.buf_mut()[0] = 1;
}

fn create_and_close(name: String) {
    let shm = SharedMemory::create(Some(&name), 8).unwrap();
    drop(shm); // closed, never unlinked
}

fn create_and_unlink(name: String) {
    let shm = SharedMemory::create(Some(&name), 8).unwrap();
    shm.unlink().unwrap();
}

per_method! {
    fn a_child_writes_what_the_parent_reads(method: StartMethod) {
        let shm = SharedMemory::create(None, 64).unwrap();
        let handle = SharedMemory::open(shm.name()).unwrap();
        assert_eq!(run(process(method, write_in_child, (handle,))), 0);
        assert_eq!(&shm.buf()[..5], b"hello");
        shm.unlink().unwrap();
    }

    fn a_child_that_only_attached_does_not_remove_the_segment(method: StartMethod) {
        let shm = SharedMemory::create(None, 8).unwrap();
        let n = shm.name().to_string();
        assert_eq!(run(process(method, attach_and_write, (n,))), 0);
        thread::sleep(Duration::from_millis(200));
        assert!(
            exists(shm.name()),
            "the segment vanished when the child exited"
        );
        assert_eq!(shm.buf()[0], 1);
        shm.unlink().unwrap();
    }

    fn a_segment_left_by_a_child_that_exited_is_removed(method: StartMethod) {
        let n = name(&format!("left-by-exit-{method}"));
        assert_eq!(run(process(method, create_and_close, (n.clone(),))), 0);
        until_gone(&n);
    }

    fn a_segment_left_by_a_killed_child_is_removed(method: StartMethod) {
        let n = name(&format!("left-by-kill-{method}"));
        let mut child = start_creator(method, &n);
        assert!(exists(&n));
        child.kill().unwrap();
        child.join().unwrap();
        until_gone(&n);
    }

    fn a_leftover_segment_stays_while_another_process_uses_it(method: StartMethod) {
        let n = name(&format!("in-use-{method}"));
        let mut child = start_creator(method, &n);
        let mut user = SharedMemory::open(&n).unwrap();
        child.kill().unwrap();
        child.join().unwrap();
        thread::sleep(Duration::from_millis(300));
        assert!(exists(&n), "removed while this process still had it open");
        user.buf_mut()[0] = 7;
        user.close().unwrap();
        until_gone(&n);
    }

    fn an_unlinked_segment_is_not_touched_by_the_tracker(method: StartMethod) {
        // The child unlinks its segment, and a new one with the same name appears:
        // the tracker must not remove the newcomer when the child exits.
        let n = name(&format!("reused-{method}"));
        assert_eq!(run(process(method, create_and_unlink, (n.clone(),))), 0);
        let mine = SharedMemory::create(Some(&n), 8).unwrap();
        thread::sleep(Duration::from_millis(300));
        assert!(exists(&n));
        mine.unlink().unwrap();
    }

    // Row 149: like CPython's, the tracker ignores SIGINT and SIGTERM (a Ctrl-C
    // aimed at the whole program must not stop the clean-up).
    fn the_tracker_survives_sigint_and_sigterm_and_still_cleans_up(method: StartMethod) {
        let n = name(&format!("tracker-signals-{method}"));
        let _cleanup = RemoveOnDrop(vec![n.clone()]);
        let mut child = start_creator(method, &n);
        let tracker = the_tracker_of(child.pid().unwrap());
        for signal in [Signal::SIGINT, Signal::SIGTERM] {
            kill(Pid::from_raw(tracker), signal).unwrap();
        }
        thread::sleep(Duration::from_millis(300));
        assert!(!ended(tracker), "the tracker died of SIGINT or SIGTERM");
        child.kill().unwrap();
        child.join().unwrap();
        until_gone(&n);
        until_ended(tracker);
    }

    // Row 149: a tracker that was killed is started again on the next use, and
    // the new one is told about the segments the old one knew of.
    fn a_killed_tracker_is_relaunched_and_still_cleans_up(method: StartMethod) {
        let first = name(&format!("tracker-killed-1-{method}"));
        let second = name(&format!("tracker-killed-2-{method}"));
        let _cleanup = RemoveOnDrop(vec![first.clone(), second.clone()]);
        let (created, go) = (Event::new().unwrap(), Event::new().unwrap());
        let mut child = Child(start(process(
            method,
            create_two,
            (first.clone(), second.clone(), created.clone(), go.clone()),
        )));
        assert!(created.wait_timeout(BOUND));
        created.clear();
        let pid = child.pid().unwrap();
        let killed = the_tracker_of(pid);
        kill(Pid::from_raw(killed), Signal::SIGKILL).unwrap();
        until_ended(killed);
        go.set();
        assert!(created.wait_timeout(BOUND));
        let relaunched = the_tracker_of(pid);
        assert_ne!(relaunched, killed);
        assert!(exists(&first) && exists(&second));
        child.kill().unwrap();
        child.join().unwrap();
        until_gone(&first);
        until_gone(&second);
        until_ended(relaunched);
    }

    fn shareable_list_is_shared_with_a_child(method: StartMethod) {
        let sl = ShareableList::new(
            &[
                Obj::Int(1),
                Obj::from("a string of 13"),
                Obj::None,
                Obj::bytes(b"b".to_vec()),
            ],
            None,
        )
        .unwrap();
        let handle = ShareableList::open(sl.shm().name()).unwrap();
        assert_eq!(
            run(process(method, update_list, (handle,))),
            0,
            "{method}"
        );
        assert_eq!(
            sl.to_vec().unwrap(),
            [
                Obj::Int(42),
                Obj::from("from child"),
                Obj::Float(1.25),
                Obj::None
            ],
            "{method}"
        );
        sl.shm().unlink().unwrap();
        assert!(!exists(sl.shm().name()));
    }
}
