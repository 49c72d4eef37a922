//! The EndpointSlice and Endpoints controllers (one reconcile per Service): publish the
//! addresses of the ready, not-ready and terminating pods a Service selects as
//! `discovery.k8s.io/v1` EndpointSlices and as the legacy core/v1 Endpoints object. Services
//! without a selector are left to their users; ExternalName services get none.

pub mod apiserver;
pub mod desired;
pub mod endpoints;
pub mod slices;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::runtime::{Action, Controller, Event, ObjectKey, Reader, owner_key};
use super::{ControllerError, not_found_ok};
use crate::apiserver::registry::object::format_time;
use crate::apiserver::registry::{DeleteParams, ListParams, Registry};

pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const SLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";
pub const HEADLESS: &str = "service.kubernetes.io/headless";
pub const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
pub const ZONE: &str = "topology.kubernetes.io/zone";
/// The most endpoints in one slice (upstream's default `--max-endpoints-per-slice`).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// What one reconcile reads besides the API: the pod cache (`None`: list pods from the API),
/// the node cache (for zones) and the limits.
#[derive(Clone)]
pub struct Ctx {
    pub registry: Registry,
    pub pods: Option<Reader<Pod>>,
    pub nodes: Reader<Node>,
    pub max_per_slice: usize,
    pub max_addresses: usize,
}

impl Ctx {
    /// The pods in `key`'s namespace that `selector` matches.
    async fn selected_pods(
        &self,
        key: &ObjectKey,
        selector: &BTreeMap<String, String>,
    ) -> Result<Vec<Pod>, ControllerError> {
        if let Some(cache) = &self.pods {
            return Ok(cache
                .list()
                .iter()
                .filter(|p| p.metadata.namespace == key.namespace)
                .filter(|p| desired::selects(selector, p.metadata.labels.as_ref()))
                .map(|p| p.as_ref().clone())
                .collect());
        }
        let params = ListParams {
            label_selector: Some(desired::selector_string(selector)),
            ..Default::default()
        };
        Ok(self.registry.list::<Pod>(key.ns(), &params).await?.items)
    }

    fn zone(&self, node: &str) -> Option<String> {
        self.nodes
            .get(&ObjectKey::new(None, node))
            .and_then(|n| n.metadata.labels.as_ref()?.get(ZONE).cloned())
    }
}

/// Runs the controller forever.
pub async fn run(registry: Registry) {
    let c = Controller::new("endpointslice", registry.clone());
    let services = c.watches::<Service, _>(|s| vec![ObjectKey::of(s)]);
    c.watches::<EndpointSlice, _>(|s| owner_key(&s.metadata, "Service").into_iter().collect());
    // A deleted Endpoints object is written again; other changes wait for the next pass.
    c.watches_events::<Endpoints, _>(|ev| match ev {
        Event::Delete(e) => vec![ObjectKey::of(e)],
        _ => Vec::new(),
    });
    let nodes = c.watches::<Node, _>(|_| Vec::new());
    let pods = c.watches_events::<Pod, _>(pod_mapper(services));
    nodes.wait_ready().await;
    pods.wait_ready().await;
    let ctx = Ctx {
        registry,
        pods: Some(pods),
        nodes,
        max_per_slice: MAX_ENDPOINTS_PER_SLICE,
        max_addresses: endpoints::MAX_ENDPOINTS_ADDRESSES,
    };
    c.run(4, move |key| {
        let ctx = ctx.clone();
        async move { reconcile(&ctx, &key).await }
    })
    .await;
}

type Labels = Option<BTreeMap<String, String>>;

/// Maps pod events to every Service in the pod's namespace whose selector matches the pod's
/// labels now or at its previous event (so a relabelled or deleted pod leaves its old Services
/// too), from the Service cache.
pub fn pod_mapper(
    services: Reader<Service>,
) -> impl Fn(&Event<Pod>) -> Vec<ObjectKey> + Send + 'static {
    let last: Mutex<HashMap<ObjectKey, Labels>> = Mutex::default();
    move |ev: &Event<Pod>| {
        let all = services.list();
        let mut out: BTreeSet<ObjectKey> = BTreeSet::new();
        let mut add = |key: &ObjectKey, labels: &Labels| {
            let matching = all
                .iter()
                .filter(|s| s.metadata.namespace == key.namespace)
                .filter(|s| {
                    desired::selector(s).is_some_and(|sel| desired::selects(sel, labels.as_ref()))
                })
                .map(|s| ObjectKey::of(s.as_ref()));
            out.extend(matching);
        };
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        match ev {
            Event::Apply(pod) => {
                let key = ObjectKey::of(pod);
                add(&key, &pod.metadata.labels);
                if let Some(old) = last.insert(key.clone(), pod.metadata.labels.clone()) {
                    add(&key, &old);
                }
            }
            Event::Delete(pod) => {
                let key = ObjectKey::of(pod);
                add(&key, &pod.metadata.labels);
                if let Some(old) = last.remove(&key) {
                    add(&key, &old);
                }
            }
            Event::Restarted(pods) => {
                // Pods gone or changed while the watch was down still name their old Services.
                for (key, old) in last.drain() {
                    add(&key, &old);
                }
                for pod in pods {
                    let key = ObjectKey::of(pod);
                    add(&key, &pod.metadata.labels);
                    last.insert(key, pod.metadata.labels.clone());
                }
            }
        }
        out.into_iter().collect()
    }
}

