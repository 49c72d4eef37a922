//! Node lifecycle against the registry over the in-memory store; time is passed in, so the
//! grace period and tolerationSeconds are stepped through without sleeping.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use serde_json::json;

use super::*;
use crate::apiserver::registry::ListParams;
use crate::controllers::testutil::registry;

const GRACE: Duration = Duration::from_secs(40);

fn config() -> NodeLifecycleConfig {
    NodeLifecycleConfig {
        grace_period: GRACE,
        monitor_period: Duration::from_secs(5),
    }
}

/// Now, in whole seconds (metav1.Time has second precision on the wire).
fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap()
}

fn secs(s: i64) -> SignedDuration {
    SignedDuration::from_secs(s)
}

/// What the agent does: renews its Lease and posts a Ready status at `at`.
async fn heartbeat(r: &Registry, at: Timestamp) {
    let mut node = r.get::<Node>(None, "n1").await.unwrap();
    let stamp = json!(at.to_string());
    node.status = Some(
        serde_json::from_value(json!({"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "lastHeartbeatTime": stamp, "lastTransitionTime": stamp},
            {"type": "MemoryPressure", "status": "False",
             "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
        ]}))
        .unwrap(),
    );
    r.replace_status::<Node>(&node).await.unwrap();
    let lease = match r.get::<Lease>(Some(LEASE_NAMESPACE), "n1").await {
        Ok(l) => l,
        Err(_) => r
            .create(&Lease {
                metadata: ObjectMeta {
                    name: Some("n1".into()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec::default()),
            })
            .await
            .unwrap(),
    };
    let mut lease = lease;
    lease.spec.as_mut().unwrap().renew_time = Some(MicroTime(at));
    r.replace::<Lease>(&lease).await.unwrap();
}

async fn pod(r: &Registry, name: &str, tolerations: serde_json::Value) {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "tolerations": tolerations}
    }))
    .unwrap();
    r.create(&p).await.unwrap();
    r.bind_pod("default", name, "n1").await.unwrap();
}

async fn terminating(r: &Registry, name: &str) -> bool {
    match r.get::<Pod>(Some("default"), name).await {
        Ok(p) => p.metadata.deletion_timestamp.is_some(),
        Err(_) => true,
    }
}

fn taint_keys(n: &Node) -> Vec<(String, String)> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.effect))
        .collect()
}

async fn events(r: &Registry, reason: &str) -> Vec<Event> {
    r.list::<Event>(Some("default"), &ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

#[tokio::test]
async fn stale_node_goes_unknown_is_tainted_evicts_and_recovers() {
    let r = registry().await;
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    r.create(&node).await.unwrap();
    let t0 = now();
    heartbeat(&r, t0).await;
    // `quick` tolerates unreachable for 0 s, `slow` has the admission defaults (300 s),
    // `stay` tolerates it for ever.
    pod(
        &r,
        "quick",
        json!([{"key": UNREACHABLE_TAINT, "operator": "Exists",
        "effect": "NoExecute", "tolerationSeconds": 0}]),
    )
    .await;
    pod(&r, "slow", json!([])).await;
    pod(
        &r,
        "stay",
        json!([{"key": UNREACHABLE_TAINT, "operator": "Exists"}]),
    )
    .await;
    let key = ObjectKey::new(None, "n1");
    let cfg = config();

    // Within the grace period nothing happens; it looks again when the period would end.
    let action = reconcile(&r, &cfg, &key, Timestamp::UNIX_EPOCH, t0 + secs(10))
        .await
        .unwrap();
    assert_eq!(action, Action::Requeue(Duration::from_secs(30)));
    let n = r.get::<Node>(None, "n1").await.unwrap();
    assert_eq!(ready_condition(&n).unwrap().status, "True");
    assert!(taint_keys(&n).is_empty());

    // Past it: every reported condition is Unknown, the node is tainted unreachable.
    let t1 = t0 + secs(41);
    reconcile(&r, &cfg, &key, Timestamp::UNIX_EPOCH, t1)
        .await
        .unwrap();
    let n = r.get::<Node>(None, "n1").await.unwrap();
    for c in n.status.as_ref().unwrap().conditions.as_ref().unwrap() {
        assert_eq!(c.status, "Unknown", "{}", c.type_);
        assert_eq!(c.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            c.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(c.last_heartbeat_time.as_ref().unwrap().0, t0);
        assert_eq!(c.last_transition_time.as_ref().unwrap().0, t1);
    }
    assert_eq!(
        taint_keys(&n),
        vec![
            (UNREACHABLE_TAINT.to_string(), "NoSchedule".to_string()),
            (UNREACHABLE_TAINT.to_string(), "NoExecute".to_string()),
        ]
    );
    assert_eq!(events(&r, "NodeNotReady").await.len(), 1);
    assert!(terminating(&r, "quick").await);
    assert!(!terminating(&r, "slow").await);
    assert!(!terminating(&r, "stay").await);
    assert_eq!(events(&r, "TaintManagerEviction").await.len(), 1);

    // A second look changes nothing (no second transition, no second event).
    reconcile(&r, &cfg, &key, Timestamp::UNIX_EPOCH, t1 + secs(5))
        .await
        .unwrap();
    let again = r.get::<Node>(None, "n1").await.unwrap();
    assert_eq!(
        ready_condition(&again).unwrap().last_transition_time,
        ready_condition(&n).unwrap().last_transition_time
    );
    assert_eq!(events(&r, "NodeNotReady").await.len(), 1);

    // `slow` goes once its 300 s have passed since the taint, not a second before.
    reconcile(&r, &cfg, &key, Timestamp::UNIX_EPOCH, t1 + secs(299))
        .await
        .unwrap();
    assert!(!terminating(&r, "slow").await);
    reconcile(&r, &cfg, &key, Timestamp::UNIX_EPOCH, t1 + secs(300))
        .await
        .unwrap();
    assert!(terminating(&r, "slow").await);
    assert!(!terminating(&r, "stay").await);

    // The agent comes back: Ready again, the taints go, other pods stay.
    let t2 = t1 + secs(400);
    heartbeat(&r, t2).await;
    reconcile(&r, &cfg, &key, Timestamp::UNIX_EPOCH, t2 + secs(1))
        .await
        .unwrap();
    let n = r.get::<Node>(None, "n1").await.unwrap();
    assert_eq!(ready_condition(&n).unwrap().status, "True");
    assert!(taint_keys(&n).is_empty());
    assert!(!terminating(&r, "stay").await);
}

#[tokio::test]
async fn silence_counts_from_the_controllers_start() {
    let r = registry().await;
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    r.create(&node).await.unwrap();
    let t0 = now();
    heartbeat(&r, t0).await;
    let key = ObjectKey::new(None, "n1");
    // The control plane was down for 10 minutes and just came back.
    let started = t0 + secs(600);
    reconcile(&r, &config(), &key, started, started + secs(39))
        .await
        .unwrap();
    let n = r.get::<Node>(None, "n1").await.unwrap();
    assert_eq!(ready_condition(&n).unwrap().status, "True");
    reconcile(&r, &config(), &key, started, started + secs(40))
        .await
        .unwrap();
    let n = r.get::<Node>(None, "n1").await.unwrap();
    assert_eq!(ready_condition(&n).unwrap().status, "Unknown");
}

#[tokio::test]
async fn not_ready_node_gets_not_ready_taint_and_keeps_user_taints() {
    let r = registry().await;
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "n1"},
        "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}
    }))
    .unwrap();
    r.create(&node).await.unwrap();
    let t0 = now();
    heartbeat(&r, t0).await;
    let mut n = r.get::<Node>(None, "n1").await.unwrap();
    n.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
    r.replace_status::<Node>(&n).await.unwrap();
    reconcile(
        &r,
        &config(),
        &ObjectKey::new(None, "n1"),
        Timestamp::UNIX_EPOCH,
        t0 + secs(1),
    )
    .await
    .unwrap();
    let n = r.get::<Node>(None, "n1").await.unwrap();
    assert_eq!(
        ready_condition(&n).unwrap().status,
        "False",
        "fresh: not Unknown"
    );
    assert_eq!(
        taint_keys(&n),
        vec![
            ("dedicated".to_string(), "NoSchedule".to_string()),
            (NOT_READY_TAINT.to_string(), "NoSchedule".to_string()),
            (NOT_READY_TAINT.to_string(), "NoExecute".to_string()),
        ]
    );
}

