//! Backend sets in the pinned maps: each service entry names a slot of `BACKENDS`; a new set is
//! written to a free slot and swapped in by one update of the service entry (see
//! `skiff-agent-common` for the layout and why this is atomic for the programs).

use std::collections::{BTreeSet, HashMap as StdHashMap};
use std::net::SocketAddrV4;

use aya::maps::{HashMap, MapData, MapError};
use skiff_agent_common::{
    AFFINITY_CFG_MAP, BACKENDS_MAP, Backend, BackendKey, MAX_BACKENDS_PER_SERVICE, MAX_SLOT,
    SERVICES_MAP, ServiceKey, ServiceValue,
};
use tracing::{debug, info};

use super::{L4Proto, LbError, Programmed, ServiceLb, Vip};

/// Which slot each service uses and which slots are free (rebuilt from the maps on load).
#[derive(Debug, Default)]
pub struct SlotState {
    current: StdHashMap<Vip, ServiceValue>,
    /// Slots given back, reused first.
    free: BTreeSet<u32>,
    /// Every slot above this has never been handed out.
    high: u32,
}

impl SlotState {
    /// Number of services in the map.
    pub fn len(&self) -> usize {
        self.current.len()
    }

    /// Whether no service is in the map.
    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    fn take(&mut self) -> Result<u32, LbError> {
        if let Some(slot) = self.free.pop_first() {
            return Ok(slot);
        }
        if self.high >= MAX_SLOT {
            return Err(LbError::Full("no free backend slot"));
        }
        self.high += 1;
        Ok(self.high)
    }

    fn give_back(&mut self, slot: u32) {
        if slot != 0 {
            self.free.insert(slot);
        }
    }

    /// Rebuilds the state from the slots that `used` names; everything else up to the highest
    /// used slot is free.
    fn rebuild(&mut self, current: StdHashMap<Vip, ServiceValue>) {
        let used: BTreeSet<u32> = current
            .values()
            .map(|v| v.slot)
            .filter(|s| *s != 0)
            .collect();
        self.high = used.last().copied().unwrap_or(0);
        self.free = (1..=self.high).filter(|s| !used.contains(s)).collect();
        self.current = current;
    }
}

