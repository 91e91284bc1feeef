//! Lesson `create`: the same function runs in the parent, then in a child started
//! with `Process::new`; the parent waits for the child, then goes on.
//!
//! This file is the model for every lesson test: one `check_lesson` (every start
//! method, plus the Python reference), one snapshot, then assertions on real pids
//! about what the lesson teaches, so that the test fails if the work were done in one
//! process.

#[test]
fn create() {
    let run = harness::check_lesson("create", &[]);
    harness::assert_lesson_snapshot!(run);
    assert_eq!(run.exit_code, Some(0), "stderr: {}", run.stderr);

    // The child is a process of its own: it logged a pid, not the parent's.
    let child = run
        .pid_of("Process-1")
        .unwrap_or_else(|| panic!("the child logged no pid: {:?}", run.pids));
    assert_ne!(child, run.main_pid, "the child ran in the parent's process");

    // Each call printed its own pid, and the child's parent is the main process.
    let lines: Vec<&str> = run.stdout.lines().collect();
    let line_of = |wanted: &str| {
        lines
            .iter()
            .position(|line| *line == wanted)
            .unwrap_or_else(|| panic!("no line {wanted:?} in:\n{}", run.stdout))
    };
    let parent_pid_line = line_of(&format!("self pid {}", run.main_pid));
    let child_pid_line = line_of(&format!("self pid {child}"));
    assert_eq!(
        lines[child_pid_line - 1],
        format!("father ppid {}", run.main_pid),
        "the child's ppid is not the parent's pid:\n{}",
        run.stdout
    );
    assert!(parent_pid_line < child_pid_line, "{}", run.stdout);

    // The parent's last line comes after everything the child printed: join waited.
    let after_join = line_of("继续执行父进程");
    let child_last = line_of("apple") + 5; // title, name, ppid, pid, rule, working
    assert_eq!(
        lines[child_last], "执行被调用函数中.......",
        "{}",
        run.stdout
    );
    assert!(child_last < after_join, "{}", run.stdout);
    assert_eq!(after_join, lines.len() - 1, "{}", run.stdout);
}
