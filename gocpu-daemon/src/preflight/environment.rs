//! Where the daemon runs: a host (bare metal, a VM), a container, or a Kubernetes pod, so that
//! every fix says what applies there.
//!
//! Marker files are not evidence: a VM's root filesystem built from a container image carries
//! `/.dockerenv`, and a container need not have one. Namespaces and cgroups are: a container has
//! its own PID namespace or a root filesystem other than pid 1's (with `hostPID`, pid 1 is the
//! host's init), and its cgroup is named after it by its runtime. A mount namespace of its own is
//! not evidence by itself (systemd's sandboxing options and `unshare -m` give one to host
//! processes), nor is a cgroup namespace (it only hides the cgroup path).
use std::{os::unix::fs::MetadataExt, path::Path};

use serde::Serialize;

use crate::discovery::cgroup::parse_proc_cgroup;

/// Inode of the initial PID namespace (`PROC_PID_INIT_INO`, fixed since Linux 3.8).
const PID_NS_INIT_INO: u64 = 0xEFFF_FFFC;

/// Inode of the initial mount namespace on kernels that fix it (6.18+); earlier ones number
/// every mount namespace from 0xF0000000 up, so this value is never a later namespace's.
const MNT_NS_INIT_INO: u64 = 0xEFFF_FFF8;

/// Where the daemon runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// A Kubernetes pod.
    Kubernetes,
    /// Another container (Docker, podman, containerd without Kubernetes, ...).
    Container,
    /// A host process (bare metal or a VM).
    Host,
}

impl Environment {
    /// Stable name, usable as a label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kubernetes => "kubernetes",
            Self::Container => "container",
            Self::Host => "host",
        }
    }
}

/// What the classification rests on; `None` is a fact that could not be read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Inode of this process's PID namespace.
    pub pid_ns: Option<u64>,
    /// Inode of this process's mount namespace.
    pub mnt_ns: Option<u64>,
    /// Whether this process's mount namespace is the host's (pid 1's, or kthreadd's where pid 1
    /// refuses to be read).
    pub mnt_ns_is_init: Option<bool>,
    /// Whether this process's root directory is the host's (device and inode, compared as above).
    pub root_is_init: Option<bool>,
    /// `/proc/self/cgroup`.
    pub cgroup: String,
    /// Whether `KUBERNETES_SERVICE_HOST` is set (the kubelet sets it in every container).
    pub kubernetes_env: bool,
}

/// The environment and what it was concluded from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Detected {
    /// Where the daemon runs.
    pub environment: Environment,
    /// The facts that decided it, in words.
    pub evidence: Vec<String>,
    /// Whether the daemon sees the host's processes (the initial PID namespace); `None`: unknown.
    pub host_pids: Option<bool>,
}

fn ns_inode(link: &Path) -> Option<u64> {
    let target = std::fs::read_link(link).ok()?;
    let s = target.to_str()?;
    s.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}

fn same_file(a: &Path, b: &Path) -> Option<bool> {
    let (a, b) = (std::fs::metadata(a).ok()?, std::fs::metadata(b).ok()?);
    Some(a.dev() == b.dev() && a.ino() == b.ino())
}

