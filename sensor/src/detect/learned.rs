//! Exact-value matching of secrets learned from a workspace (env at exec, credential files)
//! — for tokens with no recognisable shape, like a Coder agent token (a bare UUID).
//!
//! Values are not kept at all: learning turns a value and each of its encodings (raw,
//! base64 and URL-safe base64 at the 3 byte alignments, hex, percent, JSON-escaped) into a
//! keyed hash of its first 8 bytes plus a keyed MAC of the whole, then zeroizes the inputs.
//! Matching is one pass whatever the number of secrets: at each position the next 8 bytes
//! go through a lossy bitmap filter (one multiply and a bit test), the rare passes through
//! the keyed prefix hash, and prefix hits are confirmed with the MAC over the variant's
//! length. (It used to roll a hash per distinct variant length — ~60 passes for 16
//! secrets, 6 MB/s.)

use std::hash::BuildHasher;

use rustc_hash::FxHashMap as HashMap;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::finding::{Encoding, SecretValue};
use crate::redact::Fingerprinter;

/// Bytes of each variant that index it (every variant is at least this long).
const PREFIX: usize = 8;
/// Bits of each filter field: a filter has at most 2^FIELD bits (16 KiB, stays in L1).
const FIELD: u32 = 17;
/// Smallest filter (512 bytes), for a workspace holding one or two secrets.
const MIN_LOG2: u32 = 12;
/// Filter bits per entry (at least): the two-bit filter then passes ~(2/256)² = 6·10⁻⁵ of
/// the positions of unrelated data to the keyed prefix hash (~20 ns each), a cost lost in
/// the filter's own, and a fleet host with 1000 workspaces holding a secret each spends
/// ~1 KB per workspace on filters instead of the 32 KB a fixed 2^17-bit pair took.
const BITS_PER_ENTRY: usize = 256;

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
    /// Keyed SipHash of the whole form: rejects a near miss (a flood repeating a secret's
    /// first bytes passes the prefix check at every period) for a fraction of a MAC.
    full: u64,
    mac: [u8; 32],
    len: usize,
    encoding: Encoding,
    /// Bytes before the value in its first base64 group (base64 variants).
    pad: u8,
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
    /// The value, decoded back from the matched bytes (for revocation; never serialized).
    pub secret: Option<SecretValue>,
}

/// The learned secrets of one workspace.
pub struct LearnedSecrets {
    key: Vec<u8>,
    fp: Fingerprinter,
    /// Keyed (SipHash) hash of a variant's first 8 bytes → the variants starting so.
    by_prefix: HashMap<u64, Vec<Variant>>,
    prefix_key: std::collections::hash_map::RandomState,
    /// Lossy filter over the prefixes: both `filter_bits(prefix)` are set for each.
    /// `2^(FIELD - shift)` bits, grown with the number of entries.
    bitmap: Vec<u64>,
    /// The same lossy filter over each form's last 8 bytes: a flood repeating a secret's
    /// first bytes passes the prefix filter at every period, and is turned away here for
    /// a multiply and a bit test instead of a hash of the whole form.
    suffix_bitmap: Vec<u64>,
    /// Filter indices are the full-resolution fields shifted right by this much.
    shift: u32,
    /// Full-resolution filter fields of every entry (prefix, suffix), to rebuild the
    /// filters when they grow: 34 bits of a 64-bit product, which no more determine the
    /// bytes than the filters do.
    marks: Vec<[[u32; 2]; 2]>,
    /// Random multiplier of the filter (odd).
    filter_mul: u64,
    max_len: usize,
    secrets: Vec<Secret>,
    known: std::collections::HashSet<String>,
}

