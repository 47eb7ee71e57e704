//! tracefs: make sure it is mounted, and read tracepoint record layouts from it.
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::probes::ProbeError;

/// Where aya looks for tracefs (its tracepoint attach reads event ids there, and only there).
const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Where gocpu mounts tracefs when no usable mount exists.
pub const MOUNT_POINT: &str = "/sys/kernel/tracing";

/// A usable tracefs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tracefs {
    /// Its mount point (with an `events` directory).
    pub path: PathBuf,
    /// Whether gocpu mounted it (none was mounted where aya looks).
    pub mounted_by_gocpu: bool,
}

/// Why no tracefs is usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TracefsError {
    /// The kernel was built without tracefs (CONFIG_TRACING).
    #[error("this kernel has no tracefs (it is not in /proc/filesystems)")]
    NotInKernel,
    /// No mount where aya looks, and mounting one failed.
    #[error(
        "no tracefs at {candidates}{elsewhere}, and mounting one at {MOUNT_POINT} failed: {reason}"
    )]
    MountFailed {
        /// The kernel's answer to mount(2).
        reason: String,
        /// Its errno.
        errno: Option<i32>,
        /// Other tracefs mount points (aya cannot use them), as ` (mounted at ...)` or empty.
        elsewhere: String,
        /// The paths looked at, joined.
        candidates: String,
    },
}

impl TracefsError {
    /// Whether mounting failed for want of privilege (CAP_SYS_ADMIN).
    pub fn is_permission(&self) -> bool {
        matches!(self, Self::MountFailed { errno: Some(e), .. } if *e == libc::EPERM || *e == libc::EACCES)
    }
}

/// The mount points of every tracefs in `/proc/<pid>/mountinfo` text.
pub fn tracefs_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            if right.split_whitespace().next()? != "tracefs" {
                return None;
            }
            let mount_point = left.split_whitespace().nth(4)?;
            Some(PathBuf::from(unescape_octal(mount_point)))
        })
        .collect()
}

/// Undoes mountinfo's `\ooo` escapes (space, tab, newline, backslash).
fn unescape_octal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Makes tracefs available and says where: an existing mount where aya looks is used as is;
/// otherwise tracefs is mounted at [`MOUNT_POINT`] in the daemon's mount namespace (a host has
/// the directory in sysfs; this is what systemd's `sys-kernel-tracing.mount` does at boot).
pub fn prepare() -> Result<Tracefs, TracefsError> {
    for dir in CANDIDATES {
        // Looking inside also triggers debugfs's automount of tracefs at debug/tracing.
        if Path::new(dir).join("events").is_dir() {
            return Ok(Tracefs {
                path: PathBuf::from(dir),
                mounted_by_gocpu: false,
            });
        }
    }
    let in_kernel = std::fs::read_to_string("/proc/filesystems")
        .map(|f| {
            f.lines()
                .any(|l| l.split_whitespace().last() == Some("tracefs"))
        })
        .unwrap_or(true);
    if !in_kernel {
        return Err(TracefsError::NotInKernel);
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: all pointers are valid NUL-terminated strings; data may be null for tracefs.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        let reason = match e.raw_os_error() {
            Some(libc::EPERM) => format!("{e} (mounting needs CAP_SYS_ADMIN)"),
            Some(libc::ENOENT) => format!("{e} ({MOUNT_POINT} does not exist: no sysfs there?)"),
            _ => e.to_string(),
        };
        let others: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .map(|m| tracefs_mounts(&m))
            .unwrap_or_default()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        return Err(TracefsError::MountFailed {
            reason,
            errno: e.raw_os_error(),
            elsewhere: if others.is_empty() {
                String::new()
            } else {
                format!(
                    " (tracefs is mounted at {}, where aya does not look)",
                    others.join(", ")
                )
            },
            candidates: CANDIDATES.join(" or "),
        });
    }
    tracing::info!(path = MOUNT_POINT, "tracefs was not mounted; mounted it");
    Ok(Tracefs {
        path: PathBuf::from(MOUNT_POINT),
        mounted_by_gocpu: true,
    })
}

/// Byte offset of `field` in the record of tracepoint `category:event`, from its format file;
/// `Ok(None)` when the event has no such field (older kernels).
pub fn field_offset(
    tracefs: &Path,
    category: &str,
    event: &str,
    field: &str,
) -> Result<Option<u32>, ProbeError> {
    let path = tracefs
        .join("events")
        .join(category)
        .join(event)
        .join("format");
    let text = std::fs::read_to_string(&path).map_err(|e| ProbeError::Tracefs {
        reason: format!(
            "cannot read {}: {e} (tracepoint {category}:{event} missing?)",
            path.display()
        ),
    })?;
    Ok(parse_field_offset(&text, field))
}

/// Finds `field`'s offset in a tracepoint format description.
pub fn parse_field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let line = line.trim();
        let decl = line.strip_prefix("field:")?.split(';').next()?;
        // The declaration ends with the field name, possibly followed by an array suffix.
        let name = decl.split_whitespace().last()?.split('[').next()?;
        if name != field {
            return None;
        }
        line.split(';')
            .find_map(|part| part.trim().strip_prefix("offset:"))
            .and_then(|v| v.trim().parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWITCH: &str = "name: sched_switch\nID: 372\nformat:\n\
        \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
        \tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
        \tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n\
        \tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;\n";

    #[test]
    fn tracefs_mounts_are_read_from_mountinfo() {
        let text = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
            44 23 0:12 / /sys/kernel/tracing rw,nosuid,nodev,noexec,relatime shared:16 - tracefs tracefs rw\n\
            45 31 0:12 / /srv/my\\040trace rw,relatime - tracefs nodev rw\n\
            46 23 0:7 / /sys/kernel/debug rw,relatime - debugfs debugfs rw\n\
            garbage line\n";
        assert_eq!(
            tracefs_mounts(text),
            vec![
                PathBuf::from("/sys/kernel/tracing"),
                PathBuf::from("/srv/my trace")
            ]
        );
        assert!(tracefs_mounts("").is_empty());
        assert_eq!(unescape_octal("a\\011b\\134c\\x"), "a\tb\\c\\x");
    }

    #[test]
    fn finds_offsets_including_arrays_and_misses() {
        assert_eq!(parse_field_offset(SWITCH, "prev_state"), Some(32));
        assert_eq!(parse_field_offset(SWITCH, "prev_comm"), Some(8));
        assert_eq!(parse_field_offset(SWITCH, "prev"), None);
        assert_eq!(parse_field_offset(SWITCH, "group_dead"), None);
        assert_eq!(parse_field_offset("garbage\nfield:;", "x"), None);
    }
}
