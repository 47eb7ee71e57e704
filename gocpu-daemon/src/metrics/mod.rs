//! /metrics: OpenMetrics text from a collector that reads the model at scrape time.
//!
//! Per-process series exist exactly while the process is tracked: nothing to expire by hand.
//! Names follow Prometheus conventions: base units (seconds), and counters get their `_total`
//! suffix from prometheus-client, never by hand. Cardinality is bounded: per process a fixed set
//! of label values (classes, reasons, flags); no per-thread or per-function series (those are
//! in the API).
mod daemon;
mod process;

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::counter::ConstCounter,
    registry::{Registry, Unit},
};

use crate::ingest::Shared;

/// Builds the registry served at /metrics.
pub fn registry(shared: Arc<Shared>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ModelCollector { shared }));
    registry
}

/// Exposition formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (what Prometheus asks for).
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4 (for curl, promtool and older scrapers).
    PrometheusText,
}

impl Format {
    /// The format a client asks for with its `Accept` header.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::PrometheusText,
        }
    }

    /// The response content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Renders `registry` in `format`.
pub fn render(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry)?,
        Format::PrometheusText => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?
        }
    }
    Ok(out)
}

/// Label pairs of one series.
pub(crate) type Labels = Vec<(&'static str, String)>;

/// Encodes one metric family whose members are (labels, value) pairs; nothing when empty.
pub(crate) fn family<M: EncodeMetric>(
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

/// A counter with an integer value.
pub(crate) fn counter(v: u64) -> ConstCounter<u64> {
    ConstCounter::new(v)
}

/// A counter with a float value (seconds).
pub(crate) fn counter_f(v: f64) -> ConstCounter<f64> {
    ConstCounter::new(v)
}

#[derive(Debug)]
struct ModelCollector {
    shared: Arc<Shared>,
}

impl Collector for ModelCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let tracked = process::encode(&self.shared, &mut enc)?;
        daemon::encode(&self.shared, &mut enc, tracked)
    }
}
