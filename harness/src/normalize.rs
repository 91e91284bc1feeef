//! The normaliser: turns what a lesson printed into text that is the same on every
//! run, every machine and every start method, without hiding what the lesson teaches.
//!
//! [`normalize`] applies the steps of [`RULES`] in their fixed order:
//!
//! 1. line endings (`\r\n`, `\r` become `\n`) and ANSI escape sequences (removed);
//! 2. temp paths (`/tmp/...`) become `<tmp>`, shared-memory names (`mpcore-...`,
//!    Python's `psm_...`, with or without `/dev/shm/`) `<shm>`, and addresses
//!    (`0x7f3a...`) `<addr>`; before pids, because such names often embed a pid;
//! 3. pids: whole-word integers that are pids of the run become `<pid NAME>`: the
//!    lesson's own pid is `<pid MainProcess>`, its parent's (the harness here, a
//!    shell for a learner) `<pid shell>`, a pid from the pid log is named after
//!    the process that wrote it (`<pid Process-1>`), and a pid the harness saw in the
//!    run's process group without a log entry (a fork server, say) is numbered by
//!    first appearance (`<pid ?1>`). Equal pids stay equal, so `ppid == parent's pid`
//!    stays visible; any other number is left alone;
//! 4. Unix timestamps as `time.time()` prints them (`1763783912.3457205`) become `<time>`;
//! 5. durations (`1.02s`, `0.35 s`, `120ms`, `15.3µs`) become `<dur>`;
//! 6. lines between [`ANY_ORDER_BEGIN`] and [`ANY_ORDER_END`] (or the end of the
//!    text) are sorted; the marker lines stay where they are;
//! 7. trailing whitespace is removed from every line.
//!
//! Blocks are sorted after every replacement, so their order does not depend on which
//! pid a process happened to get.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;

/// The line a lesson prints before lines whose order is free.
pub const ANY_ORDER_BEGIN: &str = "--- the next lines may come in any order ---";

/// The line a lesson prints after an any-order block, when more ordered lines follow.
pub const ANY_ORDER_END: &str = "--- back in order ---";

/// One step of the normaliser.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Replace every match of the regex `pattern` with `replacement` (`$1` refers to
    /// a capture group, as in [`Regex::replace_all`]).
    Replace {
        /// The regex.
        pattern: &'static str,
        /// What each match becomes.
        replacement: &'static str,
    },
    /// Replace the pids of the run with `<pid NAME>` (see [`PidNames`]).
    Pids,
    /// Sort the lines inside any-order blocks.
    SortAnyOrderBlocks,
}

/// The normaliser's steps, in the order [`normalize`] applies them, each with what it
/// is for. Keep every rule here, so the whole normalisation reads in one place.
pub const RULES: &[(&str, Step)] = &[
    (
        "line endings",
        Step::Replace {
            pattern: r"\r\n?",
            replacement: "\n",
        },
    ),
    (
        "ANSI escape sequences (colours, cursor moves, titles)",
        Step::Replace {
            pattern: r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)",
            replacement: "",
        },
    ),
    (
        "temp paths",
        Step::Replace {
            pattern: r#"(?:/var)?/tmp/[^\s'"`,;)\]}>]+"#,
            replacement: "<tmp>",
        },
    ),
    (
        "shared-memory names: mpcore-..., Python's psm_...",
        Step::Replace {
            pattern: r"(?:/dev/shm)?/?\b(?:mpcore-[\w.-]+|psm_[0-9a-f]+)\b",
            replacement: "<shm>",
        },
    ),
    (
        "memory addresses",
        Step::Replace {
            pattern: r"\b0x[0-9a-fA-F]{6,}\b",
            replacement: "<addr>",
        },
    ),
    ("pids of the run", Step::Pids),
    (
        "Unix timestamps, as time.time() prints them",
        Step::Replace {
            pattern: r"\b1\d{9}(?:\.\d+)?\b",
            replacement: "<time>",
        },
    ),
    (
        "durations: 1.02s, 0.35 s, 120ms, 15.3µs",
        Step::Replace {
            pattern: r"\b\d+(?:\.\d+)?(?:[eE]-?\d+)? ?(?:ns|µs|μs|us|ms|s)\b",
            replacement: "<dur>",
        },
    ),
    ("any-order blocks", Step::SortAnyOrderBlocks),
    (
        "trailing whitespace",
        Step::Replace {
            pattern: r"(?m)[ \t]+$",
            replacement: "",
        },
    ),
];

