//! The socket programs on real sockets: a throwaway netns (only `lo`, no route anywhere), a
//! throwaway cgroup2 dir with the programs attached, backends on loopback, and a client process
//! (python3) that moves itself into the cgroup and reports what it saw.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::*;

const CLIENT: &str = r#"
import os, socket, sys
procs, mode, ip, port, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
with open(procs, "w") as f:
    f.write(str(os.getpid()))
for _ in range(n):
    try:
        if mode == "tcp":
            s = socket.create_connection((ip, port), timeout=3)
            data = s.recv(64).decode()
            peer = s.getpeername()
        elif mode == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(3)
            s.sendto(b"hi", (ip, port))
            data, peer = s.recvfrom(64)
            data = data.decode()
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(3)
            s.connect((ip, port))
            s.send(b"hi")
            data = s.recv(64).decode()
            peer = s.getpeername()
        s.close()
        print("ok", data, "%s:%d" % peer, flush=True)
    except OSError as e:
        print("err", e.errno, flush=True)
"#;

/// What one client request saw.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The backend that answered and the peer address the application saw.
    Ok(String, SocketAddrV4),
    Errno(i32),
}

/// Runs the client in the fixture's cgroup: `mode` is tcp, udp or udp-connected.
fn client(fx: &Fixture, mode: &str, target: SocketAddrV4, n: u32) -> Vec<Outcome> {
    let out = Command::new("python3")
        .args(["-c", CLIENT])
        .arg(fx.cgroup_dir.join("cgroup.procs"))
        .args([mode, &target.ip().to_string(), &target.port().to_string()])
        .arg(n.to_string())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            match parts.as_slice() {
                ["ok", id, peer] => Outcome::Ok(id.to_string(), peer.parse().unwrap()),
                ["err", errno] => Outcome::Errno(errno.parse().unwrap()),
                _ => panic!("client said {l:?}"),
            }
        })
        .collect()
}

/// Backends on loopback that answer every connection or datagram with their name; they stop
/// when dropped.
struct Backends {
    addrs: Vec<SocketAddrV4>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Backends {
    fn tcp(n: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut addrs = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let std::net::SocketAddr::V4(addr) = listener.local_addr().unwrap() else {
                unreachable!()
            };
            addrs.push(addr);
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut conn, _)) => {
                            let _ =
                                std::io::Write::write_all(&mut conn, format!("b{i}").as_bytes());
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }));
        }
        Self {
            addrs,
            stop,
            threads,
        }
    }

    fn udp(n: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut addrs = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let std::net::SocketAddr::V4(addr) = socket.local_addr().unwrap() else {
                unreachable!()
            };
            addrs.push(addr);
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, from)) = socket.recv_from(&mut buf) {
                        let _ = socket.send_to(format!("b{i}").as_bytes(), from);
                    }
                }
            }));
        }
        Self {
            addrs,
            stop,
            threads,
        }
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Runs `f` on a thread inside a fresh network namespace that has only `lo` (up).
fn in_netns(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns");
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        assert!(up.expect("run ip").success());
        f();
    })
    .join()
    .expect("test thread");
}

fn names(outcomes: &[Outcome], peer: SocketAddrV4) -> std::collections::BTreeSet<String> {
    outcomes
        .iter()
        .map(|o| match o {
            Outcome::Ok(id, seen) => {
                assert_eq!(*seen, peer, "the application sees the service address");
                id.clone()
            }
            Outcome::Errno(e) => panic!("request failed with errno {e}"),
        })
        .collect()
}

const ECONNREFUSED: i32 = 111;
const ENETUNREACH: i32 = 101;

#[test]
fn tcp_connects_spread_over_backends_and_see_the_service_as_peer() {
    require_root!();
    let fx = Fixture::new("socktcp");
    let mut lb = fx.load();
    in_netns(move || {
        let backends = Backends::tcp(3);
        let vip = SocketAddrV4::new(Ipv4Addr::new(10, 43, 200, 1), 80);
        let service = Vip::new(vip, L4Proto::Tcp);
        assert_eq!(
            client(&fx, "tcp", vip, 1),
            [Outcome::Errno(ENETUNREACH)],
            "no service yet: the connect is not rewritten and has no route"
        );
        lb.set_backends(service, &backends.addrs).unwrap();
        let seen = names(&client(&fx, "tcp", vip, 40), vip);
        assert_eq!(seen.len(), 3, "40 connects reach all 3 backends: {seen:?}");

        // Not a service port: untouched.
        let other = SocketAddrV4::new(*vip.ip(), 81);
        assert_eq!(client(&fx, "tcp", other, 1), [Outcome::Errno(ENETUNREACH)]);
        // This thread is not in the cgroup: its connects are not rewritten.
        assert!(TcpStream::connect_timeout(&vip.into(), Duration::from_secs(2)).is_err());

        // A new backend set replaces the old one at once and frees the old slot.
        lb.set_backends(service, &backends.addrs[2..]).unwrap();
        assert_eq!(
            names(&client(&fx, "tcp", vip, 5), vip),
            ["b2".to_string()].into()
        );
        assert_eq!(lb.backend_entries().unwrap(), 1);

        // No backend left: connects fail fast with "connection refused".
        lb.set_backends(service, &[]).unwrap();
        assert_eq!(client(&fx, "tcp", vip, 1), [Outcome::Errno(ECONNREFUSED)]);
        assert_eq!(lb.backend_entries().unwrap(), 0);

        assert!(lb.remove(service).unwrap());
        assert_eq!(client(&fx, "tcp", vip, 1), [Outcome::Errno(ENETUNREACH)]);
        drop(fx);
    });
}

