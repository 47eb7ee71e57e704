//! Pod names from the Kubernetes API server (`kubernetes.api_server`, off by default): a watch
//! of this node's pods, indexed by the container IDs in their status.
//!
//! The container log links ([`super::cgroup::ContainerLogIndex`]) name pods without any API
//! access, but not every node has them (another log layout, or the directory not mounted). The
//! API server always knows: each pod's `status.containerStatuses[].containerID` is
//! `<runtime>://<id>`, the same ID the runtime names the container's cgroup after. Only this
//! node's pods are watched (field selector `spec.nodeName=<node>`), so the cost scales with the
//! node, not the cluster: one LIST at start and after a lost watch, then one long-lived WATCH.
//!
//! Failures (API server unreachable, RBAC forbidding the list) are retried with kube-rs'
//! watcher backoff (0.8 s doubling to 30 s), logged and counted for /metrics; they never stop
//! the daemon — pods just resolve through the log links, or not at all, meanwhile.
mod pods;

pub use pods::{
    ContainerStatus, MAX_CONTAINER_ID_BYTES, MAX_CONTAINERS_PER_POD, MAX_PODS, Pod, PodIndex,
    PodStatus, parse_container_id, pod_containers,
};

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use ::kube::{
    Api, Client,
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{WatchStreamExt, watcher},
};
use futures::StreamExt;
use tokio::{sync::watch, task::JoinHandle};

use super::cgroup::{ContainerId, PodRef};
use crate::config::KubernetesConfig;

/// The environment variable the DaemonSet sets to the node's name (downward API).
pub const NODE_NAME_ENV: &str = "NODE_NAME";

/// Errors setting up the API-server pod watch.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The lookup is enabled but nothing says which node this is.
    #[error(
        "kubernetes.api_server is enabled but the node name is unknown: set kubernetes.node_name \
         or the {NODE_NAME_ENV} environment variable (the DaemonSet sets it from spec.nodeName)"
    )]
    NoNodeName,
    /// The node name is not a Kubernetes node name (it goes into a field selector).
    #[error("{origin} {name:?} is not a Kubernetes node name (lowercase DNS subdomain)")]
    InvalidNodeName {
        /// The rejected name.
        name: String,
        /// Where it came from.
        origin: &'static str,
    },
    /// The configured kubeconfig file could not be read or used.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file (`kubernetes.kubeconfig`).
        path: PathBuf,
        /// The error.
        source: ::kube::config::KubeconfigError,
    },
    /// No client could be built (no kubeconfig and not in a pod with a service account).
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] ::kube::Error),
}

/// Why a watch step failed, as counted in `gocpu_kube_api_errors_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// No client: no kubeconfig, no service account token, unreadable files.
    Client,
    /// The API server refused the credentials or RBAC forbids listing pods (401, 403).
    Denied,
    /// The LIST failed (unreachable, timeout, server error).
    List,
    /// Starting or reading the WATCH failed, or the server sent an error event.
    Watch,
}

impl ApiErrorKind {
    /// Every kind, in label order.
    pub const ALL: [ApiErrorKind; 4] = [Self::Client, Self::Denied, Self::List, Self::Watch];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Denied => "denied",
            Self::List => "list",
            Self::Watch => "watch",
        }
    }

    fn of(e: &watcher::Error) -> Self {
        let denied = |e: &::kube::Error| matches!(e, ::kube::Error::Api(s) if s.code == 401 || s.code == 403);
        match e {
            watcher::Error::InitialListFailed(e) if denied(e) => Self::Denied,
            watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) if denied(e) => {
                Self::Denied
            }
            watcher::Error::WatchError(s) if s.code == 401 || s.code == 403 => Self::Denied,
            watcher::Error::InitialListFailed(_) => Self::List,
            _ => Self::Watch,
        }
    }
}

/// Whether `s` is a Kubernetes node name: a lowercase DNS subdomain of at most 253 bytes.
pub fn is_node_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter()
                    .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-'))
                && b.first() != Some(&b'-')
                && b.last() != Some(&b'-')
        })
}

