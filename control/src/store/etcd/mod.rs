//! The etcd store: the `Store` trait mapped onto an etcd v3 cluster with the `etcd-client` crate.
//!
//! Keys live under a prefix (default `/skiff`): the store key `/registry/pods/ns/a` is the etcd
//! key `/skiff/registry/pods/ns/a`. Revisions are etcd's own (`create_revision`,
//! `mod_revision`, the header revision), so several control-plane replicas on one etcd agree on
//! every `resourceVersion`. Conditional writes are etcd transactions: `create` compares
//! `create_revision == 0`, `update`/`delete` compare `mod_revision` with the expected revision;
//! when the comparison fails, the else branch reads the key to tell `NotFound` from `Conflict`.
//! `list` is a range read with a limit, optionally pinned to a revision (`list_at`); `watch` is
//! an etcd watch with `prev_kv`. etcd acknowledges a write only after its raft log entry is
//! fsynced, so every `Ok` is durable.
//!
//! Compaction: a background task compacts revisions older than the newest
//! [`EtcdOptions::keep_revisions`] every [`EtcdOptions::compact_interval`]; watches or pinned
//! lists from before that fail with `Compacted` (the API server turns it into 410 Gone).

#[cfg(test)]
pub(crate) mod server;
#[cfg(test)]
mod tests;
mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Txn, TxnOp,
    TxnOpResponse,
};
use tracing::{debug, info, warn};

use super::{KeyValue, ListOptions, ListResult, Revision, Store, StoreError, WatchStream};

/// Keys read per etcd range request when listing.
const LIST_CHUNK: usize = 500;

/// How to reach etcd and how much history to keep.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Every key is stored under this prefix (a trailing `/` is dropped).
    pub prefix: String,
    /// How many of the newest revisions compaction keeps for watches and pinned lists.
    pub keep_revisions: u64,
    /// How often the compaction task runs.
    pub compact_interval: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/skiff/".into(),
            keep_revisions: 10_000,
            compact_interval: Duration::from_secs(60),
        }
    }
}

impl EtcdOptions {
    /// Options for a `--store` URL: `etcd://HOST:PORT[,HOST:PORT…]` (plain http for now).
    pub fn from_url(url: &str) -> Result<EtcdOptions, StoreError> {
        let bad = |why: &str| StoreError::Engine(format!("store URL {url:?}: {why}"));
        let hosts = url
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("expected etcd://HOST:PORT[,HOST:PORT...]"))?;
        let endpoints: Vec<String> = hosts
            .trim_end_matches('/')
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
            .collect();
        if endpoints.is_empty() {
            return Err(bad("no endpoints"));
        }
        Ok(EtcdOptions {
            endpoints,
            ..EtcdOptions::default()
        })
    }
}

/// A `Store` on etcd. Cheap to share behind an `Arc`; all state is in etcd.
pub struct EtcdStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// The prefix without its trailing `/`.
    root: String,
    /// The newest revision seen in any response or watch header.
    revision: AtomicU64,
    /// The newest revision this process compacted to (0: none known).
    compacted: AtomicU64,
}

impl EtcdStore {
    /// Connects and reads the current revision; fails if no endpoint answers within 5 s.
    pub async fn connect(options: EtcdOptions) -> Result<EtcdStore, StoreError> {
        let connect = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let client = Client::connect(&options.endpoints, Some(connect))
            .await
            .map_err(engine)?;
        let inner = Arc::new(Inner {
            client,
            root: options.prefix.trim_end_matches('/').to_string(),
            revision: AtomicU64::new(0),
            compacted: AtomicU64::new(0),
        });
        let store = EtcdStore { inner };
        let probe = GetOptions::new().with_count_only();
        let mut kv = store.inner.client.kv_client();
        let resp = tokio::time::timeout(
            Duration::from_secs(5),
            kv.get(store.inner.root.clone(), Some(probe)),
        )
        .await
        .map_err(|_| StoreError::Engine(format!("etcd at {:?} did not answer", options.endpoints)))?
        .map_err(engine)?;
        store.inner.seen(resp.header());
        info!(endpoints = ?options.endpoints, prefix = %store.inner.root,
              revision = store.revision(), "connected to etcd");
        tokio::spawn(compactor(
            Arc::downgrade(&store.inner),
            options.keep_revisions,
            options.compact_interval,
        ));
        Ok(store)
    }

