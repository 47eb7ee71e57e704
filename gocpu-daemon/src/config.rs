//! The daemon's YAML configuration: the embedded default (`config/default.yaml`) overlaid by an
//! optional `--config FILE`. Every key is documented in the default file.
use std::{net::SocketAddr, path::PathBuf};

use serde::{Deserialize, Serialize};

/// The embedded default configuration, also the documentation of every key.
pub const DEFAULT_YAML: &str = include_str!("../config/default.yaml");

/// Errors loading or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML is malformed or has an unknown key or a value of the wrong type.
    #[error("invalid config {origin}: {source}")]
    Parse {
        /// Where the YAML came from.
        origin: String,
        /// The parser's error, with line and column.
        source: serde_norway::Error,
    },
    /// A value is syntactically fine but out of its allowed range.
    #[error("invalid config value {key}: {reason}")]
    Invalid {
        /// Dotted key path.
        key: &'static str,
        /// Why it is rejected.
        reason: String,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// API and /metrics listen address.
    pub listen: SocketAddr,
    /// tracing EnvFilter directive.
    pub log: String,
    /// Process discovery.
    pub discovery: DiscoveryConfig,
    /// Reading kernel aggregates.
    pub ingest: IngestConfig,
    /// Per-CPU clock sampling.
    pub sampling: SamplingConfig,
    /// Which uprobes to attach.
    pub probes: ProbesConfig,
    /// Resource limits.
    pub limits: LimitsConfig,
    /// Detector thresholds.
    pub detectors: crate::model::detectors::DetectorConfig,
    /// Pod identity sources.
    pub kubernetes: KubernetesConfig,
}

/// `kubernetes:` keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Directory of the kubelet's container log links (pod names without the API server).
    pub container_log_dir: PathBuf,
    /// Watch this node's pods in the API server.
    pub api_server: bool,
    /// This node's name; empty: the `NODE_NAME` environment variable.
    pub node_name: String,
    /// Kubeconfig file; empty: `$KUBECONFIG`, `~/.kube/config`, then the pod's service account.
    pub kubeconfig: PathBuf,
}

/// `discovery:` keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Procfs mount point.
    pub proc_root: PathBuf,
    /// Seconds between full rescans.
    pub rescan_interval_seconds: u64,
    /// Binary analysis cache capacity.
    pub binary_cache_entries: usize,
    /// Seconds a binary's uprobes outlive its last process.
    pub linger_seconds: u64,
}

/// `ingest:` keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Milliseconds between counter reads.
    pub poll_interval_ms: u64,
    /// Sliding window length in seconds.
    pub window_seconds: u64,
    /// Perf buffer pages per CPU.
    pub perf_buffer_pages: usize,
    /// Seconds of CPU samples kept per process (the longest hotspots window).
    pub profile_seconds: u64,
}

/// `sampling:` keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    /// CPU clock event frequency in Hz.
    pub cpu_clock_hz: u64,
    /// Capture user stacks in CPU samples.
    pub stacks: bool,
    /// Record the call stack of at most one futex call per CPU in this many microseconds.
    pub futex_stack_interval_us: u64,
}

/// `probes:` keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesConfig {
    /// Attach at `runtime.futex`.
    pub runtime_futex: bool,
    /// Attach at `runtime.usleep`.
    pub runtime_usleep: bool,
    /// Attach at `runtime.mcall`.
    pub runtime_mcall: bool,
    /// Attach at `runtime.cgocall`.
    pub runtime_cgocall: bool,
    /// How uprobes attach.
    pub uprobe_attach: UprobeAttachMode,
    /// Where the programs' run-time figures come from.
    pub bpf_stats: BpfStatsMode,
    /// The overhead budget governing every uprobe.
    pub budget: crate::probes::budget::BudgetConfig,
}

/// `probes.uprobe_attach`: how uprobes attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UprobeAttachMode {
    /// `uprobe_multi` links where the kernel has them, else perf events.
    Auto,
    /// Always perf events (needs CAP_SYS_ADMIN on current kernels; to compare the two paths).
    PerfEvent,
}

