//! The embedded store on sled 0.34: objects, a revision log for watches, grouped flushes.
//!
//! Layout: tree `objects` maps a key to `(create_revision, mod_revision, value)`; tree `log`
//! maps each revision (u64 big-endian) to the event that made it; tree `meta` holds the last
//! revision given out and the compacted revision. One sled transaction writes all three, so
//! after a crash they agree.
//!
//! Writes are serialized (a write lock held only for the in-memory sled transaction); each one
//! then waits for the flusher thread, which runs one `fsync` for every write committed before it
//! started (group commit). Only flushed writes are published to watchers and acknowledged, and a
//! read waits until everything committed before it is flushed, so nobody ever sees a write that
//! a crash could take back.
//!
//! Watch revisions: `watch(prefix, 0)` means "from now" (no replay; the API server lists first
//! for resourceVersion=0). `watch(prefix, r)` replays the log after `r`, then continues live.
//! The log keeps the newest [`SledOptions::history`] revisions; older `r` fail with `Compacted`.
//! A watcher that falls behind the live channel catches up from the log and only ends with
//! `Compacted` when what it missed is no longer kept.
//!
//! A write future dropped after its transaction committed still takes effect (like an etcd
//! request whose reply was lost); only an `Ok` proves it is durable.

mod codec;
mod flusher;
mod snapshot;
#[cfg(test)]
mod tests;
mod watch;
mod write;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tokio_stream::wrappers::ReceiverStream;
use tracing::info;

pub use self::snapshot::{SnapshotInfo, restore_snapshot};

use self::codec::{decode_object, decode_rev};
use self::flusher::{Durable, FlushQueue};
use self::watch::Subscription;
use self::write::Op;
use super::{
    KeyValue, ListOptions, ListResult, Revision, Store, StoreError, WatchEvent, WatchStream,
};

const META_REVISION: &[u8] = b"revision";
const META_COMPACTED: &[u8] = b"compacted";
/// How long `open` waits for the directory lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Tunables of the sled store.
#[derive(Debug, Clone)]
pub struct SledOptions {
    /// How many of the newest revisions the log keeps for watch replay.
    pub history: u64,
    /// Live events buffered per watcher before it counts as fallen behind (it then catches up
    /// from the log, or ends with `Compacted` if the log no longer has what it missed).
    pub watch_buffer: usize,
    /// sled's page cache size.
    pub cache_capacity_bytes: u64,
}

