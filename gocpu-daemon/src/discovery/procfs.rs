//! Procfs access behind one small type, so that discovery is testable against fixture trees.
//!
//! [`ProcFs`] reads `<root>/<pid>/...`. In production the root is `/proc`; tests point it at a
//! directory laid out like procfs. Binaries are always reached through `<root>/<pid>/exe`, which
//! works for containers (another mount namespace) and for deleted files alike.
use std::{
    fs::File,
    path::{Path, PathBuf},
};

/// Errors reading procfs.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The process does not exist (anymore).
    #[error("process {pid} vanished")]
    Vanished {
        /// Its pid.
        pid: u32,
    },
    /// A procfs file exists but could not be read (permissions, I/O).
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A procfs file did not have the expected format.
    #[error("malformed {path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: &'static str,
    },
}

/// Fields of `/proc/<pid>/stat` the daemon uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// Process id.
    pub pid: u32,
    /// Command name (at most 15 bytes, may contain spaces and parentheses).
    pub comm: String,
    /// One-letter state (R, S, D, Z, ...).
    pub state: char,
    /// Kernel task flags (PF_*).
    pub flags: u64,
    /// User CPU time in clock ticks.
    pub utime: u64,
    /// System CPU time in clock ticks.
    pub stime: u64,
    /// Start time in clock ticks since boot: with the pid, the process's identity.
    pub starttime: u64,
}

/// PF_KTHREAD: kernel threads have no user binary.
const PF_KTHREAD: u64 = 0x0020_0000;

impl ProcStat {
    /// Whether this is a kernel thread.
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }

    /// Whether the process is a zombie or dead (exited, not yet reaped).
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the contents of `/proc/<pid>/stat`.
pub fn parse_stat(text: &str) -> Result<ProcStat, &'static str> {
    // comm is in parentheses and may itself contain ") ": the last ')' ends it.
    let open = text.find('(').ok_or("no '('")?;
    let close = text.rfind(')').ok_or("no ')'")?;
    if close < open {
        return Err("')' before '('");
    }
    let pid = text[..open]
        .trim()
        .parse()
        .map_err(|_| "pid is not a number")?;
    let comm = text[open + 1..close].to_string();
    // Fields after comm, 0-based: state=0, ppid=1, ..., flags=6, utime=11, stime=12, starttime=19.
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let num = |i: usize| -> Result<u64, &'static str> {
        rest.get(i)
            .ok_or("too few fields")?
            .parse()
            .map_err(|_| "field is not a number")
    };
    let state = rest
        .first()
        .and_then(|s| s.chars().next())
        .ok_or("no state")?;
    Ok(ProcStat {
        pid,
        comm,
        state,
        flags: num(6)?,
        utime: num(11)?,
        stime: num(12)?,
        starttime: num(19)?,
    })
}

/// A procfs tree.
#[derive(Clone, Debug)]
pub struct ProcFs {
    root: PathBuf,
}

