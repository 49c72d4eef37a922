//! What every SPDY stream endpoint shares: the upgrade handshake (101 with the negotiated
//! `X-Stream-Protocol-Version`), a writer task that owns the connection's write half and header
//! compressor, a reader task that answers PINGs and hands the other frames on, and header
//! lookups.

use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::headers::{HeaderDecoder, HeaderEncoder, HeaderList};
use super::{Frame, encode_frame, read_frame};
use crate::apiserver::error::ApiError;

/// Whether a comma-separated, possibly repeated header lists `want` (case-insensitive).
pub fn header_lists(headers: &HeaderMap, name: &str, want: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|p| p.trim().eq_ignore_ascii_case(want)))
    })
}

/// Whether the request asks for a SPDY/3.1 upgrade.
pub fn wants_spdy(headers: &HeaderMap) -> bool {
    header_lists(headers, "upgrade", "SPDY/3.1")
}

/// Takes the connection's upgrade handle out of the request.
pub fn take_upgrade(parts: &mut Parts) -> Result<hyper::upgrade::OnUpgrade, ApiError> {
    parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::bad_request("this connection cannot be upgraded (HTTP/2?)"))
}

/// The 101 answer naming the stream protocol.
pub fn switching(protocol: &'static str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(protocol),
    );
    r
}

/// A SPDY header's value (names are lower-case on the wire).
pub fn header<'a>(h: &'a HeaderList, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Starts the writer: frames sent on the returned channel go out in order; the task ends (and
/// shuts the write half) when every sender is gone or the connection fails.
pub fn spawn_writer<T: AsyncWrite + Send + 'static>(
    mut wr: WriteHalf<T>,
) -> (mpsc::Sender<Frame>, JoinHandle<()>) {
    let (frames, mut outgoing) = mpsc::channel::<Frame>(64);
    let task = tokio::spawn(async move {
        let mut enc = HeaderEncoder::default();
        while let Some(frame) = outgoing.recv().await {
            let Ok(bytes) = encode_frame(&frame, &mut enc) else {
                break;
            };
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    (frames, task)
}

/// Starts the reader: answers PINGs itself and passes every other frame on; the channel
/// closes when the client goes away (EOF, GOAWAY or a broken frame).
pub fn spawn_reader<T: AsyncRead + Send + 'static>(
    mut rd: ReadHalf<T>,
    frames: mpsc::Sender<Frame>,
) -> mpsc::Receiver<Frame> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut dec = HeaderDecoder::default();
        loop {
            match read_frame(&mut rd, &mut dec).await {
                Ok(Some(Frame::Ping { id })) => {
                    let _ = frames.send(Frame::Ping { id }).await;
                }
                Ok(Some(Frame::GoAway { .. })) | Ok(None) => break,
                Ok(Some(frame)) => {
                    if tx.send(frame).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "SPDY connection failed");
                    break;
                }
            }
        }
    });
    rx
}
