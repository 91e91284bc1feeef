//! The book's generated output regions, and the snapshots they are made from.
//!
//! A chapter shows what a lesson prints in a region between two marker comments:
//!
//! ````markdown
//! <!-- output:begin join-sequential -->
//! ```console
//! $ just lesson join --sequential
//! ...the normalised stdout of snapshot harness/tests/snapshots/join-sequential.snap...
//! ```
//! <!-- output:end -->
//! ````
//!
//! The snapshot is the single source of truth: [`refresh`] rewrites every region from
//! its snapshot (the `bless` binary writes the result; the `docs_are_fresh` test
//! fails when it would change anything). Never edit a region by hand.

use std::path::{Path, PathBuf};

use crate::workspace_root;

/// The start of a region's first line; the region's name and ` -->` follow.
pub const REGION_BEGIN: &str = "<!-- output:begin ";

/// A region's last line.
pub const REGION_END: &str = "<!-- output:end -->";

/// One generated region of a chapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Its name: the snapshot it shows (`create`, `join-sequential`).
    pub name: String,
    /// The line number (from 1) of its begin marker.
    pub line: usize,
    /// The byte range of its contents, between the marker lines.
    pub contents: std::ops::Range<usize>,
}

/// The regions of a chapter's `text`, in order. Unterminated, nested or unnamed
/// regions are errors.
pub fn regions(text: &str) -> Result<Vec<Region>, String> {
    let mut found = Vec::new();
    let mut open: Option<(String, usize, usize)> = None;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix(REGION_BEGIN) {
            if let Some((name, begin, _)) = &open {
                return Err(format!(
                    "line {number}: region opened inside region {name:?} (line {begin})"
                ));
            }
            let name = rest
                .strip_suffix("-->")
                .map(str::trim)
                .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))
                .ok_or_else(|| {
                    format!("line {number}: expected `{REGION_BEGIN}NAME -->`, got {trimmed:?}")
                })?;
            open = Some((name.to_string(), number, offset + line.len()));
        } else if trimmed == REGION_END {
            let (name, line_number, start) = open
                .take()
                .ok_or_else(|| format!("line {number}: {REGION_END} without a begin"))?;
            found.push(Region {
                name,
                line: line_number,
                contents: start..offset,
            });
        }
        offset += line.len();
    }
    if let Some((name, begin, _)) = open {
        return Err(format!(
            "region {name:?} (line {begin}) has no {REGION_END}"
        ));
    }
    Ok(found)
}

/// What a snapshot holds for the docs: the command line and the normalised stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOutput {
    /// `$ just lesson NAME ARGS` (the snapshot's description).
    pub command: String,
    /// The normalised stdout, each line ending in a newline.
    pub stdout: String,
}

/// `harness/tests/snapshots`.
pub fn snapshot_dir() -> PathBuf {
    workspace_root().join("harness/tests/snapshots")
}

/// `docs/src`.
pub fn chapter_dir() -> PathBuf {
    workspace_root().join("docs/src")
}

