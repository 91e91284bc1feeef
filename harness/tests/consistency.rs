//! The workspace's own `dev check` (as rustlings has): every lesson is complete and
//! every generated file is fresh. Each test lists every problem it finds, not just
//! the first.
//!
//! A lesson is complete when it has one `[[lesson]]` entry in `lessons/lessons.toml`,
//! a binary `lessons/src/bin/NAME.rs` with a `//!` header, an `// ANCHOR: main` /
//! `// ANCHOR_END: main` pair and `mpcore::init()` first in `main`, a Python reference
//! `lessons/reference/NAME.py`, a test `harness/tests/NAME.rs`, and a chapter in
//! `docs/src/` that `SUMMARY.md` links and that shows at least one output region of
//! the lesson. Nothing may exist without its lesson (a binary, a reference script, a
//! test file, a snapshot).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use harness::docs::{chapter_dir, chapters, display, refresh, regions, snapshot_dir};
use harness::manifest::{LessonEntry, read_manifest};
use harness::workspace_root;

fn manifest() -> Vec<LessonEntry> {
    read_manifest(&workspace_root().join("lessons/lessons.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// The stems of the files in `dir` ending in `.ext`.
fn stems(dir: &Path, ext: &str) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| {
                    let name = e.ok()?.file_name().into_string().ok()?;
                    Some(name.strip_suffix(&format!(".{ext}"))?.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn fail_with(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  - {}",
        problems.len(),
        problems.join("\n  - ")
    );
}

#[test]
fn the_manifest_lists_every_binary_once() {
    let entries = manifest();
    let mut problems = Vec::new();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in &entries {
        *count.entry(&entry.name).or_default() += 1;
    }
    for (name, n) in &count {
        if *n > 1 {
            problems.push(format!("lessons.toml lists {name:?} {n} times"));
        }
    }
    let bins = stems(&workspace_root().join("lessons/src/bin"), "rs");
    for bin in &bins {
        if !count.contains_key(bin.as_str()) {
            problems.push(format!(
                "lessons/src/bin/{bin}.rs has no [[lesson]] entry in lessons/lessons.toml"
            ));
        }
    }
    for entry in &entries {
        if !bins.contains(&entry.name) {
            problems.push(format!(
                "lessons.toml line {}: no binary lessons/src/bin/{}.rs",
                entry.line, entry.name
            ));
        }
        if entry.summary.trim().is_empty() || entry.summary.contains('\n') {
            problems.push(format!(
                "lessons.toml line {}: {:?} needs a one-line summary",
                entry.line, entry.name
            ));
        }
        if entry.source.trim().is_empty() {
            problems.push(format!(
                "lessons.toml line {}: {:?} names no source section",
                entry.line, entry.name
            ));
        }
    }
    fail_with(problems);
}

/// Problems with the teaching conventions of one lesson binary's text.
fn binary_problems(name: &str, text: &str) -> Vec<String> {
    let file = format!("lessons/src/bin/{name}.rs");
    let mut problems = Vec::new();
    if !text.starts_with("//!") {
        problems.push(format!(
            "{file} does not start with a //! comment (what it shows, source, how to run it)"
        ));
    }
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let begins: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i] == "// ANCHOR: main")
        .collect();
    let ends: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i] == "// ANCHOR_END: main")
        .collect();
    match (begins.as_slice(), ends.as_slice()) {
        (&[begin], &[end]) if begin < end => {}
        _ => problems.push(format!(
            "{file} needs one `// ANCHOR: main` and, after it, one `// ANCHOR_END: main`"
        )),
    }
    let first_in_main = lines
        .iter()
        .skip_while(|line| !line.starts_with("fn main("))
        .skip(1)
        .find(|line| !line.is_empty() && !line.starts_with("//"));
    if first_in_main != Some(&"mpcore::init();") {
        problems.push(format!(
            "{file}: the first line of main must be `mpcore::init();`"
        ));
    }
    problems
}

