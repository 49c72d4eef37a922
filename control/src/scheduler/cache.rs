//! The scheduler's cache: nodes with the pods assigned (or assumed) to them, kept up to date
//! incrementally from watch events, plus the indexes the plugins need (pods by namespace, pods
//! with required anti-affinity, image spread, namespace labels, nominated pods, PDBs). A
//! scheduling cycle reads it as its snapshot: it only changes between cycles.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::index::{AntiGroup, Contributions, PodIndex};
use super::labels::{Labels, selector_matches};
use super::pod_info::{HostPort, PodInfo};
use super::resources::{Resources, allocatable};

/// One node and what is placed on it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    /// `None` while pods name a node the cache has not seen (or no longer has).
    pub node: Option<Arc<Node>>,
    pub labels: Labels,
    pub allocatable: Resources,
    pub requested: Resources,
    /// CPU and memory with 100m / 200Mi for containers that request nothing (for scores).
    pub non_zero_requested: (i64, i64),
    pub pods: Vec<Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
    /// Normalized image name → size in bytes.
    pub images: HashMap<String, i64>,
    /// Taints, plus the `not-ready` / `unreachable` NoSchedule taint of a node that is not Ready.
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
}

/// `busybox` → `busybox:latest` (a digest or a tag is kept).
pub fn normalize_image(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if name.contains('@') || last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

fn condition_taint(node: &Node) -> Option<Taint> {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    let key = match ready {
        Some("True") => return None,
        Some("Unknown") => "node.kubernetes.io/unreachable",
        _ => "node.kubernetes.io/not-ready",
    };
    Some(Taint {
        key: key.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    })
}

impl NodeInfo {
    fn empty(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            node: None,
            labels: Labels::new(),
            allocatable: Resources::default(),
            requested: Resources::default(),
            non_zero_requested: (0, 0),
            pods: Vec::new(),
            used_ports: Vec::new(),
            images: HashMap::new(),
            taints: Vec::new(),
            unschedulable: false,
        }
    }

    fn set_node(&mut self, node: Node) {
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        self.allocatable = allocatable(&node);
        let spec = node.spec.clone().unwrap_or_default();
        self.unschedulable = spec.unschedulable == Some(true);
        self.taints = spec.taints.unwrap_or_default();
        if let Some(t) = condition_taint(&node)
            && !self
                .taints
                .iter()
                .any(|x| x.key == t.key && x.effect == t.effect)
        {
            self.taints.push(t);
        }
        self.images = node
            .status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|img| {
                let size = img.size_bytes.unwrap_or(0);
                img.names
                    .iter()
                    .flatten()
                    .map(move |n| (normalize_image(n), size))
            })
            .collect();
        self.node = Some(Arc::new(node));
    }

    /// Adds a pod's resources, ports and itself.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.0 += pod.non_zero.0;
        self.non_zero_requested.1 += pod.non_zero.1;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        self.pods.push(pod);
    }

    /// Removes the pod with this uid; returns it.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.uid == uid)?;
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.0 -= pod.non_zero.0;
        self.non_zero_requested.1 -= pod.non_zero.1;
        for port in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(j);
            }
        }
        Some(pod)
    }
}

/// Where a pod is in the cache.
#[derive(Debug, Clone)]
struct PodEntry {
    info: Arc<PodInfo>,
    node: String,
    /// Placed by this scheduler, not yet seen bound through the watch.
    assumed: bool,
    /// What the pod added to the anti-affinity index.
    contributions: Contributions,
}

/// A pending pod that preemption made room for, holding its place on a node.
#[derive(Debug, Clone)]
pub struct Nominated {
    pub node: String,
    pub info: Arc<PodInfo>,
}

/// Nodes, their pods, and the indexes over them.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    pods: HashMap<String, PodEntry>,
    by_namespace: HashMap<String, HashSet<String>>,
    /// Pods by label, and placed pods' required anti-affinity terms by domain.
    pod_index: PodIndex,
    /// Pods with any affinity or anti-affinity term (for the symmetric affinity score).
    with_affinity: HashSet<String>,
    namespaces: HashMap<String, Labels>,
    nominated: HashMap<String, Nominated>,
    pdbs: HashMap<(String, String), Arc<PodDisruptionBudget>>,
    /// Normalized image name → how many nodes report it.
    image_nodes: HashMap<String, usize>,
    /// Nodes with a Node object.
    existing: usize,
}