/// `probes.bpf_stats`: where the programs' run-time figures come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BpfStatsMode {
    /// The kernel's statistics where gocpu may turn them on or the node keeps them, else the
    /// programs time themselves.
    Auto,
    /// The programs always time themselves (to compare with the kernel's figures).
    SelfTimed,
}

/// `limits:` keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Maximum tracked processes.
    pub max_processes: u32,
}

impl Config {
    /// The embedded default configuration.
    pub fn embedded() -> Result<Config, ConfigError> {
        Self::parse_overlay(None, "embedded default")
    }

    /// The embedded default overlaid with the YAML file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_overlay(Some(&text), &path.display().to_string())
    }

    /// The embedded default overlaid with `yaml` (keys absent from `yaml` keep their defaults).
    pub fn parse_overlay(yaml: Option<&str>, origin: &str) -> Result<Config, ConfigError> {
        let parse_err = |origin: &str| {
            let origin = origin.to_string();
            move |source| ConfigError::Parse { origin, source }
        };
        let mut base: serde_norway::Value =
            serde_norway::from_str(DEFAULT_YAML).map_err(parse_err("embedded default"))?;
        if let Some(yaml) = yaml {
            let overlay: serde_norway::Value =
                serde_norway::from_str(yaml).map_err(parse_err(origin))?;
            merge(&mut base, overlay);
        }
        let config: Config = serde_norway::from_value(base).map_err(parse_err(origin))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        if self.ingest.poll_interval_ms == 0 {
            return invalid("ingest.poll_interval_ms", "must be at least 1");
        }
        if self.ingest.window_seconds == 0 || self.ingest.window_seconds > 3600 {
            return invalid("ingest.window_seconds", "must be between 1 and 3600");
        }
        if self.ingest.window_seconds * 1000 < self.ingest.poll_interval_ms {
            return invalid(
                "ingest.window_seconds",
                "must be at least one poll interval (ingest.poll_interval_ms)",
            );
        }
        if self.ingest.profile_seconds < self.ingest.window_seconds
            || self.ingest.profile_seconds > 3600
        {
            return invalid(
                "ingest.profile_seconds",
                "must be between ingest.window_seconds and 3600",
            );
        }
        let pages = self.ingest.perf_buffer_pages;
        if pages == 0 || !pages.is_power_of_two() || pages > 1024 {
            return invalid(
                "ingest.perf_buffer_pages",
                "must be a power of two between 1 and 1024",
            );
        }
        if self.sampling.cpu_clock_hz == 0 || self.sampling.cpu_clock_hz > 1000 {
            return invalid("sampling.cpu_clock_hz", "must be between 1 and 1000");
        }
        if !(100..=10_000_000).contains(&self.sampling.futex_stack_interval_us) {
            return invalid(
                "sampling.futex_stack_interval_us",
                "must be between 100 and 10000000",
            );
        }
        if self.discovery.rescan_interval_seconds == 0 {
            return invalid("discovery.rescan_interval_seconds", "must be at least 1");
        }
        if self.discovery.binary_cache_entries == 0 {
            return invalid("discovery.binary_cache_entries", "must be at least 1");
        }
        let b = &self.probes.budget;
        if !(0.0..=1.0).contains(&b.max_overhead) || b.max_overhead <= 0.0 {
            return invalid("probes.budget.max_overhead", "must be a fraction in (0, 1]");
        }
        if b.sample_ms == 0 || b.sample_ms > 60_000 {
            return invalid("probes.budget.sample_ms", "must be between 1 and 60000");
        }
        if b.max_period_seconds == 0 {
            return invalid("probes.budget.max_period_seconds", "must be at least 1");
        }
        let d = &self.detectors;
        for (key, v) in [
            ("detectors.pseudo_idle_min_score", d.pseudo_idle_min_score),
            (
                "detectors.scheduler_storm_min_share",
                d.scheduler_storm_min_share,
            ),
            ("detectors.cgo_spin_min_share", d.cgo_spin_min_share),
            ("detectors.native_spin_min_share", d.native_spin_min_share),
            ("detectors.gc_pressure_min_share", d.gc_pressure_min_share),
            (
                "detectors.lock_contention_min_share",
                d.lock_contention_min_share,
            ),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return invalid(key, "must be a share between 0 and 1");
            }
        }
        if !(d.min_cpu_cores >= 0.0
            && d.futex_storm_min_per_second >= 0.0
            && d.leak_min_growth_ratio >= 0.0)
        {
            return invalid("detectors", "thresholds must be non-negative numbers");
        }
        let k = &self.kubernetes;
        if k.container_log_dir.as_os_str().is_empty() {
            return invalid("kubernetes.container_log_dir", "must not be empty");
        }
        if !k.node_name.is_empty() && !crate::discovery::kube::is_node_name(&k.node_name) {
            return invalid(
                "kubernetes.node_name",
                "must be a node name (lowercase DNS subdomain, at most 253 bytes) or empty",
            );
        }
        let max = gocpu_common::MAX_TRACKED_PROCS;
        if self.limits.max_processes == 0 || self.limits.max_processes > max {
            return Err(ConfigError::Invalid {
                key: "limits.max_processes",
                reason: format!("must be between 1 and {max}"),
            });
        }
        Ok(())
    }
}

