//! ImageLocality: prefer nodes that already have the pod's images (from `status.images`),
//! weighted by image size and by how widely the image is spread, as upstream scores it.

use std::collections::HashMap;

use crate::scheduler::cache::{Cache, NodeInfo, normalize_image};
use crate::scheduler::framework::{CycleState, MAX_NODE_SCORE, ScorePlugin};
use crate::scheduler::pod_info::PodInfo;

const MB: i64 = 1024 * 1024;
/// Below this the score is 0.
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container: at or above this the score is 100.
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// The pod's normalized images and on how many nodes each is.
#[derive(Clone, Default)]
struct Spread {
    images: Vec<String>,
    nodes_with: HashMap<String, usize>,
    total_nodes: usize,
}

pub struct ImageLocality;

impl ScorePlugin for ImageLocality {
    fn name(&self) -> &'static str {
        "ImageLocality"
    }

    fn weight(&self) -> i64 {
        1
    }

    fn pre_score(&self, pod: &PodInfo, cache: &Cache, _: &[&NodeInfo], state: &mut CycleState) {
        let images: Vec<String> = pod
            .pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .filter_map(|c| c.image.as_deref())
            .map(normalize_image)
            .collect();
        let nodes_with = images
            .iter()
            .map(|i| (i.clone(), cache.image_node_count(i)))
            .collect();
        state.write(Spread {
            images,
            nodes_with,
            total_nodes: cache.node_count(),
        });
    }

    fn score(&self, _: &PodInfo, state: &CycleState, node: &NodeInfo) -> i64 {
        let Some(spread) = state.read::<Spread>() else {
            return 0;
        };
        if spread.total_nodes == 0 || spread.images.is_empty() {
            return 0;
        }
        let sum: i64 = spread
            .images
            .iter()
            .filter_map(|i| {
                let size = *node.images.get(i)?;
                let with = spread.nodes_with.get(i).copied().unwrap_or(0) as f64;
                Some((size as f64 * with / spread.total_nodes as f64) as i64)
            })
            .sum();
        let max = MAX_CONTAINER_THRESHOLD * spread.images.len() as i64;
        let sum = sum.clamp(MIN_THRESHOLD, max);
        MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{node, pod, score_all};
    use serde_json::json;

    #[test]
    fn bigger_and_wider_spread_images_score_higher() {
        let with_image = |name: &str, image: &str, mb: i64| {
            node(
                name,
                json!({"status": {"images": [{"names": [image], "sizeBytes": mb * MB}]}}),
            )
        };
        let p = pod(json!({"spec": {"containers": [{"name": "c", "image": "app"}]}}));
        let nodes = [
            with_image("a", "docker.io/x/other:1", 500),
            with_image("b", "app:latest", 500),
            with_image("c", "app", 500),
            with_image("d", "app:latest", 10),
        ];
        // 3 of 4 nodes have it: 500 MB × 3/4 = 375 MB → (375-23)/(1000-23) = 36.
        assert_eq!(score_all(&ImageLocality, &p, &nodes), vec![0, 36, 36, 0]);
    }
}
