//! Garbage collector and Namespace controller against the registry over the in-memory store.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use serde_json::json;

use super::gc::{ORPHAN_FINALIZER, reconcile_dependent};
use super::runtime::ObjectKey;
use super::testutil::*;
use super::{deployment, namespace, replicaset};
use crate::apiserver::registry::{DeleteParams, ListParams, Registry};

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Some("default"), name)
}

async fn rs_names(r: &Registry) -> Vec<String> {
    r.list::<ReplicaSet>(Some("default"), &ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|rs| rs.metadata.name)
        .collect()
}

async fn deployment_with_pods(r: &Registry) -> String {
    create_deployment(r, "web", 2, json!({})).await;
    deployment::reconcile(r, &key("web")).await.unwrap();
    let rs = rs_names(r).await.pop().unwrap();
    replicaset::reconcile(r, &key(&rs)).await.unwrap();
    assert_eq!(pods(r).await.len(), 2);
    rs
}

#[tokio::test]
async fn background_deletion_removes_replica_sets_then_pods() {
    let r = registry().await;
    let rs = deployment_with_pods(&r).await;
    // Dependents with a live owner stay.
    reconcile_dependent::<ReplicaSet>(&r, &key(&rs))
        .await
        .unwrap();
    assert_eq!(rs_names(&r).await, std::slice::from_ref(&rs));
    let params = DeleteParams {
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    r.delete::<Deployment>(Some("default"), "web", &params)
        .await
        .unwrap();
    reconcile_dependent::<ReplicaSet>(&r, &key(&rs))
        .await
        .unwrap();
    assert!(rs_names(&r).await.is_empty());
    for p in pods(&r).await {
        reconcile_dependent::<Pod>(&r, &key(p.metadata.name.as_deref().unwrap()))
            .await
            .unwrap();
    }
    assert!(pods(&r).await.is_empty(), "unbound pods go at once");
}

#[tokio::test]
async fn a_recreated_owner_with_the_same_name_does_not_save_old_dependents() {
    let r = registry().await;
    let rs = deployment_with_pods(&r).await;
    r.delete::<Deployment>(Some("default"), "web", &DeleteParams::default())
        .await
        .unwrap();
    create_deployment(&r, "web", 1, json!({})).await;
    reconcile_dependent::<ReplicaSet>(&r, &key(&rs))
        .await
        .unwrap();
    assert!(
        !rs_names(&r).await.contains(&rs),
        "uid differs: the old set is garbage"
    );
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_and_drops_the_reference() {
    let r = registry().await;
    let rs = deployment_with_pods(&r).await;
    tokio::spawn(super::gc::run(r.clone()));
    let params = DeleteParams {
        propagation_policy: Some("Orphan".into()),
        ..Default::default()
    };
    let marked = r
        .delete::<Deployment>(Some("default"), "web", &params)
        .await
        .unwrap();
    assert!(
        marked
            .metadata
            .finalizers
            .unwrap()
            .contains(&ORPHAN_FINALIZER.to_string())
    );
    let gone = async {
        loop {
            if r.get::<Deployment>(Some("default"), "web").await.is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), gone)
        .await
        .expect("deployment removed after orphaning");
    let set = r.get::<ReplicaSet>(Some("default"), &rs).await.unwrap();
    assert!(set.metadata.owner_references.unwrap_or_default().is_empty());
    assert_eq!(pods(&r).await.len(), 2, "pods stay with their set");
}

#[tokio::test]
async fn every_namespace_gets_a_default_service_account() {
    let r = registry().await;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    r.create(&ns).await.unwrap();
    for name in ["default", "team"] {
        namespace::reconcile(&r, &ObjectKey::new(None, name))
            .await
            .unwrap();
        let sa = r
            .get::<ServiceAccount>(Some(name), "default")
            .await
            .unwrap();
        assert_eq!(sa.metadata.namespace.as_deref(), Some(name));
    }
    // Idempotent.
    namespace::reconcile(&r, &ObjectKey::new(None, "team"))
        .await
        .unwrap();
}
