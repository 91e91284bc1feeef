//! SharedMemory and its clean-up after processes that crash.
//!
//! Every test removes what it creates: no `/dev/shm/mpcore*` entry may survive.

use std::io::ErrorKind;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use mpcore::shared_memory::SharedMemory;
use mpcore::{Error, Event, Process};

const BOUND: Duration = Duration::from_secs(60);

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

fn run(mut p: Process) -> i32 {
    p.start().unwrap();
    p.join().unwrap();
    p.exitcode().unwrap()
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
    assert!(shm.name().starts_with("mpcore-"), "{}", shm.name());
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
fn a_child_writes_what_the_parent_reads() {
    let shm = SharedMemory::create(None, 64).unwrap();
    let handle = SharedMemory::open(shm.name()).unwrap();
    assert_eq!(run(Process::new(write_in_child, (handle,))), 0);
    assert_eq!(&shm.buf()[..5], b"hello");
    shm.unlink().unwrap();
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

#[test]
fn a_child_that_only_attached_does_not_remove_the_segment() {
    let shm = SharedMemory::create(None, 8).unwrap();
    let n = shm.name().to_string();
    let child = Process::from_closure(move || {
        let mut attached = SharedMemory::open(&n).unwrap();
        attached.buf_mut()[0] = 1;
    });
    assert_eq!(run(child), 0);
    thread::sleep(Duration::from_millis(200));
    assert!(
        exists(shm.name()),
        "the segment vanished when the child exited"
    );
    assert_eq!(shm.buf()[0], 1);
    shm.unlink().unwrap();
}

#[test]
fn a_segment_left_by_a_child_that_exited_is_removed() {
    let n = name("left-by-exit");
    let n2 = n.clone();
    let child = Process::from_closure(move || {
        let shm = SharedMemory::create(Some(&n2), 8).unwrap();
        drop(shm); // closed, never unlinked
    });
    assert_eq!(run(child), 0);
    until_gone(&n);
}

fn create_and_hang(name: String, created: Event) {
    let _shm = SharedMemory::create(Some(&name), 8).unwrap();
    created.set();
    loop {
        thread::park();
    }
}

#[test]
fn a_segment_left_by_a_killed_child_is_removed() {
    let n = name("left-by-kill");
    let created = Event::new().unwrap();
    let mut child = Process::new(create_and_hang, (n.clone(), created.clone()));
    child.start().unwrap();
    assert!(created.wait_timeout(BOUND));
    assert!(exists(&n));
    child.kill().unwrap();
    child.join().unwrap();
    until_gone(&n);
}

#[test]
fn a_leftover_segment_stays_while_another_process_uses_it() {
    let n = name("in-use");
    let created = Event::new().unwrap();
    let mut child = Process::new(create_and_hang, (n.clone(), created.clone()));
    child.start().unwrap();
    assert!(created.wait_timeout(BOUND));
    let mut user = SharedMemory::open(&n).unwrap();
    child.kill().unwrap();
    child.join().unwrap();
    thread::sleep(Duration::from_millis(300));
    assert!(exists(&n), "removed while this process still had it open");
    user.buf_mut()[0] = 7;
    user.close().unwrap();
    until_gone(&n);
}

#[test]
fn an_unlinked_segment_is_not_touched_by_the_tracker() {
    // The child unlinks its segment, and a new one with the same name appears:
    // the tracker must not remove the newcomer when the child exits.
    let n = name("reused");
    let n2 = n.clone();
    let child = Process::from_closure(move || {
        let shm = SharedMemory::create(Some(&n2), 8).unwrap();
        shm.unlink().unwrap();
    });
    assert_eq!(run(child), 0);
    let mine = SharedMemory::create(Some(&n), 8).unwrap();
    thread::sleep(Duration::from_millis(300));
    assert!(exists(&n));
    mine.unlink().unwrap();
}
