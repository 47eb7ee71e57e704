//! Which container and pod a process belongs to: its container ID and pod UID from
//! `/proc/<pid>/cgroup`, and — where the node allows it — pod name, namespace and container name
//! from the kubelet's container log directory, without asking the API server.
//!
//! The kubelet names cgroups after the pod UID and the runtime names the container's cgroup
//! after its ID, so both survive in the path whatever the layout:
//!
//! | driver | cgroup v2 path (v1: the same below each hierarchy) |
//! |---|---|
//! | systemd | `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid with _>.slice/cri-containerd-<id>.scope` |
//! | cgroupfs | `/kubepods/burstable/pod<uid>/<id>` |
//!
//! Runtimes mark the container scope: `cri-containerd-`, `crio-`, `docker-`, `libpod-` (podman);
//! CRI-O's and podman's `*-conmon-<id>` scopes hold the monitor, not the container, and are
//! skipped. Under a private cgroup namespace (the default for containers on cgroup v2) other
//! containers' paths start with `/..` components; parsing looks at components, so that is fine.
//!
//! Names: the kubelet links every container's log as
//! `/var/log/containers/<pod>_<namespace>_<container>-<container id>.log` (the layout log
//! shippers rely on). Listing that directory — names only, no log is opened — maps a container
//! ID to its pod, namespace and container name. Pod names, namespaces and container names are
//! DNS names, which cannot contain `_`, so the split is unambiguous. Where the kubelet keeps
//! no such links, [`super::kube`] asks the API server instead (off by default).
use std::{
    collections::HashMap,
    fmt,
    io::Read,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use super::kube::ApiPods;

/// Largest `/proc/<pid>/cgroup` read; real ones are a few hundred bytes.
pub const MAX_CGROUP_BYTES: u64 = 64 * 1024;
/// Lines of `/proc/<pid>/cgroup` looked at (one per v1 hierarchy, plus the v2 line).
pub const MAX_CGROUP_LINES: usize = 256;
/// Directory entries of the container log directory indexed; the rest are ignored.
pub const MAX_LOG_ENTRIES: usize = 65_536;
/// Where the kubelet links container logs.
pub const CONTAINER_LOG_DIR: &str = "/var/log/containers";

/// Errors reading a process's cgroup or the container log directory.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `/proc/<pid>/cgroup` was larger than [`MAX_CGROUP_BYTES`].
    #[error("{path} is larger than {MAX_CGROUP_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
}

/// A container ID: 64 lowercase hex digits (containerd, CRI-O, docker, podman).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(String);

impl ContainerId {
    /// `s` as a container ID, if it is 64 lowercase hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(s.to_string()))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContainerId({})", self.0)
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A pod UID in its canonical form (`8-4-4-4-12` lowercase hex, as the API server shows it).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodUid(String);

impl PodUid {
    /// `s` as a pod UID; systemd's escaped form (`_` for `-`) is accepted.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 36 {
            return None;
        }
        let mut out = String::with_capacity(36);
        for (i, c) in s.chars().enumerate() {
            let dash = matches!(i, 8 | 13 | 18 | 23);
            match c {
                '-' | '_' if dash => out.push('-'),
                '0'..='9' | 'a'..='f' if !dash => out.push(c),
                _ => return None,
            }
        }
        Some(Self(out))
    }

    /// The UID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PodUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PodUid({})", self.0)
    }
}

impl fmt::Display for PodUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The container runtime, as told by the container cgroup's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// containerd (`cri-containerd-<id>.scope`).
    Containerd,
    /// CRI-O (`crio-<id>.scope`, `crio-<id>`).
    CriO,
    /// Docker, also behind cri-dockerd (`docker-<id>.scope`, `/docker/<id>`).
    Docker,
    /// podman (`libpod-<id>.scope`).
    Podman,
    /// A bare ID (the cgroupfs driver does not say which runtime).
    Unknown,
}

impl Runtime {
    /// Stable name, usable as a label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Containerd => "containerd",
            Self::CriO => "cri-o",
            Self::Docker => "docker",
            Self::Podman => "podman",
            Self::Unknown => "unknown",
        }
    }
}

/// Which cgroup driver laid the pod's cgroups out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CgroupDriver {
    /// systemd slices and scopes.
    Systemd,
    /// Plain directories.
    Cgroupfs,
}

/// A pod's quality of service class, from the kubelet's cgroup hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QosClass {
    /// Directly below `kubepods`.
    Guaranteed,
    /// Below `kubepods/burstable`.
    Burstable,
    /// Below `kubepods/besteffort`.
    BestEffort,
}

/// What a process's cgroup path says about its container and pod; every field is optional
/// (a host process has none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupIdentity {
    /// The container's ID.
    pub container_id: Option<ContainerId>,
    /// The runtime that named the container's cgroup.
    pub runtime: Option<Runtime>,
    /// The pod's UID (Kubernetes only).
    pub pod_uid: Option<PodUid>,
    /// The pod's QoS class (Kubernetes only).
    pub qos: Option<QosClass>,
    /// The cgroup driver the identity was read from.
    pub driver: Option<CgroupDriver>,
}