impl Cache {
    fn slot(&mut self, name: &str) -> &mut NodeInfo {
        let i = match self.index.get(name) {
            Some(i) => *i,
            None => {
                self.nodes.push(NodeInfo::empty(name));
                self.index.insert(name.to_string(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[i]
    }

    fn drop_if_empty(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        if self.nodes[i].node.is_some() || !self.nodes[i].pods.is_empty() {
            return;
        }
        self.nodes.swap_remove(i);
        self.index.remove(name);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }

    /// Adds or updates a node.
    pub fn upsert_node(&mut self, node: Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let slot = self.slot(&name);
        let was_there = slot.node.is_some();
        let old: Vec<String> = slot.images.keys().cloned().collect();
        slot.set_node(node);
        let new: Vec<String> = slot.images.keys().cloned().collect();
        self.count_images(&old, -1);
        self.count_images(&new, 1);
        if !was_there {
            self.existing += 1;
        }
    }

    fn count_images(&mut self, images: &[String], delta: isize) {
        for i in images {
            let n = self.image_nodes.entry(i.clone()).or_default();
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                self.image_nodes.remove(i);
            }
        }
    }

    pub fn remove_node(&mut self, name: &str) {
        if let Some(&i) = self.index.get(name) {
            let slot = &mut self.nodes[i];
            if slot.node.take().is_some() {
                self.existing -= 1;
            }
            let old: Vec<String> = slot.images.drain().map(|(k, _)| k).collect();
            self.count_images(&old, -1);
        }
        self.drop_if_empty(name);
    }

    /// Replaces the whole node set (after a re-list).
    pub fn reset_nodes(&mut self, nodes: Vec<Node>) {
        let keep: HashSet<String> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| !keep.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        for n in gone {
            self.remove_node(&n);
        }
        for n in nodes {
            self.upsert_node(n);
        }
    }

    /// Nodes that exist (have a Node object), in a stable order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.iter().filter(|n| n.node.is_some())
    }

    pub fn node_count(&self) -> usize {
        self.existing
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// Adds or updates an assigned pod (confirming it if it was assumed).
    pub fn upsert_pod(&mut self, info: PodInfo, node: &str) {
        self.place(Arc::new(info), node, false);
    }

    /// Places a pod on a node before its binding is confirmed, so the next cycles see the
    /// node's resources as taken.
    pub fn assume(&mut self, info: Arc<PodInfo>, node: &str) {
        self.place(info, node, true);
    }

    fn place(&mut self, info: Arc<PodInfo>, node: &str, assumed: bool) {
        let uid = info.uid.clone();
        self.remove_pod(&uid);
        self.nominated.remove(&uid);
        let slot = self.slot(node);
        slot.add_pod(info.clone());
        let node_labels = slot.labels.clone();
        let contributions = self.pod_index.add(&info, &node_labels);
        self.by_namespace
            .entry(info.namespace.clone())
            .or_default()
            .insert(uid.clone());
        if info.has_pod_affinity() {
            self.with_affinity.insert(uid.clone());
        }
        self.pods.insert(
            uid,
            PodEntry {
                info,
                node: node.to_string(),
                assumed,
                contributions,
            },
        );
    }

    /// Whether the pod is placed and not yet confirmed by the watch.
    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|e| e.assumed)
    }

    pub fn contains_pod(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// Undoes an assumption whose binding failed.
    pub fn forget(&mut self, uid: &str) {
        if self.is_assumed(uid) {
            self.remove_pod(uid);
        }
    }

    /// Removes a pod wherever it is; returns the node it was on.
    pub fn remove_pod(&mut self, uid: &str) -> Option<String> {
        let entry = self.pods.remove(uid)?;
        if let Some(&i) = self.index.get(&entry.node) {
            self.nodes[i].remove_pod(uid);
        }
        if let Some(set) = self.by_namespace.get_mut(&entry.info.namespace) {
            set.remove(uid);
        }
        self.pod_index.remove(&entry.info, &entry.contributions);
        self.with_affinity.remove(uid);
        self.drop_if_empty(&entry.node);
        Some(entry.node)
    }

    /// Forgets every confirmed pod (before a re-list re-adds them); assumed pods stay.
    pub fn clear_confirmed_pods(&mut self) {
        let confirmed: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, e)| !e.assumed)
            .map(|(k, _)| k.clone())
            .collect();
        for uid in confirmed {
            self.remove_pod(&uid);
        }
    }

