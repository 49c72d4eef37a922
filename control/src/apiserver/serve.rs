//! HTTPS serving: a TLS accept loop (tokio-rustls) handing each connection to hyper-util's
//! auto HTTP/1.1 + h2 server (ALPN), which runs the axum Router. A verified client
//! certificate's identity rides along in every request of its connection.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, warn};

use super::auth::{ClientCertUser, user_from_client_cert};

/// Serves `app` over TLS on `listener` until `shutdown` completes; open connections (watches,
/// log streams) are then dropped.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                conns.spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    // The verifier already checked the chain against the cluster CA.
                    let cert_user = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| user_from_client_cert(c))
                        .map(ClientCertUser);
                    let app = app.map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                        if let Some(u) = &cert_user {
                            req.extensions_mut().insert(u.clone());
                        }
                        req
                    });
                    let service = TowerToHyperService::new(app);
                    if let Err(e) = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await
                    {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
    Ok(())
}
