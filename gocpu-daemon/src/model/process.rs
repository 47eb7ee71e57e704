//! A tracked Go process: identity, binary facts, attach state and counter history.
use std::{
    path::PathBuf,
    sync::Arc,
    time::{Instant, SystemTime},
};

use gocpu_common::ProcStats;

use crate::{
    discovery::{
        FileKey, ProcKey,
        binaries::BinaryFacts,
        cgroup::{CgroupIdentity, PodRef},
    },
    model::{analysis::ProcessAnalysis, window::Window},
    probes::{
        syscalls::Estimated,
        uprobes::{HookState, HookStatus},
    },
};

/// Whether the kernel accounts this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tracking {
    /// In the kernel table: counters are live.
    Tracked,
    /// Listed but not accounted, with the reason (unanalysable binary, table full, ...).
    Untracked {
        /// Why.
        reason: String,
    },
}

/// One Go process known to the daemon.
#[derive(Debug)]
pub struct GoProcess {
    /// Identity.
    pub key: ProcKey,
    /// Command name.
    pub comm: String,
    /// Binary path as the process sees it.
    pub exe: PathBuf,
    /// Binary file identity.
    pub file: FileKey,
    /// Container and pod identity from the process's cgroup (empty for host processes).
    pub container: CgroupIdentity,
    /// The pod's namespace, name and container name, when resolved.
    pub pod: Option<PodRef>,
    /// Binary analysis.
    pub binary: Arc<BinaryFacts>,
    /// Kernel accounting state.
    pub tracking: Tracking,
    /// When tracking started (wall clock).
    pub since: SystemTime,
    /// When tracking started (monotonic).
    pub since_mono: Instant,
    /// Counter history.
    pub window: Window,
    /// As of the latest poll: see [`Estimated::syscalls_known_since`].
    pub syscalls_known_since: Option<(Instant, ProcStats)>,
    /// Sampled analysis (profile, blocking, threads); `None` when the binary cannot be
    /// symbolized.
    pub analysis: Option<ProcessAnalysis>,
}

impl GoProcess {
    /// Goroutine counts at the window's start and now, when the runtime's memory is readable.
    pub fn goroutine_growth(&self) -> Option<crate::model::detectors::GoroutineGrowth> {
        let (before, now) = self.analysis.as_ref()?.runtime.goroutine_growth()?;
        Some(crate::model::detectors::GoroutineGrowth { before, now })
    }

    /// The report over the window ending at the latest poll (`None` before the first poll).
    pub fn latest_report(&self) -> Option<crate::model::report::Report> {
        let (at, _) = self.window.latest()?;
        Some(crate::model::report::report(
            self,
            *at,
            &self.latest_estimated(),
        ))
    }

    /// The latest cumulative counters read from the kernel.
    pub fn latest(&self) -> ProcStats {
        self.window.latest().map(|(_, s)| *s).unwrap_or_default()
    }

    /// The latest counters with how complete their syscall estimate is.
    pub fn latest_estimated(&self) -> Estimated {
        Estimated {
            stats: self.latest(),
            syscalls_known_since: self.syscalls_known_since,
        }
    }

    /// Summary attach state given the process's hook states.
    pub fn attach_state(&self, hooks: &[HookStatus]) -> AttachState {
        if let Tracking::Untracked { .. } = self.tracking {
            return AttachState::Untracked;
        }
        let failed = hooks
            .iter()
            .filter(|h| matches!(h.state, HookState::Failed { .. }))
            .count();
        let working = hooks
            .iter()
            .filter(|h| matches!(h.state, HookState::Governed { .. }))
            .count();
        match (working, failed) {
            (_, 0) => AttachState::Attached,
            (0, _) => AttachState::Failed,
            _ => AttachState::Partial,
        }
    }

    /// Human-readable reason for anything short of fully attached.
    pub fn attach_reason(&self, hooks: &[HookStatus]) -> Option<String> {
        if let Tracking::Untracked { reason } = &self.tracking {
            return Some(reason.clone());
        }
        let reasons: Vec<String> = hooks
            .iter()
            .filter_map(|h| match &h.state {
                HookState::Failed { reason } => Some(format!("{}: {reason}", h.function)),
                _ => None,
            })
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}

/// Summary attach state of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachState {
    /// Accounted, every enabled uprobe attached.
    Attached,
    /// Accounted, some uprobes failed.
    Partial,
    /// Accounted (on-CPU time, switches) but no uprobe attached.
    Failed,
    /// Listed only.
    Untracked,
}

impl AttachState {
    /// Stable snake_case name (metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attached => "attached",
            Self::Partial => "partial",
            Self::Failed => "failed",
            Self::Untracked => "untracked",
        }
    }
}
