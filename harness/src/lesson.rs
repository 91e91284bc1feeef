//! Building the lesson binaries, running a lesson (and its Python reference), and
//! comparing runs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::normalize::{PidNames, normalize};
use crate::process::{self, Outcome};
use crate::workspace_root;

/// The start methods every lesson runs under; `check` asserts they all print the
/// same.
pub const START_METHODS: &[&str] = &["fork", "spawn", "forkserver"];

/// `LESSON_TIME_SCALE` for test runs unless a test sets another: sleeps last a tenth
/// of the article's durations.
pub const DEFAULT_TIME_SCALE: f64 = 0.1;

/// The wall-clock limit of one run unless a test sets another. Generous: the machine
/// may be loaded, and the limit only exists to stop a hung lesson.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// One run of a lesson (or of its Python reference), normalised.
#[derive(Debug, Clone)]
pub struct LessonRun {
    /// The lesson (binary) name, e.g. `join`.
    pub lesson: String,
    /// The snapshot's name: the lesson name, plus its arguments for variants
    /// (`join-sequential`). The docs' region of this run carries the same name.
    pub snapshot_name: String,
    /// The command line a learner types, e.g. `$ just lesson join --sequential`.
    pub command: String,
    /// The start method (`MPCORE_START_METHOD`) of this run.
    pub method: String,
    /// Raw stdout.
    pub stdout: String,
    /// Raw stderr.
    pub stderr: String,
    /// The exit code; `None` when a signal ended the process.
    pub exit_code: Option<i32>,
    /// From start to the main process's exit.
    pub elapsed: Duration,
    /// The pid of the lesson's main process.
    pub main_pid: u32,
    /// Children's pids and names, from the pid log (`4301 → "Process-1"`).
    pub pids: BTreeMap<u32, String>,
    /// Normalised stdout (what the docs show).
    pub normalized_stdout: String,
    /// The snapshot body: `success`, `exit_code`, `----- stdout -----`, normalised
    /// stdout, `----- stderr -----`, normalised stderr.
    pub normalized: String,
}

impl LessonRun {
    /// The pid of the child named `name` in the pid log (`"Process-1"`).
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        self.pids
            .iter()
            .find_map(|(pid, n)| (n == name).then_some(*pid))
    }

    /// The index of the first raw stdout line containing `needle`.
    pub fn line_index(&self, needle: &str) -> Option<usize> {
        self.stdout.lines().position(|line| line.contains(needle))
    }

    fn from_outcome(lesson: &Lesson, method: &str, outcome: &Outcome) -> LessonRun {
        let mut table = PidNames::new(outcome.main_pid);
        // The main process's own parent (what `os.getppid()` prints there) is the test
        // process here, a shell or `just` for a learner: it normalises to `<pid shell>`.
        table.name(std::process::id(), "shell");
        for (pid, name) in &outcome.pid_log {
            table.name(*pid, name);
        }
        for pid in &outcome.seen {
            table.saw(*pid);
        }
        let stdout = normalize(&outcome.stdout, &mut table);
        let stderr = normalize(&outcome.stderr, &mut table);
        let success = outcome.status.is_some_and(|s| s.success());
        let normalized = format!(
            "success: {success}\nexit_code: {}\n----- stdout -----\n{stdout}\n----- stderr -----\n{stderr}",
            outcome.exit_description()
        );
        LessonRun {
            lesson: lesson.name.clone(),
            snapshot_name: lesson.snapshot_name(),
            command: lesson.command_line(),
            method: method.to_string(),
            stdout: outcome.stdout.clone(),
            stderr: outcome.stderr.clone(),
            exit_code: outcome.exit_code(),
            elapsed: outcome.elapsed,
            main_pid: outcome.main_pid,
            pids: outcome.pid_log.iter().cloned().collect(),
            normalized_stdout: stdout,
            normalized,
        }
    }
}

/// A lesson to run: its name, arguments and settings. Build it, then call
/// [`run`](Lesson::run) or [`check`](Lesson::check).
#[derive(Debug, Clone)]
pub struct Lesson {
    name: String,
    args: Vec<String>,
    time_scale: f64,
    timeout: Duration,
    env: Vec<(String, String)>,
    snapshot_name: Option<String>,
    skip_python: Option<String>,
}

impl Lesson {
    /// The lesson (binary) `name`, no arguments, default time scale and limit.
    pub fn new(name: &str) -> Lesson {
        Lesson {
            name: name.to_string(),
            args: Vec::new(),
            time_scale: DEFAULT_TIME_SCALE,
            timeout: DEFAULT_TIMEOUT,
            env: Vec::new(),
            snapshot_name: None,
            skip_python: None,
        }
    }

