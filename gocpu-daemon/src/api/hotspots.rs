//! `GET /processes/{pid}/hotspots`: where one process's CPU went, symbolized and classified —
//! the CPU split and verdict on top, then the top functions by self and cumulative samples.
//! JSON by default; text with `Accept: text/plain` or `?format=text`.
use std::{collections::HashMap, fmt::Write as _, time::Instant};

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{
    api::{
        AppState,
        error::ApiError,
        window::{ProfileRequest, param},
    },
    model::{
        detectors::{Verdict, judge},
        hotspots::{Hotspots, hotspots},
        process::Tracking,
        report::{CpuSplit, FutexTraffic, OffCpu, Ratios, RuntimeRates, report, runtime_rates},
        runtime_state::{RuntimeView, Value},
    },
};

/// Lines per table unless `?top=` says otherwise; at most [`MAX_TOP`].
const DEFAULT_TOP: usize = 20;
/// Largest `?top=`.
const MAX_TOP: usize = 200;

/// The hotspots document.
#[derive(Debug, Serialize)]
pub struct HotspotsDoc {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub comm: String,
    /// Window covered, seconds.
    pub seconds: u64,
    /// CPU split over the process's report window.
    pub cpu: Option<CpuSplit>,
    /// Ratios.
    pub ratios: Option<Ratios>,
    /// Detector verdict.
    pub verdict: Option<Verdict>,
    /// Off-CPU time by reason.
    pub offcpu: Option<OffCpu>,
    /// futex traffic.
    pub futex: Option<FutexTraffic>,
    /// Runtime call rates.
    pub runtime: Option<RuntimeRates>,
    /// Goroutine census and scheduler gauges from the runtime's memory.
    #[serde(flatten)]
    pub go_runtime: RuntimeView,
    /// Top functions.
    pub hotspots: Hotspots,
}

/// `GET /processes/{pid}/hotspots?seconds=N&top=N&format=json|text`.
pub async fn hotspots_handler(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let shared = &state.shared;
    let req = ProfileRequest::parse(shared, &raw, &q, &["seconds", "top", "format"])?;
    let (pid, seconds) = (req.pid, req.seconds);
    let top = param::<usize>(&q, "top")?.unwrap_or(DEFAULT_TOP);
    if top == 0 || top > MAX_TOP {
        return Err(ApiError::BadRequest(format!(
            "top must be between 1 and {MAX_TOP}"
        )));
    }
    let text = match q.get("format").map(String::as_str) {
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/plain") && !a.contains("application/json")),
        Some("text") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "unknown format {other:?}: expected json or text"
            )));
        }
    };
    let not_found =
        || ApiError::NotFound(format!("pid {pid} is not a Go process tracked by gocpu"));
    let manager = shared.manager();
    let now = Instant::now();
    let fresh = manager.read_current(pid, now);
    let model = shared.model();
    let p = model.get(pid).ok_or_else(not_found)?;
    let hooks = manager.hook_status(p.file, p.key);
    drop(manager);
    if p.tracking != Tracking::Tracked {
        return Err(ApiError::NotFound(format!(
            "pid {pid} is listed but not tracked"
        )));
    }
    let Some(a) = p.analysis.as_ref() else {
        return Err(ApiError::NotFound(format!(
            "pid {pid} has no sampled profile"
        )));
    };
    let since = req.since(now);
    let rep = fresh.map(|c| report(p, now, &c));
    let runtime = fresh.map(|c| runtime_rates(p, now, &c, &hooks));
    let doc = HotspotsDoc {
        pid,
        comm: p.comm.clone(),
        seconds,
        cpu: rep.as_ref().and_then(|r| r.cpu.clone()),
        offcpu: rep.as_ref().and_then(|r| r.offcpu.clone()),
        go_runtime: a.runtime.view(),
        futex: rep.as_ref().and_then(|r| r.futex.clone()),
        runtime,
        ratios: rep.as_ref().and_then(|r| r.ratios),
        verdict: rep
            .as_ref()
            .map(|r| judge(&shared.config.detectors, r, p.goroutine_growth())),
        hotspots: hotspots(&a.profile, since, top),
    };
    drop(model);
    if text {
        Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            render_text(&doc),
        )
            .into_response())
    } else {
        Ok(Json(doc).into_response())
    }
}

