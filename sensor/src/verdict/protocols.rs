//! Destination names from the bytes themselves: the HTTP/1 `Host` header and the TLS
//! ClientHello SNI. A socket's address says where bytes went; these say which service the
//! client meant, which is what issuer matching needs.

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
        sni.extend_from_slice(&((list_len + 2) as u16).to_be_bytes());
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
}
