//! The registry: Kubernetes object semantics over the `Store` (create/get/list/update/patch/
//! delete/watch, defaulting, validation, resourceVersion, namespaces, pod binding and graceful
//! deletion). The HTTP handlers, the scheduler and the node-protocol server all go through it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tracing::info;

use super::error::{ApiError, FieldError};
use super::resources::{self, ResourceDef, ServiceNetwork};
use super::selectors::{FieldSelector, LabelSelector};
use super::validation::validate_metadata;
use crate::store::{ListOptions, Revision, Store, StoreError};

pub mod apply;
mod delete;
pub mod object;
mod patch;
mod typed;
mod watch;

pub use apply::FieldManager;
pub use delete::{DeleteParams, Preconditions};
pub use patch::{PatchType, is_apply_content_type};
pub use typed::{ObjectList, TypedWatchStream, WatchEvent};
pub use watch::{JsonWatchEvent, WatchEventType, WatchStream};

/// Namespaces that always exist.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// How many times a read-modify-write retries on a concurrent change.
const RETRIES: usize = 8;

/// The API server port the `kubernetes` service targets unless told otherwise.
pub const DEFAULT_API_PORT: u16 = 6443;

/// Selection and paging of a list or watch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    /// Watch only: send periodic BOOKMARK events.
    pub allow_watch_bookmarks: bool,
}

/// Options of a create, update or patch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteParams {
    /// Validate and default, but do not store (`dryRun=All`).
    pub dry_run: bool,
}

/// Which part of the object a write targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// The object (its `status` is kept from the stored object for kinds with a status
    /// subresource).
    Main,
    /// Only `status` (everything else is kept from the stored object).
    Status,
}

/// A list result in JSON form.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonList {
    pub items: Vec<Value>,
    pub resource_version: Revision,
    pub continue_token: Option<String>,
}

/// Kubernetes semantics over an `Arc<dyn Store>`. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    bookmark_interval: Duration,
    /// The ranges of service ClusterIPs and NodePorts.
    network: Arc<ServiceNetwork>,
    /// Serializes the writes of kinds with an allocation hook (see `Strategy::allocate`).
    alloc_lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("revision", &self.store.revision())
            .finish()
    }
}

struct Selectors {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Selectors {
    fn parse(def: &ResourceDef, params: &ListParams) -> Result<Self, ApiError> {
        Ok(Selectors {
            labels: LabelSelector::parse(params.label_selector.as_deref().unwrap_or(""))?,
            fields: FieldSelector::parse(
                params.field_selector.as_deref().unwrap_or(""),
                def.field_selectors,
            )?,
        })
    }

    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches_object(obj)
    }
}

/// Looks a resource up or fails with 404.
pub fn resource(group: &str, plural: &str) -> Result<&'static ResourceDef, ApiError> {
    resources::find_plural(group, plural).ok_or_else(ApiError::no_route)
}

fn map_store(def: &ResourceDef, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists(_) => ApiError::already_exists(def.group, def.plural, name),
        StoreError::NotFound(_) => ApiError::not_found(def.group, def.plural, name),
        StoreError::Conflict { .. } => ApiError::conflict(def.group, def.plural, name),
        other => other.into(),
    }
}

/// The 410 upstream answers a `continue` token whose revision was compacted.
fn continue_expired() -> ApiError {
    ApiError::Expired {
        message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.".into(),
    }
}

fn invalid(def: &ResourceDef, obj: &Value, errs: Vec<FieldError>) -> Result<(), ApiError> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            def.group,
            def.kind,
            object::name(obj),
            errs,
        ))
    }
}

impl Registry {
    /// Wraps the store and makes sure the system namespaces and the `kubernetes` service (in
    /// the default 10.43.0.0/16 range) exist.
    pub async fn new(store: Arc<dyn Store>) -> Result<Registry, ApiError> {
        Self::with_service_network(store, ServiceNetwork::default(), DEFAULT_API_PORT).await
    }

