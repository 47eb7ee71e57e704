//! Container and pod identity from `/proc/<pid>/cgroup`: the layouts of each cgroup driver and
//! runtime as nodes print them, then the same layouts built for real in this machine's cgroup
//! hierarchies (v2 and v1) with a process moved into them, read back through the kernel —
//! including through a private cgroup namespace, as a containerised daemon sees other pods.
#![allow(clippy::unwrap_used)]

mod cgroup_support;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use cgroup_support::{Cgroups, enter, mounts, systemd_container_path};

use gocpu_daemon::discovery::cgroup::{
    CgroupDriver, ContainerId, ContainerLogIndex, PodNames, PodUid, QosClass, Runtime,
    parse_container_log_name, parse_proc_cgroup, read_identity,
};

const ID: &str = "4c3f7e2a9b1d8e6f0a5c4b3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f";
const ID2: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const UID: &str = "2f0e4c1a-7b7e-4b7a-9d3f-0c1e2a3b4c5d";
const UID_ESCAPED: &str = "2f0e4c1a_7b7e_4b7a_9d3f_0c1e2a3b4c5d";
const UID2: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";

fn cid(s: &str) -> Option<ContainerId> {
    ContainerId::parse(s)
}
fn uid(s: &str) -> Option<PodUid> {
    PodUid::parse(s)
}

#[test]
fn systemd_driver_cgroup_v2_containerd_burstable() {
    let text = format!(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_ESCAPED}.slice/cri-containerd-{ID}.scope\n"
    );
    let id = parse_proc_cgroup(&text);
    assert_eq!(id.container_id, cid(ID));
    assert_eq!(id.pod_uid.as_ref().map(PodUid::as_str), Some(UID));
    assert_eq!(id.runtime, Some(Runtime::Containerd));
    assert_eq!(id.qos, Some(QosClass::Burstable));
    assert_eq!(id.driver, Some(CgroupDriver::Systemd));
}

#[test]
fn systemd_driver_guaranteed_and_besteffort_and_crio() {
    let g = parse_proc_cgroup(&format!(
        "0::/kubepods.slice/kubepods-pod{UID_ESCAPED}.slice/crio-{ID}.scope"
    ));
    assert_eq!(g.qos, Some(QosClass::Guaranteed));
    assert_eq!(g.runtime, Some(Runtime::CriO));
    assert_eq!(g.container_id, cid(ID));
    let b = parse_proc_cgroup(&format!(
        "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_ESCAPED}.slice/docker-{ID}.scope"
    ));
    assert_eq!(b.qos, Some(QosClass::BestEffort));
    assert_eq!(b.runtime, Some(Runtime::Docker));
    assert_eq!(b.pod_uid, uid(UID));
}

#[test]
fn crio_conmon_scope_is_not_the_container() {
    let id = parse_proc_cgroup(&format!(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_ESCAPED}.slice/crio-conmon-{ID}.scope"
    ));
    assert_eq!(id.container_id, None);
    assert_eq!(id.pod_uid, uid(UID), "the monitor is still in the pod");
}

#[test]
fn cgroupfs_driver_cgroup_v1_picks_the_informative_hierarchy() {
    // A v1 (or hybrid) node: one line per hierarchy, the v2 line empty.
    let text = format!(
        "12:pids:/kubepods/besteffort/pod{UID}/{ID}\n\
         11:memory:/kubepods/besteffort/pod{UID}/{ID}\n\
         4:cpu,cpuacct:/kubepods/besteffort/pod{UID}/{ID}\n\
         1:name=systemd:/kubepods/besteffort/pod{UID}/{ID}\n\
         0::/\n"
    );
    let id = parse_proc_cgroup(&text);
    assert_eq!(id.container_id, cid(ID));
    assert_eq!(id.pod_uid, uid(UID));
    assert_eq!(id.qos, Some(QosClass::BestEffort));
    assert_eq!(id.driver, Some(CgroupDriver::Cgroupfs));
    assert_eq!(id.runtime, Some(Runtime::Unknown));
    // Guaranteed pods sit directly below kubepods.
    let g = parse_proc_cgroup(&format!("0::/kubepods/pod{UID}/{ID}"));
    assert_eq!(g.qos, Some(QosClass::Guaranteed));
}

#[test]
fn containers_outside_kubernetes_have_an_id_and_no_pod() {
    let d = parse_proc_cgroup(&format!("0::/system.slice/docker-{ID}.scope"));
    assert_eq!(
        (d.container_id.clone(), d.runtime, d.pod_uid.clone()),
        (cid(ID), Some(Runtime::Docker), None)
    );
    let d1 = parse_proc_cgroup(&format!("4:memory:/docker/{ID}\n0::/\n"));
    assert_eq!(
        (d1.container_id.clone(), d1.runtime),
        (cid(ID), Some(Runtime::Docker))
    );
    let p = parse_proc_cgroup(&format!("0::/machine.slice/libpod-{ID}.scope/container"));
    assert_eq!(
        (p.container_id.clone(), p.runtime),
        (cid(ID), Some(Runtime::Podman))
    );
}

