//! Exact-value matching of secrets learned from a workspace (env at exec, credential files)
//! — for tokens with no recognisable shape, like a Coder agent token (a bare UUID).
//!
//! Values are not kept at all: learning turns a value and each of its encodings (raw,
//! base64 and URL-safe base64 at the 3 byte alignments, hex, percent, JSON-escaped) into a
//! rolling hash plus a keyed MAC, then zeroizes the inputs. Matching rolls a hash over the
//! bytes for each distinct length, filters through a bitmap and confirms with the MAC.

use rustc_hash::FxHashMap as HashMap;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::engine::Encoding;
use crate::redact::Fingerprinter;

const B: u64 = 0x100_0000_01b3;
const BITS: usize = 1 << 16;

/// What is known about a learned secret (no value).
#[derive(Clone, Debug)]
pub struct SecretMeta {
    /// Where it was learned ("env:CODER_AGENT_TOKEN", "file:.git-credentials").
    pub source: String,
    pub provider: String,
    pub kind: String,
    /// Hosts allowed to receive it.
    pub issuers: Vec<String>,
    pub revoke: String,
}

struct Variant {
    mac: [u8; 32],
    encoding: Encoding,
    secret: usize,
}

struct Secret {
    meta: SecretMeta,
    fingerprint: String,
    safe_prefix: String,
    len: usize,
}

/// A match of a learned secret.
#[derive(Clone, Debug)]
pub struct LearnedMatch {
    pub start: usize,
    pub len: usize,
    pub encoding: Encoding,
    pub fingerprint: String,
    pub source: String,
    pub provider: String,
    pub kind: String,
    pub issuers: Vec<String>,
    pub revoke: String,
    pub safe_prefix: String,
    pub secret_len: usize,
}

/// The learned secrets of one workspace.
pub struct LearnedSecrets {
    key: Vec<u8>,
    fp: Fingerprinter,
    by_len: HashMap<usize, HashMap<u64, Vec<Variant>>>,
    bitmap: Vec<u64>,
    secrets: Vec<Secret>,
    known: std::collections::HashSet<String>,
}

fn roll_hash(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |h, &c| h.wrapping_mul(B).wrapping_add(c as u64))
}

fn bit(h: u64) -> (usize, u64) {
    let i = (h >> 48) as usize % BITS;
    (i / 64, 1u64 << (i % 64))
}

/// Stable part of base64(`pad` zero bytes ++ value): the characters that depend only on
/// the value's bytes, so the value is found at that alignment inside any base64 stream.
fn b64_aligned(value: &[u8], pad: usize, url: bool) -> Zeroizing<String> {
    let mut buf = Zeroizing::new(vec![0u8; pad]);
    buf.extend_from_slice(value);
    let enc = if url {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&*buf)
    } else {
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&*buf)
    };
    let enc = Zeroizing::new(enc);
    let start = (pad * 4).div_ceil(3);
    let end = ((pad + value.len()) * 4) / 3;
    Zeroizing::new(enc.get(start..end).unwrap_or("").to_string())
}

