//! Backups of the sled store, like `etcdctl snapshot save|restore`: every object with its
//! revisions as of one revision, in one checksummed file.
//!
//! File: `skiff-snapshot-v1\n | revision u64 BE | count u64 BE | count × (key_len u32 BE | key |
//! object_len u32 BE | object) | sha256 of everything before`. `object` is the objects tree's
//! value (`create | mod | value`, see codec.rs), so revisions survive exactly.
//!
//! Saving is online: it holds the store's read lock (the one writers take exclusively for their
//! transaction) while it copies the objects tree, so the file is one consistent revision; writes
//! wait for that copy (reads do not). Restoring writes a fresh store whose revision is the
//! snapshot's and whose watch history starts there (older watches get `Compacted`, so clients
//! re-list, as after an etcd restore).

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::codec::{decode_object, rev_key};
use super::{META_COMPACTED, META_REVISION, SledOptions, SledStore, blocking, engine, open_db};
use crate::store::{Revision, StoreError};

const MAGIC: &[u8] = b"skiff-snapshot-v1\n";

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub revision: Revision,
    pub objects: u64,
}

fn io(what: &str, e: std::io::Error) -> StoreError {
    StoreError::Engine(format!("snapshot {what}: {e}"))
}

fn corrupt(why: &str) -> StoreError {
    StoreError::Engine(format!("snapshot is corrupt: {why}"))
}

/// A writer that hashes what it writes.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.inner.write_all(bytes)
    }
}

impl SledStore {
    /// Writes a consistent snapshot of the running store to `path` (atomically: a temporary
    /// file renamed into place after an fsync).
    pub async fn save_snapshot(&self, path: &Path) -> Result<SnapshotInfo, StoreError> {
        let shared = Arc::clone(&self.shared);
        let path = path.to_owned();
        let info = blocking(move || {
            let tmp = path.with_extension("part");
            let file = std::fs::File::create(&tmp).map_err(|e| io("create", e))?;
            let mut out = Hashing {
                inner: BufWriter::new(file),
                hash: Sha256::new(),
            };
            let committed = shared.read_lock();
            let revision = *committed;
            let count = shared.objects.len() as u64;
            let write = |out: &mut Hashing<_>| -> Result<u64, StoreError> {
                out.put(MAGIC).map_err(|e| io("write", e))?;
                out.put(&revision.to_be_bytes())
                    .map_err(|e| io("write", e))?;
                out.put(&count.to_be_bytes()).map_err(|e| io("write", e))?;
                let mut n = 0;
                for item in shared.objects.iter() {
                    let (k, v) = item.map_err(engine)?;
                    for part in [&k[..], &v[..]] {
                        out.put(&(part.len() as u32).to_be_bytes())
                            .and_then(|()| out.put(part))
                            .map_err(|e| io("write", e))?;
                    }
                    n += 1;
                }
                Ok(n)
            };
            let n = write(&mut out)?;
            drop(committed);
            if n != count {
                return Err(StoreError::Engine(format!(
                    "snapshot counted {count} objects but copied {n}"
                )));
            }
            let digest = out.hash.finalize();
            let mut file = out.inner.into_inner().map_err(|e| io("write", e.into()))?;
            file.write_all(&digest).map_err(|e| io("write", e))?;
            file.sync_all().map_err(|e| io("fsync", e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))?;
            Ok(SnapshotInfo {
                revision,
                objects: n,
            })
        })
        .await?;
        // Everything in the file is acknowledged-durable before the save reports success.
        self.shared.wait_durable(info.revision).await?;
        Ok(info)
    }
}

/// One object as the objects tree stores it: key, encoded object.
type RawObject = (Vec<u8>, Vec<u8>);

/// Reads and verifies a snapshot: its revision and objects.
fn read(path: &Path) -> Result<(Revision, Vec<RawObject>), StoreError> {
    let mut bytes = Vec::new();
    BufReader::new(std::fs::File::open(path).map_err(|e| io("open", e))?)
        .read_to_end(&mut bytes)
        .map_err(|e| io("read", e))?;
    if bytes.len() < MAGIC.len() + 16 + 32 || !bytes.starts_with(MAGIC) {
        return Err(corrupt("not a skiff snapshot"));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(corrupt("checksum mismatch"));
    }
    let mut r = &body[MAGIC.len()..];
    let mut take = |n: usize| -> Result<&[u8], StoreError> {
        if r.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, rest) = r.split_at(n);
        r = rest;
        Ok(head)
    };
    let u64_at = |b: &[u8]| u64::from_be_bytes(b.try_into().expect("8 bytes"));
    let revision = u64_at(take(8)?);
    let count = u64_at(take(8)?);
    let mut objects = Vec::new();
    for _ in 0..count {
        let mut part = || -> Result<Vec<u8>, StoreError> {
            let len = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes"));
            Ok(take(len as usize)?.to_vec())
        };
        let (key, object) = (part()?, part()?);
        let key_str = std::str::from_utf8(&key).map_err(|_| corrupt("key is not UTF-8"))?;
        let kv = decode_object(key_str, &object)?;
        if kv.mod_revision > revision {
            return Err(corrupt("object newer than the snapshot"));
        }
        objects.push((key, object));
    }
    Ok((revision, objects))
}

/// Creates a new store in directory `dir` (which must not hold one) from the snapshot `path`.
pub fn restore_snapshot(path: &Path, dir: &Path) -> Result<SnapshotInfo, StoreError> {
    let (revision, objects) = read(path)?;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| io("read dir", e))?
            .next()
            .is_some()
    {
        return Err(StoreError::Engine(format!(
            "{} is not empty: restore writes a fresh store",
            dir.display()
        )));
    }
    let db = open_db(dir, &SledOptions::default())?;
    let tree = db.open_tree("objects").map_err(engine)?;
    let meta = db.open_tree("meta").map_err(engine)?;
    db.open_tree("log").map_err(engine)?;
    let count = objects.len() as u64;
    for (key, object) in objects {
        tree.insert(key, object).map_err(engine)?;
    }
    // No history before the snapshot: watches from older revisions get `Compacted`.
    meta.insert(META_REVISION, &rev_key(revision))
        .map_err(engine)?;
    meta.insert(META_COMPACTED, &rev_key(revision))
        .map_err(engine)?;
    db.flush().map_err(engine)?;
    Ok(SnapshotInfo {
        revision,
        objects: count,
    })
}