/// Reads `harness/tests/snapshots/NAME.snap` with insta's own parser.
pub fn read_snapshot(name: &str) -> Result<SnapshotOutput, String> {
    let path = snapshot_dir().join(format!("{name}.snap"));
    if !path.is_file() {
        return Err(format!(
            "there is no snapshot {}: run the lesson's test (`just bless`)",
            path.display()
        ));
    }
    let snapshot = insta::Snapshot::from_file(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let command = snapshot
        .metadata()
        .description()
        .ok_or_else(|| format!("{} has no description", path.display()))?
        .to_string();
    let body = snapshot
        .contents()
        .as_text()
        .ok_or_else(|| format!("{} is not a text snapshot", path.display()))?
        .to_string();
    let stdout = stdout_of_body(&body)
        .ok_or_else(|| format!("{} has no ----- stdout ----- section", path.display()))?;
    Ok(SnapshotOutput { command, stdout })
}

/// The stdout section of a snapshot body (see [`crate::LessonRun::normalized`]).
pub fn stdout_of_body(body: &str) -> Option<String> {
    const STDOUT: &str = "----- stdout -----\n";
    const STDERR: &str = "\n----- stderr -----";
    let start = body.find(STDOUT)? + STDOUT.len();
    let rest = &body[start..];
    let end = rest.rfind(STDERR).unwrap_or(rest.len());
    let mut stdout = rest[..end].to_string();
    if !stdout.is_empty() && !stdout.ends_with('\n') {
        stdout.push('\n');
    }
    Some(stdout)
}

/// A region's contents: a `console` code block holding `command`, then `stdout`.
pub fn render(output: &SnapshotOutput) -> String {
    // A fence longer than any run of backticks in the output.
    let longest = output
        .stdout
        .split(|c| c != '`')
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    format!(
        "{fence}console\n{}\n{}{fence}\n",
        output.command, output.stdout
    )
}

/// `text` with every region rewritten from its snapshot.
pub fn refresh(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for region in regions(text)? {
        let output = read_snapshot(&region.name)
            .map_err(|e| format!("region {:?} (line {}): {e}", region.name, region.line))?;
        out.push_str(&text[copied..region.contents.start]);
        out.push_str(&render(&output));
        copied = region.contents.end;
    }
    out.push_str(&text[copied..]);
    Ok(out)
}

/// The chapters: every `.md` file of `docs/src`, sorted.
pub fn chapters() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(chapter_dir())
        .map(|dir| {
            dir.filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "md"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// `path` relative to the workspace root, for messages (`docs/src/create.md`).
pub fn display(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_found_with_their_contents() {
        let text = "# T\n<!-- output:begin a -->\nold\n<!-- output:end -->\nmid\n<!-- output:begin a-b -->\n<!-- output:end -->\n";
        let found = regions(text).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].name, "a");
        assert_eq!(found[0].line, 2);
        assert_eq!(&text[found[0].contents.clone()], "old\n");
        assert_eq!(found[1].name, "a-b");
        assert_eq!(&text[found[1].contents.clone()], "");
    }

    #[test]
    fn broken_regions_are_errors() {
        for (text, error) in [
            ("<!-- output:begin a -->\n", "has no"),
            ("<!-- output:end -->\n", "without a begin"),
            (
                "<!-- output:begin a -->\n<!-- output:begin b -->\n",
                "inside region",
            ),
            ("<!-- output:begin -->\n", "expected"),
        ] {
            let got = regions(text).unwrap_err();
            assert!(got.contains(error), "{text:?}: {got}");
        }
    }

    #[test]
    fn stdout_is_cut_from_the_body() {
        let body =
            "success: true\nexit_code: 0\n----- stdout -----\nhello\nworld\n\n----- stderr -----\n";
        assert_eq!(stdout_of_body(body).as_deref(), Some("hello\nworld\n"));
        // insta trims the end: an empty stderr leaves the header last.
        let trimmed = "success: true\nexit_code: 0\n----- stdout -----\nhi\n\n----- stderr -----";
        assert_eq!(stdout_of_body(trimmed).as_deref(), Some("hi\n"));
        let empty = "success: true\nexit_code: 0\n----- stdout -----\n\n----- stderr -----";
        assert_eq!(stdout_of_body(empty).as_deref(), Some(""));
    }

    #[test]
    fn a_region_is_a_console_block_with_the_command_first() {
        let out = SnapshotOutput {
            command: "$ just lesson create".into(),
            stdout: "a\nb\n".into(),
        };
        assert_eq!(
            render(&out),
            "```console\n$ just lesson create\na\nb\n```\n"
        );
        let fenced = SnapshotOutput {
            command: "$ x".into(),
            stdout: "```\n".into(),
        };
        assert_eq!(render(&fenced), "````console\n$ x\n```\n````\n");
    }
}
