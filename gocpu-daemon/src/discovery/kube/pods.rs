//! This node's pods as the watch delivers them, reduced to what pod identity needs: a minimal
//! `Pod` view, its container IDs, and the index from container ID to pod.
use std::collections::HashMap;

use ::kube::{Resource, core::NamespaceResourceScope};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use crate::discovery::cgroup::{ContainerId, PodRef};

/// Pods indexed at most (a node runs at most a few hundred; kubelet's default is 110).
pub const MAX_PODS: usize = 16_384;
/// Container statuses read per pod (containers, init and ephemeral containers).
pub const MAX_CONTAINERS_PER_POD: usize = 512;
/// Longest `containerID` parsed (`<scheme>://` plus 64 hex digits is well below).
pub const MAX_CONTAINER_ID_BYTES: usize = 128;

/// A container ID from a pod status' `containerID` (`containerd://<id>`, `cri-o://<id>`,
/// `docker://<id>`); `None` for other runtimes, an empty ID (not started yet) or garbage.
pub fn parse_container_id(s: &str) -> Option<ContainerId> {
    if s.len() > MAX_CONTAINER_ID_BYTES {
        return None;
    }
    let (scheme, id) = s.split_once("://")?;
    matches!(scheme, "containerd" | "cri-o" | "docker")
        .then(|| ContainerId::parse(id))
        .flatten()
}

/// A pod as the index reads it: metadata and the container statuses' names and IDs. serde skips
/// everything else (the spec, most of the status), which keeps each event's decoding cheap and
/// the decoder small: k8s-openapi's full `Pod` type alone added about a megabyte to the binary.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Pod {
    /// Namespace, name, UID.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Where the container IDs are.
    #[serde(default)]
    pub status: Option<PodStatus>,
}

/// The container statuses of a pod's status.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// The app containers.
    #[serde(default)]
    pub container_statuses: Option<Vec<ContainerStatus>>,
    /// Init containers (sidecars among them run for the pod's life).
    #[serde(default)]
    pub init_container_statuses: Option<Vec<ContainerStatus>>,
    /// Ephemeral (debug) containers.
    #[serde(default)]
    pub ephemeral_container_statuses: Option<Vec<ContainerStatus>>,
}

/// One container's name and runtime ID.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ContainerStatus {
    /// The container's name in the pod spec.
    #[serde(default)]
    pub name: String,
    /// `<runtime>://<id>`; absent until the container was created.
    #[serde(default, rename = "containerID")]
    pub container_id: Option<String>,
}

