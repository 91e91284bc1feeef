//! Lesson `queue`: items put by children come out of the parent's `get`; parent and
//! child can both put into one queue; three children's items all reach the parent.

use std::collections::BTreeSet;

/// The lines of the any-order block that starts after line `after` (its index).
fn block_after<'a>(lines: &[&'a str], after: usize) -> Vec<&'a str> {
    let begin = after + 1;
    assert_eq!(
        lines.get(begin).copied(),
        Some(harness::normalize::ANY_ORDER_BEGIN),
        "no any-order block after line {after}: {lines:#?}"
    );
    lines[begin + 1..]
        .iter()
        .take_while(|line| **line != harness::normalize::ANY_ORDER_END)
        .copied()
        .collect()
}

#[test]
fn queue() {
    let run = harness::check_lesson("queue", &[]);
    harness::assert_lesson_snapshot!(run);
    assert_eq!(run.exit_code, Some(0), "stderr: {}", run.stderr);

    // Five children, each a process of its own: 000 §(5)'s two, 001's three.
    let children: BTreeSet<u32> = (1..=5)
        .map(|n| {
            run.pid_of(&format!("Process-{n}"))
                .unwrap_or_else(|| panic!("Process-{n} logged no pid: {:?}", run.pids))
        })
        .collect();
    assert_eq!(children.len(), 5, "children share pids: {:?}", run.pids);
    assert!(!children.contains(&run.main_pid), "{:?}", run.pids);

    let lines: Vec<&str> = run.stdout.lines().collect();
    // 000 §(5): the parent's get returned what the child put.
    assert_eq!(lines[0], "子进程加入数据", "{}", run.stdout);

    // Both sides put, and both items came out, one for each get.
    let mut both = block_after(&lines, 0);
    both.sort();
    assert_eq!(both, ["主进程加入数据", "子进程加入数据"], "{}", run.stdout);

    // 001: every child said it started before the parent got anything (they were
    // joined), and the parent got exactly the three messages, each once.
    let obtains = lines
        .iter()
        .position(|line| *line == "the main process obtains Queue data")
        .unwrap_or_else(|| panic!("no 'obtains' line in:\n{}", run.stdout));
    let rule = lines
        .iter()
        .position(|line| *line == "-----------")
        .unwrap();
    let mut started = block_after(&lines, rule);
    started.sort();
    assert_eq!(
        started,
        (0..3)
            .map(|i| format!("child process {i} starts put data"))
            .collect::<Vec<_>>(),
        "{}",
        run.stdout
    );
    let mut got = block_after(&lines, obtains);
    got.sort();
    assert_eq!(
        got,
        (0..3)
            .map(|i| format!("I am {i} communicating through Queue"))
            .collect::<Vec<_>>(),
        "{}",
        run.stdout
    );
    assert_eq!(lines.last(), Some(&"end test"), "{}", run.stdout);
}
