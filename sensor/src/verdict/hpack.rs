//! HTTP/2 requests in a client's TLS plaintext: the `:authority` pseudo-header (the
//! destination name) and the decoded header text. Header blocks are HPACK-compressed
//! with a per-connection dynamic table and usually Huffman-coded, so a token in an
//! `Authorization` header is not in the bytes as written: every header block of the
//! connection is decoded in order (RFC 7541: static table, dynamic table with size
//! accounting, integer and Huffman-coded string literals) and handed back as
//! `name: value` lines for scanning.

use std::collections::VecDeque;

/// The HTTP/2 client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Why a header block could not be decoded (the connection's table is then unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    /// The block ended inside an integer or string.
    #[error("truncated header block")]
    Truncated,
    /// An index beyond the static and dynamic tables.
    #[error("header index {0} out of range")]
    BadIndex(usize),
    /// Invalid Huffman code or padding.
    #[error("bad Huffman string")]
    Huffman,
    /// An integer that does not fit.
    #[error("integer overflow")]
    Overflow,
}

const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// RFC 7541 Appendix B: (code, bit length) of symbols 0..=255 and EOS (256).
const HUFFMAN: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30),
];

/// One connection's HPACK decoding state.
pub struct Decoder {
    dynamic: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max_size: usize,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder {
            dynamic: VecDeque::new(),
            size: 0,
            max_size: 4096,
        }
    }
}

fn integer(b: &[u8], pos: &mut usize, prefix: u8) -> Result<usize, HpackError> {
    let mask = ((1u16 << prefix) - 1) as u8;
    let first = *b.get(*pos).ok_or(HpackError::Truncated)? & mask;
    *pos += 1;
    if first < mask {
        return Ok(first as usize);
    }
    let mut v = mask as usize;
    let mut shift = 0;
    loop {
        let c = *b.get(*pos).ok_or(HpackError::Truncated)?;
        *pos += 1;
        if shift > 28 {
            return Err(HpackError::Overflow);
        }
        v += ((c & 0x7f) as usize) << shift;
        shift += 7;
        if c & 0x80 == 0 {
            return Ok(v);
        }
    }
}