fn percent_encode(v: &[u8]) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::new());
    for &c in v {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

fn json_escape(v: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::new());
    for &c in v {
        match c {
            b'"' | b'\\' | b'/' => {
                out.push(b'\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

impl LearnedSecrets {
    /// An empty set; fingerprints use `fp`.
    pub fn new(fp: Fingerprinter) -> LearnedSecrets {
        let key = crate::redact::random_bytes(32);
        LearnedSecrets { key, fp, by_len: HashMap::default(), bitmap: vec![0; BITS / 64], secrets: Vec::new(), known: Default::default() }
    }

    fn mac(&self, b: &[u8]) -> [u8; 32] {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        m.update(b);
        m.finalize().into_bytes().into()
    }

    /// Number of distinct secrets learned.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// True when nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Longest encoded form (streams keep this much overlap).
    pub fn max_len(&self) -> usize {
        self.by_len.keys().copied().max().unwrap_or(0)
    }

    /// Learns a value. Values shorter than 8 bytes or already known are ignored; returns
    /// whether it was new. The value is zeroized when dropped by the caller's `Zeroizing`.
    pub fn learn(&mut self, value: &Zeroizing<Vec<u8>>, meta: SecretMeta) -> bool {
        let v: &[u8] = value;
        if v.len() < 8 {
            return false;
        }
        let fingerprint = self.fp.fingerprint(v);
        if !self.known.insert(fingerprint.clone()) {
            return false;
        }
        let idx = self.secrets.len();
        let safe = v.len().saturating_sub(8).min(4);
        let safe_prefix = if v.iter().take(safe).all(|c| c.is_ascii_alphabetic() || *c == b'_') {
            String::from_utf8_lossy(&v[..safe]).into_owned()
        } else {
            String::new()
        };
        self.secrets.push(Secret { meta, fingerprint, safe_prefix, len: v.len() });
        let mut variants: Vec<(Zeroizing<Vec<u8>>, Encoding)> = vec![(Zeroizing::new(v.to_vec()), Encoding::Raw)];
        for pad in 0..3 {
            for url in [false, true] {
                let s = b64_aligned(v, pad, url);
                if s.len() >= 8 {
                    variants.push((Zeroizing::new(s.as_bytes().to_vec()), Encoding::Base64));
                }
            }
        }
        variants.push((Zeroizing::new(hex::encode(v).into_bytes()), Encoding::Hex));
        variants.push((Zeroizing::new(hex::encode_upper(v).into_bytes()), Encoding::Hex));
        let pe = percent_encode(v);
        if pe.as_bytes() != v {
            variants.push((Zeroizing::new(pe.as_bytes().to_vec()), Encoding::Percent));
        }
        let je = json_escape(v);
        if &je[..] != v {
            variants.push((je, Encoding::JsonEscape));
        }
        for (bytes, encoding) in variants {
            let h = roll_hash(&bytes);
            let (w, m) = bit(h);
            self.bitmap[w] |= m;
            let mac = self.mac(&bytes);
            let list = self.by_len.entry(bytes.len()).or_default().entry(h).or_default();
            if !list.iter().any(|x| x.mac == mac) {
                list.push(Variant { mac, encoding, secret: idx });
            }
        }
        true
    }

    /// Finds every learned secret (in any learned encoding) in `data`.
    pub fn find(&self, data: &[u8]) -> Vec<LearnedMatch> {
        let mut out = Vec::new();
        for (&len, table) in &self.by_len {
            if data.len() < len || len == 0 {
                continue;
            }
            let top = (0..len - 1).fold(1u64, |p, _| p.wrapping_mul(B));
            let mut h = roll_hash(&data[..len]);
            let mut i = 0;
            loop {
                let (w, m) = bit(h);
                if self.bitmap[w] & m != 0 {
                    if let Some(vs) = table.get(&h) {
                        let mac = self.mac(&data[i..i + len]);
                        for v in vs.iter().filter(|v| v.mac == mac) {
                            let s = &self.secrets[v.secret];
                            out.push(LearnedMatch {
                                start: i,
                                len,
                                encoding: v.encoding,
                                fingerprint: s.fingerprint.clone(),
                                source: s.meta.source.clone(),
                                provider: s.meta.provider.clone(),
                                kind: s.meta.kind.clone(),
                                issuers: s.meta.issuers.clone(),
                                revoke: s.meta.revoke.clone(),
                                safe_prefix: s.safe_prefix.clone(),
                                secret_len: s.len,
                            });
                        }
                    }
                }
                if i + len >= data.len() {
                    break;
                }
                h = h
                    .wrapping_sub((data[i] as u64).wrapping_mul(top))
                    .wrapping_mul(B)
                    .wrapping_add(data[i + len] as u64);
                i += 1;
            }
        }
        out.sort_by_key(|m| m.start);
        // One report per secret occurrence (several encodings can overlap, e.g. base64 pads).
        out.dedup_by(|b, a| a.fingerprint == b.fingerprint && b.start < a.start + a.len);
        out
    }
}

impl Drop for LearnedSecrets {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.key.zeroize();
    }
}
