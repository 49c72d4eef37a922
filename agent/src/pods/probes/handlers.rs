//! The probe handlers: exec (through [`Runtime::exec`]), httpGet (hyper, from the node's
//! network namespace to the pod IP) and tcpSocket; their failure messages read like the
//! kubelet's.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpStream;

use super::CheckFn;
use crate::runtime::{Runtime, RuntimeError};

/// How much of a failing exec's output or HTTP body goes into the message (upstream: 10 KiB).
const MAX_MESSAGE: usize = 10 * 1024;

/// What a probe of one container attempt talks to.
#[derive(Debug, Clone)]
pub struct Target {
    pub runtime: Runtime,
    pub container_id: String,
    /// The pod IP (the node's for hostNetwork pods).
    pub host: String,
    /// The container's ports, for named probe ports.
    pub ports: Vec<ContainerPort>,
}

/// The check a probe describes, bound to `target`.
pub fn check_for(probe: &Probe, target: &Target) -> CheckFn {
    let target = Arc::new(target.clone());
    if let Some(exec) = &probe.exec {
        let argv = exec.command.clone().unwrap_or_default();
        return Arc::new(move |timeout| exec_check(target.clone(), argv.clone(), timeout).boxed());
    }
    if let Some(http) = &probe.http_get {
        let http = http.clone();
        return Arc::new(move |timeout| http_check(target.clone(), http.clone(), timeout).boxed());
    }
    if let Some(tcp) = &probe.tcp_socket {
        let (host, port) = (tcp.host.clone(), tcp.port.clone());
        return Arc::new(move |timeout| {
            let target = target.clone();
            let (host, port) = (host.clone(), port.clone());
            async move {
                let port = resolve_port(&port, &target.ports)?;
                let host = host.unwrap_or_else(|| target.host.clone());
                tcp_check(&host, port, timeout).await
            }
            .boxed()
        });
    }
    // gRPC probes (and a probe without a handler, which validation rejects upstream) are not
    // supported yet: they count as success, so they never kill a container.
    tracing::warn!(
        container = %target.container_id,
        "probe handler not supported (only exec, httpGet, tcpSocket); treating it as passing"
    );
    Arc::new(|_| async { Ok(()) }.boxed())
}

async fn exec_check(
    target: Arc<Target>,
    argv: Vec<String>,
    timeout: Duration,
) -> Result<(), String> {
    match target
        .runtime
        .exec(&target.container_id, &argv, timeout)
        .await
    {
        Ok(out) if out.exit_code == 0 => Ok(()),
        Ok(out) => {
            let mut text = out.stdout;
            text.extend_from_slice(&out.stderr);
            text.truncate(MAX_MESSAGE);
            Err(String::from_utf8_lossy(&text).into_owned())
        }
        Err(RuntimeError::ExecTimeout { .. }) => {
            Err(format!("command {:?} timed out", argv.join(" ")))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// A probe port: a number, or the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    let n = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match ports.iter().find(|p| p.name.as_deref() == Some(name)) {
            Some(p) => p.container_port,
            None => name
                .parse()
                .map_err(|_| format!("couldn't find port: {name:?} in container ports"))?,
        },
    };
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port number: {n}"))
}

fn dial_error(host: &str, port: u16, e: &std::io::Error) -> String {
    let what = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        _ => e.to_string(),
    };
    format!("dial tcp {}: {what}", host_port(host, port))
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// tcpSocket: the connection succeeds within the timeout.
pub async fn tcp_check(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(dial_error(host, port, &e)),
        Err(_) => Err(format!("dial tcp {}: i/o timeout", host_port(host, port))),
    }
}

async fn http_check(
    target: Arc<Target>,
    http: HTTPGetAction,
    timeout: Duration,
) -> Result<(), String> {
    let port = resolve_port(&http.port, &target.ports)?;
    let host = http.host.clone().unwrap_or_else(|| target.host.clone());
    let scheme = http.scheme.as_deref().unwrap_or("HTTP");
    if !scheme.eq_ignore_ascii_case("HTTP") {
        tracing::warn!(
            scheme,
            "only HTTP probes are supported yet; treating it as passing"
        );
        return Ok(());
    }
    let headers: Vec<(String, String)> = http
        .http_headers
        .iter()
        .flatten()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    http_get(
        &host,
        port,
        http.path.as_deref().unwrap_or("/"),
        &headers,
        timeout,
    )
    .await
}

/// httpGet: a GET whose status is 200-399 within the timeout.
pub async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let url = format!("http://{}{path}", host_port(host, port));
    match tokio::time::timeout(timeout, get(host, port, &path, headers)).await {
        Ok(Ok(status)) if (200..400).contains(&status) => Ok(()),
        Ok(Ok(status)) => Err(format!("HTTP probe failed with statuscode: {status}")),
        Ok(Err(e)) => Err(format!("Get {url:?}: {e}")),
        Err(_) => Err(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

async fn get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<u16, String> {
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| dial_error(host, port, &e))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io)
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let mut req = hyper::Request::get(path)
        .header(hyper::header::HOST, host_port(host, port))
        .header(hyper::header::USER_AGENT, "kube-probe/1.33")
        .header(hyper::header::ACCEPT, "*/*")
        .header(hyper::header::CONNECTION, "close");
    let mut seen = std::collections::HashSet::new();
    for (name, value) in headers {
        let name = hyper::header::HeaderName::try_from(name.as_str()).map_err(|e| e.to_string())?;
        let value =
            hyper::header::HeaderValue::try_from(value.as_str()).map_err(|e| e.to_string())?;
        if let Some(h) = req.headers_mut() {
            // A probe's own header (Host, User-Agent, Accept) replaces the default one; repeated
            // names are all sent.
            if seen.insert(name.clone()) {
                h.insert(name, value);
            } else {
                h.append(name, value);
            }
        }
    }
    let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        // Read (a bounded part of) the body so the server sees a complete exchange.
        let mut body = resp.into_body();
        let mut read = 0usize;
        while read < MAX_MESSAGE {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
        Ok(status)
    }
    .await;
    conn.abort();
    result
}
