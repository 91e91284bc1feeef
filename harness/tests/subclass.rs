//! Lesson `subclass`: five `Run` processes named `Python`, all joined before the
//! parent's last line.

#[test]
fn subclass() {
    let run = harness::check_lesson("subclass", &[]);
    harness::assert_lesson_snapshot!(run);
    assert_eq!(run.exit_code, Some(0), "stderr: {}", run.stderr);

    // Five different processes did the work, none of them the parent, each under
    // the name `MyProcess::process` gave it. (The pid log is keyed by pid, so a pid
    // that logged twice would count once.)
    let children: Vec<u32> = run
        .pids
        .iter()
        .filter(|(_, name)| *name == "Python")
        .map(|(pid, _)| *pid)
        .collect();
    assert_eq!(
        children.len(),
        5,
        "five distinct child pids: {:?}",
        run.pids
    );
    assert!(!children.contains(&run.main_pid));

    // Each printed its line, and the parent spoke last, after joining all five.
    let lines: Vec<&str> = run.stdout.lines().collect();
    let greetings = lines
        .iter()
        .filter(|line| **line == "test Python multiprocess")
        .count();
    assert_eq!(greetings, 5, "{}", run.stdout);
    assert_eq!(lines.last(), Some(&"end the test"), "{}", run.stdout);
}
