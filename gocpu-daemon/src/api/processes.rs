//! `/processes` and `/processes/{pid}`: what gocpu knows about each Go process.
use std::{
    sync::Arc,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json,
    extract::{Path, State},
};
use gocpu_common::ProcStats;
use gocpu_gobin::sites::UprobeHandling;
use serde::Serialize;

use crate::{
    api::{
        AppState,
        error::{ApiError, parse_pid},
    },
    discovery::binaries::{BinaryFacts, BinaryIdentity, OffsetsKnowledge, PclntabFacts},
    ingest::Shared,
    model::{
        detectors::{Verdict, judge},
        process::{AttachState, GoProcess, Tracking},
        report::{Report, RuntimeRates, report, runtime_rates},
        runtime_state::RuntimeView,
    },
    probes::uprobes::HookStatus,
};

/// One entry of `GET /processes`.
#[derive(Debug, Serialize)]
pub struct ProcessSummary {
    /// Process id.
    pub pid: u32,
    /// Start time, clock ticks since boot (with pid, the process identity).
    pub start_time_ticks: u64,
    /// Start time, seconds since the Unix epoch.
    pub started_at: f64,
    /// Binary path as the process sees it.
    pub exe: String,
    /// Command name.
    pub comm: String,
    /// Go version from build info.
    pub go_version: Option<String>,
    /// Attach state.
    pub attach_state: AttachState,
    /// Why the state is not "attached", if it is not.
    pub reason: Option<String>,
    /// What the detectors say (state, pseudo-idle score, flags) over the window.
    pub verdict: Option<Verdict>,
}

/// `GET /processes`.
#[derive(Debug, Serialize)]
pub struct ProcessList {
    /// Every known Go process, by pid.
    pub processes: Vec<ProcessSummary>,
}

/// What is known about a process's binary.
#[derive(Debug, Serialize)]
pub struct BinarySummary {
    /// Version, build IDs and build mode (flattened into this object).
    #[serde(flatten)]
    pub identity: BinaryIdentity,
    /// `.gopclntab` format and how it was found.
    pub pclntab: PclntabFacts,
    /// Where runtime struct offsets come from ("dwarf", "table:<release>"), if known.
    pub offsets_source: Option<String>,
    /// Why struct offsets are unknown, if they are.
    pub offsets_unavailable: Option<String>,
    /// Probe sites of the runtime functions gocpu hooks.
    pub probe_sites: Vec<SiteSummary>,
}

/// One hooked function's probe sites, or why it has none.
#[derive(Debug, Serialize)]
pub struct SiteSummary {
    /// Function name.
    pub function: &'static str,
    /// Entry address.
    pub entry: Option<u64>,
    /// Probed address (the cheapest safe entry instruction).
    pub vaddr: Option<u64>,
    /// File offset of `vaddr`.
    pub file_offset: Option<u64>,
    /// Kernel handling of a hit: optimizable, emulated, single_stepped.
    pub handling: Option<String>,
    /// Whether a call that grows its stack hits twice.
    pub repeats_on_stack_growth: Option<bool>,
    /// Number of RET instructions (return sites).
    pub rets: Option<usize>,
    /// Why the function cannot be probed, if so.
    pub error: Option<String>,
}

/// Counter values (cumulative or over a window).
#[derive(Debug, Serialize)]
pub struct Counts {
    /// Entries into runtime.futex.
    pub futex_calls: u64,
    /// Entries into runtime.usleep.
    pub usleep_calls: u64,
    /// Entries into runtime.mcall.
    pub mcall_calls: u64,
    /// On-CPU seconds.
    pub oncpu_seconds: f64,
    /// Voluntary context switches.
    pub voluntary_context_switches: u64,
    /// Involuntary context switches.
    pub involuntary_context_switches: u64,
}

impl From<&ProcStats> for Counts {
    fn from(s: &ProcStats) -> Self {
        Counts {
            futex_calls: s.futex_calls,
            usleep_calls: s.usleep_calls,
            mcall_calls: s.mcall_calls,
            oncpu_seconds: s.oncpu_ns as f64 / 1e9,
            voluntary_context_switches: s.voluntary_switches,
            involuntary_context_switches: s.involuntary_switches,
        }
    }
}

/// Counts over the sliding window, with rates.
#[derive(Debug, Serialize)]
pub struct WindowCounts {
    /// Window length actually covered, in seconds (shorter right after tracking starts).
    pub seconds: f64,
    /// Counts over the window.
    #[serde(flatten)]
    pub counts: Counts,
    /// Average CPU cores used over the window (on-CPU seconds per second).
    pub cpu_cores: f64,
    /// runtime.futex entries per second.
    pub futex_calls_per_second: f64,
    /// runtime.usleep entries per second.
    pub usleep_calls_per_second: f64,
    /// runtime.mcall entries per second.
    pub mcall_calls_per_second: f64,
    /// Context switches (both kinds) per second.
    pub context_switches_per_second: f64,
}

