//! CustomResourceDefinitions (apiextensions.k8s.io/v1) and the custom resources they define:
//! the CRD kind itself (`definition`, `structural`), the dynamic kinds served for established
//! CRDs (`kinds`), the generic hooks that validate, default and prune custom objects against
//! their schema (`objects`, `schema`), the sync loop that registers and cleans up (`sync`), and
//! the scale subresource and patch rules of custom objects over HTTP (`http`).

mod definition;
pub mod http;
pub mod kinds;
mod objects;
pub mod schema;
mod structural;
mod sync;

#[cfg(test)]
mod kubectl_tests;
#[cfg(test)]
mod tests;

pub use definition::{CLEANUP_FINALIZER, CUSTOMRESOURCEDEFINITIONS, is_established};
pub use kinds::CustomKind;
pub use sync::{spawn, sync};

/// Whether `def` is a CRD (a write to one changes the served kinds).
pub fn is_crd(def: &crate::apiserver::resources::ResourceDef) -> bool {
    def.group == CUSTOMRESOURCEDEFINITIONS.group && def.plural == CUSTOMRESOURCEDEFINITIONS.plural
}

/// The custom kind behind `def`, if it is one.
pub fn custom_kind(
    def: &crate::apiserver::resources::ResourceDef,
) -> Option<std::sync::Arc<CustomKind>> {
    kinds::by_def(def)
}
