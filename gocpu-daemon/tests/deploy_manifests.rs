//! The Kubernetes manifests and the image agree with the daemon itself: the ConfigMap's
//! configuration loads, the host paths it mounts are the ones the daemon reads, and the binary
//! needs no library the runtime image lacks; the API-server component changes nothing but the
//! lookup switch. (The daemon run under exactly the DaemonSet's capabilities: e2e_capabilities;
//! schemas, overlays, RBAC and the rest: `cargo xtask deploy-check`.)
#![allow(clippy::unwrap_used)]

mod deploy_support;

use std::process::Command;

use deploy_support::repo;
use gocpu_daemon::{config::Config, discovery::cgroup::CONTAINER_LOG_DIR};
use serde_norway::Value;

fn daemonset() -> Value {
    serde_norway::from_str(
        &std::fs::read_to_string(repo("deploy/kubernetes/base/daemonset.yaml")).unwrap(),
    )
    .unwrap()
}

fn container(ds: &Value) -> &Value {
    &ds["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn configmap_config_loads_and_listens_on_the_container_port() {
    let config = Config::load(&repo("deploy/kubernetes/base/gocpu.yaml")).unwrap();
    let ds = daemonset();
    let port = container(&ds)["ports"][0]["containerPort"]
        .as_u64()
        .unwrap();
    assert_eq!(u64::from(config.listen.port()), port);
    assert!(
        config.listen.ip().is_unspecified(),
        "a pod must listen beyond loopback"
    );
}

#[test]
fn mounted_host_paths_are_the_ones_the_daemon_reads() {
    let ds = daemonset();
    let mounts: Vec<&str> = container(&ds)["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(mounts.contains(&CONTAINER_LOG_DIR), "{mounts:?}");
    assert!(mounts.contains(&"/sys/kernel/tracing"), "{mounts:?}");
    // The directory the deployed configuration lists is the one mounted.
    let config = Config::load(&repo("deploy/kubernetes/base/gocpu.yaml")).unwrap();
    let dir = config.kubernetes.container_log_dir.to_str().unwrap();
    assert!(mounts.contains(&dir), "{dir} not in {mounts:?}");
}

#[test]
fn the_api_server_component_only_switches_the_lookup_on() {
    let base = Config::load(&repo("deploy/kubernetes/base/gocpu.yaml")).unwrap();
    let mut with =
        Config::load(&repo("deploy/kubernetes/components/api-server/gocpu.yaml")).unwrap();
    assert!(with.kubernetes.api_server);
    // The node comes from NODE_NAME, which the DaemonSet sets from spec.nodeName.
    assert!(with.kubernetes.node_name.is_empty());
    let env = container(&daemonset())["env"]
        .as_sequence()
        .unwrap()
        .clone();
    assert!(
        env.iter().any(|e| e["name"] == "NODE_NAME"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"),
        "{env:?}"
    );
    // The component's file replaces the base's: it must not drift from it.
    with.kubernetes.api_server = false;
    assert_eq!(with, base);
}

#[test]
fn the_binary_needs_only_what_the_runtime_image_has() {
    // gcr.io/distroless/cc-debian12: glibc (libc, libm, libdl, libpthread, librt, the loader)
    // and libgcc_s.
    let provided = [
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "libpthread.so.0",
        "librt.so.1",
        "libgcc_s.so.1",
        "ld-linux-x86-64.so.2",
    ];
    let out = Command::new("readelf")
        .args(["--dynamic", "--wide", env!("CARGO_BIN_EXE_gocpu")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let needed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    assert!(needed.contains(&"libc.so.6"), "{text}");
    for lib in &needed {
        assert!(
            provided.contains(lib),
            "gocpu needs {lib}, which distroless/cc lacks: {needed:?}"
        );
    }
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    assert!(dockerfile.contains("FROM gcr.io/distroless/cc-debian12"));
}
