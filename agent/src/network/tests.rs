//! Pod network end to end inside a throwaway netns (root only): bridge, pods, connectivity,
//! blackhole routes, removal and teardown.

use std::{
    fs::File,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::Command,
    time::Duration,
};

use nix::sched::{CloneFlags, setns};

use super::*;

/// A netns made with `ip netns add` for one test (no default route), deleted on drop.
struct TestNetns(String);

impl TestNetns {
    fn new(name: &str) -> Self {
        let name = format!("skiff-{name}-{}", std::process::id());
        // A leftover from a crashed run would make `add` fail.
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(ok.expect("run ip").success(), "ip netns add {name}");
        Self(name)
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.0)
    }

    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.0)
            .args(args)
            .output()
            .expect("run ip");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        text
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Runs `f` on a thread inside the netns at `path`.
fn in_netns<T: Send + 'static>(path: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = File::open(path).expect("open netns");
    std::thread::spawn(move || {
        setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

fn listen(addr: SocketAddr) -> TcpListener {
    TcpListener::bind(addr).expect("bind")
}

fn send(from_netns: &Path, to: SocketAddr, msg: &'static [u8]) -> std::io::Result<()> {
    in_netns(from_netns, move || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
        s.write_all(msg)
    })
}

fn receive(listener: &TcpListener) -> Vec<u8> {
    let (mut conn, _) = listener.accept().expect("accept");
    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = Vec::new();
    conn.read_to_end(&mut buf).unwrap();
    buf
}

#[test]
fn pods_get_wired_to_the_bridge_and_everything_is_removed() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let node_ns = TestNetns::new("nettest");
    let dirs = tempfile::tempdir().unwrap();
    let cfg = NetworkConfig {
        bridge: "sktest0".into(),
        pod_cidr: "10.42.77.0/24".into(),
        cluster_cidr: "10.42.0.0/16".into(),
        service_cidr: "10.43.0.0/16".into(),
        netns_dir: dirs.path().join("netns"),
        state_dir: dirs.path().join("network"),
    };
    let node_path = node_ns.path();
    let cfg2 = cfg.clone();
    // The whole node side runs inside the throwaway netns.
    let (info1, info2) = in_netns(&node_path, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let net = PodNetwork::setup_node(cfg2.clone())
                .await
                .expect("setup_node");
            // Re-adopting after a restart works.
            let net = {
                drop(net);
                PodNetwork::setup_node(cfg2)
                    .await
                    .expect("setup_node again")
            };
            let info1 = net.add_pod("uid-1", "default", "a").await.expect("add_pod");
            assert_eq!(info1.ip, Ipv4Addr::new(10, 42, 77, 2));
            assert_eq!(info1.gateway, Ipv4Addr::new(10, 42, 77, 1));
            let again = net
                .add_pod("uid-1", "default", "a")
                .await
                .expect("add_pod again");
            assert_eq!(again, info1, "add_pod is idempotent");
            let info2 = net
                .add_pod("uid-2", "default", "b")
                .await
                .expect("add_pod 2");
            assert_eq!(info2.ip, Ipv4Addr::new(10, 42, 77, 3));
            (info1, info2)
        })
    });
    assert!(netns::is_netns(&info1.netns_path));

    // Pod → node (bridge address) and pod → pod over the bridge.
    let gw_listener = in_netns(&node_path, || listen("10.42.77.1:0".parse().unwrap()));
    let gw = gw_listener.local_addr().unwrap();
    send(&info1.netns_path, gw, b"to node").expect("pod 1 reaches the bridge address");
    assert_eq!(receive(&gw_listener), b"to node");
    let pod2_listener = in_netns(&info2.netns_path, || {
        listen("10.42.77.3:0".parse().unwrap())
    });
    let pod2 = pod2_listener.local_addr().unwrap();
    send(&info1.netns_path, pod2, b"to pod 2").expect("pod 1 reaches pod 2");
    assert_eq!(receive(&pod2_listener), b"to pod 2");

    // Cluster and service addresses that are not local pods die in a blackhole.
    let blackholes = node_ns.ip(&["route", "show", "type", "blackhole"]);
    assert!(blackholes.contains("10.42.0.0/16"), "{blackholes}");
    assert!(blackholes.contains("10.43.0.0/16"), "{blackholes}");
    // (The kernel answers a lookup that hits a blackhole route with EINVAL.)
    for addr in ["10.43.0.10", "10.42.5.5"] {
        let lookup = node_ns.ip(&["route", "get", addr]);
        assert!(lookup.contains("Invalid argument"), "{addr}: {lookup}");
    }
    let lookup = node_ns.ip(&["route", "get", "10.42.77.3"]);
    assert!(lookup.contains("dev sktest0"), "{lookup}");
    let br = node_ns.ip(&["link", "show", "sktest0"]);
    assert!(br.contains(",UP"), "{br}");
    let veth1 = node_ns.ip(&["link", "show", &info1.host_veth]);
    assert!(veth1.contains("master sktest0"), "{veth1}");

    let cfg3 = cfg.clone();
    let (i1, i2) = (info1.clone(), info2.clone());
    in_netns(&node_path, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let net = PodNetwork::setup_node(cfg3.clone()).await.unwrap();
            net.remove_pod("uid-1").await.expect("remove_pod");
            net.remove_pod("uid-1")
                .await
                .expect("remove_pod is idempotent");
            assert!(!i1.netns_path.exists());
            // The freed address is not handed out again at once.
            let i3 = net.add_pod("uid-3", "default", "c").await.unwrap();
            assert_eq!(i3.ip, Ipv4Addr::new(10, 42, 77, 4));
            net.teardown_node().await.expect("teardown_node");
            assert!(!i2.netns_path.exists() && !i3.netns_path.exists());
            cleanup(&cfg3)
                .await
                .expect("cleanup after teardown is a no-op");
        })
    });
    assert!(
        node_ns
            .ip(&["link", "show", "sktest0"])
            .contains("does not exist"),
        "bridge gone"
    );
    assert!(
        node_ns
            .ip(&["link", "show", &info1.host_veth])
            .contains("does not exist")
    );
    assert!(
        node_ns
            .ip(&["route", "show", "type", "blackhole"])
            .trim()
            .is_empty()
    );
    assert!(!cfg.state_dir.join("ipam").exists());
}
