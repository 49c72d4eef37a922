//! EndpointSlice reconcile against the registry over the in-memory store.

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::testutil::*;
use super::*;
use crate::apiserver::registry::PatchType;

fn tuple(a: &str, ready: bool, serving: bool, term: bool) -> (String, bool, bool, bool) {
    (a.to_string(), ready, serving, term)
}

#[tokio::test]
async fn slices_follow_pods_becoming_ready_unready_and_terminating() {
    let ctx = ctx(vec![]).await;
    let r = &ctx.registry;
    let svc = web_service(r, "web", "web", json!(8080)).await;
    ready_pod(r, "a", "web", "10.42.0.2").await;
    ready_pod(r, "b", "web", "10.42.0.3").await;
    // No IP yet: left out. Another app: left out.
    pod_with_ports(r, "pending", "web", json!([])).await;
    ready_pod(r, "other", "api", "10.42.0.9").await;
    sync(&ctx, "web").await;

    let s = slices(r, "web").await;
    assert_eq!(s.len(), 1);
    let slice = &s[0];
    assert!(slice.metadata.name.as_ref().unwrap().starts_with("web-"));
    assert_eq!(slice.address_type, "IPv4");
    let labels = slice.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[SERVICE_NAME], "web");
    assert_eq!(labels[MANAGED_BY], SLICE_CONTROLLER);
    assert_eq!(labels["team"], "a");
    assert!(!labels.contains_key(HEADLESS));
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Service", "web")
    );
    assert_eq!(owner.uid, svc.metadata.uid.clone().unwrap());
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
    assert!(
        slice
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key(TRIGGER_TIME)
    );
    let port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("http"), Some(8080), Some("TCP"))
    );
    let e = &slice.endpoints[0];
    assert_eq!(e.node_name.as_deref(), Some("n1"));
    let target = e.target_ref.as_ref().unwrap();
    assert_eq!(
        (target.kind.as_deref(), target.name.as_deref()),
        (Some("Pod"), Some("a"))
    );
    assert!(target.uid.is_some());
    assert_eq!(
        conditions(r, "web").await,
        [
            tuple("10.42.0.2", true, true, false),
            tuple("10.42.0.3", true, true, false)
        ]
    );

    // b turns unready: updated in place.
    set_status(r, "b", "10.42.0.3", false).await;
    sync(&ctx, "web").await;
    assert_eq!(
        conditions(r, "web").await,
        [
            tuple("10.42.0.2", true, true, false),
            tuple("10.42.0.3", false, false, false)
        ]
    );
    assert_eq!(names(&slices(r, "web").await), names(&s));

    // a is being deleted (bound: graceful): kept, not ready, still serving.
    r.delete::<Pod>(Some("default"), "a", &Default::default())
        .await
        .unwrap();
    sync(&ctx, "web").await;
    assert_eq!(
        conditions(r, "web").await,
        [
            tuple("10.42.0.2", false, true, true),
            tuple("10.42.0.3", false, false, false)
        ]
    );
    // A pass with nothing new writes nothing.
    let before = slices(r, "web").await;
    sync(&ctx, "web").await;
    assert_eq!(slices(r, "web").await, before);
}

#[tokio::test]
async fn publish_not_ready_addresses_makes_every_endpoint_ready() {
    let ctx = ctx(vec![]).await;
    let r = &ctx.registry;
    service(
        r,
        "db",
        json!({"selector": {"app": "db"}, "clusterIP": "None", "publishNotReadyAddresses": true,
            "ports": [{"port": 5432}]}),
    )
    .await;
    pod_with_ports(r, "db-0", "db", json!([])).await;
    run_pod(r, "db-0", "n1", "10.42.0.7", false).await;
    sync(&ctx, "db").await;
    assert_eq!(
        conditions(r, "db").await,
        [tuple("10.42.0.7", true, true, false)]
    );
    let s = slices(r, "db").await;
    assert_eq!(s[0].metadata.labels.as_ref().unwrap()[HEADLESS], "");
    let ep = endpoints(r, "db").await.unwrap();
    let subset = &ep.subsets.unwrap()[0];
    assert_eq!(subset.addresses.as_ref().unwrap()[0].ip, "10.42.0.7");
    assert!(subset.not_ready_addresses.is_none());
}

