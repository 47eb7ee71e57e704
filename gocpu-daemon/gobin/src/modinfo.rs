//! The module info text inside `.go.buildinfo` (runtime/debug.ParseBuildInfo's format):
//! tab-separated `path`, `mod`, `dep`, `=>` and `build` lines.
use crate::{error::GobinError, limits};

/// A module: path, version, checksum, and its replacement if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Module {
    /// Module path.
    pub path: String,
    /// Version ("(devel)" for the main module built from a work tree).
    pub version: String,
    /// go.sum checksum (may be empty).
    pub sum: String,
    /// The module that replaced this one (`=>` line).
    pub replace: Option<Box<Module>>,
}

/// Parsed module info.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ModInfo {
    pub path: String,
    pub main: Option<Module>,
    pub deps: Vec<Module>,
    pub settings: Vec<(String, String)>,
}

const fn malformed(what: &'static str) -> GobinError {
    GobinError::MalformedBuildInfo { what }
}

fn cols(rest: &[u8]) -> Vec<&[u8]> {
    rest.split(|&b| b == b'\t').take(4).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn module(cols: &[&[u8]]) -> Result<Module, GobinError> {
    match cols {
        [path, version] => Ok(Module {
            path: text(path),
            version: text(version),
            ..Module::default()
        }),
        [path, version, sum] => Ok(Module {
            path: text(path),
            version: text(version),
            sum: text(sum),
            replace: None,
        }),
        _ => Err(malformed("module line needs 2 or 3 columns")),
    }
}

/// Which module the next `=>` line replaces.
enum Last {
    None,
    Main,
    Dep,
}

/// Parses module info text (without its sentinels). Like Go, an unterminated last line is
/// ignored and unknown lines are skipped.
pub(crate) fn parse_modinfo(data: &[u8]) -> Result<ModInfo, GobinError> {
    let mut info = ModInfo::default();
    let mut last = Last::None;
    let Some(end) = data.iter().rposition(|&b| b == b'\n') else {
        return Ok(info);
    };
    let body = data.get(..end).unwrap_or_default();
    for (n, line) in body.split(|&b| b == b'\n').enumerate() {
        if n >= limits::MAX_MODINFO_LINES {
            return Err(malformed("too many lines"));
        }
        if let Some(rest) = line.strip_prefix(b"path\t") {
            info.path = text(rest);
        } else if let Some(rest) = line.strip_prefix(b"mod\t") {
            info.main = Some(module(&cols(rest))?);
            last = Last::Main;
        } else if let Some(rest) = line.strip_prefix(b"dep\t") {
            info.deps.push(module(&cols(rest))?);
            last = Last::Dep;
        } else if let Some(rest) = line.strip_prefix(b"=>\t") {
            let m = match cols(rest).as_slice() {
                [p, v, s] => Module {
                    path: text(p),
                    version: text(v),
                    sum: text(s),
                    replace: None,
                },
                _ => return Err(malformed("replacement needs 3 columns")),
            };
            let target = match last {
                Last::Main => info.main.as_mut(),
                Last::Dep => info.deps.last_mut(),
                Last::None => None,
            };
            target
                .ok_or(malformed("replacement with no module"))?
                .replace = Some(Box::new(m));
            last = Last::None;
        } else if let Some(kv) = line.strip_prefix(b"build\t") {
            info.settings.push(setting(kv)?);
        }
    }
    Ok(info)
}

/// One `key=value` build setting; either side may be a Go quoted string.
fn setting(kv: &[u8]) -> Result<(String, String), GobinError> {
    let (key, raw_value) = match kv.first() {
        None => return Err(malformed("build line missing '='")),
        Some(b'=') => return Err(malformed("build line with missing key")),
        Some(b'"' | b'`') => {
            let n = quoted_prefix_len(kv).ok_or(malformed("invalid quoted key"))?;
            let (raw_key, rest) = kv.split_at(n);
            let rest = rest
                .strip_prefix(b"=")
                .ok_or(malformed("missing '=' after quoted key"))?;
            (
                unquote(raw_key).ok_or(malformed("invalid quoted key"))?,
                rest,
            )
        }
        Some(_) => {
            let eq = kv
                .iter()
                .position(|&b| b == b'=')
                .ok_or(malformed("build line missing '='"))?;
            let (k, rest) = kv.split_at(eq);
            (k.to_vec(), rest.get(1..).unwrap_or_default())
        }
    };
    let value = match raw_value.first() {
        Some(b'"' | b'`') => unquote(raw_value).ok_or(malformed("invalid quoted value"))?,
        _ => raw_value.to_vec(),
    };
    Ok((text(&key), text(&value)))
}

/// Length of the Go quoted string literal at the start of `s`.
fn quoted_prefix_len(s: &[u8]) -> Option<usize> {
    let q = *s.first()?;
    let mut i = 1;
    while let Some(&c) = s.get(i) {
        if c == q {
            return Some(i + 1);
        }
        if c == b'\\' && q == b'"' {
            i += 1;
        }
        if c == b'\n' && q == b'"' {
            return None;
        }
        i += 1;
    }
    None
}

fn hex(c: u8) -> Option<u32> {
    (c as char).to_digit(16)
}

/// Go's `strconv.Unquote` for double-quoted and back-quoted strings (the forms
/// `debug.BuildInfo.String` writes). Returns raw bytes: `\x` escapes may form non-UTF-8.
pub(crate) fn unquote(s: &[u8]) -> Option<Vec<u8>> {
    let (&q, rest) = s.split_first()?;
    let inner = rest.strip_suffix(&[q])?;
    if q == b'`' {
        if inner.contains(&b'`') {
            return None;
        }
        return Some(inner.iter().copied().filter(|&c| c != b'\r').collect());
    }
    if q != b'"' {
        return None;
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while let Some(&c) = inner.get(i) {
        i += 1;
        match c {
            b'"' | b'\n' => return None,
            b'\\' => {
                let e = *inner.get(i)?;
                i += 1;
                match e {
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(11),
                    b'\\' => out.push(b'\\'),
                    b'"' => out.push(b'"'),
                    b'x' => {
                        let v = hex(*inner.get(i)?)? * 16 + hex(*inner.get(i + 1)?)?;
                        out.push(v as u8);
                        i += 2;
                    }
                    b'0'..=b'7' => {
                        let mut v = u32::from(e - b'0');
                        for _ in 0..2 {
                            let d = *inner.get(i)?;
                            if !(b'0'..=b'7').contains(&d) {
                                return None;
                            }
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        out.push(u8::try_from(v).ok()?);
                    }
                    b'u' | b'U' => {
                        let n = if e == b'u' { 4 } else { 8 };
                        let mut v = 0u32;
                        for _ in 0..n {
                            v = v.checked_mul(16)?.checked_add(hex(*inner.get(i)?)?)?;
                            i += 1;
                        }
                        let ch = char::from_u32(v)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => return None,
                }
            }
            _ => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn unquote_handles_go_escapes() {
        assert_eq!(unquote(br#""-s -w""#).unwrap(), b"-s -w");
        assert_eq!(
            unquote(br#""a\"b\\c\x41\101\u00e9""#).unwrap(),
            "a\"b\\cAA\u{e9}".as_bytes()
        );
        assert_eq!(unquote(b"`raw\\n`").unwrap(), b"raw\\n");
        assert!(unquote(br#""unterminated"#).is_none());
        assert!(unquote(br#""bad\q""#).is_none());
        assert!(unquote(br#""\400""#).is_none());
    }

    #[test]
    fn quoted_keys_and_values() {
        let (k, v) = setting(br#""a=b"="x y""#).unwrap();
        assert_eq!((k.as_str(), v.as_str()), ("a=b", "x y"));
        assert!(setting(b"=x").is_err());
        assert!(setting(b"novalue").is_err());
    }
}
