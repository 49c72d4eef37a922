//! Indexes over placed pods that keep affinity and spread checks from scanning every pod:
//! pods by namespace and label, and the required anti-affinity terms of placed pods grouped by
//! identical term (a Deployment's pods share one) with per-domain counts.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::labels::Labels;
use super::pod_info::{AffinityTerm, PodInfo};

/// One distinct anti-affinity term and how many placed pods carry it, per topology value.
#[derive(Debug, Clone)]
pub struct AntiGroup {
    pub term: AffinityTerm,
    /// Topology value (of `term.topology_key`) → pods.
    pub counts: HashMap<String, i64>,
}

/// What placing one pod added to the anti-affinity groups: (term signature, value).
pub type Contributions = Vec<(String, String)>;

#[derive(Debug, Default)]
pub struct PodIndex {
    /// namespace → (label key, value) → pod uids.
    labels: HashMap<String, HashMap<(String, String), HashSet<String>>>,
    anti: HashMap<String, AntiGroup>,
}

fn signature(t: &AffinityTerm) -> String {
    format!("{t:?}")
}

impl PodIndex {
    /// Indexes a pod placed on a node with `node_labels`; returns what to undo on removal.
    pub fn add(&mut self, pod: &PodInfo, node_labels: &Labels) -> Contributions {
        let by_label = self.labels.entry(pod.namespace.clone()).or_default();
        for (k, v) in &pod.labels {
            by_label
                .entry((k.clone(), v.clone()))
                .or_default()
                .insert(pod.uid.clone());
        }
        let mut added = Vec::new();
        for t in &pod.required_anti_affinity {
            let Some(value) = node_labels.get(&t.topology_key) else {
                continue;
            };
            let sig = signature(t);
            let group = self.anti.entry(sig.clone()).or_insert_with(|| AntiGroup {
                term: t.clone(),
                counts: HashMap::new(),
            });
            *group.counts.entry(value.clone()).or_default() += 1;
            added.push((sig, value.clone()));
        }
        added
    }

    pub fn remove(&mut self, pod: &PodInfo, added: &Contributions) {
        if let Some(by_label) = self.labels.get_mut(&pod.namespace) {
            for (k, v) in &pod.labels {
                let key = (k.clone(), v.clone());
                if let Some(set) = by_label.get_mut(&key) {
                    set.remove(&pod.uid);
                    if set.is_empty() {
                        by_label.remove(&key);
                    }
                }
            }
        }
        for (sig, value) in added {
            if let Some(g) = self.anti.get_mut(sig) {
                if let Some(c) = g.counts.get_mut(value) {
                    *c -= 1;
                    if *c <= 0 {
                        g.counts.remove(value);
                    }
                }
                if g.counts.is_empty() {
                    self.anti.remove(sig);
                }
            }
        }
    }

    /// The distinct required anti-affinity terms of placed pods.
    pub fn anti_groups(&self) -> impl Iterator<Item = &AntiGroup> {
        self.anti.values()
    }

    /// Uids of pods in `ns` that may match `sel`: the smallest posting list of its
    /// `matchLabels` (or single-value `In`) requirements, or `None` when it has none (the
    /// caller then scans the namespace). Callers still check the full selector.
    pub fn candidates(&self, ns: &str, sel: &LabelSelector) -> Option<Vec<&String>> {
        let by_label = self.labels.get(ns);
        let mut keys: Vec<(String, String)> = sel
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for e in sel.match_expressions.iter().flatten() {
            if e.operator == "In"
                && let Some([v]) = e.values.as_deref()
            {
                keys.push((e.key.clone(), v.clone()));
            }
        }
        if keys.is_empty() {
            return None;
        }
        let Some(by_label) = by_label else {
            return Some(Vec::new());
        };
        let smallest = keys
            .iter()
            .map(|k| by_label.get(k))
            .min_by_key(|s| s.map_or(0, HashSet::len))?;
        Some(smallest.map(|s| s.iter().collect()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::pod;
    use serde_json::json;
    use std::sync::Arc;

    fn anti_pod() -> PodInfo {
        PodInfo::new(Arc::new(pod(
            json!({"metadata": {"labels": {"app": "web", "tier": "fe"}},
            "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}]}}}}),
        )))
    }

    #[test]
    fn groups_identical_terms_and_undoes_removals() {
        let mut idx = PodIndex::default();
        let zone = |z: &str| Labels::from([("zone".to_string(), z.to_string())]);
        let (a, b, c) = (anti_pod(), anti_pod(), anti_pod());
        let ca = idx.add(&a, &zone("east"));
        let _cb = idx.add(&b, &zone("east"));
        let cc = idx.add(&c, &zone("west"));
        let groups: Vec<_> = idx.anti_groups().collect();
        assert_eq!(
            groups.len(),
            1,
            "one Deployment's identical terms share a group"
        );
        assert_eq!(groups[0].counts.get("east"), Some(&2));
        idx.remove(&a, &ca);
        idx.remove(&c, &cc);
        let g = idx.anti_groups().next().unwrap();
        assert_eq!(g.counts.get("east"), Some(&1));
        assert_eq!(g.counts.get("west"), None);
        // The label index narrows candidates to the posting list.
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        };
        assert_eq!(idx.candidates("default", &sel).unwrap(), vec![&b.uid]);
        assert!(
            idx.candidates("default", &LabelSelector::default())
                .is_none()
        );
        assert_eq!(idx.candidates("other", &sel).unwrap().len(), 0);
    }
}
