//! Lesson `semaphore`: ten processes share a room guarded by `Semaphore(3)`, then
//! by `Semaphore(1)`; a shared counter records the most inside at once.

use harness::{Lesson, LessonRun};

/// Each holder works one article second: a quarter of a second here, long beside
/// starting a process even on a loaded machine.
const TIME_SCALE: f64 = 0.25;

/// `(the most inside at once, seconds taken)` for each room, in order, from the
/// lines `most inside at once: 3` and `took 1.02s`.
fn rooms(run: &LessonRun) -> Vec<(u32, f64)> {
    let most = run
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix("most inside at once: "))
        .map(|n| n.parse().unwrap_or_else(|_| panic!("not a count: {n:?}")));
    let took = run
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix("took ")?.strip_suffix('s'))
        .map(|t| t.parse().unwrap_or_else(|_| panic!("not seconds: {t:?}")));
    most.zip(took).collect()
}

#[test]
fn semaphore() {
    let run = Lesson::new("semaphore").time_scale(TIME_SCALE).check();
    harness::assert_lesson_snapshot!(run);
    assert_eq!(run.exit_code, Some(0), "stderr: {}", run.stderr);

    // Twenty children, each a process of its own.
    assert_eq!(run.pids.len(), 20, "{:?}", run.pids);
    assert!(!run.pids.contains_key(&run.main_pid));

    let rooms = rooms(&run);
    let [(most3, took3), (most1, took1)] = rooms[..] else {
        panic!("expected two rooms, got {rooms:?}:\n{}", run.stdout);
    };
    // The invariant: never more inside than the semaphore's value. And the limit is
    // reached: the first holders wait for the room to fill up.
    assert!(most3 <= 3, "{most3} inside a Semaphore(3) room at once");
    assert_eq!(most3, 3, "three never got in together:\n{}", run.stdout);
    assert_eq!(most1, 1, "Semaphore(1) is not a lock:\n{}", run.stdout);

    // Ten holders of one work unit each: at three at a time that is four rounds, at
    // least; one at a time, ten. The three-room is really concurrent: well under ten.
    let work = TIME_SCALE;
    assert!(took3 >= 0.95 * 4.0 * work, "Semaphore(3) took {took3}s");
    assert!(
        took3 < 8.0 * work,
        "Semaphore(3) took {took3}s: not concurrent"
    );
    assert!(took1 >= 0.95 * 10.0 * work, "Semaphore(1) took {took1}s");
}
