//! Per-process metric families.
use prometheus_client::{
    encoding::DescriptorEncoder,
    metrics::{MetricType, gauge::ConstGauge},
    registry::Unit,
};

use super::{Labels, counter, counter_f, family};
use crate::{
    classify::CpuClass,
    ingest::Shared,
    model::{
        blocking::OffReason,
        detectors::{Flag, judge},
        process::Tracking,
    },
    model::{report::runtime_rates, runtime_state::Value},
};

/// Counts of listed and tracked processes, for the daemon gauges.
pub(crate) struct Counts {
    pub listed: i64,
    pub tracked: i64,
}

#[derive(Default)]
struct Families {
    info: Vec<Labels>,
    cpu: Vec<(
        Labels,
        prometheus_client::metrics::counter::ConstCounter<f64>,
    )>,
    class: Vec<(
        Labels,
        prometheus_client::metrics::counter::ConstCounter<f64>,
    )>,
    offcpu: Vec<(
        Labels,
        prometheus_client::metrics::counter::ConstCounter<f64>,
    )>,
    calls: Vec<(
        Labels,
        prometheus_client::metrics::counter::ConstCounter<u64>,
    )>,
    syscalls: Vec<(
        Labels,
        prometheus_client::metrics::counter::ConstCounter<u64>,
    )>,
    switches: Vec<(
        Labels,
        prometheus_client::metrics::counter::ConstCounter<u64>,
    )>,
    wakeups: Vec<(
        Labels,
        prometheus_client::metrics::counter::ConstCounter<u64>,
    )>,
    score: Vec<(Labels, ConstGauge<f64>)>,
    flags: Vec<(Labels, ConstGauge<i64>)>,
    ratios: Vec<(Labels, ConstGauge<f64>)>,
    call_rate: Vec<(Labels, ConstGauge<f64>)>,
    goroutines: Vec<(Labels, ConstGauge<i64>)>,
    waiting: Vec<(Labels, ConstGauge<i64>)>,
    growth: Vec<(Labels, ConstGauge<f64>)>,
    goroutine_switches: Vec<(
        Labels,
        prometheus_client::metrics::counter::ConstCounter<u64>,
    )>,
    sched: Vec<(&'static str, &'static str, Labels, i64)>,
}

/// The labels identifying a process on every per-process series.
fn process_labels(p: &crate::model::process::GoProcess) -> Labels {
    let mut labels = vec![("pid", p.key.pid.to_string())];
    if let Some(pod) = &p.pod {
        labels.push(("namespace", pod.namespace.clone()));
        labels.push(("pod", pod.pod.clone()));
        labels.push(("container", pod.container.clone()));
    }
    labels
}

