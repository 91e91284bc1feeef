//! Lesson `lock`: ten children each sleep, then print their number holding one
//! shared `RLock`; the numbers come in any order, each once, on a line of its own.
//! With `--kill-holder`, a child killed while it holds the lock does not keep it
//! from the parent, as it would under CPython.

use std::time::Duration;

use harness::{Lesson, LessonRun};

/// Each child sleeps five article seconds: one real second at this scale, so ten
/// children that slept one after another (in one process, or each waiting for the
/// previous one) would take ten.
const TIME_SCALE: f64 = 0.2;

/// The children's pids from the pid log (`Process-1` ...), checked to be distinct
/// processes other than the main one.
fn children(run: &LessonRun, n: usize) -> Vec<u32> {
    let pids: Vec<u32> = (1..=n)
        .map(|i| {
            let name = format!("Process-{i}");
            run.pid_of(&name)
                .unwrap_or_else(|| panic!("{name} logged no pid: {:?}", run.pids))
        })
        .collect();
    assert_eq!(run.pids.len(), n, "{:?}", run.pids);
    assert!(
        !pids.contains(&run.main_pid),
        "a child ran in the main process"
    );
    pids
}

#[test]
fn lock() {
    let run = Lesson::new("lock").time_scale(TIME_SCALE).check();
    harness::assert_lesson_snapshot!(run);
    assert_eq!(run.exit_code, Some(0), "stderr: {}", run.stderr);

    // Raw output, in the order printed: the banner, ten whole lines, the banner.
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 12, "{}", run.stdout);
    assert_eq!(
        lines[0], "--- the next lines may come in any order ---",
        "{}",
        run.stdout
    );
    assert_eq!(lines[11], "--- back in order ---", "{}", run.stdout);
    let mut numbers: Vec<u32> = lines[1..11]
        .iter()
        .map(|line| {
            line.parse()
                .unwrap_or_else(|_| panic!("{line:?} is not a whole number line:\n{}", run.stdout))
        })
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..10).collect::<Vec<_>>(), "{}", run.stdout);

    // Ten processes, and their sleeps (outside the lock) overlapped: about one sleep
    // in all, far from the ten of a program that slept them one after another.
    children(&run, 10);
    let sleep = Duration::from_secs_f64(5.0 * TIME_SCALE);
    assert!(run.elapsed >= sleep, "took {:?}", run.elapsed);
    assert!(
        run.elapsed < 5 * sleep,
        "took {:?}: the children did not sleep at the same time",
        run.elapsed
    );
}

#[test]
fn lock_kill_holder() {
    let lesson = Lesson::new("lock").args(&["--kill-holder"]);
    let run = lesson
        .clone()
        .skip_python(
            "CPython's lock stays held by the killed process: its reference prints \
             `acquire(timeout=5): False` (asserted below)",
        )
        .check();
    harness::assert_lesson_snapshot!(run);
    assert_eq!(run.exit_code, Some(0), "stderr: {}", run.stderr);

    let holder = children(&run, 1)[0];
    let expected = [
        "Process-1 holds the lock".to_string(),
        "killed it: exitcode -9".to_string(),
        "acquire(timeout=5): True".to_string(),
        "owner_died: True".to_string(),
        "after release, owner_died: False".to_string(),
    ];
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines, expected, "holder {holder}:\n{}", run.stdout);

    // The same steps under CPython: the lock is never given back.
    if harness::python().is_ok() {
        let py = lesson.run_python("fork").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(py.exit_code, Some(0), "stderr: {}", py.stderr);
        assert!(
            py.stdout.ends_with("acquire(timeout=5): False\n"),
            "{}",
            py.stdout
        );
    }
}
