//! Real cgroups for the root tests: kubepods-style directory trees made in this machine's
//! hierarchies, processes moved into them, everything removed on drop.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// A cgroup directory tree created for the test, removed (leaves first) on drop; processes
/// still inside are killed first (`cgroup.kill`, cgroup v2), so a failing test leaves nothing.
#[derive(Debug, Default)]
pub struct Cgroups(Vec<PathBuf>);

impl Cgroups {
    /// Creates `base/rel`, component by component; returns its path.
    pub fn mkdir(&mut self, base: &Path, rel: &str) -> PathBuf {
        let mut p = base.to_path_buf();
        for c in rel.split('/') {
            p.push(c);
            if !p.exists() {
                std::fs::create_dir(&p)
                    .unwrap_or_else(|e| panic!("mkdir {}: {e} (root needed)", p.display()));
                self.0.push(p.clone());
            }
        }
        p
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let _ = std::fs::write(p.join("cgroup.kill"), "1");
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::remove_dir(p).is_err() && p.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Mount points of cgroup2 and of one cgroup v1 hierarchy without controllers that matter
/// (pids or the named systemd one), from mountinfo.
pub fn mounts() -> (PathBuf, Option<PathBuf>) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut v2 = None;
    let mut v1 = None;
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = left.split(' ').nth(4).unwrap_or_default();
        let mut r = right.split(' ');
        let fstype = r.next().unwrap_or_default();
        let options = r.nth(1).unwrap_or_default();
        if fstype == "cgroup2" && v2.is_none() {
            v2 = Some(PathBuf::from(mount_point));
        }
        if fstype == "cgroup"
            && (options.contains("name=systemd") || options.split(',').any(|o| o == "pids"))
        {
            v1.get_or_insert(PathBuf::from(mount_point));
        }
    }
    (v2.expect("no cgroup2 mount on this machine"), v1)
}

/// Moves `pid` into `cgroup`.
pub fn enter(cgroup: &Path, pid: u32) {
    std::fs::write(cgroup.join("cgroup.procs"), pid.to_string())
        .unwrap_or_else(|e| panic!("move {pid} into {}: {e}", cgroup.display()));
}

/// The kubelet's (systemd driver) and containerd's cgroup path of container `id` of a
/// burstable pod `uid`, below `top`.
pub fn systemd_container_path(top: &str, uid: &str, id: &str) -> String {
    let escaped = uid.replace('-', "_");
    format!(
        "{top}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{escaped}.slice/cri-containerd-{id}.scope"
    )
}
