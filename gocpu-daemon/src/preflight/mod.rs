//! Start-up checks: does this process have the capabilities and the kernel the features gocpu
//! needs, and if not, exactly what is missing and how to grant it where the daemon runs.
//!
//! [`Inputs::gather`] does the reading and the trying (procfs, sysfs, the memlock limit, where the
//! daemon runs, tracefs, and each uprobe path and statistics source tried for real, see
//! [`features`]) and never fails: what cannot be read is recorded as unknown. [`check`] is pure
//! and turns inputs into a [`Report`], so every case is testable with fixture inputs; the report
//! also says which uprobe path and statistics source the daemon takes.
//!
//! What needs what (kernel ≥ 5.8 splits CAP_BPF and CAP_PERFMON out of CAP_SYS_ADMIN):
//!
//! | capability | for |
//! |---|---|
//! | CAP_BPF | loading the eBPF programs and maps |
//! | CAP_PERFMON | perf events (tracepoints, the per-CPU clock sampler) and `uprobe_multi` links |
//! | CAP_SYS_PTRACE | `/proc/<pid>/exe` and `process_vm_readv` on processes with more privileges or another owner |
//! | CAP_DAC_READ_SEARCH | reading binaries and procfs files the daemon's user does not own |
//! | CAP_CHECKPOINT_RESTORE | `/proc/<pid>/map_files` (mapped binaries of other processes) |
//! | CAP_SYS_ADMIN | optional: uprobes through perf events where the kernel has no `uprobe_multi` links (before 6.6), mounting tracefs, the kernel's BPF run-time statistics |
//! | CAP_SYS_RESOURCE | kernels before 5.11 only: raising RLIMIT_MEMLOCK, which BPF memory is charged to there |
pub mod capability;
pub mod environment;
pub mod features;
pub mod kernel;
mod rules;

use std::{fmt, path::Path};

use serde::Serialize;

pub use capability::Capability;
pub use environment::{Detected, Environment, Placement};
pub use features::{Features, StatsPlan, StatsSource};
pub use kernel::{KernelVersion, SWITCH_STATE_KERNEL};

use crate::probes::{
    tracefs::{Tracefs, TracefsError},
    uprobe_link::UprobePath,
};

/// Tracepoints the kernel side attaches to (`category/event`).
pub const REQUIRED_TRACEPOINTS: [&str; 7] = [
    "sched/sched_switch",
    "sched/sched_wakeup",
    "sched/sched_process_exec",
    "sched/sched_process_exit",
    "syscalls/sys_enter_futex",
    "syscalls/sys_enter_nanosleep",
    "syscalls/sys_enter_sched_yield",
];

/// Everything [`check`] looks at.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// Contents of `/proc/self/status`.
    pub status: String,
    /// Kernel release, if readable.
    pub kernel: Option<KernelVersion>,
    /// Whether `/sys/kernel/btf/vmlinux` exists.
    pub btf: bool,
    /// The usable tracefs ([`crate::probes::tracefs::prepare`] mounts one if needed), or why
    /// there is none.
    pub tracefs: Result<Tracefs, TracefsError>,
    /// Entries of [`REQUIRED_TRACEPOINTS`] missing from tracefs.
    pub missing_tracepoints: Vec<&'static str>,
    /// `kernel.perf_event_paranoid`, if readable.
    pub perf_event_paranoid: Option<i64>,
    /// Soft RLIMIT_MEMLOCK in bytes (`None`: unlimited or unknown).
    pub memlock_bytes: Option<u64>,
    /// Where the daemon runs, and why gocpu thinks so.
    pub placement: Detected,
    /// What the kernel let this process do when tried.
    pub features: Features,
}

impl Inputs {
    /// Reads the inputs under `proc_root` (normally `/proc`) and `sys_root` (normally `/sys`),
    /// with `tracefs` as prepared and `placement` as detected, trying what `probes` configures.
    pub fn gather(
        proc_root: &Path,
        sys_root: &Path,
        tracefs: Result<Tracefs, TracefsError>,
        placement: Detected,
        probes: &crate::config::ProbesConfig,
    ) -> Self {
        let read = |p: std::path::PathBuf| std::fs::read_to_string(p).ok();
        let missing_tracepoints = match &tracefs {
            Ok(t) => REQUIRED_TRACEPOINTS
                .into_iter()
                .filter(|tp| !t.path.join("events").join(tp).join("format").is_file())
                .collect(),
            Err(_) => Vec::new(),
        };
        Self {
            status: read(proc_root.join("self/status")).unwrap_or_default(),
            kernel: KernelVersion::running(proc_root),
            btf: sys_root.join("kernel/btf/vmlinux").exists(),
            tracefs,
            missing_tracepoints,
            perf_event_paranoid: read(proc_root.join("sys/kernel/perf_event_paranoid"))
                .and_then(|s| s.trim().parse().ok()),
            memlock_bytes: memlock_limit(),
            placement,
            features: Features::probe(proc_root, sys_root, probes),
        }
    }
}

fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to write.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0;
    (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing is lost.
    Info,
    /// The daemon runs with less (some processes or some signals missing).
    Degraded,
    /// The daemon cannot load its kernel side.
    Fatal,
}

/// One thing missing, and how to grant it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// What is missing and what it costs.
    pub problem: String,
    /// Exactly how to grant it.
    pub fix: String,
}

/// How uprobes will be attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct UprobePlan {
    /// The path taken.
    pub path: UprobePath,
    /// Whether trying it worked (if not, a finding says why).
    pub usable: bool,
}

/// The result of [`check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Kernel release, if known.
    #[serde(serialize_with = "display_opt")]
    pub kernel: Option<KernelVersion>,
    /// Effective capability set (`CapEff`), if readable.
    #[serde(serialize_with = "hex_opt")]
    pub effective: Option<u64>,
    /// `kernel.perf_event_paranoid` (shown for context: CAP_PERFMON bypasses it).
    pub perf_event_paranoid: Option<i64>,
    /// Where the daemon runs, and why gocpu thinks so.
    pub placement: Detected,
    /// The tracefs in use, if any.
    pub tracefs: Option<Tracefs>,
    /// How uprobes are attached.
    pub uprobes: UprobePlan,
    /// How the programs' run-time figures are obtained (served as where they come from).
    pub bpf_stats: StatsPlan,
    /// Findings, worst first.
    pub findings: Vec<Finding>,
}

fn display_opt<S: serde::Serializer, T: fmt::Display>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

fn hex_opt<S: serde::Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(&format_args!("{v:016x}")),
        None => s.serialize_none(),
    }
}

impl Report {
    /// Whether the daemon cannot start.
    pub fn is_fatal(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Fatal)
    }

    /// The fatal findings and their fixes, one per line pair (what start-up failure prints).
    pub fn fatal_text(&self) -> String {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Fatal)
            .map(|f| format!("{}\n  fix: {}", f.problem, f.fix))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kernel {
            Some(k) => write!(f, "kernel {k}")?,
            None => write!(f, "kernel version unknown")?,
        }
        if let Some(e) = self.effective {
            write!(f, ", CapEff {e:016x}")?;
        }
        if let Some(p) = self.perf_event_paranoid {
            write!(f, ", perf_event_paranoid {p}")?;
        }
        write!(
            f,
            ", {}; uprobes by {}{}; BPF run time {}",
            self.placement.environment.as_str(),
            self.uprobes.path.as_str(),
            if self.uprobes.usable {
                ""
            } else {
                " (unusable)"
            },
            self.bpf_stats.source().as_str(),
        )?;
        if self.findings.is_empty() {
            return write!(f, ": all capabilities and kernel features present");
        }
        for x in &self.findings {
            write!(
                f,
                "\n  [{:?}] {}\n    fix: {}",
                x.severity, x.problem, x.fix
            )?;
        }
        Ok(())
    }
}

/// Turns `inputs` into a report.
pub fn check(inputs: &Inputs) -> Report {
    let mut findings = Vec::new();
    rules::capabilities(inputs, &mut findings);
    rules::placement(inputs, &mut findings);
    rules::tracefs(inputs, &mut findings);
    rules::kernel(inputs, &mut findings);
    let (path, usable) = inputs.features.uprobe_path();
    rules::uprobes(inputs, &mut findings);
    rules::stats(inputs, &mut findings);
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Report {
        kernel: inputs.kernel,
        effective: capability::cap_set(&inputs.status, "CapEff"),
        perf_event_paranoid: inputs.perf_event_paranoid,
        placement: inputs.placement.clone(),
        tracefs: inputs.tracefs.as_ref().ok().cloned(),
        uprobes: UprobePlan { path, usable },
        bpf_stats: inputs.features.stats_plan(),
        findings,
    }
}

#[cfg(test)]
mod tests;
