//! Ingest: turns kernel events, procfs scans and counter reads into model updates.
//!
//! [`Ingest`] holds the decisions (synchronous, called from blocking tasks); [`tasks`] holds the
//! async loops that drive it.
pub mod aggregates;
pub mod tasks;

use std::{
    sync::{Arc, Mutex, RwLock, atomic::Ordering},
    time::{Duration, Instant, SystemTime},
};

use crate::{
    config::Config,
    discovery::{Discovery, Inspection, ProcKey, binaries::BinaryFacts, procfs::ProcError},
    model::{
        DaemonStats, Model,
        analysis::ProcessAnalysis,
        process::{GoProcess, Tracking},
        window::Window,
    },
    probes::manager::ProbeManager,
    symbolize::ProcessSymbolizer,
};

/// Everything the daemon's tasks share.
#[derive(Debug)]
pub struct Shared {
    /// Configuration in effect.
    pub config: Config,
    /// Process discovery.
    pub discovery: Discovery,
    /// Probe manager (kernel side); lock before `model` when both are needed.
    pub manager: Mutex<ProbeManager>,
    /// The model.
    pub model: RwLock<Model>,
    /// Daemon counters.
    pub stats: DaemonStats,
    /// Lifecycle event loss counters.
    pub loss: Arc<crate::probes::events::EventLoss>,
    /// Boot time and tick rate, for start times.
    pub clock: crate::discovery::procfs::Clock,
}

impl Shared {
    /// Locks the probe manager (a poisoned lock is recovered: its state stays consistent).
    pub fn manager(&self) -> std::sync::MutexGuard<'_, ProbeManager> {
        self.manager.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the model.
    pub fn model(&self) -> std::sync::RwLockReadGuard<'_, Model> {
        self.model.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the model.
    pub fn model_mut(&self) -> std::sync::RwLockWriteGuard<'_, Model> {
        self.model.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The ingest decisions over shared state.
#[derive(Clone, Debug)]
pub struct Ingest {
    shared: Arc<Shared>,
}

impl Ingest {
    /// Ingest over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Inspects `pid` and tracks it if it runs Go (blocking).
    pub fn observe(&self, pid: u32) {
        let s = &self.shared;
        s.stats.inspections.fetch_add(1, Ordering::Relaxed);
        match s.discovery.inspect(pid) {
            Ok(Some(insp)) => self.admit(insp),
            Ok(None) | Err(ProcError::Vanished { .. }) => self.forget_pid(pid),
            Err(e) => {
                s.stats.inspection_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(pid, error = %e, "inspection failed");
            }
        }
    }

    fn admit(&self, insp: Inspection) {
        let s = &self.shared;
        let known = s.model().get(insp.key.pid).map(|p| (p.key, p.file));
        if known == Some((insp.key, insp.file)) {
            return; // Already tracked with this very binary.
        }
        if let Some((old_key, _)) = known {
            // Exec'd into another binary (same identity) or pid reused: start over.
            self.forget(old_key);
        }
        let (tracking, hooks) = match &*insp.binary {
            BinaryFacts::NotGo { .. } => return,
            BinaryFacts::Unusable { reason } => (
                Tracking::Untracked {
                    reason: format!("binary could not be analysed: {reason}"),
                },
                Vec::new(),
            ),
            BinaryFacts::Go(facts) => {
                use std::os::fd::AsRawFd;
                let path =
                    std::path::PathBuf::from(format!("/proc/self/fd/{}", insp.handle.as_raw_fd()));
                let res = s
                    .manager()
                    .track(insp.key, insp.file, &path, facts, &s.config.probes);
                match res {
                    Ok(hooks) => (Tracking::Tracked, hooks),
                    Err(e) => (
                        Tracking::Untracked {
                            reason: e.to_string(),
                        },
                        Vec::new(),
                    ),
                }
            }
        };
        tracing::info!(
            pid = insp.key.pid,
            exe = %insp.exe.display(),
            tracked = matches!(tracking, Tracking::Tracked),
            "Go process discovered"
        );
        let window_len = Duration::from_secs(s.config.ingest.window_seconds);
        let window = Window::new(window_len);
        let analysis = match (&tracking, &*insp.binary) {
            (Tracking::Tracked, BinaryFacts::Go(facts)) => {
                let maps = s.discovery.procfs().maps(insp.key.pid).unwrap_or_default();
                let sym = ProcessSymbolizer::new(Arc::clone(&facts.binary), insp.file.ino, maps);
                Some(ProcessAnalysis::new(
                    sym,
                    Duration::from_secs(s.config.ingest.profile_seconds),
                    window_len,
                ))
            }
            _ => None,
        };
        s.model_mut().upsert(GoProcess {
            key: insp.key,
            comm: insp.stat.comm,
            exe: insp.exe,
            file: insp.file,
            binary: insp.binary,
            tracking,
            hooks,
            since: SystemTime::now(),
            since_mono: Instant::now(),
            window,
            analysis,
        });
    }

    /// A tracked process exited: forget it.
    pub fn exited(&self, pid: u32) {
        self.forget_pid(pid);
    }

    fn forget_pid(&self, pid: u32) {
        let key = self.shared.model().get(pid).map(|p| p.key);
        if let Some(key) = key {
            self.forget(key);
        }
    }

    fn forget(&self, key: ProcKey) {
        let s = &self.shared;
        let removed = s.model_mut().remove(key);
        if let Some(p) = removed {
            s.manager().untrack(key, p.file);
            tracing::info!(pid = key.pid, exe = %p.exe.display(), "Go process gone");
        }
    }

    /// Full procfs pass: admits new processes, forgets dead ones, detaches lingering probes.
    pub fn rescan(&self) {
        let s = &self.shared;
        s.stats.rescans.fetch_add(1, Ordering::Relaxed);
        let pids = match s.discovery.procfs().pids() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "procfs scan failed");
                return;
            }
        };
        for key in s.model().keys() {
            if !s.discovery.is_alive(key) {
                s.stats.missed_exits.fetch_add(1, Ordering::Relaxed);
                self.forget(key);
            }
        }
        let own = std::process::id();
        for pid in pids {
            if pid != own {
                self.observe(pid);
            }
        }
        s.manager()
            .sweep(Duration::from_secs(s.config.discovery.linger_seconds));
    }

    /// Reads every tracked process's counters and the kernel's aggregations into the model.
    pub fn poll(&self) {
        let s = &self.shared;
        let keys: Vec<ProcKey> = s
            .model()
            .iter()
            .filter(|p| p.tracking == Tracking::Tracked)
            .map(|p| p.key)
            .collect();
        // Lock order: manager, then model.
        let mut m = s.manager();
        let now = Instant::now();
        let reads: Vec<_> = keys
            .iter()
            .filter_map(|k| m.read(k.pid).map(|st| (*k, st)))
            .collect();
        let agg = m.aggregates();
        let data = aggregates::PollData {
            samples: agg.drain_samples(),
            offcpu: agg.offcpu(),
            futex: agg.futex_callers(),
            threads: agg.threads(),
        };
        let mut model = s.model_mut();
        for (key, stats) in reads {
            model.record(key, now, stats);
        }
        let agg = m.aggregates();
        aggregates::apply(&mut model, s.discovery.procfs(), now, data, |id| {
            agg.off_stack(id)
        });
    }
}