/// Recursively overlays mappings; any other value in `overlay` replaces the base value.
fn merge(base: &mut serde_norway::Value, overlay: serde_norway::Value) {
    use serde_norway::Value;
    match (base, overlay) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn embedded_default_parses_and_is_loopback() {
        let c = Config::embedded().unwrap();
        // The file documents the code's defaults: they must agree.
        assert_eq!(
            c.detectors,
            crate::model::detectors::DetectorConfig::default()
        );
        assert!(c.listen.ip().is_loopback());
        assert_eq!(c.listen.port(), 9477);
        assert!(c.probes.runtime_mcall);
        // The API-server lookup needs RBAC and a token: opt-in.
        assert!(!c.kubernetes.api_server);
        assert_eq!(
            c.kubernetes.container_log_dir,
            std::path::Path::new(crate::discovery::cgroup::CONTAINER_LOG_DIR)
        );
    }

    #[test]
    fn overlay_changes_only_given_keys() {
        let c = Config::parse_overlay(Some("ingest:\n  window_seconds: 30\n"), "test").unwrap();
        let d = Config::embedded().unwrap();
        assert_eq!(c.ingest.window_seconds, 30);
        assert_eq!(c.ingest.poll_interval_ms, d.ingest.poll_interval_ms);
        assert_eq!(c.listen, d.listen);
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let err = Config::parse_overlay(Some("ingest:\n  windw_seconds: 30\n"), "t").unwrap_err();
        assert!(err.to_string().contains("windw_seconds"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        for (yaml, key) in [
            ("ingest: {poll_interval_ms: 0}", "ingest.poll_interval_ms"),
            ("ingest: {perf_buffer_pages: 3}", "ingest.perf_buffer_pages"),
            ("sampling: {cpu_clock_hz: 0}", "sampling.cpu_clock_hz"),
            ("limits: {max_processes: 100000}", "limits.max_processes"),
            (
                "kubernetes: {node_name: 'a,spec.nodeName!=b'}",
                "kubernetes.node_name",
            ),
            (
                "kubernetes: {container_log_dir: ''}",
                "kubernetes.container_log_dir",
            ),
            (
                "detectors: {pseudo_idle_min_score: 1.5}",
                "detectors.pseudo_idle_min_score",
            ),
        ] {
            let err = Config::parse_overlay(Some(yaml), "t").unwrap_err();
            assert!(err.to_string().contains(key), "{yaml}: {err}");
        }
    }

    #[test]
    fn wrong_type_is_a_parse_error() {
        let err = Config::parse_overlay(Some("listen: 12"), "t").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    }

    #[test]
    fn every_key_in_the_default_file_is_documented() {
        // Each key line must be preceded by a comment line: the file is the reference.
        let lines: Vec<&str> = DEFAULT_YAML.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            if t.is_empty() || t.starts_with('#') || !t.contains(':') {
                continue;
            }
            let is_section = t.ends_with(':');
            let prev = lines[..i].iter().rev().find(|l| !l.trim().is_empty());
            let documented = prev.is_some_and(|p| p.trim_start().starts_with('#'));
            assert!(is_section || documented, "undocumented key: {line}");
        }
    }
}
