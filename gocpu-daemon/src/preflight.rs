//! Start-up checks: does this process have the capabilities and the kernel the features gocpu
//! needs, and if not, exactly what is missing and how to grant it.
//!
//! [`Inputs::gather`] does the reading (procfs, sysfs, the memlock limit, the environment) and
//! never fails: what cannot be read is recorded as unknown. [`check`] is pure and turns inputs
//! into a [`Report`], so every case is testable with fixture inputs.
//!
//! What needs what (kernel ≥ 5.8 splits CAP_BPF and CAP_PERFMON out of CAP_SYS_ADMIN):
//!
//! | capability | for |
//! |---|---|
//! | CAP_BPF | loading the eBPF programs and maps |
//! | CAP_PERFMON | perf events: tracepoints, the per-CPU clock sampler, uprobes |
//! | CAP_SYS_PTRACE | `/proc/<pid>/exe` and `process_vm_readv` on processes with more privileges or another owner |
//! | CAP_DAC_READ_SEARCH | reading binaries and procfs files the daemon's user does not own |
//! | CAP_CHECKPOINT_RESTORE | `/proc/<pid>/map_files` (mapped binaries of other processes) |
//! | CAP_SYS_RESOURCE | kernels before 5.11 only: raising RLIMIT_MEMLOCK, which BPF memory is charged to there |
use std::{
    fmt,
    path::{Path, PathBuf},
};

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
            Self::Perfmon => "perf events: tracepoints, the CPU clock sampler, uprobes",
            Self::Bpf => "loading eBPF programs and maps",
            Self::CheckpointRestore => "reading /proc/<pid>/map_files",
        }
    }

    fn in_set(self, set: u64) -> bool {
        set >> self.bit() & 1 == 1
    }
}

/// Where the daemon runs, to phrase fixes in the right terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    /// A Kubernetes pod (`KUBERNETES_SERVICE_HOST` is set).
    Kubernetes,
    /// Another container (`/.dockerenv` or `container=` in the environment).
    Container,
    /// A host process.
    Host,
}

impl Environment {
    /// Detects the environment of this process.
    pub fn detect() -> Self {
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            Self::Kubernetes
        } else if Path::new("/.dockerenv").exists() || std::env::var_os("container").is_some() {
            Self::Container
        } else {
            Self::Host
        }
    }
}

/// A kernel release, `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion(pub u32, pub u32, pub u32);

impl KernelVersion {
    /// Parses `/proc/sys/kernel/osrelease` (`6.18.44-fc-v657`, `5.4.0-150-generic`, `5.10`).
    pub fn parse(s: &str) -> Option<Self> {
        let mut nums = s.trim().split(['.', '-', '+', '_']).map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = nums.next().flatten()?;
        let minor = nums.next().flatten()?;
        let patch = nums.next().flatten().unwrap_or(0);
        Some(Self(major, minor, patch))
    }

