//! Why runtime state is unavailable or could not be read.
use gocpu_gobin::offsets::{Unsupported, symbols::SymbolError};
use thiserror::Error;

use super::memory::MemError;

/// Why a value cannot be read at all for this binary (a property of the binary, not of the
/// moment): reported as unavailable with this reason, never as zero.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// The address of a runtime variable is unknown.
    #[error("address of {symbol} unknown: {reason}")]
    Symbol {
        /// The variable, e.g. "runtime.sched".
        symbol: &'static str,
        /// Why.
        reason: SymbolError,
    },
    /// No status / wait-reason names for this Go version (counts by raw value remain).
    #[error("no goroutine status or wait-reason names: {0}")]
    Names(Unsupported),
}

impl Unavailable {
    /// A stable, low-cardinality name (for metric labels).
    pub fn kind(&self) -> &'static str {
        match self {
            Unavailable::Symbol { .. } => "symbol",
            Unavailable::Names(_) => "names",
        }
    }
}

/// Why a read of runtime state failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The value is unavailable for this binary.
    #[error("unavailable: {0}")]
    Unavailable(#[from] Unavailable),
    /// Reading the target's memory failed.
    #[error("reading {what}: {source}")]
    Memory {
        /// What was being read.
        what: &'static str,
        /// The failure.
        source: MemError,
    },
    /// What was read does not look like the runtime's data: wrong offsets, garbage, or a
    /// structure changing under the reader.
    #[error("implausible {what}: {value:#x}")]
    Implausible {
        /// Which value.
        what: &'static str,
        /// The value read.
        value: u64,
    },
    /// A list or array longer than the reader accepts.
    #[error("{what} has more than {limit} entries")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// The bound.
        limit: u64,
    },
    /// A linked list loops back on itself.
    #[error("{what} loops")]
    Cycle {
        /// Which list.
        what: &'static str,
    },
}

impl ReadError {
    /// A stable, low-cardinality name (for metric labels).
    pub fn kind(&self) -> &'static str {
        match self {
            ReadError::Unavailable(u) => u.kind(),
            ReadError::Memory { source, .. } => source.kind(),
            ReadError::Implausible { .. } => "implausible",
            ReadError::TooMany { .. } => "too_many",
            ReadError::Cycle { .. } => "cycle",
        }
    }

    /// Whether the process as a whole is unreadable (gone or denied): nothing else will work.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ReadError::Memory { source, .. } if source.is_fatal())
    }

    pub(super) fn memory(what: &'static str) -> impl FnOnce(MemError) -> ReadError {
        move |source| ReadError::Memory { what, source }
    }
}
