//! Uprobes attached once per binary file, shared by every process running it.
//!
//! The kernel places a uprobe on an inode, so one attachment serves all processes mapping that
//! file, in any container. Attachments are reference-counted by the processes using them and kept
//! for a grace period after the last one exits (short-lived processes of one binary do not churn
//! probes), then detached.
use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
    time::{Duration, Instant},
};

use aya::programs::uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope};
use serde::Serialize;

use crate::{
    config::ProbesConfig,
    discovery::{
        ProcKey,
        binaries::{GoFacts, RuntimeHook},
        procfs::FileId,
    },
    probes::loader::KernelProbes,
};

/// The state of one hook in one binary, as reported by the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HookState {
    /// The uprobe is attached.
    Attached {
        /// Virtual address of the probed instruction.
        vaddr: u64,
        /// Its file offset.
        file_offset: u64,
    },
    /// Turned off in the configuration.
    Disabled,
    /// Could not be attached.
    Failed {
        /// Why.
        reason: String,
    },
}

/// A hook and its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookStatus {
    /// The runtime function.
    pub function: &'static str,
    /// Its state.
    #[serde(flatten)]
    pub state: HookState,
}

fn enabled(cfg: &ProbesConfig, hook: RuntimeHook) -> bool {
    match hook {
        RuntimeHook::Futex => cfg.runtime_futex,
        RuntimeHook::Usleep => cfg.runtime_usleep,
        RuntimeHook::Mcall => cfg.runtime_mcall,
    }
}

#[derive(Debug)]
struct BinaryProbes {
    links: Vec<(RuntimeHook, UProbeLinkId)>,
    status: Vec<HookStatus>,
    users: BTreeSet<ProcKey>,
    idle_since: Option<Instant>,
}

/// Every binary's uprobe attachments.
#[derive(Debug, Default)]
pub struct UprobeSet {
    binaries: HashMap<FileId, BinaryProbes>,
}

impl UprobeSet {
    /// Registers `user` as running binary `file` (reachable at `path`), attaching the enabled hooks
    /// on first use. Returns each hook's state in this binary.
    pub fn acquire(
        &mut self,
        kernel: &mut KernelProbes,
        user: ProcKey,
        file: FileId,
        path: &Path,
        facts: &GoFacts,
        cfg: &ProbesConfig,
    ) -> Vec<HookStatus> {
        let entry = self
            .binaries
            .entry(file)
            .or_insert_with(|| attach_all(kernel, path, facts, cfg));
        entry.users.insert(user);
        entry.idle_since = None;
        entry.status.clone()
    }

    /// `user` no longer runs `file`; its probes linger until [`UprobeSet::sweep`].
    pub fn release(&mut self, user: ProcKey, file: FileId, now: Instant) {
        if let Some(b) = self.binaries.get_mut(&file) {
            b.users.remove(&user);
            if b.users.is_empty() {
                b.idle_since = Some(now);
            }
        }
    }

    /// Detaches binaries idle for longer than `linger`.
    pub fn sweep(&mut self, kernel: &mut KernelProbes, now: Instant, linger: Duration) {
        let expired: Vec<FileId> = self
            .binaries
            .iter()
            .filter(|(_, b)| {
                b.idle_since
                    .is_some_and(|t| now.duration_since(t) >= linger)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(b) = self.binaries.remove(&id) {
                detach(kernel, b);
            }
        }
    }

    /// Detaches everything (shutdown).
    pub fn detach_all(&mut self, kernel: &mut KernelProbes) {
        for (_, b) in self.binaries.drain() {
            detach(kernel, b);
        }
    }

    /// Number of binaries with attachments.
    pub fn binaries(&self) -> usize {
        self.binaries.len()
    }

    /// Number of attached uprobes.
    pub fn links(&self) -> usize {
        self.binaries.values().map(|b| b.links.len()).sum()
    }
}

fn attach_all(
    kernel: &mut KernelProbes,
    path: &Path,
    facts: &GoFacts,
    cfg: &ProbesConfig,
) -> BinaryProbes {
    let mut links = Vec::new();
    let mut status = Vec::new();
    for (hook, site) in &facts.sites {
        let state = if !enabled(cfg, *hook) {
            HookState::Disabled
        } else {
            match site {
                Err(reason) => HookState::Failed {
                    reason: reason.clone(),
                },
                Ok(site) => match attach_one(kernel, *hook, path, site.file_offset) {
                    Ok(link) => {
                        links.push((*hook, link));
                        HookState::Attached {
                            vaddr: site.vaddr,
                            file_offset: site.file_offset,
                        }
                    }
                    Err(reason) => HookState::Failed { reason },
                },
            }
        };
        if let HookState::Failed { reason } = &state {
            tracing::warn!(binary = %path.display(), function = hook.function(), %reason, "uprobe not attached");
        }
        status.push(HookStatus {
            function: hook.function(),
            state,
        });
    }
    BinaryProbes {
        links,
        status,
        users: BTreeSet::new(),
        idle_since: None,
    }
}

fn attach_one(
    kernel: &mut KernelProbes,
    hook: RuntimeHook,
    path: &Path,
    file_offset: u64,
) -> Result<UProbeLinkId, String> {
    let prog = kernel.uprobe(hook.program()).map_err(|e| e.to_string())?;
    prog.attach(
        UProbeAttachLocation::AbsoluteOffset(file_offset),
        path,
        UProbeScope::AllProcesses,
    )
    .map_err(|e| format!("attach at offset {file_offset:#x}: {}", error_chain(&e)))
}

/// `e` and its sources, joined: aya's top-level messages omit the errno.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn detach(kernel: &mut KernelProbes, b: BinaryProbes) {
    for (hook, link) in b.links {
        let res = kernel
            .uprobe(hook.program())
            .map_err(|e| e.to_string())
            .and_then(|p| p.detach(link).map_err(|e| error_chain(&e)));
        if let Err(e) = res {
            tracing::warn!(function = hook.function(), error = %e, "uprobe detach failed");
        }
    }
}
