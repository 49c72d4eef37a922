//! Scheduler tests: the FailedScheduling message, the synchronous core (assume, bind results,
//! a property test that no node is ever over-committed), and the whole scheduler over the
//! in-memory registry (binding, events, conditions, preemption).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::algorithm::Profile;
use super::engine::{Core, Decision};
use super::plugins::testing::{merge, node, pod_req};
use super::*;
use crate::apiserver::registry::memstore::MemStore;
use crate::apiserver::registry::{DeleteParams, ListParams, Registry};

fn core_with(nodes: Vec<Node>) -> Core {
    let mut core = Core::new(Profile::default());
    core.nodes_reset(nodes, Instant::now());
    core
}

fn tainted(name: &str) -> Node {
    node(
        name,
        json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
    )
    .node
}

fn message_of(d: Decision) -> String {
    match d {
        Decision::Unschedulable { message, .. } => message,
        Decision::Bind { node, .. } => panic!("bound to {node}"),
    }
}

#[test]
fn failed_scheduling_message_like_upstream() {
    let small = node("small", json!({"status": {"allocatable": {"cpu": "1"}}})).node;
    let mut core = core_with(vec![small, tainted("cp1"), tainted("cp2")]);
    let now = Instant::now();
    core.pod_applied(pod_req("2", "", json!({})), now);
    assert_eq!(
        message_of(core.schedule_one(now).unwrap()),
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint \
         {node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: \
         3 Preemption is not helpful for scheduling."
    );
    // Room that only evicting equal-priority pods would make: no victims.
    let mut core = core_with(vec![node("a", json!({})).node]);
    let mut busy = pod_req("3", "", json!({}));
    busy.spec.as_mut().unwrap().node_name = Some("a".into());
    core.pod_applied(busy, now);
    core.pod_applied(pod_req("2", "", json!({})), now);
    assert_eq!(
        message_of(core.schedule_one(now).unwrap()),
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: \
         1 No preemption victims found for incoming pod."
    );
    let never = pod_req("2", "", json!({"spec": {"preemptionPolicy": "Never"}}));
    core.pod_applied(never, now);
    assert!(
        message_of(core.schedule_one(now).unwrap())
            .ends_with("preemption: not eligible due to preemptionPolicy=Never.")
    );
    let mut empty = Core::new(Profile::default());
    empty.nodes_reset(vec![], now);
    empty.pod_applied(pod_req("", "", json!({})), now);
    assert_eq!(
        message_of(empty.schedule_one(now).unwrap()),
        "no nodes available to schedule pods"
    );
}

#[test]
fn assumed_pods_hold_their_room_until_the_binding_fails() {
    let mut core = core_with(vec![node("a", json!({})).node]);
    let now = Instant::now();
    let first = pod_req("3", "", json!({}));
    let uid = first.metadata.uid.clone().unwrap();
    core.pod_applied(first, now);
    core.pod_applied(pod_req("3", "", json!({})), now);
    assert!(matches!(
        core.schedule_one(now),
        Some(Decision::Bind { .. })
    ));
    // The second cannot have the room the first is assumed to take.
    assert!(matches!(
        core.schedule_one(now),
        Some(Decision::Unschedulable { .. })
    ));
    // The first binding fails: its room is free again and it waits in back-off.
    core.bind_done(&uid, false, now);
    assert_eq!(core.cache.node("a").unwrap().requested.cpu_millis, 0);
    let later = now + Duration::from_secs(2);
    assert!(matches!(
        core.schedule_one(later),
        Some(Decision::Bind { .. })
    ));
}

/// What the simulated API server has bound: uid → (node, cpu, memory).
type Bound = HashMap<String, (String, i64, i64)>;

fn check_capacity(nodes: &[(i64, i64, i64)], bound: &Bound) -> Result<(), TestCaseError> {
    for (i, (cpu, mem, pods)) in nodes.iter().enumerate() {
        let name = format!("n{i}");
        let on: Vec<_> = bound.values().filter(|(n, _, _)| *n == name).collect();
        let used_cpu: i64 = on.iter().map(|(_, c, _)| c).sum();
        let used_mem: i64 = on.iter().map(|(_, _, m)| m).sum();
        prop_assert!(used_cpu <= *cpu, "{name}: cpu {used_cpu} > {cpu}");
        prop_assert!(used_mem <= *mem, "{name}: memory {used_mem} > {mem}");
        prop_assert!(
            on.len() as i64 <= *pods,
            "{name}: {} pods > {pods}",
            on.len()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Pods scheduled while earlier bindings are still in flight, finishing in any order, some
    /// failing, with watch confirmations arriving late: no node ever holds more than it has,
    /// and at the end every pod left over really fits nowhere.
    #[test]
    fn concurrent_binds_never_overcommit(
        nodes in prop::collection::vec((500i64..4000, 256i64..4096, 2i64..8), 1..5),
        pods in prop::collection::vec((0i64..1500, 0i64..1024), 1..40),
        ops in prop::collection::vec((0u8..4, any::<prop::sample::Index>()), 0..200),
    ) {
        let node_objs: Vec<Node> = nodes.iter().enumerate().map(|(i, (cpu, mem, max))| {
            node(&format!("n{i}"), json!({"status": {"allocatable": {
                "cpu": format!("{cpu}m"), "memory": format!("{mem}Mi"), "pods": max.to_string()}}})).node
        }).collect();
        let caps: Vec<(i64, i64, i64)> = nodes.iter().map(|(c, m, p)| (*c, m * 1024 * 1024, *p)).collect();
        let mut core = core_with(node_objs);
        let mut now = Instant::now();
        let mut all: HashMap<String, Pod> = HashMap::new();
        for (cpu, mem) in &pods {
            let p = pod_req(&format!("{cpu}m"), &format!("{mem}Mi"), json!({}));
            all.insert(p.metadata.uid.clone().unwrap(), p.clone());
            core.pod_applied(p, now);
        }
        let mut in_flight: Vec<(Arc<Pod>, String)> = Vec::new();
        let mut unconfirmed: Vec<Pod> = Vec::new();
        let mut bound: Bound = HashMap::new();
        let finish = |core: &mut Core, bound: &mut Bound, unconfirmed: &mut Vec<Pod>,
                      (pod, node): (Arc<Pod>, String), ok: bool, now: Instant| {
            let uid = pod.metadata.uid.clone().unwrap();
            if ok {
                let r = resources::pod_requests(&pod);
                bound.insert(uid.clone(), (node.clone(), r.cpu_millis, r.memory));
                let mut p = (*pod).clone();
                p.spec.as_mut().unwrap().node_name = Some(node);
                unconfirmed.push(p);
            }
            core.bind_done(&uid, ok, now);
        };
        for (op, idx) in ops {
            now += Duration::from_millis(300);
            match op {
                0 => {
                    if let Some(Decision::Bind { pod, node }) = core.schedule_one(now) {
                        in_flight.push((pod, node));
                    }
                }
                1 | 2 if !in_flight.is_empty() => {
                    let b = in_flight.remove(idx.index(in_flight.len()));
                    finish(&mut core, &mut bound, &mut unconfirmed, b, op == 1, now);
                }
                3 if !unconfirmed.is_empty() => {
                    let p = unconfirmed.remove(idx.index(unconfirmed.len()));
                    core.pod_applied(p, now);
                }
                _ => {}
            }
            check_capacity(&caps, &bound)?;
        }
        // Let everything settle: bindings succeed, confirmations arrive, back-offs pass.
        for _ in 0..(pods.len() + 2) {
            for b in std::mem::take(&mut in_flight) {
                finish(&mut core, &mut bound, &mut unconfirmed, b, true, now);
            }
            for p in std::mem::take(&mut unconfirmed) {
                core.pod_applied(p, now);
            }
            now += queue::MAX_UNSCHEDULABLE;
            while let Some(d) = core.schedule_one(now) {
                if let Decision::Bind { pod, node } = d {
                    in_flight.push((pod, node));
                }
            }
            check_capacity(&caps, &bound)?;
        }
        prop_assert!(in_flight.is_empty());
        for (uid, p) in &all {
            if bound.contains_key(uid) {
                continue;
            }
            let r = resources::pod_requests(p);
            for (i, (cpu, mem, max)) in caps.iter().enumerate() {
                let name = format!("n{i}");
                let on: Vec<_> = bound.values().filter(|(n, _, _)| *n == name).collect();
                let free_cpu = cpu - on.iter().map(|(_, c, _)| c).sum::<i64>();
                let free_mem = mem - on.iter().map(|(_, _, m)| m).sum::<i64>();
                let fits = (r.cpu_millis == 0 || r.cpu_millis <= free_cpu)
                    && (r.memory == 0 || r.memory <= free_mem)
                    && (on.len() as i64) < *max;
                prop_assert!(!fits, "pod {uid} was left pending but fits on {name}");
            }
        }
    }
}

// ---- the whole scheduler over the in-memory registry

async fn registry() -> Registry {
    Registry::new(Arc::new(MemStore::new())).await.unwrap()
}

async fn add_node(r: &Registry, name: &str, extra: Value) {
    let n = node(name, extra).node;
    let created = r.create(&n).await.unwrap();
    let mut with_status = created.clone();
    with_status.status = n.status.clone();
    r.replace_status(&with_status).await.unwrap();
}

async fn add_pod(r: &Registry, name: &str, cpu: &str, extra: Value) -> Pod {
    let mut p = json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": cpu}}}]}});
    merge(&mut p, extra);
    r.create(&serde_json::from_value::<Pod>(p).unwrap())
        .await
        .unwrap()
}

async fn get_pod(r: &Registry, name: &str) -> Option<Pod> {
    r.get::<Pod>(Some("default"), name).await.ok()
}

fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.node_name.clone())
}

/// Polls `check` until it gives a value or 10 s pass.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn events_for(r: &Registry, pod: &str) -> Vec<Event> {
    r.list::<Event>(Some("default"), &ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(pod))
        .collect()
}