impl CgroupIdentity {
    fn score(&self) -> u8 {
        2 * u8::from(self.container_id.is_some()) + u8::from(self.pod_uid.is_some())
    }
}

/// Parses `/proc/<pid>/cgroup` (v1, v2 or hybrid): the identity of the line that tells most
/// (container and pod over container over pod); the v2 line wins ties.
pub fn parse_proc_cgroup(text: &str) -> CgroupIdentity {
    let mut best = CgroupIdentity::default();
    let mut best_is_v2 = false;
    for line in text.lines().take(MAX_CGROUP_LINES) {
        let mut parts = line.splitn(3, ':');
        let (Some(hierarchy), Some(_controllers), Some(path)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let id = parse_cgroup_path(path);
        let v2 = hierarchy == "0";
        if id.score() > best.score() || (id.score() == best.score() && v2 && !best_is_v2) {
            best = id;
            best_is_v2 = v2;
        }
    }
    best
}

/// Parses one cgroup path: the deepest container component, and the pod component above it.
pub fn parse_cgroup_path(path: &str) -> CgroupIdentity {
    let path = path.trim_end().trim_end_matches(" (deleted)");
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let mut id = CgroupIdentity::default();
    let mut container_at = components.len();
    for (i, c) in components.iter().enumerate().rev() {
        let parent = i.checked_sub(1).and_then(|p| components.get(p)).copied();
        if let Some((cid, runtime, driver)) = container_component(c, parent) {
            id.container_id = Some(cid);
            id.runtime = Some(runtime);
            id.driver = Some(driver);
            container_at = i;
            break;
        }
    }
    // The pod is above the container (or anywhere, for a process in the pod's own cgroup).
    let above = components.get(..container_at).unwrap_or(&[]);
    for (i, c) in above.iter().enumerate().rev() {
        let parent = i.checked_sub(1).and_then(|p| above.get(p)).copied();
        if let Some((uid, qos, driver)) = pod_component(c, parent) {
            id.pod_uid = Some(uid);
            id.qos = Some(qos);
            id.driver.get_or_insert(driver);
            break;
        }
    }
    id
}

/// `cri-containerd-<id>.scope`, `crio-<id>`, `docker-<id>.scope`, `libpod-<id>.scope`, or a bare
/// ID (cgroupfs; `/docker/<id>` says docker).
fn container_component(
    c: &str,
    parent: Option<&str>,
) -> Option<(ContainerId, Runtime, CgroupDriver)> {
    if let Some(id) = ContainerId::parse(c) {
        let runtime = if parent == Some("docker") {
            Runtime::Docker
        } else {
            Runtime::Unknown
        };
        return Some((id, runtime, CgroupDriver::Cgroupfs));
    }
    let (stem, driver) = match c.strip_suffix(".scope") {
        Some(stem) => (stem, CgroupDriver::Systemd),
        None => (c, CgroupDriver::Cgroupfs),
    };
    let (prefix, hex) = stem.rsplit_once('-')?;
    let id = ContainerId::parse(hex)?;
    let runtime = match prefix {
        "cri-containerd" => Runtime::Containerd,
        "crio" => Runtime::CriO,
        "docker" => Runtime::Docker,
        "libpod" => Runtime::Podman,
        // Monitors (crio-conmon-, libpod-conmon-) are not the container.
        p if p.ends_with("conmon") => return None,
        _ if driver == CgroupDriver::Systemd => Runtime::Unknown,
        _ => return None,
    };
    Some((id, runtime, driver))
}

/// `kubepods[-<qos>]-pod<uid with _>.slice` (systemd) or `pod<uid>` below `kubepods[/<qos>]`.
fn pod_component(c: &str, parent: Option<&str>) -> Option<(PodUid, QosClass, CgroupDriver)> {
    if let Some(stem) = c.strip_suffix(".slice") {
        let (head, uid) = stem.rsplit_once("-pod")?;
        let uid = PodUid::parse(uid)?;
        let qos = match head {
            "kubepods" => QosClass::Guaranteed,
            "kubepods-burstable" => QosClass::Burstable,
            "kubepods-besteffort" => QosClass::BestEffort,
            _ => return None,
        };
        return Some((uid, qos, CgroupDriver::Systemd));
    }
    let uid = PodUid::parse(c.strip_prefix("pod")?)?;
    let qos = match parent {
        Some("burstable") => QosClass::Burstable,
        Some("besteffort") => QosClass::BestEffort,
        _ => QosClass::Guaranteed,
    };
    Some((uid, qos, CgroupDriver::Cgroupfs))
}

/// Reads and parses `<proc_root>/<pid>/cgroup`.
pub fn read_identity(proc_root: &Path, pid: u32) -> Result<CgroupIdentity, CgroupError> {
    let path = proc_root.join(pid.to_string()).join("cgroup");
    let io = |source| CgroupError::Io {
        path: path.clone(),
        source,
    };
    let file = std::fs::File::open(&path).map_err(io)?;
    let mut text = String::new();
    file.take(MAX_CGROUP_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_CGROUP_BYTES {
        return Err(CgroupError::TooLarge { path });
    }
    Ok(parse_proc_cgroup(&text))
}

/// A container's place in Kubernetes, as the kubelet names its log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container's name in the pod spec.
    pub container: String,
}

impl PodRef {
    /// A reference from names as Kubernetes allows them (lowercase DNS labels and subdomains:
    /// namespace and container at most 63 bytes, pod at most 253), else `None` — they become
    /// label values, so whatever names them (a file name, the API server) is not trusted.
    pub fn new(namespace: &str, pod: &str, container: &str) -> Option<Self> {
        let ok = |s: &str, max: usize| {
            !s.is_empty()
                && s.len() <= max
                && s.bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.'))
        };
        (ok(pod, 253) && ok(namespace, 63) && ok(container, 63)).then(|| Self {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: container.to_string(),
        })
    }
}

/// Parses a container log link name, `<pod>_<namespace>_<container>-<container id>.log`.
pub fn parse_container_log_name(name: &str) -> Option<(ContainerId, PodRef)> {
    let stem = name.strip_suffix(".log")?;
    let (rest, hex) = stem.rsplit_once('-')?;
    let id = ContainerId::parse(hex)?;
    let mut parts = rest.split('_');
    let (Some(pod), Some(namespace), Some(container), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    Some((id, PodRef::new(namespace, pod, container)?))
}

/// Container ID to pod, from one listing of the container log directory.
#[derive(Clone, Debug, Default)]
pub struct ContainerLogIndex {
    by_id: HashMap<ContainerId, PodRef>,
}

impl ContainerLogIndex {
    /// Lists `dir` (names only; at most [`MAX_LOG_ENTRIES`] entries), ignoring names that are
    /// not container log links.
    pub fn scan(dir: &Path) -> Result<Self, CgroupError> {
        let io = |source| CgroupError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut by_id = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(io)?.take(MAX_LOG_ENTRIES) {
            let entry = entry.map_err(io)?;
            if let Some((id, pod)) = entry
                .file_name()
                .to_str()
                .and_then(parse_container_log_name)
            {
                by_id.insert(id, pod);
            }
        }
        Ok(Self { by_id })
    }

    /// The pod of container `id`, if its log link was listed.
    pub fn get(&self, id: &ContainerId) -> Option<&PodRef> {
        self.by_id.get(id)
    }

    /// Containers indexed.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether nothing was indexed.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// Resolves container IDs to pods: through the API server's pods of this node when
/// [`PodNames::with_api`] gave them (`kubernetes.api_server`), then through
/// [`ContainerLogIndex`], listing the directory again on a miss — a new container's link
/// appears when it starts — but at most once per `min_rescan`, so a host full of
/// non-Kubernetes containers does not list it per process.
#[derive(Debug)]
pub struct PodNames {
    dir: PathBuf,
    min_rescan: Duration,
    index: ContainerLogIndex,
    scanned_at: Option<Instant>,
    last_error: Option<String>,
    api: Option<Arc<ApiPods>>,
    api_generation: u64,
}

impl PodNames {
    /// A resolver over `dir` (normally [`CONTAINER_LOG_DIR`]); nothing is read until asked.
    pub fn new(dir: impl Into<PathBuf>, min_rescan: Duration) -> Self {
        Self {
            dir: dir.into(),
            min_rescan,
            index: ContainerLogIndex::default(),
            scanned_at: None,
            last_error: None,
            api: None,
            api_generation: 0,
        }
    }

    /// The same resolver, asking `api` (the API server's pods of this node) first.
    pub fn with_api(mut self, api: Arc<ApiPods>) -> Self {
        self.api = Some(api);
        self
    }

    /// The API-server pod index, when enabled.
    pub fn api(&self) -> Option<&Arc<ApiPods>> {
        self.api.as_ref()
    }

    /// Whether the API-server index changed since the last call (pods still unresolved may now
    /// resolve); always false without it.
    pub fn api_changed(&mut self) -> bool {
        let Some(api) = &self.api else {
            return false;
        };
        let g = api.generation();
        std::mem::replace(&mut self.api_generation, g) != g
    }

    /// The pod of container `id` at time `now`; `None` when neither the API server's pods nor
    /// the directory name it (not a Kubernetes container, no source available, or the container
    /// is too new for either yet).
    pub fn resolve(&mut self, id: &ContainerId, now: Instant) -> Option<PodRef> {
        if let Some(p) = self.api.as_ref().and_then(|a| a.get(id)) {
            return Some(p);
        }
        if let Some(p) = self.index.get(id) {
            return Some(p.clone());
        }
        let due = self
            .scanned_at
            .is_none_or(|t| now.saturating_duration_since(t) >= self.min_rescan);
        if !due {
            return None;
        }
        self.scanned_at = Some(now);
        match ContainerLogIndex::scan(&self.dir) {
            Ok(index) => {
                self.index = index;
                self.last_error = None;
            }
            Err(e) => self.last_error = Some(e.to_string()),
        }
        self.index.get(id).cloned()
    }

    /// Why the last listing failed, if it did (for a one-time log line or /readyz detail).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}