    /// The arguments passed to the lesson (and to its Python reference).
    pub fn args(mut self, args: &[&str]) -> Lesson {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Sets `LESSON_TIME_SCALE` (default [`DEFAULT_TIME_SCALE`]).
    pub fn time_scale(mut self, scale: f64) -> Lesson {
        self.time_scale = scale;
        self
    }

    /// Sets the wall-clock limit of each run (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Lesson {
        self.timeout = timeout;
        self
    }

    /// Sets one more environment variable for the lesson and its reference.
    pub fn env(mut self, key: &str, value: &str) -> Lesson {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Names the snapshot (and docs region) `name` instead of the name derived from
    /// the lesson and its arguments.
    pub fn snapshot_as(mut self, name: &str) -> Lesson {
        self.snapshot_name = Some(name.to_string());
        self
    }

    /// Skips the comparison with the Python reference, for the stated `reason`
    /// (printed with the test's output), e.g. "python3 before 3.12 lacks ...".
    pub fn skip_python(mut self, reason: &str) -> Lesson {
        assert!(!reason.trim().is_empty(), "skip_python needs a reason");
        self.skip_python = Some(reason.to_string());
        self
    }

    /// The snapshot's name: the one given to [`snapshot_as`](Lesson::snapshot_as), else
    /// `join` for no arguments and `join-sequential` for `--sequential` (the lesson
    /// name and each argument without leading dashes, joined by `-`).
    pub fn snapshot_name(&self) -> String {
        if let Some(name) = &self.snapshot_name {
            return name.clone();
        }
        let mut name = self.name.clone();
        for arg in &self.args {
            let arg: String = arg
                .trim_start_matches('-')
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            name.push('-');
            name.push_str(&arg);
        }
        name
    }

    /// `$ just lesson NAME ARGS`, arguments quoted for a shell where needed.
    pub fn command_line(&self) -> String {
        let mut line = format!("$ just lesson {}", self.name);
        for arg in &self.args {
            line.push(' ');
            if !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=.,/:".contains(c))
            {
                line.push_str(arg);
            } else {
                line.push_str(&format!("'{}'", arg.replace('\'', r"'\''")));
            }
        }
        line
    }

    fn common_env(&self, cmd: &mut Command, method: &str) {
        cmd.current_dir(workspace_root())
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "0")
            .env("LESSON_TIME_SCALE", self.time_scale.to_string())
            .env("MPCORE_START_METHOD", method);
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
    }

    /// Runs the lesson once under `method` and checks that it left no process and no
    /// `/dev/shm` entry behind; panics (killing what is left) when it did, or when it
    /// outran its time limit. A non-zero exit is not a failure here: the snapshot
    /// records it.
    pub fn run(&self, method: &str) -> LessonRun {
        let mut cmd = Command::new(lesson_binary(&self.name));
        cmd.args(&self.args);
        self.common_env(&mut cmd, method);
        let label = format!("lesson {} ({method})", self.snapshot_name());
        let outcome = process::run(cmd, &label, self.timeout);
        if outcome.status.is_none() {
            panic!(
                "{label} did not finish within {:?}; the harness killed its process group.\n{}",
                self.timeout,
                process::describe(&outcome)
            );
        }
        if !outcome.leftovers.is_empty() || !outcome.shm_leftovers.is_empty() {
            let mut what = outcome.leftovers.clone();
            what.extend(
                outcome
                    .shm_leftovers
                    .iter()
                    .map(|name| format!("shared memory {name} (removed by the harness)")),
            );
            panic!(
                "{label} left things behind after its main process exited:\n  - {}\n{}",
                what.join("\n  - "),
                process::describe(&outcome)
            );
        }
        LessonRun::from_outcome(self, method, &outcome)
    }

