//! Upper bounds on what this crate accepts from an untrusted binary.
//!
//! Each bound is far above what real Go binaries need (the largest known Go programs are a few
//! hundred MB with ~1M functions) and keeps a hostile header from turning into a huge allocation
//! or an unbounded loop.

/// Program headers accepted (real binaries have about a dozen).
pub const MAX_SEGMENTS: u64 = 4096;
/// Section headers accepted.
pub const MAX_SECTIONS: u64 = 1 << 16;
/// Size of the section name string table.
pub const MAX_SHSTRTAB: u64 = 4 << 20;
/// Length of one section name.
pub const MAX_SECTION_NAME: usize = 512;
/// Size of one note section or PT_NOTE segment read for build IDs.
pub const MAX_NOTES: u64 = 1 << 20;
/// Length of a build ID kept (GNU ones are 20 bytes, Go ones about 80 characters).
pub const MAX_BUILD_ID: usize = 1024;
/// Size of `.gopclntab` (the Go toolchain's own 30-50 MB binaries have 5-20 MB).
pub const MAX_PCLNTAB: u64 = 1 << 30;
/// Number of functions in `.gopclntab`.
pub const MAX_FUNCS: u64 = 1 << 24;
/// Length of a function or file name.
pub const MAX_NAME: usize = 64 << 10;
/// Bytes searched for the `.go.buildinfo` magic when there is no section (as Go does).
pub const BUILDINFO_SCAN: u64 = 64 << 10;
/// Size of the Go version or module info string in `.go.buildinfo`.
pub const MAX_MODINFO: u64 = 16 << 20;
/// Lines of module info parsed (modules + settings).
pub const MAX_MODINFO_LINES: usize = 100_000;
/// Frames returned for one PC (Go's inliner stops far earlier).
pub const MAX_INLINE_DEPTH: usize = 256;
/// Bytes of writable segments scanned for moduledata.
pub const MAX_MODULEDATA_SCAN: u64 = 512 << 20;
/// Size of `.symtab` plus its string table read for data symbols.
pub const MAX_SYMTAB: u64 = 1 << 30;
/// Size of the funcdata region (`go:func.*`) kept in memory for inline trees.
pub const MAX_GOFUNC: u64 = 1 << 30;
/// Chunk size of bounded streaming reads.
pub const CHUNK: u64 = 1 << 20;
