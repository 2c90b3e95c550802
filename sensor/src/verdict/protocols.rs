//! What the bytes themselves say about where they go: destination names (the HTTP/1
//! `Host` header, the TLS ClientHello SNI, DNS query names and the addresses DNS answers
//! give them) and payloads that change the sink (OSC 52 clipboard sequences in terminal
//! output). A socket's address says where bytes went; these say which service the client
//! meant — what issuer matching needs — or that a terminal write is a clipboard write.

use base64::Engine as _;

/// Host of an HTTP/1.x request at the start of `data` (`Host:` header, port stripped).
pub fn http_host(data: &[u8]) -> Option<String> {
    const METHODS: &[&[u8]] = &[
        b"GET ",
        b"POST ",
        b"PUT ",
        b"PATCH ",
        b"DELETE ",
        b"HEAD ",
        b"OPTIONS ",
        b"CONNECT ",
    ];
    if !METHODS.iter().any(|m| data.starts_with(m)) {
        return None;
    }
    let head = &data[..data.len().min(16 * 1024)];
    let text = String::from_utf8_lossy(head);
    let end = text.find("\r\n\r\n").unwrap_or(text.len());
    for line in text[..end].split("\r\n").skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("host") {
                let v = v.trim();
                let host = if let Some(rest) = v.strip_prefix('[') {
                    rest.split(']').next().unwrap_or(rest)
                } else {
                    v.rsplit_once(':').map(|(h, _)| h).unwrap_or(v)
                };
                return Some(host.to_ascii_lowercase());
            }
        }
    }
    None
}

/// Server name (SNI) of a TLS ClientHello at the start of `data`.
pub fn tls_sni(data: &[u8]) -> Option<String> {
    let get = |i: usize| data.get(i).copied();
    let u16_at = |i: usize| Some(u16::from_be_bytes([get(i)?, get(i + 1)?]) as usize);
    if get(0)? != 0x16 || get(5)? != 0x01 {
        return None;
    }
    // record(5) + handshake header(4) + version(2) + random(32)
    let mut p = 5 + 4 + 2 + 32;
    p += 1 + get(p)? as usize; // session id
    p += 2 + u16_at(p)?; // cipher suites
    p += 1 + get(p)? as usize; // compression methods
    let ext_end = p + 2 + u16_at(p)?;
    p += 2;
    while p + 4 <= ext_end.min(data.len()) {
        let ty = u16_at(p)?;
        let len = u16_at(p + 2)?;
        if ty == 0 {
            // server_name: list len(2), type(1)=0, name len(2), name
            let name_len = u16_at(p + 4 + 3)?;
            let start = p + 4 + 5;
            let name = data.get(start..start + name_len)?;
            return std::str::from_utf8(name)
                .ok()
                .map(|s| s.to_ascii_lowercase());
        }
        p += 4 + len;
    }
    None
}

/// An OSC 52 clipboard write found in terminal output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Osc52 {
    /// Byte range of the whole sequence (including a tmux/screen wrapper) in the data.
    pub start: usize,
    pub end: usize,
    /// The decoded clipboard content.
    pub payload: Vec<u8>,
}

/// Largest clipboard payload decoded (terminals cap OSC 52 well below this).
const OSC52_MAX: usize = 1 << 20;

