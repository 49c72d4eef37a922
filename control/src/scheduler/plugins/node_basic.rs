//! The simple node filters: NodeUnschedulable (cordon), NodeName, TaintToleration (filter and
//! the PreferNoSchedule score) and NodePorts (host port conflicts).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::scheduler::cache::{Cache, NodeInfo};
use crate::scheduler::framework::{
    CycleState, FilterPlugin, PreFilterResult, Rejection, ScorePlugin, default_normalize,
};
use crate::scheduler::pod_info::PodInfo;

/// Whether one toleration tolerates `taint` (upstream's `ToleratesTaint`).
pub fn toleration_matches(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty())
        && e != taint.effect
    {
        return false;
    }
    if let Some(k) = t.key.as_deref().filter(|k| !k.is_empty())
        && k != taint.key
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| toleration_matches(t, taint))
}

fn tolerations(pod: &PodInfo) -> &[Toleration] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

pub struct NodeUnschedulable;

impl FilterPlugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }

    fn filter(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        if !node.unschedulable {
            return Ok(());
        }
        let cordon = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if !tolerated(tolerations(pod), &cordon) {
            return Err(Rejection::unresolvable(
                FilterPlugin::name(self),
                "node(s) were unschedulable",
            ));
        }
        Ok(())
    }
}

pub struct NodeName;

const NODE_NAME_REASON: &str = "node(s) didn't match the requested node name";

fn wanted_node(pod: &PodInfo) -> Option<&str> {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

impl FilterPlugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }

    fn pre_filter(&self, pod: &PodInfo, _: &Cache, _: &mut CycleState) -> PreFilterResult {
        match wanted_node(pod) {
            Some(n) => PreFilterResult::Only(
                HashSet::from([n.to_string()]),
                Rejection::unresolvable(FilterPlugin::name(self), NODE_NAME_REASON),
            ),
            None => PreFilterResult::AllNodes,
        }
    }

    fn filter(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        match wanted_node(pod) {
            Some(n) if n != node.name => Err(Rejection::unresolvable(
                FilterPlugin::name(self),
                NODE_NAME_REASON,
            )),
            _ => Ok(()),
        }
    }
}

pub struct TaintToleration;

