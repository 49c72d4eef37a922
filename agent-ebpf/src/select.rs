//! Backend selection shared by the socket and XDP programs: service entry → slot → backend.
use skiff_agent_common::{Backend, BackendKey, ServiceKey};

use crate::{BACKENDS, SERVICES};

/// What a destination resolves to.
pub(crate) enum Pick {
    /// Not a service address: leave it alone.
    NotService,
    /// A service without a usable backend: refuse.
    NoBackend,
    /// Send it here (the backend and its index in the service's slot).
    Backend(Backend, u32),
}

/// One lookup; `None` when the slot read from the service entry was swapped out meanwhile.
#[inline(always)]
fn pick_once(key: &ServiceKey, hash: u32) -> Option<Pick> {
    // SAFETY: values are copied out at once; a concurrent update can only change which backend
    // is chosen, never make the read invalid.
    let Some(svc) = (unsafe { SERVICES.get(key) }).copied() else {
        return Some(Pick::NotService);
    };
    if svc.count == 0 {
        return Some(Pick::NoBackend);
    }
    let index = hash % svc.count;
    // SAFETY: as above.
    let backend = unsafe {
        BACKENDS.get(BackendKey {
            slot: svc.slot,
            index,
        })
    }
    .copied()?;
    Some(Pick::Backend(backend, index))
}

/// The backend at `index` of `key`'s current set, if it is still `expected` (session affinity).
#[inline(always)]
pub(crate) fn still_there(key: &ServiceKey, index: u32, expected: &Backend) -> bool {
    // SAFETY: as in `pick_once`.
    let Some(svc) = (unsafe { SERVICES.get(key) }).copied() else {
        return false;
    };
    if index >= svc.count {
        return false;
    }
    // SAFETY: as above.
    let found = unsafe {
        BACKENDS.get(BackendKey {
            slot: svc.slot,
            index,
        })
    }
    .copied();
    found.is_some_and(|b| b.addr == expected.addr && b.port == expected.port)
}

/// Picks the backend for `key` with `hash` (random per connect, or a flow hash). A miss in
/// `BACKENDS` means the agent swapped the set between the two reads: the service entry is read
/// again (the new slot is complete before the entry points at it).
#[inline(always)]
pub(crate) fn pick(key: &ServiceKey, hash: u32) -> Pick {
    if let Some(p) = pick_once(key, hash) {
        return p;
    }
    pick_once(key, hash).unwrap_or(Pick::NoBackend)
}
