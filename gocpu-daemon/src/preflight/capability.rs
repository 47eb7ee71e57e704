//! The capabilities gocpu uses, and how to grant one where the daemon runs.
use crate::preflight::environment::Environment;

/// A Linux capability gocpu cares about (numbers from `linux/capability.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    /// CAP_DAC_READ_SEARCH (2).
    DacReadSearch,
    /// CAP_SYS_PTRACE (19).
    SysPtrace,
    /// CAP_SYS_ADMIN (21).
    SysAdmin,
    /// CAP_SYS_RESOURCE (24).
    SysResource,
    /// CAP_PERFMON (38).
    Perfmon,
    /// CAP_BPF (39).
    Bpf,
    /// CAP_CHECKPOINT_RESTORE (40).
    CheckpointRestore,
}

impl Capability {
    /// The capability's bit number.
    pub fn bit(self) -> u32 {
        match self {
            Self::DacReadSearch => 2,
            Self::SysPtrace => 19,
            Self::SysAdmin => 21,
            Self::SysResource => 24,
            Self::Perfmon => 38,
            Self::Bpf => 39,
            Self::CheckpointRestore => 40,
        }
    }

    /// The name Kubernetes and Docker use (`securityContext.capabilities.add`, `--cap-add`).
    pub fn k8s_name(self) -> &'static str {
        match self {
            Self::DacReadSearch => "DAC_READ_SEARCH",
            Self::SysPtrace => "SYS_PTRACE",
            Self::SysAdmin => "SYS_ADMIN",
            Self::SysResource => "SYS_RESOURCE",
            Self::Perfmon => "PERFMON",
            Self::Bpf => "BPF",
            Self::CheckpointRestore => "CHECKPOINT_RESTORE",
        }
    }

    /// What gocpu uses it for.
    pub fn purpose(self) -> &'static str {
        match self {
            Self::DacReadSearch => "reading binaries and procfs files of other users",
            Self::SysPtrace => {
                "opening /proc/<pid>/exe and reading Go runtime state of other processes"
            }
            Self::SysAdmin => "BPF and perf events on kernels before 5.8",
            Self::SysResource => "raising RLIMIT_MEMLOCK for BPF maps on kernels before 5.11",
            Self::Perfmon => {
                "perf events (tracepoints, the CPU clock sampler) and uprobes through uprobe_multi links"
            }
            Self::Bpf => "loading eBPF programs and maps",
            Self::CheckpointRestore => "reading /proc/<pid>/map_files",
        }
    }

    /// Whether the capability is in `set` (a CapEff-style bit mask).
    pub fn in_set(self, set: u64) -> bool {
        set >> self.bit() & 1 == 1
    }
}

pub(crate) fn cap_set(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix(key))?;
    u64::from_str_radix(line.trim_start_matches(':').trim(), 16).ok()
}

pub(crate) fn uid(status: &str) -> Option<u32> {
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    // Real, effective, saved, filesystem: the effective one decides.
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(crate) fn grant(
    cap: Capability,
    env: Environment,
    bounding: Option<u64>,
    uid: Option<u32>,
) -> String {
    let name = cap.k8s_name();
    // In the bounding set but not effective: the process runs as a non-root user, and a
    // non-root user does not get added capabilities as effective ones.
    if bounding.is_some_and(|b| cap.in_set(b)) && uid.is_some_and(|u| u != 0) {
        return match env {
            Environment::Kubernetes => format!(
                "{name} is in the bounding set but the container runs as uid {}: set securityContext.runAsUser: 0 (capabilities only become effective for root)",
                uid.unwrap_or(0)
            ),
            _ => format!(
                "run gocpu as root, or grant the file capability: setcap cap_{}+ep $(command -v gocpu)",
                name.to_ascii_lowercase()
            ),
        };
    }
    match env {
        Environment::Kubernetes => format!(
            "add \"{name}\" to securityContext.capabilities.add of the gocpu container (deploy/kubernetes/base/daemonset.yaml)"
        ),
        Environment::Container => format!("start the container with --cap-add {name}"),
        Environment::Host => {
            "run gocpu as root (or under systemd with AmbientCapabilities=CAP_".to_string()
                + name
                + ")"
        }
    }
}
