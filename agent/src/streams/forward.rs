//! `kubectl port-forward` on the node: one TCP connection from the node to podIP:port per
//! forwarded client connection, its bytes relayed on channel 0 both ways. Only addresses of
//! this node's pods are dialled (its pod CIDR, or the node's own address for hostNetwork pods),
//! so a forward can never send traffic off the machine.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use skiff_proto::node::PortForwardRequest;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::exec::relay_reader;
use super::{CLOSE_GRACE, fail, open_session};
use crate::pods::PodManager;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `ip` may be dialled for a port-forward: a pod address of this node.
fn allowed(ip: IpAddr, pod_cidr: &str, host_ip: &str) -> bool {
    let in_pod_cidr = match (ip, pod_cidr.parse::<crate::network::Ipv4Cidr>()) {
        (IpAddr::V4(v4), Ok(cidr)) => cidr.contains(v4),
        _ => false,
    };
    in_pod_cidr || host_ip.parse::<IpAddr>().is_ok_and(|h| h == ip)
}

/// Answers a port-forward request with a `Session`.
pub fn serve_port_forward(
    manager: &PodManager,
    mut client: crate::node::Client,
    stream_id: String,
    req: PortForwardRequest,
) {
    let pod_cidr = manager.deps().network.config().pod_cidr.clone();
    let host_ip = manager.deps().host_ip.clone();
    tokio::spawn(async move {
        let Some((out, inbound)) = open_session(&mut client, stream_id).await else {
            return;
        };
        let ip: IpAddr = match req.pod_ip.parse() {
            Ok(ip) => ip,
            Err(_) => {
                let msg = format!("pod {} has no IP address yet", req.pod);
                return fail(out, inbound, msg).await;
            }
        };
        if !allowed(ip, &pod_cidr, &host_ip) {
            let msg = format!("{ip} is not an address of a pod on this node");
            return fail(out, inbound, msg).await;
        }
        let Ok(port) = u16::try_from(req.port) else {
            return fail(out, inbound, format!("bad port {}", req.port)).await;
        };
        let addr = SocketAddr::new(ip, port);
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let msg = format!(
                    "error forwarding port {port} to pod {}, uid {}: failed to connect to {addr}: {}",
                    req.pod,
                    req.uid,
                    e.kind()
                );
                return fail(out, inbound, msg).await;
            }
            Err(_) => {
                let msg = format!("error forwarding port {port} to pod {}: timed out", req.pod);
                return fail(out, inbound, msg).await;
            }
        };
        let (mut read, mut write) = conn.into_split();
        let mut inbound = inbound;
        let mut to_pod = tokio::spawn(async move {
            while let Ok(Some(frame)) = inbound.message().await {
                if frame.close {
                    let _ = write.shutdown().await;
                    // Keep reading so the session stays open until the pod side ends.
                    continue;
                }
                if !frame.data.is_empty() && write.write_all(&frame.data).await.is_err() {
                    break;
                }
            }
        });
        let from_pod = relay_reader(&mut read, 0, &out);
        tokio::select! {
            _ = from_pod => {
                out.end(None, None).await;
                if tokio::time::timeout(CLOSE_GRACE, &mut to_pod).await.is_err() {
                    to_pod.abort();
                }
            }
            _ = &mut to_pod => {}
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_nodes_pod_addresses_are_dialled() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(allowed(ip("10.42.0.7"), "10.42.0.0/24", "192.168.1.5"));
        assert!(allowed(ip("192.168.1.5"), "10.42.0.0/24", "192.168.1.5"));
        assert!(!allowed(ip("10.42.1.7"), "10.42.0.0/24", "192.168.1.5"));
        assert!(!allowed(ip("8.8.8.8"), "10.42.0.0/24", "192.168.1.5"));
        assert!(!allowed(ip("::1"), "10.42.0.0/24", "192.168.1.5"));
    }
}
