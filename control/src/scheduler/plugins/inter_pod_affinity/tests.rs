//! Table tests for InterPodAffinity's filter and score.

use super::*;
use crate::scheduler::plugins::testing::{TestNode, filter_all, node, pod, score_all, with_pods};
use serde_json::{Value, json};

fn zone(name: &str, z: &str) -> TestNode {
    node(name, json!({"metadata": {"labels": {"zone": z}}}))
}

fn labelled(app: &str, extra: Value) -> k8s_openapi::api::core::v1::Pod {
    let mut p = json!({"metadata": {"labels": {"app": app}}});
    crate::scheduler::plugins::testing::merge(&mut p, extra);
    pod(p)
}

fn term(app: &str, key: &str) -> Value {
    json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
}

fn required(kind: &str, terms: Vec<Value>) -> Value {
    json!({"spec": {"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": terms}}}})
}

#[test]
fn required_affinity_and_anti_affinity_table() {
    let nodes = [
        with_pods(zone("a", "east"), &[labelled("db", json!({}))]),
        zone("b", "east"),
        zone("c", "west"),
    ];
    let cases = [
        // Affinity to db by zone: every east node.
        (
            required("podAffinity", vec![term("db", "zone")]),
            vec![Ok(()), Ok(()), Err(AFFINITY)],
        ),
        // By hostname: only the node holding it.
        (
            required("podAffinity", vec![term("db", "kubernetes.io/hostname")]),
            vec![Ok(()), Err(AFFINITY), Err(AFFINITY)],
        ),
        // Anti-affinity to db by zone.
        (
            required("podAntiAffinity", vec![term("db", "zone")]),
            vec![Err(ANTI), Err(ANTI), Ok(())],
        ),
        // A term for other namespaces does not see the default-namespace db pod.
        (
            required(
                "podAntiAffinity",
                vec![
                    json!({"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone", "namespaces": ["other"]}),
                ],
            ),
            vec![Ok(()), Ok(()), Ok(())],
        ),
        // A namespace selector that picks `default` does.
        (
            required(
                "podAntiAffinity",
                vec![
                    json!({"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone",
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}}}),
                ],
            ),
            vec![Err(ANTI), Err(ANTI), Ok(())],
        ),
    ];
    for (i, (extra, want)) in cases.into_iter().enumerate() {
        let want: Vec<_> = want
            .into_iter()
            .map(|w| w.map_err(str::to_string))
            .collect();
        assert_eq!(
            filter_all(&InterPodAffinity, &pod(extra), &nodes),
            want,
            "case {i}"
        );
    }
}

#[test]
fn first_pod_of_a_group_may_go_anywhere() {
    let nodes = [zone("a", "east"), zone("b", "west")];
    let mut extra = required("podAffinity", vec![term("web", "zone")]);
    crate::scheduler::plugins::testing::merge(
        &mut extra,
        json!({"metadata": {"labels": {"app": "web"}}}),
    );
    assert_eq!(
        filter_all(&InterPodAffinity, &pod(extra), &nodes),
        vec![Ok(()), Ok(())]
    );
    // A pod that does not match its own term has nowhere to go.
    let lonely = pod(required("podAffinity", vec![term("web", "zone")]));
    assert_eq!(
        filter_all(&InterPodAffinity, &lonely, &nodes),
        vec![Err(AFFINITY.to_string()), Err(AFFINITY.to_string())]
    );
}

#[test]
fn existing_pods_anti_affinity() {
    let loner = labelled(
        "loner",
        required("podAntiAffinity", vec![term("web", "zone")]),
    );
    let nodes = [
        with_pods(zone("a", "east"), &[loner]),
        zone("b", "east"),
        zone("c", "west"),
    ];
    let want = vec![
        Err(EXISTING_ANTI.to_string()),
        Err(EXISTING_ANTI.to_string()),
        Ok(()),
    ];
    assert_eq!(
        filter_all(&InterPodAffinity, &labelled("web", json!({})), &nodes),
        want
    );
    assert_eq!(
        filter_all(&InterPodAffinity, &labelled("api", json!({})), &nodes),
        vec![Ok(()), Ok(()), Ok(())]
    );
}

#[test]
fn preferred_terms_score() {
    let nodes = [
        with_pods(zone("a", "east"), &[labelled("cache", json!({}))]),
        zone("b", "west"),
        with_pods(zone("c", "north"), &[labelled("noisy", json!({}))]),
    ];
    let p = pod(json!({"spec": {"affinity": {
        "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "podAffinityTerm": term("cache", "zone")}]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "podAffinityTerm": term("noisy", "zone")}]}
    }}}));
    // Raw: a 50, b 0, c -50 → min-max normalized.
    assert_eq!(score_all(&InterPodAffinity, &p, &nodes), vec![100, 50, 0]);
}

#[test]
fn removing_a_victim_updates_the_counts() {
    let db = labelled("db", json!({}));
    let nodes = [with_pods(zone("a", "east"), std::slice::from_ref(&db))];
    let cache = crate::scheduler::plugins::testing::cache_of(&nodes);
    let p = PodInfo::new(Arc::new(pod(required(
        "podAntiAffinity",
        vec![term("db", "zone")],
    ))));
    let mut state = CycleState::default();
    InterPodAffinity.pre_filter(&p, &cache, &mut state);
    let node = cache.node("a").unwrap();
    assert!(InterPodAffinity.filter(&p, &state, node).is_err());
    let victim = PodInfo::new(Arc::new(db));
    InterPodAffinity.remove_pod(&mut state, &p, &victim, node);
    assert!(InterPodAffinity.filter(&p, &state, node).is_ok());
    InterPodAffinity.add_pod(&mut state, &p, &victim, node);
    assert!(InterPodAffinity.filter(&p, &state, node).is_err());
}
