//! The generated benchmark corpus: source-like text and log lines from a fixed word list
//! and a fixed-seed xorshift generator, so every run and every tool scans the same bytes.
//! Shared by `cargo xtask bench-scan` and `cargo bench -p sensor --bench scan`.

/// Xorshift64 generator.
pub struct Rng(pub u64);

impl Rng {
    /// The seed both benchmarks start from.
    pub const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const WORDS: &[&str] = &[
    "fn",
    "let",
    "mut",
    "return",
    "self",
    "struct",
    "impl",
    "match",
    "Some",
    "None",
    "Ok",
    "Err",
    "request",
    "response",
    "config",
    "token",
    "user",
    "value",
    "buffer",
    "error",
    "const",
    "pub",
    "use",
    "crate",
    "async",
    "await",
    "String",
    "Vec",
    "HashMap",
    "println!",
    "info",
    "debug",
    "GET",
    "POST",
    "/api/v1/items",
    "200",
    "404",
    "duration_ms",
    "timestamp",
    "2026-11-23T01:02:03Z",
    "id",
    "name",
    "the",
    "and",
    "with",
    "from",
];

/// About `bytes` bytes of lines of 4–15 words.
pub fn gen_text(rng: &mut Rng, bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 128);
    while out.len() < bytes {
        let n = 4 + rng.next() % 12;
        for _ in 0..n {
            out.extend_from_slice(WORDS[(rng.next() % WORDS.len() as u64) as usize].as_bytes());
            out.push(if rng.next().is_multiple_of(9) {
                b'('
            } else {
                b' '
            });
        }
        out.push(b'\n');
    }
    out
}

/// Adversarial inputs: what a watched process could write to make detection slow. Each
/// class is a list of (name, bytes) parts of about `bytes` bytes each; `keywords` are the
/// rule keywords (`cargo xtask bench-scan` reads them from the rule file, the tests and
/// the bench from the engine).
pub fn adversarial(keywords: &[String], bytes: usize) -> Vec<(String, Vec<Vec<u8>>)> {
    let mut rng = Rng(Rng::SEED ^ 0xadd);
    let repeat = |unit: &[u8]| -> Vec<u8> {
        let mut v = Vec::with_capacity(bytes + unit.len());
        while v.len() < bytes {
            v.extend_from_slice(unit);
        }
        v
    };
    let alnum = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let b64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut flood = Vec::new();
    let mut near = Vec::new();
    let mut dotted = Vec::new();
    for k in keywords {
        let k = k.as_bytes();
        flood.push(repeat(k));
        // The keyword with a token-like tail that just fails (too short, then a stop).
        let mut unit = k.to_vec();
        for i in 0..35 {
            unit.push(alnum[(i * 7 + k.len()) % alnum.len()]);
        }
        unit.push(b'!');
        near.push(repeat(&unit));
        let mut unit = k.to_vec();
        unit.extend_from_slice(b".");
        dotted.push(repeat(&unit));
    }
    let mut mixed = Vec::with_capacity(bytes + 64);
    while mixed.len() < bytes {
        mixed.extend_from_slice(keywords[(rng.next() % keywords.len() as u64) as usize].as_bytes());
        if rng.next().is_multiple_of(3) {
            mixed.push(alnum[(rng.next() % 62) as usize]);
        }
    }
    let run: Vec<u8> = (0..bytes)
        .map(|_| b64[(rng.next() % 64) as usize])
        .collect();
    let hexrun: Vec<u8> = (0..bytes)
        .map(|_| b"0123456789abcdef"[(rng.next() % 16) as usize])
        .collect();
    let first = |n: usize| -> &[u8] { &mixed[..n.min(mixed.len())] };
    let third = bytes / 3;
    let escapes = vec![
        repeat(b"%41"),
        repeat(b"\\u0041"),
        repeat(b"\\/"),
        repeat(b"%2F%"),
        pct(first(third)),
        json_esc(first(bytes / 6)),
        hex(first(bytes / 2)),
    ];
    let nested = vec![
        base64(first(bytes * 3 / 4)),
        base64(&pct(first(bytes / 4))),
        pct(&base64(first(third * 3 / 4))),
        hex(&base64(first(bytes * 3 / 8))),
        base64(&json_esc(first(bytes / 8))),
        base64(&base64(first(bytes * 9 / 16))),
    ];
    let mut non_ascii = Vec::new();
    for k in keywords.iter().take(16) {
        let mut unit = k.as_bytes().to_vec();
        unit.extend_from_slice("é".as_bytes());
        non_ascii.push(repeat(&unit));
    }
    vec![
        ("keyword floods".into(), flood),
        ("keyword + near-miss token".into(), near),
        ("keyword + dot".into(), dotted),
        ("mixed keywords".into(), vec![mixed.clone()]),
        ("base64/hex runs".into(), vec![run, hexrun]),
        ("dense escapes".into(), escapes),
        ("nested encodings".into(), nested),
        ("keywords + non-ASCII".into(), non_ascii),
    ]
}

fn base64(data: &[u8]) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= c.len() {
                A[(n >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            });
        }
    }
    out
}

fn pct(data: &[u8]) -> Vec<u8> {
    data.iter()
        .flat_map(|c| format!("%{c:02X}").into_bytes())
        .collect()
}

fn json_esc(data: &[u8]) -> Vec<u8> {
    data.iter()
        .flat_map(|c| format!("\\u{c:04x}").into_bytes())
        .collect()
}

fn hex(data: &[u8]) -> Vec<u8> {
    data.iter()
        .flat_map(|c| format!("{c:02x}").into_bytes())
        .collect()
}