#[test]
fn udp_datagrams_reach_backends_and_replies_come_from_the_service() {
    require_root!();
    let fx = Fixture::new("sockudp");
    let mut lb = fx.load();
    in_netns(move || {
        let backends = Backends::udp(3);
        let vip = SocketAddrV4::new(Ipv4Addr::new(10, 43, 200, 2), 53);
        let service = Vip::new(vip, L4Proto::Udp);
        lb.set_backends(service, &backends.addrs).unwrap();
        // Unconnected: sendmsg4 picks per datagram, recvmsg4 restores the source.
        let seen = names(&client(&fx, "udp", vip, 40), vip);
        assert_eq!(seen.len(), 3, "40 datagrams reach all 3 backends: {seen:?}");
        // Connected: connect4 picks once, getpeername4 shows the service.
        let seen = names(&client(&fx, "udp-connected", vip, 40), vip);
        assert_eq!(seen.len(), 3, "40 connected sockets reach all 3: {seen:?}");
        // The TCP service of the same address and port does not exist.
        let tcp = client(&fx, "tcp", vip, 1);
        assert_eq!(tcp, [Outcome::Errno(ENETUNREACH)]);

        lb.set_backends(service, &[]).unwrap();
        assert_eq!(client(&fx, "udp", vip, 1), [Outcome::Errno(ECONNREFUSED)]);
        drop(fx);
    });
}

#[test]
fn client_ip_affinity_keeps_a_client_on_one_backend_until_it_goes() {
    require_root!();
    let fx = Fixture::new("sockaff");
    let mut lb = fx.load();
    in_netns(move || {
        let backends = Backends::tcp(3);
        let vip = SocketAddrV4::new(Ipv4Addr::new(10, 43, 200, 3), 80);
        let service = Vip::new(vip, L4Proto::Tcp);
        lb.set_backends(service, &backends.addrs).unwrap();
        lb.set_affinity(service, Some(60)).unwrap();
        assert_eq!(lb.affinities().unwrap().get(&service), Some(&60));
        // Every client process runs in this one netns: one client, one backend.
        let first = names(&client(&fx, "tcp", vip, 20), vip);
        assert_eq!(first.len(), 1, "20 connects of one client: {first:?}");
        let again = names(&client(&fx, "tcp", vip, 5), vip);
        assert_eq!(again, first, "a later process of the same client");
        // Its backend leaves the set: the client moves to another one and stays there.
        let chosen: usize = first.first().unwrap()[1..].parse().unwrap();
        let rest: Vec<SocketAddrV4> = (0..3)
            .filter(|i| *i != chosen)
            .map(|i| backends.addrs[i])
            .collect();
        lb.set_backends(service, &rest).unwrap();
        let moved = names(&client(&fx, "tcp", vip, 10), vip);
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_ne!(moved, first);
        // Without affinity, connects spread again.
        lb.set_backends(service, &backends.addrs).unwrap();
        lb.set_affinity(service, None).unwrap();
        assert!(lb.affinities().unwrap().is_empty());
        let spread = names(&client(&fx, "tcp", vip, 40), vip);
        assert_eq!(spread.len(), 3, "{spread:?}");
        drop(fx);
    });
}

#[test]
fn reload_readopts_pins_and_unload_leaves_nothing() {
    require_root!();
    let fx = Fixture::new("unload");
    let vip = Vip::new(
        SocketAddrV4::new(Ipv4Addr::new(10, 43, 0, 20), 443),
        L4Proto::Tcp,
    );
    let backends = [
        SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, 9), 8443),
        SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, 10), 8443),
    ];
    let mut lb = fx.load();
    lb.set_backends(vip, &backends).unwrap();
    drop(lb);

    let cgroup = File::open(&fx.cgroup_dir).unwrap();
    assert_eq!(
        connect4_attached(&cgroup),
        1,
        "the pinned link outlives the loader"
    );

    // A restarted agent finds its services and replaces (not adds) the attachment.
    let mut lb = fx.load();
    let programmed = lb.programmed().unwrap();
    assert_eq!(programmed.len(), 1);
    assert_eq!(programmed[&vip], backends);
    assert_eq!(connect4_attached(&cgroup), 1);
    // It keeps allocating slots that do not collide with the adopted one.
    let other = Vip::new(
        SocketAddrV4::new(Ipv4Addr::new(10, 43, 0, 21), 80),
        L4Proto::Tcp,
    );
    lb.set_backends(other, &backends[..1]).unwrap();
    let programmed = lb.programmed().unwrap();
    assert_eq!(programmed[&vip], backends);
    assert_eq!(programmed[&other], backends[..1]);
    assert_eq!(lb.backend_entries().unwrap(), 3);
    drop(lb);

    ServiceLb::unload(&fx.pin_dir, &fx.cgroup_dir).unwrap();
    assert!(!fx.pin_dir.exists(), "pin dir removed");
    assert!(!fx.cgroup_dir.exists(), "cgroup dir removed");
    ServiceLb::unload(&fx.pin_dir, &fx.cgroup_dir).expect("unload is idempotent");

    // A fresh load starts from empty maps: the old pins are really gone.
    let mut lb = fx.load();
    assert!(lb.programmed().unwrap().is_empty());
    assert_eq!(lb.backend_entries().unwrap(), 0);
}
