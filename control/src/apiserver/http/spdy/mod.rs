//! SPDY/3.1 framing, the part Kubernetes streams use (kubectl port-forward in every version,
//! exec before 1.30): an 8-byte header then the payload. Control frames:
//! `1 | version(15) | type(16) | flags(8) | length(24)`; data frames:
//! `0 | stream-id(31) | flags(8) | length(24)`. Flag 0x01 is FIN. Header blocks are in
//! [`headers`]. Flow control (WINDOW_UPDATE) is read and ignored, as the Go peers do.

pub mod conn;
pub mod exec;
pub mod headers;
pub mod portforward;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use headers::{HeaderDecoder, HeaderEncoder, HeaderList};

/// Why a SPDY connection failed.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// The peer broke the framing rules.
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
    /// A header block did not (de)compress.
    #[error("SPDY header compression: {0}")]
    Compression(String),
    /// The connection failed.
    #[error("SPDY connection: {0}")]
    Io(#[from] std::io::Error),
}

const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;
const MAX_PAYLOAD: usize = 0x00ff_ffff;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// One frame, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        fin: bool,
        headers: HeaderList,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: HeaderList,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_stream_id: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    /// SETTINGS, HEADERS, WINDOW_UPDATE and unknown control frames: nothing to act on here.
    Ignored,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, SpdyError> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| SpdyError::Protocol("control frame too short".into()))
}

/// Reads the next frame; None at a clean end of the connection.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    dec: &mut HeaderDecoder,
) -> Result<Option<Frame>, SpdyError> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let flags = head[4];
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    decode_frame(head, flags, payload, dec).map(Some)
}

fn decode_frame(
    head: [u8; 8],
    flags: u8,
    payload: Vec<u8>,
    dec: &mut HeaderDecoder,
) -> Result<Frame, SpdyError> {
    let fin = flags & FLAG_FIN != 0;
    if head[0] & 0x80 == 0 {
        return Ok(Frame::Data {
            stream_id: u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff,
            fin,
            data: Bytes::from(payload),
        });
    }
    let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
    if version != VERSION {
        return Err(SpdyError::Protocol(format!(
            "unsupported SPDY version {version}"
        )));
    }
    let kind = u16::from_be_bytes([head[2], head[3]]);
    let p = &payload[..];
    Ok(match kind {
        SYN_STREAM => {
            // stream id, associated stream id, priority and slot, then the header block.
            let stream_id = u32_at(p, 0)? & 0x7fff_ffff;
            let block = p.get(10..).unwrap_or_default();
            Frame::SynStream {
                stream_id,
                fin,
                headers: dec.decode(block)?,
            }
        }
        SYN_REPLY => Frame::SynReply {
            stream_id: u32_at(p, 0)? & 0x7fff_ffff,
            fin,
            headers: dec.decode(p.get(4..).unwrap_or_default())?,
        },
        HEADERS => {
            // Keep the shared decompressor in step even though the headers are not used.
            dec.decode(p.get(4..).unwrap_or_default())?;
            Frame::Ignored
        }
        RST_STREAM => Frame::RstStream {
            stream_id: u32_at(p, 0)? & 0x7fff_ffff,
            status: u32_at(p, 4)?,
        },
        PING => Frame::Ping { id: u32_at(p, 0)? },
        GOAWAY => Frame::GoAway {
            last_stream_id: u32_at(p, 0)? & 0x7fff_ffff,
        },
        SETTINGS | WINDOW_UPDATE => Frame::Ignored,
        _ => Frame::Ignored,
    })
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    v.extend_from_slice(&kind.to_be_bytes());
    v.push(flags);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    v.extend_from_slice(payload);
    v
}

