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
