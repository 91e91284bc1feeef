//! Lesson `pipe`: both ends of a duplex pipe send and receive, each in its own
//! process; then the Connection API, where every message crosses between the parent
//! and a child.

/// The raw line starting with `prefix`, or a failure that shows the output.
fn line_starting<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{stdout}"))
}

#[test]
fn pipe() {
    let run = harness::check_lesson("pipe", &[]);
    harness::assert_lesson_snapshot!(run);
    assert_eq!(run.exit_code, Some(0), "stderr: {}", run.stderr);
    let showdata = run
        .pid_of("Process-1")
        .unwrap_or_else(|| panic!("the first child logged no pid: {:?}", run.pids));
    let tour = run
        .pid_of("Process-2")
        .unwrap_or_else(|| panic!("the second child logged no pid: {:?}", run.pids));
    assert!(
        showdata != run.main_pid && tour != run.main_pid && showdata != tour,
        "pids: main {}, children {showdata} and {tour}",
        run.main_pid
    );

    // 000 §(4): each side printed its own pid and the message the *other* side sent.
    // Split as `PID MESSAGE TIME`.
    let exchange: Vec<(u32, &str)> = run
        .stdout
        .lines()
        .filter(|line| line.contains("发送的数据"))
        .map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            assert_eq!(words.len(), 3, "not `PID MESSAGE TIME`: {line:?}");
            let time: f64 = words[2].parse().expect("a timestamp");
            assert!(time > 1e9, "not a Unix timestamp: {line:?}");
            (words[0].parse().expect("a pid"), words[1])
        })
        .collect();
    let mut expected = vec![(showdata, "要发送的数据b"), (run.main_pid, "发送的数据a")];
    let mut got = exchange.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "{}", run.stdout);

    // 002: the child received the parent's slice of bytes, and announced itself by
    // its own pid; the parent by its own.
    assert_eq!(
        line_starting(&run.stdout, "child: recv_bytes()"),
        "child: recv_bytes() -> b'cdefg'"
    );
    assert_eq!(
        line_starting(&run.stdout, &format!("({tour}) ")),
        format!("({tour}) 进程开始发送数据...")
    );
    assert_eq!(
        line_starting(&run.stdout, &format!("({}) ", run.main_pid)),
        format!("({}) 进程开始接收数据...", run.main_pid)
    );

    // The parent's receives got what the child sent, then end of file.
    for line in [
        "poll(0.5) before anything is sent: False",
        "poll(60) once the child has sent: True",
        "recv() -> Python",
        r"recv_bytes_into(buf, 3) -> 5 b'\x00\x00\x00hello\x00\x00'",
        "recv_bytes_into(buf): BufferTooShort, the whole message: b'too long for the buffer'",
        "recv() once the child has closed its end: EOFError",
    ] {
        assert!(
            run.stdout.lines().any(|l| l == line),
            "no line {line:?} in:\n{}",
            run.stdout
        );
    }
    // The child printed what it received before the parent's poll saw its answer.
    let child_got = run.line_index("child: recv_bytes()").unwrap();
    let parent_polled = run.line_index("poll(60)").unwrap();
    assert!(child_got < parent_polled, "{}", run.stdout);
}
