//! Loads the embedded gocpu-ebpf object and attaches the always-on hooks: the scheduler and
//! process lifecycle tracepoints and the per-CPU clock event. Uprobes are loaded here but attached
//! per binary by [`crate::probes::uprobes`], the syscall tracepoints under the budget by
//! [`crate::probes::syscalls`].
use std::{collections::HashMap, path::PathBuf};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, MapError, PerCpuArray, PerCpuHashMap, PerCpuValues, PerfEventArray},
    programs::{
        PerfEvent, RawTracePoint, TracePoint,
        perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
    },
    util::online_cpus,
};
use aya_log::EbpfLogger;
use gocpu_common::{GENERATIONS, ProcStats, ProgRun, ProgramId, globals, maps, programs};

use crate::{
    config::Config,
    preflight::{Features, KernelVersion, SWITCH_STATE_KERNEL, StatsPlan, StatsSource},
    probes::{
        ProbeError,
        cpu_now::{self, CpuFloor},
        tracefs,
        uprobe_link::{Scope, UprobeLink, UprobePath, UprobePrograms},
    },
};

/// What the loader needs to know about the host (decided at start-up, before anything loads).
#[derive(Clone, Debug)]
pub struct HostSetup {
    /// Kernel release, if known: picks the `sched_switch` program.
    pub kernel: Option<KernelVersion>,
    /// Where tracefs is mounted (tracepoint record layouts are read from it).
    pub tracefs: PathBuf,
    /// How uprobes are attached.
    pub uprobe_path: UprobePath,
    /// How the programs' run-time figures are obtained.
    pub bpf_stats: StatsPlan,
}

impl HostSetup {
    /// Prepares tracefs and tries the uprobe paths and statistics `config` asks for, as the daemon
    /// does at start-up (for tests and tools that load the kernel side without the daemon).
    pub fn detect(config: &Config) -> Result<Self, ProbeError> {
        let proc_root = &config.discovery.proc_root;
        let tracefs = tracefs::prepare().map_err(|e| ProbeError::Tracefs {
            reason: e.to_string(),
        })?;
        let features = Features::probe(proc_root, std::path::Path::new("/sys"), &config.probes);
        Ok(Self {
            kernel: KernelVersion::running(proc_root),
            tracefs: tracefs.path,
            uprobe_path: features.uprobe_path().0,
            bpf_stats: features.stats_plan(),
        })
    }
}

/// The eBPF object built by build.rs from gocpu-ebpf.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gocpu"));

/// The loaded kernel side: programs (inside `ebpf`) and the maps user space reads.
pub struct KernelProbes {
    ebpf: Ebpf,
    /// `PROCS`: tracked processes and their counters.
    pub procs: PerCpuHashMap<MapData, u32, ProcStats>,
    /// `DROPS`: per-CPU drop counters.
    pub drops: PerCpuArray<MapData, u64>,
    /// `CPU_SLICE`: the slice running on each CPU, not yet charged to its process.
    cpu_slice: PerCpuArray<MapData, gocpu_common::CpuSlice>,
    /// Keeps [`KernelProbes::read`]'s CPU time from going backwards.
    pub cpu_floor: CpuFloor,
    /// `EVENTS`, until taken by the event reader.
    events: Option<PerfEventArray<MapData>>,
    /// Aggregation maps, until taken by ingest.
    aggregates: Option<AggregateMaps>,
    /// aya-log records from the programs, until taken by the log forwarder.
    logger: Option<EbpfLogger<&'static dyn log::Log>>,
    /// The uprobe programs, loaded for this host's attach path.
    uprobes: UprobePrograms,
    /// Keeps the kernel's BPF run-time statistics on while held (`None`: not ours to hold).
    _stats: Option<std::os::fd::OwnedFd>,
    /// Where [`KernelProbes::program_stats`] reads from.
    stats_source: StatsSource,
    /// `PROG_RUNS`: the programs' own timing (written only when self-timed).
    prog_runs: PerCpuArray<MapData, ProgRun>,
    /// `SYSCALL_GATE`.
    syscall_gate: aya::maps::Array<MapData, u32>,
}

/// Run time of one program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    /// Program name.
    pub name: &'static str,
    /// Total time spent running it.
    pub run_time: std::time::Duration,
    /// Number of runs.
    pub run_count: u64,
    /// Who measured it.
    pub source: StatsSource,
}

