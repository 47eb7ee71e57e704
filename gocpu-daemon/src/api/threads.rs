//! `GET /processes/{pid}/threads`: each thread of a Go process — its role (sysmon, GC worker,
//! spinning M, idle M, M running Go, cgo, native), CPU time, where it waits, and its state.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{Path, State},
};
use gocpu_common::OFF_FRAMES;
use serde::Serialize;

use crate::{
    api::{
        AppState,
        error::{ApiError, parse_pid},
    },
    classify::CpuClass,
    model::{
        process::Tracking,
        threads::{MState, ThreadEvidence, ThreadRole, role},
    },
};

/// One thread.
#[derive(Debug, Serialize)]
pub struct ThreadDoc {
    /// Thread id.
    pub tid: u32,
    /// Thread name (comm).
    pub name: String,
    /// Scheduler state letter from procfs (R running, S sleeping, D disk wait, ...).
    pub state: String,
    /// Inferred role.
    pub role: ThreadRole,
    /// Whether the thread is an M of the Go runtime.
    pub go_thread: bool,
    /// On-CPU seconds since gocpu first saw the thread switch (kernel-measured).
    pub cpu_seconds: Option<f64>,
    /// Seconds blocked since first seen.
    pub blocked_seconds: Option<f64>,
    /// Seconds runnable but waiting for a CPU since first seen.
    pub runnable_wait_seconds: Option<f64>,
    /// CPU samples over the window.
    pub samples: u64,
    /// Class with most samples over the window.
    pub top_class: Option<CpuClass>,
    /// The thread's CPU split: samples per class over the window (classes with samples only).
    pub classes: std::collections::BTreeMap<&'static str, u64>,
    /// Innermost Go function where it last blocked.
    pub blocked_in: Option<String>,
    /// Voluntary and involuntary context switches since first seen.
    pub context_switches: Option<(u64, u64)>,
}

/// The threads document.
#[derive(Debug, Serialize)]
pub struct ThreadsDoc {
    /// Process id.
    pub pid: u32,
    /// Window the sample-based fields cover, seconds.
    pub window_seconds: u64,
    /// Threads by tid.
    pub threads: Vec<ThreadDoc>,
}

const SYSMON: &str = "runtime.sysmon";
const FIND_RUNNABLE: [&str; 4] = [
    "runtime.findRunnable",
    "runtime.findrunnable",
    "runtime.stealWork",
    "runtime.runqgrab",
];

/// `GET /processes/{pid}/threads`.
pub async fn threads_handler(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<ThreadsDoc>, ApiError> {
    let pid = parse_pid(&raw)?;
    let shared = &state.shared;
    let tasks = shared
        .discovery
        .procfs()
        .tasks(pid)
        .map_err(|e| ApiError::NotFound(format!("pid {pid}: {e}")))?;
    let window = shared.config.ingest.window_seconds;
    let model = shared.model();
    let p = model.get(pid).ok_or_else(|| {
        ApiError::NotFound(format!("pid {pid} is not a Go process tracked by gocpu"))
    })?;
    if p.tracking != Tracking::Tracked {
        return Err(ApiError::NotFound(format!(
            "pid {pid} is listed but not tracked"
        )));
    }
    let Some(a) = p.analysis.as_ref() else {
        return Err(ApiError::NotFound(format!("pid {pid} has no analysis")));
    };
    let now = Instant::now();
    let since = now.checked_sub(Duration::from_secs(window)).unwrap_or(now);
    let classes = a.profile.threads_since(since);
    let mut sysmon: HashMap<u32, bool> = HashMap::new();
    let mut finding: HashMap<u32, bool> = HashMap::new();
    for (stack, tid, _, _) in a.profile.stacks_since(since) {
        let names = || stack.frames.iter().filter_map(|f| f.go_function());
        if names().any(|f| f == SYSMON) {
            sysmon.insert(tid, true);
        }
        if names().any(|f| FIND_RUNNABLE.contains(&f)) {
            finding.insert(tid, true);
        }
    }
    // The runtime's M list, when it could be read: thread id -> M.
    let ms: Option<HashMap<u32, &crate::runtime::MInfo>> = a
        .runtime
        .ms
        .as_ref()
        .and_then(|r| r.as_ref().ok())
        .map(|ms| {
            ms.iter()
                .filter(|m| m.tid != 0)
                .map(|m| (m.tid, m))
                .collect()
        });
    let threads = tasks
        .into_iter()
        .map(|t| {
            let tid = t.pid;
            let kernel = a.threads.get(&tid);
            let blocked_at = kernel.and_then(|k| {
                let depth = (k.off_depth as usize).min(OFF_FRAMES);
                a.cached_stack(&k.off_ips[..depth])
            });
            let m = ms.as_ref().map(|ms| match ms.get(&tid) {
                None => MState::NotAnM,
                Some(mi) => MState::M {
                    spinning: mi.spinning,
                    incgo: mi.incgo,
                    idle: !mi.has_p && !mi.has_curg,
                },
            });
            let ev = ThreadEvidence {
                m,
                classes: classes.get(&tid).copied().unwrap_or_default(),
                go_thread: a.profile.is_go_thread(tid),
                blocked_at: blocked_at.clone(),
                saw_sysmon: sysmon.contains_key(&tid),
                saw_find_runnable: finding.contains_key(&tid),
            };
            let samples: u64 = ev.classes.iter().sum();
            ThreadDoc {
                tid,
                name: t.comm.clone(),
                state: t.state.to_string(),
                role: role(&ev),
                go_thread: ev.go_thread,
                cpu_seconds: kernel.map(|k| k.oncpu_ns as f64 / 1e9),
                blocked_seconds: kernel.map(|k| k.blocked_ns as f64 / 1e9),
                runnable_wait_seconds: kernel.map(|k| k.runq_wait_ns as f64 / 1e9),
                samples,
                top_class: (samples > 0).then(|| {
                    CpuClass::ALL
                        .iter()
                        .copied()
                        .max_by_key(|c| ev.classes[c.index()])
                        .unwrap_or(CpuClass::User)
                }),
                classes: CpuClass::ALL
                    .iter()
                    .filter(|c| ev.classes[c.index()] > 0)
                    .map(|c| (c.as_str(), ev.classes[c.index()]))
                    .collect(),
                blocked_in: blocked_at.and_then(|s| {
                    s.frames
                        .iter()
                        .find_map(|f| f.go_function())
                        .map(str::to_string)
                }),
                context_switches: kernel.map(|k| (k.voluntary_switches, k.involuntary_switches)),
            }
        })
        .collect();
    Ok(Json(ThreadsDoc {
        pid,
        window_seconds: window,
        threads,
    }))
}
