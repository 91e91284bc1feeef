//! Lesson `join`: three children started together take about one sleep; started and
//! joined one at a time (`--sequential`) they take about three. Either way the parent
//! says "all over" last.

use harness::{Lesson, LessonRun};

/// Slow enough that starting a process is small beside one sleep (0.5 s), even on a
/// loaded machine; the snapshot does not depend on it (durations are normalised).
const TIME_SCALE: f64 = 0.25;

/// `(one sleep, the time all three took)` from the lesson's timing line
/// `three processes that each sleep 0.50s took 0.52s`.
fn timing(run: &LessonRun) -> (f64, f64) {
    let line = run
        .stdout
        .lines()
        .find(|line| line.starts_with("three processes that each sleep "))
        .unwrap_or_else(|| panic!("no timing line in:\n{}", run.stdout));
    let secs: Vec<f64> = line
        .split_whitespace()
        .filter_map(|word| word.strip_suffix('s')?.parse().ok())
        .collect();
    match secs[..] {
        [sleep, took] => (sleep, took),
        _ => panic!("cannot read the timing line {line:?}"),
    }
}

/// What both modes share: three children, each its own process, each reporting the
/// main process as its father; "all over" last.
fn check_children(run: &LessonRun) -> Vec<u32> {
    assert_eq!(run.exit_code, Some(0), "stderr: {}", run.stderr);
    let children: Vec<u32> = (1..=3)
        .map(|n| {
            let name = format!("Process-{n}");
            run.pid_of(&name)
                .unwrap_or_else(|| panic!("{name} logged no pid: {:?}", run.pids))
        })
        .collect();
    assert!(!children.contains(&run.main_pid));
    assert!(children[0] != children[1] && children[1] != children[2] && children[0] != children[2]);
    for child in &children {
        assert!(
            run.stdout.contains(&format!("self pid {child}\n")),
            "{}",
            run.stdout
        );
    }
    let fathers = run
        .stdout
        .lines()
        .filter(|line| line.starts_with("father ppid "))
        .collect::<Vec<_>>();
    assert_eq!(fathers, vec![format!("father ppid {}", run.main_pid); 3]);
    assert_eq!(
        run.stdout.lines().last(),
        Some("all over"),
        "{}",
        run.stdout
    );
    children
}

#[test]
fn join() {
    let run = Lesson::new("join").time_scale(TIME_SCALE).check();
    harness::assert_lesson_snapshot!(run);
    check_children(&run);

    // Concurrent: the three sleeps overlap, so all three take about one sleep.
    let (sleep, took) = timing(&run);
    assert!(
        took >= 0.95 * sleep && took < 2.0 * sleep,
        "started together, three sleeps of {sleep}s took {took}s: expected about one"
    );
}

#[test]
fn join_sequential() {
    let run = Lesson::new("join")
        .args(&["--sequential"])
        .time_scale(TIME_SCALE)
        .check();
    harness::assert_lesson_snapshot!(run);
    let children = check_children(&run);

    // One at a time: each child's five lines come together, in start order.
    let lines: Vec<&str> = run.stdout.lines().collect();
    for (n, child) in children.iter().enumerate() {
        let expected = [
            format!("A{}", n + 1),
            format!("Process-{}", n + 1),
            format!("father ppid {}", run.main_pid),
            format!("self pid {child}"),
            "-----------".to_string(),
        ];
        assert_eq!(lines[5 * n..5 * n + 5], expected, "{}", run.stdout);
    }

    // The sleeps do not overlap: three of them, at least.
    let (sleep, took) = timing(&run);
    assert!(
        took >= 2.95 * sleep && took < 6.0 * sleep,
        "one at a time, three sleeps of {sleep}s took {took}s: expected about three"
    );
}
