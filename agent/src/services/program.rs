//! Turns desired-state changes into map writes: a change to one service rewrites only that
//! service's entries that differ; a snapshot (and the first one after a restart) reconciles
//! every entry against what the pinned maps actually hold, removing stale ones.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::desired::{Affinity, Desired, Entries, NsName};
use super::stats::ProgrammingStats;
use crate::dns::Zone;
use crate::lb::{LbError, Programmed, ServiceLb, Vip};

/// The map operations the programmer needs (the eBPF maps, or a fake in tests).
pub trait Maps {
    fn set_backends(&mut self, vip: Vip, backends: &[SocketAddrV4]) -> Result<(), LbError>;
    fn remove(&mut self, vip: Vip) -> Result<bool, LbError>;
    fn programmed(&mut self) -> Result<Programmed, LbError>;
    /// Sets (`Some` seconds) or clears ClientIP session affinity of `vip`.
    fn set_affinity(&mut self, vip: Vip, timeout_s: Option<u32>) -> Result<(), LbError>;
    /// Every service address with session affinity, and its timeout.
    fn affinities(&mut self) -> Result<HashMap<Vip, u32>, LbError>;
}

impl Maps for ServiceLb {
    fn set_backends(&mut self, vip: Vip, backends: &[SocketAddrV4]) -> Result<(), LbError> {
        ServiceLb::set_backends(self, vip, backends)
    }

    fn remove(&mut self, vip: Vip) -> Result<bool, LbError> {
        ServiceLb::remove(self, vip)
    }

    fn programmed(&mut self) -> Result<Programmed, LbError> {
        ServiceLb::programmed(self)
    }

    fn set_affinity(&mut self, vip: Vip, timeout_s: Option<u32>) -> Result<(), LbError> {
        ServiceLb::set_affinity(self, vip, timeout_s)
    }

    fn affinities(&mut self) -> Result<HashMap<Vip, u32>, LbError> {
        ServiceLb::affinities(self)
    }
}

/// One change from the control plane.
#[derive(Debug)]
pub enum Change {
    Service(Box<Service>),
    ServiceRemoved(NsName),
    Slice(Box<EndpointSlice>),
    SliceRemoved(NsName),
}

/// Desired state plus what has been written for each service.
pub struct Programmer<M> {
    maps: M,
    desired: Desired,
    applied: HashMap<NsName, Entries>,
    /// Session-affinity timeouts written, per service.
    applied_affinity: HashMap<NsName, Affinity>,
    stats: Arc<ProgrammingStats>,
    /// Cluster DNS, kept in step with the desired state.
    zone: Option<Arc<Zone>>,
}

/// How many map writes a sync did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Writes {
    pub set: usize,
    pub removed: usize,
}

impl<M: Maps> Programmer<M> {
    pub fn new(maps: M, stats: Arc<ProgrammingStats>) -> Self {
        Self {
            maps,
            desired: Desired::default(),
            applied: HashMap::new(),
            applied_affinity: HashMap::new(),
            stats,
            zone: None,
        }
    }

    /// Also keeps `zone` (cluster DNS) in step with every snapshot and change.
    pub fn with_zone(mut self, zone: Arc<Zone>) -> Self {
        zone.replace_all(self.desired.dns_records());
        self.zone = Some(zone);
        self
    }

    /// Programs entries of the agent's own under `key` (kept across snapshots).
    pub fn set_static(&mut self, key: NsName, entries: Entries) -> Result<Writes, LbError> {
        self.desired.set_static(key.clone(), entries);
        self.sync_service(&key)
    }

    /// The maps (tests).
    pub fn maps(&mut self) -> &mut M {
        &mut self.maps
    }

    /// Replaces the desired state and reconciles every entry against the maps.
    pub fn snapshot(
        &mut self,
        services: Vec<Service>,
        slices: Vec<EndpointSlice>,
        received: Instant,
    ) -> Result<Writes, LbError> {
        self.desired.replace_all(services, slices);
        if let Some(zone) = &self.zone {
            zone.replace_all(self.desired.dns_records());
        }
        let writes = self.resync()?;
        self.stats.record(received.elapsed(), None);
        Ok(writes)
    }

