//! The load bias of a process's executable: run-time address minus link-time address.
//!
//! Zero for a fixed-address executable (ET_EXEC); for a PIE, where the kernel placed the
//! segments: a mapping of the executable's file at file offset `o` inside a PT_LOAD segment
//! says `bias = start - (page(vaddr) + o - page(offset))`.
use gocpu_gobin::{GoBinary, Segment};
use thiserror::Error;

use crate::discovery::maps::{Mapping, parse_maps};

/// Page mask of the x86-64 base page size (segments are mapped from page boundaries).
const PAGE_MASK: u64 = 0xfff;

/// Most mappings of the executable considered (a few per segment in practice).
const MAX_MAPPINGS: usize = 256;

/// Why the load bias is unknown.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BiasError {
    /// No mapping of the executable's file that starts a PT_LOAD segment.
    #[error("no mapping of the executable (inode {inode}) matches its PT_LOAD segments")]
    NotMapped {
        /// The executable's inode.
        inode: u64,
    },
    /// The mappings of the executable support two biases equally.
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

/// The link-time address of mapping `m`'s first byte if it maps part of segment `s`'s file
/// range (segments are mapped from the page holding their first byte).
fn linked(s: &Segment, m: &Mapping) -> Option<u64> {
    let first_page = s.offset & !PAGE_MASK;
    let file_end = s.offset.checked_add(s.filesz)?.max(first_page + 1);
    (m.offset >= first_page && m.offset < file_end)
        .then(|| (s.vaddr & !PAGE_MASK).checked_add(m.offset - first_page))
        .flatten()
}

/// The load bias of `bin`, mapped in a process from the file with inode `exe_inode`.
///
/// Every (mapping, segment) pair that could correspond proposes a bias; the one that explains
/// the most mappings of the file wins. Pages shared by two segments (common with external
/// linkers) propose a wrong bias too, which explains fewer mappings; a tie is an error.
pub fn load_bias(bin: &GoBinary, exe_inode: u64, maps: &[Mapping]) -> Result<u64, BiasError> {
    let exe: Vec<&Mapping> = maps
        .iter()
        .filter(|m| m.inode == exe_inode && exe_inode != 0)
        .take(MAX_MAPPINGS)
        .collect();
    let segments: Vec<&Segment> = bin.load_segments().collect();
    let mut candidates: Vec<u64> = exe
        .iter()
        .flat_map(|m| {
            segments
                .iter()
                .filter_map(|s| linked(s, m).map(|l| m.start.wrapping_sub(l)))
        })
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    let explained = |b: u64| {
        exe.iter()
            .filter(|m| {
                segments
                    .iter()
                    .any(|s| linked(s, m) == Some(m.start.wrapping_sub(b)))
            })
            .count()
    };
    let mut scored: Vec<(usize, u64)> = candidates.iter().map(|&b| (explained(b), b)).collect();
    scored.sort_unstable_by_key(|x| std::cmp::Reverse(x.0));
    match scored.as_slice() {
        [] => Err(BiasError::NotMapped { inode: exe_inode }),
        [(_, b)] => Ok(*b),
        [(n, a), (m, b), ..] if n == m => Err(BiasError::Inconsistent { a: *a, b: *b }),
        [(_, b), ..] => Ok(*b),
    }
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