    /// The running kernel's release, from `sys/kernel/osrelease` under `proc_root`.
    pub fn running(proc_root: &Path) -> Option<Self> {
        let s = std::fs::read_to_string(proc_root.join("sys/kernel/osrelease")).ok()?;
        Self::parse(&s)
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// 5.18 added `prev_state` to the raw `sched_switch` tracepoint; before it, the daemon attaches
/// `sched_switch_pre_5_18`.
pub const SWITCH_STATE_KERNEL: KernelVersion = KernelVersion(5, 18, 0);

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
    /// The tracefs mount with an `events` directory, if any.
    pub tracefs: Option<PathBuf>,
    /// Entries of [`REQUIRED_TRACEPOINTS`] missing from tracefs.
    pub missing_tracepoints: Vec<&'static str>,
    /// Whether the kernel has the uprobe perf PMU (`/sys/bus/event_source/devices/uprobe`).
    pub uprobe_pmu: bool,
    /// `kernel.perf_event_paranoid`, if readable.
    pub perf_event_paranoid: Option<i64>,
    /// Soft RLIMIT_MEMLOCK in bytes (`None`: unlimited or unknown).
    pub memlock_bytes: Option<u64>,
    /// Where the daemon runs.
    pub environment: Environment,
}

impl Inputs {
    /// Reads the inputs under `proc_root` (normally `/proc`) and `sys_root` (normally `/sys`).
    pub fn gather(proc_root: &Path, sys_root: &Path, environment: Environment) -> Self {
        let read = |p: PathBuf| std::fs::read_to_string(p).ok();
        let tracefs = [
            sys_root.join("kernel/tracing"),
            sys_root.join("kernel/debug/tracing"),
        ]
        .into_iter()
        .find(|d| d.join("events").is_dir());
        let missing_tracepoints = match &tracefs {
            Some(t) => REQUIRED_TRACEPOINTS
                .into_iter()
                .filter(|tp| !t.join("events").join(tp).join("format").is_file())
                .collect(),
            None => Vec::new(),
        };
        Self {
            status: read(proc_root.join("self/status")).unwrap_or_default(),
            kernel: KernelVersion::running(proc_root),
            btf: sys_root.join("kernel/btf/vmlinux").exists(),
            tracefs,
            missing_tracepoints,
            uprobe_pmu: sys_root
                .join("bus/event_source/devices/uprobe/type")
                .exists(),
            perf_event_paranoid: read(proc_root.join("sys/kernel/perf_event_paranoid"))
                .and_then(|s| s.trim().parse().ok()),
            memlock_bytes: memlock_limit(),
            environment,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; nothing is lost.
    Info,
    /// The daemon runs with less (some processes or some signals missing).
    Degraded,
    /// The daemon cannot load its kernel side.
    Fatal,
}

/// One thing missing, and how to grant it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// What is missing and what it costs.
    pub problem: String,
    /// Exactly how to grant it.
    pub fix: String,
}

/// The result of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Kernel release, if known.
    pub kernel: Option<KernelVersion>,
    /// Effective capability set (`CapEff`), if readable.
    pub effective: Option<u64>,
    /// `kernel.perf_event_paranoid` (irrelevant with CAP_PERFMON; shown for context).
    pub perf_event_paranoid: Option<i64>,
    /// Findings, worst first.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether the daemon cannot start.
    pub fn is_fatal(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Fatal)
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

fn cap_set(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix(key))?;
    u64::from_str_radix(line.trim_start_matches(':').trim(), 16).ok()
}

fn uid(status: &str) -> Option<u32> {
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    // Real, effective, saved, filesystem: the effective one decides.
    line.split_whitespace().nth(1)?.parse().ok()
}

fn grant(cap: Capability, env: Environment, bounding: Option<u64>, uid: Option<u32>) -> String {
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

/// Turns `inputs` into a report.
pub fn check(inputs: &Inputs) -> Report {
    let effective = cap_set(&inputs.status, "CapEff");
    let bounding = cap_set(&inputs.status, "CapBnd");
    let uid = uid(&inputs.status);
    let env = inputs.environment;
    let has = |c: Capability| effective.is_some_and(|e| c.in_set(e));
    let mut findings = Vec::new();
    let need = |c: Capability, severity: Severity, findings: &mut Vec<Finding>| {
        if !has(c) {
            findings.push(Finding {
                severity,
                problem: format!("missing CAP_{}: needed for {}", c.k8s_name(), c.purpose()),
                fix: grant(c, env, bounding, uid),
            });
        }
    };

    let split_caps = inputs.kernel.is_none_or(|k| k >= KernelVersion(5, 8, 0));
    if effective.is_none() {
        findings.push(Finding {
            severity: Severity::Degraded,
            problem: "cannot read CapEff from /proc/self/status: capabilities unknown".into(),
            fix: "make sure /proc is the procfs of the host PID namespace (hostPID: true)".into(),
        });
    } else if !has(Capability::SysAdmin) {
        if split_caps {
            need(Capability::Bpf, Severity::Fatal, &mut findings);
            need(Capability::Perfmon, Severity::Fatal, &mut findings);
        } else {
            findings.push(Finding {
                severity: Severity::Fatal,
                problem: format!(
                    "missing CAP_SYS_ADMIN: kernel {} predates CAP_BPF and CAP_PERFMON (5.8), so BPF and perf events need CAP_SYS_ADMIN",
                    inputs.kernel.map(|k| k.to_string()).unwrap_or_default()
                ),
                fix: match env {
                    Environment::Kubernetes => "deploy the privileged overlay: kubectl apply -k deploy/kubernetes/overlays/privileged".into(),
                    _ => grant(Capability::SysAdmin, env, bounding, uid),
                },
            });
        }
    }
    if effective.is_some() {
        need(Capability::SysPtrace, Severity::Degraded, &mut findings);
        need(Capability::DacReadSearch, Severity::Degraded, &mut findings);
        if inputs.kernel.is_none_or(|k| k >= KernelVersion(5, 9, 0)) && !has(Capability::SysAdmin) {
            need(
                Capability::CheckpointRestore,
                Severity::Degraded,
                &mut findings,
            );
        }
    }
    let memlock_charged = inputs.kernel.is_some_and(|k| k < KernelVersion(5, 11, 0));
    if memlock_charged && inputs.memlock_bytes.is_some() && !has(Capability::SysResource) {
        findings.push(Finding {
            severity: Severity::Fatal,
            problem: format!(
                "kernel {} charges BPF maps to RLIMIT_MEMLOCK ({} KiB here) and CAP_SYS_RESOURCE is missing to raise it",
                inputs.kernel.map(|k| k.to_string()).unwrap_or_default(),
                inputs.memlock_bytes.unwrap_or(0) / 1024
            ),
            fix: match env {
                Environment::Kubernetes => "deploy the overlay for kernels before 5.11: kubectl apply -k deploy/kubernetes/overlays/kernel-pre-5.11 (adds SYS_RESOURCE)".into(),
                Environment::Container => "start the container with --cap-add SYS_RESOURCE or --ulimit memlock=-1".into(),
                Environment::Host => "run gocpu as root, or with LimitMEMLOCK=infinity in its systemd unit".into(),
            },
        });
    }
    match &inputs.tracefs {
        None => findings.push(Finding {
            severity: Severity::Fatal,
            problem: "tracefs is not mounted (no /sys/kernel/tracing/events): tracepoint ids and record layouts come from it".into(),
            fix: match env {
                Environment::Kubernetes => "mount the host's /sys/kernel/tracing into the container (hostPath volume, as in deploy/kubernetes/base/daemonset.yaml)".into(),
                Environment::Container => "start the container with -v /sys/kernel/tracing:/sys/kernel/tracing:ro".into(),
                Environment::Host => "mount -t tracefs nodev /sys/kernel/tracing".into(),
            },
        }),
        Some(t) if !inputs.missing_tracepoints.is_empty() => findings.push(Finding {
            severity: Severity::Fatal,
            problem: format!(
                "tracepoints missing under {}: {}",
                t.display(),
                inputs.missing_tracepoints.join(", ")
            ),
            fix: "use a kernel built with CONFIG_TRACEPOINTS and CONFIG_FTRACE_SYSCALLS (every major distribution's is)".into(),
        }),
        Some(_) => {}
    }
    if let Some(k) = inputs.kernel.filter(|&k| k < SWITCH_STATE_KERNEL) {
        findings.push(Finding {
            severity: Severity::Degraded,
            problem: format!(
                "kernel {k} predates {SWITCH_STATE_KERNEL}, whose raw sched_switch tracepoint passes the outgoing task's state: a thread that yields the CPU (sched_yield) is counted as blocked until it runs again, not as runnable"
            ),
            fix: format!("run on a kernel {SWITCH_STATE_KERNEL} or later"),
        });
    }
    if !inputs.uprobe_pmu {
        findings.push(Finding {
            severity: Severity::Degraded,
            problem: "no uprobe perf PMU (/sys/bus/event_source/devices/uprobe): Go runtime call counts (futex, usleep, mcall, cgocall) are unavailable".into(),
            fix: "use a kernel 4.17 or later built with CONFIG_UPROBE_EVENTS".into(),
        });
    }
    if !inputs.btf {
        findings.push(Finding {
            severity: Severity::Info,
            problem: "no /sys/kernel/btf/vmlinux: fine for gocpu's programs (no CO-RE relocations), but eBPF diagnostics are poorer".into(),
            fix: "none needed; kernels built with CONFIG_DEBUG_INFO_BTF provide it".into(),
        });
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Report {
        kernel: inputs.kernel,
        effective,
        perf_event_paranoid: inputs.perf_event_paranoid,
        findings,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `/proc/self/status` lines as the kernel prints them; the sets were decoded with
    /// `capsh --decode` (libcap), not with this module.
    fn status(cap_eff: &str, uid: u32) -> String {
        format!(
            "Name:\tgocpu\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nCapInh:\t0000000000000000\n\
             CapPrm:\t{cap_eff}\nCapEff:\t{cap_eff}\nCapBnd:\t{cap_eff}\nCapAmb:\t0000000000000000\n"
        )
    }
    /// cap_dac_read_search, cap_sys_ptrace, cap_perfmon, cap_bpf, cap_checkpoint_restore: the
    /// DaemonSet's set.
    const MANIFEST: &str = "000001c000080004";
    /// Docker's default set (chown ... setfcap): no BPF, no PERFMON, no SYS_PTRACE.
    const DOCKER_DEFAULT: &str = "00000000a80425fb";
    /// Full root.
    const ROOT: &str = "000001ffffffffff";

    fn inputs(cap_eff: &str, kernel: &str, env: Environment) -> Inputs {
        Inputs {
            status: status(cap_eff, 0),
            kernel: KernelVersion::parse(kernel),
            btf: true,
            tracefs: Some(PathBuf::from("/sys/kernel/tracing")),
            missing_tracepoints: Vec::new(),
            uprobe_pmu: true,
            perf_event_paranoid: Some(2),
            memlock_bytes: Some(8 << 20),
            environment: env,
        }
    }

    /// The finding whose problem mentions `needle`.
    fn finding<'a>(r: &'a Report, needle: &str) -> &'a Finding {
        r.findings
            .iter()
            .find(|f| f.problem.contains(needle))
            .unwrap_or_else(|| panic!("no finding about {needle}: {r}"))
    }

    fn problems(r: &Report, severity: Severity) -> Vec<&str> {
        r.findings
            .iter()
            .filter(|f| f.severity == severity)
            .map(|f| f.problem.as_str())
            .collect()
    }

    #[test]
    fn manifest_capabilities_on_a_current_kernel_are_enough() {
        let r = check(&inputs(
            MANIFEST,
            "6.18.44-fc-v657",
            Environment::Kubernetes,
        ));
        assert!(r.findings.is_empty(), "{r}");
        assert!(!r.is_fatal());
        assert!(r.to_string().contains("kernel 6.18.44"), "{r}");
    }

    #[test]
    fn docker_defaults_say_which_capabilities_to_add() {
        let r = check(&inputs(
            DOCKER_DEFAULT,
            "6.1.0-18-amd64",
            Environment::Container,
        ));
        assert!(r.is_fatal());
        let fatal = problems(&r, Severity::Fatal);
        assert!(fatal.iter().any(|p| p.contains("CAP_BPF")), "{r}");
        assert!(fatal.iter().any(|p| p.contains("CAP_PERFMON")), "{r}");
        let degraded = problems(&r, Severity::Degraded);
        for cap in [
            "CAP_SYS_PTRACE",
            "CAP_DAC_READ_SEARCH",
            "CAP_CHECKPOINT_RESTORE",
        ] {
            assert!(degraded.iter().any(|p| p.contains(cap)), "{cap}: {r}");
        }
        assert!(
            r.findings
                .iter()
                .any(|f| f.fix == "start the container with --cap-add BPF")
        );
        // Worst first.
        assert_eq!(r.findings.first().unwrap().severity, Severity::Fatal);
    }

    #[test]
    fn kubernetes_fix_names_the_securitycontext_field() {
        let r = check(&inputs(DOCKER_DEFAULT, "6.1.0", Environment::Kubernetes));
        let f = finding(&r, "CAP_BPF");
        assert!(
            f.fix.contains("\"BPF\"") && f.fix.contains("capabilities.add"),
            "{}",
            f.fix
        );
    }

    #[test]
    fn kernels_before_5_8_need_sys_admin_and_the_privileged_overlay() {
        let r = check(&inputs(
            MANIFEST,
            "5.4.0-150-generic",
            Environment::Kubernetes,
        ));
        assert!(r.is_fatal());
        let f = finding(&r, "CAP_SYS_ADMIN");
        assert!(f.fix.contains("overlays/privileged"), "{}", f.fix);
        // CAP_BPF does not exist there: not asked for.
        assert!(
            !r.findings
                .iter()
                .any(|f| f.problem.contains("missing CAP_BPF")),
            "{r}"
        );
        // Nor CAP_CHECKPOINT_RESTORE (5.9).
        assert!(
            !r.findings.iter().any(|f| f.problem.contains("CHECKPOINT")),
            "{r}"
        );
    }

    #[test]
    fn kernels_before_5_11_need_memlock_or_sys_resource() {
        let mut i = inputs(MANIFEST, "5.10.0-28-amd64", Environment::Kubernetes);
        let r = check(&i);
        let f = finding(&r, "RLIMIT_MEMLOCK");
        assert_eq!(f.severity, Severity::Fatal);
        assert!(f.problem.contains("8192 KiB"), "{}", f.problem);
        assert!(f.fix.contains("kernel-pre-5.11"), "{}", f.fix);
        // CAP_SYS_RESOURCE (bit 24) added: fine (but for the pre-5.18 scheduler tracepoint).
        i.status = status("000001c001080004", 0);
        assert_eq!(only_pre_5_18(&check(&i)), 1, "{}", check(&i));
        // An unlimited memlock limit: fine without it.
        i.status = status(MANIFEST, 0);
        i.memlock_bytes = None;
        assert_eq!(only_pre_5_18(&check(&i)), 1, "{}", check(&i));
        // 5.11 and later: memory is charged to the cgroup instead.
        let r = check(&inputs(MANIFEST, "5.11.0", Environment::Kubernetes));
        assert_eq!(only_pre_5_18(&r), 1, "{r}");
    }

    /// Asserts that `r`'s findings are at most the pre-5.18 one; returns how many there are.
    fn only_pre_5_18(r: &Report) -> usize {
        assert!(
            r.findings
                .iter()
                .all(|f| f.problem.contains("predates 5.18")),
            "{r}"
        );
        r.findings.len()
    }

    #[test]
    fn kernels_before_5_18_are_degraded_and_later_ones_are_not() {
        let r = check(&inputs(
            MANIFEST,
            "5.15.0-91-generic",
            Environment::Kubernetes,
        ));
        let f = finding(&r, "predates 5.18");
        assert_eq!(f.severity, Severity::Degraded);
        assert!(f.problem.contains("sched_yield"), "{}", f.problem);
        assert!(!r.is_fatal(), "{r}");
        for k in ["5.18.0", "6.1.0", "6.18.44"] {
            let r = check(&inputs(MANIFEST, k, Environment::Kubernetes));
            assert!(r.findings.is_empty(), "{k}: {r}");
        }
    }

    #[test]
    fn non_root_user_with_bounding_capabilities_is_told_to_run_as_root() {
        let mut i = inputs(MANIFEST, "6.6.0", Environment::Kubernetes);
        i.status = format!(
            "Uid:\t65532\t65532\t65532\t65532\nCapEff:\t0000000000000000\nCapBnd:\t{MANIFEST}\n"
        );
        let r = check(&i);
        let f = finding(&r, "CAP_BPF");
        assert!(
            f.fix.contains("runAsUser: 0") && f.fix.contains("65532"),
            "{}",
            f.fix
        );
    }

    #[test]
    fn missing_tracefs_and_tracepoints_are_fatal_with_the_mount_to_add() {
        let mut i = inputs(ROOT, "6.6.0", Environment::Kubernetes);
        i.tracefs = None;
        let r = check(&i);
        assert!(r.is_fatal());
        assert!(r.findings[0].fix.contains("hostPath"), "{r}");
        i.tracefs = Some(PathBuf::from("/sys/kernel/tracing"));
        i.missing_tracepoints = vec!["syscalls/sys_enter_futex"];
        let r = check(&i);
        assert!(r.is_fatal());
        assert!(r.findings[0].problem.contains("sys_enter_futex"), "{r}");
    }

    #[test]
    fn missing_uprobe_pmu_degrades_and_missing_btf_is_only_info() {
        let mut i = inputs(ROOT, "6.6.0", Environment::Host);
        i.uprobe_pmu = false;
        i.btf = false;
        let r = check(&i);
        assert!(!r.is_fatal());
        assert_eq!(problems(&r, Severity::Degraded).len(), 1, "{r}");
        assert_eq!(problems(&r, Severity::Info).len(), 1, "{r}");
    }

    #[test]
    fn unreadable_status_is_not_reported_as_missing_capabilities() {
        let mut i = inputs(ROOT, "6.6.0", Environment::Host);
        i.status = String::new();
        let r = check(&i);
        assert!(!r.is_fatal());
        assert!(
            r.findings
                .iter()
                .all(|f| !f.problem.contains("missing CAP")),
            "{r}"
        );
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(
            KernelVersion::parse("6.18.44-fc-v657\n"),
            Some(KernelVersion(6, 18, 44))
        );
        assert_eq!(
            KernelVersion::parse("5.4.0-150-generic"),
            Some(KernelVersion(5, 4, 0))
        );
        assert_eq!(KernelVersion::parse("5.10"), Some(KernelVersion(5, 10, 0)));
        assert_eq!(
            KernelVersion::parse("4.18.0-553.el8_10.x86_64"),
            Some(KernelVersion(4, 18, 0))
        );
        assert_eq!(KernelVersion::parse("6.8.0+"), Some(KernelVersion(6, 8, 0)));
        assert_eq!(KernelVersion::parse("garbage"), None);
        assert_eq!(KernelVersion::parse(""), None);
        assert!(KernelVersion(5, 10, 200) < KernelVersion(5, 11, 0));
    }
}
