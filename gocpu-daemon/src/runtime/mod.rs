//! A Go process's runtime state, read from outside while it runs: the goroutine census (by
//! status, wait reason, start function), scheduler gauges (what `GODEBUG=schedtrace` prints)
//! and the list of Ms with their thread ids.
//!
//! Layers, bottom up:
//! - [`memory`]: [`ProcessMemory`], the only I/O (`process_vm_readv`, no ptrace: the target
//!   never stops). Tests substitute fake memory.
//! - [`layout`]: [`RuntimeLayout`], computed once per binary from gocpu-gobin: struct offsets
//!   (DWARF or the generated table), runtime variable addresses (`.symtab`, or code anchors in
//!   stripped binaries), status / wait-reason names of the release, system-goroutine entries.
//! - [`bias`]: the load bias of a PIE (layout addresses are link-time).
//! - Decoders: [`census`], [`sched`], [`ms`]; [`growth`] turns censuses into a leak signal.
//!
//! Everything read is validated (plausible pointers, bounded lengths, `allp[i].id == i`, known
//! statuses) and a value that cannot be read is an error with its reason, never a zero.
//!
//! ```text
//! let layout = RuntimeLayout::new(&binary)?;            // once per binary
//! let bias = process_load_bias(pid, &binary)?;          // once per process
//! let mem = ProcessVm::new(pid)?;
//! let census = read_census(&mem, &layout, bias)?;       // each poll
//! let gauges = read_sched(&mem, &layout, bias)?;
//! let ms = read_ms(&mem, &layout, bias)?;
//! ```
pub mod bias;
pub mod census;
pub mod error;
pub mod growth;
pub mod layout;
pub mod memory;
pub mod ms;
mod record;
pub mod sched;

pub use bias::{BiasError, load_bias, process_load_bias};
pub use census::{Census, NamedCensus, read_census};
pub use error::{ReadError, Unavailable};
pub use growth::{Growth, GrowthWindow};
pub use layout::{LayoutError, RuntimeLayout, Var};
pub use memory::{MemError, ProcessMemory, ProcessVm};
pub use ms::{MInfo, read_ms};
pub use sched::{SchedGauges, read_sched, read_switches};
