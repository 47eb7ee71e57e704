//! The Kubernetes half of `cargo xtask deploy-check`: every kustomization under
//! deploy/kubernetes (the base and each overlay) is rendered with kustomize (kubectl's, from
//! `.tools/kube`), validated against the Kubernetes schemas of the oldest and newest releases
//! kubernetes-validate bundles (strict: unknown fields are errors) and the prometheus-operator
//! CRD models, then checked for what the daemon needs on a node and nothing more (API access
//! only where the configuration enables the API-server pod lookup: overlays/api-server).
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use serde_norway::Value;

use crate::{
    deploy_tools::{KubeTools, OPERATOR_CHECK_PY},
    tools::{output, run, workspace_root},
};

/// Kubernetes releases the manifests are validated against.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.25.0", "1.37.0"];
/// The capabilities of the default (non-privileged) DaemonSet: exactly these.
const CAPABILITIES: [&str; 5] = [
    "BPF",
    "PERFMON",
    "SYS_PTRACE",
    "DAC_READ_SEARCH",
    "CHECKPOINT_RESTORE",
];
/// Kinds without a namespace (all others must be in namespace gocpu).
const CLUSTER_SCOPED: [&str; 3] = ["Namespace", "ClusterRole", "ClusterRoleBinding"];
/// hostPath volumes the DaemonSet may mount (read-only), and nothing else from the host.
const HOST_PATHS: [&str; 2] = ["/sys/kernel/tracing", "/var/log/containers"];

/// What an overlay must look like beyond the common checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    /// Capabilities exactly [`CAPABILITIES`].
    Capabilities,
    /// [`CAPABILITIES`] plus SYS_RESOURCE.
    CapabilitiesAndResource,
    /// privileged: true.
    Privileged,
}

/// Renders, validates and checks every kustomization.
pub fn check(tools: &KubeTools) -> Result<()> {
    let k8s = workspace_root().join("deploy/kubernetes");
    let out = workspace_root().join("target/deploy-check");
    std::fs::create_dir_all(&out)?;
    let mut dirs = vec![("base".to_string(), k8s.join("base"))];
    let mut overlays: Vec<_> = std::fs::read_dir(k8s.join("overlays"))?
        .flatten()
        .filter(|e| e.path().join("kustomization.yaml").is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    overlays.sort();
    ensure!(
        overlays.iter().any(|(n, _)| n == "default")
            && overlays.iter().any(|(n, _)| n == "privileged"),
        "deploy/kubernetes/overlays needs at least default and privileged"
    );
    dirs.extend(overlays);
    for (name, dir) in &dirs {
        let yaml = output(Command::new(&tools.kubectl).arg("kustomize").arg(dir))
            .with_context(|| format!("kustomize {}", dir.display()))?;
        let file = out.join(format!("{name}.yaml"));
        std::fs::write(&file, &yaml)?;
        for v in KUBERNETES_VERSIONS {
            run(Command::new(&tools.validate)
                .args(["--strict", "--quiet", "--no-warn", "-k", v])
                .arg(&file))
            .with_context(|| format!("{name}: schema validation against Kubernetes {v}"))?;
        }
        run(Command::new(&tools.python)
            .arg("-c")
            .arg(OPERATOR_CHECK_PY)
            .arg(&file))
        .with_context(|| format!("{name}: prometheus-operator objects"))?;
        let docs = docs(&yaml).with_context(|| format!("rendered {name}"))?;
        let flavour = match name.as_str() {
            "privileged" => Flavour::Privileged,
            "kernel-pre-5.11" => Flavour::CapabilitiesAndResource,
            _ => Flavour::Capabilities,
        };
        check_rendered(&docs, flavour, name != "base")
            .with_context(|| format!("overlay {name} ({})", file.display()))?;
        eprintln!("kubernetes: {name} renders, validates and passes the DaemonSet checks");
    }
    Ok(())
}

/// Parses a multi-document YAML stream.
pub fn docs(text: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let v = Value::deserialize(doc)?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

fn seq<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn kind<'a>(docs: &'a [Value], k: &str) -> Result<&'a Value> {
    docs.iter()
        .find(|d| str_at(d, &["kind"]) == Some(k))
        .with_context(|| format!("no {k}"))
}

/// `selector` (matchLabels or a plain map) is satisfied by `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let want = selector.get("matchLabels").unwrap_or(selector);
    want.as_mapping().is_some_and(|m| {
        !m.is_empty()
            && m.iter()
                .all(|(k, v)| labels.get(k.as_str().unwrap_or("")) == Some(v))
    })
}