    /// Like [`Registry::new`] with the service range and the port the API server listens on
    /// (the `kubernetes` service's targetPort).
    pub async fn with_service_network(
        store: Arc<dyn Store>,
        network: ServiceNetwork,
        api_port: u16,
    ) -> Result<Registry, ApiError> {
        let registry = Registry {
            store,
            bookmark_interval: Duration::from_secs(60),
            network: Arc::new(network),
            alloc_lock: Arc::new(tokio::sync::Mutex::new(())),
        };
        for ns in SYSTEM_NAMESPACES {
            let def = resource("", "namespaces")?;
            match registry
                .create_json(
                    def,
                    None,
                    json!({"metadata": {"name": ns}}),
                    WriteParams::default(),
                )
                .await
            {
                Ok(_) => info!(namespace = ns, "created system namespace"),
                Err(ApiError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let services = resource("", "services")?;
        let exists = registry
            .store
            .get(&services.key(Some("default"), "kubernetes"))
            .await?
            .is_some();
        if !exists {
            let svc = resources::services::kubernetes_service(&registry.network, api_port);
            match registry
                .create_json(services, Some("default"), svc, WriteParams::default())
                .await
            {
                Ok(_) => info!("created the kubernetes service"),
                Err(ApiError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        resources::scheduling::ensure_system_classes(&registry).await?;
        Ok(registry)
    }

    /// The service ranges this registry allocates from.
    pub fn service_network(&self) -> &ServiceNetwork {
        &self.network
    }

    /// Runs the kind's allocation hook (if any) on `obj` against every other stored object of
    /// the kind. Callers hold `alloc_lock` from here until their store write is done.
    async fn allocate(
        &self,
        def: &ResourceDef,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let Some(hook) = def.strategy.allocate else {
            return Ok(());
        };
        let all = self.list_json(def, None, &ListParams::default()).await?;
        let me = old.map(object::uid);
        let others: Vec<Value> = all
            .items
            .into_iter()
            .filter(|o| Some(object::uid(o)) != me)
            .collect();
        let errs = hook(obj, old, &others, &self.network);
        invalid(def, obj, errs)
    }

    /// How often watches with `allowWatchBookmarks` get a BOOKMARK (default 60 s).
    pub fn with_bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// One object.
    pub async fn get_json(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        Ok(self.get_with_revision(def, namespace, name).await?.0)
    }

    async fn get_with_revision(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(Value, Revision), ApiError> {
        let key = def.key(namespace, name);
        match self.store.get(&key).await? {
            Some(kv) => Ok((object::decode_kv(&kv)?, kv.mod_revision)),
            None => Err(ApiError::not_found(def.group, def.plural, name)),
        }
    }

    /// Objects in one namespace (or all, with `None`), filtered and paged. The pages after the
    /// first read at the first page's revision (its `continue` token carries it); one that was
    /// compacted since is 410 Expired.
    pub async fn list_json(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<JsonList, ApiError> {
        let sel = Selectors::parse(def, params)?;
        let prefix = def.prefix(namespace);
        let (mut start_after, mut revision) =
            match params.continue_token.as_deref().filter(|t| !t.is_empty()) {
                Some(t) => {
                    let (start, rev) = object::decode_continue_at(t, &prefix)?;
                    (Some(start), Some(rev))
                }
                None => (None, None),
            };
        let limit = params.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        loop {
            let page = self
                .store
                .list_at(
                    &prefix,
                    ListOptions {
                        start_after: start_after.clone(),
                        limit: limit.map(|l| l.max(64)),
                    },
                    revision,
                )
                .await
                .map_err(|e| match e {
                    StoreError::Compacted { .. } if revision.is_some() => continue_expired(),
                    other => other.into(),
                })?;
            let rev = *revision.get_or_insert(page.revision);
            let count = page.items.len();
            for (i, kv) in page.items.iter().enumerate() {
                let obj = object::decode_kv(kv)?;
                if sel.matches(&obj) {
                    items.push(obj);
                }
                if let Some(l) = limit
                    && items.len() == l
                {
                    let more = i + 1 < count || page.more;
                    let token = more.then(|| object::encode_continue(&kv.key, rev));
                    return Ok(JsonList {
                        items,
                        resource_version: rev,
                        continue_token: token,
                    });
                }
            }
            match page.items.last() {
                Some(last) if page.more => start_after = Some(last.key.clone()),
                _ => {
                    return Ok(JsonList {
                        items,
                        resource_version: rev,
                        continue_token: None,
                    });
                }
            }
        }
    }

    /// Creates an object (the namespace comes from the request for namespaced kinds).
    pub async fn create_json(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        obj: Value,
        params: WriteParams,
    ) -> Result<Value, ApiError> {
        self.create_json_as(def, namespace, obj, params, None).await
    }

    /// [`Registry::create_json`] recorded in `managedFields` under `manager` (`None`: the
    /// default manager).
    pub async fn create_json_as(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        mut obj: Value,
        params: WriteParams,
        manager: Option<FieldManager>,
    ) -> Result<Value, ApiError> {
        object::set_type_meta(def, &mut obj)?;
        object::set_namespace(def, &mut obj, namespace)?;
        let generate = obj["metadata"]["generateName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let explicit_name = !object::name(&obj).is_empty();
        {
            let m = obj["metadata"]
                .as_object_mut()
                .expect("metadata is an object");
            for k in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "uid",
                "selfLink",
            ] {
                m.remove(k);
            }
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(object::now()));
            if def.tracks_generation {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        // The Priority admission plugin (it reads PriorityClasses, so it runs here).
        if def.group.is_empty() && def.plural == "pods" {
            resources::scheduling::admit_pod_priority(self, &mut obj).await?;
        }
        let _alloc = match def.strategy.allocate {
            Some(_) => Some(self.alloc_lock.lock().await),
            None => None,
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            if !explicit_name && !generate.is_empty() {
                obj["metadata"]["name"] = json!(object::generate_name(&generate));
            }
            (def.strategy.defaults)(&mut obj);
            (def.strategy.prepare_create)(&mut obj);
            let mut errs = validate_metadata(&obj, def.name_rule);
            if errs
                .iter()
                .any(|e| e.field == "metadata.name" && !generate.is_empty() && !explicit_name)
            {
                errs.retain(|e| e.field != "metadata.name");
                errs.push(FieldError::invalid("metadata.generateName", &generate, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"));
            }
            errs.extend((def.strategy.validate)(&obj));
            invalid(def, &obj, errs)?;
            if !apply::is_applied(manager) {
                let name = apply::manager_name(&manager);
                let via = apply::subresource_of(&manager, Subresource::Main);
                apply::record_update(def, None, &mut obj, name, (Subresource::Main, via));
            }
            if def.namespaced {
                let ns = object::namespace(&obj).unwrap_or_default().to_string();
                self.require_namespace(&ns).await?;
            }
            self.allocate(def, &mut obj, None).await?;
            if params.dry_run {
                return Ok(obj);
            }
            let name = object::name(&obj).to_string();
            let key = def.key(object::namespace(&obj), &name);
            match self.store.create(&key, object::encode(&obj)?).await {
                Ok(rev) => {
                    object::set_resource_version(&mut obj, rev);
                    return Ok(obj);
                }
                Err(StoreError::AlreadyExists(_))
                    if !explicit_name && !generate.is_empty() && attempts < 5 =>
                {
                    continue;
                }
                Err(e) => return Err(map_store(def, &name, e)),
            }
        }
    }

    async fn require_namespace(&self, ns: &str) -> Result<(), ApiError> {
        let def = resource("", "namespaces")?;
        match self.store.get(&def.key(None, ns)).await? {
            Some(kv) => {
                let obj = object::decode_kv(&kv)?;
                if object::is_terminating(&obj) {
                    return Err(ApiError::Forbidden {
                        message: format!(
                            "unable to create new content in namespace {ns} because it is being terminated"
                        ),
                        subject: Default::default(),
                    });
                }
                Ok(())
            }
            None => Err(ApiError::not_found("", "namespaces", ns)),
        }
    }

    /// Replaces an object (PUT). A set `metadata.resourceVersion` must match the stored one
    /// (else 409 Conflict); an empty one replaces unconditionally.
    pub async fn update_json(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        obj: Value,
        sub: Subresource,
        params: WriteParams,
    ) -> Result<Value, ApiError> {
        self.update_json_as(def, namespace, name, obj, sub, params, None)
            .await
    }

    /// [`Registry::update_json`] recorded in `managedFields` under `manager`.
    #[allow(clippy::too_many_arguments, reason = "the parts of a PUT request")]
    pub async fn update_json_as(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        mut obj: Value,
        sub: Subresource,
        params: WriteParams,
        manager: Option<FieldManager>,
    ) -> Result<Value, ApiError> {
        object::set_type_meta(def, &mut obj)?;
        object::set_namespace(def, &mut obj, namespace)?;
        match object::name(&obj) {
            "" => obj["metadata"]["name"] = json!(name),
            n if n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            _ => {}
        }
        let expected = object::resource_version(&obj)?;
        for _ in 0..RETRIES {
            let (old, rev) = self.get_with_revision(def, namespace, name).await?;
            if expected.is_some_and(|e| e != rev) {
                return Err(ApiError::conflict(def.group, def.plural, name));
            }
            match self
                .write_update(
                    def,
                    namespace,
                    name,
                    obj.clone(),
                    &old,
                    (rev, sub),
                    params,
                    manager,
                )
                .await
            {
                Err(ApiError::Conflict { .. }) if expected.is_none() => continue,
                other => return other,
            }
        }
        Err(ApiError::conflict(def.group, def.plural, name))
    }

    /// Merges `new` over `old` per the subresource, validates, and stores it if the stored
    /// object is still at `rev`.
    #[allow(
        clippy::too_many_arguments,
        reason = "internal helper shared by update and patch"
    )]
    async fn write_update(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        mut new: Value,
        old: &Value,
        (rev, sub): (Revision, Subresource),
        params: WriteParams,
        manager: Option<FieldManager>,
    ) -> Result<Value, ApiError> {
        if sub == Subresource::Status {
            let status = new["status"].take();
            let managed = new["metadata"]["managedFields"].take();
            new = old.clone();
            new["status"] = status;
            if apply::is_applied(manager) && !managed.is_null() {
                new["metadata"]["managedFields"] = managed;
            }
        } else if def.has_status() {
            new["status"] = old["status"].clone();
        }
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "name",
            "generation",
        ] {
            match old["metadata"].get(k) {
                Some(v) => new["metadata"][k] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(k);
                    }
                }
            }
        }
        (def.strategy.defaults)(&mut new);
        if def.tracks_generation && new["spec"] != old["spec"] {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if !apply::is_applied(manager) {
            let name = apply::manager_name(&manager);
            let via = apply::subresource_of(&manager, sub);
            apply::record_update(def, Some(old), &mut new, name, (sub, via));
        }
        let mut errs = validate_metadata(&new, def.name_rule);
        errs.extend((def.strategy.validate)(&new));
        errs.extend((def.strategy.validate_update)(&new, old));
        invalid(def, &new, errs)?;
        let _alloc = match def.strategy.allocate {
            Some(_) => Some(self.alloc_lock.lock().await),
            None => None,
        };
        self.allocate(def, &mut new, Some(old)).await?;
        object::set_resource_version(&mut new, rev);
        if &new == old || params.dry_run {
            return Ok(new);
        }
        let key = def.key(namespace, name);
        // A terminating object whose last finalizer was removed goes away now.
        if object::is_terminating(&new)
            && !object::has_finalizers(&new)
            && new["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(0)
                == 0
        {
            self.store
                .delete(&key, Some(rev))
                .await
                .map_err(|e| map_store(def, name, e))?;
            return Ok(new);
        }
        let rev = self
            .store
            .update(&key, object::encode(&new)?, Some(rev))
            .await
            .map_err(|e| map_store(def, name, e))?;
        object::set_resource_version(&mut new, rev);
        Ok(new)
    }

    /// Assigns a pod to a node (the binding subresource). 409 if it is already bound.
    pub async fn bind_pod_json(
        &self,
        namespace: &str,
        name: &str,
        node_name: &str,
    ) -> Result<Value, ApiError> {
        let def = resource("", "pods")?;
        for _ in 0..RETRIES {
            let (mut pod, rev) = self.get_with_revision(def, Some(namespace), name).await?;
            if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                return Err(ApiError::conflict_with(
                    "",
                    "pods/binding",
                    name,
                    &format!("pod {name} is already assigned to node {n:?}"),
                ));
            }
            if object::is_terminating(&pod) {
                return Err(ApiError::conflict_with(
                    "",
                    "pods/binding",
                    name,
                    &format!("pod {name} is being deleted, cannot be assigned to a host"),
                ));
            }
            pod["spec"]["nodeName"] = json!(node_name);
            let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": object::now()});
            let conds = pod["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut conds: Vec<Value> = conds
                .into_iter()
                .filter(|c| c["type"] != "PodScheduled")
                .collect();
            conds.push(cond);
            pod["status"]["conditions"] = Value::Array(conds);
            let key = def.key(Some(namespace), name);
            match self
                .store
                .update(&key, object::encode(&pod)?, Some(rev))
                .await
            {
                Ok(rev) => {
                    object::set_resource_version(&mut pod, rev);
                    return Ok(pod);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(map_store(def, name, e)),
            }
        }
        Err(ApiError::conflict(def.group, def.plural, name))
    }
}

#[cfg(test)]
pub(crate) mod memstore;
#[cfg(test)]
mod paging_tests;
#[cfg(test)]
mod tests;
