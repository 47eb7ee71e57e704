//! `/proc/<pid>/maps`: which file backs which address range of a process.
use std::path::PathBuf;

/// One mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// Executable.
    pub exec: bool,
    /// Inode of the backing file (0 for anonymous mappings).
    pub inode: u64,
    /// Backing file or pseudo-name (`[heap]`, `[vdso]`), if any.
    pub path: Option<PathBuf>,
}

impl Mapping {
    /// Whether `addr` is inside.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// The mapped file's base name, for display (`libc.so.6`, `[vdso]`).
    pub fn object_name(&self) -> Option<String> {
        self.path
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
    }
}

/// Parses the contents of `/proc/<pid>/maps`; malformed lines are skipped.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mapping> {
    // "start-end perms offset dev inode   path" where path may contain spaces.
    let mut it = line.splitn(6, ' ');
    let range = it.next()?;
    let perms = it.next()?;
    let offset = u64::from_str_radix(it.next()?, 16).ok()?;
    let _dev = it.next()?;
    let inode = it.next()?.parse().ok()?;
    let path = it.next().map(str::trim).filter(|p| !p.is_empty());
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    if end <= start {
        return None;
    }
    Some(Mapping {
        start,
        end,
        offset,
        exec: perms.as_bytes().get(2) == Some(&b'x'),
        inode,
        path: path.map(PathBuf::from),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MAPS: &str = "\
00400000-0047b000 r-xp 00000000 fe:01 1234                               /usr/bin/my prog
0047b000-00500000 r--p 0007b000 fe:01 1234                               /usr/bin/my prog
c000000000-c004000000 rw-p 00000000 00:00 0 
7f00a0000000-7f00a0021000 r-xp 00028000 fe:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd1e9f3000-7ffd1e9f5000 r-xp 00000000 00:00 0                          [vdso]
garbage line
7000-6000 r-xp 00000000 00:00 0
";

    #[test]
    fn parses_paths_with_spaces_anonymous_and_pseudo_mappings() {
        let m = parse_maps(MAPS);
        assert_eq!(m.len(), 5);
        assert_eq!(
            m[0].path.as_deref(),
            Some(std::path::Path::new("/usr/bin/my prog"))
        );
        assert!(m[0].exec && !m[1].exec);
        assert_eq!(m[1].offset, 0x7b000);
        assert_eq!(m[2].path, None);
        assert_eq!(m[3].object_name().as_deref(), Some("libc.so.6"));
        assert_eq!(m[4].object_name().as_deref(), Some("[vdso]"));
        assert!(m[3].contains(0x7f00a0000000) && !m[3].contains(0x7f00a0021000));
    }
}
