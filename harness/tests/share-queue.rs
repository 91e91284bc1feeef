//! Lesson `share-queue`: ten children each put their number into one queue; the
//! parent gets all ten.

use std::collections::BTreeSet;

#[test]
fn share_queue() {
    let run = harness::check_lesson("share-queue", &[]);
    harness::assert_lesson_snapshot!(run);
    assert_eq!(run.exit_code, Some(0), "stderr: {}", run.stderr);

    // Ten `put I PPID PID TIME` lines, one per number, each from its own child whose
    // parent is the main process.
    let mut numbers = BTreeSet::new();
    let mut pids = BTreeSet::new();
    for line in run.stdout.lines().filter(|line| line.starts_with("put ")) {
        let words: Vec<&str> = line.split(' ').collect();
        assert_eq!(words.len(), 5, "not `put I PPID PID TIME`: {line:?}");
        let i: u32 = words[1].parse().expect("a number");
        let (ppid, pid): (u32, u32) = (words[2].parse().unwrap(), words[3].parse().unwrap());
        assert!(numbers.insert(i), "{i} was put twice:\n{}", run.stdout);
        assert_eq!(ppid, run.main_pid, "{line:?}");
        assert_eq!(
            run.pid_of(&format!("Process-{}", i + 1)),
            Some(pid),
            "{i} was not put by the child started for it: {line:?}"
        );
        pids.insert(pid);
    }
    assert_eq!(numbers, (0..10).collect(), "{}", run.stdout);
    assert_eq!(pids.len(), 10, "children share pids:\n{}", run.stdout);
    assert!(!pids.contains(&run.main_pid), "{}", run.stdout);

    // The parent got ten items, 0 to 9, each once.
    assert_eq!(
        run.stdout.lines().last(),
        Some("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"),
        "{}",
        run.stdout
    );
}
