//! Go binary knowledge from bytes alone: identification, build info, `.gopclntab`, inline frames,
//! probe sites and struct offsets — for stripped binaries too.
//!
//! Pure: bytes in, facts out. No procfs, no global state; every input is treated as hostile
//! (bounded sizes, counts and allocations; no panics; no unchecked indexing).

pub mod dwarf;
pub mod offsets;
pub mod sites;