/// OSC 52 sequences in `data`: `ESC ] 52 ; Pc ; Pd` ended by BEL or `ESC \`, also inside
/// tmux passthrough (`ESC P tmux; …` with every ESC doubled) and screen's chunked
/// passthrough (`ESC P … ESC \` pieces of ≤ 768 bytes). `Pd = ?` (a read request) is skipped.
pub fn osc52(data: &[u8]) -> Vec<Osc52> {
    const ESC: u8 = 0x1b;
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(rel) = memchr::memmem::find(&data[from..], b"]52;") {
        let at = from + rel;
        from = at + 4;
        if at == 0 || data[at - 1] != ESC {
            continue;
        }
        let mut start = at - 1;
        // Wrapped: tmux's `ESC P tmux; ESC` or screen's `ESC P` just before.
        for prefix in [&b"\x1bPtmux;\x1b\x1b"[..], &b"\x1bP\x1b"[..]] {
            if data[..at].ends_with(prefix) {
                start = at - prefix.len();
                break;
            }
        }
        // Pc: the selection letters, up to the next ';'.
        let mut i = from;
        while i < data.len() && i - from < 16 && data[i] != b';' {
            i += 1;
        }
        if i >= data.len() || data[i] != b';' {
            continue;
        }
        i += 1;
        let mut b64 = Vec::new();
        let mut end = None;
        while i < data.len() && b64.len() < OSC52_MAX {
            match data[i] {
                0x07 => {
                    end = Some(i + 1);
                    break;
                }
                ESC if data[i + 1..].starts_with(b"\\\x1bP") => i += 4, // screen: next chunk
                ESC if data[i + 1..].starts_with(b"\x1b\\") => {
                    end = Some(i + 3); // tmux: doubled ST
                    break;
                }
                ESC if data[i + 1..].starts_with(b"\\") => {
                    end = Some(i + 2);
                    break;
                }
                c if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=') => {
                    b64.push(c);
                    i += 1;
                }
                b'\r' | b'\n' => i += 1,
                _ => break,
            }
        }
        let Some(mut end) = end else { continue };
        // A wrapper's own terminator follows the inner one.
        if start != at - 1 && data[end..].starts_with(b"\x1b\\") {
            end += 2;
        }
        from = end;
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
                .with_decode_allow_trailing_bits(true),
        );
        if let Ok(payload) = engine.decode(&b64) {
            out.push(Osc52 {
                start,
                end,
                payload,
            });
        }
    }
    out
}

/// A DNS question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsQuestion {
    /// The queried name, lower case, without the trailing dot.
    pub name: String,
    pub qtype: u16,
}

/// Reads a (possibly compressed) name at `pos`; returns it and the position after it.
fn dns_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut after = None;
    let mut jumps = 0;
    loop {
        let len = *msg.get(pos)? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => {
                pos += 1;
                break;
            }
            0x00 => {
                let label = msg.get(pos + 1..pos + 1 + len)?;
                labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
                pos += 1 + len;
            }
            0xc0 => {
                let ptr = ((len & 0x3f) << 8) | *msg.get(pos + 1)? as usize;
                after.get_or_insert(pos + 2);
                jumps += 1;
                if jumps > 32 || ptr >= msg.len() {
                    return None;
                }
                pos = ptr;
            }
            _ => return None,
        }
        if labels.len() > 127 {
            return None;
        }
    }
    Some((labels.join("."), after.unwrap_or(pos)))
}

/// The DNS messages in a payload: one per UDP datagram, or several length-prefixed ones
/// on TCP.
fn dns_messages(payload: &[u8], tcp: bool) -> Vec<&[u8]> {
    if !tcp {
        return vec![payload];
    }
    let mut out = Vec::new();
    let mut p = payload;
    while p.len() >= 2 {
        let n = u16::from_be_bytes([p[0], p[1]]) as usize;
        let Some(m) = p.get(2..2 + n) else { break };
        out.push(m);
        p = &p[2 + n..];
    }
    out
}

/// The questions of the DNS queries in a payload written to a resolver.
pub fn dns_queries(payload: &[u8], tcp: bool) -> Vec<DnsQuestion> {
    let mut out = Vec::new();
    for msg in dns_messages(payload, tcp) {
        if msg.len() < 12 || msg[2] & 0x80 != 0 {
            continue; // short, or a response
        }
        let qd = u16::from_be_bytes([msg[4], msg[5]]) as usize;
        let mut pos = 12;
        for _ in 0..qd.min(16) {
            let Some((name, next)) = dns_name(msg, pos) else {
                break;
            };
            let Some(t) = msg.get(next..next + 4) else {
                break;
            };
            out.push(DnsQuestion {
                name,
                qtype: u16::from_be_bytes([t[0], t[1]]),
            });
            pos = next + 4;
        }
    }
    out
}

/// An address a DNS response gave a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsAnswer {
    /// The name the client asked for (lower case, no trailing dot), not the end of the
    /// CNAME chain that led to the address.
    pub name: String,
    pub addr: std::net::IpAddr,
    /// Seconds the resolver said the address may be used (the smallest TTL along the
    /// chain).
    pub ttl: u32,
}