/// A resource quantity in base units (cores, bytes).
fn quantity(q: &Value) -> Option<f64> {
    let s = match q {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (num, mul) = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("m", 1e-3),
    ]
    .iter()
    .find_map(|(suffix, mul)| s.strip_suffix(suffix).map(|n| (n.to_string(), *mul)))
    .unwrap_or((s.clone(), 1.0));
    num.parse::<f64>().ok().map(|n| n * mul)
}

fn check_rendered(docs: &[Value], flavour: Flavour, operator: bool) -> Result<()> {
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| str_at(d, &["kind"])).collect();
    let mut want = vec![
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "DaemonSet",
        "Service",
    ];
    if operator {
        want.extend(["PodMonitor", "PrometheusRule"]);
    }
    for k in want {
        ensure!(kinds.contains(k), "no {k}");
    }
    for d in docs {
        if !CLUSTER_SCOPED.contains(&str_at(d, &["kind"]).unwrap_or("")) {
            ensure!(
                str_at(d, &["metadata", "namespace"]) == Some("gocpu"),
                "{} is not in namespace gocpu",
                str_at(d, &["kind"]).unwrap_or("?")
            );
        }
    }
    let ds = kind(docs, "DaemonSet")?;
    let pod = get(ds, &["spec", "template", "spec"]).context("DaemonSet without pod spec")?;
    let pod_labels =
        get(ds, &["spec", "template", "metadata", "labels"]).context("no pod labels")?;
    ensure!(
        selects(
            get(ds, &["spec", "selector"]).context("no selector")?,
            pod_labels
        ),
        "DaemonSet selector does not select its own pods"
    );
    ensure!(
        pod.get("hostPID").and_then(Value::as_bool) == Some(true),
        "hostPID must be true (discovery scans the node's /proc)"
    );
    ensure!(
        pod.get("hostNetwork").and_then(Value::as_bool) != Some(true),
        "hostNetwork is not needed"
    );
    ensure!(
        seq(pod, &["tolerations"])
            .iter()
            .any(|t| str_at(t, &["operator"]) == Some("Exists")
                && t.get("key").is_none()
                && t.get("effect").is_none()),
        "the DaemonSet must tolerate every taint (operator: Exists, no key, no effect)"
    );
    let containers = seq(pod, &["containers"]);
    let [c] = containers else {
        bail!("one container expected, found {}", containers.len());
    };

    let sc = c.get("securityContext").context("no securityContext")?;
    ensure!(
        get(sc, &["readOnlyRootFilesystem"]).and_then(Value::as_bool) == Some(true),
        "readOnlyRootFilesystem must be true"
    );
    let privileged = get(sc, &["privileged"]).and_then(Value::as_bool) == Some(true);
    let mut caps: Vec<&str> = seq(sc, &["capabilities", "add"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    caps.sort_unstable();
    let mut expected: Vec<&str> = CAPABILITIES.to_vec();
    match flavour {
        Flavour::Privileged => ensure!(
            privileged,
            "the privileged overlay must set privileged: true"
        ),
        Flavour::Capabilities | Flavour::CapabilitiesAndResource => {
            ensure!(!privileged, "only the privileged overlay may be privileged");
            if flavour == Flavour::CapabilitiesAndResource {
                expected.push("SYS_RESOURCE");
            }
            expected.sort_unstable();
            ensure!(
                caps == expected,
                "capabilities.add must be exactly {expected:?}, is {caps:?}"
            );
            let drop: Vec<&str> = seq(sc, &["capabilities", "drop"])
                .iter()
                .filter_map(Value::as_str)
                .collect();
            ensure!(
                drop == ["ALL"],
                "capabilities.drop must be [ALL], is {drop:?}"
            );
            ensure!(
                get(sc, &["allowPrivilegeEscalation"]).and_then(Value::as_bool) == Some(false),
                "allowPrivilegeEscalation must be false"
            );
        }
    }

    let node_name = seq(c, &["env"]).iter().any(|e| {
        str_at(e, &["name"]) == Some("NODE_NAME")
            && str_at(e, &["valueFrom", "fieldRef", "fieldPath"]) == Some("spec.nodeName")
    });
    ensure!(
        node_name,
        "NODE_NAME must come from the downward API (fieldRef spec.nodeName)"
    );

    for (probe, endpoint) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let p = str_at(c, &[probe, "httpGet", "path"]);
        ensure!(
            p == Some(endpoint),
            "{probe} must GET {endpoint}, has {p:?}"
        );
    }
    for r in ["cpu", "memory"] {
        let req = get(c, &["resources", "requests", r])
            .and_then(quantity)
            .with_context(|| format!("no {r} request"))?;
        let lim = get(c, &["resources", "limits", r])
            .and_then(quantity)
            .with_context(|| format!("no {r} limit"))?;
        ensure!(
            req > 0.0 && req <= lim,
            "{r}: request {req} must be positive and at most the limit {lim}"
        );
    }

    // Mounts: the config, and only the host paths the daemon reads, all read-only.
    let volumes = seq(pod, &["volumes"]);
    let mut host_paths = BTreeSet::new();
    for m in seq(c, &["volumeMounts"]) {
        let name = str_at(m, &["name"]).unwrap_or("?");
        ensure!(
            m.get("readOnly").and_then(Value::as_bool) == Some(true),
            "mount {name} must be readOnly"
        );
        let v = volumes
            .iter()
            .find(|v| str_at(v, &["name"]) == Some(name))
            .with_context(|| format!("mount {name} has no volume"))?;
        if let Some(path) = str_at(v, &["hostPath", "path"]) {
            ensure!(
                str_at(m, &["mountPath"]) == Some(path),
                "hostPath {path} must be mounted at the same path"
            );
            host_paths.insert(path);
        } else {
            ensure!(
                v.get("configMap").is_some(),
                "volume {name}: only configMap and hostPath volumes are expected"
            );
        }
    }
    ensure!(
        volumes.len() == seq(c, &["volumeMounts"]).len(),
        "a volume is declared but not mounted"
    );
    let allowed: BTreeSet<&str> = HOST_PATHS.into_iter().collect();
    ensure!(
        host_paths == allowed,
        "host paths must be exactly {allowed:?}, are {host_paths:?}"
    );

    // The configuration: mounted where --config points, listening on the container port.
    let port = seq(c, &["ports"]).first().context("no container port")?;
    let (port_name, port_num) = (
        str_at(port, &["name"]).context("port without name")?,
        get(port, &["containerPort"])
            .and_then(Value::as_u64)
            .context("no containerPort")?,
    );
    let args: Vec<&str> = seq(c, &["args"]).iter().filter_map(Value::as_str).collect();
    let config_path = args
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1])
        .context("no --config argument")?;
    let config_path = Path::new(config_path);
    let cm_volume = volumes
        .iter()
        .find_map(|v| str_at(v, &["configMap", "name"]))
        .context("no configMap volume")?;
    let cm = docs
        .iter()
        .find(|d| {
            str_at(d, &["kind"]) == Some("ConfigMap")
                && str_at(d, &["metadata", "name"]) == Some(cm_volume)
        })
        .with_context(|| {
            format!("the DaemonSet mounts ConfigMap {cm_volume}, which is not rendered")
        })?;
    let key = config_path
        .file_name()
        .and_then(|f| f.to_str())
        .context("bad --config path")?;
    let mount = seq(c, &["volumeMounts"])
        .iter()
        .find(|m| {
            volumes.iter().any(|v| {
                str_at(v, &["name"]) == str_at(m, &["name"]) && v.get("configMap").is_some()
            })
        })
        .and_then(|m| str_at(m, &["mountPath"]))
        .context("configMap not mounted")?;
    ensure!(
        config_path.parent() == Some(Path::new(mount)),
        "--config {} is not in the config mount {mount}",
        config_path.display()
    );
    let config: Value = serde_norway::from_str(
        str_at(cm, &["data", key]).with_context(|| format!("ConfigMap has no {key}"))?,
    )?;
    check_api_access(docs, pod, &config)?;
    let listen = str_at(&config, &["listen"]).context("the config sets no listen address")?;
    ensure!(
        listen.ends_with(&format!(":{port_num}")),
        "listen {listen} does not match containerPort {port_num}"
    );

    // Service and PodMonitor find the pods and the port.
    let svc = kind(docs, "Service")?;
    ensure!(
        selects(
            get(svc, &["spec", "selector"]).context("Service without selector")?,
            pod_labels
        ),
        "Service does not select the pods"
    );
    ensure!(
        seq(svc, &["spec", "ports"])
            .iter()
            .any(|p| str_at(p, &["targetPort"]) == Some(port_name)),
        "Service targets no port named {port_name}"
    );
    if operator {
        let pm = kind(docs, "PodMonitor")?;
        ensure!(
            selects(
                get(pm, &["spec", "selector"]).context("PodMonitor without selector")?,
                pod_labels
            ),
            "PodMonitor does not select the pods"
        );
        let ep = seq(pm, &["spec", "podMetricsEndpoints"])
            .first()
            .context("PodMonitor without endpoints")?;
        ensure!(
            str_at(ep, &["port"]) == Some(port_name),
            "PodMonitor scrapes another port"
        );
        ensure!(
            seq(ep, &["relabelings"])
                .iter()
                .any(|r| str_at(r, &["targetLabel"]) == Some("node")),
            "PodMonitor must label series with the node (the dashboard's node variable)"
        );
        check_prometheus_rule(kind(docs, "PrometheusRule")?)?;
    }
    Ok(())
}

