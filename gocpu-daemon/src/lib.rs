//! gocpu's node daemon. The modules follow the data flow (ARCHITECTURE.md walks it):
//! [`discovery`] finds Go processes and analyses their binaries, [`probes`] loads the eBPF side
//! and attaches uprobes per binary, [`ingest`] turns kernel events and counters into the
//! [`model`], and [`api`] / [`metrics`] serve it. [`daemon`] wires them; [`config`] configures.
pub mod api;
pub mod classify;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod export;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod preflight;
pub mod probes;
pub mod runtime;
pub mod symbolize;