impl Placement {
    /// Reads the facts: this process's from `/proc/self`, the host's from pid 1 under
    /// `proc_root`, or from kthreadd (pid 2, in the host's namespaces like every kernel thread)
    /// where pid 1 refuses inspection (some sandboxes' init does, even to root).
    pub fn gather(proc_root: &Path) -> Self {
        let me = Path::new("/proc/self");
        let kthreadd = std::fs::read_to_string(proc_root.join("2/stat"))
            .is_ok_and(|s| s.contains("(kthreadd)"));
        let hosts: Vec<std::path::PathBuf> = [
            Some(proc_root.join("1")),
            kthreadd.then(|| proc_root.join("2")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let own_mnt = ns_inode(&me.join("ns/mnt"));
        Self {
            pid_ns: ns_inode(&me.join("ns/pid")),
            mnt_ns: own_mnt,
            mnt_ns_is_init: hosts
                .iter()
                .find_map(|h| ns_inode(&h.join("ns/mnt")))
                .zip(own_mnt)
                .map(|(a, b)| a == b),
            root_is_init: hosts
                .iter()
                .find_map(|h| same_file(&me.join("root"), &h.join("root"))),
            cgroup: std::fs::read_to_string(me.join("cgroup")).unwrap_or_default(),
            kubernetes_env: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
        }
    }

    /// Classifies the facts.
    pub fn classify(&self) -> Detected {
        let mut evidence = Vec::new();
        let mut container = false;
        let mut kubernetes = false;
        let host_pids = self.pid_ns.map(|ino| ino == PID_NS_INIT_INO);
        if host_pids == Some(false) {
            container = true;
            evidence.push("runs in a PID namespace of its own (not the host's)".to_string());
        }
        // The initial mount namespace has the host's root whatever pid 1 lets us read.
        let initial_mounts = self.mnt_ns == Some(MNT_NS_INIT_INO);
        let host_root = self.root_is_init.or(initial_mounts.then_some(true));
        if host_root == Some(false) {
            container = true;
            evidence
                .push("its root filesystem is not the host's (pid 1's or kthreadd's)".to_string());
        }
        let id = parse_proc_cgroup(&self.cgroup);
        if let Some(cid) = &id.container_id {
            container = true;
            let runtime = id.runtime.map_or("unknown", |r| r.as_str());
            evidence.push(format!(
                "its cgroup names container {cid} (runtime {runtime})"
            ));
        }
        if let Some(uid) = &id.pod_uid {
            kubernetes = true;
            evidence.push(format!("its cgroup names pod {uid}"));
        }
        if self.kubernetes_env && container {
            kubernetes = true;
            evidence.push("KUBERNETES_SERVICE_HOST is set".to_string());
        }
        if !container {
            if self.mnt_ns_is_init == Some(false) {
                evidence.push(
                    "a mount namespace of its own, but the host's root filesystem: a host process"
                        .to_string(),
                );
            }
            evidence.push(match (host_pids, self.root_is_init, initial_mounts) {
                (Some(true), _, true) => "the host's PID and mount namespaces".to_string(),
                (Some(true), Some(true), false) => {
                    "the host's PID namespace and root filesystem".to_string()
                }
                _ => "no sign of a container (some namespace facts unreadable)".to_string(),
            });
        }
        let environment = if kubernetes {
            Environment::Kubernetes
        } else if container {
            Environment::Container
        } else {
            Environment::Host
        };
        Detected {
            environment,
            evidence,
            host_pids,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OTHER_PID_NS: u64 = 4_026_532_301;

    /// This VM (Firecracker, KVM, 6.18): pid 1 is the guest's init and refuses to be inspected
    /// (its ns and root links read EACCES even for root), cgroup v1 with a unified hierarchy,
    /// every path `/`. Its image carries /.dockerenv, which plays no part.
    fn firecracker_vm() -> Placement {
        Placement {
            pid_ns: Some(PID_NS_INIT_INO),
            mnt_ns: Some(MNT_NS_INIT_INO),
            mnt_ns_is_init: None,
            root_is_init: None,
            cgroup: "9:name=systemd:/\n8:pids:/\n4:memory:/\n1:cpu:/\n0::/\n".into(),
            kubernetes_env: false,
        }
    }

    #[test]
    fn a_vm_is_a_host() {
        let d = firecracker_vm().classify();
        assert_eq!(d.environment, Environment::Host, "{d:?}");
        assert_eq!(d.host_pids, Some(true));
        assert!(
            d.evidence.iter().any(|e| e.contains("PID and mount")),
            "{d:?}"
        );
        // A kernel before 6.18 numbers the initial mount namespace like any other; pid 1's root
        // (readable where pid 1 allows it) says the same.
        let p = Placement {
            mnt_ns: Some(0xF000_0001),
            root_is_init: Some(true),
            ..firecracker_vm()
        };
        assert_eq!(p.classify().environment, Environment::Host);
    }

    #[test]
    fn unshare_m_on_a_host_is_a_host() {
        // The root tests start the daemon this way: a new mount namespace, the host's root.
        let p = Placement {
            mnt_ns: Some(0xF000_0042),
            mnt_ns_is_init: None,
            root_is_init: None,
            ..firecracker_vm()
        };
        let d = p.classify();
        assert_eq!(d.environment, Environment::Host, "{d:?}");
    }

    #[test]
    fn a_systemd_service_is_a_host_even_with_its_own_mount_namespace() {
        let p = Placement {
            mnt_ns: Some(0xF000_0127),
            mnt_ns_is_init: Some(false), // ProtectSystem=, PrivateTmp=
            root_is_init: Some(true),
            cgroup: "0::/system.slice/gocpu.service\n".into(),
            ..firecracker_vm()
        };
        let d = p.classify();
        assert_eq!(d.environment, Environment::Host, "{d:?}");
        assert!(
            d.evidence.iter().any(|e| e.contains("mount namespace")),
            "{d:?}"
        );
    }

    #[test]
    fn a_host_process_in_a_cgroup_namespace_is_a_host() {
        // `unshare -C`: the cgroup path reads `/`, nothing else changes.
        let p = Placement {
            cgroup: "0::/\n".into(),
            ..firecracker_vm()
        };
        assert_eq!(p.classify().environment, Environment::Host);
    }

    #[test]
    fn a_docker_container_is_one_by_its_pid_namespace_and_root() {
        // cgroup v2 with a private cgroup namespace (Docker's default): the path says nothing.
        let p = Placement {
            pid_ns: Some(OTHER_PID_NS),
            mnt_ns: Some(0xF000_0123),
            mnt_ns_is_init: Some(true), // /proc/1 is the container's own init
            root_is_init: Some(true),
            cgroup: "0::/\n".into(),
            kubernetes_env: false,
        };
        let d = p.classify();
        assert_eq!(d.environment, Environment::Container, "{d:?}");
        assert_eq!(d.host_pids, Some(false));
        // cgroup v1, --pid=host: the root filesystem and the cgroup path tell.
        let p = Placement {
            pid_ns: Some(PID_NS_INIT_INO),
            mnt_ns: Some(0xF000_0124),
            mnt_ns_is_init: Some(false),
            root_is_init: Some(false),
            cgroup: format!("4:memory:/docker/{}\n", "ab".repeat(32)),
            kubernetes_env: false,
        };
        let d = p.classify();
        assert_eq!(d.environment, Environment::Container, "{d:?}");
        assert!(d.evidence.iter().any(|e| e.contains("docker")), "{d:?}");
    }

    #[test]
    fn a_kubernetes_pod_with_host_pid_is_kubernetes() {
        let p = Placement {
            pid_ns: Some(PID_NS_INIT_INO),
            mnt_ns: Some(0xF000_0125),
            mnt_ns_is_init: Some(false),
            root_is_init: Some(false),
            cgroup: format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0c5e1f2a_3b4d_4e5f_8a9b_0c1d2e3f4a5b.slice/cri-containerd-{}.scope\n",
                "cd".repeat(32)
            ),
            kubernetes_env: true,
        };
        let d = p.classify();
        assert_eq!(d.environment, Environment::Kubernetes, "{d:?}");
        assert_eq!(d.host_pids, Some(true));
    }

    #[test]
    fn a_pod_in_a_cgroup_namespace_is_known_by_its_root_and_the_kubelets_variable() {
        let p = Placement {
            pid_ns: Some(PID_NS_INIT_INO),
            mnt_ns: Some(0xF000_0126),
            mnt_ns_is_init: Some(false),
            root_is_init: Some(false),
            cgroup: "0::/\n".into(),
            kubernetes_env: true,
        };
        assert_eq!(p.classify().environment, Environment::Kubernetes);
        // The variable alone, on a host (a shell with a copied environment), is not a pod.
        let p = Placement {
            kubernetes_env: true,
            ..firecracker_vm()
        };
        assert_eq!(p.classify().environment, Environment::Host);
    }

    #[test]
    fn unreadable_facts_are_no_evidence() {
        let p = Placement::default();
        let d = p.classify();
        assert_eq!(d.environment, Environment::Host);
        assert_eq!(d.host_pids, None);
        assert!(d.evidence.iter().any(|e| e.contains("unreadable")), "{d:?}");
    }

    #[test]
    fn this_process_is_on_this_host_and_knows_it() {
        // The tests run on a VM (the CI machine too), never in a container; its pid 1 refuses
        // inspection, kthreadd does not.
        let p = Placement::gather(Path::new("/proc"));
        assert_eq!(p.root_is_init, Some(true), "{p:?}");
        let d = p.classify();
        assert_eq!(d.environment, Environment::Host, "{d:?}");
        assert!(
            !d.evidence.iter().any(|e| e.contains("unreadable")),
            "{d:?}"
        );
    }

    #[test]
    fn namespace_links_parse() {
        let dir = std::env::temp_dir().join(format!("gocpu-ns-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        std::os::unix::fs::symlink("pid:[4026531836]", &dir).ok();
        assert_eq!(ns_inode(&dir), Some(PID_NS_INIT_INO));
        let _ = std::fs::remove_file(&dir);
        assert_eq!(ns_inode(Path::new("/nonexistent")), None);
    }
}
