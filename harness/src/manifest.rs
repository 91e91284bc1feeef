//! `lessons/lessons.toml`: the list of lessons in teaching order (rustlings' `info.toml`).
//!
//! ```toml
//! format_version = 1
//!
//! [[lesson]]
//! name = "create"                 # the binary, lessons/src/bin/create.rs
//! summary = "Start a child process with Process::new and join it"
//! source = "000 §(1); 001 §2; 003 创建进程"
//! chapter = "create.md"           # docs/src/create.md
//! ```
//!
//! The harness reads only this small subset of TOML (top-level keys, `[[lesson]]`
//! tables, strings, numbers, booleans, comments), so it needs no TOML crate. Anything
//! else is an error naming the line, never a silent misreading.

use std::path::Path;

/// One `[[lesson]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LessonEntry {
    /// The binary name (`lessons/src/bin/NAME.rs`).
    pub name: String,
    /// One line saying what the lesson shows (`just lessons` prints it).
    pub summary: String,
    /// The tutorial section it comes from.
    pub source: String,
    /// Its chapter, a file in `docs/src/`.
    pub chapter: String,
    /// The line of its `[[lesson]]` header, for messages.
    pub line: usize,
}

/// Reads and parses the manifest at `path`.
pub fn read_manifest(path: &Path) -> Result<Vec<LessonEntry>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_manifest(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the manifest's text.
pub fn parse_manifest(text: &str) -> Result<Vec<LessonEntry>, String> {
    let mut tables: Vec<(usize, Vec<(String, String)>)> = Vec::new();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    while let Some((number, line)) = lines.next() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if trimmed.starts_with('[') {
            if strip_comment(trimmed).trim() == "[[lesson]]" {
                tables.push((number, Vec::new()));
                continue;
            }
            return Err(format!(
                "line {number}: unexpected table {trimmed:?} (only [[lesson]])"
            ));
        }
        let (key, value) = trimmed
            .split_once('=')
            .ok_or_else(|| format!("line {number}: expected `key = value`"))?;
        let key = key.trim().to_string();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("line {number}: unsupported key {key:?}"));
        }
        let value =
            parse_value(value.trim(), &mut lines).map_err(|e| format!("line {number}: {e}"))?;
        if let Some((_, table)) = tables.last_mut() {
            if table.iter().any(|(k, _)| *k == key) {
                return Err(format!("line {number}: duplicate key {key:?}"));
            }
            table.push((key, value));
        }
        // Top-level keys (format_version) are allowed and ignored.
    }
    tables
        .into_iter()
        .map(|(line, table)| {
            let get = |key: &str| {
                table
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("the [[lesson]] at line {line} has no {key:?}"))
            };
            Ok(LessonEntry {
                name: get("name")?,
                summary: get("summary")?,
                source: get("source")?,
                chapter: get("chapter")?,
                line,
            })
        })
        .collect()
}

/// Removes a `#` comment that is not inside a string.
fn strip_comment(text: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return &text[..i],
            None => {}
        }
    }
    text
}

/// Parses one value: a basic, literal or multi-line string (read on from `lines`),
/// an integer or a boolean (kept as text).
fn parse_value<'a>(
    value: &str,
    lines: &mut impl Iterator<Item = (usize, &'a str)>,
) -> Result<String, String> {
    if let Some(rest) = value.strip_prefix("\"\"\"") {
        // A multi-line basic string: a newline right after the opening quotes is dropped.
        let mut raw = rest.to_string();
        while !raw.contains("\"\"\"") {
            let (_, next) = lines.next().ok_or("unterminated \"\"\" string")?;
            raw.push('\n');
            raw.push_str(next);
        }
        let end = raw.find("\"\"\"").expect("checked above");
        let trailing = strip_comment(&raw[end + 3..]).trim().to_string();
        if !trailing.is_empty() {
            return Err(format!("unexpected {trailing:?} after the string"));
        }
        let body = raw[..end].strip_prefix('\n').unwrap_or(&raw[..end]);
        return unescape(body);
    }
    let value = strip_comment(value).trim();
    if let Some(rest) = value.strip_prefix('"') {
        let body = rest
            .strip_suffix('"')
            .filter(|b| !b.ends_with('\\') || b.ends_with("\\\\"))
            .ok_or("unterminated string")?;
        return unescape(body);
    }
    if let Some(rest) = value.strip_prefix('\'') {
        return rest
            .strip_suffix('\'')
            .map(str::to_string)
            .ok_or_else(|| "unterminated literal string".to_string());
    }
    if value == "true" || value == "false" || value.parse::<i64>().is_ok() {
        return Ok(value.to_string());
    }
    Err(format!("unsupported value {value:?}"))
}

fn unescape(body: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some(u @ ('u' | 'U')) => {
                let len = if u == 'u' { 4 } else { 8 };
                let hex: String = chars.by_ref().take(len).collect();
                let c = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad escape \\{u}{hex}"))?;
                out.push(c);
            }
            other => return Err(format!("unsupported escape \\{}", other.unwrap_or(' '))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_read_in_order() {
        let text = r#"
format_version = 1   # the manifest's format

# The first lesson.
[[lesson]]
name = "create"
summary = "Start a child with \"Process::new\" # not a comment"
source = '000 §(1); 003 创建进程'
chapter = "create.md"  # docs/src/create.md

[[lesson]]
name = "join"
summary = """
Start three, join three"""
source = "000 §(2)"
chapter = "join.md"
hint = "extra keys are allowed"
"#;
        let entries = parse_manifest(text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "create");
        assert_eq!(
            entries[0].summary,
            r#"Start a child with "Process::new" # not a comment"#
        );
        assert_eq!(entries[0].source, "000 §(1); 003 创建进程");
        assert_eq!(entries[0].chapter, "create.md");
        assert_eq!(entries[0].line, 5);
        assert_eq!(entries[1].summary, "Start three, join three");
    }

    #[test]
    fn mistakes_are_errors_not_guesses() {
        for (text, error) in [
            ("[lesson]\n", "unexpected table"),
            ("[[lesson]]\nname = \"a\"\nname = \"b\"\n", "duplicate key"),
            ("[[lesson]]\nname = \"a\n", "unterminated string"),
            ("[[lesson]]\nname = [\"a\"]\n", "unsupported value"),
            ("[[lesson]]\nname = \"a\"\n", "has no \"summary\""),
            ("[[lesson]]\nname\n", "expected `key = value`"),
        ] {
            let got = parse_manifest(text).unwrap_err();
            assert!(got.contains(error), "{text:?}: {got}");
        }
    }
}