#[test]
fn host_processes_have_no_identity() {
    for text in [
        "0::/user.slice/user-0.slice/session-1.scope\n",
        "0::/system.slice/containerd.service\n",
        "0::/\n",
        "9:name=systemd:/\n8:pids:/\n0::/\n",
        "",
    ] {
        assert_eq!(parse_proc_cgroup(text), Default::default(), "{text:?}");
    }
}

#[test]
fn namespaced_deleted_and_nested_paths() {
    // Seen from inside another pod's cgroup namespace.
    let ns = parse_proc_cgroup(&format!(
        "0::/../../kubepods-besteffort-pod{UID_ESCAPED}.slice/cri-containerd-{ID}.scope"
    ));
    assert_eq!((ns.container_id, ns.pod_uid), (cid(ID), uid(UID)));
    let del = parse_proc_cgroup(&format!("0::/kubepods/burstable/pod{UID}/{ID} (deleted)"));
    assert_eq!(del.container_id, cid(ID));
    // systemd running inside the container: the container scope, not init.scope.
    let nested = parse_proc_cgroup(&format!(
        "0::/kubepods.slice/kubepods-pod{UID_ESCAPED}.slice/cri-containerd-{ID}.scope/init.scope"
    ));
    assert_eq!(nested.container_id, cid(ID));
    // Docker in docker: the innermost container.
    let dind = parse_proc_cgroup(&format!("0::/docker/{ID}/docker/{ID2}"));
    assert_eq!(dind.container_id, cid(ID2));
}

#[test]
fn near_misses_are_rejected() {
    // Container IDs that are not 64 lowercase hex digits: the pod is still found.
    let upper = ID.to_ascii_uppercase();
    for bad in [upper.as_str(), &ID[1..], &format!("{ID}0")] {
        let id = parse_proc_cgroup(&format!("0::/kubepods/burstable/pod{UID}/{bad}"));
        assert_eq!((id.container_id, id.pod_uid), (None, uid(UID)), "{bad}");
    }
    // Pod UIDs of the wrong shape, and unknown prefixes without a systemd scope.
    for text in [
        format!("0::/kubepods/burstable/pod{}/x", &UID[1..]),
        format!("0::/kubepods/burstable/pod{}/x", UID.replace('-', "")),
        format!("0::/kubepods/burstable/pod{}/x", UID.to_ascii_uppercase()),
        format!("0::/kubepods.slice/other-pod{UID_ESCAPED}.slice/x"),
        format!("0::/something-{ID}"),
        "no colons at all".to_string(),
        ":::::".to_string(),
        "0::".to_string() + &"/pod".repeat(10_000),
    ] {
        let id = parse_proc_cgroup(&text);
        let shown = &text[..text.len().min(120)];
        assert_eq!((id.container_id, id.pod_uid), (None, None), "{shown}");
    }
    assert!(PodUid::parse(&"é".repeat(18)).is_none());
}

#[test]
fn container_log_names_map_ids_to_pods() {
    let (id, p) = parse_container_log_name(&format!(
        "coredns-7db6d8ff4d-x2x9q_kube-system_coredns-{ID}.log"
    ))
    .unwrap();
    assert_eq!(id.as_str(), ID);
    assert_eq!(
        (p.pod.as_str(), p.namespace.as_str(), p.container.as_str()),
        ("coredns-7db6d8ff4d-x2x9q", "kube-system", "coredns")
    );
    let (_, p) = parse_container_log_name(&format!("web-0_shop_istio-proxy-{ID}.log")).unwrap();
    assert_eq!(
        (p.pod.as_str(), p.container.as_str()),
        ("web-0", "istio-proxy")
    );
    let (_, p) = parse_container_log_name(&format!("my.pod-1_default_app-{ID}.log")).unwrap();
    assert_eq!(p.pod, "my.pod-1");
    for bad in [
        "README".to_string(),
        format!("x_y-{ID}.log"),
        format!("a_b_c_d-{ID}.log"),
        format!("Pod_ns_c-{ID}.log"),
        format!("p__c-{ID}.log"),
        format!("p_ns_c-{ID}.txt"),
        format!("p_ns_c-{}.log", &ID[2..]),
    ] {
        assert!(parse_container_log_name(&bad).is_none(), "{bad}");
    }
}

