//! Ingest: turns kernel events, procfs scans and counter reads into model updates.
//!
//! [`Ingest`] holds the decisions (synchronous, called from blocking tasks); [`tasks`] holds the
//! async loops that drive it.
pub mod aggregates;
pub mod tasks;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock, atomic::Ordering},
    time::{Duration, Instant, SystemTime},
};

use crate::{
    config::Config,
    discovery::{
        Discovery, FileKey, Inspection, ProcKey, binaries::BinaryFacts, procfs::ProcError,
    },
    model::{
        DaemonStats, Model,
        analysis::ProcessAnalysis,
        process::{GoProcess, Tracking},
        runtime_state::RuntimeState,
        window::Window,
    },
    probes::{ProbeError, calibrate, manager::ProbeManager, uprobe_link::UprobeLink},
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
    /// Pod names by container ID, from the kubelet's container log links.
    pub pods: Mutex<crate::discovery::cgroup::PodNames>,
    /// Wakes the governor loop at once: a newly tracked process's hooks are attached (for
    /// measurement) by the governors, not by tracking.
    pub govern_now: tasks::Wakeup,
    /// The start-up report: where the daemon runs, what it tried, what it could not get.
    pub preflight: crate::preflight::Report,
}

impl Shared {
    /// Locks the probe manager (a poisoned lock is recovered: its state stays consistent).
    pub fn manager(&self) -> std::sync::MutexGuard<'_, ProbeManager> {
        self.manager.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks the pod-name index.
    pub fn pods(&self) -> std::sync::MutexGuard<'_, crate::discovery::cgroup::PodNames> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
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

/// Calibration probes through the shared probe manager, locked per call.
struct ManagerCalibration<'a>(&'a Shared);

/// The program calibration probes run: its work matches a real hook hit (one table lookup).
const CALIBRATION_PROGRAM: &str = gocpu_common::programs::RUNTIME_MCALL;