/// The controller as `run_all` starts it, in real time with a short grace period.
#[tokio::test]
async fn running_controller_marks_a_silent_node() {
    let r = registry().await;
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    r.create(&node).await.unwrap();
    heartbeat(&r, Timestamp::now()).await;
    let cfg = NodeLifecycleConfig {
        grace_period: Duration::from_secs(1),
        monitor_period: Duration::from_millis(200),
    };
    let task = tokio::spawn(run(r.clone(), cfg));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = r.get::<Node>(None, "n1").await.unwrap();
        if taint_keys(&n).len() == 2 {
            assert_eq!(ready_condition(&n).unwrap().status, "Unknown");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node never became Unknown"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Heartbeats resume: the node's status change brings the taints off.
    heartbeat(&r, Timestamp::now()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = r.get::<Node>(None, "n1").await.unwrap();
        if taint_keys(&n).is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "taints stayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
}

#[tokio::test]
async fn pods_of_a_silent_node_are_marked_not_ready() {
    let r = registry().await;
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    r.create(&node).await.unwrap();
    let t0 = now();
    heartbeat(&r, t0).await;
    pod(
        &r,
        "web",
        json!([{"key": UNREACHABLE_TAINT, "operator": "Exists"}]),
    )
    .await;
    pod(
        &r,
        "starting",
        json!([{"key": UNREACHABLE_TAINT, "operator": "Exists"}]),
    )
    .await;
    let ready = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}
    ]}});
    r.patch_status::<Pod>(
        Some("default"),
        "web",
        crate::apiserver::registry::PatchType::Merge,
        &ready,
    )
    .await
    .unwrap();
    let key = ObjectKey::new(None, "n1");
    let t1 = t0 + secs(41);
    reconcile(&r, &config(), &key, Timestamp::UNIX_EPOCH, t1)
        .await
        .unwrap();
    let web = r.get::<Pod>(Some("default"), "web").await.unwrap();
    let cond = web
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .cloned()
        .unwrap();
    assert_eq!(cond.status, "False");
    assert_eq!(cond.reason.as_deref(), Some("NodeNotReady"));
    assert_eq!(cond.last_transition_time.unwrap().0, t1);
    // The phase is the agent's to say; only readiness changes.
    assert_eq!(web.status.unwrap().phase.as_deref(), Some("Running"));
    // A pod that was never Ready is left alone.
    let starting = r.get::<Pod>(Some("default"), "starting").await.unwrap();
    let conds = starting
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default();
    assert!(
        conds
            .iter()
            .all(|c| c.type_ != "Ready" || c.status != "True")
    );
}
