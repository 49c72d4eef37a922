//! Map key and value layouts shared by agent-ebpf (kernel side) and the agent (user side).
//!
//! Every type here is `#[repr(C)]` with its padding spelled out, so both sides agree on the
//! byte layout the kernel sees. Addresses and ports are stored in **network byte order**, exactly
//! as they appear in packets and in `struct bpf_sock_addr`; the constructors take host values.
#![no_std]

use core::net::Ipv4Addr;

/// Name of the service map (`ServiceKey` → `Backend`), pinned by name under the agent's pin dir.
pub const SERVICES_MAP: &str = "SERVICES";
/// Name of the per-CPU counters of the XDP program (indexed by the `STAT_*` constants).
pub const XDP_STATS_MAP: &str = "XDP_STATS";
/// Name of the `cgroup/connect4` program that rewrites ClusterIP connects.
pub const CONNECT4_PROG: &str = "skiff_connect4";
/// Name of the XDP program that DNATs service packets.
pub const XDP_DNAT_PROG: &str = "skiff_xdp_dnat";

/// Capacity of `SERVICES` (one entry per service port).
pub const SERVICES_MAX_ENTRIES: u32 = 65_536;

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

/// Key of `SERVICES`: a service's virtual address, port and protocol.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
            addr: u32::from_ne_bytes(addr.octets()),
            port: port.to_be(),
            proto,
            _pad: 0,
        }
    }

    /// The service address.
    pub const fn ip(&self) -> Ipv4Addr {
        let [a, b, c, d] = self.addr.to_ne_bytes();
        Ipv4Addr::new(a, b, c, d)
    }

    /// The service port in host order.
    pub const fn host_port(&self) -> u16 {
        u16::from_be(self.port)
    }
}

/// Value of `SERVICES`: the one backend a service forwards to (Maglev tables come later).
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
            addr: u32::from_ne_bytes(addr.octets()),
            port: port.to_be(),
            _pad: 0,
        }
    }

    /// The backend address.
    pub const fn ip(&self) -> Ipv4Addr {
        let [a, b, c, d] = self.addr.to_ne_bytes();
        Ipv4Addr::new(a, b, c, d)
    }

    /// The backend port in host order.
    pub const fn host_port(&self) -> u16 {
        u16::from_be(self.port)
    }
}

// SAFETY: both types are `repr(C)`, `Copy`, made only of integers, with every padding byte an
// explicit field, so any bit pattern is valid and no byte is uninitialised.
#[cfg(feature = "user")]
unsafe impl aya::Pod for ServiceKey {}
// SAFETY: as above.
#[cfg(feature = "user")]
unsafe impl aya::Pod for Backend {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<ServiceKey>(), 8);
        assert_eq!(core::mem::size_of::<Backend>(), 8);
        assert_eq!(core::mem::align_of::<ServiceKey>(), 4);
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