impl ProcFs {
    /// Procfs mounted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The mount point.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn pid_path(&self, pid: u32, file: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(file)
    }

    fn map_err(&self, pid: u32, path: PathBuf, e: std::io::Error) -> ProcError {
        // ESRCH appears when the task died between opening its directory and reading a file.
        if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) {
            ProcError::Vanished { pid }
        } else {
            ProcError::Io { path, source: e }
        }
    }

    /// Every numeric entry of the root: the processes (thread-group leaders) alive now.
    pub fn pids(&self) -> Result<Vec<u32>, ProcError> {
        let dir = std::fs::read_dir(&self.root).map_err(|source| ProcError::Io {
            path: self.root.clone(),
            source,
        })?;
        let mut pids: Vec<u32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    /// `/proc/<pid>/stat`.
    pub fn stat(&self, pid: u32) -> Result<ProcStat, ProcError> {
        let path = self.pid_path(pid, "stat");
        let text =
            std::fs::read_to_string(&path).map_err(|e| self.map_err(pid, path.clone(), e))?;
        parse_stat(&text).map_err(|reason| ProcError::Malformed { path, reason })
    }

    /// The path through which the process's binary is opened and probed: `<root>/<pid>/exe`.
    pub fn exe_path(&self, pid: u32) -> PathBuf {
        self.pid_path(pid, "exe")
    }

    /// Where `exe` points, as the process sees it (for display; may end in " (deleted)").
    pub fn exe_link(&self, pid: u32) -> Result<PathBuf, ProcError> {
        let path = self.exe_path(pid);
        std::fs::read_link(&path).map_err(|e| self.map_err(pid, path, e))
    }

    /// Opens the process's binary through `exe`.
    pub fn open_exe(&self, pid: u32) -> Result<File, ProcError> {
        let path = self.exe_path(pid);
        File::open(&path).map_err(|e| self.map_err(pid, path, e))
    }

    /// The process's threads and their stat lines (threads that exit meanwhile are skipped).
    pub fn tasks(&self, pid: u32) -> Result<Vec<ProcStat>, ProcError> {
        let dir = self.root.join(pid.to_string()).join("task");
        let entries = std::fs::read_dir(&dir).map_err(|e| self.map_err(pid, dir.clone(), e))?;
        let mut out = Vec::new();
        for e in entries.flatten() {
            let path = e.path().join("stat");
            let stat = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| parse_stat(&text).ok());
            out.extend(stat);
        }
        out.sort_by_key(|s| s.pid);
        Ok(out)
    }

    /// The process's memory mappings.
    pub fn maps(&self, pid: u32) -> Result<Vec<super::maps::Mapping>, ProcError> {
        let path = self.pid_path(pid, "maps");
        let text = std::fs::read_to_string(&path).map_err(|e| self.map_err(pid, path, e))?;
        Ok(super::maps::parse_maps(&text))
    }

    /// Boot time (seconds since the epoch), from `<root>/stat`'s `btime`.
    pub fn boot_time(&self) -> Result<u64, ProcError> {
        let path = self.root.join("stat");
        let text = std::fs::read_to_string(&path).map_err(|source| ProcError::Io {
            path: path.clone(),
            source,
        })?;
        text.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or(ProcError::Malformed {
                path,
                reason: "no btime line",
            })
    }
}

/// What turns procfs tick counts into wall-clock times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// Boot time, seconds since the Unix epoch.
    pub boot_time: u64,
    /// Clock ticks per second.
    pub ticks_per_second: u64,
}

impl Clock {
    /// Reads the boot time from `procfs`.
    pub fn read(procfs: &ProcFs) -> Result<Clock, ProcError> {
        Ok(Clock {
            boot_time: procfs.boot_time()?,
            ticks_per_second: clock_ticks_per_second(),
        })
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of utime, stime and starttime.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as u64 } else { 100 }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const STAT: &str = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 200 0 0 0 \
                        150 37 0 0 20 0 9 0 123456 1000000 500 18446744073709551615";

    #[test]
    fn parses_stat_with_parentheses_in_comm() {
        let s = parse_stat(STAT).unwrap();
        assert_eq!(s.pid, 4242);
        assert_eq!(s.comm, "my (odd) prog");
        assert_eq!(s.state, 'S');
        assert_eq!(s.flags, 4194560);
        assert_eq!((s.utime, s.stime), (150, 37));
        assert_eq!(s.starttime, 123456);
        assert!(!s.is_kernel_thread());
    }

    #[test]
    fn rejects_truncated_and_garbage_stat() {
        assert!(parse_stat("").is_err());
        assert!(parse_stat("12 (x) S 1 2").is_err());
        assert!(parse_stat("x (y) S").is_err());
        assert!(parse_stat(") 12 (").is_err());
    }

    #[test]
    fn fixture_tree_reads_like_procfs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("77");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("stat"), STAT.replace("4242", "77")).unwrap();
        std::os::unix::fs::symlink("/bin/sh", p.join("exe")).unwrap();
        std::fs::create_dir(dir.path().join("self")).unwrap();
        std::fs::write(dir.path().join("stat"), "cpu 1 2 3\nbtime 1700000000\n").unwrap();
        let fs = ProcFs::new(dir.path());
        assert_eq!(fs.pids().unwrap(), vec![77]);
        assert_eq!(fs.stat(77).unwrap().starttime, 123456);
        assert_eq!(fs.exe_link(77).unwrap(), PathBuf::from("/bin/sh"));
        assert!(fs.open_exe(77).is_ok());
        assert_eq!(fs.boot_time().unwrap(), 1_700_000_000);
        assert!(matches!(fs.stat(78), Err(ProcError::Vanished { pid: 78 })));
    }
}
