//! The findings, one function per concern; each fix names what applies where the daemon runs.
use crate::{
    config::UprobeAttachMode,
    preflight::{
        Finding, Inputs, Severity,
        capability::{Capability, cap_set, grant, uid},
        environment::Environment,
        kernel::{KernelVersion, SWITCH_STATE_KERNEL},
    },
    probes::{tracefs::TracefsError, uprobe_multi::Support},
};

/// Kubernetes' privileged overlay, for everything that needs CAP_SYS_ADMIN in a pod.
const PRIVILEGED_OVERLAY: &str = "kubectl apply -k deploy/kubernetes/overlays/privileged";

fn finding(severity: Severity, problem: String, fix: String) -> Finding {
    Finding {
        severity,
        problem,
        fix,
    }
}

fn kernel_name(inputs: &Inputs) -> String {
    inputs
        .kernel
        .map_or_else(|| "(unknown release)".to_string(), |k| k.to_string())
}

/// Capabilities read from CapEff, and the memlock limit older kernels charge BPF to.
pub(super) fn capabilities(inputs: &Inputs, findings: &mut Vec<Finding>) {
    let effective = cap_set(&inputs.status, "CapEff");
    let bounding = cap_set(&inputs.status, "CapBnd");
    let uid = uid(&inputs.status);
    let env = inputs.placement.environment;
    let has = |c: Capability| effective.is_some_and(|e| c.in_set(e));
    let need = |c: Capability, severity: Severity, findings: &mut Vec<Finding>| {
        if !has(c) {
            findings.push(finding(
                severity,
                format!("missing CAP_{}: needed for {}", c.k8s_name(), c.purpose()),
                grant(c, env, bounding, uid),
            ));
        }
    };
    let split_caps = inputs.kernel.is_none_or(|k| k >= KernelVersion(5, 8, 0));
    if effective.is_none() {
        findings.push(finding(
            Severity::Degraded,
            "cannot read CapEff from /proc/self/status: capabilities unknown".into(),
            match env {
                Environment::Kubernetes => "make sure /proc is a procfs of the pod (hostPID: true, no /proc override in the pod spec)".into(),
                Environment::Container => "make sure /proc is a procfs (start the container with --pid=host and without a /proc bind mount)".into(),
                Environment::Host => "mount procfs at /proc (mount -t proc proc /proc)".into(),
            },
        ));
    } else if !has(Capability::SysAdmin) {
        if split_caps {
            need(Capability::Bpf, Severity::Fatal, findings);
            need(Capability::Perfmon, Severity::Fatal, findings);
        } else {
            findings.push(finding(
                Severity::Fatal,
                format!(
                    "missing CAP_SYS_ADMIN: kernel {} predates CAP_BPF and CAP_PERFMON (5.8), so BPF and perf events need CAP_SYS_ADMIN",
                    kernel_name(inputs)
                ),
                match env {
                    Environment::Kubernetes => format!("deploy the privileged overlay: {PRIVILEGED_OVERLAY}"),
                    _ => grant(Capability::SysAdmin, env, bounding, uid),
                },
            ));
        }
    }
    if effective.is_some() {
        need(Capability::SysPtrace, Severity::Degraded, findings);
        need(Capability::DacReadSearch, Severity::Degraded, findings);
        if inputs.kernel.is_none_or(|k| k >= KernelVersion(5, 9, 0)) && !has(Capability::SysAdmin) {
            need(Capability::CheckpointRestore, Severity::Degraded, findings);
        }
    }
    let memlock_charged = inputs.kernel.is_some_and(|k| k < KernelVersion(5, 11, 0));
    if memlock_charged && inputs.memlock_bytes.is_some() && !has(Capability::SysResource) {
        findings.push(finding(
            Severity::Fatal,
            format!(
                "kernel {} charges BPF maps to RLIMIT_MEMLOCK ({} KiB here) and CAP_SYS_RESOURCE is missing to raise it",
                kernel_name(inputs),
                inputs.memlock_bytes.unwrap_or(0) / 1024
            ),
            match env {
                Environment::Kubernetes => "deploy the overlay for kernels before 5.11: kubectl apply -k deploy/kubernetes/overlays/kernel-pre-5.11 (adds SYS_RESOURCE)".into(),
                Environment::Container => "start the container with --cap-add SYS_RESOURCE or --ulimit memlock=-1".into(),
                Environment::Host => "run gocpu as root, or with LimitMEMLOCK=infinity in its systemd unit".into(),
            },
        ));
    }
}

/// A container that does not share the host's PID namespace sees only its own processes.
pub(super) fn placement(inputs: &Inputs, findings: &mut Vec<Finding>) {
    if inputs.placement.host_pids == Some(false) {
        findings.push(finding(
            Severity::Degraded,
            "runs in a PID namespace of its own: only the processes of its own container are visible, not the node's".into(),
            match inputs.placement.environment {
                Environment::Kubernetes => "set hostPID: true in the pod spec (as deploy/kubernetes/base/daemonset.yaml does)".into(),
                _ => "start the container with --pid=host".into(),
            },
        ));
    }
}