#[tokio::test]
async fn named_target_ports_resolve_per_pod_into_separate_slices() {
    let ctx = ctx(vec![]).await;
    let r = &ctx.registry;
    web_service(r, "web", "web", json!("http")).await;
    pod_with_ports(
        r,
        "a",
        "web",
        json!([{"name": "http", "containerPort": 8080}]),
    )
    .await;
    pod_with_ports(
        r,
        "b",
        "web",
        json!([{"name": "http", "containerPort": 9090}]),
    )
    .await;
    pod_with_ports(
        r,
        "c",
        "web",
        json!([{"name": "http", "containerPort": 8080}]),
    )
    .await;
    // Same name, other protocol: does not resolve.
    pod_with_ports(
        r,
        "d",
        "web",
        json!([{"name": "http", "containerPort": 7070, "protocol": "UDP"}]),
    )
    .await;
    for (p, ip) in [
        ("a", "10.42.0.2"),
        ("b", "10.42.0.3"),
        ("c", "10.42.0.4"),
        ("d", "10.42.0.5"),
    ] {
        run_pod(r, p, "n1", ip, true).await;
    }
    sync(&ctx, "web").await;
    let mut by_port: Vec<(Option<i32>, Vec<String>)> = slices(r, "web")
        .await
        .into_iter()
        .map(|s| {
            let port = s
                .ports
                .as_ref()
                .and_then(|p| p.first())
                .and_then(|p| p.port);
            let mut addrs: Vec<String> =
                s.endpoints.iter().map(|e| e.addresses[0].clone()).collect();
            addrs.sort();
            (port, addrs)
        })
        .collect();
    by_port.sort();
    assert_eq!(
        by_port,
        [
            (None, vec!["10.42.0.5".to_string()]),
            (
                Some(8080),
                vec!["10.42.0.2".to_string(), "10.42.0.4".to_string()]
            ),
            (Some(9090), vec!["10.42.0.3".to_string()]),
        ]
    );
}