    /// Runs `lessons/reference/NAME.py` under `method` with the same arguments and
    /// environment. `Err` says why it could not run (no python3, or the script is
    /// missing). Leftovers are cleaned up but not asserted: the reference is
    /// CPython's behaviour, not ours to fix.
    pub fn run_python(&self, method: &str) -> Result<LessonRun, String> {
        let python = python()?;
        let script = workspace_root()
            .join("lessons/reference")
            .join(format!("{}.py", self.name));
        if !script.is_file() {
            return Err(format!(
                "{} is missing: write it, or call .skip_python(reason) in the lesson's test",
                script.display()
            ));
        }
        let mut cmd = Command::new(python);
        cmd.arg("-P").arg(&script).args(&self.args);
        self.common_env(&mut cmd, method);
        cmd.env("PYTHONPATH", python_dir())
            .env("PYTHONIOENCODING", "utf-8")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("PYTHONUNBUFFERED")
            .env_remove("PYTHONSTARTUP");
        let label = format!("python reference {} ({method})", self.snapshot_name());
        let outcome = process::run(cmd, &label, self.timeout);
        if outcome.status.is_none() {
            panic!(
                "{label} did not finish within {:?}; the harness killed its process group.\n{}",
                self.timeout,
                process::describe(&outcome)
            );
        }
        if !outcome.leftovers.is_empty() {
            eprintln!(
                "note: {label} left processes behind (killed): {}",
                outcome.leftovers.join("; ")
            );
        }
        Ok(LessonRun::from_outcome(self, method, &outcome))
    }

    /// Runs the lesson under every method in [`START_METHODS`], asserts that the
    /// normalised outputs (stdout, stderr, exit code) are equal, then runs the Python
    /// reference under every method too and asserts that its normalised stdout and
    /// exit code equal the lesson's. Returns the first run.
    pub fn check(&self) -> LessonRun {
        let mut runs = START_METHODS.iter().map(|method| self.run(method));
        let first = runs.next().expect("START_METHODS is not empty");
        for other in runs {
            if other.normalized != first.normalized {
                panic!(
                    "lesson {} prints differently under {} and {}:\n{}",
                    first.snapshot_name,
                    first.method,
                    other.method,
                    diff(
                        &first.normalized,
                        &other.normalized,
                        &first.method,
                        &other.method
                    )
                );
            }
        }
        if let Some(reason) = &self.skip_python {
            eprintln!(
                "note: {} is not compared with its Python reference: {reason}",
                first.snapshot_name
            );
            return first;
        }
        for method in START_METHODS {
            match self.run_python(method) {
                Ok(py) => assert_same_as_python(&first, &py),
                Err(why) if python().is_err() => {
                    eprintln!(
                        "note: {} is not compared with its Python reference: {why}",
                        first.snapshot_name
                    );
                    break;
                }
                Err(why) => panic!("{why}"),
            }
        }
        first
    }
}

/// Panics with a readable diff unless `python`'s normalised stdout and exit code equal
/// `rust`'s.
pub fn assert_same_as_python(rust: &LessonRun, python: &LessonRun) {
    let py_label = format!("python3 -P lessons/reference/{}.py", rust.lesson);
    let rs_label = rust.command.trim_start_matches("$ ").to_string();
    if rust.normalized_stdout != python.normalized_stdout {
        panic!(
            "{} and its Python reference print different things ({}):\n{}\n\
             ----- python stderr -----\n{}",
            rust.snapshot_name,
            rust.method,
            diff(
                &python.normalized_stdout,
                &rust.normalized_stdout,
                &py_label,
                &rs_label
            ),
            python.stderr
        );
    }
    if rust.exit_code != python.exit_code {
        panic!(
            "{} exits with {:?}, its Python reference with {:?}\n----- python stderr -----\n{}",
            rust.snapshot_name, rust.exit_code, python.exit_code, python.stderr
        );
    }
}

/// A unified diff of `old` and `new`, lines marked `-` (old) and `+` (new).
pub fn diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(5)
        .header(old_label, new_label)
        .to_string()
}

/// Runs lesson `name` with `args` once under `method`; see [`Lesson::run`].
pub fn run_lesson(name: &str, args: &[&str], method: &str) -> LessonRun {
    Lesson::new(name).args(args).run(method)
}

/// Runs lesson `name` with `args` under every start method and against its Python
/// reference; see [`Lesson::check`].
pub fn check_lesson(name: &str, args: &[&str]) -> LessonRun {
    Lesson::new(name).args(args).check()
}

/// The directory holding the harness's `sitecustomize.py`.
pub fn python_dir() -> PathBuf {
    workspace_root().join("harness/python")
}

