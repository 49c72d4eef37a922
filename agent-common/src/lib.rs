//! Map key and value layouts shared by agent-ebpf (kernel side) and the agent (user side).
//!
//! Every type here is `#[repr(C)]` with its padding spelled out, so both sides agree on the
//! byte layout the kernel sees. Addresses and ports are stored in **network byte order**, exactly
//! as they appear in packets and in `struct bpf_sock_addr`; the constructors take host values.
//!
//! # Service maps and the atomic backend swap
//!
//! - `SERVICES`: [`ServiceKey`] (virtual address, port, protocol) → [`ServiceValue`] (backend
//!   count, backend *slot*, flags). One entry per service port.
//! - `BACKENDS`: [`BackendKey`] (slot, index) → [`Backend`]. A slot holds one backend set,
//!   indices `0..count`.
//!
//! The agent never edits a live slot. To change a service's backends it writes the new set into
//! a free slot, then replaces the service's `SERVICES` entry (one map update, atomic for
//! readers) so it names the new slot and count, then deletes the old slot's entries. A program
//! that read the old value just before the swap may still find the old slot; if its entry has
//! gone it reads the service entry again. Slot 0 is never used.
//!
//! Selection today is uniform random per connect (`bpf_get_prandom_u32() % count`). A Maglev
//! table fits the same layout: [`SERVICE_FLAG_MAGLEV`] would make programs look up
//! `MAGLEV_TABLE_SIZE` positions per slot (a separate `(slot, position) → index` map) instead of
//! taking `hash % count`; the swap stays one update of the service entry.
//!
//! # Session affinity (ClientIP)
//!
//! `AFFINITY_CFG`: [`ServiceKey`] → timeout in seconds, present only for services with
//! `sessionAffinity: ClientIP`. `AFFINITY` (LRU): [`AffinityKey`] (the client — its network
//! namespace cookie, which is one pod or the node — and the service) → [`AffinityValue`] (the
//! backend, its index in the service's slot, last use). A connect within the timeout goes to
//! the remembered backend if the current slot still holds it at that index; otherwise a fresh
//! pick replaces the entry.
//!
//! # Socket reverse translation
//!
//! `SOCK_REVNAT` (LRU): [`RevNatKey`] (socket cookie, backend address) → [`ServiceAddr`]. The
//! connect4/sendmsg4 programs record the service address a socket meant whenever they pick a
//! backend; recvmsg4 (source of unconnected UDP replies) and getpeername4 map the backend back to
//! the service address so applications only ever see the address they used.
#![no_std]

use core::net::Ipv4Addr;

/// Name of the service map (`ServiceKey` → `ServiceValue`), pinned by name.
pub const SERVICES_MAP: &str = "SERVICES";
/// Name of the backend map (`BackendKey` → `Backend`), pinned by name.
pub const BACKENDS_MAP: &str = "BACKENDS";
/// Name of the socket reverse-translation LRU map (`RevNatKey` → `ServiceAddr`), pinned by name.
pub const SOCK_REVNAT_MAP: &str = "SOCK_REVNAT";
/// Name of the session-affinity timeouts (`ServiceKey` → seconds), pinned by name.
pub const AFFINITY_CFG_MAP: &str = "AFFINITY_CFG";
/// Name of the session-affinity LRU (`AffinityKey` → `AffinityValue`), pinned by name.
pub const AFFINITY_MAP: &str = "AFFINITY";
/// Name of the per-CPU counters of the XDP program (indexed by the `STAT_*` constants).
pub const XDP_STATS_MAP: &str = "XDP_STATS";
/// Name of the `cgroup/connect4` program (TCP and connected UDP).
pub const CONNECT4_PROG: &str = "skiff_connect4";
/// Name of the `cgroup/sendmsg4` program (unconnected UDP sends).
pub const SENDMSG4_PROG: &str = "skiff_sendmsg4";
/// Name of the `cgroup/recvmsg4` program (restores the service address as a reply's source).
pub const RECVMSG4_PROG: &str = "skiff_recvmsg4";
/// Name of the `cgroup/getpeername4` program (reports the service address as the peer).
pub const GETPEERNAME4_PROG: &str = "skiff_getpeername4";
/// Name of the XDP program that DNATs service packets.
pub const XDP_DNAT_PROG: &str = "skiff_xdp_dnat";

