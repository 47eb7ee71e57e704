//! tracefs: make sure it is mounted, and read tracepoint record layouts from it.
use std::path::{Path, PathBuf};

use crate::probes::ProbeError;

const TRACEFS: &str = "/sys/kernel/tracing";
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// The tracefs mount point, mounting it at /sys/kernel/tracing when no mount is found
/// (idempotent: an existing mount is used as is).
pub fn ensure_mounted() -> Result<PathBuf, ProbeError> {
    for dir in [TRACEFS, DEBUGFS_TRACING] {
        if Path::new(dir).join("events").is_dir() {
            return Ok(PathBuf::from(dir));
        }
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: all pointers are valid NUL-terminated strings; data may be null for tracefs.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(ProbeError::Tracefs {
            reason: format!(
                "not mounted and mounting tracefs at {TRACEFS} failed: {} (kernel without CONFIG_TRACING, or not root?)",
                std::io::Error::last_os_error()
            ),
        });
    }
    Ok(PathBuf::from(TRACEFS))
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
    fn finds_offsets_including_arrays_and_misses() {
        assert_eq!(parse_field_offset(SWITCH, "prev_state"), Some(32));
        assert_eq!(parse_field_offset(SWITCH, "prev_comm"), Some(8));
        assert_eq!(parse_field_offset(SWITCH, "prev"), None);
        assert_eq!(parse_field_offset(SWITCH, "group_dead"), None);
        assert_eq!(parse_field_offset("garbage\nfield:;", "x"), None);
    }
}