impl FilterPlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn filter(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        let tols = tolerations(pod);
        match node.taints.iter().find(|t| {
            matches!(t.effect.as_str(), "NoSchedule" | "NoExecute") && !tolerated(tols, t)
        }) {
            Some(t) => Err(Rejection::unresolvable(
                FilterPlugin::name(self),
                format!(
                    "node(s) had untolerated taint {{{}: {}}}",
                    t.key,
                    t.value.as_deref().unwrap_or_default()
                ),
            )),
            None => Ok(()),
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn weight(&self) -> i64 {
        3
    }

    /// How many PreferNoSchedule taints the pod does not tolerate (fewer is better).
    fn score(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> i64 {
        let tols = tolerations(pod);
        let soft = |t: &&Toleration| {
            t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
        };
        node.taints
            .iter()
            .filter(|t| {
                t.effect == "PreferNoSchedule"
                    && !tols.iter().filter(soft).any(|x| toleration_matches(x, t))
            })
            .count() as i64
    }

    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

pub struct NodePorts;

impl FilterPlugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }

    fn filter(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        let clash = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if clash {
            return Err(Rejection::new(
                FilterPlugin::name(self),
                "node(s) didn't have free ports for the requested pod ports",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{filter_all, node, pod, score_all};
    use serde_json::json;

    #[test]
    fn unschedulable_table() {
        let cordoned = node("a", json!({"spec": {"unschedulable": true}}));
        let plain = node("b", json!({}));
        let tolerant = pod(json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}}));
        let got = filter_all(
            &NodeUnschedulable,
            &pod(json!({})),
            &[cordoned.clone(), plain],
        );
        assert_eq!(got, vec![Err("node(s) were unschedulable".into()), Ok(())]);
        assert_eq!(
            filter_all(&NodeUnschedulable, &tolerant, &[cordoned]),
            vec![Ok(())]
        );
    }

    #[test]
    fn node_name_table() {
        let p = pod(json!({"spec": {"nodeName": "b"}}));
        let got = filter_all(&NodeName, &p, &[node("a", json!({})), node("b", json!({}))]);
        assert_eq!(
            got,
            vec![
                Err("node(s) didn't match the requested node name".into()),
                Ok(())
            ]
        );
    }

    #[test]
    fn taints_table() {
        let taint = |key: &str, value: &str, effect: &str| {
            node(
                "n",
                json!({"spec": {"taints": [{"key": key, "value": value, "effect": effect}]}}),
            )
        };
        let cases = [
            (
                json!([]),
                taint("gpu", "true", "NoSchedule"),
                Err("node(s) had untolerated taint {gpu: true}"),
            ),
            (
                json!([]),
                taint("gpu", "", "NoExecute"),
                Err("node(s) had untolerated taint {gpu: }"),
            ),
            (json!([]), taint("gpu", "true", "PreferNoSchedule"), Ok(())),
            (
                json!([{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]),
                taint("gpu", "true", "NoSchedule"),
                Ok(()),
            ),
            (
                json!([{"key": "gpu", "operator": "Equal", "value": "false"}]),
                taint("gpu", "true", "NoSchedule"),
                Err("node(s) had untolerated taint {gpu: true}"),
            ),
            (
                json!([{"key": "gpu", "operator": "Exists", "effect": "NoExecute"}]),
                taint("gpu", "true", "NoSchedule"),
                Err("node(s) had untolerated taint {gpu: true}"),
            ),
            (
                json!([{"operator": "Exists"}]),
                taint("anything", "x", "NoExecute"),
                Ok(()),
            ),
        ];
        for (i, (tols, n, want)) in cases.into_iter().enumerate() {
            let p = pod(json!({"spec": {"tolerations": tols}}));
            let got = filter_all(&TaintToleration, &p, &[n]);
            assert_eq!(got, vec![want.map_err(str::to_string)], "case {i}");
        }
        // A node that is not Ready carries the not-ready NoSchedule taint.
        let not_ready = node(
            "n",
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        );
        assert_eq!(
            filter_all(&TaintToleration, &pod(json!({})), &[not_ready]),
            vec![Err(
                "node(s) had untolerated taint {node.kubernetes.io/not-ready: }".into()
            )]
        );
    }

    #[test]
    fn prefer_no_schedule_score() {
        let soft = |n: &str, count: usize| {
            let taints: Vec<_> = (0..count)
                .map(|i| json!({"key": format!("k{i}"), "effect": "PreferNoSchedule"}))
                .collect();
            node(n, json!({"spec": {"taints": taints}}))
        };
        let nodes = [soft("a", 0), soft("b", 1), soft("c", 2)];
        assert_eq!(
            score_all(&TaintToleration, &pod(json!({})), &nodes),
            vec![100, 50, 0]
        );
        let tolerant = pod(
            json!({"spec": {"tolerations": [{"operator": "Exists", "effect": "PreferNoSchedule"}]}}),
        );
        assert_eq!(
            score_all(&TaintToleration, &tolerant, &nodes),
            vec![100, 100, 100]
        );
    }

    #[test]
    fn host_ports_table() {
        let with_port = |ip: &str, port: i64, proto: &str| {
            pod(json!({"spec": {"containers": [{"name": "c", "image": "i",
                "ports": [{"containerPort": 80, "hostPort": port, "hostIP": ip, "protocol": proto}]}]}}))
        };
        let busy = crate::scheduler::plugins::testing::with_pods(
            node("a", json!({})),
            &[with_port("10.0.0.1", 8080, "TCP")],
        );
        let reason = "node(s) didn't have free ports for the requested pod ports";
        let cases = [
            (with_port("", 8080, "TCP"), Err(reason)),
            (with_port("10.0.0.1", 8080, "TCP"), Err(reason)),
            (with_port("10.0.0.2", 8080, "TCP"), Ok(())),
            (with_port("", 8080, "UDP"), Ok(())),
            (with_port("", 8081, "TCP"), Ok(())),
        ];
        for (i, (p, want)) in cases.into_iter().enumerate() {
            let got = filter_all(&NodePorts, &p, std::slice::from_ref(&busy));
            assert_eq!(got, vec![want.map_err(str::to_string)], "case {i}");
        }
    }
}