/// tracefs: gocpu mounts it where it can; only a failed mount is fatal.
pub(super) fn tracefs(inputs: &Inputs, findings: &mut Vec<Finding>) {
    let env = inputs.placement.environment;
    match &inputs.tracefs {
        Err(e) => {
            let fix = match (e, env) {
                (TracefsError::NotInKernel, _) => {
                    "use a kernel built with CONFIG_FTRACE (every major distribution's is)".into()
                }
                (_, Environment::Kubernetes) => "mount the node's tracefs into the pod (hostPath /sys/kernel/tracing, as in deploy/kubernetes/base/daemonset.yaml) and make sure the node mounts it (systemd's sys-kernel-tracing.mount, or mount -t tracefs nodev /sys/kernel/tracing)".into(),
                (_, Environment::Container) => "start the container with -v /sys/kernel/tracing:/sys/kernel/tracing after mounting tracefs there on the host (mount -t tracefs nodev /sys/kernel/tracing), or with --cap-add SYS_ADMIN so that gocpu mounts it".into(),
                (e, Environment::Host) if e.is_permission() => "give gocpu CAP_SYS_ADMIN to mount it (run it as root with its full capabilities), or mount it once as root: mount -t tracefs nodev /sys/kernel/tracing".into(),
                (_, Environment::Host) => "mount it as root: mount -t tracefs nodev /sys/kernel/tracing".into(),
            };
            findings.push(finding(
                Severity::Fatal,
                format!("tracefs (tracepoint ids and record layouts come from it): {e}"),
                fix,
            ));
        }
        Ok(t) if !inputs.missing_tracepoints.is_empty() => findings.push(finding(
            Severity::Fatal,
            format!(
                "tracepoints missing under {}: {}",
                t.path.display(),
                inputs.missing_tracepoints.join(", ")
            ),
            "use a kernel built with CONFIG_TRACEPOINTS and CONFIG_FTRACE_SYSCALLS (every major distribution's is)".into(),
        )),
        Ok(_) => {}
    }
}

/// Kernel release and BTF.
pub(super) fn kernel(inputs: &Inputs, findings: &mut Vec<Finding>) {
    if let Some(k) = inputs.kernel.filter(|&k| k < SWITCH_STATE_KERNEL) {
        findings.push(finding(
            Severity::Degraded,
            format!(
                "kernel {k} predates {SWITCH_STATE_KERNEL}, whose raw sched_switch tracepoint passes the outgoing task's state: a thread that yields the CPU (sched_yield) is counted as blocked until it runs again, not as runnable"
            ),
            format!("run on a kernel {SWITCH_STATE_KERNEL} or later"),
        ));
    }
    if !inputs.btf {
        findings.push(finding(
            Severity::Info,
            "no /sys/kernel/btf/vmlinux: fine for gocpu's programs (no CO-RE relocations), but eBPF diagnostics are poorer".into(),
            "none needed; kernels built with CONFIG_DEBUG_INFO_BTF provide it".into(),
        ));
    }
}

/// Which uprobe path works, as tried.
pub(super) fn uprobes(inputs: &Inputs, findings: &mut Vec<Finding>) {
    let f = &inputs.features;
    let multi = match &f.uprobe_multi {
        Support::Available if f.attach_mode == UprobeAttachMode::PerfEvent => {
            "probes.uprobe_attach is perf_event".to_string()
        }
        Support::Available => return,
        Support::NotInKernel => format!(
            "kernel {} has no uprobe_multi links (6.6+)",
            kernel_name(inputs)
        ),
        Support::Refused(why) => format!("uprobe_multi links refused ({why})"),
    };
    if let Some(Ok(())) = &f.perf_uprobe {
        findings.push(finding(
            Severity::Info,
            format!("{multi}: uprobes attach through perf events instead"),
            "none needed".into(),
        ));
        return;
    }
    let perf = f
        .perf_uprobe
        .as_ref()
        .and_then(|r| r.as_ref().err())
        .map_or("not tried", String::as_str);
    findings.push(finding(
        Severity::Degraded,
        format!(
            "{multi}, and a perf-event uprobe was refused ({perf}): Go runtime call counts (runtime.futex, usleep, mcall, cgocall) are unavailable"
        ),
        match inputs.placement.environment {
            _ if f.uprobe_multi == Support::Available => {
                "set probes.uprobe_attach: auto (uprobe_multi links work here), or grant CAP_SYS_ADMIN".into()
            }
            Environment::Kubernetes => format!(
                "run on nodes with kernel 6.6 or later, or deploy the privileged overlay: {PRIVILEGED_OVERLAY}"
            ),
            Environment::Container => {
                "run on a kernel 6.6 or later, or start the container with --cap-add SYS_ADMIN".into()
            }
            Environment::Host => {
                "run on a kernel 6.6 or later, or run gocpu as root (CAP_SYS_ADMIN)".into()
            }
        },
    ));
}

/// Where run-time figures come from.
pub(super) fn stats(inputs: &Inputs, findings: &mut Vec<Finding>) {
    let f = &inputs.features;
    if let (Err(why), false) = (&f.enable_stats, f.node_stats) {
        findings.push(finding(
            Severity::Info,
            format!(
                "the kernel's BPF run-time statistics are off and cannot be turned on ({why}; BPF_ENABLE_STATS needs CAP_SYS_ADMIN): the programs time themselves (two clock reads per run)"
            ),
            "none needed; for the kernel's own figures set sysctl kernel.bpf_stats_enabled=1 on the node".into(),
        ));
    }
}