    /// Compacts etcd's history up to `revision` now (the periodic task does this on its own).
    pub async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.inner.compact(revision).await
    }

    /// The newest revision this process compacted to (0 if it has not compacted).
    pub fn compacted_revision(&self) -> Revision {
        self.inner.compacted.load(Ordering::Acquire)
    }
}

impl Inner {
    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.root)
    }

    fn strip(&self, etcd_key: &[u8]) -> String {
        let key = String::from_utf8_lossy(etcd_key);
        key.strip_prefix(self.root.as_str())
            .unwrap_or(&key)
            .to_string()
    }

    fn kv(&self, kv: &etcd_client::KeyValue) -> KeyValue {
        KeyValue {
            key: self.strip(kv.key()),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision() as Revision,
            mod_revision: kv.mod_revision() as Revision,
        }
    }

    /// Records a response header's revision; returns it.
    fn seen(&self, header: Option<&etcd_client::ResponseHeader>) -> Revision {
        let rev = header.map_or(0, |h| h.revision().max(0) as Revision);
        self.revision.fetch_max(rev, Ordering::AcqRel);
        rev
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        match self.client.kv_client().compact(revision as i64, None).await {
            Ok(resp) => {
                self.seen(resp.header());
            }
            // Another replica compacted as far already.
            Err(e) if is_compacted(&e) => {}
            Err(e) => return Err(engine(e)),
        }
        self.compacted.fetch_max(revision, Ordering::AcqRel);
        Ok(())
    }

    /// Runs a transaction `if compares then op else get(key)`; returns whether it succeeded,
    /// the header revision and the single op's response.
    async fn txn(
        &self,
        full: &str,
        compares: Vec<Compare>,
        op: TxnOp,
    ) -> Result<(bool, Revision, TxnOpResponse), StoreError> {
        let txn = Txn::new()
            .when(compares)
            .and_then(vec![op])
            .or_else(vec![TxnOp::get(full, None)]);
        let resp = self.client.kv_client().txn(txn).await.map_err(engine)?;
        let rev = self.seen(resp.header());
        let op = resp
            .op_responses()
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Engine("etcd transaction without a response".into()))?;
        Ok((resp.succeeded(), rev, op))
    }

    /// Why a conditional write failed: the key is gone, or it is at another revision.
    fn failure(&self, key: &str, expected: Option<Revision>, op: TxnOpResponse) -> StoreError {
        let current = match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision() as Revision),
            _ => None,
        };
        match (current, expected) {
            (Some(current), Some(expected)) => StoreError::Conflict {
                key: key.into(),
                expected,
                current,
            },
            _ => StoreError::NotFound(key.into()),
        }
    }
}

/// Compacts to `newest - keep` every `interval` while the store exists.
async fn compactor(inner: Weak<Inner>, keep: u64, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(inner) = inner.upgrade() else { return };
        let target = inner.revision.load(Ordering::Acquire).saturating_sub(keep);
        if target > inner.compacted.load(Ordering::Acquire) {
            match inner.compact(target).await {
                Ok(()) => debug!(revision = target, "compacted etcd"),
                Err(e) => warn!(error = %e, "compacting etcd"),
            }
        }
    }
}

/// The first key after every key that starts with `prefix` (etcd's range end for a prefix).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: to the end of the key space.
    vec![0]
}

fn is_compacted(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains("compacted"))
}