/// Capacity of `SERVICES` (one entry per service port).
pub const SERVICES_MAX_ENTRIES: u32 = 65_536;
/// Capacity of `BACKENDS` (backends of all slots together, including slots being swapped).
pub const BACKENDS_MAX_ENTRIES: u32 = 262_144;
/// Most backends one service port can have.
pub const MAX_BACKENDS_PER_SERVICE: u32 = 4_096;
/// Capacity of `SOCK_REVNAT` (LRU: the oldest entries go first).
pub const SOCK_REVNAT_MAX_ENTRIES: u32 = 131_072;
/// Capacity of `AFFINITY` (LRU: clients idle longest go first).
pub const AFFINITY_MAX_ENTRIES: u32 = 131_072;
/// Highest slot id; slots are `1..=MAX_SLOT` (twice the services, so every service can be
/// mid-swap at once).
pub const MAX_SLOT: u32 = 2 * SERVICES_MAX_ENTRIES;
// Every service can be mid-swap at once, and one service's set fits the backend map.
const _: () = assert!(MAX_SLOT >= 2 * SERVICES_MAX_ENTRIES);
const _: () = assert!(MAX_BACKENDS_PER_SERVICE <= BACKENDS_MAX_ENTRIES);

/// Reserved: selection by a Maglev table instead of `hash % count` (not implemented yet).
pub const SERVICE_FLAG_MAGLEV: u32 = 1;

/// `XDP_STATS` index: IPv4 TCP/UDP packets the XDP program parsed.
pub const STAT_PARSED: u32 = 0;
/// `XDP_STATS` index: packets whose destination was rewritten to a backend.
pub const STAT_DNAT: u32 = 1;
/// Number of `XDP_STATS` entries.
pub const STAT_COUNT: u32 = 2;

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

const fn ne_addr(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

const fn addr_of(ne: u32) -> Ipv4Addr {
    let [a, b, c, d] = ne.to_ne_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// Key of `SERVICES`: a service's virtual address, port and protocol.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// IPv4 address, network byte order (the bytes as on the wire, read as a native `u32`).
    pub addr: u32,
    /// Port, network byte order.
    pub port: u16,
    /// IP protocol number (`PROTO_TCP`, `PROTO_UDP`).
    pub proto: u8,
    /// Explicit padding; always zero.
    pub _pad: u8,
}

impl ServiceKey {
    /// A key for `addr:port` over `proto`, from host-order values.
    pub const fn new(addr: Ipv4Addr, port: u16, proto: u8) -> Self {
        Self {
            addr: ne_addr(addr),
            port: port.to_be(),
            proto,
            _pad: 0,
        }
    }

    /// The service address.
    pub const fn ip(&self) -> Ipv4Addr {
        addr_of(self.addr)
    }

    /// The service port in host order.
    pub const fn host_port(&self) -> u16 {
        u16::from_be(self.port)
    }
}

/// Value of `SERVICES`: where the service's backend set lives.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceValue {
    /// Number of backends in `slot` (indices `0..count`). Zero: the service has no usable
    /// backend and connects to it are refused.
    pub count: u32,
    /// The `BACKENDS` slot holding the set (never 0 when `count > 0`).
    pub slot: u32,
    /// `SERVICE_FLAG_*` bits; zero today.
    pub flags: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
}

impl ServiceValue {
    /// A service whose `count` backends are in `slot`.
    pub const fn new(slot: u32, count: u32) -> Self {
        Self {
            count,
            slot,
            flags: 0,
            _pad: 0,
        }
    }
}

/// Key of `BACKENDS`: one position of one slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKey {
    pub slot: u32,
    pub index: u32,
}

/// Value of `BACKENDS`: a backend's address and port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backend {
    /// IPv4 address, network byte order.
    pub addr: u32,
    /// Port, network byte order.
    pub port: u16,
    /// Explicit padding; always zero.
    pub _pad: u16,
}

impl Backend {
    /// A backend at `addr:port`, from host-order values.
    pub const fn new(addr: Ipv4Addr, port: u16) -> Self {
        Self {
            addr: ne_addr(addr),
            port: port.to_be(),
            _pad: 0,
        }
    }