fn prefix_word(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..PREFIX].try_into().expect("8 bytes"))
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
        let filter_mul = u64::from_le_bytes(
            crate::redact::random_bytes(8)[..8]
                .try_into()
                .expect("8 bytes"),
        ) | 1;
        LearnedSecrets {
            key,
            fp,
            by_prefix: HashMap::default(),
            prefix_key: std::collections::hash_map::RandomState::new(),
            bitmap: Vec::new(),
            suffix_bitmap: Vec::new(),
            shift: FIELD,
            marks: Vec::new(),
            filter_mul,
            max_len: 0,
            secrets: Vec::new(),
            known: Default::default(),
        }
    }

    /// Filter bits of an 8-byte prefix: two 17-bit fields of a random odd multiple (many
    /// prefixes share a bit, so the bitmap does not determine any prefix). Two bits keep
    /// frequent 8-grams of ordinary text (`let mut `) from passing by chance.
    /// Full resolution (`FIELD` bits each); a filter of 2^k bits uses their top k bits.
    #[inline(always)]
    fn filter_bits(&self, word: u64) -> [u32; 2] {
        let h = word.wrapping_mul(self.filter_mul);
        [
            (h >> (64 - FIELD)) as u32,
            (h >> (64 - 2 * FIELD)) as u32 & ((1 << FIELD) - 1),
        ]
    }

    #[inline(always)]
    fn filter_pass(&self, word: u64) -> bool {
        self.passes(&self.bitmap, self.filter_bits(word))
    }

    #[inline(always)]
    fn passes(&self, map: &[u64], [a, b]: [u32; 2]) -> bool {
        let (a, b) = ((a >> self.shift) as usize, (b >> self.shift) as usize);
        (map[a / 64] >> (a % 64)) & (map[b / 64] >> (b % 64)) & 1 != 0
    }

    /// Adds an entry's fields to the filters, first growing them (and setting every
    /// entry's bits again) when the entries outgrew them.
    fn mark(&mut self, prefix: [u32; 2], suffix: [u32; 2]) {
        self.marks.push([prefix, suffix]);
        let want = (self.marks.len() * BITS_PER_ENTRY)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(MIN_LOG2, FIELD);
        if self.bitmap.is_empty() || FIELD - want < self.shift {
            self.shift = FIELD - want;
            self.bitmap = vec![0; (1 << want) / 64];
            self.suffix_bitmap = vec![0; (1 << want) / 64];
            for i in 0..self.marks.len() - 1 {
                let [p, s] = self.marks[i];
                self.set(p, s);
            }
        }
        self.set(prefix, suffix);
    }

    fn set(&mut self, prefix: [u32; 2], suffix: [u32; 2]) {
        for i in prefix {
            let i = (i >> self.shift) as usize;
            self.bitmap[i / 64] |= 1u64 << (i % 64);
        }
        for i in suffix {
            let i = (i >> self.shift) as usize;
            self.suffix_bitmap[i / 64] |= 1u64 << (i % 64);
        }
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
        self.max_len
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
        let safe_prefix = if v
            .iter()
            .take(safe)
            .all(|c| c.is_ascii_alphabetic() || *c == b'_')
        {
            String::from_utf8_lossy(&v[..safe]).into_owned()
        } else {
            String::new()
        };
        self.secrets.push(Secret {
            meta,
            fingerprint,
            safe_prefix,
            len: v.len(),
        });
        let mut variants: Vec<(Zeroizing<Vec<u8>>, Encoding, u8)> =
            vec![(Zeroizing::new(v.to_vec()), Encoding::Raw, 0)];
        for pad in 0..3 {
            for url in [false, true] {
                let s = b64_aligned(v, pad, url);
                if s.len() >= 8 {
                    variants.push((
                        Zeroizing::new(s.as_bytes().to_vec()),
                        Encoding::Base64,
                        pad as u8,
                    ));
                }
            }
        }
        variants.push((
            Zeroizing::new(hex::encode(v).into_bytes()),
            Encoding::Hex,
            0,
        ));
        variants.push((
            Zeroizing::new(hex::encode_upper(v).into_bytes()),
            Encoding::Hex,
            0,
        ));
        let pe = percent_encode(v);
        if pe.as_bytes() != v {
            variants.push((Zeroizing::new(pe.as_bytes().to_vec()), Encoding::Percent, 0));
        }
        let je = json_escape(v);
        if &je[..] != v {
            variants.push((je, Encoding::JsonEscape, 0));
        }
        for (bytes, encoding, pad) in variants {
            if bytes.len() < PREFIX {
                continue;
            }
            let word = prefix_word(&bytes);
            self.mark(
                self.filter_bits(word),
                self.filter_bits(prefix_word(&bytes[bytes.len() - PREFIX..])),
            );
            let mac = self.mac(&bytes);
            self.max_len = self.max_len.max(bytes.len());
            let list = self
                .by_prefix
                .entry(self.prefix_key.hash_one(word))
                .or_default();
            let full = self.prefix_key.hash_one(&bytes[..]);
            if !list.iter().any(|x| x.mac == mac) {
                // Most prefixes have one variant: no room for four (256 bytes each time).
                list.reserve_exact(1);
                list.push(Variant {
                    full,
                    mac,
                    len: bytes.len(),
                    encoding,
                    pad,
                    secret: idx,
                });
            }
        }
        true
    }

    /// Finds every learned secret (in any learned encoding) in `data`.
    pub fn find(&self, data: &[u8]) -> Vec<LearnedMatch> {
        let mut out = Vec::new();
        if self.by_prefix.is_empty() {
            return out;
        }
        // Filter 8 positions at a time without branches, then visit only the passes.
        let positions = data.len().saturating_sub(PREFIX - 1);
        let mut base = 0;
        while base < positions {
            let end = (base + 8).min(positions);
            let mut pass = 0u32;
            for i in (base..end).rev() {
                pass = pass << 1 | self.filter_pass(prefix_word(&data[i..i + PREFIX])) as u32;
            }
            while pass != 0 {
                let i = base + pass.trailing_zeros() as usize;
                pass &= pass - 1;
                let word = prefix_word(&data[i..i + PREFIX]);
                let Some(vs) = self.by_prefix.get(&self.prefix_key.hash_one(word)) else {
                    continue;
                };
                for v in vs {
                    if i + v.len > data.len()
                        || !self.passes(
                            &self.suffix_bitmap,
                            self.filter_bits(prefix_word(&data[i + v.len - PREFIX..i + v.len])),
                        )
                        || self.prefix_key.hash_one(&data[i..i + v.len]) != v.full
                        || self.mac(&data[i..i + v.len]) != v.mac
                    {
                        continue;
                    }
                    let s = &self.secrets[v.secret];
                    out.push(LearnedMatch {
                        start: i,
                        len: v.len,
                        encoding: v.encoding,
                        fingerprint: s.fingerprint.clone(),
                        source: s.meta.source.clone(),
                        provider: s.meta.provider.clone(),
                        kind: s.meta.kind.clone(),
                        issuers: s.meta.issuers.clone(),
                        revoke: s.meta.revoke.clone(),
                        safe_prefix: s.safe_prefix.clone(),
                        secret_len: s.len,
                        secret: self.recover(data, i, v, s),
                    });
                }
            }
            base = end;
        }
        // One report per secret occurrence (several encodings can overlap, e.g. base64 pads).
        out.dedup_by(|b, a| a.fingerprint == b.fingerprint && b.start < a.start + a.len);
        out
    }
}