impl Resource for Pod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The containers of `pod` with an ID, each with its place; containers whose names (or the
/// pod's) are not Kubernetes names are left out.
pub fn pod_containers(pod: &Pod) -> Vec<(ContainerId, PodRef)> {
    let (Some(namespace), Some(name), Some(status)) = (
        pod.metadata.namespace.as_deref(),
        pod.metadata.name.as_deref(),
        &pod.status,
    ) else {
        return Vec::new();
    };
    let statuses = [
        &status.container_statuses,
        &status.init_container_statuses,
        &status.ephemeral_container_statuses,
    ];
    let mut out = Vec::new();
    for c in statuses
        .into_iter()
        .flat_map(|s| s.iter().flatten())
        .take(MAX_CONTAINERS_PER_POD)
    {
        let ContainerStatus {
            name: container,
            container_id: Some(id),
            ..
        } = c
        else {
            continue;
        };
        if let (Some(id), Some(place)) = (
            parse_container_id(id),
            PodRef::new(namespace, name, container),
        ) {
            out.push((id, place));
        }
    }
    out
}

/// Pods by key (UID, else namespace/name) and their containers by ID.
#[derive(Clone, Debug, Default)]
pub struct PodIndex {
    by_container: HashMap<ContainerId, PodRef>,
    by_pod: HashMap<String, Vec<ContainerId>>,
}

impl PodIndex {
    fn key(pod: &Pod) -> Option<String> {
        let m = &pod.metadata;
        m.uid.clone().or_else(|| {
            Some(format!(
                "{}/{}",
                m.namespace.as_deref()?,
                m.name.as_deref()?
            ))
        })
    }

    /// Adds `pod`, or replaces what an earlier version of it said (a restarted container has a
    /// new ID; the old one goes).
    pub fn apply(&mut self, pod: &Pod) {
        let Some(key) = Self::key(pod) else {
            return;
        };
        let containers = pod_containers(pod);
        if !self.by_pod.contains_key(&key) && self.by_pod.len() >= MAX_PODS {
            tracing::debug!(pods = MAX_PODS, "pod index full; pod not indexed");
            return;
        }
        self.remove_key(&key);
        let ids = containers.iter().map(|(id, _)| id.clone()).collect();
        self.by_container.extend(containers);
        self.by_pod.insert(key, ids);
    }

    /// Removes `pod` and its containers.
    pub fn delete(&mut self, pod: &Pod) {
        if let Some(key) = Self::key(pod) {
            self.remove_key(&key);
        }
    }

    fn remove_key(&mut self, key: &str) {
        for id in self.by_pod.remove(key).into_iter().flatten() {
            self.by_container.remove(&id);
        }
    }

    /// The pod of container `id`.
    pub fn get(&self, id: &ContainerId) -> Option<&PodRef> {
        self.by_container.get(id)
    }

    /// Pods indexed.
    pub fn pods(&self) -> usize {
        self.by_pod.len()
    }

    /// Containers indexed.
    pub fn containers(&self) -> usize {
        self.by_container.len()
    }
}

/// A pod of `namespace`/`name` with running containers `(name, containerID)`, for tests.
#[cfg(test)]
pub(crate) fn test_pod(uid: &str, ns: &str, name: &str, containers: &[(&str, &str)]) -> Pod {
    #[allow(clippy::unwrap_used)]
    serde_json::from_value(serde_json::json!({
        "metadata": {"uid": uid, "namespace": ns, "name": name},
        "status": {"containerStatuses": containers.iter().map(|(n, id)| serde_json::json!({
            "name": n, "containerID": id, "image": "x", "imageID": "",
            "ready": true, "restartCount": 0,
        })).collect::<Vec<_>>()},
    }))
    .unwrap()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{test_pod as pod, *};

    const ID: &str = "4c3f7e2a9b1d8e6f0a5c4b3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f";
    const ID2: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const ID3: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn container_ids_of_each_runtime_and_garbage() {
        for scheme in ["containerd", "cri-o", "docker"] {
            let id = parse_container_id(&format!("{scheme}://{ID}")).unwrap();
            assert_eq!(id.as_str(), ID);
        }
        let long = format!("containerd://{ID}{}", "0".repeat(MAX_CONTAINER_ID_BYTES));
        for bad in [
            "",
            ID,                           // no scheme
            &format!("containerd:/{ID}"), // malformed
            &format!("rkt://{ID}"),       // unknown runtime
            "containerd://",              // not started yet
            &format!("containerd://{}", &ID[1..]),
            &format!("containerd://{}", ID.to_ascii_uppercase()),
            &format!("containerd://{ID}/x"),
            &format!("containerd://é{}", &ID[2..]),
            &long,
        ] {
            assert!(parse_container_id(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn every_kind_of_container_status_is_indexed() {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"uid": "u1", "namespace": "shop", "name": "web-0"},
            "status": {
                "containerStatuses": [{"name": "app", "containerID": format!("containerd://{ID}"),
                    "image": "", "imageID": "", "ready": true, "restartCount": 0}],
                "initContainerStatuses": [{"name": "init", "containerID": format!("cri-o://{ID2}"),
                    "image": "", "imageID": "", "ready": false, "restartCount": 0}],
                "ephemeralContainerStatuses": [{"name": "debug", "containerID": format!("docker://{ID3}"),
                    "image": "", "imageID": "", "ready": false, "restartCount": 0},
                    // Waiting: no ID yet.
                    {"name": "later", "image": "", "imageID": "", "ready": false, "restartCount": 0}],
            },
        }))
        .unwrap();
        let mut names: Vec<(String, String)> = pod_containers(&p)
            .into_iter()
            .map(|(id, r)| (id.to_string(), r.container))
            .collect();
        names.sort();
        let mut want = vec![
            (ID.to_string(), "app".to_string()),
            (ID2.to_string(), "init".to_string()),
            (ID3.to_string(), "debug".to_string()),
        ];
        want.sort();
        assert_eq!(names, want);
        // Names that are not Kubernetes names never become label values.
        let id = format!("containerd://{ID}");
        assert!(pod_containers(&pod("u", "Shop", "web-0", &[("app", &id)])).is_empty());
        assert!(pod_containers(&pod("u", "shop", "web_0", &[("app", &id)])).is_empty());
        let mixed = pod_containers(&pod("u", "shop", "web-0", &[("a\"b", &id), ("ok", &id)]));
        assert_eq!(mixed.len(), 1);
        assert_eq!(mixed[0].1.container, "ok");
    }

    #[test]
    fn index_add_modify_delete() {
        let (a, b, c) = (
            ContainerId::parse(ID).unwrap(),
            ContainerId::parse(ID2).unwrap(),
            ContainerId::parse(ID3).unwrap(),
        );
        let mut ix = PodIndex::default();
        let v1 = pod(
            "u1",
            "shop",
            "web-0",
            &[("app", &format!("containerd://{ID}"))],
        );
        ix.apply(&v1);
        assert_eq!(ix.get(&a).unwrap().pod, "web-0");
        assert_eq!((ix.pods(), ix.containers()), (1, 1));
        // The container restarted (new ID) and a sidecar started: the old ID goes.
        let v2 = pod(
            "u1",
            "shop",
            "web-0",
            &[
                ("app", &format!("containerd://{ID2}")),
                ("proxy", &format!("containerd://{ID3}")),
            ],
        );
        ix.apply(&v2);
        assert!(ix.get(&a).is_none());
        assert_eq!(ix.get(&b).unwrap().container, "app");
        assert_eq!(ix.get(&c).unwrap().container, "proxy");
        assert_eq!((ix.pods(), ix.containers()), (1, 2));
        // Another pod does not disturb it; deleting one removes exactly its containers.
        let other = pod("u2", "ops", "cron-1", &[("job", &format!("docker://{ID}"))]);
        ix.apply(&other);
        assert_eq!(ix.get(&a).unwrap().namespace, "ops");
        ix.delete(&v2);
        assert!(ix.get(&b).is_none() && ix.get(&c).is_none());
        assert_eq!((ix.pods(), ix.containers()), (1, 1));
        ix.delete(&other);
        assert_eq!((ix.pods(), ix.containers()), (0, 0));
    }

    #[test]
    fn a_full_api_server_pod_decodes_to_its_current_containers() {
        // Shaped like `kubectl get pod -o json` on a containerd node: a restarted container
        // (the old ID only in lastState), a sidecar init container, everything else ignored.
        let json = format!(
            r#"{{"apiVersion": "v1", "kind": "Pod",
              "metadata": {{"name": "web-0", "namespace": "shop", "uid": "2f0e4c1a-7b7e-4b7a-9d3f-0c1e2a3b4c5d",
                "resourceVersion": "123", "labels": {{"app": "web"}},
                "managedFields": [{{"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                  "fieldsType": "FieldsV1", "fieldsV1": {{"f:status": {{}}}}}}],
                "ownerReferences": [{{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                  "uid": "u", "controller": true}}]}},
              "spec": {{"nodeName": "node-a", "containers": [{{"name": "app", "image": "app:1",
                "env": [{{"name": "X", "value": "y"}}], "resources": {{"limits": {{"cpu": "1"}}}}}}],
                "initContainers": [{{"name": "proxy", "image": "p", "restartPolicy": "Always"}}],
                "volumes": [{{"name": "v", "projected": {{"sources": [{{"serviceAccountToken": {{"path": "token"}}}}]}}}}]}},
              "status": {{"phase": "Running", "podIP": "10.0.0.5",
                "conditions": [{{"type": "Ready", "status": "True"}}],
                "containerStatuses": [{{"name": "app", "containerID": "containerd://{ID}",
                  "image": "app:1", "imageID": "sha256:0", "ready": true, "restartCount": 1, "started": true,
                  "state": {{"running": {{"startedAt": "2026-01-01T00:00:00Z"}}}},
                  "lastState": {{"terminated": {{"exitCode": 2, "containerID": "containerd://{ID2}"}}}}}}],
                "initContainerStatuses": [{{"name": "proxy", "containerID": "containerd://{ID3}",
                  "image": "p", "imageID": "", "ready": true, "restartCount": 0}}]}}}}"#
        );
        let p: Pod = serde_json::from_str(&json).unwrap();
        let mut got: Vec<(String, String)> = pod_containers(&p)
            .into_iter()
            .map(|(id, r)| (r.container, id.to_string()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("app".to_string(), ID.to_string()),
                ("proxy".to_string(), ID3.to_string())
            ]
        );
    }
}
