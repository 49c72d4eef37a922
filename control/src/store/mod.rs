//! The store: a revisioned key-value space with watch-from-revision, behind one trait so the
//! embedded sled engine and etcd are interchangeable. The API server's only persistence.
//!
//! Both backends pass one behaviour suite (`suite.rs`, run per backend by `store_suite!`).

use std::pin::Pin;

use futures::Stream;

pub mod etcd;
pub mod sled_store;
#[cfg(test)]
mod suite;

pub use etcd::{EtcdOptions, EtcdStore};
pub use sled_store::{SledOptions, SledStore, SnapshotInfo, restore_snapshot};

/// A store revision. Every write gets a new, strictly larger one; it is the object's
/// `metadata.resourceVersion`.
pub type Revision = u64;

/// One stored key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created the key.
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
}

/// What a list returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    /// Keys in ascending order.
    pub items: Vec<KeyValue>,
    /// The store's revision when the list was read: a watch from it misses nothing.
    pub revision: Revision,
    /// More keys match past the last returned one (only when a limit was given).
    pub more: bool,
}

/// Which part of a prefix a list returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only keys strictly greater than this one (paging).
    pub start_after: Option<String>,
    /// At most this many items.
    pub limit: Option<usize>,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created (`prev` is None) or modified.
    Put,
    Delete,
}

/// One change, as a watch sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    /// For `Put`: the new value and revisions. For `Delete`: the last value, with `mod_revision`
    /// set to the revision of the delete.
    pub kv: KeyValue,
    /// The value before this change, if the key existed.
    pub prev: Option<Vec<u8>>,
}

/// A watch: changes in revision order, each exactly once. It ends with
/// `Err(StoreError::Compacted)` when it fell too far behind to continue.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StoreError>> + Send>>;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key exists already (create).
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// The key does not exist (update, delete).
    #[error("key {0} not found")]
    NotFound(String),
    /// The key's current revision is not the one the caller expected.
    #[error("key {key} is at revision {current}, not {expected}")]
    Conflict {
        key: String,
        expected: Revision,
        current: Revision,
    },
    /// The requested revision is older than the oldest one kept.
    #[error("revision {requested} has been compacted; oldest kept is {oldest}")]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    /// The storage engine failed.
    #[error("storage engine: {0}")]
    Engine(String),
}

/// A revisioned key-value store with watches. Every acknowledged write is durable (survives
/// `kill -9` of the process).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;
    /// Keys starting with `prefix`, ascending.
    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult, StoreError>;
    /// Like [`Store::list`], but read as of `revision` when one is given, so the pages of one
    /// paged list (a `continue` token carries the first page's revision) see one snapshot. A
    /// revision that was compacted fails with `Compacted`. Backends that keep only the newest
    /// state (sled) read that and report its revision; the default does exactly this.
    async fn list_at(
        &self,
        prefix: &str,
        options: ListOptions,
        revision: Option<Revision>,
    ) -> Result<ListResult, StoreError> {
        let _ = revision;
        self.list(prefix, options).await
    }
    /// Creates `key`; fails with `AlreadyExists` if present. Returns the new revision.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError>;
    /// Replaces `key`'s value; with `expected`, only if its mod revision is that one (else
    /// `Conflict`). Fails with `NotFound` if absent. Returns the new revision.
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError>;
    /// Deletes `key` (with `expected`, only at that revision). Returns the delete's revision and
    /// the last value.
    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError>;
    /// Changes under `prefix` with revision > `after`, then live ones. `after` older than the
    /// kept history fails with `Compacted`.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError>;
    /// The newest revision.
    fn revision(&self) -> Revision;
}