impl LearnedSecrets {
    /// The value behind a variant matched at `data[at..]`, decoded back and checked
    /// against the secret's fingerprint (`None` if the bytes around it do not decode).
    fn recover(&self, data: &[u8], at: usize, v: &Variant, s: &Secret) -> Option<SecretValue> {
        let m = &data[at..at + v.len];
        let value: Zeroizing<Vec<u8>> = Zeroizing::new(match v.encoding {
            Encoding::Raw => m.to_vec(),
            Encoding::Hex => hex::decode(m).ok()?,
            Encoding::Percent => super::engine::percent_decode(m),
            Encoding::JsonEscape => super::engine::json_unescape(m).unwrap_or_else(|| m.to_vec()),
            Encoding::Base64 => {
                // The variant is the stable middle of base64(pad bytes ++ value): step back
                // to its group start and decode the groups covering pad + value.
                let pad = v.pad as usize;
                let lead = (pad * 4).div_ceil(3);
                let start = at.checked_sub(lead)?;
                let need = ((pad + s.len) * 4).div_ceil(3);
                let chunk = data.get(start..start + need)?;
                let url = chunk.iter().any(|c| *c == b'-' || *c == b'_');
                let cfg = base64::engine::GeneralPurposeConfig::new()
                    .with_decode_allow_trailing_bits(true)
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
                let alphabet = if url {
                    &base64::alphabet::URL_SAFE
                } else {
                    &base64::alphabet::STANDARD
                };
                let d = Zeroizing::new(
                    base64::engine::GeneralPurpose::new(alphabet, cfg)
                        .decode(chunk)
                        .ok()?,
                );
                d.get(pad..pad + s.len)?.to_vec()
            }
        });
        (value.len() == s.len && self.fp.fingerprint(&value) == s.fingerprint)
            .then(|| SecretValue::new(&value))
    }
}

impl Drop for LearnedSecrets {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.key.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    fn meta(i: usize) -> SecretMeta {
        SecretMeta {
            source: format!("env:S{i}_TOKEN"),
            provider: "workspace".into(),
            kind: "token".into(),
            issuers: vec![],
            revoke: "webhook".into(),
        }
    }