impl calibrate::CalibrationProbe for ManagerCalibration<'_> {
    fn attach(&self, file_offset: u64) -> Result<UprobeLink, ProbeError> {
        self.0
            .manager()
            .with_kernel(|k| calibrate::attach(k, CALIBRATION_PROGRAM, file_offset))
    }

    fn detach(&self, link: UprobeLink) -> Result<(), ProbeError> {
        self.0
            .manager()
            .with_kernel(|k| calibrate::detach(k, CALIBRATION_PROGRAM, link))
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
        let mut tracked_at = None;
        let tracking = match &*insp.binary {
            BinaryFacts::NotGo { .. } => return,
            BinaryFacts::Unusable { reason } => Tracking::Untracked {
                reason: format!("binary could not be analysed: {reason}"),
            },
            BinaryFacts::Go(facts) => {
                tracked_at = Some(Instant::now());
                let res =
                    s.manager()
                        .track(insp.key, insp.file, &insp.handle, facts, &s.config.probes);
                match res {
                    Ok(()) => {
                        s.govern_now.notify();
                        Tracking::Tracked
                    }
                    Err(e) => Tracking::Untracked {
                        reason: e.to_string(),
                    },
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
        let mut window = Window::new(window_len);
        if let (Tracking::Tracked, Some(at)) = (&tracking, tracked_at) {
            // The kernel's counters start from zero when tracking starts: that is a sample,
            // and with it the first poll already gives a rate (the governor needs the CPU use).
            window.push(at, Default::default());
        }
        let analysis = match (&tracking, &*insp.binary) {
            (Tracking::Tracked, BinaryFacts::Go(facts)) => {
                let maps = s.discovery.procfs().maps(insp.key.pid).unwrap_or_default();
                let root = s
                    .discovery
                    .procfs()
                    .root()
                    .join(insp.key.pid.to_string())
                    .join("root");
                let bias = crate::runtime::load_bias(&facts.binary, insp.file.ino, &maps)
                    .map_err(|e| e.to_string());
                let runtime = RuntimeState::new(
                    facts.runtime.clone(),
                    bias,
                    s.config.ingest.window_seconds as f64,
                );
                let sym =
                    ProcessSymbolizer::new(root, Arc::clone(&facts.binary), insp.file.ino, maps);
                Some(ProcessAnalysis::new(
                    sym,
                    runtime,
                    Duration::from_secs(s.config.ingest.profile_seconds),
                    window_len,
                ))
            }
            _ => None,
        };
        let pod = insp
            .container
            .container_id
            .as_ref()
            .and_then(|id| s.pods().resolve(id, Instant::now()));
        s.model_mut().upsert(GoProcess {
            key: insp.key,
            comm: insp.stat.comm,
            exe: insp.exe,
            file: insp.file,
            container: insp.container,
            pod,
            binary: insp.binary,
            tracking,
            since: SystemTime::now(),
            since_mono: Instant::now(),
            window,
            syscalls_known_since: None,
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
        // Bind first: a guard in the `for` head would live through the loop, and `forget` takes
        // the write lock.
        let keys = s.model().keys();
        for key in keys {
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
        self.resolve_pods();
    }

    /// Resolves the pods still unknown: container log links and API-server pods can appear
    /// after the process started.
    fn resolve_pods(&self) {
        let s = &self.shared;
        let unresolved: Vec<(ProcKey, crate::discovery::cgroup::ContainerId)> = s
            .model()
            .iter()
            .filter(|p| p.pod.is_none())
            .filter_map(|p| Some((p.key, p.container.container_id.clone()?)))
            .collect();
        for (key, id) in unresolved {
            let Some(pod) = s.pods().resolve(&id, Instant::now()) else {
                continue;
            };
            if let Some(p) = s.model_mut().get_mut(key) {
                p.pod = Some(pod);
            }
        }
    }

    /// Runs the uprobe governors with each binary's current CPU use (`last`: what the governors'
    /// thread last read from the model); returns when they next want to run.
    pub fn govern(&self, last: &mut GovernInputs) -> Option<Instant> {
        let s = &self.shared;
        // Not waiting for the model: a poll holds it while it symbolizes a new binary's first
        // samples (240 ms in a debug build), and a hook's period would run on unchecked. What
        // was read last serves meanwhile.
        match s.model.try_read() {
            Ok(model) => *last = GovernInputs::of(&model),
            Err(std::sync::TryLockError::Poisoned(p)) => *last = GovernInputs::of(&p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {}
        }
        let GovernInputs { cores, runtimes } = &*last;
        let switches = |k: ProcKey| {
            let (layout, bias) = runtimes.get(&k)?;
            let mem = crate::runtime::ProcessVm::new(k.pid)?;
            crate::runtime::read_switches(&mem, layout, *bias).ok()
        };
        let probes = &s.config.probes;
        let budget = probes
            .budget
            .per_hook(crate::probes::uprobes::governed_hooks(probes));
        s.manager()
            .govern(&budget, &|f| cores.get(&f).copied().flatten(), &switches)
    }

    /// Measures the uprobe hit cost (blocking, about a second; the probe manager is locked only
    /// to attach and detach).
    pub fn calibrate(&self) {
        let s = &self.shared;
        let res = calibrate::calibrate(&ManagerCalibration(s));
        if let Ok(c) = res {
            s.manager().set_hit_cost(c);
        }
        match res {
            Ok(c) => tracing::info!(
                emulated_ns = c.emulated.as_nanos() as u64,
                single_stepped_ns = c.single_stepped.as_nanos() as u64,
                "uprobe hit cost calibrated"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "uprobe calibration failed; using configured costs")
            }
        }
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
        let reads = m.read_estimated(&keys, now);
        let agg = m.aggregates();
        let data = aggregates::PollData {
            samples: agg.drain_samples(),
            offcpu: agg.offcpu(),
            futex: agg.futex_callers(),
            threads: agg.threads(),
        };
        // The off-CPU stacks the model will ask for are read now, and the symbolization runs
        // without the manager: the governor needs it, and waited out a new binary's first
        // symbolization (240 ms in a debug build), a hook's first period with it.
        let wanted = aggregates::off_stacks_wanted(&s.model(), &data);
        let stacks: HashMap<u32, Vec<u64>> = wanted
            .into_iter()
            .filter_map(|id| Some((id, agg.off_stack(id)?)))
            .collect();
        drop(m);
        // The runtime's M list first: a sample outside Go code is classed by whether its M
        // ever called C (`Profile::note_ms`), and a thread started since the last poll is in
        // the list only once it has run its first Go code, before these samples are applied.
        self.read_runtime();
        let mut model = s.model_mut();
        for (key, stats) in reads {
            model.record(key, now, stats);
        }
        aggregates::apply(&mut model, s.discovery.procfs(), now, data, |id| {
            stacks.get(&id).cloned()
        });
        drop(model);
        // The API server's pod list arrives a moment after start-up (and changes with pods):
        // resolve without waiting for the next rescan.
        if s.pods().api_changed() {
            self.resolve_pods();
        }
    }

    /// Reads every tracked process's runtime state from its memory (without holding any lock
    /// while reading), then records it.
    pub fn read_runtime(&self) {
        use crate::runtime::{ProcessVm, read_census, read_ms, read_sched};
        let s = &self.shared;
        let targets: Vec<(ProcKey, Arc<crate::runtime::RuntimeLayout>, u64)> = s
            .model()
            .iter()
            .filter_map(|p| {
                let rt = &p.analysis.as_ref()?.runtime;
                Some((
                    p.key,
                    Arc::clone(rt.layout.as_ref().ok()?),
                    *rt.bias.as_ref().ok()?,
                ))
            })
            .collect();
        for (key, layout, bias) in targets {
            let Some(mem) = ProcessVm::new(key.pid) else {
                continue;
            };
            let census = read_census(&mem, &layout, bias).map_err(|e| e.to_string());
            let sched = read_sched(&mem, &layout, bias).map_err(|e| e.to_string());
            let ms = read_ms(&mem, &layout, bias).map_err(|e| e.to_string());
            let at = Instant::now();
            // The pid may have been reused while we read: record only for the same process.
            if !s.discovery.is_alive(key) {
                continue;
            }
            let mut model = s.model_mut();
            let Some(a) = model.get_mut(key).and_then(|p| p.analysis.as_mut()) else {
                continue;
            };
            if let Ok(ms) = &ms {
                // The runtime's own list of Ms: the definitive Go threads, and which of them
                // ever called C.
                a.profile.note_ms(
                    at,
                    ms.iter()
                        .filter(|m| m.tid != 0)
                        .map(|m| (m.tid, m.ncgocalls, m.incgo)),
                );
            }
            a.runtime.record(at, census, sched, ms);
        }
    }
}

/// What the governors need from the model, kept by their thread.
#[derive(Debug, Default)]
pub struct GovernInputs {
    /// Each binary's CPU use, cores (`None` until each of its processes has been polled).
    cores: HashMap<FileKey, Option<f64>>,
    /// Where each process's runtime keeps its scheduler state.
    runtimes: HashMap<ProcKey, (Arc<crate::runtime::RuntimeLayout>, u64)>,
}

impl GovernInputs {
    fn of(model: &Model) -> Self {
        // A binary's CPU use is known once each of its processes has been polled since it was
        // tracked; a process tracked a moment ago would otherwise count as idle, and a hook hit
        // fifty times a second would look twenty times over budget on the floor of
        // `MIN_TARGET_CORES` (its first period cut short, its rate left to one short sample).
        let mut inputs = GovernInputs::default();
        for p in model.iter().filter(|p| p.tracking == Tracking::Tracked) {
            let d = p.window.latest_delta();
            let known = (d.seconds > 0.0).then(|| d.stats.oncpu_ns as f64 / 1e9 / d.seconds);
            let sum = inputs.cores.entry(p.file).or_insert(Some(0.0));
            *sum = sum.zip(known).map(|(a, b)| a + b);
            if let Some(rt) = p.analysis.as_ref().map(|a| &a.runtime)
                && let (Ok(layout), Ok(bias)) = (&rt.layout, &rt.bias)
            {
                inputs.runtimes.insert(p.key, (Arc::clone(layout), *bias));
            }
        }
        inputs
    }
}
