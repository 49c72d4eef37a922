//! SPDY/3 name/value header blocks: a count and length-prefixed names and values (all u32 big
//! endian), compressed with one zlib stream per direction per connection. The receiving side
//! needs the SPDY/3 dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1); the sending side may
//! compress without it (a zlib stream that does not ask for a dictionary needs none).

use std::sync::OnceLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::SpdyError;

/// Name/value pairs, names lower-case.
pub type HeaderList = Vec<(String, String)>;

/// The words of the SPDY/3 dictionary, each stored with a u32 length prefix…
const DICT_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// …followed by this text, unprefixed.
const DICT_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 header compression dictionary.
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::with_capacity(1424);
        for w in DICT_WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(DICT_TAIL.as_bytes());
        d
    })
}

/// Decodes the peer's header blocks (one zlib stream for the connection).
pub struct HeaderDecoder {
    z: Decompress,
}

impl Default for HeaderDecoder {
    fn default() -> Self {
        HeaderDecoder {
            z: Decompress::new(true),
        }
    }
}

impl HeaderDecoder {
    pub fn decode(&mut self, block: &[u8]) -> Result<HeaderList, SpdyError> {
        let plain = self.inflate(block)?;
        parse_block(&plain)
    }

    fn inflate(&mut self, mut input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(out.capacity().max(1024));
            }
            let before = self.z.total_in();
            let res = self
                .z
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            input = &input[(self.z.total_in() - before) as usize..];
            match res {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(_) if input.is_empty() && out.len() < out.capacity() => return Ok(out),
                Ok(_) => continue,
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(dictionary())
                        .map_err(|e| SpdyError::Compression(e.to_string()))?;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
        }
    }
}

/// Encodes this side's header blocks (one zlib stream for the connection, sync-flushed).
pub struct HeaderEncoder {
    z: Compress,
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        HeaderEncoder {
            z: Compress::new(Compression::default(), true),
        }
    }
}

impl HeaderEncoder {
    pub fn encode(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>, SpdyError> {
        let plain = serialize_block(headers);
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut input = &plain[..];
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(1024);
            }
            let before = self.z.total_in();
            self.z
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            input = &input[(self.z.total_in() - before) as usize..];
            // Done when all input is in and the flush fit in the buffer.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

fn serialize_block(headers: &[(String, String)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (k, v) in headers {
        for s in [k.to_ascii_lowercase().as_str(), v.as_str()] {
            b.extend_from_slice(&(s.len() as u32).to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        }
    }
    b
}

fn parse_block(mut b: &[u8]) -> Result<HeaderList, SpdyError> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], SpdyError> {
        if b.len() < n {
            return Err(SpdyError::Protocol("truncated header block".into()));
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn u32_of(b: &mut &[u8]) -> Result<usize, SpdyError> {
        let raw = take(b, 4)?;
        Ok(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
    }
    let count = u32_of(&mut b)?;
    let mut list = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = u32_of(&mut b)?;
        let name = String::from_utf8_lossy(take(&mut b, n)?).to_ascii_lowercase();
        let n = u32_of(&mut b)?;
        // Several values of one name are joined by NUL; the first is enough here.
        let value = String::from_utf8_lossy(take(&mut b, n)?);
        let value = value.split('\0').next().unwrap_or_default().to_string();
        list.push((name, value));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_has_the_spdy3_shape() {
        let d = dictionary();
        assert_eq!(&d[..11], b"\0\0\0\x07options");
        assert!(d.ends_with(b"enq=0."));
        // 1423 bytes, as published (draft-mbelshe-httpbis-spdy-00 §2.6.10.1).
        assert_eq!(d.len(), 1423);
    }

    #[test]
    fn header_blocks_round_trip_across_frames() {
        let mut enc = HeaderEncoder::default();
        let mut dec = HeaderDecoder::default();
        for i in 0..3 {
            let h = vec![
                ("streamType".to_string(), "data".to_string()),
                ("port".to_string(), "8080".to_string()),
                ("requestID".to_string(), i.to_string()),
            ];
            let block = enc.encode(&h).unwrap();
            let back = dec.decode(&block).unwrap();
            assert_eq!(back[0], ("streamtype".into(), "data".into()));
            assert_eq!(back[2], ("requestid".into(), i.to_string()));
        }
    }

    #[test]
    fn blocks_compressed_with_the_dictionary_decode() {
        // What a Go peer sends: a zlib stream that starts by asking for the dictionary.
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(dictionary()).unwrap();
        let plain = serialize_block(&[("streamtype".into(), "error".into())]);
        let mut out = Vec::with_capacity(1024);
        z.compress_vec(&plain, &mut out, FlushCompress::Sync)
            .unwrap();
        let mut dec = HeaderDecoder::default();
        assert_eq!(
            dec.decode(&out).unwrap(),
            vec![("streamtype".to_string(), "error".to_string())]
        );
    }
}