    #[test]
    fn filters_grow_with_the_secrets_and_keep_finding_the_first() {
        let mut l = LearnedSecrets::new(Fingerprinter::random());
        assert!(l.bitmap.is_empty(), "nothing learned, nothing allocated");
        let first = b"4d1c9a2e-5b7f-4e11-9a3c-0f2b8d6e7a15".to_vec();
        assert!(l.learn(&Zeroizing::new(first.clone()), meta(0)));
        let small = l.bitmap.len() * 8;
        assert!(small <= 1024, "one secret: {small}-byte filter");
        let mut data = b"Authorization: Bearer ".to_vec();
        data.extend_from_slice(&first);
        assert_eq!(l.find(&data).len(), 1);
        for i in 1..64usize {
            let v = format!("secret-{i:04}-{}", "k3Jx9".repeat(i % 7 + 2));
            assert!(l.learn(&Zeroizing::new(v.into_bytes()), meta(i)));
        }
        assert_eq!(
            l.bitmap.len() * 8,
            (1 << FIELD) / 8,
            "grown to the largest filter"
        );
        assert_eq!(
            l.find(&data).len(),
            1,
            "the first secret survives the rebuilds"
        );
        let clean = b"GET /api/v1/items?id=42 HTTP/1.1\r\nHost: example.internal\r\n".repeat(200);
        assert!(l.find(&clean).is_empty());
    }

    #[test]
    fn many_secrets_of_many_lengths_are_found_in_every_encoding_at_their_offsets() {
        let mut l = LearnedSecrets::new(Fingerprinter::random());
        let alphabet =
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/+=-_.~:@ \"";
        let secrets: Vec<Vec<u8>> = (0..24usize)
            .map(|i| {
                (0..8 + i * 4)
                    .map(|j| alphabet[(i * 37 + j * 11 + j * j) % alphabet.len()])
                    .collect()
            })
            .collect();
        for (i, s) in secrets.iter().enumerate() {
            assert!(l.learn(&Zeroizing::new(s.clone()), meta(i)));
        }
        assert_eq!(l.len(), secrets.len());
        let filler = b"GET /api/v1/items?id=42 HTTP/1.1\r\nHost: example.internal\r\n".repeat(3);
        for (i, s) in secrets.iter().enumerate() {
            let mut forms: Vec<(Vec<u8>, Encoding)> = vec![
                (s.clone(), Encoding::Raw),
                (hex::encode(s).into_bytes(), Encoding::Hex),
                (hex::encode_upper(s).into_bytes(), Encoding::Hex),
            ];
            for pre in ["", "u", "us"] {
                let mut v = pre.as_bytes().to_vec();
                v.extend_from_slice(s);
                forms.push((STANDARD.encode(&v).into_bytes(), Encoding::Base64));
                forms.push((URL_SAFE_NO_PAD.encode(&v).into_bytes(), Encoding::Base64));
            }
            let pe = percent_encode(s);
            if pe.as_bytes() != s.as_slice() {
                forms.push((pe.as_bytes().to_vec(), Encoding::Percent));
            }
            let je = json_escape(s);
            if je.as_slice() != s.as_slice() {
                forms.push((je.to_vec(), Encoding::JsonEscape));
            }
            for (form, enc) in forms {
                let mut data = filler.clone();
                let at = data.len();
                data.extend_from_slice(&form);
                data.extend_from_slice(&filler);
                let found = l.find(&data);
                let mine: Vec<_> = found
                    .iter()
                    .filter(|m| m.source == format!("env:S{i}_TOKEN"))
                    .collect();
                assert_eq!(mine.len(), 1, "secret {i} as {enc:?}: {found:?}");
                assert_eq!(mine[0].encoding, enc, "secret {i}");
                assert!(
                    mine[0].start >= at && mine[0].start < at + form.len(),
                    "secret {i} as {enc:?} at {}",
                    mine[0].start
                );
                if enc == Encoding::Raw || enc == Encoding::Hex {
                    assert_eq!(mine[0].start, at, "secret {i} as {enc:?}");
                }
                assert_eq!(mine[0].secret_len, s.len());
                let back = mine[0]
                    .secret
                    .as_ref()
                    .unwrap_or_else(|| panic!("secret {i} as {enc:?}: value not recovered"));
                assert_eq!(l.fp.fingerprint(back.expose()), mine[0].fingerprint);
                assert_eq!(back.expose(), s.as_slice(), "secret {i} as {enc:?}");
            }
            // One byte off anywhere: not this secret.
            for k in [0, s.len() / 2, s.len() - 1] {
                let mut near = s.clone();
                near[k] = if near[k] == b'x' { b'y' } else { b'x' };
                let mut data = filler.clone();
                data.extend_from_slice(&near);
                assert!(
                    l.find(&data)
                        .iter()
                        .all(|m| m.source != format!("env:S{i}_TOKEN")),
                    "secret {i} with byte {k} changed"
                );
            }
        }
        assert!(l.find(&filler.repeat(50)).is_empty());
        assert!(l.find(b"").is_empty() && l.find(b"1234567").is_empty());
    }
}