    /// The backend address.
    pub const fn ip(&self) -> Ipv4Addr {
        addr_of(self.addr)
    }

    /// The backend port in host order.
    pub const fn host_port(&self) -> u16 {
        u16::from_be(self.port)
    }
}

/// Key of `SOCK_REVNAT`: a socket and the backend it was sent to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RevNatKey {
    /// `bpf_get_socket_cookie` of the socket.
    pub cookie: u64,
    /// Backend IPv4 address, network byte order.
    pub addr: u32,
    /// Backend port, network byte order.
    pub port: u16,
    /// Explicit padding; always zero.
    pub _pad: u16,
}

/// Value of `SOCK_REVNAT`: the service address the socket used.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceAddr {
    /// IPv4 address, network byte order.
    pub addr: u32,
    /// Port, network byte order.
    pub port: u16,
    /// Explicit padding; always zero.
    pub _pad: u16,
}

/// Key of `AFFINITY`: one client of one service.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AffinityKey {
    /// `bpf_get_netns_cookie` of the connecting socket (a pod, or the node).
    pub netns_cookie: u64,
    /// The service address.
    pub service: ServiceKey,
}

/// Value of `AFFINITY`: the backend a client was sent to, and when.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AffinityValue {
    pub backend: Backend,
    /// The backend's index in the service's slot when it was chosen.
    pub index: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// `bpf_ktime_get_ns` of the last connect that used it.
    pub last_used_ns: u64,
}

// SAFETY: every type is `repr(C)`, `Copy`, made only of integers, with every padding byte an
// explicit field, so any bit pattern is valid and no byte is uninitialised.
#[cfg(feature = "user")]
unsafe impl aya::Pod for ServiceKey {}
// SAFETY: as above.
#[cfg(feature = "user")]
unsafe impl aya::Pod for ServiceValue {}
// SAFETY: as above.
#[cfg(feature = "user")]
unsafe impl aya::Pod for BackendKey {}
// SAFETY: as above.
#[cfg(feature = "user")]
unsafe impl aya::Pod for Backend {}
// SAFETY: as above.
#[cfg(feature = "user")]
unsafe impl aya::Pod for RevNatKey {}
// SAFETY: as above.
#[cfg(feature = "user")]
unsafe impl aya::Pod for ServiceAddr {}
// SAFETY: as above.
#[cfg(feature = "user")]
unsafe impl aya::Pod for AffinityKey {}
// SAFETY: as above.
#[cfg(feature = "user")]
unsafe impl aya::Pod for AffinityValue {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<ServiceKey>(), 8);
        assert_eq!(core::mem::size_of::<ServiceValue>(), 16);
        assert_eq!(core::mem::size_of::<BackendKey>(), 8);
        assert_eq!(core::mem::size_of::<Backend>(), 8);
        assert_eq!(core::mem::size_of::<RevNatKey>(), 16);
        assert_eq!(core::mem::size_of::<ServiceAddr>(), 8);
        assert_eq!(core::mem::size_of::<AffinityKey>(), 16);
        assert_eq!(core::mem::size_of::<AffinityValue>(), 24);
        assert_eq!(core::mem::align_of::<ServiceKey>(), 4);
        assert_eq!(core::mem::align_of::<RevNatKey>(), 8);
    }

    #[test]
    fn fields_are_network_byte_order() {
        let key = ServiceKey::new(Ipv4Addr::new(10, 43, 0, 1), 8080, PROTO_TCP);
        assert_eq!(key.addr.to_ne_bytes(), [10, 43, 0, 1]);
        assert_eq!(key.port.to_ne_bytes(), [0x1f, 0x90]);
        assert_eq!(key.ip(), Ipv4Addr::new(10, 43, 0, 1));
        assert_eq!(key.host_port(), 8080);
        let backend = Backend::new(Ipv4Addr::new(10, 42, 0, 7), 80);
        assert_eq!(backend.ip(), Ipv4Addr::new(10, 42, 0, 7));
        assert_eq!(backend.host_port(), 80);
        assert_eq!(backend.port.to_ne_bytes(), [0, 80]);
    }
}
