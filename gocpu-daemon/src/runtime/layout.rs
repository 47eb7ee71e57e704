//! [`RuntimeLayout`]: what gocpu knows about one binary's runtime, computed once per binary.
use gocpu_gobin::{
    GoBinary, OffsetsUnavailable,
    offsets::{
        OffsetsSource, StructOffsets,
        names::{self, RuntimeNames},
        symbols::{Located, RuntimeSymbols, SymbolError, runtime_symbols},
    },
};
use thiserror::Error;

use super::error::Unavailable;

/// ELF machine number of x86-64.
const EM_X86_64: u16 = 62;

/// Most functions scanned for system-goroutine entry points (bounds a hostile pclntab).
const MAX_FUNCTIONS: usize = 2_000_000;

/// Why no runtime state can be read from processes running a binary.
#[derive(Debug, Error)]
pub enum LayoutError {
    /// Struct layouts and symbols are known for x86-64 only.
    #[error("runtime state is read on x86-64 only (e_machine {0})")]
    NotX86(u16),
    /// Neither the binary's DWARF nor the generated table gives struct offsets.
    #[error(transparent)]
    Offsets(#[from] OffsetsUnavailable),
}

impl LayoutError {
    /// A stable, low-cardinality name (for metric labels).
    pub fn kind(&self) -> &'static str {
        match self {
            LayoutError::NotX86(_) => "not_x86",
            LayoutError::Offsets(_) => "no_offsets",
        }
    }
}

/// A runtime variable the readers start from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    /// `runtime.allgs`.
    Allgs,
    /// `runtime.allglen`.
    Allglen,
    /// `runtime.allm`.
    Allm,
    /// `runtime.sched`.
    Sched,
    /// `runtime.gomaxprocs`.
    Gomaxprocs,
    /// `runtime.allp`.
    Allp,
}

impl Var {
    /// The runtime's name of the variable.
    pub fn name(self) -> &'static str {
        match self {
            Var::Allgs => "runtime.allgs",
            Var::Allglen => "runtime.allglen",
            Var::Allm => "runtime.allm",
            Var::Sched => "runtime.sched",
            Var::Gomaxprocs => "runtime.gomaxprocs",
            Var::Allp => "runtime.allp",
        }
    }

    const ALL: [Var; 6] = [
        Var::Allgs,
        Var::Allglen,
        Var::Allm,
        Var::Sched,
        Var::Gomaxprocs,
        Var::Allp,
    ];
}

/// Struct offsets, runtime variable addresses (link-time), status / wait-reason names and the
/// entry points of system goroutines of one binary.
#[derive(Clone, Debug)]
pub struct RuntimeLayout {
    go_version: Option<String>,
    offsets: StructOffsets,
    offsets_source: OffsetsSource,
    symbols: RuntimeSymbols,
    names: Result<&'static RuntimeNames, Unavailable>,
    system_starts: Vec<u64>,
}

/// Whether a goroutine started at function `name` is one the runtime calls a system goroutine
/// (`isSystemGoroutine`: `runtime.*` but `runtime.main`, coroutines and the wasm event
/// handler). Finalizer and cleanup goroutines count as system goroutines here even while they
/// run user code, which the runtime would count as user goroutines.
fn is_system_start(name: &str) -> bool {
    name.starts_with("runtime.")
        && !matches!(
            name,
            "runtime.main" | "runtime.corostart" | "runtime.handleAsyncEvent"
        )
}

impl RuntimeLayout {
    /// Everything needed to read runtime state from processes running `bin`. Fails only when
    /// nothing can be read (no struct offsets, not x86-64); a missing variable or name table
    /// makes the values that need it unavailable instead.
    pub fn new(bin: &GoBinary) -> Result<RuntimeLayout, LayoutError> {
        let machine = bin.elf().machine;
        if machine != EM_X86_64 {
            return Err(LayoutError::NotX86(machine));
        }
        let (offsets, offsets_source) = bin.struct_offsets()?;
        let symbols = runtime_symbols(bin, &offsets);
        let names = names::for_version(bin.go_version().unwrap_or("")).map_err(Unavailable::Names);
        let mut system_starts: Vec<u64> = bin
            .functions()
            .take(MAX_FUNCTIONS)
            .filter(|f| is_system_start(&f.name))
            .map(|f| f.entry)
            .collect();
        system_starts.sort_unstable();
        Ok(RuntimeLayout {
            go_version: bin.go_version().map(str::to_string),
            offsets,
            offsets_source,
            symbols,
            names,
            system_starts,
        })
    }

    /// A layout from known parts, for tests and tools that know a runtime's layout otherwise
    /// (`system_starts`: link-time entry points of system goroutines' functions).
    pub fn from_parts(
        offsets: StructOffsets,
        offsets_source: OffsetsSource,
        symbols: RuntimeSymbols,
        names: Result<&'static RuntimeNames, Unavailable>,
        mut system_starts: Vec<u64>,
    ) -> RuntimeLayout {
        system_starts.sort_unstable();
        RuntimeLayout {
            go_version: None,
            offsets,
            offsets_source,
            symbols,
            names,
            system_starts,
        }
    }

    /// Go version from build info.
    pub fn go_version(&self) -> Option<&str> {
        self.go_version.as_deref()
    }

    /// The struct offsets in use.
    pub fn offsets(&self) -> &StructOffsets {
        &self.offsets
    }

    /// Where the struct offsets came from (DWARF or the generated table).
    pub fn offsets_source(&self) -> &OffsetsSource {
        &self.offsets_source
    }

    /// The runtime variables and how each was found.
    pub fn symbols(&self) -> &RuntimeSymbols {
        &self.symbols
    }

    fn located(&self, var: Var) -> &Result<Located, SymbolError> {
        let s = &self.symbols;
        match var {
            Var::Allgs => &s.allgs,
            Var::Allglen => &s.allglen,
            Var::Allm => &s.allm,
            Var::Sched => &s.sched,
            Var::Gomaxprocs => &s.gomaxprocs,
            Var::Allp => &s.allp,
        }
    }

    /// The run-time address of `var` in a process whose load bias is `bias`.
    pub fn addr(&self, var: Var, bias: u64) -> Result<u64, Unavailable> {
        match self.located(var) {
            Ok(l) => Ok(l.vaddr.wrapping_add(bias)),
            Err(reason) => Err(Unavailable::Symbol {
                symbol: var.name(),
                reason: reason.clone(),
            }),
        }
    }

    /// Status and wait-reason names of the binary's Go release.
    pub fn names(&self) -> Result<&'static RuntimeNames, Unavailable> {
        self.names.clone()
    }

    /// Whether a goroutine whose `startpc` is `start_vaddr` (link-time) is a system goroutine.
    pub fn is_system_start(&self, start_vaddr: u64) -> bool {
        self.system_starts.binary_search(&start_vaddr).is_ok()
    }

    /// What is unavailable for this binary and why (empty when everything can be read).
    pub fn unavailable(&self) -> Vec<Unavailable> {
        let mut out: Vec<Unavailable> = Var::ALL
            .iter()
            .filter_map(|&v| self.addr(v, 0).err())
            .collect();
        if let Err(e) = &self.names {
            out.push(e.clone());
        }
        out
    }
}