    /// A placed pod and its node.
    pub fn pod(&self, uid: &str) -> Option<(&Arc<PodInfo>, &str)> {
        self.pods.get(uid).map(|e| (&e.info, e.node.as_str()))
    }

    /// Placed pods of one namespace, with their node names.
    pub fn pods_in_namespace<'a>(
        &'a self,
        ns: &str,
    ) -> impl Iterator<Item = (&'a Arc<PodInfo>, &'a str)> + 'a {
        self.by_namespace
            .get(ns)
            .into_iter()
            .flatten()
            .filter_map(|uid| self.pod(uid))
    }

    /// Every placed pod with its node name.
    pub fn all_pods(&self) -> impl Iterator<Item = (&Arc<PodInfo>, &str)> {
        self.pods.values().map(|e| (&e.info, e.node.as_str()))
    }

    /// The distinct required anti-affinity terms of placed pods, counted per domain.
    pub fn anti_affinity_groups(&self) -> impl Iterator<Item = &AntiGroup> {
        self.pod_index.anti_groups()
    }

    /// Placed pods of namespace `ns` that `sel` selects (none for no selector), found
    /// through the label index when the selector allows.
    pub fn pods_selected<'a>(
        &'a self,
        ns: &str,
        sel: Option<&LabelSelector>,
    ) -> Vec<(&'a Arc<PodInfo>, &'a str)> {
        let Some(sel) = sel else {
            return Vec::new();
        };
        let matches = |p: &(&Arc<PodInfo>, &str)| selector_matches(sel, &p.0.labels);
        match self.pod_index.candidates(ns, sel) {
            Some(uids) => uids
                .into_iter()
                .filter_map(|u| self.pod(u))
                .filter(matches)
                .collect(),
            None => self.pods_in_namespace(ns).filter(matches).collect(),
        }
    }

    /// Namespaces that hold placed pods.
    pub fn pod_namespaces(&self) -> impl Iterator<Item = &String> {
        self.by_namespace.keys()
    }

    /// Placed pods with any pod (anti-)affinity term.
    pub fn pods_with_affinity(&self) -> impl Iterator<Item = (&Arc<PodInfo>, &str)> {
        self.with_affinity.iter().filter_map(|uid| self.pod(uid))
    }

    /// Namespaces whose pods may be counted: a name → labels map.
    pub fn namespaces(&self) -> &HashMap<String, Labels> {
        &self.namespaces
    }

    pub fn upsert_namespace(&mut self, name: &str, labels: Labels) {
        self.namespaces.insert(name.to_string(), labels);
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// How many nodes report having this (normalized) image.
    pub fn image_node_count(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    pub fn set_nominated(&mut self, info: Arc<PodInfo>, node: &str) {
        self.nominated.insert(
            info.uid.clone(),
            Nominated {
                node: node.to_string(),
                info,
            },
        );
    }

    pub fn clear_nominated(&mut self, uid: &str) {
        self.nominated.remove(uid);
    }

    /// Every pending pod nominated to a node.
    pub fn nominated(&self) -> impl Iterator<Item = &Nominated> {
        self.nominated.values()
    }

    /// Pending pods nominated to `node`.
    pub fn nominated_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Nominated> {
        self.nominated.values().filter(move |n| n.node == node)
    }

    pub fn upsert_pdb(&mut self, pdb: PodDisruptionBudget) {
        let key = (
            pdb.metadata.namespace.clone().unwrap_or_default(),
            pdb.metadata.name.clone().unwrap_or_default(),
        );
        self.pdbs.insert(key, Arc::new(pdb));
    }

    pub fn remove_pdb(&mut self, ns: &str, name: &str) {
        self.pdbs.remove(&(ns.to_string(), name.to_string()));
    }

    pub fn reset_pdbs(&mut self, pdbs: Vec<PodDisruptionBudget>) {
        self.pdbs.clear();
        for p in pdbs {
            self.upsert_pdb(p);
        }
    }

    pub fn pdbs(&self) -> impl Iterator<Item = &Arc<PodDisruptionBudget>> {
        self.pdbs.values()
    }
}
