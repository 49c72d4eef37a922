//! The default plugins and their weights, in kube-scheduler's order: filters NodeUnschedulable,
//! NodeName, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit, PodTopologySpread,
//! InterPodAffinity; scores TaintToleration (3), NodeAffinity (2), PodTopologySpread (2),
//! InterPodAffinity (2), NodeResourcesFit (1), NodeResourcesBalancedAllocation (1),
//! ImageLocality (1).

pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_basic;
pub mod node_resources;
pub mod topology_spread;

#[cfg(test)]
pub(crate) mod testing;

use super::framework::{FilterPlugin, ScorePlugin};

pub fn default_filters() -> Vec<Box<dyn FilterPlugin>> {
    vec![
        Box::new(node_basic::NodeUnschedulable),
        Box::new(node_basic::NodeName),
        Box::new(node_basic::TaintToleration),
        Box::new(node_affinity::NodeAffinity),
        Box::new(node_basic::NodePorts),
        Box::new(node_resources::NodeResourcesFit),
        Box::new(topology_spread::PodTopologySpread),
        Box::new(inter_pod_affinity::InterPodAffinity),
    ]
}

pub fn default_scores() -> Vec<Box<dyn ScorePlugin>> {
    vec![
        Box::new(node_basic::TaintToleration),
        Box::new(node_affinity::NodeAffinity),
        Box::new(topology_spread::PodTopologySpread),
        Box::new(inter_pod_affinity::InterPodAffinity),
        Box::new(node_resources::NodeResourcesFit),
        Box::new(node_resources::BalancedAllocation),
        Box::new(image_locality::ImageLocality),
    ]
}
