//! Go version strings ("go1.25.5", "go1.27rc1", "devel go1.27-abcdef Tue ...").

/// A Go release number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoVersion {
    /// Major version (1).
    pub major: u32,
    /// Minor version (25 for go1.25.5).
    pub minor: u32,
    /// Patch version (5 for go1.25.5; 0 for release candidates and development builds).
    pub patch: u32,
}

impl GoVersion {
    /// Parses the version Go records in build info; `None` when it has no `go1.N` part.
    pub fn parse(s: &str) -> Option<GoVersion> {
        let s = s.trim();
        let s = s.strip_prefix("devel ").unwrap_or(s);
        let rest = s.strip_prefix("go")?;
        let mut nums = rest.split(|c: char| !c.is_ascii_digit());
        let major = nums.next()?.parse().ok()?;
        let after_major = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        let minor_part = after_major.strip_prefix('.')?;
        let minor_digits: String = minor_part
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let minor = minor_digits.parse().ok()?;
        let after_minor = minor_part.get(minor_digits.len()..).unwrap_or_default();
        let patch = after_minor
            .strip_prefix('.')
            .map(|p| {
                p.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        Some(GoVersion {
            major,
            minor,
            patch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::GoVersion;

    fn v(major: u32, minor: u32, patch: u32) -> Option<GoVersion> {
        Some(GoVersion {
            major,
            minor,
            patch,
        })
    }

    #[test]
    fn parses_release_rc_and_devel_forms() {
        assert_eq!(GoVersion::parse("go1.25.5"), v(1, 25, 5));
        assert_eq!(GoVersion::parse("go1.19"), v(1, 19, 0));
        assert_eq!(GoVersion::parse("go1.27rc1"), v(1, 27, 0));
        assert_eq!(
            GoVersion::parse("devel go1.27-abcdef Tue Jan 1"),
            v(1, 27, 0)
        );
        assert_eq!(GoVersion::parse("go1.20.14 X:boringcrypto"), v(1, 20, 14));
        assert_eq!(GoVersion::parse("gccgo"), None);
        assert_eq!(GoVersion::parse("go"), None);
    }
}
