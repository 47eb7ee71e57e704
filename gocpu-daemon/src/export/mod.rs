//! Exports of a process's sampled profile into the formats users' tools read: gzipped pprof
//! protobuf (`go tool pprof`) and an interactive flame graph SVG coloured by class.
pub mod flamegraph;
pub mod pprof;
