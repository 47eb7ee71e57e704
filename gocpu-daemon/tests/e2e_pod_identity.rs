//! Root integration tests of pod identity end to end: the real daemon, a real Go workload moved
//! into a real kubepods-style cgroup (systemd driver, cgroup v2, containerd's scope name) before
//! it execs, and /metrics read back. Pod names come from a kubelet-style container log
//! directory, or from the API server.
//!
//! The API server is a stub (tests/kube_stub): no kube-apiserver can be installed on this
//! machine (Debian ships only kubectl, PyPI no server binary, and nothing else is reachable).
//! The stub speaks the LIST and WATCH protocol kube-rs' watcher uses against a real one, and
//! records what the daemon asked for, so the field selector and the token are checked too.
#![allow(clippy::unwrap_used)]

mod cgroup_support;
mod kube_stub;
mod support;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use cgroup_support::{Cgroups, mounts, systemd_container_path};
use gocpu_testkit::{
    Variant, build, go_bin_series,
    process::{KillOnDrop, free_port},
    workload,
};
use kube_stub::{KubeStub, TOKEN, pod};
use support::{
    Daemon,
    metrics::{Series, metrics},
    serial, wait,
};

const NODE: &str = "node-a";
const UID: &str = "2f0e4c1a-7b7e-4b7a-9d3f-0c1e2a3b4c5d";

/// A container ID (64 lowercase hex digits) distinct per `tag`.
fn container_id(tag: u8) -> String {
    format!("{tag:02x}{}", "5e".repeat(31))
}

fn of_pid<'a>(all: &'a [Series], name: &str, pid: u32) -> Vec<&'a Series> {
    let pid = pid.to_string();
    all.iter()
        .filter(|s| s.name == name && s.labels.get("pid") == Some(&pid))
        .collect()
}

fn info(d: &Daemon, pid: u32) -> Option<Series> {
    of_pid(&metrics(d), "gocpu_process_info", pid)
        .first()
        .map(|s| (*s).clone())
}

/// A daemon gauge or counter's value (`labels` must all match).
fn value(d: &Daemon, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics(d)
        .into_iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// Waits until `pid`'s info series names a pod; returns it.
fn wait_pod_labels(d: &Daemon, pid: u32, timeout: Duration) -> Series {
    wait(&format!("pod labels on pid {pid}"), timeout, || {
        info(d, pid).filter(|s| s.labels.contains_key("pod"))
    })
}

/// The idle workload (sleeps; a tracked Go process that costs nothing).
fn idle() -> PathBuf {
    build(&go_bin_series("1.25"), &workload("idle"), Variant::Default)
}

/// Starts `bin` inside `cgroup`: the shell moves itself in, then execs, so the daemon's first
/// look at the Go process (its exec event) already sees the container's cgroup.
fn spawn_in(cgroup: &Path, bin: &Path) -> KillOnDrop {
    KillOnDrop::spawn(
        Command::new("sh")
            .arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
            .arg(cgroup)
            .arg(bin)
            .args(["-duration", "300s"])
            .env("GOTOOLCHAIN", "local"),
    )
}

/// The container's cgroup for `case`, below a per-test top directory.
fn container_cgroup(cgroups: &mut Cgroups, case: &str, id: &str) -> PathBuf {
    let (v2, _) = mounts();
    let top = format!("gocpu-e2e-pods-{}-{case}", std::process::id());
    cgroups.mkdir(&v2, &systemd_container_path(&top, UID, id))
}

fn kubernetes_yaml(log_dir: &Path, kubeconfig: Option<&Path>) -> String {
    let mut y = format!("kubernetes:\n  container_log_dir: {}\n", log_dir.display());
    if let Some(k) = kubeconfig {
        y.push_str(&format!(
            "  api_server: true\n  node_name: {NODE}\n  kubeconfig: {}\n",
            k.display()
        ));
    }
    y
}

fn assert_place(s: &Series, namespace: &str, pod: &str, container: &str, id: &str) {
    let l = &s.labels;
    let got = |k: &str| l.get(k).map(String::as_str);
    assert_eq!(
        (got("namespace"), got("pod"), got("container")),
        (Some(namespace), Some(pod), Some(container)),
        "{s:?}"
    );
    assert_eq!(got("container_id"), Some(id), "{s:?}");
    assert_eq!(got("pod_uid"), Some(UID), "{s:?}");
}

/// Every CPU-class series of `pid` carries the pod's labels (not only the info series).
fn assert_class_series_labelled(d: &Daemon, pid: u32, pod: &str) {
    let all = wait(
        &format!("CPU class series of {pid}"),
        Duration::from_secs(20),
        || {
            let m = metrics(d);
            let class: Vec<Series> = of_pid(&m, "gocpu_process_cpu_class_seconds_total", pid)
                .into_iter()
                .cloned()
                .collect();
            (!class.is_empty()).then_some(class)
        },
    );
    for s in &all {
        assert_eq!(s.labels.get("pod").map(String::as_str), Some(pod), "{s:?}");
        assert!(s.labels.contains_key("namespace") && s.labels.contains_key("container"));
    }
}

#[test]
fn log_links_name_the_pod_of_a_process_in_a_kubepods_cgroup() {
    let _serial = serial();
    let bin = idle();
    let id = container_id(1);
    let mut cgroups = Cgroups::default();
    let scope = container_cgroup(&mut cgroups, "logs", &id);
    let logs = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        format!("/var/log/pods/shop_web-0_{UID}/app/0.log"),
        logs.path().join(format!("web-0_shop_app-{id}.log")),
    )
    .unwrap();
    let d = Daemon::start(&kubernetes_yaml(logs.path(), None));
    let p = spawn_in(&scope, &bin);
    let s = wait_pod_labels(&d, p.pid(), Duration::from_secs(30));
    assert_place(&s, "shop", "web-0", "app", &id);
    assert_class_series_labelled(&d, p.pid(), "web-0");
    assert!(
        value(&d, "gocpu_kube_api_up", &[]).is_none(),
        "no API-server series without kubernetes.api_server"
    );
    drop(p);
    d.stop();
}