#[test]
fn every_lesson_has_its_files() {
    let root = workspace_root();
    let summary = fs::read_to_string(chapter_dir().join("SUMMARY.md")).unwrap_or_default();
    let mut problems = Vec::new();
    for entry in manifest() {
        let name = &entry.name;
        if let Ok(text) = fs::read_to_string(root.join(format!("lessons/src/bin/{name}.rs"))) {
            problems.extend(binary_problems(name, &text));
        }
        for file in [
            format!("lessons/reference/{name}.py"),
            format!("harness/tests/{name}.rs"),
        ] {
            if !root.join(&file).is_file() {
                problems.push(format!("lesson {name:?} has no {file}"));
            }
        }
        let chapter = chapter_dir().join(&entry.chapter);
        let shown = display(&chapter);
        let Ok(text) = fs::read_to_string(&chapter) else {
            problems.push(format!(
                "lesson {name:?}: its chapter {shown} does not exist"
            ));
            continue;
        };
        if !summary.contains(&format!("]({})", entry.chapter)) {
            problems.push(format!("docs/src/SUMMARY.md does not link {shown}"));
        }
        match regions(&text) {
            Ok(found) => {
                let own = |region: &str| region == name || region.starts_with(&format!("{name}-"));
                if !found.iter().any(|r| own(&r.name)) {
                    problems.push(format!(
                        "{shown} shows no output of {name:?}: add a region \
                         `<!-- output:begin {name} -->` ... `<!-- output:end -->` and run `just bless`"
                    ));
                }
            }
            Err(e) => problems.push(format!("{shown}: {e}")),
        }
    }
    fail_with(problems);
}

#[test]
fn nothing_exists_without_its_lesson() {
    let root = workspace_root();
    let names: BTreeSet<String> = manifest().into_iter().map(|e| e.name).collect();
    // A snapshot is named after its lesson, or after the lesson and its arguments.
    let belongs = |file: &str| {
        names
            .iter()
            .any(|name| file == name || file.starts_with(&format!("{name}-")))
    };
    let mut problems = Vec::new();
    for script in stems(&root.join("lessons/reference"), "py") {
        if !names.contains(&script) {
            problems.push(format!(
                "lessons/reference/{script}.py belongs to no lesson"
            ));
        }
    }
    let own_tests = ["consistency", "runner"];
    for test in stems(&root.join("harness/tests"), "rs") {
        if !names.contains(&test) && !own_tests.contains(&test.as_str()) {
            problems.push(format!("harness/tests/{test}.rs belongs to no lesson"));
        }
    }
    for snapshot in stems(&snapshot_dir(), "snap") {
        if !belongs(&snapshot) {
            problems.push(format!(
                "harness/tests/snapshots/{snapshot}.snap belongs to no lesson: delete it"
            ));
        }
    }
    fail_with(problems);
}

#[test]
fn docs_are_fresh() {
    let mut problems = Vec::new();
    for chapter in chapters() {
        let shown = display(&chapter);
        let text = fs::read_to_string(&chapter).unwrap_or_else(|e| panic!("{shown}: {e}"));
        match refresh(&text) {
            Ok(fresh) if fresh == text => {}
            Ok(fresh) => problems.push(format!(
                "{shown} is stale: run `just bless`\n{}",
                harness::diff(&text, &fresh, &shown, "from the snapshots")
            )),
            Err(e) => problems.push(format!("{shown}: {e}")),
        }
    }
    fail_with(problems);
}

#[test]
fn the_checks_catch_a_lesson_that_breaks_the_conventions() {
    let good = "//! Shows things.\n\n// ANCHOR: main\nfn main() {\n    // first\n    mpcore::init();\n}\n// ANCHOR_END: main\n";
    assert_eq!(binary_problems("good", good), Vec::<String>::new());
    let bad = "// ANCHOR_END: main\nfn main() {\n    println!();\n    mpcore::init();\n}\n// ANCHOR: main\n";
    let problems = binary_problems("bad", bad);
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

#[test]
fn a_stale_region_is_noticed_and_refreshed() {
    // Uses the committed `create` snapshot; the region below holds stale output.
    let stale = "# Creating a process\n<!-- output:begin create -->\n```console\n$ just lesson create\nold output\n```\n<!-- output:end -->\nafter\n";
    let fresh = refresh(stale).unwrap();
    assert_ne!(fresh, stale);
    assert!(fresh.starts_with("# Creating a process\n<!-- output:begin create -->\n```console\n$ just lesson create\nhello\n"));
    assert!(
        fresh.ends_with("继续执行父进程\n```\n<!-- output:end -->\nafter\n"),
        "{fresh}"
    );
    assert_eq!(refresh(&fresh).unwrap(), fresh);
    let missing = "<!-- output:begin no-such-lesson -->\n<!-- output:end -->\n";
    assert!(
        refresh(missing)
            .unwrap_err()
            .contains("there is no snapshot")
    );
}
