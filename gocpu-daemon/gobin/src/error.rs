//! Errors of gocpu-gobin. Each variant has a stable [`GobinError::kind`] usable as a metric label.
use thiserror::Error;

use crate::source::SourceError;

/// Why a binary could not be understood.
#[derive(Debug, Error)]
pub enum GobinError {
    /// Reading the bytes failed (I/O error, or the file shrank while being read).
    #[error("read failed: {0}")]
    Source(#[from] SourceError),
    /// Opening the file failed.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The path given.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes do not start with an ELF header.
    #[error("not an ELF file")]
    NotElf,
    /// An ELF file of a kind this crate does not read (class, byte order or version).
    #[error("unsupported ELF file: {what}")]
    UnsupportedElf {
        /// What is unsupported.
        what: &'static str,
    },
    /// The ELF headers are inconsistent or out of bounds.
    #[error("malformed ELF: {what}")]
    MalformedElf {
        /// Which structure is malformed.
        what: &'static str,
    },
    /// A valid ELF file that shows no sign of being a Go program.
    #[error("not a Go binary: {reason}")]
    NotGo {
        /// What was looked for and not found.
        reason: &'static str,
    },
    /// The `.gopclntab` header or tables are inconsistent.
    #[error("malformed .gopclntab: {what}")]
    MalformedPclntab {
        /// Which part is malformed.
        what: &'static str,
    },
    /// The `.go.buildinfo` blob is inconsistent.
    #[error("malformed .go.buildinfo: {what}")]
    MalformedBuildInfo {
        /// Which part is malformed.
        what: &'static str,
    },
    /// A structure is larger than this crate accepts from untrusted input.
    #[error("{what} too large: {size} (limit {limit})")]
    TooLarge {
        /// Which structure.
        what: &'static str,
        /// Its declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A virtual address is not backed by file bytes in any PT_LOAD segment.
    #[error("address {vaddr:#x} (+{len}) is not mapped from the file")]
    Unmapped {
        /// The address asked for.
        vaddr: u64,
        /// The length asked for.
        len: u64,
    },
}

impl GobinError {
    /// A stable, low-cardinality name of the variant (for metric labels and logs).
    pub fn kind(&self) -> &'static str {
        match self {
            GobinError::Source(_) => "read_failed",
            GobinError::Open { .. } => "open_failed",
            GobinError::NotElf => "not_elf",
            GobinError::UnsupportedElf { .. } => "unsupported_elf",
            GobinError::MalformedElf { .. } => "malformed_elf",
            GobinError::NotGo { .. } => "not_go",
            GobinError::MalformedPclntab { .. } => "malformed_pclntab",
            GobinError::MalformedBuildInfo { .. } => "malformed_buildinfo",
            GobinError::TooLarge { .. } => "too_large",
            GobinError::Unmapped { .. } => "unmapped",
        }
    }
}

/// Why a data symbol's address is not known.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Unavailable {
    /// The binary has no `.symtab`, `.gopclntab` lists functions only, and this symbol has no
    /// code anchor (only `runtime.allgs` and `runtime.allglen` do).
    #[error("binary is stripped (no .symtab); .gopclntab holds no data symbols")]
    Stripped,
    /// Recovering the symbol from the code that uses it failed (see crate::anchors).
    #[error("no .symtab, and the code anchor failed: {0}")]
    CodeAnchor(&'static str),
    /// `.symtab` exists but has no data object of this name.
    #[error("no data symbol named {0} in .symtab")]
    NotFound(String),
    /// `.symtab` names the symbol, but its address lies outside the module's data and bss
    /// ranges recorded in moduledata (a forged or inconsistent symbol table).
    #[error("symbol {name} at {addr:#x} lies outside the module's data/bss ranges")]
    OutsideData {
        /// The symbol.
        name: String,
        /// The address .symtab gave.
        addr: u64,
    },
    /// `.symtab` could not be read (truncated, malformed or too large).
    #[error("cannot read .symtab: {0}")]
    SymtabUnreadable(&'static str),
}
