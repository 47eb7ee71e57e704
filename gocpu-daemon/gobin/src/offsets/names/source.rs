//! Reading status and wait-reason names out of a Go runtime's source, and rendering the table.
//!
//! Shared by `cargo xtask runtime-names`, which writes `src/offsets/names/table.rs`, and the test
//! that regenerates it from the installed toolchains. The parser understands exactly the Go the
//! runtime uses for these declarations — constant blocks of `NAME [TYPE] = EXPR` / `NAME` lines
//! (implicit repetition with `iota`), sums of identifiers and integer literals, and keyed
//! `[...]string{KEY: "text", ...}` literals — and fails on anything else rather than guess.
use std::{collections::HashMap, fmt::Write as _};

use thiserror::Error;

/// Why a runtime source did not parse.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SourceError {
    /// A declaration the generator relies on is missing.
    #[error("no {0} in the runtime source")]
    Missing(&'static str),
    /// A line inside a declaration has a form the parser does not understand.
    #[error("cannot parse {what}: {line:?}")]
    Syntax {
        /// Which declaration.
        what: &'static str,
        /// The offending line.
        line: String,
    },
    /// A key of a string table names no constant of its block.
    #[error("{table} uses {key}, which its constant block does not declare")]
    UnknownKey {
        /// The table.
        table: &'static str,
        /// The key.
        key: String,
    },
}

/// A status constant as parsed (owned; the table holds the `'static` form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedStatus {
    /// Value.
    pub value: u32,
    /// Constant name.
    pub constant: String,
    /// Display name.
    pub name: String,
    /// A `_Gdead*` status.
    pub dead: bool,
}

/// Everything one release's sources say about statuses and wait reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedNames {
    /// The `_Gscan` bit.
    pub scan_bit: u32,
    /// Statuses below `_Gscan`, by value.
    pub statuses: Vec<ParsedStatus>,
    /// `waitReasonStrings` with the constant of each index.
    pub wait_reasons: Vec<(String, String)>,
}

/// One table row to render.
#[derive(Clone, Debug)]
pub struct NamesRow {
    /// `go version` of the toolchain, e.g. "go1.25.5".
    pub generated_from: String,
    /// Release `(major, minor, patch)`.
    pub release: (u32, u32, u32),
    /// What its sources say.
    pub names: ParsedNames,
}

/// Largest declaration block read (the real ones are a few kilobytes).
const MAX_BLOCK_LINES: usize = 2000;

/// Parses `runtime/runtime2.go` and `runtime/traceback.go` of one release.
pub fn parse_sources(runtime2: &str, traceback: &str) -> Result<ParsedNames, SourceError> {
    let status_consts = const_block(runtime2, "_Gidle", "the _Gidle constant block")?;
    let scan_bit = status_consts
        .iter()
        .find(|(n, _)| n == "_Gscan")
        .map(|&(_, v)| v)
        .ok_or(SourceError::Missing("_Gscan"))?;
    let u32_of = |v: i64| u32::try_from(v).ok();
    let scan_bit = u32_of(scan_bit).ok_or(SourceError::Missing("a valid _Gscan"))?;
    let display = keyed_strings(traceback, "gStatusStrings", &status_consts)?;
    let mut statuses = Vec::new();
    for (constant, value) in &status_consts {
        let Some(value) = u32_of(*value).filter(|&v| v < scan_bit) else {
            continue;
        };
        let name = display
            .get(value as usize)
            .filter(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| constant.trim_start_matches("_G").to_string());
        statuses.push(ParsedStatus {
            value,
            dead: constant.starts_with("_Gdead"),
            constant: constant.clone(),
            name,
        });
    }
    statuses.sort_by_key(|s| s.value);
    let wait_consts = const_block(runtime2, "waitReasonZero", "the waitReason constant block")?;
    let strings = keyed_strings(runtime2, "waitReasonStrings", &wait_consts)?;
    let by_value: HashMap<i64, &str> = wait_consts.iter().map(|(n, v)| (*v, n.as_str())).collect();
    let wait_reasons = strings
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let constant = by_value.get(&(i as i64)).copied().unwrap_or("");
            (constant.to_string(), s)
        })
        .collect();
    Ok(ParsedNames {
        scan_bit,
        statuses,
        wait_reasons,
    })
}