/// The `sched_switch` program for `kernel`: the tracepoint gained its `prev_state` argument in
/// 5.18. An unknown release gets the current one (its attach fails loudly on an old kernel).
pub fn sched_switch_program(kernel: Option<KernelVersion>) -> &'static str {
    if kernel.is_some_and(|k| k < SWITCH_STATE_KERNEL) {
        programs::SCHED_SWITCH_PRE_5_18
    } else {
        programs::SCHED_SWITCH
    }
}

/// The always-on classic tracepoints: (program, category, event). Rare events, where the
/// record's named fields are worth their cost.
const TRACEPOINTS: [(&str, &str, &str); 2] = [
    (programs::PROCESS_EXEC, "sched", "sched_process_exec"),
    (programs::PROCESS_EXIT, "sched", "sched_process_exit"),
];

/// The uprobe programs: loaded here for the host's attach path, attached per binary by
/// [`crate::probes::uprobes`].
const UPROBE_PROGRAMS: [&str; 4] = [
    programs::RUNTIME_FUTEX,
    programs::RUNTIME_USLEEP,
    programs::RUNTIME_MCALL,
    programs::RUNTIME_CGOCALL,
];

/// The syscall tracepoints: loaded here, attached under the budget by
/// [`crate::probes::syscalls`].
const SYSCALL_PROGRAMS: [&str; 3] = [
    programs::SYS_FUTEX,
    programs::SYS_NANOSLEEP,
    programs::SYS_SCHED_YIELD,
];

/// Maps user space reads besides `PROCS`, `DROPS` and `EVENTS`, and what it keeps of them
/// between polls (see [`crate::probes::aggregates`]).
pub struct AggregateMaps {
    /// `THREADS`, keyed by task_struct address.
    pub threads: aya::maps::HashMap<MapData, u64, gocpu_common::ThreadStats>,
    /// `THREAD_CHURN`.
    pub churn: PerCpuArray<MapData, gocpu_common::ThreadChurn>,
    /// `GENERATION`.
    pub generation: aya::maps::Array<MapData, u32>,
    /// `CPU_SAMPLES_0`, `CPU_SAMPLES_1`.
    pub samples: [PerCpuHashMap<MapData, gocpu_common::SampleKey, u64>; GENERATIONS],
    /// `STACKS_CPU_0`, `STACKS_CPU_1`.
    pub stacks_cpu: [aya::maps::StackTraceMap<MapData>; GENERATIONS],
    /// `OFFCPU`.
    pub offcpu: PerCpuHashMap<MapData, gocpu_common::OffCpuKey, gocpu_common::OffCpuValue>,
    /// `FUTEX_CALLERS_0`, `FUTEX_CALLERS_1`.
    pub futex: [PerCpuHashMap<MapData, gocpu_common::FutexKey, u64>; GENERATIONS],
    /// `STACKS_OFF_0`, `STACKS_OFF_1`.
    pub stacks_off: [aya::maps::StackTraceMap<MapData>; GENERATIONS],
    /// The wait for running programs after a generation flip; `None` when the kernel refused
    /// its map-of-maps (then a fixed pause stands in for it).
    pub grace: Option<crate::probes::grace::RcuGrace>,
    /// User-space state over the drained maps.
    pub state: crate::probes::aggregates::DrainState,
}

impl std::fmt::Debug for AggregateMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateMaps").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for KernelProbes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelProbes").finish_non_exhaustive()
    }
}

fn program_err(name: &'static str) -> impl FnOnce(aya::programs::ProgramError) -> ProbeError {
    move |source| ProbeError::Program { name, source }
}

fn map_err(name: &'static str) -> impl FnOnce(aya::maps::MapError) -> ProbeError {
    move |source| ProbeError::Map { name, source }
}

fn missing_map(name: &'static str) -> ProbeError {
    ProbeError::Map {
        name,
        source: aya::maps::MapError::InvalidName {
            name: name.to_string(),
        },
    }
}