/// The pids of one run and the names they normalise to.
///
/// Unknown pids (seen in the run's process group, absent from the pid log) are
/// numbered `?1`, `?2`, ... in the order normalisation first meets them, across
/// every text normalised with the same `PidNames`: normalise stdout, then stderr,
/// with one table and a number means the same process in both.
#[derive(Debug, Clone, Default)]
pub struct PidNames {
    main: u32,
    named: BTreeMap<u32, String>,
    unnamed: BTreeMap<u32, Option<usize>>,
    next_unnamed: usize,
}

impl PidNames {
    /// A table for a run whose own (main) pid is `main`.
    pub fn new(main: u32) -> PidNames {
        PidNames {
            main,
            ..PidNames::default()
        }
    }

    /// Names `pid` (from a pid log line `PID NAME`). The first name given to a pid
    /// wins; the main pid keeps the name `MainProcess`.
    pub fn name(&mut self, pid: u32, name: &str) -> &mut PidNames {
        if pid != self.main {
            self.named.entry(pid).or_insert_with(|| name.to_string());
            self.unnamed.remove(&pid);
        }
        self
    }

    /// Records a pid that belonged to the run but has no name.
    pub fn saw(&mut self, pid: u32) -> &mut PidNames {
        if pid != self.main && !self.named.contains_key(&pid) {
            self.unnamed.entry(pid).or_insert(None);
        }
        self
    }

    /// The placeholder for `pid`, or `None` when `pid` is not a pid of the run.
    fn placeholder(&mut self, pid: u32) -> Option<String> {
        if pid == self.main {
            return Some("<pid MainProcess>".to_string());
        }
        if let Some(name) = self.named.get(&pid) {
            return Some(format!("<pid {name}>"));
        }
        let number = self.unnamed.get_mut(&pid)?;
        let n = *number.get_or_insert_with(|| {
            self.next_unnamed += 1;
            self.next_unnamed
        });
        Some(format!("<pid ?{n}>"))
    }
}

fn compiled() -> &'static [Option<Regex>] {
    static COMPILED: OnceLock<Vec<Option<Regex>>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        RULES
            .iter()
            .map(|(what, step)| match step {
                Step::Replace { pattern, .. } => Some(
                    Regex::new(pattern).unwrap_or_else(|e| panic!("normaliser rule {what:?}: {e}")),
                ),
                Step::Pids | Step::SortAnyOrderBlocks => None,
            })
            .collect()
    })
}

/// Normalises `text` (one stream of a run) with the steps of [`RULES`], in order.
pub fn normalize(text: &str, pids: &mut PidNames) -> String {
    let mut out = text.to_string();
    for ((_, step), regex) in RULES.iter().zip(compiled()) {
        out = match (step, regex) {
            (Step::Replace { replacement, .. }, Some(regex)) => {
                regex.replace_all(&out, *replacement).into_owned()
            }
            (Step::Pids, _) => replace_pids(&out, pids),
            (Step::SortAnyOrderBlocks, _) => sort_any_order_blocks(&out),
            (Step::Replace { .. }, None) => unreachable!("every Replace rule is compiled"),
        };
    }
    out
}

