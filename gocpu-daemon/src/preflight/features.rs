//! What this kernel lets this process do, found by trying it: capability sets say what the process
//! holds, not what each kernel asks for (creating a perf-event uprobe went from CAP_SYS_ADMIN to
//! CAP_PERFMON in 5.8 and back in 2025's stable kernels). Each probe leaves nothing behind.
use std::{os::fd::OwnedFd, path::Path};

use serde::Serialize;

use crate::{
    config::{BpfStatsMode, ProbesConfig, UprobeAttachMode},
    probes::{
        calibrate,
        uprobe_link::UprobePath,
        uprobe_multi::{self, Support},
    },
};

/// Where the programs' run-time figures (`gocpu_bpf_program_run_seconds_total`) come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsSource {
    /// The kernel's BPF run-time statistics (gocpu holds BPF_ENABLE_STATS, or the node runs
    /// with `kernel.bpf_stats_enabled=1`).
    Kernel,
    /// The programs time themselves (two clock reads per run, into a per-CPU map).
    SelfTimed,
}

impl StatsSource {
    /// The label value on /metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::SelfTimed => "self_timed",
        }
    }
}

/// How the daemon gets its programs' run-time figures; decided by preflight, carried out by the
/// loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsPlan {
    /// gocpu turns the kernel's statistics on (BPF_ENABLE_STATS) for as long as it runs.
    Enable,
    /// The node keeps them on already (`kernel.bpf_stats_enabled=1`).
    Node,
    /// The programs time themselves (`SELF_TIMING`).
    SelfTimed,
}

impl StatsPlan {
    /// Where the figures will come from.
    pub fn source(self) -> StatsSource {
        match self {
            Self::Enable | Self::Node => StatsSource::Kernel,
            Self::SelfTimed => StatsSource::SelfTimed,
        }
    }
}

/// Serialized as its [`StatsSource`]: what the figures are, not how they were arranged.
impl Serialize for StatsPlan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.source().serialize(s)
    }
}

/// The results of trying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    /// Whether `uprobe_multi` links can be created.
    pub uprobe_multi: Support,
    /// Whether a perf-event uprobe can be created (tried only when multi links cannot, or the
    /// configuration asks for perf events).
    pub perf_uprobe: Option<Result<(), String>>,
    /// The configured attach mode.
    pub attach_mode: UprobeAttachMode,
    /// The configured statistics mode.
    pub stats_mode: BpfStatsMode,
    /// Whether BPF_ENABLE_STATS is allowed.
    pub enable_stats: Result<(), String>,
    /// Whether the node already collects run-time statistics (`kernel.bpf_stats_enabled`).
    pub node_stats: bool,
}

impl Features {
    /// Tries each feature (`proc_root` and `sys_root` locate the sysctl and the uprobe PMU) for
    /// the configured uprobe attach and statistics modes.
    pub fn probe(proc_root: &Path, sys_root: &Path, cfg: &ProbesConfig) -> Self {
        let attach_mode = cfg.uprobe_attach;
        let uprobe_multi = uprobe_multi::support();
        let perf_uprobe = (uprobe_multi != Support::Available
            || attach_mode == UprobeAttachMode::PerfEvent)
            .then(|| perf_uprobe(sys_root));
        let enable_stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .map(drop)
            .map_err(|e| crate::probes::uprobes::error_chain(&e));
        let node_stats = std::fs::read_to_string(proc_root.join("sys/kernel/bpf_stats_enabled"))
            .is_ok_and(|s| s.trim() == "1");
        Self {
            uprobe_multi,
            perf_uprobe,
            attach_mode,
            stats_mode: cfg.bpf_stats,
            enable_stats,
            node_stats,
        }
    }

    /// The uprobe path to use, and whether it is expected to work.
    pub fn uprobe_path(&self) -> (UprobePath, bool) {
        match (&self.uprobe_multi, &self.perf_uprobe) {
            (Support::Available, _) if self.attach_mode == UprobeAttachMode::Auto => {
                (UprobePath::MultiLink, true)
            }
            (_, Some(Ok(()))) => (UprobePath::PerfEvent, true),
            _ => (UprobePath::PerfEvent, false),
        }
    }

    /// How run-time figures will be obtained: the kernel's where gocpu may turn them on or the
    /// node keeps them, unless the configuration asks for self-timing.
    pub fn stats_plan(&self) -> StatsPlan {
        if self.stats_mode == BpfStatsMode::SelfTimed {
            StatsPlan::SelfTimed
        } else if self.enable_stats.is_ok() {
            StatsPlan::Enable
        } else if self.node_stats {
            StatsPlan::Node
        } else {
            StatsPlan::SelfTimed
        }
    }
}

