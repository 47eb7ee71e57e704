//! The load bias of a process's executable: run-time address minus link-time address.
//!
//! Zero for a fixed-address executable (ET_EXEC); for a PIE, where the kernel placed the
//! segments. Every mapping of the executable file must agree on it: a mapping whose file offset
//! starts a PT_LOAD segment's page gives `start - page(vaddr)`.
use gocpu_gobin::GoBinary;
use thiserror::Error;

use crate::discovery::maps::{Mapping, parse_maps};

/// Page mask of the x86-64 base page size (segments are mapped from page boundaries).
const PAGE_MASK: u64 = 0xfff;

/// Why the load bias is unknown.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BiasError {
    /// No mapping of the executable's file that starts a PT_LOAD segment.
    #[error("no mapping of the executable (inode {inode}) matches its PT_LOAD segments")]
    NotMapped {
        /// The executable's inode.
        inode: u64,
    },
    /// Two mappings of the executable imply different biases.
    #[error("mappings of the executable disagree on the load bias ({a:#x} vs {b:#x})")]
    Inconsistent {
        /// One bias.
        a: u64,
        /// Another.
        b: u64,
    },
    /// `/proc/<pid>/maps` or `/proc/<pid>/exe` could not be read.
    #[error("cannot read {path}: {kind:?}")]
    Procfs {
        /// The file.
        path: String,
        /// The I/O error kind.
        kind: std::io::ErrorKind,
    },
}

/// The load bias of `bin`, mapped in a process from the file with inode `exe_inode`.
pub fn load_bias(bin: &GoBinary, exe_inode: u64, maps: &[Mapping]) -> Result<u64, BiasError> {
    let mut bias: Option<u64> = None;
    for m in maps
        .iter()
        .filter(|m| m.inode == exe_inode && exe_inode != 0)
    {
        for seg in bin.load_segments() {
            if seg.offset & !PAGE_MASK != m.offset {
                continue;
            }
            let b = m.start.wrapping_sub(seg.vaddr & !PAGE_MASK);
            match bias {
                Some(a) if a != b => return Err(BiasError::Inconsistent { a, b }),
                _ => bias = Some(b),
            }
        }
    }
    bias.ok_or(BiasError::NotMapped { inode: exe_inode })
}

/// [`load_bias`] of process `pid` from `/proc/<pid>/maps` and the inode of `/proc/<pid>/exe`.
pub fn process_load_bias(pid: u32, bin: &GoBinary) -> Result<u64, BiasError> {
    use std::os::unix::fs::MetadataExt;
    let procfs = |path: String| {
        move |e: std::io::Error| BiasError::Procfs {
            path: path.clone(),
            kind: e.kind(),
        }
    };
    let exe = format!("/proc/{pid}/exe");
    let inode = std::fs::metadata(&exe).map_err(procfs(exe))?.ino();
    let maps_path = format!("/proc/{pid}/maps");
    let text = std::fs::read_to_string(&maps_path).map_err(procfs(maps_path))?;
    load_bias(bin, inode, &parse_maps(&text))
}
