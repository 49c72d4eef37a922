//! Tests of the eBPF load balancer: object layout, BPF_PROG_TEST_RUN of the XDP DNAT, connect4
//! in a throwaway cgroup2 dir and netns, and that unload leaves no pins or attachments.
//!
//! The privileged tests skip (with a message) when not run as root.

mod packets;

use std::{
    fs::File,
    io::Read,
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream},
    os::fd::AsRawFd,
    path::PathBuf,
    process::Command,
    time::Duration,
};

use aya::programs::{TestRun, TestRunOptions};
use aya_obj::{Object, ProgramSection};
use skiff_agent_common::{
    Backend, CONNECT4_PROG, PROTO_TCP, PROTO_UDP, SERVICES_MAP, ServiceKey, XDP_DNAT_PROG,
    XDP_STATS_MAP,
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
    let services = obj.maps.get(SERVICES_MAP).expect("SERVICES map");
    assert_eq!(services.key_size() as usize, size_of::<ServiceKey>());
    assert_eq!(services.value_size() as usize, size_of::<Backend>());
    assert!(obj.maps.contains_key(XDP_STATS_MAP), "XDP_STATS map");
    assert!(matches!(
        obj.programs.get(CONNECT4_PROG).map(|p| &p.section),
        Some(ProgramSection::CgroupSockAddr { .. })
    ));
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
    lb.upsert_service(vip, L4Proto::Tcp, backend).unwrap();
    lb.upsert_service(vip, L4Proto::Udp, SocketAddrV4::new(*backend.ip(), 53))
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
    assert!(lb.remove_service(vip, L4Proto::Tcp).unwrap());
    assert!(!lb.remove_service(vip, L4Proto::Tcp).unwrap());
    assert_eq!(run_xdp(&lb, &tcp), tcp);
}

/// Runs `bash` in the test cgroup (it moves itself there first) connecting to `target`.
fn connect_from_cgroup(procs: &std::path::Path, target: SocketAddrV4) -> bool {
    Command::new("bash")
        .args([
            "-c",
            r#"echo $$ > "$1" && exec 3<>"/dev/tcp/$2/$3" && echo ping >&3"#,
            "bash",
        ])
        .arg(procs)
        .arg(target.ip().to_string())
        .arg(target.port().to_string())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run bash")
        .success()
}

#[test]
fn connect4_sends_service_connects_in_the_cgroup_to_the_backend() {
    require_root!();
    let fx = Fixture::new("connect4");
    let mut lb = fx.load();
    let procs = fx.cgroup_dir.join("cgroup.procs");
    // Everything network-facing happens in a fresh netns with only `lo`: an unrewritten
    // connect to the service address fails with "network unreachable" instead of leaving.
    let handle = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns");
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        assert!(up.expect("run ip").success());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let vip = SocketAddrV4::new(Ipv4Addr::new(10, 43, 200, 1), 80);

        assert!(
            !connect_from_cgroup(&procs, vip),
            "no service yet: connect must fail"
        );
        lb.upsert_service(
            vip,
            L4Proto::Tcp,
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        )
        .unwrap();
        assert!(connect_from_cgroup(&procs, vip), "connect to the service");
        let (mut conn, _) = listener.accept().expect("the backend got the connection");
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = String::new();
        conn.read_to_string(&mut got).unwrap();
        assert_eq!(got, "ping\n");

        // This thread is not in the cgroup: its connects are not rewritten.
        assert!(TcpStream::connect_timeout(&vip.into(), Duration::from_secs(2)).is_err());

        assert!(lb.remove_service(vip, L4Proto::Tcp).unwrap());
        assert!(
            !connect_from_cgroup(&procs, vip),
            "service removed: connect must fail"
        );
    });
    handle.join().expect("connect4 test thread");
}

#[test]
fn reload_readopts_pins_and_unload_leaves_nothing() {
    require_root!();
    let fx = Fixture::new("unload");
    let vip = SocketAddrV4::new(Ipv4Addr::new(10, 43, 0, 20), 443);
    let backend = SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, 9), 8443);
    let mut lb = fx.load();
    lb.upsert_service(vip, L4Proto::Tcp, backend).unwrap();
    drop(lb);

    let cgroup = File::open(&fx.cgroup_dir).unwrap();
    assert_eq!(
        connect4_attached(&cgroup),
        1,
        "the pinned link outlives the loader"
    );

    // A restarted agent finds its services and replaces (not adds) the attachment.
    let mut lb = fx.load();
    let entries = lb.services().unwrap();
    let expected = ServiceEntry {
        vip,
        proto: L4Proto::Tcp,
        backend,
    };
    assert_eq!(entries, vec![expected]);
    assert_eq!(connect4_attached(&cgroup), 1);
    drop(lb);

    ServiceLb::unload(&fx.pin_dir, &fx.cgroup_dir).unwrap();
    assert!(!fx.pin_dir.exists(), "pin dir removed");
    assert!(!fx.cgroup_dir.exists(), "cgroup dir removed");
    ServiceLb::unload(&fx.pin_dir, &fx.cgroup_dir).expect("unload is idempotent");

    // A fresh load starts from an empty map: the old pins are really gone.
    let mut lb = fx.load();
    assert!(lb.services().unwrap().is_empty());
}