/// The node to watch: `configured` when set, else `env` (the `NODE_NAME` variable).
pub fn node_name(configured: &str, env: Option<&str>) -> Result<String, KubeError> {
    let (name, origin) = match (configured, env) {
        ("", None | Some("")) => return Err(KubeError::NoNodeName),
        ("", Some(e)) => (e, NODE_NAME_ENV),
        (c, _) => (c, "kubernetes.node_name"),
    };
    if !is_node_name(name) {
        return Err(KubeError::InvalidNodeName {
            name: name.chars().take(300).collect(),
            origin,
        });
    }
    Ok(name.to_string())
}

/// The API-server side as /metrics shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiStatus {
    /// Whether the last list succeeded and no error came since.
    pub up: bool,
    /// Pods indexed.
    pub pods: usize,
    /// Containers indexed.
    pub containers: usize,
    /// Failures so far, per kind (every kind, zeros included).
    pub errors: Vec<(ApiErrorKind, u64)>,
}

#[derive(Debug, Default)]
struct IndexState {
    live: PodIndex,
    /// Filled during a (re)list; replaces `live` when the list is complete, so pods deleted
    /// while the watch was down disappear.
    relisting: Option<PodIndex>,
}

/// This node's pods as the API server lists them, shared between the watch task (writer) and
/// pod resolution and /metrics (readers).
#[derive(Debug, Default)]
pub struct ApiPods {
    state: RwLock<IndexState>,
    generation: AtomicU64,
    up: AtomicBool,
    errors: [AtomicU64; ApiErrorKind::ALL.len()],
}

impl ApiPods {
    /// The pod of container `id`, if the API server listed it.
    pub fn get(&self, id: &ContainerId) -> Option<PodRef> {
        self.read().live.get(id).cloned()
    }

    /// Bumped on every change of the index.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current state, for /metrics.
    pub fn status(&self) -> ApiStatus {
        let s = self.read();
        ApiStatus {
            up: self.up.load(Ordering::Relaxed),
            pods: s.live.pods(),
            containers: s.live.containers(),
            errors: ApiErrorKind::ALL
                .iter()
                .zip(&self.errors)
                .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
                .collect(),
        }
    }

    /// Applies one watcher event.
    pub fn handle(&self, event: watcher::Event<Pod>) {
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        match event {
            watcher::Event::Init => s.relisting = Some(PodIndex::default()),
            watcher::Event::InitApply(pod) => match &mut s.relisting {
                Some(r) => r.apply(&pod),
                None => s.live.apply(&pod),
            },
            watcher::Event::InitDone => {
                if let Some(r) = s.relisting.take() {
                    s.live = r;
                }
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        pods = s.live.pods(),
                        "API server: watching this node's pods"
                    );
                }
            }
            watcher::Event::Apply(pod) => s.live.apply(&pod),
            watcher::Event::Delete(pod) => s.live.delete(&pod),
        }
        drop(s);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Counts and logs a failure; the watcher retries after its backoff.
    pub fn failed(&self, kind: ApiErrorKind, error: &dyn std::error::Error) {
        self.up.store(false, Ordering::Relaxed);
        if let Some(n) = ApiErrorKind::ALL
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.errors.get(i))
        {
            n.fetch_add(1, Ordering::Relaxed);
        }
        tracing::warn!(reason = kind.as_str(), error = %error, "API server pod watch failed; retrying");
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, IndexState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Starts the watch of this node's pods as a task that runs until `stop` turns true; fails only
/// on configuration errors (no or a bad node name). API failures are retried and counted.
pub fn spawn(
    config: &KubernetesConfig,
    stop: watch::Receiver<bool>,
) -> Result<(Arc<ApiPods>, JoinHandle<()>), KubeError> {
    let env = std::env::var(NODE_NAME_ENV).ok();
    let node = node_name(&config.node_name, env.as_deref())?;
    let kubeconfig = (!config.kubeconfig.as_os_str().is_empty()).then(|| config.kubeconfig.clone());
    let pods = Arc::new(ApiPods::default());
    let task = tokio::spawn(run(Arc::clone(&pods), node, kubeconfig, stop));
    Ok((pods, task))
}

/// A client from `kubeconfig`, or inferred (`$KUBECONFIG`, `~/.kube/config`, in-cluster).
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, KubeError> {
    let Some(path) = kubeconfig else {
        return Client::try_default().await.map_err(KubeError::Client);
    };
    let err = |source| KubeError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let file = Kubeconfig::read_from(path).map_err(err)?;
    let config = ::kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(err)?;
    Client::try_from(config).map_err(KubeError::Client)
}