/// API access exactly when the daemon's configuration asks for the API-server pod lookup
/// (`kubernetes.api_server`, components/api-server): then a mounted token and read access to
/// pods bound to the DaemonSet's service account, nothing more; otherwise no token and no RBAC.
fn check_api_access(docs: &[Value], pod: &Value, config: &Value) -> Result<()> {
    let lookup = get(config, &["kubernetes", "api_server"]).and_then(Value::as_bool) == Some(true);
    let automount = pod
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool);
    let rbac: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            str_at(d, &["apiVersion"]).is_some_and(|v| v.starts_with("rbac.authorization.k8s.io/"))
        })
        .collect();
    if !lookup {
        ensure!(
            automount == Some(false),
            "no API token is needed without kubernetes.api_server: automountServiceAccountToken must be false"
        );
        ensure!(
            rbac.is_empty(),
            "RBAC objects without kubernetes.api_server: gocpu needs no API access"
        );
        return Ok(());
    }
    ensure!(
        automount == Some(true),
        "kubernetes.api_server needs a token: automountServiceAccountToken must be true"
    );
    let role = kind(docs, "ClusterRole")?;
    let binding = kind(docs, "ClusterRoleBinding")?;
    ensure!(
        rbac.len() == 2,
        "exactly one ClusterRole and its ClusterRoleBinding expected, found {} RBAC objects",
        rbac.len()
    );
    let rules = seq(role, &["rules"]);
    let [rule] = rules else {
        bail!("the ClusterRole must have one rule, has {}", rules.len());
    };
    let strings = |path: &[&str]| -> Vec<&str> {
        let mut v: Vec<&str> = seq(rule, path).iter().filter_map(Value::as_str).collect();
        v.sort_unstable();
        v
    };
    ensure!(
        strings(&["apiGroups"]) == [""]
            && strings(&["resources"]) == ["pods"]
            && strings(&["verbs"]) == ["get", "list", "watch"]
            && rule.get("resourceNames").is_none()
            && rule.get("nonResourceURLs").is_none(),
        "the ClusterRole must grant exactly get/list/watch on pods"
    );
    ensure!(
        str_at(binding, &["roleRef", "kind"]) == Some("ClusterRole")
            && str_at(binding, &["roleRef", "name"]) == str_at(role, &["metadata", "name"]),
        "the ClusterRoleBinding does not bind the ClusterRole"
    );
    let account = str_at(pod, &["serviceAccountName"]).context("no serviceAccountName")?;
    let subjects = seq(binding, &["subjects"]);
    let [subject] = subjects else {
        bail!(
            "the ClusterRoleBinding must have one subject, has {}",
            subjects.len()
        );
    };
    ensure!(
        str_at(subject, &["kind"]) == Some("ServiceAccount")
            && str_at(subject, &["name"]) == Some(account)
            && str_at(subject, &["namespace"]) == Some("gocpu"),
        "the ClusterRoleBinding must bind the DaemonSet's service account gocpu/{account}"
    );
    Ok(())
}

