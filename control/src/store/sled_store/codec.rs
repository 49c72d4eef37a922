//! The on-disk byte layout of the sled store's objects and revision-log entries.
//!
//! Object value: `create_revision u64 BE | mod_revision u64 BE | value`.
//! Log entry: `kind u8 | create u64 | mod u64 | key_len u32 | key | has_prev u8 |
//! [prev_len u32 | prev] | value`. Log keys are the revision as u64 big-endian, so sled's key
//! order is revision order.

use crate::store::{EventKind, KeyValue, Revision, StoreError, WatchEvent};

/// A stored record that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The record ended before the named field.
    #[error("stored record truncated at {0}")]
    Truncated(&'static str),
    /// An unknown event kind byte.
    #[error("unknown event kind {0}")]
    Kind(u8),
    /// A stored key is not UTF-8.
    #[error("stored key is not UTF-8")]
    Key(#[from] std::string::FromUtf8Error),
}

impl From<CodecError> for StoreError {
    fn from(e: CodecError) -> Self {
        StoreError::Engine(e.to_string())
    }
}

/// The sled key of revision `rev` in the log tree.
pub fn rev_key(rev: Revision) -> [u8; 8] {
    rev.to_be_bytes()
}

/// Decodes a log-tree key.
pub fn decode_rev(bytes: &[u8]) -> Result<Revision, CodecError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| CodecError::Truncated("revision"))?;
    Ok(u64::from_be_bytes(arr))
}

/// Encodes an object's stored value.
pub fn encode_object(create: Revision, modr: Revision, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&create.to_be_bytes());
    out.extend_from_slice(&modr.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// Decodes an object's stored value into a [`KeyValue`] for `key`.
pub fn decode_object(key: &str, bytes: &[u8]) -> Result<KeyValue, CodecError> {
    let mut r = Reader(bytes);
    let create_revision = r.u64("create_revision")?;
    let mod_revision = r.u64("mod_revision")?;
    Ok(KeyValue {
        key: key.to_owned(),
        value: r.0.to_vec(),
        create_revision,
        mod_revision,
    })
}

/// Encodes one revision-log entry.
pub fn encode_event(ev: &WatchEvent) -> Vec<u8> {
    let prev_len = ev.prev.as_ref().map_or(0, |p| 4 + p.len());
    let mut out = Vec::with_capacity(30 + ev.kv.key.len() + prev_len + ev.kv.value.len());
    out.push(match ev.kind {
        EventKind::Put => 0,
        EventKind::Delete => 1,
    });
    out.extend_from_slice(&ev.kv.create_revision.to_be_bytes());
    out.extend_from_slice(&ev.kv.mod_revision.to_be_bytes());
    put_bytes(&mut out, ev.kv.key.as_bytes());
    match &ev.prev {
        Some(prev) => {
            out.push(1);
            put_bytes(&mut out, prev);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&ev.kv.value);
    out
}

/// Decodes one revision-log entry.
pub fn decode_event(bytes: &[u8]) -> Result<WatchEvent, CodecError> {
    let mut r = Reader(bytes);
    let kind = match r.u8("kind")? {
        0 => EventKind::Put,
        1 => EventKind::Delete,
        other => return Err(CodecError::Kind(other)),
    };
    let create_revision = r.u64("create_revision")?;
    let mod_revision = r.u64("mod_revision")?;
    let key = String::from_utf8(r.bytes("key")?.to_vec())?;
    let prev = match r.u8("has_prev")? {
        0 => None,
        _ => Some(r.bytes("prev")?.to_vec()),
    };
    let kv = KeyValue {
        key,
        value: r.0.to_vec(),
        create_revision,
        mod_revision,
    };
    Ok(WatchEvent { kind, kv, prev })
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("stored keys and values are below 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A cursor over a stored record.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError::Truncated(what));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let b = self.take(8, what)?;
        Ok(u64::from_be_bytes(
            b.try_into().map_err(|_| CodecError::Truncated(what))?,
        ))
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], CodecError> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let kv = KeyValue {
            key: "/registry/pods/default/nginx".into(),
            value: b"{\"v\":2}".to_vec(),
            create_revision: 3,
            mod_revision: 9,
        };
        for (kind, prev) in [
            (EventKind::Put, None),
            (EventKind::Put, Some(b"old".to_vec())),
            (EventKind::Delete, Some(Vec::new())),
        ] {
            let ev = WatchEvent {
                kind,
                kv: kv.clone(),
                prev,
            };
            assert_eq!(decode_event(&encode_event(&ev)).unwrap(), ev);
        }
    }

    #[test]
    fn objects_round_trip_and_truncation_is_an_error() {
        let bytes = encode_object(4, 7, b"abc");
        let kv = decode_object("/k", &bytes).unwrap();
        assert_eq!(
            (kv.create_revision, kv.mod_revision, kv.value.as_slice()),
            (4, 7, &b"abc"[..])
        );
        assert!(decode_object("/k", &bytes[..10]).is_err());
        let ev = WatchEvent {
            kind: EventKind::Put,
            kv,
            prev: Some(b"p".to_vec()),
        };
        let enc = encode_event(&ev);
        assert!(decode_event(&enc[..20]).is_err());
    }
}