/// Characters that glue a digit run into a bigger word (`v4433`, `4433_x`).
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Replaces whole-word integers that are pids of the run. A digit run counts as a
/// whole word when no ASCII letter, digit or `_` touches it and it is not part of a
/// decimal number (`1763783912.3457205` holds no pid, even if 3457205 is one).
fn replace_pids(text: &str, pids: &mut PidNames) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut prev: Option<char> = None; // last char before `rest`
    let mut prev2: Option<char> = None; // the char before that
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let (before, tail) = rest.split_at(start);
        let len = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (digits, after) = tail.split_at(len);
        let mut before_chars = before.chars().rev();
        let (b1, b2) = match (before_chars.next(), before_chars.next()) {
            (Some(c1), Some(c2)) => (Some(c1), Some(c2)),
            (Some(c1), None) => (Some(c1), prev),
            (None, _) => (prev, prev2),
        };
        let mut after_chars = after.chars();
        let (a1, a2) = (after_chars.next(), after_chars.next());
        let glued_before = b1.is_some_and(is_word_char)
            || (b1 == Some('.') && b2.is_some_and(|c| c.is_ascii_digit()));
        let glued_after = a1.is_some_and(is_word_char)
            || (a1 == Some('.') && a2.is_some_and(|c| c.is_ascii_digit()));
        out.push_str(before);
        let replacement = if glued_before || glued_after || digits.starts_with('0') {
            None
        } else {
            digits
                .parse::<u32>()
                .ok()
                .and_then(|pid| pids.placeholder(pid))
        };
        out.push_str(replacement.as_deref().unwrap_or(digits));
        let mut last = digits.chars().rev();
        prev = last.next();
        prev2 = last.next().or(b1);
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Sorts the lines of every any-order block; see [`ANY_ORDER_BEGIN`].
fn sort_any_order_blocks(text: &str) -> String {
    fn flush<'a>(out: &mut Vec<&'a str>, block: &mut Option<Vec<&'a str>>) {
        if let Some(mut lines) = block.take() {
            lines.sort_unstable();
            out.extend(lines);
        }
    }
    let mut out: Vec<&str> = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in text.split('\n') {
        let marker = line.trim_end();
        if marker == ANY_ORDER_BEGIN {
            flush(&mut out, &mut block);
            out.push(line);
            block = Some(Vec::new());
        } else if marker == ANY_ORDER_END && block.is_some() {
            flush(&mut out, &mut block);
            out.push(line);
        } else if let Some(lines) = block.as_mut() {
            lines.push(line);
        } else {
            out.push(line);
        }
    }
    // An unterminated block runs to the end of the text; the text's final newline
    // (an empty last piece) stays last.
    if let Some(lines) = block.as_mut()
        && lines.last() == Some(&"")
    {
        lines.pop();
        flush(&mut out, &mut block);
        out.push("");
    }
    flush(&mut out, &mut block);
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PidNames {
        let mut pids = PidNames::new(4242);
        pids.name(4300, "Process-1")
            .name(4301, "Process-2")
            .saw(4999);
        pids
    }

    fn norm(text: &str) -> String {
        normalize(text, &mut table())
    }

    #[test]
    fn every_rule_has_a_valid_regex() {
        assert_eq!(compiled().len(), RULES.len());
    }

    #[test]
    fn line_endings_become_newlines() {
        assert_eq!(norm("a\r\nb\rc\n"), "a\nb\nc\n");
    }

    #[test]
    fn ansi_sequences_are_removed() {
        assert_eq!(
            norm("\x1b[1;31mred\x1b[0m and \x1b]0;title\x07plain"),
            "red and plain"
        );
    }

    #[test]
    fn the_main_pid_and_logged_pids_get_names() {
        assert_eq!(
            norm("parent 4242, child 4300, second 4301"),
            "parent <pid MainProcess>, child <pid Process-1>, second <pid Process-2>"
        );
    }

    #[test]
    fn equal_pids_stay_equal() {
        let out = norm("pid: 4300\nppid: 4242\n---\npid: 4242\nchild was 4300\n");
        assert_eq!(
            out,
            "pid: <pid Process-1>\nppid: <pid MainProcess>\n---\npid: <pid MainProcess>\nchild was <pid Process-1>\n"
        );
    }

    #[test]
    fn a_number_that_is_not_a_pid_is_untouched() {
        assert_eq!(
            norm("sum 4243, index 4299, 12, -15"),
            "sum 4243, index 4299, 12, -15"
        );
    }

    #[test]
    fn only_whole_word_pids_are_replaced() {
        assert_eq!(
            norm("v4242 4242x 14242 42420 4242_ 04242 4242.5 3.4242"),
            "v4242 4242x 14242 42420 4242_ 04242 4242.5 3.4242"
        );
        // Punctuation and CJK text around a pid do not glue it into a word.
        assert_eq!(
            norm("[4242] (4300) 4242. 4242: pid=4242 进程4242号"),
            "[<pid MainProcess>] (<pid Process-1>) <pid MainProcess>. <pid MainProcess>: pid=<pid MainProcess> 进程<pid MainProcess>号"
        );
    }

    #[test]
    fn unknown_pids_of_the_run_are_numbered_by_first_appearance() {
        let mut pids = PidNames::new(10);
        pids.saw(700).saw(500);
        let stdout = normalize("server 500, then 700, again 500\n", &mut pids);
        assert_eq!(stdout, "server <pid ?1>, then <pid ?2>, again <pid ?1>\n");
        // The numbering carries over to the next stream of the same run.
        assert_eq!(normalize("700\n", &mut pids), "<pid ?2>\n");
    }

    #[test]
    fn a_named_pid_is_not_also_unknown() {
        let mut pids = PidNames::new(10);
        pids.saw(500).name(500, "Process-1").saw(500);
        assert_eq!(normalize("500", &mut pids), "<pid Process-1>");
    }

    #[test]
    fn timestamps_become_time() {
        assert_eq!(
            norm("start 1763783912.3457205, end 1763783913 and 176378391 stays"),
            "start <time>, end <time> and 176378391 stays"
        );
    }

    #[test]
    fn a_timestamp_fraction_is_not_a_pid() {
        let mut pids = PidNames::new(3457205);
        assert_eq!(normalize("t=1763783912.3457205", &mut pids), "t=<time>");
    }

    #[test]
    fn durations_become_dur() {
        assert_eq!(
            norm("took 1.02s; 0.35 s; 120ms; 15.3µs; 7ns; 2.5e-3s"),
            "took <dur>; <dur>; <dur>; <dur>; <dur>; <dur>"
        );
        // Words that merely start like units are left alone.
        assert_eq!(
            norm("3 sleeps, 2 seconds, 4 ms-long"),
            "3 sleeps, 2 seconds, <dur>-long"
        );
    }

    #[test]
    fn temp_paths_and_shared_memory_names_get_placeholders() {
        assert_eq!(
            norm("at '/tmp/pymp-a1b2/listener-x9' and /var/tmp/mpcore-1/s, done"),
            "at '<tmp>' and <tmp>, done"
        );
        assert_eq!(
            norm("segment mpcore-4242-7f3a, /dev/shm/mpcore-x.1 and psm_1a2b3c"),
            "segment <shm>, <shm> and <shm>"
        );
        assert_eq!(
            norm("<Foo object at 0x7f3a2c1d9e80>"),
            "<Foo object at <addr>>"
        );
    }

    #[test]
    fn any_order_blocks_are_sorted_and_markers_stay() {
        let text = format!(
            "b first\na second\n{ANY_ORDER_BEGIN}\n3\n1\n2\n{ANY_ORDER_END}\nz\ny\n{ANY_ORDER_BEGIN}\nq\np\n"
        );
        assert_eq!(
            norm(&text),
            format!(
                "b first\na second\n{ANY_ORDER_BEGIN}\n1\n2\n3\n{ANY_ORDER_END}\nz\ny\n{ANY_ORDER_BEGIN}\np\nq\n"
            )
        );
    }

    #[test]
    fn an_end_marker_outside_a_block_is_an_ordinary_line() {
        let text = format!("b\n{ANY_ORDER_END}\na\n");
        assert_eq!(norm(&text), text);
    }

    #[test]
    fn blocks_are_sorted_after_pid_normalisation() {
        // Raw pids would sort 4301 < 4300-ish by number luck; names sort by process.
        let text = format!("{ANY_ORDER_BEGIN}\nhello from 4301\nhello from 4300\n");
        assert_eq!(
            norm(&text),
            format!("{ANY_ORDER_BEGIN}\nhello from <pid Process-1>\nhello from <pid Process-2>\n")
        );
    }

    #[test]
    fn trailing_whitespace_is_removed() {
        assert_eq!(norm("a  \nb\t\n  c\n"), "a\nb\n  c\n");
    }
}