/// `GET /processes/{pid}`.
#[derive(Debug, Serialize)]
pub struct ProcessDetail {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: ProcessSummary,
    /// The binary.
    pub binary: Option<BinarySummary>,
    /// Uprobe state per runtime function.
    pub probes: Vec<HookStatus>,
    /// When tracking started, seconds since the Unix epoch.
    pub tracked_since: f64,
    /// Cumulative counts since tracking started (null when not tracked).
    pub totals: Option<Counts>,
    /// Counts over the sliding window (null when not tracked).
    pub window: Option<WindowCounts>,
    /// Where the CPU and wall time went over the window.
    #[serde(flatten)]
    pub report: Option<Report>,
    /// Runtime call rates (governed uprobes), wake-up amplification, cgo call rate.
    pub runtime: Option<RuntimeRates>,
    /// Goroutine census and scheduler gauges read from the runtime's memory.
    #[serde(flatten)]
    pub go_runtime: Option<RuntimeView>,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn summary(
    shared: &Shared,
    p: &GoProcess,
    hooks: &[HookStatus],
    report: Option<&Report>,
) -> ProcessSummary {
    let clock = &shared.clock;
    ProcessSummary {
        pid: p.key.pid,
        start_time_ticks: p.key.start_ticks,
        started_at: clock.boot_time as f64
            + p.key.start_ticks as f64 / clock.ticks_per_second as f64,
        exe: p.exe.display().to_string(),
        comm: p.comm.clone(),
        go_version: p.binary.go().and_then(|g| g.identity.go_version.clone()),
        attach_state: p.attach_state(hooks),
        reason: p.attach_reason(hooks),
        verdict: report.map(|r| judge(&shared.config.detectors, r, p.goroutine_growth())),
    }
}

fn handling_name(h: UprobeHandling) -> &'static str {
    match h {
        UprobeHandling::Optimizable => "optimizable",
        UprobeHandling::Emulated => "emulated",
        UprobeHandling::SingleStepped => "single_stepped",
        UprobeHandling::Rejected => "rejected",
    }
}

fn binary_summary(b: &BinaryFacts) -> Option<BinarySummary> {
    let g = b.go()?;
    let (offsets_source, offsets_unavailable) = match &g.offsets {
        OffsetsKnowledge::Known { source, .. } => (Some(source.clone()), None),
        OffsetsKnowledge::Unavailable(why) => (None, Some(why.clone())),
    };
    let probe_sites = g
        .sites
        .iter()
        .map(|(hook, site)| match site {
            Ok(s) => SiteSummary {
                function: hook.function(),
                entry: Some(s.entry),
                vaddr: Some(s.vaddr),
                file_offset: Some(s.file_offset),
                handling: Some(handling_name(s.handling).to_string()),
                repeats_on_stack_growth: Some(s.repeats_on_stack_growth),
                rets: Some(s.rets),
                error: None,
            },
            Err(e) => SiteSummary {
                function: hook.function(),
                entry: None,
                vaddr: None,
                file_offset: None,
                handling: None,
                repeats_on_stack_growth: None,
                rets: None,
                error: Some(e.clone()),
            },
        })
        .collect();
    Some(BinarySummary {
        identity: g.identity.clone(),
        pclntab: g.pclntab.clone(),
        offsets_source,
        offsets_unavailable,
        probe_sites,
    })
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// `GET /processes`.
pub async fn list(State(state): State<AppState>) -> Json<ProcessList> {
    let shared = &state.shared;
    // Lock order: manager, then model.
    let manager = shared.manager();
    let model = shared.model();
    Json(ProcessList {
        processes: model
            .iter()
            .map(|p| {
                let hooks = manager.hook_status(p.file, p.key);
                summary(shared, p, &hooks, p.latest_report().as_ref())
            })
            .collect(),
    })
}

/// `GET /processes/{pid}`: 400 for a malformed pid, 404 for one gocpu does not know.
pub async fn detail(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<ProcessDetail>, ApiError> {
    let pid = parse_pid(&raw)?;
    let shared: &Arc<Shared> = &state.shared;
    let not_found =
        || ApiError::NotFound(format!("pid {pid} is not a Go process tracked by gocpu"));
    let tracked = shared
        .model()
        .get(pid)
        .map(|p| p.tracking == Tracking::Tracked)
        .ok_or_else(not_found)?;
    // Read the kernel counters now rather than serving the last poll: rates over the window
    // then end at this very request.
    let manager = shared.manager();
    let now = Instant::now();
    let fresh = if tracked {
        manager.read_current(pid, now)
    } else {
        None
    };
    let model = shared.model();
    let p = model.get(pid).ok_or_else(not_found)?;
    let hooks = manager.hook_status(p.file, p.key);
    drop(manager);
    let current = fresh.or_else(|| (p.tracking == Tracking::Tracked).then(|| p.latest_estimated()));
    let totals = current.map(|c| c.stats);
    let window = totals.map(|t| {
        let d = p.window.delta(now, &t);
        let secs = d.seconds;
        WindowCounts {
            seconds: secs,
            counts: Counts::from(&d.stats),
            cpu_cores: if secs > 0.0 {
                d.stats.oncpu_ns as f64 / 1e9 / secs
            } else {
                0.0
            },
            futex_calls_per_second: rate(d.stats.futex_calls, secs),
            usleep_calls_per_second: rate(d.stats.usleep_calls, secs),
            mcall_calls_per_second: rate(d.stats.mcall_calls, secs),
            context_switches_per_second: rate(
                d.stats
                    .voluntary_switches
                    .saturating_add(d.stats.involuntary_switches),
                secs,
            ),
        }
    });
    let report = current.map(|c| report(p, now, &c));
    let runtime = current.map(|c| runtime_rates(p, now, &c, &hooks));
    Ok(Json(ProcessDetail {
        summary: summary(shared, p, &hooks, report.as_ref()),
        binary: binary_summary(&p.binary),
        probes: hooks,
        tracked_since: unix(p.since),
        totals: totals.as_ref().map(Counts::from),
        window,
        report,
        runtime,
        go_runtime: p.analysis.as_ref().map(|a| a.runtime.view()),
    }))
}
