//! The daemon's own metric families: its state, its cost, what it lost.
use std::sync::atomic::Ordering;

use prometheus_client::{
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Unit,
};

use super::{Labels, counter, counter_f, family, process::Counts};
use crate::ingest::Shared;

/// Encodes the daemon's families.
pub(crate) fn encode(
    s: &Shared,
    enc: &mut DescriptorEncoder,
    counts: Counts,
) -> Result<(), std::fmt::Error> {
    let (
        binaries,
        links,
        drops,
        user_losses,
        programs,
        attached,
        cost,
        syscalls,
        uprobe_path,
        stats_source,
    ) = {
        let mut m = s.manager();
        let (b, l) = m.attachment_counts();
        (
            b,
            l,
            m.drops(),
            m.aggregates().user_losses(),
            m.program_stats(),
            m.attached_seconds(),
            m.hit_cost(),
            m.syscall_attached_seconds(),
            m.uprobe_path(),
            m.stats_source(),
        )
    };
    family(
        enc,
        "gocpu_syscall_tracepoint_attached",
        "Time the governed syscall tracepoints were attached (their duty cycle at work); while duty-cycled, per-process syscall counts are estimates.",
        Some(&Unit::Seconds),
        syscalls
            .into_iter()
            .map(|(event, secs)| (vec![("tracepoint", event.to_string())], counter_f(secs)))
            .collect(),
    )?;
    let mut attached: Vec<_> = attached.into_iter().collect();
    attached.sort_by_key(|(h, _)| *h);
    let attached = attached
        .into_iter()
        .map(|(h, secs)| {
            (
                vec![("function", h.function().to_string())],
                counter_f(secs),
            )
        })
        .collect();
    family(
        enc,
        "gocpu_uprobe_attached",
        "Time uprobes were attached, summed over binaries, per runtime function (the governor's duty cycle at work).",
        Some(&Unit::Seconds),
        attached,
    )?;
    if let Some(c) = cost {
        let costs = vec![
            (
                vec![("instruction", "emulated".to_string())],
                ConstGauge::new(c.emulated.as_secs_f64()),
            ),
            (
                vec![("instruction", "single_stepped".to_string())],
                ConstGauge::new(c.single_stepped.as_secs_f64()),
            ),
        ];
        family(
            enc,
            "gocpu_uprobe_hit_cost",
            "Measured cost of one uprobe hit on this machine, by kind of probed instruction.",
            Some(&Unit::Seconds),
            costs,
        )?;
    }
    let mut run_time = Vec::new();
    let mut runs = Vec::new();
    for p in &programs {
        let labels = vec![
            ("program", p.name.to_string()),
            ("source", p.source.as_str().to_string()),
        ];
        run_time.push((labels.clone(), counter_f(p.run_time.as_secs_f64())));
        runs.push((labels, counter(p.run_count)));
    }
    family(
        enc,
        "gocpu_bpf_program_run",
        "Time spent running a gocpu eBPF program: the kernel's BPF run-time statistics (source=\"kernel\") or the program's own clock reads (source=\"self_timed\").",
        Some(&Unit::Seconds),
        run_time,
    )?;
    family(
        enc,
        "gocpu_bpf_program_runs",
        "Runs of a gocpu eBPF program (hook hits).",
        None,
        runs,
    )?;

    let gauges: [(&str, &str, i64); 4] = [
        (
            "gocpu_processes_listed",
            "Go processes known to gocpu.",
            counts.listed,
        ),
        (
            "gocpu_processes_tracked",
            "Go processes accounted in kernel.",
            counts.tracked,
        ),
        (
            "gocpu_probed_binaries",
            "Binaries with uprobes attached.",
            binaries as i64,
        ),
        (
            "gocpu_uprobes_attached",
            "Uprobes attached, over all binaries.",
            links as i64,
        ),
    ];
    for (name, help, v) in gauges {
        let g = ConstGauge::new(v);
        g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
    }

    let loss = &s.loss;
    let mut lost: Vec<(Labels, ConstCounter<u64>)> = drops
        .iter()
        .map(|(r, n)| (vec![("reason", r.as_str().to_string())], counter(*n)))
        .collect();
    for (reason, v) in [
        ("perf_buffer_full", loss.perf_lost.load(Ordering::Relaxed)),
        ("malformed", loss.malformed.load(Ordering::Relaxed)),
        ("queue_full", loss.queue_full.load(Ordering::Relaxed)),
        ("thread_evicted", user_losses.thread_evicted),
        ("futex_stack_overflow", user_losses.futex_stack_overflow),
    ] {
        lost.push((vec![("reason", reason.to_string())], counter(v)));
    }
    family(
        enc,
        "gocpu_events_lost",
        "Kernel events that did not reach the daemon's model, by reason.",
        None,
        lost,
    )?;

    let st = &s.stats;
    for (name, help, v) in [
        (
            "gocpu_inspections",
            "Processes inspected (scans and exec events).",
            &st.inspections,
        ),
        (
            "gocpu_inspection_errors",
            "Inspections that failed (other than vanished processes).",
            &st.inspection_errors,
        ),
        ("gocpu_rescans", "Full procfs rescans.", &st.rescans),
        (
            "gocpu_missed_exits",
            "Processes found dead on rescan without an exit event.",
            &st.missed_exits,
        ),
    ] {
        let c = counter(v.load(Ordering::Relaxed));
        c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)?;
    }
    let api = s.pods().api().map(|a| a.status());
    if let Some(api) = api {
        encode_kube(enc, &api)?;
    }
    let build = enc.encode_descriptor(
        "gocpu_build",
        "gocpu build information (value 1).",
        None,
        MetricType::Info,
    );
    build?.encode_info(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])?;
    let p = &s.preflight;
    let daemon = enc.encode_descriptor(
        "gocpu_daemon",
        "Where the daemon runs and how it reaches the kernel (value 1; /daemon has the whole start-up report).",
        None,
        MetricType::Info,
    );
    daemon?.encode_info(&vec![
        ("environment", p.placement.environment.as_str().to_string()),
        ("uprobe_attach", uprobe_path.as_str().to_string()),
        ("bpf_stats", stats_source.as_str().to_string()),
    ])?;
    Ok(())
}

/// The API-server pod watch (only with `kubernetes.api_server`): whether it works, what it
/// holds, and why it failed.
fn encode_kube(
    enc: &mut DescriptorEncoder,
    api: &crate::discovery::kube::ApiStatus,
) -> Result<(), std::fmt::Error> {
    for (name, help, v) in [
        (
            "gocpu_kube_api_up",
            "1 while the API-server watch of this node's pods works, 0 after a failure until the next successful list.",
            i64::from(api.up),
        ),
        (
            "gocpu_kube_api_pods",
            "Pods of this node indexed from the API server.",
            api.pods as i64,
        ),
        (
            "gocpu_kube_api_containers",
            "Containers of this node's pods indexed by container ID from the API server.",
            api.containers as i64,
        ),
    ] {
        let g = ConstGauge::new(v);
        g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
    }
    let errors = api
        .errors
        .iter()
        .map(|(k, n)| (vec![("reason", k.as_str().to_string())], counter(*n)))
        .collect();
    family(
        enc,
        "gocpu_kube_api_errors",
        "Failures of the API-server pod watch, by reason (client, denied, list, watch); each is retried with backoff.",
        None,
        errors,
    )
}