/// The bytes of `frame` (data larger than a frame allows is split into several).
pub fn encode_frame(frame: &Frame, enc: &mut HeaderEncoder) -> Result<Vec<u8>, SpdyError> {
    let fin_flag = |fin: bool| if fin { FLAG_FIN } else { 0 };
    Ok(match frame {
        Frame::Data {
            stream_id,
            fin,
            data,
        } => {
            let mut v = Vec::with_capacity(data.len() + 8);
            let chunks: Vec<&[u8]> = if data.is_empty() {
                vec![&[]]
            } else {
                data.chunks(MAX_PAYLOAD).collect()
            };
            let last = chunks.len() - 1;
            for (i, chunk) in chunks.into_iter().enumerate() {
                v.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                v.push(fin_flag(*fin && i == last));
                v.extend_from_slice(&(chunk.len() as u32).to_be_bytes()[1..]);
                v.extend_from_slice(chunk);
            }
            v
        }
        Frame::SynReply {
            stream_id,
            fin,
            headers,
        } => {
            let mut p = stream_id.to_be_bytes().to_vec();
            p.extend_from_slice(&enc.encode(headers)?);
            control(SYN_REPLY, fin_flag(*fin), &p)
        }
        Frame::SynStream {
            stream_id,
            fin,
            headers,
        } => {
            let mut p = stream_id.to_be_bytes().to_vec();
            p.extend_from_slice(&[0; 6]);
            p.extend_from_slice(&enc.encode(headers)?);
            control(SYN_STREAM, fin_flag(*fin), &p)
        }
        Frame::RstStream { stream_id, status } => {
            let mut p = stream_id.to_be_bytes().to_vec();
            p.extend_from_slice(&status.to_be_bytes());
            control(RST_STREAM, 0, &p)
        }
        Frame::Ping { id } => control(PING, 0, &id.to_be_bytes()),
        Frame::GoAway { last_stream_id } => {
            let mut p = last_stream_id.to_be_bytes().to_vec();
            p.extend_from_slice(&0u32.to_be_bytes());
            control(GOAWAY, 0, &p)
        }
        Frame::Ignored => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn round_trip(frame: Frame) -> Frame {
        let mut enc = HeaderEncoder::default();
        let mut dec = HeaderDecoder::default();
        let bytes = encode_frame(&frame, &mut enc).unwrap();
        let mut r = &bytes[..];
        read_frame(&mut r, &mut dec).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let frames = [
            Frame::Data {
                stream_id: 3,
                fin: true,
                data: Bytes::from_static(b"hello"),
            },
            Frame::SynStream {
                stream_id: 5,
                fin: false,
                headers: vec![("streamtype".into(), "data".into())],
            },
            Frame::SynReply {
                stream_id: 5,
                fin: false,
                headers: vec![],
            },
            Frame::RstStream {
                stream_id: 7,
                status: 5,
            },
            Frame::Ping { id: 1 },
            Frame::GoAway { last_stream_id: 9 },
        ];
        for f in frames {
            assert_eq!(round_trip(f.clone()).await, f);
        }
    }

    #[test]
    fn wire_layout_matches_the_spec() {
        let mut enc = HeaderEncoder::default();
        let data = Frame::Data {
            stream_id: 1,
            fin: true,
            data: Bytes::from_static(b"ab"),
        };
        assert_eq!(
            encode_frame(&data, &mut enc).unwrap(),
            [0, 0, 0, 1, FLAG_FIN, 0, 0, 2, b'a', b'b']
        );
        let ping = encode_frame(&Frame::Ping { id: 2 }, &mut enc).unwrap();
        assert_eq!(ping, [0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 2]);
    }

    #[tokio::test]
    async fn other_versions_and_truncated_frames_fail() {
        let mut dec = HeaderDecoder::default();
        let v2_ping = [0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 2];
        let mut r = &v2_ping[..];
        assert!(read_frame(&mut r, &mut dec).await.is_err());
        let cut = [0, 0, 0, 1, 0, 0, 0, 9, b'a'];
        let mut r = &cut[..];
        assert!(read_frame(&mut r, &mut dec).await.is_err());
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, &mut dec).await.unwrap().is_none());
    }
}
