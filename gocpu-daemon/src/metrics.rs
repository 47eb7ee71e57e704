//! /metrics: OpenMetrics text from a collector that reads the model at scrape time.
//!
//! Per-process series exist exactly while the process is tracked: nothing to expire by hand.
//! Names follow Prometheus conventions: base units (seconds), and counters get their `_total`
//! suffix from prometheus-client, never by hand.
use std::sync::{Arc, atomic::Ordering};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};

use crate::ingest::Shared;

/// Builds the registry served at /metrics.
pub fn registry(shared: Arc<Shared>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ModelCollector { shared }));
    registry
}

/// Renders `registry` as OpenMetrics text.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug)]
struct ModelCollector {
    shared: Arc<Shared>,
}

type Labels = Vec<(&'static str, String)>;

/// Encodes one metric family whose members are (labels, value) pairs.
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    members: Vec<(Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let Some(first) = members.first() else {
        return Ok(());
    };
    let mut metric = enc.encode_descriptor(name, help, unit, first.1.metric_type())?;
    for (labels, m) in &members {
        m.encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter(v: u64) -> ConstCounter<u64> {
    ConstCounter::new(v)
}

fn counter_f(v: f64) -> ConstCounter<f64> {
    ConstCounter::new(v)
}

impl Collector for ModelCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.shared;
        let mut info = Vec::new();
        let mut cpu = Vec::new();
        let mut calls = Vec::new();
        let mut switches = Vec::new();
        {
            let model = s.model();
            for p in model.iter() {
                let pid = p.key.pid.to_string();
                let go_version = p
                    .binary
                    .go()
                    .and_then(|g| g.go_version.clone())
                    .unwrap_or_default();
                info.push(vec![
                    ("pid", pid.clone()),
                    ("comm", p.comm.clone()),
                    ("exe", p.exe.display().to_string()),
                    ("go_version", go_version),
                    ("attach_state", p.attach_state().as_str().to_string()),
                ]);
                if p.tracking != crate::model::process::Tracking::Tracked {
                    continue;
                }
                let st = p.latest();
                cpu.push((
                    vec![("pid", pid.clone())],
                    counter_f(st.oncpu_ns as f64 / 1e9),
                ));
                for (function, v) in [
                    ("runtime.futex", st.futex_calls),
                    ("runtime.usleep", st.usleep_calls),
                    ("runtime.mcall", st.mcall_calls),
                ] {
                    calls.push((
                        vec![("pid", pid.clone()), ("function", function.to_string())],
                        counter(v),
                    ));
                }
                for (kind, v) in [
                    ("voluntary", st.voluntary_switches),
                    ("involuntary", st.involuntary_switches),
                ] {
                    switches.push((
                        vec![("pid", pid.clone()), ("kind", kind.to_string())],
                        counter(v),
                    ));
                }
            }
        }
        let tracked = cpu.len() as i64;
        let listed = info.len() as i64;
        let mut im = enc.encode_descriptor(
            "gocpu_process",
            "A Go process known to gocpu (value 1); labels carry its identity and state.",
            None,
            MetricType::Info,
        )?;
        for labels in &info {
            im.encode_info(labels)?;
        }
        family(
            &mut enc,
            "gocpu_process_cpu",
            "Time the process's threads spent on a CPU, measured at context switches.",
            Some(&Unit::Seconds),
            cpu,
        )?;
        family(
            &mut enc,
            "gocpu_process_runtime_calls",
            "Entries into a Go runtime function, counted by a uprobe.",
            None,
            calls,
        )?;
        family(
            &mut enc,
            "gocpu_process_context_switches",
            "Context switches of the process's threads, by kind (voluntary: blocked; involuntary: preempted).",
            None,
            switches,
        )?;

        let (binaries, links, drops, programs) = {
            let m = s.manager();
            let (b, l) = m.attachment_counts();
            (b, l, m.drops(), m.program_stats())
        };
        let mut run_time = Vec::new();
        let mut runs = Vec::new();
        for p in &programs {
            let labels = vec![("program", p.name.to_string())];
            run_time.push((labels.clone(), counter_f(p.run_time.as_secs_f64())));
            runs.push((labels, counter(p.run_count)));
        }
        family(
            &mut enc,
            "gocpu_bpf_program_run",
            "Time the kernel spent running a gocpu eBPF program (BPF run-time statistics).",
            Some(&Unit::Seconds),
            run_time,
        )?;
        family(
            &mut enc,
            "gocpu_bpf_program_runs",
            "Runs of a gocpu eBPF program (hook hits).",
            None,
            runs,
        )?;
        let gauges: [(&str, &str, i64); 4] = [
            (
                "gocpu_processes_listed",
                "Go processes known to gocpu.",
                listed,
            ),
            (
                "gocpu_processes_tracked",
                "Go processes accounted in kernel.",
                tracked,
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
        ] {
            lost.push((vec![("reason", reason.to_string())], counter(v)));
        }
        family(
            &mut enc,
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
        let build = enc.encode_descriptor(
            "gocpu_build",
            "gocpu build information (value 1).",
            None,
            MetricType::Info,
        );
        build?.encode_info(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])?;
        Ok(())
    }
}
