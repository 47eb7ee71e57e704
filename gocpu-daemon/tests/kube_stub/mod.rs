//! A stub Kubernetes API server for the pod-identity tests: no real kube-apiserver can be
//! installed here (Debian ships only kubectl, PyPI no server binary), so this serves, over
//! plain HTTP on loopback, exactly what kube-rs' watcher asks of a real one:
//!
//! - `GET /api/v1/pods?fieldSelector=…&limit=…`: a `PodList` with `metadata.resourceVersion`;
//! - `GET /api/v1/pods?watch=true&resourceVersion=…&allowWatchBookmarks=true&…`: a chunked
//!   stream of newline-delimited `{"type": ADDED|MODIFIED|DELETED, "object": …}` events, kept
//!   open until the stub is dropped.
//!
//! Every request's query and bearer token are recorded so tests can check what the client
//! sent. In `deny` mode every request gets the 403 `Status` RBAC produces.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use axum::{
    Router,
    body::Body,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The token the kubeconfig gives the client.
pub const TOKEN: &str = "gocpu-test-token";

/// One request the stub answered.
#[derive(Clone, Debug)]
pub struct Request {
    /// Decoded query parameters.
    pub query: HashMap<String, String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
}

impl Request {
    /// Whether this was a WATCH (else a LIST).
    pub fn is_watch(&self) -> bool {
        matches!(
            self.query.get("watch").map(String::as_str),
            Some("true" | "1")
        )
    }
}

#[derive(Default)]
struct Inner {
    pods: Mutex<Vec<Value>>,
    resource_version: AtomicU64,
    watchers: Mutex<Vec<mpsc::UnboundedSender<String>>>,
    requests: Mutex<Vec<Request>>,
    deny: AtomicBool,
}

/// A running stub; stops (closing its watches) on drop.
pub struct KubeStub {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    rt: Option<tokio::runtime::Runtime>,
}

impl KubeStub {
    /// Serves on `addr` (port 0 for any), starting with `pods`; `deny` as [`Self::set_deny`].
    pub fn start(addr: SocketAddr, pods: Vec<Value>, deny: bool) -> KubeStub {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let inner = Arc::new(Inner {
            pods: Mutex::new(pods),
            resource_version: AtomicU64::new(100),
            deny: AtomicBool::new(deny),
            ..Default::default()
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .unwrap_or_else(|e| panic!("stub API server cannot bind {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/api/v1/pods", get(pods_handler))
            .fallback(|| async { StatusCode::NOT_FOUND })
            .with_state(Arc::clone(&inner));
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        KubeStub {
            addr,
            inner,
            rt: Some(rt),
        }
    }

    /// Answers every request with 403 Forbidden (RBAC without the pods rule) while `deny`.
    pub fn set_deny(&self, deny: bool) {
        self.inner.deny.store(deny, Ordering::SeqCst);
    }

    /// Requests answered so far.
    pub fn requests(&self) -> Vec<Request> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// Open watch streams.
    pub fn watchers(&self) -> usize {
        let mut w = self.inner.watchers.lock().unwrap();
        w.retain(|tx| !tx.is_closed());
        w.len()
    }

    /// Updates the pod list and sends `kind` (ADDED, MODIFIED, DELETED) of `pod` to every
    /// open watch.
    pub fn send(&self, kind: &str, mut pod: Value) {
        let rv = self.inner.resource_version.fetch_add(1, Ordering::SeqCst) + 1;
        pod["metadata"]["resourceVersion"] = json!(rv.to_string());
        {
            let mut pods = self.inner.pods.lock().unwrap();
            pods.retain(|p| p["metadata"]["uid"] != pod["metadata"]["uid"]);
            if kind != "DELETED" {
                pods.push(pod.clone());
            }
        }
        let line = format!("{}\n", json!({"type": kind, "object": pod}));
        let mut w = self.inner.watchers.lock().unwrap();
        w.retain(|tx| tx.send(line.clone()).is_ok());
    }

    /// A kubeconfig pointing at `addr` with [`TOKEN`], written into `dir`.
    pub fn kubeconfig(dir: &Path, addr: SocketAddr) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: stub\n\
                 clusters:\n- name: stub\n  cluster:\n    server: http://{addr}\n\
                 users:\n- name: stub\n  user:\n    token: {TOKEN}\n\
                 contexts:\n- name: stub\n  context:\n    cluster: stub\n    user: stub\n"
            ),
        )
        .unwrap();
        path
    }
}

impl Drop for KubeStub {
    fn drop(&mut self) {
        self.inner.watchers.lock().unwrap().clear();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn pods_handler(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let req = Request {
        query,
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let watch = req.is_watch();
    inner.requests.lock().unwrap().push(req);
    if inner.deny.load(Ordering::SeqCst) {
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods is forbidden: User \"system:serviceaccount:gocpu:gocpu\" cannot list resource \"pods\" in API group \"\" at the cluster scope",
            "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403,
        });
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            status.to_string(),
        )
            .into_response();
    }
    if watch {
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        inner.watchers.lock().unwrap().push(tx);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|l| (Ok::<_, Infallible>(l), rx))
        });
        return (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(stream),
        )
            .into_response();
    }
    let rv = inner.resource_version.load(Ordering::SeqCst).to_string();
    let list = json!({
        "apiVersion": "v1", "kind": "PodList",
        "metadata": {"resourceVersion": rv},
        "items": inner.pods.lock().unwrap().clone(),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        list.to_string(),
    )
        .into_response()
}

/// A running pod of `node` with containers `(name, containerd ID)`.
pub fn pod(
    uid: &str,
    namespace: &str,
    name: &str,
    node: &str,
    containers: &[(&str, &str)],
) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"uid": uid, "namespace": namespace, "name": name, "resourceVersion": "1"},
        "spec": {
            "nodeName": node,
            "containers": containers.iter().map(|(n, _)| json!({"name": n, "image": "app"})).collect::<Vec<_>>(),
        },
        "status": {
            "phase": "Running",
            "containerStatuses": containers.iter().map(|(n, id)| json!({
                "name": n, "containerID": format!("containerd://{id}"), "image": "app",
                "imageID": "", "ready": true, "restartCount": 0, "started": true,
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
            })).collect::<Vec<_>>(),
        },
    })
}
