//! The reprs of locks held by the main thread of the main process (rows 79 and 81
//! of the behaviour catalogue): `<Lock(owner=MainProcess)>` and
//! `<RLock(MainProcess, 3)>`, as in CPython, where the thread's name is added
//! only for threads other than the main one.
//!
//! libtest runs every `#[test]` on a thread of its own, never on the main thread,
//! so this test binary has its own `main` (`harness = false` in Cargo.toml): it
//! fails by panicking. The other reprs are checked in tests/synchronize.rs.

use mpcore::{Lock, RLock};

fn main() {
    mpcore::init();
    let lock = Lock::new().unwrap();
    let rlock = RLock::new().unwrap();
    assert_eq!(format!("{lock:?}"), "<Lock(owner=None)>");
    assert!(lock.acquire());
    for _ in 0..3 {
        assert!(rlock.acquire());
    }
    assert_eq!(format!("{lock:?}"), "<Lock(owner=MainProcess)>");
    assert_eq!(format!("{rlock:?}"), "<RLock(MainProcess, 3)>");

    // Seen from a thread named T2, and held by it.
    let (l, r) = (lock.clone(), rlock.clone());
    let seen = std::thread::Builder::new()
        .name("T2".into())
        .spawn(move || {
            let others = (format!("{l:?}"), format!("{r:?}"));
            let other = RLock::new().unwrap();
            other.acquire();
            other.acquire();
            (others, format!("{other:?}"))
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(seen.0.0, "<Lock(owner=SomeOtherThread)>");
    assert_eq!(seen.0.1, "<RLock(SomeOtherThread, nonzero)>");
    assert_eq!(seen.1, "<RLock(MainProcess|T2, 2)>");

    for _ in 0..3 {
        rlock.release().unwrap();
    }
    lock.release().unwrap();
    assert_eq!(format!("{rlock:?}"), "<RLock(None, 0)>");
    println!("lock reprs in the main thread: ok");
}
