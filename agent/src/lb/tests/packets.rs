//! Crafted Ethernet/IPv4/TCP|UDP frames and a checksum verifier for the XDP tests.
use std::net::{Ipv4Addr, SocketAddrV4};

use skiff_agent_common::{PROTO_TCP, PROTO_UDP};

const ETH: usize = 14;
const IP: usize = 20;

/// One's-complement sum of `data` as big-endian 16-bit words, folded, not inverted.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        acc += u32::from(word);
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

/// A frame to build.
pub struct Packet {
    proto: u8,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: Vec<u8>,
    /// Send UDP with checksum 0 ("none").
    pub zero_l4_checksum: bool,
    /// Set the IPv4 "more fragments" flag.
    pub more_fragments: bool,
}

impl Packet {
    pub fn new(proto: u8, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Self {
        Self {
            proto,
            src,
            dst,
            payload: payload.to_vec(),
            zero_l4_checksum: false,
            more_fragments: false,
        }
    }

    /// The frame with correct lengths and checksums.
    pub fn build(&self) -> Vec<u8> {
        let mut l4 = Vec::new();
        l4.extend_from_slice(&self.src.port().to_be_bytes());
        l4.extend_from_slice(&self.dst.port().to_be_bytes());
        let check_at = if self.proto == PROTO_TCP {
            l4.extend_from_slice(&1u32.to_be_bytes()); // seq
            l4.extend_from_slice(&0u32.to_be_bytes()); // ack
            l4.extend_from_slice(&[5 << 4, 0x18]); // data offset, PSH|ACK
            l4.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]); // window, checksum, urgent
            16
        } else {
            let len = (8 + self.payload.len()) as u16;
            l4.extend_from_slice(&len.to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
            6
        };
        l4.extend_from_slice(&self.payload);
        if !self.zero_l4_checksum {
            let pseudo = pseudo_header(*self.src.ip(), *self.dst.ip(), self.proto, l4.len());
            let mut c = !(sum16(&l4, sum16(&pseudo, 0)) as u16);
            if self.proto == PROTO_UDP && c == 0 {
                c = 0xffff;
            }
            l4[check_at..check_at + 2].copy_from_slice(&c.to_be_bytes());
        }

        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((IP + l4.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0x12, 0x34]);
        let flags: u16 = if self.more_fragments { 0x2000 } else { 0x4000 };
        ip.extend_from_slice(&flags.to_be_bytes());
        ip.extend_from_slice(&[64, self.proto, 0, 0]);
        ip.extend_from_slice(&self.src.ip().octets());
        ip.extend_from_slice(&self.dst.ip().octets());
        let c = !(sum16(&ip, 0) as u16);
        ip[10..12].copy_from_slice(&c.to_be_bytes());

        let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00];
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&l4);
        frame
    }
}

/// The fields the tests look at.
#[derive(Debug)]
pub struct Parsed {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub proto: u8,
    pub l4_checksum: u16,
}

fn addr(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn port(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Parses a frame built by [`Packet::build`] (possibly rewritten).
pub fn parse(frame: &[u8]) -> Parsed {
    let ip = &frame[ETH..];
    let l4 = &ip[IP..];
    let proto = ip[9];
    let check_at = if proto == PROTO_TCP { 16 } else { 6 };
    Parsed {
        src: SocketAddrV4::new(addr(&ip[12..16]), port(&l4[0..2])),
        dst: SocketAddrV4::new(addr(&ip[16..20]), port(&l4[2..4])),
        proto,
        l4_checksum: port(&l4[check_at..check_at + 2]),
    }
}

/// Whether the IPv4 header checksum and the TCP/UDP checksum verify.
pub fn valid_checksums(frame: &[u8]) -> bool {
    let ip = &frame[ETH..];
    if sum16(&ip[..IP], 0) != 0xffff {
        return false;
    }
    let p = parse(frame);
    if p.proto == PROTO_UDP && p.l4_checksum == 0 {
        return true;
    }
    let l4 = &ip[IP..];
    let pseudo = pseudo_header(*p.src.ip(), *p.dst.ip(), p.proto, l4.len());
    sum16(l4, sum16(&pseudo, 0)) == 0xffff
}
