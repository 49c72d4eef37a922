//! Adoption and release (upstream's ControllerRefManager): an owner claims the objects whose
//! controller reference is its own and whose labels still match, adopts matching orphans, and
//! releases its objects that stopped matching.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::{Metadata, Resource};
use serde_json::json;

use super::common::{controller_ref_to, is_terminating, selector_matches};
use super::runtime::{Object, controller_ref};
use super::{ControllerError, not_found_ok};
use crate::apiserver::registry::{PatchType, Registry};

/// The objects `owner` controls after adopting and releasing.
pub async fn claim<O, K>(
    registry: &Registry,
    owner: &O,
    selector: &LabelSelector,
    objects: Vec<K>,
) -> Result<Vec<K>, ControllerError>
where
    O: Resource + Metadata<Ty = ObjectMeta>,
    K: Object,
{
    let owner_uid = owner.metadata().uid.clone().unwrap_or_default();
    let owner_gone = is_terminating(owner.metadata());
    let mut claimed = Vec::new();
    for obj in objects {
        let meta = obj.metadata();
        let matches = selector_matches(selector, meta.labels.as_ref());
        match controller_ref(meta) {
            Some(r) if r.uid != owner_uid => {}
            Some(_) if matches => claimed.push(obj),
            Some(_) if owner_gone => {}
            Some(_) => release(registry, &owner_uid, &obj).await?,
            None if matches && !owner_gone && !is_terminating(meta) => {
                if let Some(adopted) = adopt(registry, owner, &obj).await? {
                    claimed.push(adopted);
                }
            }
            None => {}
        }
    }
    Ok(claimed)
}

async fn adopt<O, K>(registry: &Registry, owner: &O, obj: &K) -> Result<Option<K>, ControllerError>
where
    O: Resource + Metadata<Ty = ObjectMeta>,
    K: Object,
{
    let meta = obj.metadata();
    let mut refs = meta.owner_references.clone().unwrap_or_default();
    refs.push(controller_ref_to(owner));
    tracing::info!(kind = K::KIND, name = ?meta.name, "adopting");
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": meta.resource_version,
    }});
    let name = meta.name.clone().unwrap_or_default();
    not_found_ok(
        registry
            .patch::<K>(meta.namespace.as_deref(), &name, PatchType::Merge, &patch)
            .await,
    )
}

async fn release<K: Object>(
    registry: &Registry,
    owner_uid: &str,
    obj: &K,
) -> Result<(), ControllerError> {
    let meta = obj.metadata();
    let refs: Vec<_> = meta
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.uid != owner_uid)
        .collect();
    tracing::info!(kind = K::KIND, name = ?meta.name, "releasing");
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": meta.resource_version,
    }});
    let name = meta.name.clone().unwrap_or_default();
    not_found_ok(
        registry
            .patch::<K>(meta.namespace.as_deref(), &name, PatchType::Merge, &patch)
            .await,
    )?;
    Ok(())
}
