//! `cargo xtask deploy-check`: the deploy/ tree and the image recipe are valid and consistent
//! with the daemon; `cargo xtask deploy-render` regenerates what is derived.
//!
//! - Prometheus rules pass `promtool check rules` and their unit tests (`promtool test rules`).
//! - The PrometheusRule manifest is the current rendering of deploy/prometheus/rules.yaml.
//! - Every kustomization renders, validates against the Kubernetes schemas and passes the
//!   DaemonSet checks ([`crate::deploy_k8s`]).
//! - The Grafana dashboard is well-formed and has what users navigate by.
//! - The Dockerfile builds with the toolchain this repository pins.
//!
//! That every PromQL expression names only metrics the daemon exports is checked against a
//! live daemon by gocpu-daemon/tests/deploy_promql.rs; that the pseudo-idle alert fires in a
//! real Prometheus by gocpu-daemon/tests/e2e_prometheus.rs.
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::{
    deploy_k8s,
    deploy_tools::kube_tools,
    tools::{BPF_LINKER_VERSION, LLVM_MAJOR, PINNED_TOOLCHAIN, run, workspace_root},
};

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
    check_rendered_rule()?;
    deploy_k8s::check(&kube_tools()?)?;
    check_grafana()?;
    check_dockerfile()?;
    eprintln!("deploy checks passed");
    Ok(())
}

/// Regenerates the derived files (the PrometheusRule manifest).
pub fn render() -> Result<()> {
    let rules = std::fs::read_to_string(workspace_root().join("deploy/prometheus/rules.yaml"))?;
    let path = deploy_k8s::prometheus_rule_path();
    std::fs::write(&path, deploy_k8s::render_prometheus_rule(&rules))
        .with_context(|| format!("write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn check_rendered_rule() -> Result<()> {
    let rules = std::fs::read_to_string(workspace_root().join("deploy/prometheus/rules.yaml"))?;
    let path = deploy_k8s::prometheus_rule_path();
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != deploy_k8s::render_prometheus_rule(&rules) {
        bail!(
            "{} is stale: run `cargo xtask deploy-render`",
            path.display()
        );
    }
    Ok(())
}

/// Every panel and variable queries through the dashboard's datasource variable, the variables
/// users filter by exist, and per-process panels link to the daemon's own views.
fn check_grafana() -> Result<()> {
    let path = workspace_root().join("deploy/grafana/gocpu.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let vars = v["templating"]["list"]
        .as_array()
        .context("dashboard without variables")?;
    let names: Vec<&str> = vars.iter().filter_map(|x| x["name"].as_str()).collect();
    for want in ["datasource", "node", "namespace", "pod", "pid"] {
        ensure!(names.contains(&want), "dashboard has no ${want} variable");
    }
    ensure!(
        vars.iter().any(|x| x["name"] == "datasource"
            && x["type"] == "datasource"
            && x["query"] == "prometheus"),
        "$datasource must be a Prometheus datasource variable"
    );
    let mut panels = Vec::new();
    collect_panels(&v["panels"], &mut panels);
    ensure!(!panels.is_empty(), "dashboard without panels");
    let mut ids = std::collections::BTreeSet::new();
    for p in &panels {
        let title = p["title"].as_str().unwrap_or("?");
        ensure!(
            ids.insert(p["id"].as_u64().context("panel without id")?),
            "duplicate panel id in {title}"
        );
        if p["type"] == "row" || p["type"] == "text" {
            continue;
        }
        ensure!(
            p["datasource"]["uid"] == "${datasource}",
            "panel {title} does not use $datasource"
        );
        let targets = p["targets"]
            .as_array()
            .with_context(|| format!("panel {title} has no targets"))?;
        ensure!(!targets.is_empty(), "panel {title} has no queries");
        for t in targets {
            ensure!(
                t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "panel {title}: empty query"
            );
        }
    }
    for endpoint in ["/hotspots", "/flamegraph.svg"] {
        ensure!(
            text.contains(endpoint),
            "dashboard links nowhere to {endpoint}"
        );
    }
    Ok(())
}

fn collect_panels<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
    for p in v.as_array().into_iter().flatten() {
        out.push(p);
        collect_panels(&p["panels"], out);
    }
}

/// The image builds with the same toolchain, LLVM and bpf-linker as `cargo xtask setup`, and
/// ships only the daemon.
fn check_dockerfile() -> Result<()> {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("Dockerfile")).context("Dockerfile")?;
    for (what, needle) in [
        (
            "the pinned toolchain",
            format!("ARG RUST_TOOLCHAIN={PINNED_TOOLCHAIN}"),
        ),
        ("LLVM", format!("llvm-{LLVM_MAJOR}-dev")),
        (
            "bpf-linker",
            format!("bpf-linker --version {BPF_LINKER_VERSION}"),
        ),
        (
            "a locked build",
            "cargo build --release --locked".to_string(),
        ),
    ] {
        ensure!(
            text.contains(&needle),
            "Dockerfile: {what}: expected `{needle}`"
        );
    }
    let stages = text.lines().filter(|l| l.starts_with("FROM ")).count();
    ensure!(stages >= 2, "Dockerfile must be multi-stage");
    ensure!(
        text.lines()
            .any(|l| l.starts_with("ENTRYPOINT") && l.contains("gocpu")),
        "Dockerfile: the entrypoint must be gocpu"
    );
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).context(".dockerignore")?;
    for dir in ["target", ".tools", ".git"] {
        ensure!(
            ignore.lines().any(|l| l.trim().trim_matches('/') == dir),
            ".dockerignore must exclude {dir}/ (build context size)"
        );
    }
    Ok(())
}
