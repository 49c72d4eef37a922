//! Tests of the eBPF load balancer: object layout, BPF_PROG_TEST_RUN of the XDP DNAT, and (in
//! [`sock`]) the socket programs on real sockets in a throwaway cgroup2 dir and netns, reload
//! and unload.
//!
//! The privileged tests skip (with a message) when not run as root.

mod packets;

use std::{
    fs::File,
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream},
    os::fd::AsRawFd,
    path::PathBuf,
    process::Command,
    time::Duration,
};

use aya::programs::{TestRun, TestRunOptions};
use aya_obj::{Object, ProgramSection};
use skiff_agent_common::{
    BACKENDS_MAP, Backend, BackendKey, PROTO_TCP, PROTO_UDP, RevNatKey, SERVICES_MAP,
    SOCK_REVNAT_MAP, ServiceAddr, ServiceKey, ServiceValue, XDP_DNAT_PROG, XDP_STATS_MAP,
};

use self::packets::{Packet, parse, valid_checksums};
use super::*;

const XDP_PASS: u32 = 2;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipping: needs root");
            return;
        }
    };
}

// After the macro, which the module uses.
mod sock;

/// A test-only pin dir and cgroup2 dir, unloaded on drop even when the test fails.
struct Fixture {
    pin_dir: PathBuf,
    cgroup_dir: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let id = format!("skiff-test-{}-{name}", std::process::id());
        Self {
            pin_dir: PathBuf::from("/sys/fs/bpf").join(&id),
            cgroup_dir: PathBuf::from("/sys/fs/cgroup/unified").join(&id),
        }
    }

    fn load(&self) -> ServiceLb {
        ServiceLb::load(&self.pin_dir, &self.cgroup_dir).expect("load")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Err(e) = ServiceLb::unload(&self.pin_dir, &self.cgroup_dir) {
            eprintln!("fixture cleanup failed: {e}");
        }
    }
}

/// How many programs are attached to `cgroup` for connect4 (BPF_PROG_QUERY).
fn connect4_attached(cgroup: &File) -> u32 {
    const BPF_PROG_QUERY: libc::c_long = 16;
    const BPF_CGROUP_INET4_CONNECT: u64 = 10;
    // union bpf_attr, query member: target_fd, attach_type, query_flags, attach_flags,
    // prog_ids (u64), prog_cnt (u32) ...
    let mut attr = [0u64; 16];
    attr[0] = cgroup.as_raw_fd() as u64 | (BPF_CGROUP_INET4_CONNECT << 32);
    // SAFETY: `attr` is a zeroed, 8-byte aligned buffer as large as the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    assert_eq!(rc, 0, "BPF_PROG_QUERY: {}", std::io::Error::last_os_error());
    attr[3] as u32
}

#[test]
fn object_has_every_program_and_map_the_agent_uses() {
    let obj = Object::parse(EBPF_OBJECT).expect("parse the embedded object");
    let sizes = |name: &str| {
        let m = obj.maps.get(name).unwrap_or_else(|| panic!("map {name}"));
        (m.key_size() as usize, m.value_size() as usize)
    };
    assert_eq!(
        sizes(SERVICES_MAP),
        (size_of::<ServiceKey>(), size_of::<ServiceValue>())
    );
    assert_eq!(
        sizes(BACKENDS_MAP),
        (size_of::<BackendKey>(), size_of::<Backend>())
    );
    assert_eq!(
        sizes(SOCK_REVNAT_MAP),
        (size_of::<RevNatKey>(), size_of::<ServiceAddr>())
    );
    assert_eq!(
        sizes(skiff_agent_common::AFFINITY_MAP),
        (
            size_of::<skiff_agent_common::AffinityKey>(),
            size_of::<skiff_agent_common::AffinityValue>()
        )
    );
    assert_eq!(
        sizes(skiff_agent_common::AFFINITY_CFG_MAP),
        (size_of::<ServiceKey>(), size_of::<u32>())
    );
    assert!(obj.maps.contains_key(XDP_STATS_MAP), "XDP_STATS map");
    for (prog, _) in SOCK_PROGRAMS {
        assert!(
            matches!(
                obj.programs.get(prog).map(|p| &p.section),
                Some(ProgramSection::CgroupSockAddr { .. })
            ),
            "{prog}"
        );
    }
    assert!(matches!(
        obj.programs.get(XDP_DNAT_PROG).map(|p| &p.section),
        Some(ProgramSection::Xdp { .. })
    ));
}