#[tokio::test]
async fn many_pods_fill_slices_of_at_most_100_and_shrink_in_place() {
    let ctx = ctx(vec![]).await;
    let r = &ctx.registry;
    web_service(r, "web", "web", json!(8080)).await;
    for i in 0..250 {
        let name = format!("p{i:03}");
        ready_pod(
            r,
            &name,
            "web",
            &format!("10.42.{}.{}", i / 200, i % 200 + 2),
        )
        .await;
    }
    sync(&ctx, "web").await;
    let s = slices(r, "web").await;
    let mut sizes: Vec<usize> = s.iter().map(|s| s.endpoints.len()).collect();
    sizes.sort();
    assert_eq!(sizes, [50, 100, 100]);
    assert_eq!(all_endpoints(r, "web").await.len(), 250);

    // 60 pods go away: the same slices are updated, none created.
    for i in 0..60 {
        r.delete::<Pod>(
            Some("default"),
            &format!("p{i:03}"),
            &crate::apiserver::registry::DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    sync(&ctx, "web").await;
    let after = slices(r, "web").await;
    assert_eq!(all_endpoints(r, "web").await.len(), 190);
    assert!(after.iter().all(|s| s.endpoints.len() <= 100));
    assert!(names(&after).iter().all(|n| names(&s).contains(n)));
}

#[tokio::test]
async fn selector_change_moves_the_endpoints_reusing_the_slice() {
    let ctx = ctx(vec![]).await;
    let r = &ctx.registry;
    web_service(r, "web", "web", json!(8080)).await;
    ready_pod(r, "w1", "web", "10.42.0.2").await;
    ready_pod(r, "w2", "web", "10.42.0.3").await;
    ready_pod(r, "a1", "api", "10.42.0.4").await;
    sync(&ctx, "web").await;
    let before = slices(r, "web").await;
    r.patch::<Service>(
        Some("default"),
        "web",
        PatchType::Merge,
        &json!({"spec": {"selector": {"app": "api"}}}),
    )
    .await
    .unwrap();
    sync(&ctx, "web").await;
    let after = slices(r, "web").await;
    assert_eq!(names(&after), names(&before));
    let addrs: Vec<String> = all_endpoints(r, "web")
        .await
        .into_iter()
        .map(|e| e.addresses[0].clone())
        .collect();
    assert_eq!(addrs, ["10.42.0.4"]);
    let ep = endpoints(r, "web").await.unwrap();
    let ips: Vec<String> = ep.subsets.unwrap()[0]
        .addresses
        .clone()
        .unwrap()
        .into_iter()
        .map(|a| a.ip)
        .collect();
    assert_eq!(ips, ["10.42.0.4"]);
}

#[tokio::test]
async fn no_pods_leave_one_empty_placeholder_slice() {
    let ctx = ctx(vec![]).await;
    let r = &ctx.registry;
    web_service(r, "web", "web", json!(8080)).await;
    sync(&ctx, "web").await;
    let s = slices(r, "web").await;
    assert_eq!(s.len(), 1);
    assert!(s[0].endpoints.is_empty());
    ready_pod(r, "w1", "web", "10.42.0.2").await;
    sync(&ctx, "web").await;
    let s2 = slices(r, "web").await;
    assert_eq!(names(&s2), names(&s), "the placeholder is reused");
    assert_eq!(s2[0].endpoints.len(), 1);
    assert_eq!(s2[0].ports.as_ref().unwrap()[0].port, Some(8080));
    r.delete::<Pod>(
        Some("default"),
        "w1",
        &crate::apiserver::registry::DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    sync(&ctx, "web").await;
    let s3 = slices(r, "web").await;
    assert_eq!(names(&s3), names(&s));
    assert!(s3[0].endpoints.is_empty() && s3[0].ports.is_none());
    assert!(endpoints(r, "web").await.unwrap().subsets.is_none());
}

#[tokio::test]
async fn service_deletion_removes_slices_and_endpoints() {
    let ctx = ctx(vec![]).await;
    let r = &ctx.registry;
    web_service(r, "web", "web", json!(8080)).await;
    ready_pod(r, "w1", "web", "10.42.0.2").await;
    sync(&ctx, "web").await;
    assert_eq!(slices(r, "web").await.len(), 1);
    assert!(endpoints(r, "web").await.is_some());
    r.delete::<Service>(Some("default"), "web", &Default::default())
        .await
        .unwrap();
    sync(&ctx, "web").await;
    assert!(slices(r, "web").await.is_empty());
    assert!(endpoints(r, "web").await.is_none());
}

#[tokio::test]
async fn services_without_selector_and_external_names_get_nothing() {
    let ctx = ctx(vec![]).await;
    let r = &ctx.registry;
    service(r, "manual", json!({"ports": [{"port": 80}]})).await;
    let mine: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "manual-1", "namespace": "default",
            "labels": {SERVICE_NAME: "manual", MANAGED_BY: "someone-else"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.168.1.5"]}],
    }))
    .unwrap();
    r.create(&mine).await.unwrap();
    sync(&ctx, "manual").await;
    assert_eq!(names(&slices(r, "manual").await), ["manual-1"]);
    assert!(endpoints(r, "manual").await.is_none());

    service(
        r,
        "ext",
        json!({"type": "ExternalName", "externalName": "example.com", "selector": {"app": "web"}}),
    )
    .await;
    ready_pod(r, "w1", "web", "10.42.0.2").await;
    sync(&ctx, "ext").await;
    assert!(slices(r, "ext").await.is_empty());
}

#[tokio::test]
async fn zones_and_hostnames_come_from_nodes_and_subdomains() {
    let node: Node =
        serde_json::from_value(json!({"metadata": {"name": "n1", "labels": {ZONE: "zone-a"}}}))
            .unwrap();
    let ctx = ctx(vec![node]).await;
    let r = &ctx.registry;
    web_service(r, "web", "web", json!(8080)).await;
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "w1", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"hostname": "w1", "subdomain": "web", "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    r.create(&p).await.unwrap();
    run_pod(r, "w1", "n1", "10.42.0.2", true).await;
    sync(&ctx, "web").await;
    let e = &all_endpoints(r, "web").await[0];
    assert_eq!(e.zone.as_deref(), Some("zone-a"));
    assert_eq!(e.hostname.as_deref(), Some("w1"));
    let ep = endpoints(r, "web").await.unwrap();
    let a = &ep.subsets.unwrap()[0].addresses.clone().unwrap()[0];
    assert_eq!(
        (a.hostname.as_deref(), a.node_name.as_deref()),
        (Some("w1"), Some("n1"))
    );
}

#[tokio::test]
async fn pods_map_to_the_services_they_match_now_and_matched_before() {
    let (reader, mut writer) = crate::controllers::runtime::reflector::store::<Service>();
    let svc = |name: &str, app: &str| -> Service {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": app}}}))
        .unwrap()
    };
    writer.apply(&crate::controllers::runtime::Event::Restarted(vec![
        svc("web", "web"),
        svc("api", "api"),
        serde_json::from_value(json!({"metadata": {"name": "manual", "namespace": "default"}}))
            .unwrap(),
    ]));
    let map = pod_mapper(reader);
    let pod = |app: &str, ns: &str| -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": ns, "labels": {"app": app}}}),
        )
        .unwrap()
    };
    use crate::controllers::runtime::Event::{Apply, Delete, Restarted};
    let key = |n: &str| ObjectKey::new(Some("default"), n);
    assert_eq!(map(&Apply(pod("web", "default"))), [key("web")]);
    // Relabelled: the old service learns it too.
    assert_eq!(map(&Apply(pod("api", "default"))), [key("api"), key("web")]);
    assert_eq!(map(&Apply(pod("api", "default"))), [key("api")]);
    assert!(map(&Apply(pod("web", "other"))).is_empty());
    // Deleted with other labels than last seen: both services hear of it.
    assert_eq!(
        map(&Delete(pod("web", "default"))),
        [key("api"), key("web")]
    );
    assert_eq!(map(&Delete(pod("web", "default"))), [key("web")]);
    // A re-list names the services of pods that vanished meanwhile.
    map(&Apply(pod("api", "default")));
    assert_eq!(map(&Restarted(vec![])), [key("api")]);
    assert!(map(&Restarted(vec![])).is_empty());
    // A service created after the pod's last event still hears that the pod left it.
    assert!(map(&Apply(pod("db", "default"))).is_empty());
    writer.apply(&Apply(svc("db", "db")));
    assert_eq!(map(&Apply(pod("web", "default"))), [key("db"), key("web")]);
}

#[tokio::test]
async fn the_pod_cache_selects_like_the_api() {
    let mut ctx = ctx(vec![]).await;
    let r = ctx.registry.clone();
    web_service(&r, "web", "web", json!(8080)).await;
    ready_pod(&r, "w1", "web", "10.42.0.2").await;
    ready_pod(&r, "a1", "api", "10.42.0.3").await;
    let elsewhere: Pod = serde_json::from_value(json!({
        "metadata": {"name": "w2", "namespace": "kube-system", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    r.create(&elsewhere).await.unwrap();
    let status = json!({"status": {"phase": "Running", "podIP": "10.42.0.4", "conditions": [
        {"type": "Ready", "status": "True"}]}});
    r.patch_status::<Pod>(Some("kube-system"), "w2", PatchType::Merge, &status)
        .await
        .unwrap();
    let all = r
        .list::<Pod>(None, &Default::default())
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 3);
    let (reader, mut writer) = crate::controllers::runtime::reflector::store::<Pod>();
    writer.apply(&crate::controllers::runtime::Event::Restarted(all));
    ctx.pods = Some(reader);
    sync(&ctx, "web").await;
    assert_eq!(
        conditions(&r, "web").await,
        [tuple("10.42.0.2", true, true, false)]
    );
}