impl Default for SledOptions {
    fn default() -> Self {
        Self {
            history: 10_000,
            watch_buffer: 4096,
            cache_capacity_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The sled-backed [`Store`]. Dropping it flushes, stops its flusher thread and ends its
/// watches; the directory can then be opened again.
pub struct SledStore {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

/// State shared by the store handle, the flusher thread, blocking tasks and watch tasks.
struct Shared {
    db: sled::Db,
    objects: sled::Tree,
    log: sled::Tree,
    meta: sled::Tree,
    /// The newest committed (not necessarily flushed) revision. Writers hold it exclusively for
    /// their transaction; reads hold it shared, for a consistent view and revision.
    writer: RwLock<Revision>,
    queue: Mutex<FlushQueue>,
    queue_cv: Condvar,
    /// The live channel; `None` once the store is closed. Subscribing and publishing both hold
    /// this lock, which makes the replay/live seam exact.
    hub: Mutex<Option<broadcast::Sender<Arc<WatchEvent>>>>,
    /// The newest revision published to watchers (and durable).
    published: AtomicU64,
    durable: tokio::sync::watch::Sender<Durable>,
    /// Log entries up to this revision have been (or are being) removed.
    compacted: AtomicU64,
    history: u64,
    flushes: AtomicU64,
    /// Held by the flusher around each flush (uncontended); tests hold it to stall flushing.
    flush_gate: Mutex<()>,
}

impl SledStore {
    /// Opens (or creates) the store in directory `path` with default options.
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        Self::open_with(path, SledOptions::default())
    }

    /// Opens (or creates) the store in directory `path`.
    pub fn open_with(path: &Path, options: SledOptions) -> Result<SledStore, StoreError> {
        let db = open_db(path, &options)?;
        let objects = db.open_tree("objects").map_err(engine)?;
        let log = db.open_tree("log").map_err(engine)?;
        let meta = db.open_tree("meta").map_err(engine)?;
        let read_meta = |name: &[u8]| -> Result<Revision, StoreError> {
            match meta.get(name).map_err(engine)? {
                Some(v) => Ok(decode_rev(&v)?),
                None => Ok(0),
            }
        };
        let revision = read_meta(META_REVISION)?;
        let compacted = read_meta(META_COMPACTED)?;
        let (hub, _) = broadcast::channel(options.watch_buffer.max(1));
        let (durable, _) = tokio::sync::watch::channel(Durable {
            revision,
            failed: None,
        });
        let shared = Arc::new(Shared {
            db,
            objects,
            log,
            meta,
            writer: RwLock::new(revision),
            queue: Mutex::new(FlushQueue::default()),
            queue_cv: Condvar::new(),
            hub: Mutex::new(Some(hub)),
            published: AtomicU64::new(revision),
            durable,
            compacted: AtomicU64::new(compacted),
            history: options.history.max(1),
            flushes: AtomicU64::new(0),
            flush_gate: Mutex::new(()),
        });
        // A crash during compaction can leave entries the meta tree says are gone.
        if compacted > 0 {
            flusher::remove_log_range(&shared, 0, compacted).map_err(engine)?;
        }
        let for_thread = Arc::clone(&shared);
        let flusher = std::thread::Builder::new()
            .name("sled-flusher".into())
            .spawn(move || flusher::run(for_thread))
            .map_err(|e| StoreError::Engine(format!("starting the flusher thread: {e}")))?;
        info!(path = %path.display(), revision, compacted, "opened sled store");
        Ok(SledStore {
            shared,
            flusher: Some(flusher),
        })
    }

    /// How many flushes (fsyncs) the store has run; concurrent writers share them.
    pub fn flush_count(&self) -> u64 {
        self.shared.flushes.load(Ordering::Relaxed)
    }

    /// The oldest revision a watch can still start after (`watch(prefix, r)` needs `r` ≥ this).
    pub fn compacted_revision(&self) -> Revision {
        self.shared.compacted.load(Ordering::Acquire)
    }

    async fn write(&self, key: &str, op: Op) -> Result<WatchEvent, StoreError> {
        let shared = Arc::clone(&self.shared);
        let key = key.to_owned();
        let ev = blocking(move || write::apply(&shared, &key, &op)).await?;
        self.shared.wait_durable(ev.kv.mod_revision).await?;
        Ok(ev)
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        self.shared.lock_queue().shutdown = true;
        self.shared.queue_cv.notify_all();
        if let Some(handle) = self.flusher.take() {
            let _ = handle.join();
        }
    }
}

#[async_trait::async_trait]
impl Store for SledStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let shared = Arc::clone(&self.shared);
        let key = key.to_owned();
        let (kv, seen) = blocking(move || {
            let committed = shared.read_lock();
            let kv = match shared.objects.get(key.as_bytes()).map_err(engine)? {
                Some(v) => Some(decode_object(&key, &v)?),
                None => None,
            };
            Ok((kv, *committed))
        })
        .await?;
        self.shared.wait_durable(seen).await?;
        Ok(kv)
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult, StoreError> {
        let shared = Arc::clone(&self.shared);
        let prefix = prefix.to_owned();
        let result = blocking(move || list_blocking(&shared, &prefix, &options)).await?;
        self.shared.wait_durable(result.revision).await?;
        Ok(result)
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        Ok(self.write(key, Op::Create(value)).await?.kv.mod_revision)
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        Ok(self
            .write(key, Op::Update { value, expected })
            .await?
            .kv
            .mod_revision)
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError> {
        let ev = self.write(key, Op::Delete { expected }).await?;
        Ok((ev.kv.mod_revision, ev.kv))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let sub = self
            .shared
            .subscribe()
            .ok_or_else(|| StoreError::Engine("store is closed".into()))?;
        let after = if after == 0 { sub.published } else { after };
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                oldest: compacted + 1,
            });
        }
        let (tx, rx) = tokio::sync::mpsc::channel(watch::STREAM_BUFFER);
        let weak = Arc::downgrade(&self.shared);
        tokio::spawn(watch::run(weak, prefix.to_owned(), after, sub, tx));
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    fn revision(&self) -> Revision {
        self.shared.published.load(Ordering::Acquire)
    }
}

/// Opens sled's database. A store dropped in this process a moment ago can still hold the
/// directory lock while sled's IO threads finish (a known sled race), so a busy lock is retried
/// for up to [`LOCK_WAIT`] before failing; another process holding it fails the same way.
fn open_db(path: &Path, options: &SledOptions) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(options.cache_capacity_bytes)
        // The flusher thread decides when to fsync.
        .flush_every_ms(None);
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other.map_err(engine),
        }
    }
}

