//! The two ways a uprobe reaches the kernel, behind one attach/detach: `uprobe_multi` links where
//! the kernel has them (6.6+, CAP_BPF + CAP_PERFMON suffice), `perf_event_open` uprobes elsewhere
//! (CAP_SYS_ADMIN on current kernels). The governors, calibration and shutdown use only this.
use std::{
    collections::HashMap,
    fs::File,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    programs::{
        UProbe,
        uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope},
    },
};
use serde::Serialize;

use crate::probes::{ProbeError, uprobe_multi};

/// How this daemon attaches uprobes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UprobePath {
    /// BPF `uprobe_multi` links.
    MultiLink,
    /// One perf event per probe (`perf_event_open` on the uprobe PMU), linked to the program.
    PerfEvent,
}

impl UprobePath {
    /// The label value on /metrics and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MultiLink => "multi_link",
            Self::PerfEvent => "perf_event",
        }
    }
}

/// Which processes a uprobe fires in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every process mapping the file.
    AllProcesses,
    /// The daemon itself (calibration).
    Daemon,
}

/// One attached uprobe; detach it with [`UprobePrograms::detach`] (dropping a multi link also
/// detaches it).
#[derive(Debug)]
pub enum UprobeLink {
    /// A `uprobe_multi` link: closing it detaches.
    Multi(OwnedFd),
    /// aya's perf-event link.
    Perf(UProbeLinkId),
}

/// The loaded uprobe programs, for the path this host has.
#[derive(Debug)]
pub enum UprobePrograms {
    /// Loaded by [`uprobe_multi::load_programs`], by name.
    Multi(HashMap<&'static str, OwnedFd>),
    /// Loaded by aya inside the [`Ebpf`] object.
    Perf,
}

/// The path of an open file that stays valid in any mount namespace and after the file was
/// deleted: what uprobes are attached through.
pub fn fd_path(file: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

fn typed<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut UProbe, ProbeError> {
    ebpf.program_mut(name)
        .ok_or(ProbeError::MissingProgram(name))?
        .try_into()
        .map_err(|source| ProbeError::Program { name, source })
}

impl UprobePrograms {
    /// Loads `names` for `path`: relinked from `object` for multi links, or aya's copies.
    pub fn load(
        path: UprobePath,
        ebpf: &mut Ebpf,
        object: &[u8],
        names: &[&'static str],
    ) -> Result<Self, ProbeError> {
        match path {
            UprobePath::MultiLink => Ok(Self::Multi(uprobe_multi::load_programs(
                ebpf, object, names,
            )?)),
            UprobePath::PerfEvent => {
                for &name in names {
                    typed(ebpf, name)?
                        .load()
                        .map_err(|source| ProbeError::Program { name, source })?;
                }
                Ok(Self::Perf)
            }
        }
    }

    /// The path these programs attach by.
    pub fn path(&self) -> UprobePath {
        match self {
            Self::Multi(_) => UprobePath::MultiLink,
            Self::Perf => UprobePath::PerfEvent,
        }
    }

    /// Attaches `program` at `file_offset` of the file at `target` (see [`fd_path`]).
    pub fn attach(
        &self,
        ebpf: &mut Ebpf,
        program: &'static str,
        target: &Path,
        file_offset: u64,
        scope: Scope,
    ) -> Result<UprobeLink, ProbeError> {
        match self {
            Self::Multi(progs) => {
                let prog = progs
                    .get(program)
                    .ok_or(ProbeError::MissingProgram(program))?;
                let pid = (scope == Scope::Daemon).then(std::process::id);
                Ok(UprobeLink::Multi(uprobe_multi::attach(
                    prog.as_fd(),
                    target,
                    &[file_offset],
                    pid,
                )?))
            }
            Self::Perf => {
                let scope = match scope {
                    Scope::AllProcesses => UProbeScope::AllProcesses,
                    Scope::Daemon => UProbeScope::CallingProcess,
                };
                typed(ebpf, program)?
                    .attach(
                        UProbeAttachLocation::AbsoluteOffset(file_offset),
                        target,
                        scope,
                    )
                    .map(UprobeLink::Perf)
                    .map_err(|source| ProbeError::Program {
                        name: program,
                        source,
                    })
            }
        }
    }

    /// Detaches `link` of `program`.
    pub fn detach(
        ebpf: &mut Ebpf,
        program: &'static str,
        link: UprobeLink,
    ) -> Result<(), ProbeError> {
        match link {
            UprobeLink::Multi(fd) => {
                crate::probes::drop_elsewhere(fd);
                Ok(())
            }
            UprobeLink::Perf(id) => {
                typed(ebpf, program)?
                    .detach(id)
                    .map_err(|source| ProbeError::Program {
                        name: program,
                        source,
                    })
            }
        }
    }

    /// The kernel's run-time statistics of `program` when it was loaded here (multi path).
    pub fn run_stats(&self, program: &str) -> Option<uprobe_multi::RunStats> {
        match self {
            Self::Multi(progs) => uprobe_multi::run_stats(progs.get(program)?.as_fd()).ok(),
            Self::Perf => None,
        }
    }
}
