//! `cargo xtask deploy-check`: the deploy/ tree is valid and consistent with the daemon.
//!
//! - Prometheus rules pass `promtool check rules` and their unit tests (`promtool test rules`).
//! - The Kubernetes manifests parse, and the DaemonSet has what the daemon needs on a node
//!   (host PID namespace, BPF/perf capabilities, tracefs, probes on the daemon's real endpoints,
//!   a container port equal to the configured listen port).
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use serde_norway::Value;

use crate::tools::{run, workspace_root};

/// Runs every deploy check.
pub fn check() -> Result<()> {
    let prom = workspace_root().join("deploy/prometheus");
    run(Command::new("promtool")
        .current_dir(&prom)
        .args(["check", "rules", "rules.yaml"]))
    .context("promtool check rules (is the prometheus package installed? `cargo xtask setup`)")?;
    run(Command::new("promtool")
        .current_dir(&prom)
        .args(["test", "rules", "rules.test.yaml"]))?;
    check_kubernetes()?;
    check_grafana()?;
    eprintln!("deploy checks passed");
    Ok(())
}

fn docs(path: &std::path::Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        out.push(Value::deserialize(doc).with_context(|| format!("YAML in {}", path.display()))?);
    }
    Ok(out)
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn check_kubernetes() -> Result<()> {
    let path = workspace_root().join("deploy/kubernetes/gocpu.yaml");
    let docs = docs(&path)?;
    let kinds: Vec<&str> = docs
        .iter()
        .filter_map(|d| d.get("kind").and_then(Value::as_str))
        .collect();
    for k in [
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "DaemonSet",
        "Service",
    ] {
        ensure!(kinds.contains(&k), "{}: no {k}", path.display());
    }
    let ds = docs
        .iter()
        .find(|d| d.get("kind").and_then(Value::as_str) == Some("DaemonSet"))
        .context("no DaemonSet")?;
    let spec = get(ds, &["spec", "template", "spec"]).context("DaemonSet without pod spec")?;
    ensure!(
        spec.get("hostPID").and_then(Value::as_bool) == Some(true),
        "DaemonSet must set hostPID: true (discovery scans the node's /proc)"
    );
    let c = get(spec, &["containers"])
        .and_then(Value::as_sequence)
        .and_then(|s| s.first())
        .context("DaemonSet without containers")?;
    let caps: Vec<&str> = get(c, &["securityContext", "capabilities", "add"])
        .and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let privileged =
        get(c, &["securityContext", "privileged"]).and_then(Value::as_bool) == Some(true);
    for cap in ["BPF", "PERFMON", "SYS_ADMIN"] {
        ensure!(
            privileged || caps.contains(&cap),
            "container lacks capability {cap}"
        );
    }
    for (probe, endpoint) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let p = get(c, &[probe, "httpGet", "path"]).and_then(Value::as_str);
        ensure!(
            p == Some(endpoint),
            "{probe} must GET {endpoint}, has {p:?}"
        );
    }
    let port = get(c, &["ports"])
        .and_then(Value::as_sequence)
        .and_then(|s| s.first())
        .and_then(|p| p.get("containerPort"))
        .and_then(Value::as_u64)
        .context("container has no port")?;
    let cm = docs
        .iter()
        .find(|d| d.get("kind").and_then(Value::as_str) == Some("ConfigMap"))
        .context("no ConfigMap")?;
    let config = get(cm, &["data", "gocpu.yaml"])
        .and_then(Value::as_str)
        .context("ConfigMap has no gocpu.yaml")?;
    let config: Value = serde_norway::from_str(config).context("ConfigMap gocpu.yaml")?;
    let listen = config
        .get("listen")
        .and_then(Value::as_str)
        .context("ConfigMap config sets no listen address")?;
    ensure!(
        listen.ends_with(&format!(":{port}")),
        "listen {listen} does not match containerPort {port}"
    );
    let mounts: Vec<&str> = get(c, &["volumeMounts"])
        .and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|m| m.get("mountPath").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if !mounts.contains(&"/sys/kernel/tracing") {
        bail!("the container must mount the host's /sys/kernel/tracing (tracepoint ids)");
    }
    Ok(())
}

fn check_grafana() -> Result<()> {
    let dir = workspace_root().join("deploy/grafana");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) == Some("json") {
            let text = std::fs::read_to_string(&p)?;
            let v: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{}", p.display()))?;
            ensure!(v.get("panels").is_some(), "{}: no panels", p.display());
        }
    }
    Ok(())
}
