//! XDP DNAT: parses Ethernet/IPv4/TCP|UDP and rewrites packets for a service to its backend.
//!
//! Checksums are updated incrementally. Return traffic (un-DNAT) is a later slice; this program
//! is what BPF_PROG_TEST_RUN exercises the parser and the NAT arithmetic with.
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use skiff_agent_common::{PROTO_TCP, PROTO_UDP, STAT_DNAT, STAT_PARSED, ServiceKey};

use crate::select::{Pick, pick};
use crate::{XDP_STATS, csum};

const ETH_HDR_LEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
/// Byte offsets inside the IPv4 header.
const IP_PROTO: usize = 9;
const IP_CHECK: usize = 10;
const IP_SADDR: usize = 12;
const IP_DADDR: usize = 16;
/// Minimum header lengths and the checksum offsets of the L4 headers.
const TCP_HDR_LEN: usize = 20;
const TCP_CHECK: usize = 16;
const UDP_HDR_LEN: usize = 8;
const UDP_CHECK: usize = 6;
/// Offset of the destination port in both TCP and UDP headers.
const L4_DPORT: usize = 2;

/// A bounds-checked pointer to `len` bytes at `offset` of the packet, as the verifier wants it.
#[inline(always)]
fn bytes_at(ctx: &XdpContext, offset: usize, len: usize) -> Option<*mut u8> {
    let start = ctx.data();
    if start + offset + len > ctx.data_end() {
        return None;
    }
    Some((start + offset) as *mut u8)
}

#[inline(always)]
fn read<const N: usize>(p: *mut u8, at: usize) -> [u8; N] {
    // SAFETY: callers got `p` from `bytes_at` with a length covering `at + N`.
    unsafe { core::ptr::read_unaligned(p.add(at) as *const [u8; N]) }
}

#[inline(always)]
fn write<const N: usize>(p: *mut u8, at: usize, v: [u8; N]) {
    // SAFETY: as in `read`; XDP packet data is writable.
    unsafe { core::ptr::write_unaligned(p.add(at) as *mut [u8; N], v) }
}

#[inline(always)]
fn count(index: u32) {
    if let Some(c) = XDP_STATS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot is only touched by the CPU running this program.
        unsafe { *c += 1 };
    }
}

/// Rewrites packets to a service in `SERVICES` to its backend; always passes the packet on.
#[xdp]
pub fn skiff_xdp_dnat(ctx: XdpContext) -> u32 {
    dnat(&ctx);
    xdp_action::XDP_PASS
}

/// A well-mixed hash of the flow's source address and port.
#[inline(always)]
fn flow_hash(saddr: [u8; 4], sport: [u8; 2]) -> u32 {
    let mut h = u32::from_ne_bytes(saddr) ^ u32::from(u16::from_ne_bytes(sport)).rotate_left(16);
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^ (h >> 16)
}

#[inline(always)]
fn dnat(ctx: &XdpContext) -> Option<()> {
    let eth = bytes_at(ctx, 0, ETH_HDR_LEN)?;
    if u16::from_be_bytes(read(eth, 12)) != ETH_P_IP {
        return None;
    }
    let ip = bytes_at(ctx, ETH_HDR_LEN, 20)?;
    let [ver_ihl] = read::<1>(ip, 0);
    let ihl = usize::from(ver_ihl & 0x0f) * 4;
    if ver_ihl >> 4 != 4 || ihl < 20 {
        return None;
    }
    // Only the first fragment carries the L4 header; skip fragments altogether.
    if u16::from_be_bytes(read(ip, 6)) & 0x3fff != 0 {
        return None;
    }
    let [proto] = read::<1>(ip, IP_PROTO);
    let (l4_len, l4_check) = match proto {
        PROTO_TCP => (TCP_HDR_LEN, TCP_CHECK),
        PROTO_UDP => (UDP_HDR_LEN, UDP_CHECK),
        _ => return None,
    };
    let l4 = bytes_at(ctx, ETH_HDR_LEN + ihl, l4_len)?;
    count(STAT_PARSED);

    let daddr: [u8; 4] = read(ip, IP_DADDR);
    let dport: [u8; 2] = read(l4, L4_DPORT);
    let key = ServiceKey {
        addr: u32::from_ne_bytes(daddr),
        port: u16::from_ne_bytes(dport),
        proto,
        _pad: 0,
    };
    // The flow's source picks the backend, so every packet of a flow goes to the same one.
    let saddr: [u8; 4] = read(ip, IP_SADDR);
    let sport: [u8; 2] = read(l4, 0);
    let Pick::Backend(backend, _) = pick(&key, flow_hash(saddr, sport)) else {
        return None;
    };
    let new_addr = backend.addr.to_ne_bytes();
    let new_port = backend.port.to_ne_bytes();

    let ip_check = u16::from_be_bytes(read(ip, IP_CHECK));
    write(
        ip,
        IP_CHECK,
        csum::replace32(ip_check, daddr, new_addr).to_be_bytes(),
    );
    write(ip, IP_DADDR, new_addr);

    let old_l4_check = u16::from_be_bytes(read(l4, l4_check));
    // A zero UDP checksum means "none"; it stays that way.
    if !(proto == PROTO_UDP && old_l4_check == 0) {
        // The L4 checksum covers the pseudo-header's destination address and the port.
        let c = csum::replace32(old_l4_check, daddr, new_addr);
        let mut c = csum::replace16(c, u16::from_be_bytes(dport), u16::from_be_bytes(new_port));
        if proto == PROTO_UDP && c == 0 {
            c = 0xffff;
        }
        write(l4, l4_check, c.to_be_bytes());
    }
    write(l4, L4_DPORT, new_port);
    count(STAT_DNAT);
    Some(())
}