impl KernelProbes {
    /// Loads every program, attaches the tracepoints and the CPU clock on every online CPU.
    /// `host.kernel` picks the programs for that kernel release (tests attach an older kernel's
    /// variant on a newer kernel, which accepts it).
    pub fn load(config: &Config, host: &HostSetup) -> Result<KernelProbes, ProbeError> {
        raise_memlock_limit();
        let tracefs = &host.tracefs;
        let kernel = host.kernel;
        let required = |category: &str, event: &str, field: &str| {
            tracefs::field_offset(tracefs, category, event, field)?.ok_or_else(|| {
                ProbeError::Tracefs {
                    reason: format!("{category}:{event} has no {field} field"),
                }
            })
        };
        let futex_op = required("syscalls", "sys_enter_futex", "op")?;
        let group_dead =
            tracefs::field_offset(tracefs, "sched", "sched_process_exit", "group_dead")?
                .unwrap_or(0);
        let futex_interval_ns = config.sampling.futex_stack_interval_us.saturating_mul(1000);
        let sample_stacks = u32::from(config.sampling.stacks);
        let (stats_fd, stats_source) = run_time_stats(host.bpf_stats);
        let self_timing = u32::from(stats_source == StatsSource::SelfTimed);

        let mut ebpf = EbpfLoader::new()
            .override_global(globals::FUTEX_OP_OFFSET, &futex_op, true)
            .override_global(globals::FUTEX_SAMPLE_INTERVAL_NS, &futex_interval_ns, true)
            .override_global(globals::SAMPLE_STACKS, &sample_stacks, true)
            .override_global(globals::EXIT_GROUP_DEAD_OFFSET, &group_dead, true)
            .override_global(globals::SELF_TIMING, &self_timing, true)
            .load(EBPF_OBJECT)?;
        // Before any map is taken: the multi path points its programs at aya's maps.
        let uprobes =
            UprobePrograms::load(host.uprobe_path, &mut ebpf, EBPF_OBJECT, &UPROBE_PROGRAMS)?;
        // Must exist before the programs load (they reference its ring buffer).
        let logger = match EbpfLogger::init(&mut ebpf) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "eBPF diagnostics unavailable (aya-log)");
                None
            }
        };

        // Raw, because they fire on every context switch of the machine (see gocpu-ebpf's
        // `sched_switch`).
        for (name, tracepoint) in [
            (sched_switch_program(kernel), "sched_switch"),
            (programs::SCHED_WAKEUP, "sched_wakeup"),
        ] {
            let tp: &mut RawTracePoint = typed(&mut ebpf, name)?;
            tp.load().map_err(program_err(name))?;
            tp.attach(tracepoint).map_err(program_err(name))?;
        }
        for (name, category, event) in TRACEPOINTS {
            let tp: &mut TracePoint = typed(&mut ebpf, name)?;
            tp.load().map_err(program_err(name))?;
            tp.attach(category, event).map_err(program_err(name))?;
        }
        for name in SYSCALL_PROGRAMS {
            let tp: &mut TracePoint = typed(&mut ebpf, name)?;
            tp.load().map_err(program_err(name))?;
        }

        let clock: &mut PerfEvent = typed(&mut ebpf, programs::CPU_CLOCK)?;
        clock.load().map_err(program_err(programs::CPU_CLOCK))?;
        let period_ns = 1_000_000_000 / config.sampling.cpu_clock_hz.max(1);
        for cpu in online_cpus().map_err(|(_, e)| ProbeError::Cpus(e))? {
            clock
                .attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Period(period_ns),
                    false,
                )
                .map_err(program_err(programs::CPU_CLOCK))?;
        }

        let procs = ebpf
            .take_map(maps::PROCS)
            .ok_or_else(|| missing_map(maps::PROCS))?;
        let procs = PerCpuHashMap::try_from(procs).map_err(map_err(maps::PROCS))?;
        let drops = ebpf
            .take_map(maps::DROPS)
            .ok_or_else(|| missing_map(maps::DROPS))?;
        let drops = PerCpuArray::try_from(drops).map_err(map_err(maps::DROPS))?;
        let events = ebpf
            .take_map(maps::EVENTS)
            .ok_or_else(|| missing_map(maps::EVENTS))?;
        let events = PerfEventArray::try_from(events).map_err(map_err(maps::EVENTS))?;
        let prog_runs = take(&mut ebpf, maps::PROG_RUNS)?;
        let cpu_slice = take(&mut ebpf, maps::CPU_SLICE)?;
        let syscall_gate = take(&mut ebpf, maps::SYSCALL_GATE)?;
        let grace = crate::probes::grace::RcuGrace::new()
            .inspect_err(|e| {
                tracing::warn!(error = %e, "generation flips fall back to a fixed pause");
            })
            .ok();
        let aggregates = AggregateMaps {
            threads: take(&mut ebpf, maps::THREADS)?,
            churn: take(&mut ebpf, maps::THREAD_CHURN)?,
            generation: take(&mut ebpf, maps::GENERATION)?,
            samples: [
                take(&mut ebpf, maps::CPU_SAMPLES[0])?,
                take(&mut ebpf, maps::CPU_SAMPLES[1])?,
            ],
            stacks_cpu: [
                take(&mut ebpf, maps::STACKS_CPU[0])?,
                take(&mut ebpf, maps::STACKS_CPU[1])?,
            ],
            offcpu: take(&mut ebpf, maps::OFFCPU)?,
            futex: [
                take(&mut ebpf, maps::FUTEX_CALLERS[0])?,
                take(&mut ebpf, maps::FUTEX_CALLERS[1])?,
            ],
            stacks_off: [
                take(&mut ebpf, maps::STACKS_OFF[0])?,
                take(&mut ebpf, maps::STACKS_OFF[1])?,
            ],
            grace,
            state: crate::probes::aggregates::DrainState::default(),
        };

        Ok(KernelProbes {
            ebpf,
            procs,
            drops,
            cpu_slice,
            cpu_floor: CpuFloor::default(),
            events: Some(events),
            aggregates: Some(aggregates),
            logger,
            uprobes,
            _stats: stats_fd,
            stats_source,
            prog_runs,
            syscall_gate,
        })
    }

    /// Opens (or closes) the syscall tracepoints' measurement period: their programs count
    /// only while it is open.
    pub fn set_syscall_gate(&mut self, open: bool) -> Result<(), ProbeError> {
        self.syscall_gate
            .set(0, u32::from(open), 0)
            .map_err(map_err(maps::SYSCALL_GATE))
    }

    /// Puts `pid` in `PROCS` with zeroed counters on each of `nr_cpus` CPUs: from now on the
    /// programs count for it (the kernel side never inserts).
    pub fn track(&mut self, pid: u32, nr_cpus: usize) -> Result<(), ProbeError> {
        let zeros = PerCpuValues::try_from(vec![ProcStats::default(); nr_cpus])
            .map_err(ProbeError::Cpus)?;
        match self.procs.insert(pid, zeros, 0) {
            Ok(()) => Ok(()),
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::E2BIG) => {
                Err(ProbeError::TableFull {
                    limit: gocpu_common::MAX_TRACKED_PROCS,
                })
            }
            Err(source) => Err(ProbeError::Map {
                name: gocpu_common::maps::PROCS,
                source,
            }),
        }
    }

    /// Current cumulative counters of `pid`, summed over CPUs, its CPU time including the
    /// slices running now (`cpu_now.rs`); `None` when not in the table.
    pub fn read(&self, pid: u32) -> Option<ProcStats> {
        self.read_with(pid, &self.running())
    }

    /// As [`KernelProbes::read`], with the running slices read once for many processes.
    pub fn read_with(&self, pid: u32, running: &HashMap<u32, u64>) -> Option<ProcStats> {
        let values = self.procs.get(&pid, 0).ok()?;
        let mut sum = ProcStats::default();
        for v in values.iter() {
            sum.accumulate(v);
        }
        let now = sum
            .oncpu_ns
            .wrapping_add(running.get(&pid).copied().unwrap_or(0));
        sum.oncpu_ns = self.cpu_floor.settle(pid, now);
        Some(sum)
    }

    /// Uncharged running time per tracked process, now (empty if the slices are unreadable:
    /// the charged time alone is then what there is).
    pub fn running(&self) -> HashMap<u32, u64> {
        // Slices first, then the clock: a slice that starts in between is not counted as ahead.
        match self.cpu_slice.get(&0, 0) {
            Ok(slices) => cpu_now::running(&slices, cpu_now::monotonic_ns()),
            Err(e) => {
                tracing::debug!(error = %e, "CPU_SLICE unreadable");
                HashMap::new()
            }
        }
    }

    /// Tracepoint program `name` (loaded, for the governed syscall tracepoints).
    pub fn tracepoint(&mut self, name: &'static str) -> Result<&mut TracePoint, ProbeError> {
        typed(&mut self.ebpf, name)
    }

    /// How this kernel side attaches uprobes.
    pub fn uprobe_path(&self) -> UprobePath {
        self.uprobes.path()
    }

    /// Attaches uprobe program `name` at `file_offset` of the file at `path`.
    pub fn attach_uprobe(
        &mut self,
        name: &'static str,
        path: &std::path::Path,
        file_offset: u64,
        scope: Scope,
    ) -> Result<UprobeLink, ProbeError> {
        self.uprobes
            .attach(&mut self.ebpf, name, path, file_offset, scope)
    }

    /// Detaches a uprobe of program `name`.
    pub fn detach_uprobe(
        &mut self,
        name: &'static str,
        link: UprobeLink,
    ) -> Result<(), ProbeError> {
        UprobePrograms::detach(&mut self.ebpf, name, link)
    }

    /// Run time and count of every loaded program (the accounted BPF cost on targets), from the
    /// kernel's statistics or the programs' own timing.
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        ProgramId::ALL
            .iter()
            .filter_map(|&id| {
                let name = id.name();
                let kernel = match self.uprobes.run_stats(name) {
                    Some(s) => (s.run_time, s.runs),
                    None => {
                        let info = self.ebpf.program(name)?.info().ok()?;
                        (info.run_time(), info.run_count())
                    }
                };
                let (run_time, run_count) = match self.stats_source {
                    StatsSource::Kernel => kernel,
                    StatsSource::SelfTimed => {
                        let per_cpu = self.prog_runs.get(&(id as u32), 0).ok()?;
                        let mut sum = ProgRun::default();
                        per_cpu.iter().for_each(|r| sum.add(r));
                        (std::time::Duration::from_nanos(sum.run_ns), sum.runs)
                    }
                };
                Some(ProgramStats {
                    name,
                    run_time,
                    run_count,
                    source: self.stats_source,
                })
            })
            .collect()
    }

    /// Where run-time figures come from.
    pub fn stats_source(&self) -> StatsSource {
        self.stats_source
    }

    /// Takes the aggregation maps (once) for ingest.
    pub fn take_aggregates(&mut self) -> Option<AggregateMaps> {
        self.aggregates.take()
    }

    /// Takes the lifecycle event array (once) for the event reader.
    pub fn take_events(&mut self) -> Option<PerfEventArray<MapData>> {
        self.events.take()
    }

    /// Takes the programs' aya-log reader (once), to forward records to `tracing`.
    pub fn take_logger(&mut self) -> Option<EbpfLogger<&'static dyn log::Log>> {
        self.logger.take()
    }
}