/// `line` without a trailing `//` comment, trimmed.
fn code(line: &str) -> Result<&str, ()> {
    if line.contains("/*") {
        return Err(());
    }
    Ok(line.split_once("//").map_or(line, |(c, _)| c).trim())
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Evaluates `a + b + ...` of `iota`, integer literals and already-declared constants.
fn eval(expr: &str, iota: i64, known: &[(String, i64)]) -> Option<i64> {
    let mut sum: i64 = 0;
    for term in expr.split('+').map(str::trim) {
        let v = if term == "iota" {
            iota
        } else if let Some(hex) = term.strip_prefix("0x") {
            i64::from_str_radix(hex, 16).ok()?
        } else if term.bytes().all(|b| b.is_ascii_digit()) && !term.is_empty() {
            term.parse().ok()?
        } else if is_ident(term) {
            known.iter().find(|(n, _)| n == term)?.1
        } else {
            return None;
        };
        sum = sum.checked_add(v)?;
    }
    Some(sum)
}

/// The lines of the `const ( ... )` block that declares `first`.
fn const_block(
    src: &str,
    first: &str,
    what: &'static str,
) -> Result<Vec<(String, i64)>, SourceError> {
    let mut lines = src.lines();
    let mut found = None;
    while let Some(line) = lines.next() {
        if line.trim() != "const (" {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .take(MAX_BLOCK_LINES)
            .take_while(|l| l.trim() != ")")
            .collect();
        let declares = body
            .iter()
            .any(|l| code(l).is_ok_and(|c| c.split_whitespace().next() == Some(first)));
        if declares {
            found = Some(body);
            break;
        }
    }
    let body = found.ok_or(SourceError::Missing(what))?;
    let syntax = |line: &str| SourceError::Syntax {
        what,
        line: line.chars().take(200).collect(),
    };
    let mut out: Vec<(String, i64)> = Vec::new();
    let mut expr: Option<String> = None;
    let mut iota = 0i64;
    for line in body {
        let c = code(line).map_err(|()| syntax(line))?;
        if c.is_empty() {
            continue;
        }
        let (lhs, rhs) = match c.split_once('=') {
            Some((l, r)) => (l.trim(), Some(r.trim())),
            None => (c, None),
        };
        let mut words = lhs.split_whitespace();
        let name = words
            .next()
            .filter(|n| is_ident(n))
            .ok_or_else(|| syntax(line))?;
        let typ = words.next();
        if words.next().is_some() || (typ.is_some() && rhs.is_none()) {
            return Err(syntax(line));
        }
        if let Some(r) = rhs {
            expr = Some(r.to_string());
        }
        let e = expr.as_deref().ok_or_else(|| syntax(line))?;
        let value = eval(e, iota, &out).ok_or_else(|| syntax(line))?;
        out.push((name.to_string(), value));
        iota += 1;
    }
    Ok(out)
}

/// Parses a Go interpreted string literal (the escapes `\"` and `\\` only).
fn string_literal(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                c @ ('"' | '\\') => out.push(c),
                _ => return None,
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// `var <name> = [...]string{KEY: "text", ...}` as a dense vector (gaps are "", as in Go).
fn keyed_strings(
    src: &str,
    name: &'static str,
    consts: &[(String, i64)],
) -> Result<Vec<String>, SourceError> {
    let head = format!("var {name} = [...]string{{");
    let mut lines = src.lines().skip_while(|l| l.trim() != head);
    lines.next().ok_or(SourceError::Missing(name))?;
    let syntax = |line: &str| SourceError::Syntax {
        what: name,
        line: line.chars().take(200).collect(),
    };
    let mut out: Vec<String> = Vec::new();
    let mut closed = false;
    for line in lines.take(MAX_BLOCK_LINES) {
        let c = code(line).map_err(|()| syntax(line))?;
        if c.is_empty() {
            continue;
        }
        if c == "}" {
            closed = true;
            break;
        }
        let (key, value) = c.split_once(':').ok_or_else(|| syntax(line))?;
        let key = key.trim();
        let value = value.trim().strip_suffix(',').ok_or_else(|| syntax(line))?;
        let text = string_literal(value.trim()).ok_or_else(|| syntax(line))?;
        let index = consts
            .iter()
            .find(|(n, _)| n == key)
            .map(|&(_, v)| v)
            .ok_or_else(|| SourceError::UnknownKey {
                table: name,
                key: key.chars().take(100).collect(),
            })?;
        let index = usize::try_from(index)
            .ok()
            .filter(|&i| i < 4096)
            .ok_or_else(|| syntax(line))?;
        if out.len() <= index {
            out.resize(index + 1, String::new());
        }
        if let Some(slot) = out.get_mut(index) {
            *slot = text;
        }
    }
    if !closed {
        return Err(SourceError::Missing("the end of a string table"));
    }
    Ok(out)
}

/// The header every generated names table starts with.
pub const HEADER: &str = "\
// @generated by `cargo xtask runtime-names` from runtime/runtime2.go and runtime/traceback.go of
// each installed Go toolchain; do not edit. The test `runtime_names_table` regenerates it from the
// installed toolchains and fails when the two differ.
";

/// The Rust source of `src/offsets/names/table.rs` for `rows` (sorted by release by the caller).
pub fn render_table(rows: &[NamesRow]) -> String {
    let mut s = String::from(HEADER);
    s.push_str("//! Goroutine status and wait-reason names per Go release (generated; see the header).\n\n");
    s.push_str("use super::{GStatus, RuntimeNames};\n\n");
    s.push_str("#[rustfmt::skip]\npub(super) const TABLE: &[RuntimeNames] = &[\n");
    for row in rows {
        s.push_str(&render_row(row));
    }
    s.push_str("];\n");
    s
}

/// The text of one row inside `TABLE`.
pub fn render_row(row: &NamesRow) -> String {
    let mut s = String::new();
    let (major, minor, patch) = row.release;
    // Writing to a String cannot fail.
    let _ = writeln!(s, "    RuntimeNames {{");
    let _ = writeln!(s, "        release: ({major}, {minor}, {patch}),");
    let _ = writeln!(s, "        generated_from: {:?},", row.generated_from);
    let _ = writeln!(s, "        scan_bit: {:#x},", row.names.scan_bit);
    let _ = writeln!(s, "        statuses: &[");
    for st in &row.names.statuses {
        let _ = writeln!(
            s,
            "            GStatus {{ value: {}, constant: {:?}, name: {:?}, dead: {} }},",
            st.value, st.constant, st.name, st.dead
        );
    }
    let _ = writeln!(s, "        ],");
    let _ = writeln!(s, "        wait_reasons: &[");
    for (i, (constant, text)) in row.names.wait_reasons.iter().enumerate() {
        let _ = writeln!(s, "            {text:?}, // {i} {constant}");
    }
    let _ = writeln!(s, "        ],");
    let _ = writeln!(s, "    }},");
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{SourceError, parse_sources};

    const RUNTIME2: &str = r#"
package runtime

const (
	// comment
	_Gidle = iota // 0
	_Grunnable // 1

	_Gdead // 2
	_Gextra_unused // 3
	_Gscan         = 0x1000
	_Gscanrunnable = _Gscan + _Grunnable // 0x1001
)

type waitReason uint8

const (
	waitReasonZero      waitReason = iota // ""
	waitReasonB                           // "b"
	waitReasonA                           // "a"
	waitReasonNoString
)

var waitReasonStrings = [...]string{
	waitReasonZero: "",
	waitReasonA:    "a \"quoted\"",
	waitReasonB:    "b",
}
"#;

    const TRACEBACK: &str = r#"
var gStatusStrings = [...]string{
	_Gidle:     "idle",
	_Grunnable: "runnable",
	_Gdead:     "dead",
}
"#;

    #[test]
    fn parses_iota_blocks_and_keyed_tables() {
        let n = parse_sources(RUNTIME2, TRACEBACK).unwrap();
        assert_eq!(n.scan_bit, 0x1000);
        let st: Vec<_> = n
            .statuses
            .iter()
            .map(|s| (s.value, s.name.as_str(), s.dead))
            .collect();
        assert_eq!(
            st,
            [
                (0, "idle", false),
                (1, "runnable", false),
                (2, "dead", true),
                (3, "extra_unused", false)
            ]
        );
        let wr: Vec<_> = n
            .wait_reasons
            .iter()
            .map(|(c, s)| (c.as_str(), s.as_str()))
            .collect();
        assert_eq!(
            wr,
            [
                ("waitReasonZero", ""),
                ("waitReasonB", "b"),
                ("waitReasonA", "a \"quoted\"")
            ]
        );
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        let shifted = RUNTIME2.replace("_Gidle = iota", "_Gidle = 1 << iota");
        assert!(matches!(
            parse_sources(&shifted, TRACEBACK),
            Err(SourceError::Syntax { .. })
        ));
        let unknown = RUNTIME2.replace("waitReasonB:    \"b\"", "waitReasonQ: \"q\"");
        assert!(matches!(
            parse_sources(&unknown, TRACEBACK),
            Err(SourceError::UnknownKey { .. })
        ));
        let escaped = RUNTIME2.replace("\"b\"", "\"b\\n\"");
        assert!(parse_sources(&escaped, TRACEBACK).is_err());
        assert_eq!(
            parse_sources("package runtime", TRACEBACK),
            Err(SourceError::Missing("the _Gidle constant block"))
        );
        let unclosed = RUNTIME2.replace("\n}\n", "\n");
        assert!(parse_sources(&unclosed, TRACEBACK).is_err());
    }
}