fn engine(e: etcd_client::Error) -> StoreError {
    StoreError::Engine(format!("etcd: {e}"))
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let resp = self
            .inner
            .client
            .kv_client()
            .get(self.inner.full(key), None)
            .await
            .map_err(engine)?;
        self.inner.seen(resp.header());
        Ok(resp.kvs().first().map(|kv| self.inner.kv(kv)))
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult, StoreError> {
        self.list_at(prefix, options, None).await
    }

    async fn list_at(
        &self,
        prefix: &str,
        options: ListOptions,
        revision: Option<Revision>,
    ) -> Result<ListResult, StoreError> {
        let inner = &self.inner;
        let full_prefix = inner.full(prefix);
        let start = match &options.start_after {
            // The smallest key greater than `start_after` (never before the prefix).
            Some(after) => {
                let mut k = inner.full(after).into_bytes();
                k.push(0);
                k.max(full_prefix.clone().into_bytes())
            }
            None => full_prefix.clone().into_bytes(),
        };
        // Read in chunks pinned to one revision: a single range of many objects would exceed
        // the gRPC message limit (4 MiB) and hold etcd busy.
        let mut pinned = revision.filter(|r| *r > 0);
        let mut start = start;
        let mut items: Vec<KeyValue> = Vec::new();
        let more = loop {
            // etcd reads limit 0 as "no limit"; ask for at least one (and one extra to learn
            // whether more follow a limited list).
            let want = options.limit.map_or(LIST_CHUNK, |l| {
                (l + 1).saturating_sub(items.len()).clamp(1, LIST_CHUNK)
            });
            let mut get = GetOptions::new()
                .with_range(prefix_end(&full_prefix))
                .with_limit(want as i64);
            if let Some(rev) = pinned {
                get = get.with_revision(rev as i64);
            }
            let resp = match inner.client.kv_client().get(start.clone(), Some(get)).await {
                Ok(resp) => resp,
                Err(e) if is_compacted(&e) => {
                    let requested = pinned.unwrap_or_default();
                    let known = inner.compacted.load(Ordering::Acquire);
                    return Err(StoreError::Compacted {
                        requested,
                        oldest: known.max(requested + 1),
                    });
                }
                Err(e) => return Err(engine(e)),
            };
            let header = inner.seen(resp.header());
            pinned.get_or_insert(header);
            items.extend(resp.kvs().iter().map(|kv| inner.kv(kv)));
            if let Some(limit) = options.limit
                && items.len() > limit
            {
                items.truncate(limit);
                break true;
            }
            let Some(last) = resp.kvs().last().filter(|_| resp.more()) else {
                break false;
            };
            start = last.key().to_vec();
            start.push(0);
        };
        Ok(ListResult {
            items,
            // The revision the first chunk read at (later headers show etcd's newest).
            revision: pinned.unwrap_or_default(),
            more,
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let full = self.inner.full(key);
        let absent = Compare::create_revision(full.as_str(), CompareOp::Equal, 0);
        let put = TxnOp::put(full.as_str(), value, None);
        match self.inner.txn(&full, vec![absent], put).await? {
            (true, rev, _) => Ok(rev),
            (false, ..) => Err(StoreError::AlreadyExists(key.into())),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        let full = self.inner.full(key);
        let compares = conditions(&full, expected);
        let put = TxnOp::put(full.as_str(), value, None);
        match self.inner.txn(&full, compares, put).await? {
            (true, rev, _) => Ok(rev),
            (false, _, op) => Err(self.inner.failure(key, expected, op)),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError> {
        let full = self.inner.full(key);
        let compares = conditions(&full, expected);
        let del = TxnOp::delete(full.as_str(), Some(DeleteOptions::new().with_prev_key()));
        match self.inner.txn(&full, compares, del).await? {
            (true, rev, TxnOpResponse::Delete(d)) => {
                let prev = d
                    .prev_kvs()
                    .first()
                    .ok_or_else(|| StoreError::NotFound(key.into()))?;
                let mut last = self.inner.kv(prev);
                last.mod_revision = rev;
                Ok((rev, last))
            }
            (true, ..) => Err(StoreError::Engine(
                "etcd delete without a delete response".into(),
            )),
            (false, _, op) => Err(self.inner.failure(key, expected, op)),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        watch::start(Arc::clone(&self.inner), prefix, after).await
    }

    fn revision(&self) -> Revision {
        self.inner.revision.load(Ordering::Acquire)
    }
}

/// The key exists and, with `expected`, is at that mod revision.
fn conditions(full: &str, expected: Option<Revision>) -> Vec<Compare> {
    let mut c = vec![Compare::version(full, CompareOp::Greater, 0)];
    if let Some(rev) = expected {
        c.push(Compare::mod_revision(full, CompareOp::Equal, rev as i64));
    }
    c
}