/// The Python interpreter for references: `$HARNESS_PYTHON`, else `python3`; `Err`
/// says why there is none (not on PATH, or older than 3.11, which lacks `-P`).
pub fn python() -> Result<&'static str, String> {
    static PYTHON: OnceLock<Result<String, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let python = std::env::var("HARNESS_PYTHON").unwrap_or_else(|_| "python3".into());
            let check = "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 3)";
            match Command::new(&python).args(["-c", check]).status() {
                Ok(s) if s.success() => Ok(python),
                Ok(_) => Err(format!("{python} is older than 3.11 (no -P)")),
                Err(e) => Err(format!("{python} cannot run: {e}")),
            }
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// The path of lesson binary `name`, built (once per test process) by
/// `cargo build -p lessons --bins` in the profile the tests were built in.
pub fn lesson_binary(name: &str) -> PathBuf {
    static BINARIES: OnceLock<Result<BTreeMap<String, PathBuf>, String>> = OnceLock::new();
    match BINARIES.get_or_init(build_lessons) {
        Ok(bins) => bins.get(name).cloned().unwrap_or_else(|| {
            panic!(
                "no lesson binary {name:?}; lessons/src/bin has: {}",
                bins.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        }),
        Err(e) => panic!("{e}"),
    }
}

/// The cargo profile the running test binary was built in, from its path
/// (`target/<profile dir>/deps/<test>`): `debug` is `dev`, other names are themselves.
fn profile() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    match dir {
        "debug" => "dev".to_string(),
        other => other.to_string(),
    }
}

fn build_lessons() -> Result<BTreeMap<String, PathBuf>, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace_root()).args([
        "build",
        "-p",
        "lessons",
        "--bins",
        "--message-format=json-render-diagnostics",
        "--profile",
        &profile(),
    ]);
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{cmd:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut bins = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if !line.contains(r#""reason":"compiler-artifact""#) {
            continue;
        }
        if let Some(exe) = json_string_field(line, "executable") {
            let path = PathBuf::from(exe);
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                bins.insert(name.to_string(), path.clone());
            }
        }
    }
    Ok(bins)
}

/// The string value of `"key":"..."` in one line of cargo's JSON messages.
fn json_string_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(r#""{key}":""#))? + key.len() + 4;
    let mut out = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_and_command_lines_follow_the_arguments() {
        let plain = Lesson::new("create");
        assert_eq!(plain.snapshot_name(), "create");
        assert_eq!(plain.command_line(), "$ just lesson create");
        let variant = Lesson::new("join").args(&["--sequential"]);
        assert_eq!(variant.snapshot_name(), "join-sequential");
        assert_eq!(variant.command_line(), "$ just lesson join --sequential");
        let quoted = Lesson::new("pipe").args(&["a b", "it's"]);
        assert_eq!(quoted.command_line(), r"$ just lesson pipe 'a b' 'it'\''s'");
        assert_eq!(
            Lesson::new("join")
                .snapshot_as("join-custom")
                .snapshot_name(),
            "join-custom"
        );
    }

    fn fake_run(stdout: &str, exit_code: Option<i32>) -> LessonRun {
        LessonRun {
            lesson: "create".into(),
            snapshot_name: "create".into(),
            command: "$ just lesson create".into(),
            method: "fork".into(),
            stdout: stdout.into(),
            stderr: String::new(),
            exit_code,
            elapsed: Duration::ZERO,
            main_pid: 1,
            pids: BTreeMap::new(),
            normalized_stdout: stdout.into(),
            normalized: stdout.into(),
        }
    }

    fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let payload = std::panic::catch_unwind(f).expect_err("it should have panicked");
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    }

    #[test]
    fn equal_python_output_passes() {
        assert_same_as_python(&fake_run("a\nb\n", Some(0)), &fake_run("a\nb\n", Some(0)));
    }

    #[test]
    fn a_python_difference_fails_with_a_readable_diff() {
        let message = panic_message(|| {
            assert_same_as_python(
                &fake_run("same\nrust says this\n", Some(0)),
                &fake_run("same\npython says that\n", Some(0)),
            )
        });
        assert!(message.contains("create and its Python reference print different things"));
        assert!(
            message.contains("--- python3 -P lessons/reference/create.py"),
            "{message}"
        );
        assert!(message.contains("+++ just lesson create"), "{message}");
        assert!(
            message.contains("-python says that\n+rust says this"),
            "{message}"
        );
    }

    #[test]
    fn a_different_exit_code_fails() {
        let message = panic_message(|| {
            assert_same_as_python(&fake_run("x\n", Some(0)), &fake_run("x\n", Some(1)))
        });
        assert!(message.contains("exits with Some(0), its Python reference with Some(1)"));
    }

    #[test]
    fn json_string_fields_are_unescaped() {
        let line =
            r#"{"reason":"compiler-artifact","executable":"/t/a \"b\"\\c\u00e9","fresh":true}"#;
        assert_eq!(
            json_string_field(line, "executable").as_deref(),
            Some(r#"/t/a "b"\cé"#)
        );
        assert_eq!(
            json_string_field(r#"{"executable":null}"#, "executable"),
            None
        );
    }
}