    /// Applies one change, touching only the affected services' entries.
    pub fn apply(&mut self, change: Change, received: Instant) -> Result<Writes, LbError> {
        let mut trigger = None;
        let affected = match change {
            Change::Service(s) => self.desired.upsert_service(*s).into_iter().collect(),
            Change::ServiceRemoved(k) => vec![self.desired.remove_service(&k)],
            Change::Slice(s) => {
                trigger = super::stats::trigger_time(&s);
                self.desired.upsert_slice(*s)
            }
            Change::SliceRemoved(k) => self.desired.remove_slice(&k),
        };
        if let Some(zone) = &self.zone {
            for service in &affected {
                zone.set(service, self.desired.dns_record(service));
            }
        }
        let mut total = Writes::default();
        for service in &affected {
            let w = self.sync_service(service)?;
            total.set += w.set;
            total.removed += w.removed;
        }
        if total != Writes::default() {
            self.stats.record(received.elapsed(), trigger);
            tracing::debug!(
                services = ?affected.iter().map(ToString::to_string).collect::<Vec<_>>(),
                set = total.set,
                removed = total.removed,
                micros = received.elapsed().as_micros() as u64,
                "service maps programmed"
            );
        }
        Ok(total)
    }

    fn sync_service(&mut self, service: &NsName) -> Result<Writes, LbError> {
        let new = self.desired.entries(service);
        let old = self.applied.remove(service).unwrap_or_default();
        let mut w = Writes::default();
        // Record the target first: after an error the next resync compares against the maps.
        if !new.is_empty() {
            self.applied.insert(service.clone(), new.clone());
        }
        for vip in old.keys().filter(|v| !new.contains_key(v)) {
            self.maps.remove(*vip)?;
            w.removed += 1;
        }
        for (vip, backends) in &new {
            if old.get(vip) != Some(backends) {
                self.maps.set_backends(*vip, backends)?;
                w.set += 1;
            }
        }
        let new = self.desired.affinity(service);
        let old = self.applied_affinity.remove(service).unwrap_or_default();
        if !new.is_empty() {
            self.applied_affinity.insert(service.clone(), new.clone());
        }
        for vip in old.keys().filter(|v| !new.contains_key(v)) {
            self.maps.set_affinity(*vip, None)?;
        }
        for (vip, timeout) in &new {
            if old.get(vip) != Some(timeout) {
                self.maps.set_affinity(*vip, Some(*timeout))?;
            }
        }
        Ok(w)
    }

    /// Makes the maps hold exactly the desired entries (after a snapshot, or to recover from a
    /// failed write).
    pub fn resync(&mut self) -> Result<Writes, LbError> {
        self.applied.clear();
        let mut all = Programmed::new();
        for service in self.desired.service_names() {
            let entries = self.desired.entries(&service);
            if entries.is_empty() {
                continue;
            }
            for (vip, backends) in &entries {
                all.insert(*vip, backends.clone());
            }
            self.applied.insert(service, entries);
        }
        let actual = self.maps.programmed()?;
        let mut w = Writes::default();
        for vip in actual.keys().filter(|v| !all.contains_key(v)) {
            self.maps.remove(*vip)?;
            w.removed += 1;
        }
        for (vip, backends) in &all {
            if actual.get(vip) != Some(backends) {
                self.maps.set_backends(*vip, backends)?;
                w.set += 1;
            }
        }
        self.applied_affinity.clear();
        let mut all_affinity = HashMap::new();
        for service in self.desired.service_names() {
            let affinity = self.desired.affinity(&service);
            if affinity.is_empty() {
                continue;
            }
            all_affinity.extend(affinity.iter().map(|(v, t)| (*v, *t)));
            self.applied_affinity.insert(service, affinity);
        }
        let actual = self.maps.affinities()?;
        for vip in actual.keys().filter(|v| !all_affinity.contains_key(v)) {
            self.maps.set_affinity(*vip, None)?;
        }
        for (vip, timeout) in &all_affinity {
            if actual.get(vip) != Some(timeout) {
                self.maps.set_affinity(*vip, Some(*timeout))?;
            }
        }
        tracing::info!(
            entries = all.len(),
            set = w.set,
            removed = w.removed,
            "service maps reconciled"
        );
        Ok(w)
    }
}
