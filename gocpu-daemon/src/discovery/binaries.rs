//! What the daemon knows about one binary file, computed once per file identity and cached.
//!
//! Analysis reads the file through `/proc/<pid>/exe` with `gocpu-gobin` (pure, bounded, no mmap)
//! and resolves the runtime functions the uprobes attach to, down to file offsets.
use std::{fs::File, sync::Arc};

use gocpu_gobin::{
    GoBinary,
    offsets::{OffsetsSource, StructOffsets},
    sites::UprobeHandling,
};

use serde::Serialize;

use crate::runtime::RuntimeLayout;

/// A Go runtime function gocpu attaches a uprobe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuntimeHook {
    /// `runtime.futex`.
    Futex,
    /// `runtime.usleep`.
    Usleep,
    /// `runtime.mcall`.
    Mcall,
    /// `runtime.cgocall`.
    Cgocall,
}

impl RuntimeHook {
    /// Every hook.
    pub const ALL: [RuntimeHook; 4] = [Self::Futex, Self::Usleep, Self::Mcall, Self::Cgocall];

    /// The function's name as `.gopclntab` spells it (assembly stubs without `.abi0`).
    pub fn function(self) -> &'static str {
        match self {
            Self::Futex => "runtime.futex",
            Self::Usleep => "runtime.usleep",
            Self::Mcall => "runtime.mcall",
            Self::Cgocall => "runtime.cgocall",
        }
    }

    /// The eBPF program attached at this function.
    pub fn program(self) -> &'static str {
        use gocpu_common::programs;
        match self {
            Self::Futex => programs::RUNTIME_FUTEX,
            Self::Usleep => programs::RUNTIME_USLEEP,
            Self::Mcall => programs::RUNTIME_MCALL,
            Self::Cgocall => programs::RUNTIME_CGOCALL,
        }
    }
}

/// Where a hook's uprobe goes in one binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSite {
    /// The hook.
    pub hook: RuntimeHook,
    /// Virtual address of the function's entry.
    pub entry: u64,
    /// Virtual address the probe is placed at: the cheapest instruction at which the arguments
    /// are still those of the call (often `push %rbp` after the stack check, emulated).
    pub vaddr: u64,
    /// File offset of `vaddr`: what the kernel attaches by.
    pub file_offset: u64,
    /// How the kernel handles a hit there (emulated hits cost a fraction of single-stepped ones).
    pub handling: UprobeHandling,
    /// Whether a call whose stack grows hits the site twice (site before the stack check).
    pub repeats_on_stack_growth: bool,
    /// RET instructions of the function (return sites, for probing returns without uretprobes).
    pub rets: usize,
}

/// Where struct offsets come from, or why there are none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OffsetsKnowledge {
    /// Known, with their source.
    Known {
        /// The offsets.
        offsets: Box<StructOffsets>,
        /// "dwarf", or "table:<release>".
        source: String,
    },
    /// Unknown: the reason (DWARF and table both).
    Unavailable(String),
}

/// Which Go binary this is (reported as is by the API).
#[derive(Clone, Debug, Serialize)]
pub struct BinaryIdentity {
    /// Go version from build info, e.g. "go1.25.5".
    pub go_version: Option<String>,
    /// No `.symtab`.
    pub stripped: bool,
    /// Has DWARF sections.
    pub has_dwarf: bool,
    /// Position-independent executable.
    pub pie: bool,
    /// GNU build ID (hex).
    pub gnu_build_id: Option<String>,
    /// Go build ID.
    pub go_build_id: Option<String>,
}

/// How `.gopclntab` was read (reported as is by the API).
#[derive(Clone, Debug, Serialize)]
pub struct PclntabFacts {
    /// Format (Go12, Go116, Go118, Go120).
    pub format: String,
    /// Found through its section header or by a magic scan.
    pub found: String,
    /// Where the text start came from (header, moduledata, symtab, .text).
    pub text_start: String,
}