fn list_blocking(
    shared: &Shared,
    prefix: &str,
    options: &ListOptions,
) -> Result<ListResult, StoreError> {
    use std::ops::Bound;
    let committed = shared.read_lock();
    let start = match &options.start_after {
        Some(s) if s.as_str() >= prefix => Bound::Excluded(s.as_bytes()),
        _ => Bound::Included(prefix.as_bytes()),
    };
    let limit = options.limit.unwrap_or(usize::MAX);
    let mut items = Vec::new();
    let mut more = false;
    for item in shared.objects.range::<&[u8], _>((start, Bound::Unbounded)) {
        let (k, v) = item.map_err(engine)?;
        if !k.starts_with(prefix.as_bytes()) {
            break;
        }
        if items.len() == limit {
            more = true;
            break;
        }
        let key = std::str::from_utf8(&k)
            .map_err(|_| StoreError::Engine("stored key is not UTF-8".into()))?;
        items.push(decode_object(key, &v)?);
    }
    Ok(ListResult {
        items,
        revision: *committed,
        more,
    })
}

impl Shared {
    fn lock_queue(&self) -> MutexGuard<'_, FlushQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read_lock(&self) -> RwLockReadGuard<'_, Revision> {
        self.writer.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a live subscription; `None` once the store is closed.
    fn subscribe(&self) -> Option<Subscription> {
        let hub = self.hub.lock().unwrap_or_else(|e| e.into_inner());
        let rx = hub.as_ref()?.subscribe();
        Some(Subscription {
            rx,
            published: self.published.load(Ordering::Acquire),
        })
    }

    /// Hands flushed events (in revision order) to watchers.
    fn publish(&self, events: Vec<WatchEvent>) {
        let hub = self.hub.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = events.last() {
            self.published
                .store(last.kv.mod_revision, Ordering::Release);
        }
        if let Some(tx) = hub.as_ref() {
            for ev in events {
                // No receivers is fine: nobody is watching.
                let _ = tx.send(Arc::new(ev));
            }
        }
    }

    /// Ends every live subscription.
    fn close_hub(&self) {
        self.hub.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Waits until revision `rev` is on disk.
    async fn wait_durable(&self, rev: Revision) -> Result<(), StoreError> {
        if self.durable.borrow().revision >= rev {
            return Ok(());
        }
        let mut rx = self.durable.subscribe();
        let state = rx
            .wait_for(|d| d.revision >= rev || d.failed.is_some())
            .await
            .map_err(|_| StoreError::Engine("store closed before the write was flushed".into()))?;
        match &state.failed {
            Some(msg) if state.revision < rev => Err(StoreError::Engine(format!(
                "flush failed, outcome unknown: {msg}"
            ))),
            _ => Ok(()),
        }
    }
}

/// Runs a blocking sled operation off the async worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Engine(format!("blocking store task failed: {e}")))?
}

fn engine(e: sled::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}