fn run_xdp(lb: &ServiceLb, input: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; input.len() + 64];
    let result = lb
        .xdp_dnat()
        .unwrap()
        .test_run(TestRunOptions {
            data_in: Some(input),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    assert_eq!(result.return_value, XDP_PASS);
    out.truncate(result.data_size_out as usize);
    out
}

#[test]
fn xdp_dnat_rewrites_only_service_packets() {
    require_root!();
    let fx = Fixture::new("xdp");
    let mut lb = fx.load();
    let vip = SocketAddrV4::new(Ipv4Addr::new(10, 43, 0, 10), 80);
    let backend = SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, 7), 8080);
    let client = SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, 5), 40_000);
    lb.set_backends(Vip::new(vip, L4Proto::Tcp), &[backend])
        .unwrap();
    let dns = SocketAddrV4::new(*backend.ip(), 53);
    lb.set_backends(Vip::new(vip, L4Proto::Udp), &[dns])
        .unwrap();

    // TCP to the service: destination rewritten, both checksums still valid, rest untouched.
    let tcp = Packet::new(PROTO_TCP, client, vip, b"GET / HTTP/1.0\r\n\r\n").build();
    let out = run_xdp(&lb, &tcp);
    let p = parse(&out);
    assert_eq!((p.dst, p.src, p.proto), (backend, client, PROTO_TCP));
    assert_eq!(&out[out.len() - 18..], b"GET / HTTP/1.0\r\n\r\n");
    assert!(valid_checksums(&out), "checksums after DNAT");

    // UDP with a checksum.
    let udp = Packet::new(PROTO_UDP, client, vip, b"query").build();
    let p = parse(&run_xdp(&lb, &udp));
    assert_eq!(p.dst, SocketAddrV4::new(*backend.ip(), 53));
    assert!(valid_checksums(&run_xdp(&lb, &udp)));

    // UDP without a checksum keeps "no checksum".
    let mut no_csum = Packet::new(PROTO_UDP, client, vip, b"query");
    no_csum.zero_l4_checksum = true;
    let out = run_xdp(&lb, &no_csum.build());
    assert_eq!(parse(&out).l4_checksum, 0);

    // Not a service: other port, other address, fragments and non-IPv4 pass unchanged.
    let other_port = SocketAddrV4::new(*vip.ip(), 81);
    for packet in [
        Packet::new(PROTO_TCP, client, other_port, b"x").build(),
        Packet::new(PROTO_TCP, client, backend, b"x").build(),
        {
            let mut frag = Packet::new(PROTO_TCP, client, vip, b"x");
            frag.more_fragments = true;
            frag.build()
        },
        {
            let mut v6 = Packet::new(PROTO_TCP, client, vip, b"x").build();
            v6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            v6
        },
    ] {
        assert_eq!(run_xdp(&lb, &packet), packet);
    }
    // A packet cut short inside the TCP header is left alone (and not read past its end).
    let truncated = &tcp[..14 + 20 + 10];
    assert_eq!(run_xdp(&lb, truncated), truncated);

    // After removal the service packet passes unchanged.
    assert!(lb.remove(Vip::new(vip, L4Proto::Tcp)).unwrap());
    assert!(!lb.remove(Vip::new(vip, L4Proto::Tcp)).unwrap());
    assert_eq!(run_xdp(&lb, &tcp), tcp);

    // Several backends: a flow always goes to the same one, different flows spread.
    let backends: Vec<SocketAddrV4> = (1..=3)
        .map(|i| SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, i), 8080))
        .collect();
    lb.set_backends(Vip::new(vip, L4Proto::Tcp), &backends)
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    for port in 0..64u16 {
        let src = SocketAddrV4::new(*client.ip(), 30_000 + port);
        let packet = Packet::new(PROTO_TCP, src, vip, b"x").build();
        let first = parse(&run_xdp(&lb, &packet)).dst;
        assert_eq!(
            parse(&run_xdp(&lb, &packet)).dst,
            first,
            "same flow, same backend"
        );
        assert!(backends.contains(&first));
        seen.insert(first);
    }
    assert_eq!(seen.len(), 3, "64 flows reach every backend");
}