/// What is known about a Go binary.
#[derive(Debug)]
pub struct GoFacts {
    /// Version, build IDs and build mode.
    pub identity: BinaryIdentity,
    /// Per hook: the site, or why it cannot be probed in this binary.
    pub sites: Vec<(RuntimeHook, Result<ProbeSite, String>)>,
    /// How `.gopclntab` was read.
    pub pclntab: PclntabFacts,
    /// Runtime struct offsets.
    pub offsets: OffsetsKnowledge,
    /// Where the runtime's state lives in memory (offsets, variables, names), or why unknown.
    pub runtime: Result<Arc<RuntimeLayout>, String>,
    /// The parsed binary, for symbolization.
    pub binary: Arc<GoBinary>,
}

/// The result of analysing one binary file.
#[derive(Debug)]
pub enum BinaryFacts {
    /// A Go binary.
    Go(Box<GoFacts>),
    /// Not a Go binary (the common case: most processes on a node).
    NotGo {
        /// Why it was not recognised.
        reason: String,
    },
    /// Looks like Go but could not be analysed (malformed, truncated, hostile).
    Unusable {
        /// The analysis error.
        reason: String,
    },
}

impl BinaryFacts {
    /// Analyses the binary open as `file`.
    pub fn analyse(file: File) -> BinaryFacts {
        use gocpu_gobin::GobinError;
        let binary = match GoBinary::parse(file) {
            Ok(b) => Arc::new(b),
            Err(
                e @ (GobinError::NotElf
                | GobinError::UnsupportedElf { .. }
                | GobinError::NotGo { .. }),
            ) => {
                return BinaryFacts::NotGo {
                    reason: e.to_string(),
                };
            }
            Err(e) => {
                return BinaryFacts::Unusable {
                    reason: e.to_string(),
                };
            }
        };
        let sites = RuntimeHook::ALL
            .iter()
            .map(|&hook| (hook, locate(&binary, hook)))
            .collect();
        BinaryFacts::Go(Box::new(GoFacts {
            identity: BinaryIdentity {
                go_version: binary.go_version().map(str::to_string),
                stripped: binary.stripped(),
                has_dwarf: binary.has_dwarf(),
                pie: binary.is_pie(),
                gnu_build_id: binary.gnu_build_id(),
                go_build_id: binary.go_build_id().map(str::to_string),
            },
            sites,
            pclntab: PclntabFacts {
                format: format!("{:?}", binary.pclntab_format()),
                found: format!("{:?}", binary.pclntab_found()),
                text_start: format!("{:?}", binary.text_start_source()),
            },
            offsets: match binary.struct_offsets() {
                Ok((offsets, source)) => OffsetsKnowledge::Known {
                    offsets: Box::new(offsets),
                    source: match source {
                        OffsetsSource::Dwarf => "dwarf".to_string(),
                        OffsetsSource::Table { generated_from, .. } => {
                            format!("table:go{}", generated_from.trim_start_matches("go"))
                        }
                    },
                },
                Err(e) => OffsetsKnowledge::Unavailable(e.to_string()),
            },
            runtime: RuntimeLayout::new(&binary)
                .map(Arc::new)
                .map_err(|e| e.to_string()),
            binary,
        }))
    }

    /// The Go facts, if this is a Go binary.
    pub fn go(&self) -> Option<&GoFacts> {
        match self {
            BinaryFacts::Go(g) => Some(g),
            _ => None,
        }
    }
}

fn locate(binary: &GoBinary, hook: RuntimeHook) -> Result<ProbeSite, String> {
    let name = hook.function();
    let f = binary
        .function(name)
        .ok_or_else(|| format!("{name} not found in .gopclntab or .symtab"))?;
    let sites = binary.probe_sites(name).map_err(|e| e.to_string())?;
    let entry = sites
        .entry
        .ok_or_else(|| format!("the kernel refuses a uprobe at {name}'s first instruction"))?;
    let vaddr = entry.vaddr;
    let file_offset = binary
        .file_offset(vaddr)
        .ok_or_else(|| format!("{name} at {vaddr:#x} is in no PT_LOAD segment"))?;
    Ok(ProbeSite {
        hook,
        entry: f.entry,
        vaddr,
        file_offset,
        handling: entry.handling,
        repeats_on_stack_growth: entry.semantics.repeats_on_stack_growth,
        rets: sites.rets.len(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn analysing_a_non_elf_file_says_not_go() {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, b"#!/bin/sh\necho hi\n").unwrap();
        assert!(matches!(BinaryFacts::analyse(f), BinaryFacts::NotGo { .. }));
    }
}
