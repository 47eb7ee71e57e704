//! Parsing Go release versions as build info records them ("go1.25.5", "go1.19").

use super::Unsupported;

/// A Go release number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoRelease {
    /// Major version (1).
    pub major: u32,
    /// Minor version (25 in go1.25.5).
    pub minor: u32,
    /// Patch version (5 in go1.25.5; 0 for "go1.19").
    pub patch: u32,
}

/// Longest version string kept in an error (build info is attacker-controlled).
const MAX_KEPT: usize = 64;

/// `s` cut to at most [`MAX_KEPT`] bytes on a character boundary.
pub(super) fn clip(s: &str) -> String {
    let mut end = s.len().min(MAX_KEPT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_string()
}

/// A generated table row, one per Go release, as the bracket rule sees it.
pub(super) trait ReleaseRow {
    /// (major, minor, patch) of the release the row was generated from.
    fn release(&self) -> (u32, u32, u32);
    /// The toolchain's version string ("go1.25.5").
    fn generated_from(&self) -> &'static str;
}

/// The row serving `go_version` from `rows` (sorted by release): its own release's row, or the
/// row below it when the rows below and above it in its series are `same` (the row above is
/// then returned too, as the bracket's evidence). `differ` says how they differ otherwise.
pub(super) fn bracket<'a, T: ReleaseRow>(
    rows: &'a [T],
    go_version: &str,
    same: impl Fn(&T, &T) -> bool,
    differ: &'static str,
) -> Result<(&'a T, Option<&'a T>), Unsupported> {
    let r = parse_release(go_version)?;
    let want = (r.major, r.minor, r.patch);
    let series: Vec<&'a T> = rows
        .iter()
        .filter(|row| (row.release().0, row.release().1) == (r.major, r.minor))
        .collect();
    if series.is_empty() {
        let mut covered: Vec<String> = rows
            .iter()
            .map(|row| format!("{}.{}", row.release().0, row.release().1))
            .collect();
        covered.dedup();
        return Err(Unsupported::UnknownSeries {
            version: clip(go_version),
            major: r.major,
            minor: r.minor,
            covered: covered.join(", "),
        });
    }
    if let Some(row) = series.iter().find(|row| row.release() == want) {
        return Ok((row, None));
    }
    let below = series.iter().rev().find(|row| row.release() < want);
    let above = series.iter().find(|row| row.release() > want);
    let unverified = |why| Unsupported::UnverifiedPatch {
        version: clip(go_version),
        why,
        known: series
            .iter()
            .map(|row| row.generated_from())
            .collect::<Vec<_>>()
            .join(", "),
    };
    match (below, above) {
        (Some(lo), Some(hi)) if same(lo, hi) => Ok((lo, Some(hi))),
        (Some(_), Some(_)) => Err(unverified(differ)),
        (None, _) => Err(unverified(
            "older than every generated release of its series",
        )),
        (_, None) => Err(unverified(
            "newer than every generated release of its series",
        )),
    }
}

fn number(s: &str) -> Option<u32> {
    // Go never writes leading zeros or signs; reject them rather than normalise.
    if s.is_empty() || s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// Parses a release version: `go<major>.<minor>` or `go<major>.<minor>.<patch>`, nothing after.
///
/// Pre-releases (`go1.21rc2`, `go1.22beta1`), development builds (`devel go1.26-abcdef`) and
/// anything after the number (` X:greenteagc`, `-bigcorp`) are [`Unsupported`].
pub fn parse_release(version: &str) -> Result<GoRelease, Unsupported> {
    let kept = || clip(version);
    if version.starts_with("devel") {
        return Err(Unsupported::Devel { version: kept() });
    }
    let Some(rest) = version.strip_prefix("go") else {
        return Err(Unsupported::Malformed { version: kept() });
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (num, suffix) = rest.split_at(num_end);
    let mut parts = num.split('.');
    let (Some(major), Some(minor)) = (parts.next().and_then(number), parts.next().and_then(number))
    else {
        return Err(Unsupported::Malformed { version: kept() });
    };
    let patch = match parts.next() {
        None => 0,
        Some(p) => number(p).ok_or_else(|| Unsupported::Malformed { version: kept() })?,
    };
    if parts.next().is_some() {
        return Err(Unsupported::Malformed { version: kept() });
    }
    if suffix.starts_with("rc") || suffix.starts_with("beta") {
        return Err(Unsupported::Prerelease { version: kept() });
    }
    if !suffix.is_empty() {
        return Err(Unsupported::Suffix {
            version: kept(),
            suffix: clip(suffix),
        });
    }
    Ok(GoRelease {
        major,
        minor,
        patch,
    })
}

#[cfg(test)]
mod tests {
    use super::{GoRelease, parse_release};
    use crate::offsets::Unsupported;

    #[test]
    fn releases() {
        let r = |major, minor, patch| GoRelease {
            major,
            minor,
            patch,
        };
        assert_eq!(parse_release("go1.25.5"), Ok(r(1, 25, 5)));
        assert_eq!(parse_release("go1.19"), Ok(r(1, 19, 0)));
        assert_eq!(parse_release("go1.21.0"), Ok(r(1, 21, 0)));
    }

    #[test]
    fn rejects() {
        let label = |v: &str| parse_release(v).map_err(|e| e.label());
        assert_eq!(label("go1.21rc2"), Err("prerelease"));
        assert_eq!(label("go1.22beta1"), Err("prerelease"));
        assert_eq!(label("devel go1.26-abcdef Tue"), Err("devel"));
        assert_eq!(label("go1.25.5 X:greenteagc"), Err("suffix"));
        assert_eq!(label("go1.25.5-bigcorp"), Err("suffix"));
        for bad in [
            "",
            "go",
            "go1",
            "go1.",
            "go1..3",
            "1.25.5",
            "go01.25",
            "go1.25.5.1",
        ] {
            assert!(
                matches!(parse_release(bad), Err(Unsupported::Malformed { .. })),
                "{bad:?} -> {:?}",
                parse_release(bad)
            );
        }
        let long = format!("go1.25.5 {}", "é".repeat(100));
        match parse_release(&long) {
            Err(Unsupported::Suffix { version, .. }) => assert!(version.len() <= 64),
            other => panic!("{other:?}"),
        }
    }
}