fn not_found(e: &MapError) -> bool {
    match e {
        MapError::KeyNotFound => true,
        MapError::SyscallError(e) => e.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

fn key_of(vip: Vip) -> ServiceKey {
    ServiceKey::new(*vip.addr.ip(), vip.addr.port(), vip.proto.number())
}

impl ServiceLb {
    fn services_map(&mut self) -> Result<HashMap<&mut MapData, ServiceKey, ServiceValue>, LbError> {
        let map = self
            .ebpf
            .map_mut(SERVICES_MAP)
            .ok_or(LbError::Missing(SERVICES_MAP))?;
        Ok(HashMap::try_from(map)?)
    }

    fn backends_map(&mut self) -> Result<HashMap<&mut MapData, BackendKey, Backend>, LbError> {
        let map = self
            .ebpf
            .map_mut(BACKENDS_MAP)
            .ok_or(LbError::Missing(BACKENDS_MAP))?;
        Ok(HashMap::try_from(map)?)
    }

    /// Reads the service entries left by an earlier agent, and deletes backend slots no service
    /// names (an agent killed in the middle of a swap).
    pub(super) fn adopt(&mut self) -> Result<(), LbError> {
        let mut current = StdHashMap::new();
        for item in self.services_map()?.iter() {
            let (key, value) = item?;
            if let Some(proto) = L4Proto::from_number(key.proto) {
                let vip = Vip::new(SocketAddrV4::new(key.ip(), key.host_port()), proto);
                current.insert(vip, value);
            }
        }
        let used: BTreeSet<u32> = current.values().map(|v| v.slot).collect();
        let mut backends = self.backends_map()?;
        let stale: Vec<BackendKey> = backends
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !used.contains(&k.slot))
            .collect();
        for key in &stale {
            let _ = backends.remove(key);
        }
        if !stale.is_empty() {
            info!(entries = stale.len(), "removed orphaned backend entries");
        }
        self.slots.rebuild(current);
        Ok(())
    }

    /// Points `vip` at `backends` (in this order; an empty set makes connects to it fail).
    /// Unchanged sets are not rewritten. The new set goes to a fresh slot that is swapped in
    /// with one update of the service entry; the old slot is deleted afterwards.
    pub fn set_backends(&mut self, vip: Vip, backends: &[SocketAddrV4]) -> Result<(), LbError> {
        if backends.len() > MAX_BACKENDS_PER_SERVICE as usize {
            return Err(LbError::Full("too many backends for one service"));
        }
        let old = self.slots.current.get(&vip).copied();
        if let Some(old) = old
            && self.slot_backends(old)? == backends
        {
            return Ok(());
        }
        let value = if backends.is_empty() {
            ServiceValue::new(0, 0)
        } else {
            let slot = self.slots.take()?;
            let mut map = self.backends_map()?;
            for (index, b) in backends.iter().enumerate() {
                let key = BackendKey {
                    slot,
                    index: index as u32,
                };
                if let Err(e) = map.insert(key, Backend::new(*b.ip(), b.port()), 0) {
                    for i in 0..index as u32 {
                        let _ = map.remove(&BackendKey { slot, index: i });
                    }
                    self.slots.give_back(slot);
                    return Err(e.into());
                }
            }
            ServiceValue::new(slot, backends.len() as u32)
        };
        self.services_map()?.insert(key_of(vip), value, 0)?;
        self.slots.current.insert(vip, value);
        if let Some(old) = old {
            self.free_slot(old)?;
        }
        debug!(%vip, backends = backends.len(), slot = value.slot, "service programmed");
        Ok(())
    }

    /// Removes `vip`; returns whether it was present.
    pub fn remove(&mut self, vip: Vip) -> Result<bool, LbError> {
        let removed = match self.services_map()?.remove(&key_of(vip)) {
            Ok(()) => true,
            Err(e) if not_found(&e) => false,
            Err(e) => return Err(e.into()),
        };
        if let Some(old) = self.slots.current.remove(&vip) {
            self.free_slot(old)?;
        }
        Ok(removed)
    }

    fn free_slot(&mut self, value: ServiceValue) -> Result<(), LbError> {
        if value.slot == 0 {
            return Ok(());
        }
        let mut map = self.backends_map()?;
        for index in 0..value.count {
            match map.remove(&BackendKey {
                slot: value.slot,
                index,
            }) {
                Err(e) if !not_found(&e) => return Err(e.into()),
                _ => {}
            }
        }
        self.slots.give_back(value.slot);
        Ok(())
    }

    fn slot_backends(&mut self, value: ServiceValue) -> Result<Vec<SocketAddrV4>, LbError> {
        let map = self.backends_map()?;
        let mut out = Vec::with_capacity(value.count as usize);
        for index in 0..value.count {
            match map.get(
                &BackendKey {
                    slot: value.slot,
                    index,
                },
                0,
            ) {
                Ok(b) => out.push(SocketAddrV4::new(b.ip(), b.host_port())),
                Err(e) if not_found(&e) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Every service and its backend set as the maps hold them.
    pub fn programmed(&mut self) -> Result<Programmed, LbError> {
        let current: Vec<(Vip, ServiceValue)> =
            self.slots.current.iter().map(|(k, v)| (*k, *v)).collect();
        let mut out = Programmed::new();
        for (vip, value) in current {
            out.insert(vip, self.slot_backends(value)?);
        }
        Ok(out)
    }

    fn affinity_map(&mut self) -> Result<HashMap<&mut MapData, ServiceKey, u32>, LbError> {
        let map = self
            .ebpf
            .map_mut(AFFINITY_CFG_MAP)
            .ok_or(LbError::Missing(AFFINITY_CFG_MAP))?;
        Ok(HashMap::try_from(map)?)
    }

    /// Gives `vip` ClientIP session affinity with this timeout (seconds), or none.
    pub fn set_affinity(&mut self, vip: Vip, timeout_s: Option<u32>) -> Result<(), LbError> {
        let mut map = self.affinity_map()?;
        match timeout_s {
            Some(t) => map.insert(key_of(vip), t, 0)?,
            None => match map.remove(&key_of(vip)) {
                Err(e) if !not_found(&e) => return Err(e.into()),
                _ => {}
            },
        }
        Ok(())
    }

    /// Every service with session affinity and its timeout, as the map holds them.
    pub fn affinities(&mut self) -> Result<StdHashMap<Vip, u32>, LbError> {
        let mut out = StdHashMap::new();
        for item in self.affinity_map()?.iter() {
            let (key, timeout) = item?;
            if let Some(proto) = L4Proto::from_number(key.proto) {
                out.insert(
                    Vip::new(SocketAddrV4::new(key.ip(), key.host_port()), proto),
                    timeout,
                );
            }
        }
        Ok(out)
    }

    /// How many `BACKENDS` entries exist (tests: slots are freed after swaps).
    pub fn backend_entries(&mut self) -> Result<usize, LbError> {
        Ok(self.backends_map()?.keys().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_rebuilt_from_what_is_in_use() {
        let mut s = SlotState::default();
        assert_eq!(s.take().unwrap(), 1);
        assert_eq!(s.take().unwrap(), 2);
        s.give_back(1);
        s.give_back(0);
        assert_eq!(s.take().unwrap(), 1);
        assert_eq!(s.take().unwrap(), 3);

        let vip = |port| Vip::new(SocketAddrV4::new([10, 43, 0, 1].into(), port), L4Proto::Tcp);
        let mut used = StdHashMap::new();
        used.insert(vip(80), ServiceValue::new(2, 1));
        used.insert(vip(81), ServiceValue::new(5, 1));
        used.insert(vip(82), ServiceValue::new(0, 0));
        s.rebuild(used);
        assert_eq!(s.len(), 3);
        let fresh: Vec<u32> = (0..4).map(|_| s.take().unwrap()).collect();
        assert_eq!(fresh, [1, 3, 4, 6]);
    }
}
