//! Lesson `value`: a child sets a shared `Value` of 10.0 to 10.78, and the parent
//! reads 10.78 after `join`; then the typecodes 'i', 'b' and 'd', and a bool.

#[test]
fn value() {
    let run = harness::check_lesson("value", &[]);
    harness::assert_lesson_snapshot!(run);
    assert_eq!(run.exit_code, Some(0), "stderr: {}", run.stderr);

    // The writer was another process...
    let child = run.pid_of("Process-1").expect("the child logged its pid");
    assert_ne!(child, run.main_pid, "the child ran in the parent's process");
    assert_eq!(run.pids.len(), 1, "{:?}", run.pids);

    // ...and the parent read what it wrote, printed as Python prints floats.
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[..2], ["10.0", "10.78"], "{}", run.stdout);
    assert_eq!(
        lines[2..],
        [
            "Value('i', 0).value = 0",
            "Value('b', True).value = 1",
            "Value('d', 0.0).value = 0.0",
            "Value(c_bool, True).value = True",
        ],
        "{}",
        run.stdout
    );
}