fn render_text(d: &HotspotsDoc) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "pid {} ({}), last {} s", d.pid, d.comm, d.seconds);
    if let Some(v) = &d.verdict {
        let flags: Vec<&str> = v.flags.iter().map(|f| f.as_str()).collect();
        let _ = writeln!(
            s,
            "state: {}  pseudo-idle score: {}  flags: {}",
            v.state.as_str(),
            v.pseudo_idle_score
                .map_or("-".to_string(), |x| format!("{x:.2}")),
            if flags.is_empty() {
                "none".to_string()
            } else {
                flags.join(", ")
            }
        );
    }
    if let Some(c) = &d.cpu {
        let _ = writeln!(
            s,
            "cpu: {:.2} cores over {:.1} s, {} samples, {:.0}% in kernel",
            c.cores,
            c.window_seconds,
            c.samples,
            c.kernel_share * 100.0
        );
        let mut classes: Vec<_> = c.classes.iter().filter(|(_, v)| v.share > 0.0).collect();
        classes.sort_by(|a, b| b.1.share.total_cmp(&a.1.share));
        let parts: Vec<String> = classes
            .iter()
            .map(|(k, v)| format!("{k} {:.1}%", v.share * 100.0))
            .collect();
        let _ = writeln!(s, "split: {}", parts.join("  "));
    }
    if let Some(r) = &d.ratios {
        let _ = writeln!(
            s,
            "ratios: spin {:.2}  park {:.2}  syscall {:.2}",
            r.spin, r.park, r.syscall
        );
    }
    match &d.go_runtime.goroutines {
        Value::Known(g) => {
            let mut reasons: Vec<_> = g.by_wait_reason.iter().collect();
            reasons.sort_by(|a, b| b.1.cmp(a.1));
            let reasons: Vec<String> = reasons
                .iter()
                .take(4)
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            let _ = writeln!(
                s,
                "goroutines: {}{}; waiting: {}",
                g.total,
                g.growth_per_second
                    .map(|r| format!(" ({r:+.1}/s)"))
                    .unwrap_or_default(),
                if reasons.is_empty() {
                    "-".to_string()
                } else {
                    reasons.join(", ")
                }
            );
        }
        Value::Unavailable { unavailable } => {
            let _ = writeln!(s, "goroutines: unavailable ({unavailable})");
        }
    }
    let sv = &d.go_runtime.scheduler;
    let g = |v: &Value<i64>| v.known().map_or("?".to_string(), |x| x.to_string());
    let _ = writeln!(
        s,
        "scheduler: gomaxprocs {} idleprocs {} threads {} spinningthreads {} idlethreads {} runqueue {}",
        g(&sv.gomaxprocs),
        g(&sv.idle_procs),
        g(&sv.threads),
        g(&sv.spinning_threads),
        g(&sv.idle_threads),
        g(&sv.runqueue)
    );
    if let Some(rt) = &d.runtime {
        let rates: Vec<String> = rt
            .calls
            .iter()
            .filter_map(|(f, r)| Some(format!("{f} {:.0}/s", r.per_second?)))
            .collect();
        if !rates.is_empty() {
            let _ = writeln!(s, "runtime calls: {}", rates.join("  "));
        }
        if let Some(a) = rt.wake_amplification {
            let _ = writeln!(
                s,
                "wake amplification: {a:.3} futex wakes per goroutine switch"
            );
        }
    }
    if let Some(f) = &d.futex {
        let callers: Vec<String> = f
            .callers
            .iter()
            .take(3)
            .map(|c| format!("{} ({:?}) {:.0}/s", c.function, c.op, c.per_second))
            .collect();
        let _ = writeln!(
            s,
            "futex: {:.0} waits/s, {:.0} wakes/s; callers: {}",
            f.wait_per_second,
            f.wake_per_second,
            if callers.is_empty() {
                "-".to_string()
            } else {
                callers.join(", ")
            }
        );
    }
    if let Some(o) = &d.offcpu {
        let mut parts: Vec<String> = o
            .blocked_seconds
            .iter()
            .filter(|(_, v)| **v > 0.0)
            .map(|(k, v)| format!("{k} {v:.1}s"))
            .collect();
        parts.push(format!("runnable {:.1}s", o.runnable_seconds));
        let _ = writeln!(s, "off-CPU thread-seconds: {}", parts.join("  "));
    }
    let _ = writeln!(s, "\n{} samples. Top by self:", d.hotspots.samples);
    let _ = writeln!(
        s,
        "{:>7} {:>7}  {:<10} function (location)",
        "self%", "cum%", "class"
    );
    for h in &d.hotspots.by_self {
        let _ = writeln!(
            s,
            "{:>6.1}% {:>6.1}%  {:<10} {}{}{}",
            h.self_share * 100.0,
            h.cumulative_share * 100.0,
            h.class.as_str(),
            h.function,
            if h.inlined { " [inlined]" } else { "" },
            h.location
                .as_deref()
                .map(|l| format!(" ({l})"))
                .unwrap_or_default()
        );
    }
    s
}
