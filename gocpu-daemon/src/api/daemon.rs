//! `/daemon`: the daemon's own state: its start-up report (where it runs, what it tried and what
//! it could not get), how it reaches the kernel now, and what its programs cost.
use axum::{Json, extract::State};
use serde::Serialize;

use crate::{
    api::{AppState, error::ApiError},
    preflight::{Report, StatsSource},
    probes::uprobe_link::UprobePath,
};

/// One program's cost so far.
#[derive(Debug, Serialize)]
pub struct ProgramCost {
    /// Program name.
    pub program: &'static str,
    /// Seconds spent running it.
    pub run_seconds: f64,
    /// Runs.
    pub runs: u64,
}

/// The `/daemon` document.
#[derive(Debug, Serialize)]
pub struct DaemonView<'a> {
    /// gocpu's version.
    pub version: &'static str,
    /// The start-up report.
    pub preflight: &'a Report,
    /// How uprobes are attached.
    pub uprobe_path: UprobePath,
    /// Uprobes attached right now, over all binaries.
    pub uprobes_attached: usize,
    /// Binaries with uprobes.
    pub probed_binaries: usize,
    /// Where `programs` figures come from.
    pub bpf_stats: StatsSource,
    /// Every loaded program's cost.
    pub programs: Vec<ProgramCost>,
}

/// `GET /daemon`.
pub async fn daemon_handler(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let s = &state.shared;
    let (uprobe_path, (binaries, links), bpf_stats, programs) = {
        let m = s.manager();
        (
            m.uprobe_path(),
            m.attachment_counts(),
            m.stats_source(),
            m.program_stats(),
        )
    };
    let view = DaemonView {
        version: env!("CARGO_PKG_VERSION"),
        preflight: &s.preflight,
        uprobe_path,
        uprobes_attached: links,
        probed_binaries: binaries,
        bpf_stats,
        programs: programs
            .into_iter()
            .map(|p| ProgramCost {
                program: p.name,
                run_seconds: p.run_time.as_secs_f64(),
                runs: p.run_count,
            })
            .collect(),
    };
    serde_json::to_value(view)
        .map(Json)
        .map_err(|e| ApiError::Internal(format!("encoding /daemon: {e}")))
}
