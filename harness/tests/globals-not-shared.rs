//! Lesson `globals-not-shared`: the child and the parent each append to their own
//! copy of a global list; neither sees the other's items.

/// One printed line, `PID PPID LIST TIME`, taken apart.
struct Line<'a> {
    pid: u32,
    ppid: u32,
    list: &'a str,
    time: f64,
}

fn parse(line: &str) -> Line<'_> {
    let (pid, rest) = line.split_once(' ').expect("pid");
    let (ppid, rest) = rest.split_once(' ').expect("ppid");
    let (list, time) = rest.rsplit_once(' ').expect("time");
    Line {
        pid: pid.parse().expect("pid"),
        ppid: ppid.parse().expect("ppid"),
        list,
        time: time.parse().expect("time"),
    }
}

#[test]
fn globals_not_shared() {
    let run = harness::check_lesson("globals-not-shared", &[]);
    harness::assert_lesson_snapshot!(run);
    assert_eq!(run.exit_code, Some(0), "stderr: {}", run.stderr);

    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    let (child, parent) = (parse(lines[0]), parse(lines[1]));
    let child_pid = run.pid_of("Process-1").expect("the child logged its pid");

    // The child's line: another process, started by the main one, sees only its own
    // items.
    assert_eq!(child.pid, child_pid);
    assert_ne!(child.pid, run.main_pid);
    assert_eq!(child.ppid, run.main_pid);
    assert_eq!(child.list, "[1, 2, 3]");

    // The parent's line, printed after the child's: no 1, 2, 3 in its list.
    assert_eq!(parent.pid, run.main_pid);
    assert_eq!(parent.list, "['a', 'b', 'c']");
    assert!(child.time <= parent.time, "{}", run.stdout);
}