#[test]
fn api_server_pods_name_processes_and_follow_modified_and_deleted() {
    let _serial = serial();
    let bin = idle();
    let (id_a, id_b) = (container_id(2), container_id(3));
    let mut cgroups = Cgroups::default();
    let scope_a = container_cgroup(&mut cgroups, "api", &id_a);
    let scope_b = container_cgroup(&mut cgroups, "api", &id_b);
    let stub = KubeStub::start(
        "127.0.0.1:0".parse().unwrap(),
        vec![pod(UID, "shop", "web-0", NODE, &[("app", &id_a)])],
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let empty_logs = dir.path().join("containers");
    std::fs::create_dir(&empty_logs).unwrap();
    let kubeconfig = KubeStub::kubeconfig(dir.path(), stub.addr);
    let d = Daemon::start(&kubernetes_yaml(&empty_logs, Some(&kubeconfig)));

    // Listed pod: the process in its container's cgroup is named after it.
    let p1 = spawn_in(&scope_a, &bin);
    let s = wait_pod_labels(&d, p1.pid(), Duration::from_secs(30));
    assert_place(&s, "shop", "web-0", "app", &id_a);
    assert_class_series_labelled(&d, p1.pid(), "web-0");
    assert_eq!(value(&d, "gocpu_kube_api_up", &[]), Some(1.0));
    assert_eq!(value(&d, "gocpu_kube_api_pods", &[]), Some(1.0));
    assert_eq!(value(&d, "gocpu_kube_api_containers", &[]), Some(1.0));

    // What the daemon asked: this node's pods only, with the kubeconfig's token.
    wait("an open watch", Duration::from_secs(20), || {
        (stub.watchers() > 0).then_some(())
    });
    let reqs = stub.requests();
    assert!(reqs.iter().any(|r| !r.is_watch()), "no LIST: {reqs:?}");
    assert!(reqs.iter().any(|r| r.is_watch()), "no WATCH: {reqs:?}");
    let selector = format!("spec.nodeName={NODE}");
    for r in &reqs {
        assert_eq!(r.query.get("fieldSelector"), Some(&selector), "{r:?}");
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }

    // MODIFIED: a sidecar started. Its process resolves to the same pod, other container.
    stub.send(
        "MODIFIED",
        pod(
            UID,
            "shop",
            "web-0",
            NODE,
            &[("app", &id_a), ("proxy", &id_b)],
        ),
    );
    wait("two indexed containers", Duration::from_secs(10), || {
        (value(&d, "gocpu_kube_api_containers", &[]) == Some(2.0)).then_some(())
    });
    let p2 = spawn_in(&scope_b, &bin);
    let s = wait_pod_labels(&d, p2.pid(), Duration::from_secs(30));
    assert_place(&s, "shop", "web-0", "proxy", &id_b);

    // DELETED: the pod leaves the index. Processes already named keep their names (a container
    // ID belongs to one pod for its whole life; a pod object is deleted once its containers
    // stopped), but nothing new resolves through the deleted pod.
    stub.send("DELETED", pod(UID, "shop", "web-0", NODE, &[]));
    wait("an empty index", Duration::from_secs(10), || {
        (value(&d, "gocpu_kube_api_pods", &[]) == Some(0.0)
            && value(&d, "gocpu_kube_api_containers", &[]) == Some(0.0))
        .then_some(())
    });
    let p3 = spawn_in(&scope_a, &bin);
    d.wait_listed(p3.pid());
    // Two rescans (2 s apart in the test configuration) retry unresolved processes.
    std::thread::sleep(Duration::from_secs(5));
    let s3 = info(&d, p3.pid()).unwrap();
    assert_eq!(s3.labels.get("container_id"), Some(&id_a), "{s3:?}");
    assert!(
        !s3.labels.contains_key("pod"),
        "resolved after DELETED: {s3:?}"
    );
    for p in [&p1, &p2] {
        assert!(info(&d, p.pid()).unwrap().labels.contains_key("pod"));
    }
    drop((p1, p2, p3));
    let log = d.stop();
    assert!(!log.contains("pod watch failed"), "{log}");
}

#[test]
fn api_server_failures_are_counted_retried_and_never_stop_the_daemon() {
    let _serial = serial();
    let bin = idle();
    let id = container_id(4);
    let mut cgroups = Cgroups::default();
    let scope = container_cgroup(&mut cgroups, "down", &id);
    // Nothing listens there yet.
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let empty_logs = dir.path().join("containers");
    std::fs::create_dir(&empty_logs).unwrap();
    let kubeconfig = KubeStub::kubeconfig(dir.path(), addr);
    let d = Daemon::start(&kubernetes_yaml(&empty_logs, Some(&kubeconfig)));
    let p = spawn_in(&scope, &bin);

    // Unreachable: tracked all the same, without pod labels; the failure is exposed.
    let entry = d.wait_listed(p.pid());
    assert_eq!(entry["attach_state"], "attached", "{entry}");
    wait("a counted list failure", Duration::from_secs(20), || {
        (value(&d, "gocpu_kube_api_errors_total", &[("reason", "list")])? >= 1.0).then_some(())
    });
    assert_eq!(value(&d, "gocpu_kube_api_up", &[]), Some(0.0));
    let s = info(&d, p.pid()).unwrap();
    assert_eq!(s.labels.get("container_id"), Some(&id), "{s:?}");
    assert!(!s.labels.contains_key("pod"), "{s:?}");

    // Reachable but RBAC forbids: counted as denied.
    let stub = KubeStub::start(
        addr,
        vec![pod(UID, "shop", "web-0", NODE, &[("app", &id)])],
        true,
    );
    wait("a counted denial", Duration::from_secs(60), || {
        (value(&d, "gocpu_kube_api_errors_total", &[("reason", "denied")])? >= 1.0).then_some(())
    });
    assert!(!info(&d, p.pid()).unwrap().labels.contains_key("pod"));

    // Access granted: the retry lists the pod and the process gets its name.
    stub.set_deny(false);
    let s = wait_pod_labels(&d, p.pid(), Duration::from_secs(60));
    assert_place(&s, "shop", "web-0", "app", &id);
    assert_eq!(value(&d, "gocpu_kube_api_up", &[]), Some(1.0));
    drop(p);
    let log = d.stop();
    assert!(log.contains("pod watch failed"), "{log}");
}
