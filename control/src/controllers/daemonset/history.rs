//! Revision history with ControllerRevisions, shared by the DaemonSet and StatefulSet
//! controllers: a revision `<owner>-<hash>` holds the template patch upstream stores
//! (`{"spec":{"template":{…,"$patch":"replace"}}}`), the newest template gets the highest
//! `revision` (an old one is renumbered on rollback), and unused old ones are trimmed to
//! `revisionHistoryLimit`.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{Value, json};

use crate::apiserver::error::ApiError;
use crate::apiserver::registry::{DeleteParams, ListParams, PatchType, Registry};
use crate::controllers::common::controller_ref_to;
use crate::controllers::deployment::hash::template_hash;
use crate::controllers::runtime::Object;
use crate::controllers::{ControllerError, claim, not_found_ok};

/// The label naming a revision's hash (on revisions, and on DaemonSet and StatefulSet pods).
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// The hash label upstream's StatefulSet revisions carry.
pub const STS_HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// How many tries a name collision gets before the reconcile fails.
const COLLISION_TRIES: i32 = 5;

/// The patch a revision stores for `template`: replaces the owner's whole template.
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The template a revision holds.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

fn data_of(rev: &ControllerRevision) -> Option<&Value> {
    rev.data.as_ref().map(|d| &d.0)
}

/// The owner's revisions after the sync, oldest first, and the one for its current template.
#[derive(Debug, Clone)]
pub struct History {
    pub revisions: Vec<ControllerRevision>,
    pub current: ControllerRevision,
    /// The collision count the current revision was made with.
    pub collision_count: i32,
}

impl History {
    /// A revision by name.
    pub fn by_name(&self, name: &str) -> Option<&ControllerRevision> {
        self.revisions
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
    }
}

/// The hash label value of a revision (its name's suffix when the label is missing).
pub fn revision_hash(rev: &ControllerRevision) -> String {
    rev.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_HASH_LABEL))
        .cloned()
        .unwrap_or_else(|| {
            let name = rev.metadata.name.as_deref().unwrap_or_default();
            name.rsplit_once('-')
                .map(|(_, h)| h.to_string())
                .unwrap_or_default()
        })
}

/// Finds or makes the revision of `owner`'s current `template`.
pub async fn sync<O: Object>(
    registry: &Registry,
    owner: &O,
    selector: &LabelSelector,
    template: &PodTemplateSpec,
    collision_count: i32,
) -> Result<History, ControllerError> {
    let meta = owner.metadata();
    let ns = meta.namespace.as_deref();
    let all = registry
        .list::<ControllerRevision>(ns, &ListParams::default())
        .await?
        .items;
    let mut revisions = claim::claim(registry, owner, selector, all).await?;
    revisions.sort_by_key(|r| (r.revision, r.metadata.name.clone()));
    let patch = template_patch(template);
    let max = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    let existing = revisions.iter().rposition(|r| data_of(r) == Some(&patch));
    if let Some(i) = existing {
        if revisions[i].revision < max {
            // A rollback to an older template: it becomes the newest revision.
            let name = revisions[i].metadata.name.clone().unwrap_or_default();
            let updated = registry
                .patch::<ControllerRevision>(
                    ns,
                    &name,
                    PatchType::Merge,
                    &json!({"revision": max + 1}),
                )
                .await?;
            revisions[i] = updated;
            revisions.sort_by_key(|r| (r.revision, r.metadata.name.clone()));
        }
        let current = revisions
            .iter()
            .rev()
            .find(|r| data_of(r) == Some(&patch))
            .cloned()
            .expect("found above");
        return Ok(History {
            revisions,
            current,
            collision_count,
        });
    }
    let mut count = collision_count;
    for _ in 0..COLLISION_TRIES {
        let hash = template_hash(template, (count > 0).then_some(count));
        let rev = new_revision(owner, template, &hash, max + 1);
        match registry.create(&rev).await {
            Ok(created) => {
                tracing::info!(revision = ?created.metadata.name, "created revision");
                revisions.push(created.clone());
                return Ok(History {
                    revisions,
                    current: created,
                    collision_count: count,
                });
            }
            Err(ApiError::AlreadyExists { .. }) => {
                let name = rev.metadata.name.clone().unwrap_or_default();
                let theirs = not_found_ok(registry.get::<ControllerRevision>(ns, &name).await)?;
                if let Some(theirs) = theirs
                    && data_of(&theirs) == Some(&patch)
                    && claim::claim(registry, owner, selector, vec![theirs.clone()])
                        .await?
                        .len()
                        == 1
                {
                    revisions.push(theirs.clone());
                    return Ok(History {
                        revisions,
                        current: theirs,
                        collision_count: count,
                    });
                }
                count += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ControllerError::Invalid(format!(
        "no free revision name after {COLLISION_TRIES} hash collisions"
    )))
}

fn new_revision<O: Object>(
    owner: &O,
    template: &PodTemplateSpec,
    hash: &str,
    revision: i64,
) -> ControllerRevision {
    let meta = owner.metadata();
    let mut labels: BTreeMap<String, String> = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.into(), hash.into());
    if O::KIND == "StatefulSet" {
        labels.insert(STS_HASH_LABEL.into(), hash.into());
    }
    let owner_name = meta.name.clone().unwrap_or_default();
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{owner_name}-{hash}")),
            namespace: meta.namespace.clone(),
            labels: Some(labels),
            annotations: meta.annotations.clone(),
            owner_references: Some(vec![controller_ref_to(owner)]),
            ..Default::default()
        },
        data: Some(RawExtension(template_patch(template))),
        revision,
    }
}

/// Deletes the oldest revisions beyond `limit` that no pod uses (`live` holds the names of
/// those in use, the current one included).
pub async fn cleanup(
    registry: &Registry,
    history: &History,
    live: &HashSet<String>,
    limit: i32,
) -> Result<(), ControllerError> {
    let unused: Vec<&ControllerRevision> = history
        .revisions
        .iter()
        .filter(|r| {
            let name = r.metadata.name.clone().unwrap_or_default();
            !live.contains(&name)
                && name != history.current.metadata.name.clone().unwrap_or_default()
        })
        .collect();
    let excess = unused.len().saturating_sub(limit.max(0) as usize);
    for r in &unused[..excess] {
        let name = r.metadata.name.clone().unwrap_or_default();
        tracing::info!(revision = %name, "deleting old revision");
        not_found_ok(
            registry
                .delete::<ControllerRevision>(
                    r.metadata.namespace.as_deref(),
                    &name,
                    &DeleteParams::default(),
                )
                .await,
        )?;
    }
    Ok(())
}