/// Encodes every per-process family; returns the counts.
pub(crate) fn encode(s: &Shared, enc: &mut DescriptorEncoder) -> Result<Counts, std::fmt::Error> {
    let mut f = Families::default();
    {
        // Lock order: manager, then model.
        let manager = s.manager();
        let model = s.model();
        for p in model.iter() {
            let hooks = manager.hook_status(p.file, p.key);
            let go_version = p
                .binary
                .go()
                .and_then(|g| g.identity.go_version.clone())
                .unwrap_or_default();
            // Every per-process series: the pid, plus the pod's place when the process runs in a
            // Kubernetes container (host processes' series keep just the pid).
            let base = process_labels(p);
            let mut info = base.clone();
            info.extend([
                ("comm", p.comm.clone()),
                ("exe", p.exe.display().to_string()),
                ("go_version", go_version),
                ("attach_state", p.attach_state(&hooks).as_str().to_string()),
            ]);
            if let Some(c) = &p.container.container_id {
                info.push(("container_id", c.to_string()));
            }
            if let Some(u) = &p.container.pod_uid {
                info.push(("pod_uid", u.to_string()));
            }
            f.info.push(info);
            if p.tracking != Tracking::Tracked {
                continue;
            }
            let l = |k: &'static str, v: &str| {
                let mut labels = base.clone();
                labels.push((k, v.to_string()));
                labels
            };
            let st = p.latest();
            f.cpu
                .push((base.clone(), counter_f(st.oncpu_ns as f64 / 1e9)));
            for (function, v) in [
                ("runtime.futex", st.futex_calls),
                ("runtime.usleep", st.usleep_calls),
                ("runtime.mcall", st.mcall_calls),
                ("runtime.cgocall", st.cgocall_calls),
            ] {
                f.calls.push((l("function", function), counter(v)));
            }
            for (syscall, v) in [
                ("futex_wait", st.futex_wait_syscalls),
                ("futex_wake", st.futex_wake_syscalls),
                ("futex_other", st.futex_other_syscalls),
                ("nanosleep", st.nanosleep_syscalls),
                ("sched_yield", st.sched_yield_syscalls),
            ] {
                f.syscalls.push((l("syscall", syscall), counter(v)));
            }
            for (kind, v) in [
                ("voluntary", st.voluntary_switches),
                ("involuntary", st.involuntary_switches),
            ] {
                f.switches.push((l("kind", kind), counter(v)));
            }
            f.wakeups.push((base.clone(), counter(st.wakeups)));
            if let Some((at, _)) = p.window.latest() {
                let rates = runtime_rates(p, *at, &p.latest_estimated(), &hooks);
                // Only a rate the error model bounds is exported.
                for (function, r) in rates.calls {
                    if let Some(v) = r.bounded() {
                        f.call_rate
                            .push((l("function", function), ConstGauge::new(v)));
                    }
                }
            }
            f.offcpu.push((
                l("reason", "runnable"),
                counter_f(st.runq_wait_ns as f64 / 1e9),
            ));
            let Some(a) = p.analysis.as_ref() else {
                continue;
            };
            for c in CpuClass::ALL {
                let secs = a.classes.ns[c.index()] as f64 / 1e9;
                f.class.push((l("class", c.as_str()), counter_f(secs)));
            }
            let blocked = a.blocking.cumulative_reasons();
            for r in OffReason::ALL {
                let ns = blocked.get(&r).copied().unwrap_or(0);
                f.offcpu
                    .push((l("reason", r.as_str()), counter_f(ns as f64 / 1e9)));
            }
            let view = a.runtime.view();
            if let Value::Known(g) = &view.goroutines {
                let pid_l = || base.clone();
                f.goroutines
                    .push((pid_l(), ConstGauge::new(g.total as i64)));
                for (reason, n) in &g.by_wait_reason {
                    f.waiting
                        .push((l("reason", reason), ConstGauge::new(*n as i64)));
                }
                if let Some(r) = g.growth_per_second {
                    f.growth.push((pid_l(), ConstGauge::new(r)));
                }
            }
            if let Some(n) = a.runtime.switches_total() {
                f.goroutine_switches.push((base.clone(), counter(n)));
            }
            let sv = &view.scheduler;
            for (name, help, v) in [
                (
                    "gocpu_process_sched_gomaxprocs",
                    "GOMAXPROCS, read from the runtime's memory.",
                    &sv.gomaxprocs,
                ),
                (
                    "gocpu_process_sched_idle_procs",
                    "Idle Ps (schedtrace idleprocs).",
                    &sv.idle_procs,
                ),
                (
                    "gocpu_process_sched_spinning_threads",
                    "Ms spinning for work (schedtrace spinningthreads).",
                    &sv.spinning_threads,
                ),
                (
                    "gocpu_process_sched_idle_threads",
                    "Ms parked waiting for work (schedtrace idlethreads).",
                    &sv.idle_threads,
                ),
                (
                    "gocpu_process_sched_threads",
                    "Live Ms (schedtrace threads).",
                    &sv.threads,
                ),
                (
                    "gocpu_process_sched_runqueue",
                    "Goroutines in the global run queue (schedtrace runqueue).",
                    &sv.runqueue,
                ),
            ] {
                if let Some(v) = v.known() {
                    f.sched.push((name, help, base.clone(), v));
                }
            }
            let Some(report) = p.latest_report() else {
                continue;
            };
            let verdict = judge(&s.config.detectors, &report, p.goroutine_growth());
            if let Some(score) = verdict.pseudo_idle_score {
                f.score.push((base.clone(), ConstGauge::new(score)));
            }
            for flag in Flag::ALL {
                let on = i64::from(verdict.flags.contains(&flag));
                f.flags
                    .push((l("flag", flag.as_str()), ConstGauge::new(on)));
            }
            if let Some(r) = report.ratios {
                for (name, v) in [("spin", r.spin), ("park", r.park), ("syscall", r.syscall)] {
                    f.ratios.push((l("ratio", name), ConstGauge::new(v)));
                }
            }
        }
    }
    let counts = Counts {
        listed: f.info.len() as i64,
        tracked: f.cpu.len() as i64,
    };
    let mut im = enc.encode_descriptor(
        "gocpu_process",
        "A Go process known to gocpu (value 1); labels carry its identity and state.",
        None,
        MetricType::Info,
    )?;
    for labels in &f.info {
        im.encode_info(labels)?;
    }
    let secs = Some(&Unit::Seconds);
    family(
        enc,
        "gocpu_process_cpu",
        "Time the process's threads spent on a CPU, measured at context switches.",
        secs,
        f.cpu,
    )?;
    family(
        enc,
        "gocpu_process_cpu_class",
        "On-CPU time by class (user, scheduler, futex, syscall, locks, gc, cgo, native): each poll's on-CPU time split by its CPU samples.",
        secs,
        f.class,
    )?;
    family(
        enc,
        "gocpu_process_offcpu",
        "Thread time off CPU by reason (blocked: futex_park, syscall, sleep, netpoll, native, other; runnable: waiting for a CPU).",
        secs,
        f.offcpu,
    )?;
    family(
        enc,
        "gocpu_process_runtime_calls",
        "Entries into a Go runtime function observed by a uprobe.",
        None,
        f.calls,
    )?;
    family(
        enc,
        "gocpu_process_syscalls",
        "System calls of the scheduler's interest (futex by operation, nanosleep, sched_yield); estimated from the attached periods while their tracepoints are duty-cycled.",
        None,
        f.syscalls,
    )?;
    family(
        enc,
        "gocpu_process_context_switches",
        "Context switches of the process's threads, by kind (voluntary: blocked; involuntary: preempted).",
        None,
        f.switches,
    )?;
    family(
        enc,
        "gocpu_process_wakeups",
        "Wake-ups of the process's blocked threads (sched_wakeup).",
        None,
        f.wakeups,
    )?;
    family(
        enc,
        "gocpu_process_pseudo_idle_score",
        "Non-productive share of the process's CPU over the window (scheduler + futex + locks + gc + cgo + native).",
        None,
        f.score,
    )?;
    family(
        enc,
        "gocpu_process_flag",
        "Detector flags over the window (1 when the condition holds; thresholds in the config's detectors section).",
        None,
        f.flags,
    )?;
    family(
        enc,
        "gocpu_process_runtime_call_rate",
        "Entries per second into a Go runtime function: exact over the window while its uprobe stays attached, else the governed uprobe's rate during its last attached period.",
        None,
        f.call_rate,
    )?;
    family(
        enc,
        "gocpu_process_goroutines",
        "Goroutines as runtime.NumGoroutine counts them, read from the runtime's memory.",
        None,
        f.goroutines,
    )?;
    family(
        enc,
        "gocpu_process_goroutines_waiting",
        "Waiting goroutines by wait reason (\"chan receive\", \"sync.Mutex.Lock\", ...).",
        None,
        f.waiting,
    )?;
    family(
        enc,
        "gocpu_process_goroutine_growth_rate",
        "Goroutine count growth over the window, per second (least squares): the leak signal.",
        None,
        f.growth,
    )?;
    family(
        enc,
        "gocpu_process_goroutine_switches",
        "Goroutine switches out of running since the process started, as the runtime's own scheduling-latency histogram counts them (every 8th of each goroutine's, times 8): no breakpoint in the program.",
        None,
        f.goroutine_switches,
    )?;
    let names: std::collections::BTreeSet<&'static str> =
        f.sched.iter().map(|(n, ..)| *n).collect();
    for name in names {
        let help = f
            .sched
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|(_, h, ..)| *h)
            .unwrap_or("");
        let members = f
            .sched
            .iter()
            .filter(|(n, ..)| *n == name)
            .map(|(_, _, labels, v)| (labels.clone(), ConstGauge::new(*v)))
            .collect();
        family(enc, name, help, None, members)?;
    }
    family(
        enc,
        "gocpu_process_ratio",
        "Shares of the process's CPU over the window: spin (scheduler), park (futex), syscall.",
        None,
        f.ratios,
    )?;
    Ok(counts)
}