fn reasons(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_many_pods_without_overcommitting() {
    let r = registry().await;
    for n in ["a", "b", "c"] {
        add_node(
            &r,
            n,
            json!({"status": {"allocatable": {"cpu": "1", "pods": "110"}}}),
        )
        .await;
    }
    let task = tokio::spawn(Scheduler::new(r.clone()).run());
    // 40 pods of 100m over 3 nodes of 1 cpu: 30 fit.
    let creates: Vec<_> = (0..40)
        .map(|i| {
            let r = r.clone();
            tokio::spawn(async move { add_pod(&r, &format!("p{i}"), "100m", json!({})).await })
        })
        .collect();
    for c in creates {
        c.await.unwrap();
    }
    let pods = eventually("30 pods bound", || async {
        let pods = r
            .list::<Pod>(Some("default"), &ListParams::default())
            .await
            .unwrap()
            .items;
        (pods.iter().filter(|p| node_of(p).is_some()).count() == 30).then_some(pods)
    })
    .await;
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for p in &pods {
        if let Some(n) = node_of(p) {
            *per_node.entry(n).or_default() += 1;
        }
    }
    assert_eq!(per_node.values().copied().collect::<Vec<_>>(), vec![10; 3]);
    let pending = pods.iter().find(|p| node_of(p).is_none()).unwrap();
    let name = pending.metadata.name.clone().unwrap();
    let cond = eventually("PodScheduled=False", || async {
        let p = get_pod(&r, &name).await?;
        p.status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    })
    .await;
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    let want = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are \
                available: 3 No preemption victims found for incoming pod.";
    assert_eq!(cond.message.as_deref(), Some(want));
    let events = events_for(&r, &name).await;
    assert!(
        reasons(&events).contains(&("FailedScheduling".into(), want.into())),
        "{events:?}"
    );
    let bound = pods.iter().find(|p| node_of(p).is_some()).unwrap();
    let bound_name = bound.metadata.name.clone().unwrap();
    let msg = format!(
        "Successfully assigned default/{bound_name} to {}",
        node_of(bound).unwrap()
    );
    let events = events_for(&r, &bound_name).await;
    assert!(
        reasons(&events).contains(&("Scheduled".into(), msg)),
        "{events:?}"
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preempts_lower_priority_pods() {
    let r = registry().await;
    add_node(&r, "n1", json!({"status": {"allocatable": {"cpu": "1"}}})).await;
    let pc = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": "high"}, "value": 1000});
    r.create(
        &serde_json::from_value::<k8s_openapi::api::scheduling::v1::PriorityClass>(pc).unwrap(),
    )
    .await
    .unwrap();
    let task = tokio::spawn(Scheduler::new(r.clone()).run());
    add_pod(&r, "low", "800m", json!({})).await;
    eventually("low bound", || async {
        get_pod(&r, "low").await.and_then(|p| node_of(&p))
    })
    .await;
    let high = add_pod(
        &r,
        "high",
        "500m",
        json!({"spec": {"priorityClassName": "high"}}),
    )
    .await;
    assert_eq!(high.spec.as_ref().unwrap().priority, Some(1000));
    // The victim is marked and asked to terminate; the preemptor is nominated.
    let victim = eventually("low terminating", || async {
        get_pod(&r, "low")
            .await
            .filter(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    let cond = victim
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .expect("DisruptionTarget condition");
    assert_eq!(cond.reason.as_deref(), Some("PreemptionByScheduler"));
    let nominated = eventually("nominatedNodeName", || async {
        get_pod(&r, "high").await?.status?.nominated_node_name
    })
    .await;
    assert_eq!(nominated, "n1");
    let uid = high.metadata.uid.clone().unwrap();
    let events = events_for(&r, "low").await;
    assert!(
        reasons(&events).contains(&(
            "Preempted".into(),
            format!("Preempted by pod {uid} on node n1")
        )),
        "{events:?}"
    );
    // A lower-priority newcomer does not take the room being freed.
    add_pod(&r, "sneaky", "600m", json!({})).await;
    // The kubelet finishes the victim; the preemptor lands on its nominated node.
    let force = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    r.delete::<Pod>(Some("default"), "low", &force)
        .await
        .unwrap();
    let node = eventually("high bound", || async {
        get_pod(&r, "high").await.and_then(|p| node_of(&p))
    })
    .await;
    assert_eq!(node, "n1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get_pod(&r, "sneaky").await.and_then(|p| node_of(&p)), None);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_style_pins_and_node_changes_retry() {
    let r = registry().await;
    add_node(&r, "a", json!({})).await;
    let task = tokio::spawn(Scheduler::new(r.clone()).run());
    let pin = json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}}});
    add_pod(&r, "ds", "10m", pin).await;
    let msg = eventually("FailedScheduling", || async {
        events_for(&r, "ds")
            .await
            .into_iter()
            .find_map(|e| e.message)
    })
    .await;
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
    // The node it is pinned to appears: the pod is retried at once, not after a timeout.
    add_node(&r, "b", json!({})).await;
    let node = eventually("ds bound", || async {
        get_pod(&r, "ds").await.and_then(|p| node_of(&p))
    })
    .await;
    assert_eq!(node, "b");
    task.abort();
}

/// Cycle throughput of the core alone (no I/O): `cargo test --release -p skiff-control --lib
/// scheduler::tests::cycle_throughput -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn cycle_throughput() {
    let nodes: Vec<Node> = (0..5000)
        .map(|i| {
            node(
                &format!("n{i}"),
                json!({"metadata": {"labels": {"zone": format!("z{}", i % 10)}}}),
            )
            .node
        })
        .collect();
    for (label, extra) in [
        ("plain", json!({})),
        (
            "anti-affinity",
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"affinity": {"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"app": "web"}},
                "topologyKey": "kubernetes.io/hostname"}]}}}}),
        ),
        (
            "spread",
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [{
                "maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}}}]}}),
        ),
    ] {
        let mut core = core_with(nodes.clone());
        let now = Instant::now();
        let count = 3000;
        for _ in 0..count {
            core.pod_applied(pod_req("100m", "", extra.clone()), now);
        }
        let start = Instant::now();
        let mut bound = 0;
        while let Some(d) = core.schedule_one(now) {
            if let Decision::Bind { pod, node } = d {
                let uid = pod.metadata.uid.clone().unwrap();
                core.bind_done(&uid, true, now);
                let mut p = (*pod).clone();
                p.spec.as_mut().unwrap().node_name = Some(node);
                core.pod_applied(p, now);
                bound += 1;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{label}: {bound}/{count} pods over 5000 nodes in {secs:.2}s = {:.0} pods/s",
            f64::from(bound) / secs
        );
    }
}
