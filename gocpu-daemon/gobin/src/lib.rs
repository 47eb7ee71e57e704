//! Go binary knowledge from bytes alone: identification, build info, `.gopclntab`, inline frames,
//! probe sites and struct offsets — for stripped binaries too.
//!
//! Pure: bytes in, facts out. No procfs, no global state; every input is treated as hostile
//! (bounded sizes, counts and allocations; no panics; no unchecked indexing). Files are read with
//! `pread` ([`ByteSource`]), never mapped, so a file truncated under the reader is an error, not
//! SIGBUS.
//!
//! Entry points:
//! - [`identify`]: cheap (ELF tables, notes, `.go.buildinfo`; a few KB read), for every exec.
//! - [`GoBinary`]: the full parse — function table ([`GoBinary::function`]), PC -> frames with
//!   inlining ([`GoBinary::symbolize`]), vaddr -> file offset ([`GoBinary::file_offset`]), data
//!   symbols, probe sites and struct offsets. Memory: the pclntab bytes, plus (before Go 1.26,
//!   from the first inlined lookup on) the `go:func.*` funcdata when it is no larger: under 2x
//!   the pclntab in all.
//! - [`BinaryCache`]: parses shared by file identity.
//!
//! Layout: `elf` (bounded ELF tables), `buildid` and `buildinfo`/`modinfo` (identification),
//! `pclntab/` (the four formats, PC-value tables, inline trees, magic scan), `moduledata` (text
//! start and `go:func.*` without symbols), `funcdata` (inline tree bytes), `symtab` and `anchors`
//! (data symbols with and without `.symtab`), `glue` (bridges to `sites`, `dwarf`, `offsets`),
//! `fuzzing` (cargo-fuzz entry points).

pub mod dwarf;
pub mod offsets;
pub mod sites;

mod anchors;
mod binary;
mod buildid;
mod buildinfo;
mod bytes;
mod cache;
mod elf;
mod error;
mod funcdata;
#[doc(hidden)]
pub mod fuzzing;
mod glue;
mod identify;
mod limits;
mod modinfo;
mod moduledata;
pub mod pclntab;
mod source;
mod symtab;
mod version;

pub use binary::{BinaryIdentity, Frame, FrameRef, Function, GoBinary, TextStart};
pub use buildid::BuildIds;
pub use buildinfo::{BuildInfo, Encoding};
pub use bytes::Endian;
pub use cache::{BinaryCache, FileCache, FileKey};
pub use elf::{Elf, Section, Segment};
pub use error::{GobinError, Unavailable};
pub use glue::{OffsetsUnavailable, ProbeSitesError};
pub use identify::{Evidence, Identification, identify};
pub use modinfo::Module;
pub use moduledata::ModuleData;
pub use pclntab::{Format, Pclntab, scan::Found};
pub use source::{ByteSource, SourceError};
pub use version::GoVersion;
