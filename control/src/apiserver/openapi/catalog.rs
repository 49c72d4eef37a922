//! The catalog of Kubernetes kinds k8s-openapi knows (its `schemars` schemas, generated from the
//! upstream OpenAPI definitions): every definition by name, and which definition is which
//! group-version-kind. The served kinds are looked up here; nothing is written by hand per kind.

use std::sync::OnceLock;

use k8s_openapi::ListableResource;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value};

use crate::apiserver::registry::PatchType;

/// Where the generator puts definitions; refs inside [`Catalog::defs`] use this prefix.
pub(crate) const DEFS_PREFIX: &str = "#/$defs/";

/// One top-level kind with its definition name (`io.k8s.api.core.v1.Pod`).
#[derive(Debug, Clone)]
pub(crate) struct KindSchema {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub name: String,
}

/// All definitions, generated once.
pub(crate) struct Catalog {
    pub defs: Map<String, Value>,
    pub kinds: Vec<KindSchema>,
}

fn register<K: ListableResource + JsonSchema>(
    g: &mut SchemaGenerator,
    kinds: &mut Vec<KindSchema>,
) {
    g.subschema_for::<K>();
    kinds.push(KindSchema {
        group: K::GROUP,
        version: K::VERSION,
        kind: K::KIND,
        name: K::schema_name().into_owned(),
    });
}

/// Puts upstream's strategic-merge metadata on the properties that have it
/// (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`), which kubectl's client-side
/// apply reads to compute merge-key patches.
fn add_patch_metadata(defs: &mut Map<String, Value>) {
    for (name, schema) in defs.iter_mut() {
        let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (field, prop) in props.iter_mut() {
            let (Some((strategy, key)), Some(prop)) = (
                PatchType::strategic_field_meta(name, field),
                prop.as_object_mut(),
            ) else {
                continue;
            };
            if !key.is_empty() {
                prop.insert("x-kubernetes-patch-merge-key".into(), key.into());
            }
            prop.insert("x-kubernetes-patch-strategy".into(), strategy.into());
        }
    }
}

macro_rules! catalog {
    ($($($seg:ident)::+),* $(,)?) => {
        fn register_all(g: &mut SchemaGenerator, kinds: &mut Vec<KindSchema>) {
            $( register::<k8s_openapi::$($seg)::+>(g, kinds); )*
        }
    };
}

impl Catalog {
    /// The catalog (built on first use).
    pub fn get() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(Catalog::build)
    }

    fn build() -> Catalog {
        let mut g = SchemaGenerator::new(SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/$defs".into();
            s.meta_schema = None;
        }));
        let mut kinds = Vec::new();
        register_all(&mut g, &mut kinds);
        // The meta kinds every group-version document refers to.
        g.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>();
        g.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>();
        g.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta>();
        let mut defs = g.take_definitions(true);
        add_patch_metadata(&mut defs);
        Catalog { defs, kinds }
    }

    /// The schema of a top-level kind.
    pub fn kind(&self, group: &str, version: &str, kind: &str) -> Option<&KindSchema> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.kind == kind)
    }

    /// Follows `$ref` (and a single-element `allOf`) to the schema it names.
    pub fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..8 {
            if let Some(name) = schema["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix(DEFS_PREFIX))
            {
                match self.defs.get(name) {
                    Some(s) => schema = s,
                    None => return schema,
                }
            } else if let Some([one]) = schema["allOf"].as_array().map(Vec::as_slice) {
                schema = one;
            } else {
                return schema;
            }
        }
        schema
    }
}

catalog![
    api::admissionregistration::v1::MutatingWebhookConfiguration,
    api::admissionregistration::v1::ValidatingAdmissionPolicy,
    api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
    api::admissionregistration::v1::ValidatingWebhookConfiguration,
    api::admissionregistration::v1alpha1::MutatingAdmissionPolicy,
    api::admissionregistration::v1alpha1::MutatingAdmissionPolicyBinding,
    api::admissionregistration::v1beta1::ValidatingAdmissionPolicy,
    api::admissionregistration::v1beta1::ValidatingAdmissionPolicyBinding,
    api::apiserverinternal::v1alpha1::StorageVersion,
    api::apps::v1::ControllerRevision,
    api::apps::v1::DaemonSet,
    api::apps::v1::Deployment,
    api::apps::v1::ReplicaSet,
    api::apps::v1::StatefulSet,
    api::autoscaling::v1::HorizontalPodAutoscaler,
    api::autoscaling::v2::HorizontalPodAutoscaler,
    api::batch::v1::CronJob,
    api::batch::v1::Job,
    api::certificates::v1::CertificateSigningRequest,
    api::certificates::v1alpha1::ClusterTrustBundle,
    api::certificates::v1beta1::ClusterTrustBundle,
    api::coordination::v1::Lease,
    api::coordination::v1alpha2::LeaseCandidate,
    api::coordination::v1beta1::LeaseCandidate,
    api::core::v1::ComponentStatus,
    api::core::v1::ConfigMap,
    api::core::v1::Endpoints,
    api::core::v1::Event,
    api::core::v1::LimitRange,
    api::core::v1::Namespace,
    api::core::v1::Node,
    api::core::v1::PersistentVolume,
    api::core::v1::PersistentVolumeClaim,
    api::core::v1::Pod,
    api::core::v1::PodTemplate,
    api::core::v1::ReplicationController,
    api::core::v1::ResourceQuota,
    api::core::v1::Secret,
    api::core::v1::Service,
    api::core::v1::ServiceAccount,
    api::discovery::v1::EndpointSlice,
    api::events::v1::Event,
    api::flowcontrol::v1::FlowSchema,
    api::flowcontrol::v1::PriorityLevelConfiguration,
    api::networking::v1::Ingress,
    api::networking::v1::IngressClass,
    api::networking::v1::IPAddress,
    api::networking::v1::NetworkPolicy,
    api::networking::v1::ServiceCIDR,
    api::networking::v1beta1::IPAddress,
    api::networking::v1beta1::ServiceCIDR,
    api::node::v1::RuntimeClass,
    api::policy::v1::PodDisruptionBudget,
    api::rbac::v1::ClusterRole,
    api::rbac::v1::ClusterRoleBinding,
    api::rbac::v1::Role,
    api::rbac::v1::RoleBinding,
    api::resource::v1alpha3::DeviceClass,
    api::resource::v1alpha3::DeviceTaintRule,
    api::resource::v1alpha3::ResourceClaim,
    api::resource::v1alpha3::ResourceClaimTemplate,
    api::resource::v1alpha3::ResourceSlice,
    api::resource::v1beta1::DeviceClass,
    api::resource::v1beta1::ResourceClaim,
    api::resource::v1beta1::ResourceClaimTemplate,
    api::resource::v1beta1::ResourceSlice,
    api::resource::v1beta2::DeviceClass,
    api::resource::v1beta2::ResourceClaim,
    api::resource::v1beta2::ResourceClaimTemplate,
    api::resource::v1beta2::ResourceSlice,
    api::scheduling::v1::PriorityClass,
    api::storage::v1::CSIDriver,
    api::storage::v1::CSINode,
    api::storage::v1::CSIStorageCapacity,
    api::storage::v1::StorageClass,
    api::storage::v1::VolumeAttachment,
    api::storage::v1alpha1::VolumeAttributesClass,
    api::storage::v1beta1::VolumeAttributesClass,
    api::storagemigration::v1alpha1::StorageVersionMigration,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    kube_aggregator::pkg::apis::apiregistration::v1::APIService,
];