fn managed_slices(all: Vec<EndpointSlice>, svc: &str) -> Vec<EndpointSlice> {
    all.into_iter()
        .filter(|s| slices::is_managed(s, svc))
        .collect()
}

/// Brings one Service's EndpointSlices and Endpoints in line with its pods.
pub async fn reconcile(ctx: &Ctx, key: &ObjectKey) -> Result<Action, ControllerError> {
    let registry = &ctx.registry;
    let params = ListParams {
        label_selector: Some(format!("{SERVICE_NAME}={}", key.name)),
        ..Default::default()
    };
    let existing = managed_slices(
        registry
            .list::<EndpointSlice>(key.ns(), &params)
            .await?
            .items,
        &key.name,
    );
    let svc = not_found_ok(registry.get::<Service>(key.ns(), &key.name).await)?;
    let Some(svc) = svc.filter(|s| s.metadata.deletion_timestamp.is_none()) else {
        delete_slices(registry, existing).await?;
        delete_endpoints(registry, key).await?;
        return Ok(Action::AwaitChange);
    };
    let external = svc
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_some_and(|t| t == "ExternalName");
    let Some(selector) = desired::selector(&svc).filter(|_| !external) else {
        // Users manage the endpoints of services without a selector.
        delete_slices(registry, existing).await?;
        return Ok(Action::AwaitChange);
    };
    let pods = ctx.selected_pods(key, selector).await?;
    let trigger = desired::trigger_time(&svc, &pods).map(format_time);
    let want = desired::desired(&svc, &pods, &|n| ctx.zone(n));
    let plan = slices::plan(&svc, &want, existing, ctx.max_per_slice);
    apply_plan(registry, plan, trigger.as_deref()).await?;
    let want = endpoints::build(&svc, &pods, ctx.max_addresses, trigger);
    write_endpoints(registry, key, want).await?;
    Ok(Action::AwaitChange)
}

fn stamp(slice: &mut EndpointSlice, trigger: Option<&str>) {
    if let Some(t) = trigger {
        slice
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(TRIGGER_TIME.into(), t.into());
    }
}

/// Creates, then updates, then deletes (so a Service never passes through no endpoints).
async fn apply_plan(
    registry: &Registry,
    plan: slices::Plan,
    trigger: Option<&str>,
) -> Result<(), ControllerError> {
    let creates = plan.create.into_iter().map(|mut s| {
        stamp(&mut s, trigger);
        async move { registry.create(&s).await.map(|_| ()) }
    });
    first_error(join_all(creates).await)?;
    let updates = plan.update.into_iter().map(|mut s| {
        stamp(&mut s, trigger);
        async move { registry.replace(&s).await.map(|_| ()) }
    });
    first_error(join_all(updates).await)?;
    delete_slices(registry, plan.delete).await
}

fn first_error(
    results: Vec<Result<(), crate::apiserver::error::ApiError>>,
) -> Result<(), ControllerError> {
    results
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .map(|_| ())
        .map_err(Into::into)
}

async fn delete_slices(
    registry: &Registry,
    slices: Vec<EndpointSlice>,
) -> Result<(), ControllerError> {
    let deletes = slices.into_iter().map(|s| async move {
        let params = DeleteParams {
            preconditions: crate::apiserver::registry::Preconditions {
                uid: s.metadata.uid.clone(),
                resource_version: None,
            },
            ..Default::default()
        };
        let name = s.metadata.name.clone().unwrap_or_default();
        not_found_ok(
            registry
                .delete::<EndpointSlice>(s.metadata.namespace.as_deref(), &name, &params)
                .await,
        )
        .map(|_| ())
    });
    join_all(deletes).await.into_iter().collect()
}

async fn delete_endpoints(registry: &Registry, key: &ObjectKey) -> Result<(), ControllerError> {
    not_found_ok(
        registry
            .delete::<Endpoints>(key.ns(), &key.name, &DeleteParams::default())
            .await,
    )
    .map(|_| ())
}

async fn write_endpoints(
    registry: &Registry,
    key: &ObjectKey,
    want: Endpoints,
) -> Result<(), ControllerError> {
    match not_found_ok(registry.get::<Endpoints>(key.ns(), &key.name).await)? {
        None => {
            registry.create(&want).await?;
        }
        Some(current) => {
            if let Some(next) = endpoints::updated(&current, &want) {
                registry.replace(&next).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_endpoints;
#[cfg(test)]
mod testutil;