/// The rendered PrometheusRule carries exactly the groups of deploy/prometheus/rules.yaml.
fn check_prometheus_rule(rule: &Value) -> Result<()> {
    let path = workspace_root().join("deploy/prometheus/rules.yaml");
    let rules: Value = serde_norway::from_str(&std::fs::read_to_string(&path)?)?;
    if get(rule, &["spec", "groups"]) != rules.get("groups") {
        bail!(
            "the PrometheusRule's groups differ from {}: run `cargo xtask deploy-render`",
            path.display()
        );
    }
    Ok(())
}

/// The generated PrometheusRule manifest.
pub fn prometheus_rule_path() -> PathBuf {
    workspace_root().join("deploy/kubernetes/components/prometheus-operator/prometheusrule.yaml")
}

/// Renders deploy/prometheus/rules.yaml as a PrometheusRule, comments and all.
pub fn render_prometheus_rule(rules_yaml: &str) -> String {
    let mut out = String::from(
        "# GENERATED by `cargo xtask deploy-render` from deploy/prometheus/rules.yaml: edit that file.\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: gocpu\n  labels:\n    app.kubernetes.io/name: gocpu\n\
         spec:\n",
    );
    for line in rules_yaml.lines() {
        if !line.is_empty() {
            out.push_str("  ");
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}