/// Program `name` of `ebpf` as its program type `P`.
fn typed<'a, P>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, ProbeError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(ProbeError::MissingProgram(name))?
        .try_into()
        .map_err(program_err(name))
}

/// Takes map `name` out of `ebpf` as the typed map `M`.
fn take<M>(ebpf: &mut Ebpf, name: &'static str) -> Result<M, ProbeError>
where
    M: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or_else(|| missing_map(name))?;
    M::try_from(map).map_err(map_err(name))
}

/// Carries out preflight's plan for run-time figures (overhead is measured, never assumed): the
/// kernel's statistics, turned on for as long as the returned fd lives (two clock reads per
/// program run) or already on node-wide; else the programs' own timing.
fn run_time_stats(plan: StatsPlan) -> (Option<std::os::fd::OwnedFd>, StatsSource) {
    match plan {
        StatsPlan::Node => return (None, StatsSource::Kernel),
        StatsPlan::SelfTimed => return (None, StatsSource::SelfTimed),
        StatsPlan::Enable => {}
    }
    match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
        Ok(fd) => (Some(fd), StatsSource::Kernel),
        // Allowed a moment ago in preflight; should it fail now, the figures still come.
        Err(e) => {
            tracing::warn!(error = %e, "BPF run-time statistics unavailable; the programs time themselves");
            (None, StatsSource::SelfTimed)
        }
    }
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; lift it (harmless on newer ones).
fn raise_memlock_limit() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `rlim` is a valid rlimit for the duration of the call.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };
    if rc != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "cannot raise RLIMIT_MEMLOCK (only matters before Linux 5.11)"
        );
    }
}
