//! Lesson `daemon`: a daemon cannot start children, and the daemon egon is
//! terminated when the main process ends, before its last line.

use std::time::Duration;

/// egon sleeps two article seconds; at scale 1 that is two real seconds, far longer
/// than the rest of the lesson, so a main process that waited for it would show.
const TIME_SCALE: f64 = 1.0;

#[test]
fn daemon() {
    let run = harness::Lesson::new("daemon")
        .time_scale(TIME_SCALE)
        .check();
    harness::assert_lesson_snapshot!(run);
    assert_eq!(run.exit_code, Some(0), "stderr: {}", run.stderr);

    // Both daemons were real children; the first one's own child never started.
    let refuser = run.pid_of("Process-1").expect("Process-1 logged its pid");
    let egon = run.pid_of("egon").expect("egon logged its pid");
    assert!(refuser != run.main_pid && egon != run.main_pid && refuser != egon);
    assert_eq!(run.pids.len(), 2, "no grandchild may start: {:?}", run.pids);
    assert!(
        run.stdout.contains(
            "Process-1 cannot start a child: daemonic processes are not allowed to have children\n"
        ),
        "{}",
        run.stdout
    );

    // egon started, and was terminated when main ended: its last line never came,
    // and the program did not wait out egon's two seconds.
    assert!(run.stdout.contains("egon is piaoing\n"), "{}", run.stdout);
    assert!(!run.stdout.contains("piao end"), "{}", run.stdout);
    assert_eq!(run.stdout.lines().last(), Some("主"), "{}", run.stdout);
    assert!(
        run.elapsed < Duration::from_secs_f64(1.5 * TIME_SCALE),
        "main took {:?}: it waited for the daemon",
        run.elapsed
    );

    // Nothing is left. The harness already fails a run whose process group is not
    // empty once main has exited; check egon by name here too.
    let left = harness::process::group_members(run.main_pid);
    assert!(
        left.iter().all(|p| p.pid != egon && p.pid != refuser),
        "a daemon outlived the lesson: {left:?}"
    );
}
