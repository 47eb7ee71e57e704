//! Kernel releases and what changed between them.
use std::{fmt, path::Path};

/// A kernel release, `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion(pub u32, pub u32, pub u32);

impl KernelVersion {
    /// Parses `/proc/sys/kernel/osrelease` (`6.18.44-fc-v657`, `5.4.0-150-generic`, `5.10`).
    pub fn parse(s: &str) -> Option<Self> {
        let mut nums = s.trim().split(['.', '-', '+', '_']).map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = nums.next().flatten()?;
        let minor = nums.next().flatten()?;
        let patch = nums.next().flatten().unwrap_or(0);
        Some(Self(major, minor, patch))
    }

    /// The running kernel's release, from `sys/kernel/osrelease` under `proc_root`.
    pub fn running(proc_root: &Path) -> Option<Self> {
        let s = std::fs::read_to_string(proc_root.join("sys/kernel/osrelease")).ok()?;
        Self::parse(&s)
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// 5.18 added `prev_state` to the raw `sched_switch` tracepoint; before it, the daemon attaches
/// `sched_switch_pre_5_18`.
pub const SWITCH_STATE_KERNEL: KernelVersion = KernelVersion(5, 18, 0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(
            KernelVersion::parse("6.18.44-fc-v657\n"),
            Some(KernelVersion(6, 18, 44))
        );
        assert_eq!(
            KernelVersion::parse("5.4.0-150-generic"),
            Some(KernelVersion(5, 4, 0))
        );
        assert_eq!(KernelVersion::parse("5.10"), Some(KernelVersion(5, 10, 0)));
        assert_eq!(
            KernelVersion::parse("4.18.0-553.el8_10.x86_64"),
            Some(KernelVersion(4, 18, 0))
        );
        assert_eq!(KernelVersion::parse("6.8.0+"), Some(KernelVersion(6, 8, 0)));
        assert_eq!(KernelVersion::parse("garbage"), None);
        assert_eq!(KernelVersion::parse(""), None);
        assert!(KernelVersion(5, 10, 200) < KernelVersion(5, 11, 0));
    }
}
