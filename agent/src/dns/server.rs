//! The DNS server's sockets: one UDP and one TCP listener on the same address, answering from
//! the [`Zone`]; names outside the cluster domain get REFUSED, or are relayed to an upstream
//! server when one is configured.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Metadata, OpCode, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::DnsError;
use super::zone::{Lookup, Zone};

/// How long a TCP client may stay idle, and how long an upstream server may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The bound sockets.
pub struct DnsServer {
    udp: UdpSocket,
    tcp: TcpListener,
}

/// What the server answers from.
#[derive(Clone)]
struct Ctx {
    zone: Arc<Zone>,
    upstream: Option<SocketAddr>,
}

impl DnsServer {
    /// Binds UDP and TCP on `listen`.
    pub async fn bind(listen: SocketAddr) -> Result<Self, DnsError> {
        let bind_err = |source| DnsError::Bind {
            addr: listen,
            source,
        };
        let udp = UdpSocket::bind(listen).await.map_err(bind_err)?;
        // Port 0: TCP takes the same port UDP got.
        let tcp = TcpListener::bind(udp.local_addr().map_err(bind_err)?)
            .await
            .map_err(bind_err)?;
        Ok(Self { udp, tcp })
    }

    /// The address both sockets are bound to.
    pub fn local_addr(&self) -> Result<SocketAddr, DnsError> {
        self.udp.local_addr().map_err(DnsError::Io)
    }

    /// Serves forever (until the task is aborted).
    pub fn spawn(
        self,
        zone: Arc<Zone>,
        upstream: Option<SocketAddr>,
    ) -> tokio::task::JoinHandle<()> {
        let ctx = Ctx { zone, upstream };
        tokio::spawn(async move {
            tokio::join!(serve_udp(self.udp, ctx.clone()), serve_tcp(self.tcp, ctx));
        })
    }
}

async fn serve_udp(socket: UdpSocket, ctx: Ctx) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 4096];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "dns: udp receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let request = buf[..len].to_vec();
        let relays = ctx.upstream.is_some();
        let (socket, ctx) = (socket.clone(), ctx.clone());
        // Only relayed queries wait on the network; zone answers return at once.
        let reply = async move {
            if let Some(reply) = respond(&ctx, &request, true).await {
                let _ = socket.send_to(&reply, peer).await;
            }
        };
        if relays {
            tokio::spawn(reply);
        } else {
            reply.await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, ctx: Ctx) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_tcp_conn(stream, ctx.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "dns: tcp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_tcp_conn(mut stream: TcpStream, ctx: Ctx) {
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(TIMEOUT, stream.read_u16()).await else {
            return;
        };
        let mut request = vec![0u8; len as usize];
        if stream.read_exact(&mut request).await.is_err() {
            return;
        }
        let Some(reply) = respond(&ctx, &request, false).await else {
            return;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        if stream.write_u16(len).await.is_err() || stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// The reply to one request (`None`: not a query worth answering).
async fn respond(ctx: &Ctx, request: &[u8], udp: bool) -> Option<Vec<u8>> {
    let Ok(query) = Message::from_vec(request) else {
        // Echo the id with FORMERR when there is at least a header.
        let id = u16::from_be_bytes([*request.first()?, *request.get(1)?]);
        return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
            .to_vec()
            .ok();
    };
    if query.metadata.message_type != MessageType::Query {
        return None;
    }
    let reply = match answer(&ctx.zone, &query) {
        Some(reply) => reply,
        None => match ctx.upstream {
            Some(upstream) => match relay(upstream, request).await {
                Some(bytes) => return Some(bytes),
                None => error_reply(&query, ResponseCode::ServFail),
            },
            None => error_reply(&query, ResponseCode::Refused),
        },
    };
    let limit = if udp {
        query
            .edns
            .as_ref()
            .map_or(512, |e| e.max_payload().max(512)) as usize
    } else {
        usize::MAX
    };
    let bytes = reply.to_vec().ok()?;
    if bytes.len() > limit {
        return reply.truncate().to_vec().ok();
    }
    Some(bytes)
}

fn error_reply(query: &Message, code: ResponseCode) -> Message {
    let mut reply = Message::new(0, MessageType::Response, query.metadata.op_code);
    reply.metadata = Metadata::response_from_request(&query.metadata);
    reply.metadata.response_code = code;
    reply.add_queries(query.queries.iter().cloned());
    reply
}

/// The zone's answer to `query`, or `None` when its name is outside the cluster domain.
pub fn answer(zone: &Zone, query: &Message) -> Option<Message> {
    if query.metadata.op_code != OpCode::Query || query.queries.len() != 1 {
        return Some(error_reply(query, ResponseCode::NotImp));
    }
    let q = &query.queries[0];
    let mut reply = error_reply(query, ResponseCode::NoError);
    reply.metadata.authoritative = true;
    match zone.lookup(q.name(), q.query_type()) {
        Lookup::NotOurs => return None,
        Lookup::NxDomain => {
            reply.metadata.response_code = ResponseCode::NXDomain;
            reply.add_authority(Zone::soa());
        }
        Lookup::Found {
            answers,
            additionals,
        } => {
            if answers.is_empty() {
                reply.add_authority(Zone::soa());
            }
            reply.add_answers(answers);
            reply.add_additionals(additionals);
        }
    }
    Some(reply)
}

/// Sends `request` to `upstream` over UDP and returns its reply.
async fn relay(upstream: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .ok()?;
    let socket = UdpSocket::bind(bind).await.ok()?;
    socket.connect(upstream).await.ok()?;
    socket.send(request).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let len = tokio::time::timeout(TIMEOUT, socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(len);
    Some(buf)
}
