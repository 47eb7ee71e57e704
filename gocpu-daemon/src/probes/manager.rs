//! The probe manager: which processes the kernel accounts, and the uprobes their binaries need.
//!
//! A process is tracked by inserting its tgid into `PROCS` (the kernel only ever updates existing
//! entries) and by acquiring its binary's uprobes. Reads sum the per-CPU values.
use std::{
    collections::HashMap,
    fs::File,
    sync::Arc,
    time::{Duration, Instant},
};

use gocpu_common::{DropReason, ProcStats};

use crate::{
    config::ProbesConfig,
    discovery::{
        FileKey, ProcKey,
        binaries::{GoFacts, RuntimeHook},
    },
    probes::{
        ProbeError,
        budget::BudgetConfig,
        calibrate::HitCost,
        loader::{AggregateMaps, KernelProbes},
        syscalls::{Estimated, SyscallEstimates, SyscallProbes},
        uprobes::{HookStatus, Targets, UprobeSet},
    },
};

/// Owner of the loaded kernel side and of the tracked set.
#[derive(Debug)]
pub struct ProbeManager {
    kernel: KernelProbes,
    aggregates: AggregateMaps,
    hit_cost: Option<HitCost>,
    uprobes: UprobeSet,
    syscalls: SyscallProbes,
    estimates: SyscallEstimates,
    tracked: HashMap<u32, (ProcKey, FileKey)>,
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
            hit_cost: None,
            uprobes: UprobeSet::default(),
            syscalls: SyscallProbes::new(Instant::now()),
            estimates: SyscallEstimates::default(),
            tracked: HashMap::new(),
            max_processes,
            nr_cpus,
        })
    }

    /// The loaded kernel side (for taking the event array and logger).
    pub fn kernel_mut(&mut self) -> &mut KernelProbes {
        &mut self.kernel
    }

    /// Starts accounting process `key` (running binary `file`, open as `handle`) and registers
    /// it with its binary's uprobes (attached by the governor). Counters restart from zero.
    pub fn track(
        &mut self,
        key: ProcKey,
        file: FileKey,
        handle: &Arc<File>,
        facts: &GoFacts,
        cfg: &ProbesConfig,
    ) -> Result<(), ProbeError> {
        if let Some((old, old_file)) = self.tracked.get(&key.pid).copied() {
            // Same pid, new identity or new image (exec): forget the old incarnation first.
            self.untrack(old, old_file);
        }
        if self.tracked.len() >= self.max_processes as usize {
            return Err(ProbeError::TableFull {
                limit: self.max_processes,
            });
        }
        self.kernel.track(key.pid, self.nr_cpus)?;
        self.tracked.insert(key.pid, (key, file));
        self.uprobes.acquire(key, file, handle, facts, cfg);
        let now = Instant::now();
        self.estimates.start(key, now, self.syscalls.exposure(now));
        self.syscalls.measure_soon(now);
        Ok(())
    }

    /// Runs the uprobe and syscall tracepoint governors (`switches` reads a process's count
    /// of goroutine switches from its memory): `cores` gives the CPU use of each
    /// binary's processes (`None` until every one of them has been polled twice: then the
    /// machine's CPU count, the most they can use, so that a hook is not judged over budget
    /// on a CPU use nobody measured). Returns when the earliest governor wants its next tick.
    pub fn govern(
        &mut self,
        budget: &BudgetConfig,
        cores: &dyn Fn(FileKey) -> Option<f64>,
        switches: &dyn Fn(ProcKey) -> Option<u64>,
    ) -> Option<Instant> {
        let machine = self.nr_cpus as f64;
        let cores = |f: FileKey| cores(f).unwrap_or(machine);
        let running = self.kernel.running();
        let stats: HashMap<ProcKey, ProcStats> = self
            .tracked
            .values()
            .filter_map(|(k, _)| self.kernel.read_with(k.pid, &running).map(|s| (*k, s)))
            .collect();
        let cost = self.hit_cost.unwrap_or(HitCost {
            emulated: Duration::from_nanos(budget.emulated_hit_ns),
            single_stepped: Duration::from_nanos(budget.single_stepped_hit_ns),
        });
        let now = Instant::now();
        let files: std::collections::HashSet<FileKey> =
            self.tracked.values().map(|(_, f)| *f).collect();
        let all_cores: f64 = files.iter().map(|f| cores(*f)).sum::<f64>().min(machine);
        let syscalls = if self.tracked.is_empty() {
            self.syscalls.suspend(&mut self.kernel, now);
            None
        } else {
            let (next, samples) = self.syscalls.govern(
                &mut self.kernel,
                now,
                budget,
                &stats,
                all_cores,
                Duration::from_nanos(budget.syscall_hit_ns),
            );
            for (key, s) in samples {
                self.estimates.record(key, s);
            }
            next
        };
        let uprobes = self.uprobes.govern(
            &mut self.kernel,
            now,
            budget,
            &cost,
            &Targets {
                stats: &stats,
                cores: &cores,
                switches,
            },
        );
        // A uprobe attached in this pass, or still attached, overlaps the group's period.
        self.syscalls.slowed(self.uprobes.slowed());
        uprobes.into_iter().chain(syscalls).min()
    }

    /// Counters of each of `keys` still in the table, as [`ProbeManager::read`] gives them
    /// (the running slices read once for all), with the syscall counters estimated for the time
    /// their tracepoints were detached (see [`crate::probes::syscalls`]).
    pub fn read_estimated(&mut self, keys: &[ProcKey], now: Instant) -> Vec<(ProcKey, Estimated)> {
        let running = self.kernel.running();
        let exposure = self.syscalls.exposure(now);
        keys.iter()
            .filter_map(|k| {
                let raw = self.kernel.read_with(k.pid, &running)?;
                Some((*k, self.estimates.estimate(*k, now, raw, exposure)))
            })
            .collect()
    }

    /// Counters of tracked `pid`, read now and estimated as [`ProbeManager::read_estimated`]
    /// would at `now` (for API requests between polls; the estimate does not move on). The
    /// caller's `now` is the one its rates end at: an estimate complete only since this read
    /// must cover no time at all, not the moments between the read and the caller's clock.
    pub fn read_current(&self, pid: u32, now: Instant) -> Option<Estimated> {
        let (key, _) = self.tracked.get(&pid)?;
        let raw = self.read(pid)?;
        Some(
            self.estimates
                .peek(*key, now, raw, self.syscalls.exposure(now)),
        )
    }

    /// Total attached seconds of each governed syscall tracepoint (event name).
    pub fn syscall_attached_seconds(&self) -> Vec<(&'static str, f64)> {
        let seconds = self.syscalls.exposure(Instant::now()).as_secs_f64();
        crate::probes::syscalls::SyscallTracepoint::ALL
            .iter()
            .map(|tp| (tp.event(), seconds))
            .collect()
    }

    /// Runs `f` with the loaded kernel side (for calibration probes).
    pub fn with_kernel<T>(&mut self, f: impl FnOnce(&mut KernelProbes) -> T) -> T {
        f(&mut self.kernel)
    }

    /// Sets the measured cost of a uprobe hit; the governor uses it from now on.
    pub fn set_hit_cost(&mut self, cost: HitCost) {
        self.hit_cost = Some(cost);
    }

    /// The measured cost of a uprobe hit, once calibrated.
    pub fn hit_cost(&self) -> Option<HitCost> {
        self.hit_cost
    }

    /// The hooks of `file` as process `key` sees them.
    pub fn hook_status(&self, file: FileKey, key: ProcKey) -> Vec<HookStatus> {
        self.uprobes.status(file, key, Instant::now())
    }

    /// Total attached seconds per hook over all binaries.
    pub fn attached_seconds(&self) -> HashMap<RuntimeHook, f64> {
        self.uprobes.attached_seconds(Instant::now())
    }

    /// Stops accounting `key` (no-op when it is not the tracked incarnation of its pid).
    pub fn untrack(&mut self, key: ProcKey, file: FileKey) {
        match self.tracked.get(&key.pid) {
            Some((k, _)) if *k == key => {}
            _ => return,
        }
        self.tracked.remove(&key.pid);
        if let Some(last) = self.read(key.pid) {
            self.syscalls.forget(key, &last);
        }
        self.estimates.forget(key);
        self.kernel.cpu_floor.forget(key.pid);
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

    /// Current cumulative counters of `pid` ([`KernelProbes::read`]).
    pub fn read(&self, pid: u32) -> Option<ProcStats> {
        self.kernel.read(pid)
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

    /// How uprobes are attached.
    pub fn uprobe_path(&self) -> crate::probes::uprobe_link::UprobePath {
        self.kernel.uprobe_path()
    }

    /// Where run-time figures come from.
    pub fn stats_source(&self) -> crate::preflight::StatsSource {
        self.kernel.stats_source()
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