/// The addresses DNS responses in a payload (read from a resolver) give names: A and AAAA
/// records of the question's name or of a CNAME chain from it, each named by the question.
/// Records of other names, error responses and what follows a cut record are ignored.
pub fn dns_answers(payload: &[u8], tcp: bool) -> Vec<DnsAnswer> {
    let mut out = Vec::new();
    for msg in dns_messages(payload, tcp) {
        // A response (QR) with RCODE 0.
        if msg.len() < 12 || msg[2] & 0x80 == 0 || msg[3] & 0x0f != 0 {
            continue;
        }
        let qd = u16::from_be_bytes([msg[4], msg[5]]) as usize;
        let an = u16::from_be_bytes([msg[6], msg[7]]) as usize;
        if qd == 0 {
            continue;
        }
        let mut pos = 12;
        let mut asked = None;
        for _ in 0..qd.min(16) {
            let Some((name, next)) = dns_name(msg, pos) else {
                break;
            };
            asked.get_or_insert(name);
            pos = next + 4;
        }
        let Some(asked) = asked else { continue };
        // Names on the chain from the question, with the smallest TTL that led to each.
        let mut chain: Vec<(String, u32)> = vec![(asked.clone(), u32::MAX)];
        for _ in 0..an.min(64) {
            let Some((owner, next)) = dns_name(msg, pos) else {
                break;
            };
            let Some(h) = msg.get(next..next + 10) else {
                break;
            };
            let ty = u16::from_be_bytes([h[0], h[1]]);
            let ttl = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            let rdlen = u16::from_be_bytes([h[8], h[9]]) as usize;
            let rd_at = next + 10;
            let Some(rd) = msg.get(rd_at..rd_at + rdlen) else {
                break;
            };
            pos = rd_at + rdlen;
            let Some(via) = chain.iter().find(|(n, _)| *n == owner).map(|c| c.1) else {
                continue; // not on the chain from the question
            };
            let ttl = ttl.min(via);
            let addr = match (ty, rd.len()) {
                (1, 4) => std::net::IpAddr::from([rd[0], rd[1], rd[2], rd[3]]),
                (28, 16) => std::net::IpAddr::from(<[u8; 16]>::try_from(rd).expect("16 bytes")),
                (5, _) => {
                    if let Some((target, _)) = dns_name(msg, rd_at) {
                        if chain.len() < 16 && !chain.iter().any(|(n, _)| *n == target) {
                            chain.push((target, ttl));
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            out.push(DnsAnswer {
                name: asked.clone(),
                addr,
                ttl,
            });
        }
    }
    out
}

/// Second-level labels under which registrations happen at the third level (`co.uk`).
const SECOND_LEVEL: &[&str] = &["co", "com", "net", "org", "gov", "ac", "edu", "ne", "or"];

/// The registered domain of a name (`a.b.example.com` → `example.com`, `x.example.co.uk`
/// → `example.co.uk`) and the labels below it.
pub fn split_registered(name: &str) -> (String, Vec<&str>) {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    let n = labels.len();
    let keep = if n >= 3 && labels[n - 1].len() == 2 && SECOND_LEVEL.contains(&labels[n - 2]) {
        3
    } else {
        2
    };
    let keep = keep.min(n);
    (labels[n - keep..].join("."), labels[..n - keep].to_vec())
}

/// Byte strings that data hidden in a query name below its registered domain may decode
/// to: every run of consecutive labels (sequence numbers and fixed labels may surround the
/// data), concatenated as it is and decoded as hex, base32 and base64url.
pub fn dns_hidden_data(name: &str) -> Vec<Vec<u8>> {
    use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD, HEXLOWER_PERMISSIVE};
    /// Labels considered (a name has at most 127; data sits in the first ones).
    const MAX_LABELS: usize = 32;
    let (_, below) = split_registered(name);
    let below = &below[..below.len().min(MAX_LABELS)];
    let mut out = Vec::new();
    for i in 0..below.len() {
        let mut joined = String::new();
        for label in &below[i..] {
            joined.push_str(label);
            if joined.len() < 16 {
                continue;
            }
            if let Ok(v) = HEXLOWER_PERMISSIVE.decode(joined.as_bytes()) {
                out.push(v);
            }
            if let Ok(v) = BASE32_NOPAD.decode(joined.to_ascii_uppercase().as_bytes()) {
                out.push(v);
            }
            if let Ok(v) = BASE64URL_NOPAD.decode(joined.as_bytes()) {
                out.push(v);
            }
            out.push(joined.as_bytes().to_vec());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_tls_hosts() {
        assert_eq!(
            http_host(b"GET /user HTTP/1.1\r\nAccept: */*\r\nHost: api.github.com:443\r\n\r\n")
                .as_deref(),
            Some("api.github.com")
        );
        assert_eq!(
            http_host(b"POST / HTTP/1.1\r\nhost: [::1]:8080\r\n\r\n").as_deref(),
            Some("::1")
        );
        assert_eq!(http_host(b"hello Host: x\r\n"), None);
        // A minimal ClientHello with SNI "example.test".
        let name = b"example.test";
        let mut sni = vec![0x00, 0x00];
        let list_len = (name.len() + 3) as u16;
        sni.extend_from_slice(&(list_len + 2).to_be_bytes());
        sni.extend_from_slice(&list_len.to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name);
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0u8; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[0x01, 0x00]); // compression
        body.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        body.extend_from_slice(&sni);
        let mut hs = vec![0x01, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 0x03, 0x01, (hs.len() >> 8) as u8, hs.len() as u8];
        rec.extend_from_slice(&hs);
        assert_eq!(tls_sni(&rec).as_deref(), Some("example.test"));
        assert_eq!(tls_sni(&rec[..20]), None);
        assert_eq!(tls_sni(b"GET / HTTP/1.1"), None);
    }

    #[test]
    fn osc52_plain_tmux_and_screen() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(b"hello clipboard");
        let plain = format!("text \x1b]52;c;{b64}\x07 more");
        let f = osc52(plain.as_bytes());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].payload, b"hello clipboard");
        assert_eq!(
            &plain.as_bytes()[f[0].start..f[0].end],
            format!("\x1b]52;c;{b64}\x07").as_bytes()
        );
        let st = format!("\x1b]52;p;{b64}\x1b\\");
        assert_eq!(osc52(st.as_bytes())[0].payload, b"hello clipboard");
        let tmux = format!("\x1bPtmux;\x1b\x1b]52;c;{b64}\x07\x1b\\tail");
        let f = osc52(tmux.as_bytes());
        assert_eq!(f[0].payload, b"hello clipboard");
        assert_eq!((f[0].start, f[0].end), (0, tmux.len() - 4));
        let (a, b) = b64.split_at(7);
        let screen = format!("\x1bP\x1b]52;c;{a}\x1b\\\x1bP{b}\x07\x1b\\");
        assert_eq!(osc52(screen.as_bytes())[0].payload, b"hello clipboard");
        assert!(osc52(b"\x1b]52;c;?\x07")
            .iter()
            .all(|o| o.payload.is_empty()));
        assert!(osc52(b"]52;c;aGVsbG8=\x07").is_empty());
    }

    fn query(name: &str) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        m
    }

    #[test]
    fn dns_questions_and_answers() {
        let q = query("api.github.com");
        assert_eq!(
            dns_queries(&q, false),
            vec![DnsQuestion {
                name: "api.github.com".into(),
                qtype: 1
            }]
        );
        let mut tcp = (q.len() as u16).to_be_bytes().to_vec();
        tcp.extend_from_slice(&q);
        assert_eq!(dns_queries(&tcp, true).len(), 1);
        // A response: the question, then a CNAME-less A answer with a compression pointer.
        let mut r = q.clone();
        r[2] = 0x81;
        r[7] = 1;
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 140, 82, 112, 6]);
        assert_eq!(
            dns_answers(&r, false),
            vec![DnsAnswer {
                name: "api.github.com".into(),
                addr: "140.82.112.6".parse().unwrap(),
                ttl: 60
            }]
        );
        assert!(dns_queries(&r, false).is_empty());
        assert!(dns_answers(&q, false).is_empty());
        // Garbage and loops do not panic.
        let mut bad = q.clone();
        bad[12] = 0xc0;
        bad[13] = 12;
        assert!(dns_queries(&bad, false).is_empty());
        assert!(dns_queries(&[0u8; 5], false).is_empty());
    }

    /// A record: owner name (labels), type, TTL, rdata.
    fn rr(owner: &str, ty: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        for l in owner.split('.') {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&ty.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
        m
    }

    fn wire_name(name: &str) -> Vec<u8> {
        let mut m = Vec::new();
        for l in name.split('.') {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m
    }

    fn response(question: &str, records: &[Vec<u8>], rcode: u8) -> Vec<u8> {
        let mut r = query(question);
        r[2] = 0x81;
        r[3] = 0x80 | rcode;
        r[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
        for rec in records {
            r.extend_from_slice(rec);
        }
        r
    }

    #[test]
    fn dns_answers_follow_cname_chains_to_the_question() {
        let r = response(
            "files.exfil.test",
            &[
                rr("files.exfil.test", 5, 600, &wire_name("edge.cdn.test")),
                rr("edge.cdn.test", 5, 120, &wire_name("a1.edge.cdn.test")),
                rr("a1.edge.cdn.test", 1, 300, &[192, 0, 2, 7]),
                rr(
                    "a1.edge.cdn.test",
                    28,
                    30,
                    &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
                ),
                // Not on the chain: ignored.
                rr("unrelated.example", 1, 300, &[203, 0, 113, 1]),
            ],
            0,
        );
        let got = dns_answers(&r, false);
        assert_eq!(
            got,
            vec![
                DnsAnswer {
                    name: "files.exfil.test".into(),
                    addr: "192.0.2.7".parse().unwrap(),
                    ttl: 120
                },
                DnsAnswer {
                    name: "files.exfil.test".into(),
                    addr: "2001:db8::7".parse().unwrap(),
                    ttl: 30
                },
            ]
        );
        // Over TCP: length-prefixed, two messages in one read.
        let other = response(
            "api.github.com",
            &[rr("api.github.com", 1, 60, &[127, 0, 0, 3])],
            0,
        );
        let mut tcp = Vec::new();
        for m in [&r, &other] {
            tcp.extend_from_slice(&(m.len() as u16).to_be_bytes());
            tcp.extend_from_slice(m);
        }
        let got = dns_answers(&tcp, true);
        assert_eq!(got.len(), 3);
        assert_eq!(got[2].name, "api.github.com");
        // An error response names nothing; a cut record keeps what came before it.
        let nx = response(
            "gone.example",
            &[rr("gone.example", 1, 60, &[192, 0, 2, 1])],
            3,
        );
        assert!(dns_answers(&nx, false).is_empty());
        let two = response(
            "two.example",
            &[
                rr("two.example", 1, 60, &[192, 0, 2, 1]),
                rr("two.example", 1, 60, &[192, 0, 2, 2]),
            ],
            0,
        );
        let cut = &two[..two.len() - 2];
        assert_eq!(dns_answers(cut, false).len(), 1);
        for n in 0..two.len() {
            let _ = dns_answers(&two[..n], false);
            let _ = dns_answers(&two[..n], true);
        }
    }

    #[test]
    fn hidden_data_in_query_names() {
        assert_eq!(split_registered("a.b.example.com").0, "example.com");
        assert_eq!(split_registered("x.example.co.uk").0, "example.co.uk");
        let secret = b"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";
        let hex = hex::encode(secret);
        let name = format!("{}.{}.exfil.example", &hex[..40], &hex[40..]);
        assert!(dns_hidden_data(&name).iter().any(|v| v == secret));
        let b32 = data_encoding::BASE32_NOPAD
            .encode(secret)
            .to_ascii_lowercase();
        let name = format!("7.{}.{}.exfil.example", &b32[..30], &b32[30..]);
        assert!(dns_hidden_data(&name).iter().any(|v| v == secret));
        let raw = format!(
            "{}.{}.exfil.example",
            "ghp_M7H4jxUDDWHP4kZ6A4", "dxlQYsQIWJuq11T4V4"
        );
        assert!(dns_hidden_data(&raw).iter().any(|v| v == secret));
        assert!(dns_hidden_data("www.example.com")
            .iter()
            .all(|v| v.len() < 8));
    }
}