fn huffman_decode(b: &[u8]) -> Result<Vec<u8>, HpackError> {
    let mut out = Vec::with_capacity(b.len() * 8 / 5);
    let mut code: u32 = 0;
    let mut len: u8 = 0;
    for &byte in b {
        for bit in (0..8).rev() {
            code = (code << 1) | ((byte >> bit) & 1) as u32;
            len += 1;
            if len < 5 {
                continue;
            }
            if let Some(sym) = HUFFMAN.iter().position(|&(c, l)| l == len && c == code) {
                if sym == 256 {
                    return Err(HpackError::Huffman);
                }
                out.push(sym as u8);
                code = 0;
                len = 0;
            } else if len > 30 {
                return Err(HpackError::Huffman);
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (the EOS prefix).
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(HpackError::Huffman);
    }
    Ok(out)
}

fn string(b: &[u8], pos: &mut usize) -> Result<Vec<u8>, HpackError> {
    let huff = *b.get(*pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let n = integer(b, pos, 7)?;
    let s = b.get(*pos..*pos + n).ok_or(HpackError::Truncated)?;
    *pos += n;
    if huff {
        huffman_decode(s)
    } else {
        Ok(s.to_vec())
    }
}

impl Decoder {
    fn entry(&self, index: usize) -> Result<(Vec<u8>, Vec<u8>), HpackError> {
        if index == 0 {
            return Err(HpackError::BadIndex(0));
        }
        if index <= STATIC.len() {
            let (n, v) = STATIC[index - 1];
            return Ok((n.to_vec(), v.to_vec()));
        }
        self.dynamic
            .get(index - STATIC.len() - 1)
            .cloned()
            .ok_or(HpackError::BadIndex(index))
    }

    fn evict(&mut self) {
        while self.size > self.max_size {
            match self.dynamic.pop_back() {
                Some((n, v)) => self.size -= 32 + n.len() + v.len(),
                None => break,
            }
        }
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        self.size += 32 + name.len() + value.len();
        self.dynamic.push_front((name, value));
        self.evict();
    }

    /// Decodes one complete header block; calls `f` with each header.
    pub fn decode(
        &mut self,
        block: &[u8],
        mut f: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let mut pos = 0;
        while pos < block.len() {
            let b = block[pos];
            if b & 0x80 != 0 {
                let (n, v) = self.entry(integer(block, &mut pos, 7)?)?;
                f(&n, &v);
            } else if b & 0xe0 == 0x20 {
                // Dynamic table size update (bounded by the peer's setting; cap it here).
                self.max_size = integer(block, &mut pos, 5)?.min(1 << 20);
                self.evict();
            } else {
                let (prefix, index_it) = if b & 0xc0 == 0x40 {
                    (6, true)
                } else {
                    (4, false)
                };
                let idx = integer(block, &mut pos, prefix)?;
                let name = if idx == 0 {
                    string(block, &mut pos)?
                } else {
                    self.entry(idx)?.0
                };
                let value = string(block, &mut pos)?;
                f(&name, &value);
                if index_it {
                    self.insert(name, value);
                }
            }
        }
        Ok(())
    }
}

/// One decoded request header block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H2Headers {
    /// `:authority` (or `host`), port stripped, lower case.
    pub authority: Option<String>,
    /// The headers as `name: value\r\n` lines (what a token scan needs to see).
    pub text: Vec<u8>,
}

/// Follows the client half of an HTTP/2 connection (the bytes it writes) and decodes the
/// header blocks of its requests.
pub struct H2Requests {
    hpack: Decoder,
    /// Bytes of the preface still expected.
    preface_left: usize,
    /// An incomplete frame (header + payload so far).
    buf: Vec<u8>,
    /// Payload bytes of a non-header frame still to skip.
    skip: usize,
    /// Header block being assembled (HEADERS then CONTINUATION frames).
    block: Vec<u8>,
    /// Set when the byte stream could not be followed (stops parsing).
    broken: bool,
}

/// Largest header-bearing frame buffered (SETTINGS_MAX_FRAME_SIZE ceiling is 16 MiB; header
/// blocks are small in practice).
const MAX_BUFFERED: usize = 256 * 1024;

impl H2Requests {
    /// A parser for a connection whose first client bytes start with `first`; None if they
    /// are not the HTTP/2 preface.
    pub fn detect(first: &[u8]) -> Option<H2Requests> {
        let n = first.len().min(PREFACE.len());
        (n > 0 && first[..n] == PREFACE[..n]).then(|| H2Requests {
            hpack: Decoder::default(),
            preface_left: PREFACE.len(),
            buf: Vec::new(),
            skip: 0,
            block: Vec::new(),
            broken: false,
        })
    }

    /// Whether the stream could not be followed (a gap, a bad block).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Marks a gap in the byte stream: nothing after it can be decoded.
    pub fn gap(&mut self) {
        self.broken = true;
        self.buf.clear();
        self.block.clear();
    }

    /// Feeds the next client bytes; returns the header blocks completed in them.
    pub fn feed(&mut self, mut data: &[u8]) -> Vec<H2Headers> {
        let mut out = Vec::new();
        if self.broken {
            return out;
        }
        if self.preface_left > 0 {
            let done = PREFACE.len() - self.preface_left;
            let n = self.preface_left.min(data.len());
            if data[..n] != PREFACE[done..done + n] {
                self.gap();
                return out;
            }
            self.preface_left -= n;
            data = &data[n..];
        }
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            // Frame header: length(24) type(8) flags(8) stream(32).
            let need = 9usize.saturating_sub(self.buf.len());
            if need > 0 {
                let n = need.min(data.len());
                self.buf.extend_from_slice(&data[..n]);
                data = &data[n..];
                if self.buf.len() < 9 {
                    break;
                }
            }
            let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
            let ty = self.buf[3];
            if ty != 0x1 && ty != 0x9 {
                self.buf.clear();
                self.skip = len;
                continue;
            }
            if len > MAX_BUFFERED {
                self.gap();
                break;
            }
            let need = 9 + len - self.buf.len();
            let n = need.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() < 9 + len {
                break;
            }
            let frame = std::mem::take(&mut self.buf);
            if let Some(a) = self.header_frame(&frame) {
                out.push(a);
            }
            if self.broken {
                break;
            }
        }
        out
    }

    /// A complete HEADERS (1) or CONTINUATION (9) frame.
    fn header_frame(&mut self, frame: &[u8]) -> Option<H2Headers> {
        let (ty, flags) = (frame[3], frame[4]);
        let mut p = &frame[9..];
        if ty == 0x1 {
            let mut pad = 0;
            if flags & 0x8 != 0 {
                pad = *p.first()? as usize;
                p = &p[1..];
            }
            if flags & 0x20 != 0 {
                p = p.get(5..)?; // stream dependency + weight
            }
            p = p.get(..p.len().checked_sub(pad)?)?;
            self.block.clear();
        }
        self.block.extend_from_slice(p);
        if flags & 0x4 == 0 {
            return None; // END_HEADERS not yet
        }
        let block = std::mem::take(&mut self.block);
        let mut authority = None;
        let mut text = Vec::with_capacity(block.len() * 2);
        let res = self.hpack.decode(&block, |n, v| {
            if (n == b":authority" || n == b"host") && authority.is_none() {
                authority = Some(String::from_utf8_lossy(v).into_owned());
            }
            text.extend_from_slice(n);
            text.extend_from_slice(b": ");
            text.extend_from_slice(v);
            text.extend_from_slice(b"\r\n");
        });
        if res.is_err() {
            self.gap();
            return None;
        }
        Some(H2Headers {
            authority: authority.map(|a| strip_port(&a).to_ascii_lowercase()),
            text,
        })
    }
}

fn strip_port(a: &str) -> &str {
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    a.rsplit_once(':').map(|(h, _)| h).unwrap_or(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn headers(d: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        let mut v = Vec::new();
        d.decode(block, |n, x| {
            v.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(x).into_owned(),
            ))
        })
        .unwrap();
        v
    }

    #[test]
    fn rfc7541_c4_requests_with_huffman() {
        // RFC 7541 C.4.1–C.4.3: three requests on one connection.
        let mut d = Decoder::default();
        let r1 = headers(&mut d, &hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"));
        assert_eq!(r1[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(d.size, 57);
        let r2 = headers(&mut d, &hex("8286 84be 5886 a8eb 1064 9cbf"));
        assert_eq!(r2[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(r2[4], ("cache-control".into(), "no-cache".into()));
        let r3 = headers(
            &mut d,
            &hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"),
        );
        assert_eq!(r3[1], (":scheme".into(), "https".into()));
        assert_eq!(r3[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(r3[4], ("custom-key".into(), "custom-value".into()));
        assert_eq!(d.size, 164);
    }

    #[test]
    fn rfc7541_c3_without_huffman_and_errors() {
        let mut d = Decoder::default();
        let r = headers(
            &mut d,
            &hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
        );
        assert_eq!(r[3].1, "www.example.com");
        assert_eq!(
            d.decode(&[0x80 | 0x7f, 0x40], |_, _| {}),
            Err(HpackError::BadIndex(191))
        );
        assert_eq!(
            d.decode(&[0x41, 0x85, 0xff], |_, _| {}),
            Err(HpackError::Truncated)
        );
        assert_eq!(
            huffman_decode(&[0xff, 0xff, 0xff, 0xff]),
            Err(HpackError::Huffman)
        );
    }

    fn frame(ty: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![
            (payload.len() >> 16) as u8,
            (payload.len() >> 8) as u8,
            payload.len() as u8,
            ty,
            flags,
            0,
            0,
            0,
            1,
        ];
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn h2_connection_split_anywhere() {
        let mut conn = PREFACE.to_vec();
        conn.extend(frame(0x4, 0, &[0, 3, 0, 0, 0, 100])); // SETTINGS
                                                           // HEADERS with padding and priority, block split into a CONTINUATION.
        let block = hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff");
        let mut h = vec![2u8]; // pad length
        h.extend([0, 0, 0, 0, 16]); // priority
        h.extend_from_slice(&block[..5]);
        h.extend([0, 0]);
        conn.extend(frame(0x1, 0x8 | 0x20, &h));
        conn.extend(frame(0x9, 0x4, &block[5..]));
        conn.extend(frame(0x0, 0x1, b"body bytes"));
        for split in [1, 7, 24, 30, conn.len() - 1] {
            let mut p = H2Requests::detect(&conn[..split]).expect("preface");
            let mut got = p.feed(&conn[..split]);
            got.extend(p.feed(&conn[split..]));
            assert_eq!(got.len(), 1, "split {split}");
            assert_eq!(got[0].authority.as_deref(), Some("www.example.com"));
            let text = String::from_utf8_lossy(&got[0].text);
            assert!(text.contains(":path: /\r\n"), "{text}");
            assert!(!p.is_broken());
        }
        assert!(H2Requests::detect(b"GET / HTTP/1.1\r\n").is_none());
        assert_eq!(strip_port("api.example:443"), "api.example");
        assert_eq!(strip_port("[::1]:8443"), "::1");
    }
}