async fn run(
    pods: Arc<ApiPods>,
    node: String,
    kubeconfig: Option<PathBuf>,
    mut stop: watch::Receiver<bool>,
) {
    // A missing token or kubeconfig may be fixed without restarting us (a mounted file
    // appearing): retry, slowly.
    let mut delay = Duration::from_secs(1);
    let client = loop {
        match client(kubeconfig.as_deref()).await {
            Ok(c) => break c,
            Err(e) => pods.failed(ApiErrorKind::Client, &e),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => delay = (delay * 2).min(Duration::from_secs(60)),
            _ = stop.wait_for(|s| *s) => return,
        }
    };
    let selector = format!("spec.nodeName={node}");
    tracing::info!(%node, "API server: listing this node's pods");
    let api: Api<Pod> = Api::all(client);
    let mut events = watcher(api, watcher::Config::default().fields(&selector))
        .default_backoff()
        .boxed();
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(ev)) => pods.handle(ev),
                Some(Err(e)) => pods.failed(ApiErrorKind::of(&e), &e),
                None => return,
            },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::discovery::kube::pods::test_pod as pod;

    const ID: &str = "4c3f7e2a9b1d8e6f0a5c4b3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f";
    const ID2: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_relist_drops_pods_deleted_while_the_watch_was_down() {
        let api = ApiPods::default();
        let id = ContainerId::parse(ID).unwrap();
        let id2 = ContainerId::parse(ID2).unwrap();
        api.handle(watcher::Event::Init);
        api.handle(watcher::Event::InitApply(pod(
            "u1",
            "shop",
            "web-0",
            &[("app", &format!("containerd://{ID}"))],
        )));
        // Not visible before the list is complete.
        assert!(api.get(&id).is_none());
        api.handle(watcher::Event::InitDone);
        assert_eq!(api.get(&id).unwrap().pod, "web-0");
        assert!(api.status().up);
        let g = api.generation();
        api.handle(watcher::Event::Init);
        api.handle(watcher::Event::InitApply(pod(
            "u2",
            "shop",
            "web-1",
            &[("app", &format!("containerd://{ID2}"))],
        )));
        // The old index serves until the relist is done.
        assert!(api.get(&id).is_some());
        api.handle(watcher::Event::InitDone);
        assert!(api.get(&id).is_none());
        assert_eq!(api.get(&id2).unwrap().pod, "web-1");
        assert!(api.generation() > g);
        let s = api.status();
        assert_eq!((s.pods, s.containers), (1, 1));
    }

    #[test]
    fn node_names() {
        assert_eq!(node_name("node-a", Some("other")).unwrap(), "node-a");
        assert_eq!(
            node_name("", Some("ip-10-0-0-1.ec2.internal")).unwrap(),
            "ip-10-0-0-1.ec2.internal"
        );
        assert!(matches!(node_name("", None), Err(KubeError::NoNodeName)));
        assert!(matches!(
            node_name("", Some("")),
            Err(KubeError::NoNodeName)
        ));
        let e = node_name("", None).unwrap_err().to_string();
        assert!(
            e.contains("kubernetes.node_name") && e.contains(NODE_NAME_ENV),
            "{e}"
        );
        for bad in [
            "Node",
            "a,b",
            "a=b",
            "-a",
            "a-",
            "a..b",
            &"a".repeat(254),
            &"a".repeat(64),
        ] {
            assert!(!is_node_name(bad), "{bad}");
            let e = node_name("", Some(bad)).unwrap_err().to_string();
            assert!(e.contains(NODE_NAME_ENV), "{e}");
        }
    }

    #[tokio::test]
    async fn an_https_kubeconfig_builds_a_client() {
        // rustls needs a crypto provider (ring, the only one compiled in): building the TLS
        // stack would panic without one.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n\
             users: [{name: u, user: {token: t}}]\n\
             contexts: [{name: c, context: {cluster: k, user: u}}]\n",
        )
        .unwrap();
        client(Some(&path)).await.unwrap();
        let Err(e) = client(Some(&dir.path().join("missing"))).await else {
            panic!("a missing kubeconfig must fail");
        };
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
