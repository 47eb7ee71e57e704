//! check() against fixture inputs: each finding, and each fix where the daemon runs.
#![allow(clippy::unwrap_used)]
use std::path::PathBuf;

use super::*;
use crate::probes::uprobe_multi::Support;

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

fn placed(environment: Environment) -> Detected {
    Detected {
        environment,
        evidence: Vec::new(),
        host_pids: Some(true),
    }
}

fn tracefs_at(path: &str) -> Result<Tracefs, TracefsError> {
    Ok(Tracefs {
        path: PathBuf::from(path),
        mounted_by_gocpu: false,
    })
}

/// A current kernel that allows everything tried.
fn inputs(cap_eff: &str, kernel: &str, env: Environment) -> Inputs {
    Inputs {
        status: status(cap_eff, 0),
        kernel: KernelVersion::parse(kernel),
        btf: true,
        tracefs: tracefs_at("/sys/kernel/tracing"),
        missing_tracepoints: Vec::new(),
        perf_event_paranoid: Some(2),
        memlock_bytes: Some(8 << 20),
        placement: placed(env),
        features: Features {
            uprobe_multi: Support::Available,
            perf_uprobe: None,
            attach_mode: crate::config::UprobeAttachMode::Auto,
            stats_mode: crate::config::BpfStatsMode::Auto,
            enable_stats: Ok(()),
            node_stats: false,
        },
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

fn mount_failed(errno: i32) -> Result<Tracefs, TracefsError> {
    Err(TracefsError::MountFailed {
        reason: std::io::Error::from_raw_os_error(errno).to_string(),
        errno: Some(errno),
        elsewhere: String::new(),
        candidates: "/sys/kernel/tracing or /sys/kernel/debug/tracing".into(),
    })
}

#[test]
fn an_unmountable_tracefs_is_fatal_with_the_fix_for_where_the_daemon_runs() {
    let mut i = inputs(ROOT, "6.6.0", Environment::Kubernetes);
    i.tracefs = mount_failed(libc::EPERM);
    let r = check(&i);
    assert!(r.is_fatal());
    assert!(r.findings[0].problem.contains("mounting one"), "{r}");
    assert!(r.findings[0].fix.contains("hostPath"), "{r}");
    i.placement = placed(Environment::Container);
    let r = check(&i);
    assert!(r.findings[0].fix.contains("-v /sys/kernel/tracing"), "{r}");
    // On a host, a mount refused for want of privilege says to run as root; no container words.
    i.placement = placed(Environment::Host);
    let r = check(&i);
    let fix = &r.findings[0].fix;
    assert!(
        fix.contains("root") && fix.contains("mount -t tracefs"),
        "{r}"
    );
    assert!(!fix.contains("container"), "{r}");
    i.tracefs = Err(TracefsError::NotInKernel);
    let r = check(&i);
    assert!(r.findings[0].fix.contains("CONFIG_FTRACE"), "{r}");
}

#[test]
fn a_tracefs_gocpu_mounted_is_no_finding_but_missing_tracepoints_are_fatal() {
    let mut i = inputs(ROOT, "6.6.0", Environment::Host);
    i.tracefs = Ok(Tracefs {
        path: PathBuf::from("/sys/kernel/tracing"),
        mounted_by_gocpu: true,
    });
    let r = check(&i);
    assert!(r.findings.is_empty(), "{r}");
    assert_eq!(r.tracefs.as_ref().map(|t| t.mounted_by_gocpu), Some(true));
    i.missing_tracepoints = vec!["syscalls/sys_enter_futex"];
    let r = check(&i);
    assert!(r.is_fatal());
    assert!(r.findings[0].problem.contains("sys_enter_futex"), "{r}");
}

#[test]
fn uprobes_take_multi_links_else_perf_events_else_say_what_to_grant() {
    let mut i = inputs(MANIFEST, "6.18.44", Environment::Kubernetes);
    let r = check(&i);
    assert_eq!(
        r.uprobes,
        UprobePlan {
            path: UprobePath::MultiLink,
            usable: true
        }
    );
    // Before 6.6, with CAP_SYS_ADMIN: perf events, worth an Info line.
    i.features.uprobe_multi = Support::NotInKernel;
    i.features.perf_uprobe = Some(Ok(()));
    let r = check(&i);
    assert_eq!(r.uprobes.path, UprobePath::PerfEvent);
    assert!(r.uprobes.usable);
    assert_eq!(problems(&r, Severity::Info).len(), 1, "{r}");
    // Without it: degraded, and the fix names the overlay or a newer kernel.
    i.features.perf_uprobe = Some(Err("Permission denied (os error 13)".into()));
    let r = check(&i);
    assert!(!r.uprobes.usable);
    let f = finding(&r, "perf-event uprobe was refused");
    assert_eq!(f.severity, Severity::Degraded);
    assert!(f.problem.contains("Permission denied"), "{r}");
    assert!(
        f.fix.contains("6.6") && f.fix.contains("overlays/privileged"),
        "{r}"
    );
    i.placement = placed(Environment::Host);
    let r = check(&i);
    let f = finding(&r, "perf-event uprobe was refused");
    assert!(
        f.fix.contains("as root") && !f.fix.contains("overlay"),
        "{r}"
    );
    // Perf events asked for where multi links work: said, and refused says to go back to auto.
    i.features.uprobe_multi = Support::Available;
    i.features.attach_mode = crate::config::UprobeAttachMode::PerfEvent;
    let r = check(&i);
    assert_eq!(r.uprobes.path, UprobePath::PerfEvent);
    let f = finding(&r, "probes.uprobe_attach is perf_event");
    assert!(f.fix.contains("uprobe_attach: auto"), "{r}");
    i.features.perf_uprobe = Some(Ok(()));
    let r = check(&i);
    assert_eq!(
        finding(&r, "uprobe_attach is perf_event").severity,
        Severity::Info
    );
}

#[test]
fn run_time_is_self_timed_when_the_kernel_keeps_none_and_says_so() {
    let mut i = inputs(MANIFEST, "6.18.44", Environment::Kubernetes);
    i.features.enable_stats = Err("Operation not permitted (os error 1)".into());
    let r = check(&i);
    assert_eq!(r.bpf_stats, StatsPlan::SelfTimed);
    let f = finding(&r, "time themselves");
    assert_eq!(f.severity, Severity::Info);
    assert!(f.fix.contains("kernel.bpf_stats_enabled"), "{r}");
    // The node collecting them is as good as turning them on.
    i.features.node_stats = true;
    let r = check(&i);
    assert_eq!(r.bpf_stats, StatsPlan::Node);
    assert!(r.findings.is_empty(), "{r}");
}

#[test]
fn a_container_without_the_hosts_pids_is_told_to_share_them() {
    let mut i = inputs(MANIFEST, "6.18.44", Environment::Kubernetes);
    i.placement.host_pids = Some(false);
    let r = check(&i);
    let f = finding(&r, "PID namespace of its own");
    assert_eq!(f.severity, Severity::Degraded);
    assert!(f.fix.contains("hostPID: true"), "{r}");
    i.placement.environment = Environment::Container;
    let r = check(&i);
    assert!(
        finding(&r, "PID namespace").fix.contains("--pid=host"),
        "{r}"
    );
}

#[test]
fn missing_btf_is_only_info() {
    let mut i = inputs(ROOT, "6.6.0", Environment::Host);
    i.btf = false;
    let r = check(&i);
    assert!(!r.is_fatal());
    assert_eq!(problems(&r, Severity::Info).len(), 1, "{r}");
}

#[test]
fn the_report_serializes_for_the_api() {
    let r = check(&inputs(MANIFEST, "6.18.44", Environment::Kubernetes));
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["kernel"], "6.18.44");
    assert_eq!(v["effective"], MANIFEST);
    assert_eq!(v["uprobes"]["path"], "multi_link");
    assert_eq!(v["bpf_stats"], "kernel");
    assert_eq!(v["placement"]["environment"], "kubernetes");
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
