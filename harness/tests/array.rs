//! Lesson `array`: a child sets element 2 of a shared `Array` to 9999 and fails to
//! write past its end; the parent sees the change after `join`. Then `003`'s array
//! of ten, filled by the parent, read and changed by a child.

#[test]
fn array() {
    let run = harness::check_lesson("array", &[]);
    harness::assert_lesson_snapshot!(run);
    assert_eq!(run.exit_code, Some(0), "stderr: {}", run.stderr);

    // Both writers were processes of their own.
    let first = run
        .pid_of("Process-1")
        .expect("the first child logged its pid");
    let second = run
        .pid_of("Process-2")
        .expect("the second child logged its pid");
    assert!(first != run.main_pid && second != run.main_pid && first != second);
    assert_eq!(run.pids.len(), 2, "{:?}", run.pids);

    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "[1, 2, 3, 4, 5]",
            "array[5] = 888: invalid index",
            "[1, 2, 9999, 4, 5]",
            "0",
            "[10, 1, 2, 3, 4, 5, 6, 7, 8, 9]",
        ],
        "{}",
        run.stdout
    );
}
