//! Checksum and structure validators from the providers' own token specifications. A match
//! that fails its validator is not that token (at most a low-confidence candidate), which is
//! what keeps false positives near zero for formats that carry a checksum.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Validators a rule may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    /// GitHub `gh?_` and npm `npm_`: CRC32 of the 30-char body in base62, 6 chars.
    GithubCrc32,
    /// GitLab routable tokens: `.01.` + base36 payload length (2) + base36 CRC32 (7).
    GitlabRoutable,
    /// Atlassian `ATATT3…`: CRC32 of all but the last 8 chars = last 8 as hex.
    AtlassianCrc32,
    /// Grafana `glsa_<32>_<8 hex>`: hex of the little-endian CRC32 of `glsa_<32>`.
    GrafanaCrc32,
    /// AWS access key id: base32 body, not AWS's documentation example.
    AwsKeyId,
    /// JWT: three base64url parts, header and payload are JSON objects, header has `alg`.
    Jwt,
    /// HTTP Basic credential (docker `auth`, `.npmrc` `_auth`): standard base64 of
    /// printable `user:password` with a password of at least 6 characters.
    BasicAuth,
}

/// Result of validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    /// Checksum or structure verified.
    Valid,
    /// The format has a checksum/structure and it failed.
    Failed,
    /// The format has nothing to verify.
    NotApplicable,
    /// An exact value learned from the workspace.
    Learned,
}

const B62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const B36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `n` in the base of `digits`, most significant first, left-padded with '0' to `width`.
fn in_base(mut n: u64, digits: &[u8], width: usize) -> String {
    let base = digits.len() as u64;
    let mut out = Vec::new();
    while n > 0 {
        out.push(digits[(n % base) as usize]);
        n /= base;
    }
    while out.len() < width {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8(out).expect("ascii digits")
}

/// `n` in base62 (GitHub's checksum alphabet), padded to `width`.
pub fn base62(n: u64, width: usize) -> String {
    in_base(n, B62, width)
}

/// `n` in base36 (lowercase), padded to `width`.
pub fn base36(n: u64, width: usize) -> String {
    in_base(n, B36, width)
}

fn github_crc32(t: &[u8]) -> bool {
    // prefix (4) + body (30) + checksum (6)
    if t.len() != 40 {
        return false;
    }
    let body = &t[4..34];
    let want = base62(crc32fast::hash(body) as u64, 6);
    &t[34..] == want.as_bytes()
}

fn gitlab_routable(t: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(t) else {
        return false;
    };
    // …payload.01.LLCCCCCCC
    if s.len() < 13 {
        return false;
    }
    let (head, tail) = s.split_at(s.len() - 9);
    let Some(payload_part) = head.strip_suffix(".01.") else {
        return false;
    };
    let len_digits = &tail[..2];
    let crc_digits = &tail[2..];
    let prefix_end = payload_part.find('-').map(|i| i + 1).unwrap_or(0);
    let payload = &payload_part[prefix_end..];
    if base36(payload.len() as u64, 2) != len_digits {
        return false;
    }
    // The CRC covers everything before it: prefix, payload, ".01." and the length digits.
    let signed = &s[..s.len() - 7];
    base36(crc32fast::hash(signed.as_bytes()) as u64, 7) == crc_digits
}

fn atlassian_crc32(t: &[u8]) -> bool {
    if t.len() < 9 {
        return false;
    }
    let (body, sum) = t.split_at(t.len() - 8);
    format!("{:08X}", crc32fast::hash(body)).as_bytes() == sum
}

fn grafana_crc32(t: &[u8]) -> bool {
    // glsa_<32>_<8 hex>
    if t.len() != 5 + 32 + 1 + 8 {
        return false;
    }
    let body = &t[..37];
    let want = hex::encode(crc32fast::hash(body).to_le_bytes());
    t[38..].eq_ignore_ascii_case(want.as_bytes())
}

fn aws_key_id(t: &[u8]) -> bool {
    t.len() == 20
        && !t.ends_with(b"EXAMPLE")
        && t[4..]
            .iter()
            .all(|c| matches!(c, b'A'..=b'Z' | b'2'..=b'7'))
}

fn jwt(t: &[u8]) -> bool {
    let parts: Vec<&[u8]> = t.split(|c| *c == b'.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return false;
    }
    let dec = |p: &[u8]| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .ok()
    };
    let (Some(h), Some(p)) = (dec(parts[0]), dec(parts[1])) else {
        return false;
    };
    let (Ok(h), Ok(p)) = (
        serde_json::from_slice::<serde_json::Value>(&h),
        serde_json::from_slice::<serde_json::Value>(&p),
    ) else {
        return false;
    };
    h.get("alg").is_some_and(|a| a.is_string()) && p.is_object()
}

fn basic_auth(t: &[u8]) -> bool {
    let Ok(d) = base64::engine::general_purpose::STANDARD.decode(t) else {
        return false;
    };
    let d = zeroize::Zeroizing::new(d);
    let Some(colon) = d.iter().position(|&c| c == b':') else {
        return false;
    };
    d.iter().all(|c| c.is_ascii_graphic() || *c == b' ') && d.len() - colon > 6
}

impl Validator {
    /// Checks a candidate secret.
    pub fn check(self, secret: &[u8]) -> bool {
        match self {
            Validator::GithubCrc32 => github_crc32(secret),
            Validator::GitlabRoutable => gitlab_routable(secret),
            Validator::AtlassianCrc32 => atlassian_crc32(secret),
            Validator::GrafanaCrc32 => grafana_crc32(secret),
            Validator::AwsKeyId => aws_key_id(secret),
            Validator::Jwt => jwt(secret),
            Validator::BasicAuth => basic_auth(secret),
        }
    }
}

/// Shannon entropy in bits per byte.
pub fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    // Each distinct byte once (visiting `s`, not all 256 counters: secrets are short).
    let mut h = 0.0;
    for &b in s {
        let c = std::mem::take(&mut counts[b as usize]);
        if c > 0 {
            let p = c as f64 / n;
            h -= p * p.log2();
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_reference_example_validates() {
        // The valid example from the reference notes.
        assert!(github_crc32(b"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"));
        assert!(!github_crc32(b"ghp_M7H4jxUDDWHP4kZ6A4dxlQYsQIWJuq11T4V5"));
        assert!(!github_crc32(b"ghp_M7H4jxUDDWHP4kZ6A4dxlQYsQIWJuq11T4V"));
    }

    #[test]
    fn base_encodings() {
        assert_eq!(base62(0, 6), "000000");
        assert_eq!(base62(61, 2), "0z");
        assert_eq!(base62(62, 1), "10");
        assert_eq!(base36(35, 2), "0z");
        assert_eq!(base36(36, 2), "10");
    }

    #[test]
    fn aws_documentation_key_is_rejected() {
        assert!(!aws_key_id(b"AKIAIOSFODNN7EXAMPLE"));
        assert!(aws_key_id(b"AKIAQYLPMN5HFIQR7XYZ"));
    }

    #[test]
    fn basic_auth_is_base64_of_user_colon_password() {
        assert!(basic_auth(b"cm9ib3Q6cTl3OHZLM3pYMm1ONXBMN3JUNHlV"));
        // No colon, a 3-character password, not base64.
        assert!(!basic_auth(b"bm90IGEgY3JlZGVudGlhbA=="));
        assert!(!basic_auth(b"dXNlcjpwdw=="));
        assert!(!basic_auth(b"not base64!"));
    }

    #[test]
    fn entropy_bounds() {
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
