//! The model: every Go process the daemon knows, with its counter history, plus the daemon's own
//! health counters. Fed by ingest; read by the API and /metrics.
pub mod analysis;
pub mod blocking;
pub mod detectors;
pub mod hotspots;
pub mod process;
pub mod profile;
pub mod report;
pub mod runtime_state;
pub mod threads;
pub mod window;

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicBool, AtomicU64},
    time::Instant,
};

use self::process::GoProcess;
use crate::{discovery::ProcKey, probes::syscalls::Estimated};

/// All known Go processes, by pid.
#[derive(Debug, Default)]
pub struct Model {
    procs: BTreeMap<u32, GoProcess>,
}

impl Model {
    /// Adds or replaces the process with `p.key.pid`.
    pub fn upsert(&mut self, p: GoProcess) {
        self.procs.insert(p.key.pid, p);
    }

    /// Removes `key` (only that incarnation of its pid); returns it.
    pub fn remove(&mut self, key: ProcKey) -> Option<GoProcess> {
        match self.procs.get(&key.pid) {
            Some(p) if p.key == key => self.procs.remove(&key.pid),
            _ => None,
        }
    }

    /// The process with `pid`.
    pub fn get(&self, pid: u32) -> Option<&GoProcess> {
        self.procs.get(&pid)
    }

    /// Every process, by pid.
    pub fn iter(&self) -> impl Iterator<Item = &GoProcess> {
        self.procs.values()
    }

    /// Every process, by pid, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut GoProcess> {
        self.procs.values_mut()
    }

    /// Keys of every process.
    pub fn keys(&self) -> Vec<ProcKey> {
        self.procs.values().map(|p| p.key).collect()
    }

    /// The process `key` (that incarnation of its pid), mutably.
    pub fn get_mut(&mut self, key: ProcKey) -> Option<&mut GoProcess> {
        self.procs.get_mut(&key.pid).filter(|p| p.key == key)
    }

    /// Records a counter sample for `key` taken at `at`.
    pub fn record(&mut self, key: ProcKey, at: Instant, counters: Estimated) {
        if let Some(p) = self.procs.get_mut(&key.pid).filter(|p| p.key == key) {
            p.window.push(at, counters.stats);
            p.syscalls_known_since = counters.syscalls_known_since;
        }
    }

    /// Number of processes.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }
}

/// The daemon's own counters, exported on /metrics.
#[derive(Debug, Default)]
pub struct DaemonStats {
    /// Set once the initial scan completed and the API may be trusted.
    pub ready: AtomicBool,
    /// Processes inspected (scan + exec events).
    pub inspections: AtomicU64,
    /// Inspections that failed for a reason other than the process vanishing.
    pub inspection_errors: AtomicU64,
    /// Full procfs rescans done.
    pub rescans: AtomicU64,
    /// Processes that were found dead on rescan though no exit event came (lost events).
    pub missed_exits: AtomicU64,
}