/// Creates (and at once closes) a perf-event uprobe on a function of the daemon's own binary, as
/// aya does for every hook on the perf path.
fn perf_uprobe(sys_root: &Path) -> Result<(), String> {
    let pmu = sys_root.join("bus/event_source/devices/uprobe/type");
    let pmu_type: u32 = std::fs::read_to_string(&pmu)
        .map_err(|e| format!("no uprobe PMU ({}: {e})", pmu.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("{}: {e}", pmu.display()))?;
    let [(_, offset), _] =
        calibrate::probe_targets().ok_or("cannot find the daemon's own code in /proc/self/maps")?;
    let path = c"/proc/self/exe";
    // SAFETY: perf_event_attr is plain integers and unions of them; zero is "unset".
    let mut attr: aya_obj::generated::perf_event_attr = unsafe { std::mem::zeroed() };
    attr.type_ = pmu_type;
    attr.size = u32::try_from(std::mem::size_of_val(&attr)).unwrap_or(u32::MAX);
    attr.__bindgen_anon_3.uprobe_path = path.as_ptr() as u64;
    attr.__bindgen_anon_4.probe_offset = offset;
    // SAFETY: `attr` and the path it points at outlive the call; pid 0 / cpu -1 is this process
    // on any CPU, no group.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            std::ptr::from_ref(&attr),
            0,
            -1,
            -1,
            aya_obj::generated::PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EACCES | libc::EPERM) => {
                format!(
                    "{e} (this kernel asks CAP_SYS_ADMIN to create a uprobe through perf_event_open)"
                )
            }
            _ => e.to_string(),
        });
    }
    let fd = i32::try_from(fd).map_err(|_| "perf_event_open returned no fd".to_string())?;
    // SAFETY: perf_event_open returned a new descriptor nothing else owns; dropping closes it.
    drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn features(multi: Support, perf: Option<Result<(), String>>) -> Features {
        Features {
            uprobe_multi: multi,
            perf_uprobe: perf,
            attach_mode: UprobeAttachMode::Auto,
            stats_mode: BpfStatsMode::Auto,
            enable_stats: Err("EPERM".into()),
            node_stats: false,
        }
    }

    #[test]
    fn multi_links_win_and_perf_events_are_the_fallback() {
        let f = features(Support::Available, None);
        assert_eq!(f.uprobe_path(), (UprobePath::MultiLink, true));
        let f = features(Support::NotInKernel, Some(Ok(())));
        assert_eq!(f.uprobe_path(), (UprobePath::PerfEvent, true));
        let f = features(Support::NotInKernel, Some(Err("EACCES".into())));
        assert_eq!(f.uprobe_path(), (UprobePath::PerfEvent, false));
        // Asked for perf events: taken even where multi links work.
        let mut f = features(Support::Available, Some(Ok(())));
        f.attach_mode = UprobeAttachMode::PerfEvent;
        assert_eq!(f.uprobe_path(), (UprobePath::PerfEvent, true));
        f.perf_uprobe = Some(Err("EACCES".into()));
        assert_eq!(f.uprobe_path(), (UprobePath::PerfEvent, false));
    }

    #[test]
    fn run_time_comes_from_the_kernel_when_it_keeps_it() {
        let mut f = features(Support::Available, None);
        assert_eq!(f.stats_plan(), StatsPlan::SelfTimed);
        f.node_stats = true;
        assert_eq!(f.stats_plan(), StatsPlan::Node);
        f.enable_stats = Ok(());
        assert_eq!(f.stats_plan(), StatsPlan::Enable);
        assert_eq!(f.stats_plan().source(), StatsSource::Kernel);
        // Asked for self-timing: taken even where the kernel's could be had.
        f.stats_mode = BpfStatsMode::SelfTimed;
        assert_eq!(f.stats_plan(), StatsPlan::SelfTimed);
    }

    #[test]
    fn as_root_on_this_kernel_everything_is_available() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "needs root");
        let config = crate::config::Config::embedded().unwrap();
        let f = Features::probe(Path::new("/proc"), Path::new("/sys"), &config.probes);
        assert_eq!(f.uprobe_multi, Support::Available);
        assert_eq!(f.enable_stats, Ok(()));
        // Not tried when multi links work; tried here directly: root may.
        assert_eq!(perf_uprobe(Path::new("/sys")), Ok(()));
    }
}
