//! The probe manager: which processes the kernel accounts, and the uprobes their binaries need.
//!
//! A process is tracked by inserting its tgid into `PROCS` (the kernel only ever updates existing
//! entries) and by acquiring its binary's uprobes. Reads sum the per-CPU values.
use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use aya::maps::{MapError, PerCpuValues};
use gocpu_common::{DropReason, ProcStats};

use crate::{
    config::ProbesConfig,
    discovery::{ProcKey, binaries::GoFacts, procfs::FileId},
    probes::{
        ProbeError,
        loader::{AggregateMaps, KernelProbes},
        uprobes::{HookStatus, UprobeSet},
    },
};

/// Owner of the loaded kernel side and of the tracked set.
#[derive(Debug)]
pub struct ProbeManager {
    kernel: KernelProbes,
    aggregates: AggregateMaps,
    uprobes: UprobeSet,
    tracked: HashMap<u32, (ProcKey, FileId)>,
    max_processes: u32,
    nr_cpus: usize,
}

impl ProbeManager {
    /// A manager over loaded `kernel` probes, tracking at most `max_processes`.
    pub fn new(mut kernel: KernelProbes, max_processes: u32) -> Result<Self, ProbeError> {
        let nr_cpus = aya::util::nr_cpus().map_err(|(_, e)| ProbeError::Cpus(e))?;
        let aggregates = kernel
            .take_aggregates()
            .ok_or_else(|| ProbeError::Tracefs {
                reason: "aggregation maps already taken".into(),
            })?;
        Ok(Self {
            kernel,
            aggregates,
            uprobes: UprobeSet::default(),
            tracked: HashMap::new(),
            max_processes,
            nr_cpus,
        })
    }

    /// The loaded kernel side (for taking the event array and logger).
    pub fn kernel_mut(&mut self) -> &mut KernelProbes {
        &mut self.kernel
    }

    /// Starts accounting process `key` (running binary `file`, reachable at `exe_path`) and makes
    /// sure its binary's uprobes are attached. Counters restart from zero.
    pub fn track(
        &mut self,
        key: ProcKey,
        file: FileId,
        exe_path: &Path,
        facts: &GoFacts,
        cfg: &ProbesConfig,
    ) -> Result<Vec<HookStatus>, ProbeError> {
        if let Some((old, old_file)) = self.tracked.get(&key.pid).copied() {
            // Same pid, new identity or new image (exec): forget the old incarnation first.
            self.untrack(old, old_file);
        }
        if self.tracked.len() >= self.max_processes as usize {
            return Err(ProbeError::TableFull {
                limit: self.max_processes,
            });
        }
        let zeros = PerCpuValues::try_from(vec![ProcStats::default(); self.nr_cpus])
            .map_err(ProbeError::Cpus)?;
        match self.kernel.procs.insert(key.pid, zeros, 0) {
            Ok(()) => {}
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::E2BIG) => {
                return Err(ProbeError::TableFull {
                    limit: gocpu_common::MAX_TRACKED_PROCS,
                });
            }
            Err(source) => {
                return Err(ProbeError::Map {
                    name: gocpu_common::maps::PROCS,
                    source,
                });
            }
        }
        self.tracked.insert(key.pid, (key, file));
        Ok(self
            .uprobes
            .acquire(&mut self.kernel, key, file, exe_path, facts, cfg))
    }

    /// Stops accounting `key` (no-op when it is not the tracked incarnation of its pid).
    pub fn untrack(&mut self, key: ProcKey, file: FileId) {
        match self.tracked.get(&key.pid) {
            Some((k, _)) if *k == key => {}
            _ => return,
        }
        self.tracked.remove(&key.pid);
        if let Err(e) = self.kernel.procs.remove(&key.pid) {
            tracing::debug!(pid = key.pid, error = %e, "PROCS entry already gone");
        }
        self.aggregates.forget(key.pid);
        self.uprobes.release(key, file, Instant::now());
    }

    /// Whether `key` is tracked.
    pub fn is_tracked(&self, key: ProcKey) -> bool {
        self.tracked.get(&key.pid).is_some_and(|(k, _)| *k == key)
    }

    /// The tracked processes.
    pub fn tracked(&self) -> impl Iterator<Item = ProcKey> + '_ {
        self.tracked.values().map(|(k, _)| *k)
    }

    /// The kernel's keyed aggregations (samples, blocked time, futex callers, threads).
    pub fn aggregates(&mut self) -> &mut AggregateMaps {
        &mut self.aggregates
    }

    /// Current cumulative counters of `pid`, summed over CPUs; `None` when not in the table.
    pub fn read(&self, pid: u32) -> Option<ProcStats> {
        let values = self.kernel.procs.get(&pid, 0).ok()?;
        let mut sum = ProcStats::default();
        for v in values.iter() {
            sum.accumulate(v);
        }
        Some(sum)
    }

    /// Events lost in kernel, per reason, summed over CPUs.
    pub fn drops(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL
            .iter()
            .map(|&r| {
                let n = self
                    .kernel
                    .drops
                    .get(&(r as u32), 0)
                    .map(|v| v.iter().fold(0u64, |a, b| a.wrapping_add(*b)))
                    .unwrap_or(0);
                (r, n)
            })
            .collect()
    }

    /// Run-time statistics of every program.
    pub fn program_stats(&self) -> Vec<crate::probes::loader::ProgramStats> {
        self.kernel.program_stats()
    }

    /// Detaches binaries idle for longer than `linger`.
    pub fn sweep(&mut self, linger: Duration) {
        self.uprobes.sweep(&mut self.kernel, Instant::now(), linger);
    }

    /// (binaries with probes, attached uprobes).
    pub fn attachment_counts(&self) -> (usize, usize) {
        (self.uprobes.binaries(), self.uprobes.links())
    }

    /// Detaches every uprobe and forgets every process (the kernel side is dropped afterwards).
    pub fn shutdown(&mut self) {
        self.uprobes.detach_all(&mut self.kernel);
        let keys: Vec<u32> = self.tracked.keys().copied().collect();
        for pid in keys {
            let _ = self.kernel.procs.remove(&pid);
        }
        self.tracked.clear();
    }
}