#[test]
fn pod_names_from_a_kubelet_style_log_directory() {
    let dir = tempfile::tempdir().unwrap();
    // As mounted into the daemon's pod: links whose targets (/var/log/pods/...) are absent.
    let link = |name: String| {
        std::os::unix::fs::symlink(
            format!("/var/log/pods/shop_web-0_{UID}/app/0.log"),
            dir.path().join(name),
        )
        .unwrap()
    };
    link(format!("web-0_shop_app-{ID}.log"));
    std::fs::write(dir.path().join("unrelated.txt"), "").unwrap();
    let index = ContainerLogIndex::scan(dir.path()).unwrap();
    assert_eq!(index.len(), 1);
    assert_eq!(index.get(&cid(ID).unwrap()).unwrap().namespace, "shop");

    let t0 = Instant::now();
    let mut names = PodNames::new(dir.path(), Duration::from_secs(5));
    assert_eq!(names.resolve(&cid(ID).unwrap(), t0).unwrap().pod, "web-0");
    // A container started after the last listing: found on the next miss once the rescan
    // interval has passed, not before.
    assert!(names.resolve(&cid(ID2).unwrap(), t0).is_none());
    link(format!("web-1_shop_app-{ID2}.log"));
    assert!(
        names
            .resolve(&cid(ID2).unwrap(), t0 + Duration::from_secs(1))
            .is_none()
    );
    let p = names
        .resolve(&cid(ID2).unwrap(), t0 + Duration::from_secs(6))
        .unwrap();
    assert_eq!(p.pod, "web-1");
    // A node without the directory: nothing, and the reason is kept.
    let mut none = PodNames::new("/nonexistent/gocpu/containers", Duration::ZERO);
    assert!(none.resolve(&cid(ID).unwrap(), t0).is_none());
    assert!(
        none.last_error()
            .unwrap()
            .contains("/nonexistent/gocpu/containers")
    );
}

// ---- the same layouts, built for real and read back through the kernel -------------------

struct Sleeper(Child);

impl Sleeper {
    fn start() -> Self {
        Self(
            Command::new("sleep")
                .arg("60")
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn real_kernel_cgroup_paths_systemd_v2_cgroupfs_v1_and_a_cgroup_namespace() {
    gocpu_testkit::require_root("creating cgroups");
    let (v2, v1) = mounts();
    let mut cgroups = Cgroups::default();
    let top = format!("gocpu-test-{}", std::process::id());

    // systemd driver, cgroup v2, containerd: the kubelet's and containerd's names.
    let scope = cgroups.mkdir(&v2, &systemd_container_path(&top, UID, ID));
    let target = Sleeper::start();
    enter(&scope, target.pid());
    let id = read_identity(Path::new("/proc"), target.pid()).unwrap();
    let raw = std::fs::read_to_string(format!("/proc/{}/cgroup", target.pid())).unwrap();
    assert_eq!(id.container_id, cid(ID), "{raw}");
    assert_eq!(id.pod_uid, uid(UID), "{raw}");
    assert_eq!(
        (id.runtime, id.qos, id.driver),
        (
            Some(Runtime::Containerd),
            Some(QosClass::Burstable),
            Some(CgroupDriver::Systemd)
        )
    );

    // The daemon in another pod, in its own cgroup namespace: the target's path is relative,
    // climbing out with "..".
    let daemon_scope = cgroups.mkdir(
        &v2,
        &format!(
            "{top}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{ID2}.scope",
            UID2.replace('-', "_")
        ),
    );
    let seen = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec unshare --cgroup cat /proc/{}/cgroup",
            daemon_scope.display(),
            target.pid()
        ))
        .output()
        .unwrap();
    assert!(
        seen.status.success(),
        "{}",
        String::from_utf8_lossy(&seen.stderr)
    );
    let seen = String::from_utf8(seen.stdout).unwrap();
    assert!(seen.contains("0::/.."), "not a namespaced view: {seen}");
    let ns = parse_proc_cgroup(&seen);
    assert_eq!((ns.container_id, ns.pod_uid), (cid(ID), uid(UID)), "{seen}");

    // cgroupfs driver on a v1 hierarchy (the v2 line of this process stays uninformative).
    if let Some(v1) = v1 {
        let dir = cgroups.mkdir(&v1, &format!("{top}/kubepods/besteffort/pod{UID2}/{ID2}"));
        let t1 = Sleeper::start();
        enter(&dir, t1.pid());
        let raw = std::fs::read_to_string(format!("/proc/{}/cgroup", t1.pid())).unwrap();
        let id = read_identity(Path::new("/proc"), t1.pid()).unwrap();
        assert_eq!(id.container_id, cid(ID2), "{raw}");
        assert_eq!(id.pod_uid, uid(UID2), "{raw}");
        assert_eq!(
            (id.qos, id.driver),
            (Some(QosClass::BestEffort), Some(CgroupDriver::Cgroupfs))
        );
        drop(t1);
    }
    drop(target);
    // Processes are gone: the directories can go (Cgroups' drop).
    std::thread::sleep(Duration::from_millis(100));
}
