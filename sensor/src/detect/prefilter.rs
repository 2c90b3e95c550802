//! The scan's single pass. Before any regex runs, the engine needs three things from the
//! bytes: where rule keywords occur, where runs of base64-alphabet characters are long
//! enough to hide an encoded token, and where escapes (`%XX`, `\u`, `\/`) may stand for
//! token characters. Computing them separately read the data five times and spent most of
//! the scan there; this module finds all three in one SIMD pass of 64-byte blocks.
//!
//! Keywords are found with a Teddy-style fingerprint matcher (as in Hyperscan and the
//! `aho-corasick` crate): each keyword is represented by one 4-byte *window* of itself,
//! windows are placed in 16 buckets (two sets of 8, one bit each), and per fingerprint
//! position and set two 16-entry tables map the low and high nibble of a byte to the
//! buckets that accept it. 32 bytes are tested against all buckets with 16 table lookups
//! (`pshufb`); the rare positions where some bucket accepts all four bytes are verified
//! exactly. Windows and buckets are chosen by a greedy set cover over a Markov model of
//! source code and logs, so that windows sharing bytes (`ghp_ ghs_`, `dp.c dp.p dp.s`)
//! share a bucket and ordinary text rarely passes (~2×10⁻³ per byte of Rust sources).
//! The same nibble-table trick classifies base64 characters and escapes.
//!
//! An AVX2 kernel runs where the CPU has it, on the data and on a zero-padded copy of
//! its tail; a scalar kernel computing the same masks runs elsewhere, and the tests hold
//! both to a byte-by-byte reference.

/// Shortest run of base64-alphabet characters worth decoding: the shortest rule token
/// (~20 chars) is at least 27 characters of base64, so shorter runs cannot hide one.
pub const MIN_ENCODED: usize = 24;

/// Improvements applied after the greedy placement. More halve the pass rate on real
/// code (3e-3 → 1.4e-3 per byte at 24) but cost 10× the build time and no measurable
/// throughput: the kernel's fixed cost dominates.
const ROUNDS: usize = 3;
/// Fingerprint length: bytes of each keyword window (at most 7).
const FP: usize = 4;
/// Fingerprint table sets, each of 8 buckets (the bits of a table entry).
const SETS: usize = 2;
const BUCKETS: usize = 8 * SETS;
const _: () = assert!(
    SETS == 2,
    "bucket bits are put together from two table sets"
);
/// Bytes per block; each block yields 64-bit masks.
const BLOCK: usize = 64;
/// Bytes a block reads past its end (for the later fingerprint positions).
const PAD: usize = FP - 1;

/// Character classes as nibble tables: a byte `c` is in class bit `k` when
/// `CLASS_LO[c & 15] & CLASS_HI[c >> 4]` has bit `k`. Bits 0–4 together are the base64
/// alphabet (standard and URL-safe, with `=`), bit 5 is `%`, bit 6 is `\`.
const CLASS_LO: [u8; 16] = class_table(true);
const CLASS_HI: [u8; 16] = class_table(false);
const B64_BITS: u8 = 0x1f;
const PCT_BIT: u8 = 0x20;
const BSL_BIT: u8 = 0x40;

const fn class_table(low: bool) -> [u8; 16] {
    // (bit, high nibbles, low nibbles) rectangles.
    const RECTS: [(u8, u16, u16); 7] = [
        (0, 1 << 3, 0x03ff | 1 << 0xd),              // 0-9 and '='
        (1, 1 << 4 | 1 << 6, 0xfffe),                // A-O, a-o
        (2, 1 << 5 | 1 << 7, 0x07ff),                // P-Z, p-z
        (3, 1 << 5, 1 << 0xf),                       // '_'
        (4, 1 << 2, 1 << 0xb | 1 << 0xd | 1 << 0xf), // '+', '-', '/'
        (5, 1 << 2, 1 << 5),                         // '%'
        (6, 1 << 5, 1 << 0xc),                       // '\'
    ];
    let mut t = [0u8; 16];
    let mut i = 0;
    while i < RECTS.len() {
        let (bit, hi, lo) = RECTS[i];
        let set = if low { lo } else { hi };
        let mut n = 0;
        while n < 16 {
            if set & (1 << n) != 0 {
                t[n] |= 1 << bit;
            }
            n += 1;
        }
        i += 1;
    }
    t
}

/// Class bits of one byte.
#[inline(always)]
fn class(c: u8) -> u8 {
    CLASS_LO[(c & 15) as usize] & CLASS_HI[(c >> 4) as usize]
}

/// True for characters of the base64 alphabets (standard, URL-safe, `=`).
#[inline]
pub fn is_b64(c: u8) -> bool {
    class(c) & B64_BITS != 0
}

/// A keyword window and the keywords containing it (keyword index, offset in it).
struct Window {
    text: Vec<u8>,
    /// The text as a little-endian word and the mask of its bytes, for verification.
    word: u64,
    mask: u64,
    covers: Vec<(usize, usize)>,
}

/// Nibble sets of one bucket, per fingerprint position (`None`: any byte).
#[derive(Clone, Copy, Default)]
struct BucketShape {
    pos: [Option<(u16, u16)>; FP],
    used: bool,
}

/// A model of source code and logs for choosing windows: a Markov chain over character
/// kinds (lowercase, uppercase, digit, `_`, whitespace, other punctuation, non-ASCII),
/// measured on ~200 MB of C headers and Rust sources, with byte frequencies inside each
/// kind. Identifiers run on (`max_len`, `api_key=`), so "three letters and a separator"
/// is common even though each byte alone is not, which independent byte frequencies miss.
struct Model {
    kind: [u8; 256],
    /// P(byte | its kind).
    cond: [f64; 256],
    start: [f64; KINDS],
    next: [[f64; KINDS]; KINDS],
}

const KINDS: usize = 7;

fn kind_of(c: u8) -> u8 {
    match c {
        b'a'..=b'z' => 0,
        b'A'..=b'Z' => 1,
        b'0'..=b'9' => 2,
        b'_' => 3,
        b' ' | b'\n' | b'\t' | b'\r' => 4,
        0x21..=0x7e => 5,
        _ => 6,
    }
}

impl Model {
    fn new() -> Model {
        const LETTERS: [f64; 26] = [
            8.2, 1.5, 2.8, 4.3, 12.7, 2.2, 2.0, 6.1, 7.0, 0.15, 0.8, 4.0, 2.4, 6.7, 7.5, 1.9, 0.1,
            6.0, 6.3, 9.1, 2.8, 1.0, 2.4, 0.15, 2.0, 0.07,
        ];
        let weight = |c: u8| -> f64 {
            match c {
                b'a'..=b'z' => LETTERS[(c - b'a') as usize],
                b'A'..=b'Z' => LETTERS[(c - b'A') as usize],
                b' ' => 85.0,
                b'\n' => 12.0,
                b'\t' => 3.0,
                b'/' => 17.0,
                b':' => 10.0,
                b'(' | b')' | b'.' => 8.0,
                b',' => 7.0,
                b';' | b'-' | b'"' | b'=' => 4.0,
                b'>' | b'<' | b'*' | b'{' | b'}' | b'`' => 3.0,
                b'&' | b'#' | b'\'' => 2.0,
                b'~' => 0.1,
                _ => 1.0,
            }
        };
        let mut m = Model {
            kind: [0; 256],
            cond: [0.0; 256],
            start: [0.53, 0.04, 0.01, 0.04, 0.26, 0.12, 0.001],
            next: [
                [0.776, 0.008, 0.003, 0.024, 0.104, 0.084, 0.001],
                [0.449, 0.382, 0.010, 0.081, 0.038, 0.040, 0.001],
                [0.022, 0.021, 0.354, 0.038, 0.130, 0.436, 0.001],
                [0.545, 0.219, 0.002, 0.202, 0.026, 0.006, 0.001],
                [0.222, 0.032, 0.004, 0.046, 0.577, 0.118, 0.001],
                [0.155, 0.028, 0.007, 0.042, 0.414, 0.353, 0.001],
                [0.013, 0.001, 0.001, 0.001, 0.225, 0.026, 0.735],
            ],
        };
        let mut per_kind = [0.0; KINDS];
        for c in 0..=255u8 {
            m.kind[c as usize] = kind_of(c);
            per_kind[kind_of(c) as usize] += weight(c);
        }
        for c in 0..=255u8 {
            m.cond[c as usize] = weight(c) / per_kind[kind_of(c) as usize];
        }
        m
    }

    /// Expected fingerprint passes per byte of a bucket: the probability that four
    /// consecutive bytes fall in its position classes (forward algorithm).
    fn cost(&self, b: &BucketShape) -> f64 {
        if !b.used {
            return 0.0;
        }
        let mut alpha = [0.0; KINDS];
        for (p, pos) in b.pos.iter().enumerate() {
            let mut mass = [0.0; KINDS];
            match pos {
                None => mass = [1.0; KINDS],
                Some((his, los)) => {
                    let mut h = *his;
                    while h != 0 {
                        let hi = h.trailing_zeros() as usize;
                        h &= h - 1;
                        let mut l = *los;
                        while l != 0 {
                            let c = hi << 4 | l.trailing_zeros() as usize;
                            l &= l - 1;
                            mass[self.kind[c] as usize] += self.cond[c];
                        }
                    }
                }
            }
            let mut next = [0.0; KINDS];
            for k in 0..KINDS {
                let reach = if p == 0 {
                    self.start[k]
                } else {
                    (0..KINDS).map(|j| alpha[j] * self.next[j][k]).sum()
                };
                next[k] = reach * mass[k];
            }
            alpha = next;
        }
        alpha.iter().sum()
    }
}

fn with_window(b: &BucketShape, w: &[u8]) -> BucketShape {
    let mut n = *b;
    for p in 0..FP {
        n.pos[p] = match (n.used, b.pos[p], w.get(p)) {
            (_, _, None) => None,
            (false, _, Some(&c)) => Some((1 << (c >> 4), 1 << (c & 15))),
            (true, None, Some(_)) => None,
            (true, Some((h, l)), Some(&c)) => Some((h | 1 << (c >> 4), l | 1 << (c & 15))),
        };
    }
    n.used = true;
    n
}

/// The compiled fingerprint tables: `[set][position][nibble]` → bucket bits.
#[derive(Clone, Copy)]
struct Tables {
    lo: [[[u8; 16]; FP]; SETS],
    hi: [[[u8; 16]; FP]; SETS],
    /// The same per whole byte, both sets in one word (`[position][byte]`), for the
    /// scalar kernel: one lookup per position instead of four.
    full: [[u16; 256]; FP],
}

const NO_TABLES: Tables = Tables {
    lo: [[[0; 16]; FP]; SETS],
    hi: [[[0; 16]; FP]; SETS],
    full: [[0; 256]; FP],
};

/// Class bits per whole byte (scalar kernel).
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = CLASS_LO[c & 15] & CLASS_HI[c >> 4];
        c += 1;
    }
    t
};

/// Bucket bits per byte of a block, per set.
type Res = [[u8; BLOCK]; SETS];

/// What one pass over the bytes found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Marks {
    /// (keyword index, start) of every keyword occurrence, sorted by start.
    pub keywords: Vec<(usize, usize)>,
    /// Maximal runs of base64-alphabet characters at least [`MIN_ENCODED`] long.
    pub runs: Vec<(usize, usize)>,
    /// Positions of `%` followed by two hex digits of a printable character.
    pub percent: Vec<usize>,
    /// Positions of `\` followed by `u` or `/`.
    pub backslash: Vec<usize>,
}

/// The compiled prefilter.
pub struct Prefilter {
    keywords: Vec<Vec<u8>>,
    buckets: Vec<Vec<Window>>,
    tables: Tables,
    avx2: bool,
    /// Bit p: fingerprint position p needs no low-nibble mask before `pshufb`. An index
    /// byte with its top bit set yields 0, "no bucket", which is right for a non-ASCII
    /// byte when every keyword is ASCII and no window is a wildcard at p.
    unmasked: u8,
}

/// Masks of one block (bit i = byte i).
struct BlockMasks {
    cand: u64,
    b64: u64,
    pct: u64,
    bsl: u64,
}

impl Prefilter {
    /// Builds the matcher for `keywords` (each at least 2 bytes).
    pub fn new(keywords: &[String]) -> Option<Prefilter> {
        let kw: Vec<Vec<u8>> = keywords.iter().map(|k| k.as_bytes().to_vec()).collect();
        if kw.iter().any(|k| k.len() < 2) {
            return None;
        }
        let model = Model::new();
        // Short keywords (a single window with wildcards) first, so they share buckets.
        let mut order: Vec<usize> = (0..kw.len()).collect();
        order.sort_by_key(|&i| (kw[i].len().min(FP + 1), kw[i].clone()));
        let mut chosen = extend(&kw, &order, Vec::new(), &model);
        // Improvement: drop windows made redundant and re-place each window's keywords
        // when that lowers the total.
        for _ in 0..ROUNDS {
            let mut improved = false;
            let before = total_cost(&chosen, &model);
            // How many chosen windows cover each keyword: removing a window uncovers only
            // the keywords it alone covers.
            let mut cover = vec![0usize; kw.len()];
            for (w, _) in &chosen {
                for (k, word) in kw.iter().enumerate() {
                    cover[k] += contains(word, w) as usize;
                }
            }
            for i in 0..chosen.len() {
                let mut trial = chosen.clone();
                let (removed, _) = trial.remove(i);
                let uncovered: Vec<usize> = order
                    .iter()
                    .copied()
                    .filter(|&k| cover[k] == 1 && contains(&kw[k], &removed))
                    .collect();
                let trial = extend(&kw, &uncovered, trial, &model);
                if total_cost(&trial, &model) + 1e-15 < before {
                    chosen = trial;
                    improved = true;
                    break;
                }
            }
            if !improved {
                break;
            }
        }
        let mut buckets: Vec<Vec<Window>> = (0..BUCKETS).map(|_| Vec::new()).collect();
        let mut tables = NO_TABLES;
        for (text, b) in chosen {
            let covers: Vec<(usize, usize)> = kw
                .iter()
                .enumerate()
                .flat_map(|(k, other)| find_all(other, &text).into_iter().map(move |off| (k, off)))
                .collect();
            let (set, bit) = (b / 8, 1u8 << (b % 8));
            for p in 0..FP {
                match text.get(p) {
                    Some(&c) => {
                        tables.lo[set][p][(c & 15) as usize] |= bit;
                        tables.hi[set][p][(c >> 4) as usize] |= bit;
                    }
                    None => {
                        for n in 0..16 {
                            tables.lo[set][p][n] |= bit;
                            tables.hi[set][p][n] |= bit;
                        }
                    }
                }
            }
            let mut bytes = [0u8; 8];
            bytes[..text.len()].copy_from_slice(&text);
            let word = u64::from_le_bytes(bytes);
            let mask = (1u64 << (8 * text.len())) - 1;
            buckets[b].push(Window {
                text,
                word,
                mask,
                covers,
            });
        }
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("bmi1")
            && std::is_x86_feature_detected!("lzcnt")
            && std::is_x86_feature_detected!("popcnt");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        let ascii = kw.iter().all(|k| k.is_ascii());
        let shortest = buckets
            .iter()
            .flatten()
            .map(|w| w.text.len())
            .min()
            .unwrap_or(FP);
        let unmasked = if ascii {
            ((1u16 << shortest.min(FP)) - 1) as u8
        } else {
            0
        };
        for p in 0..FP {
            for c in 0..256 {
                let (l, h) = (c & 15, c >> 4);
                tables.full[p][c] = (tables.lo[0][p][l] & tables.hi[0][p][h]) as u16
                    | ((tables.lo[1][p][l] & tables.hi[1][p][h]) as u16) << 8;
            }
        }
        Some(Prefilter {
            keywords: kw,
            buckets,
            tables,
            avx2,
            unmasked,
        })
    }

    /// Number of keyword windows.
    pub fn windows(&self) -> usize {
        self.buckets.iter().map(|b| b.len()).sum()
    }

    /// The windows, by bucket, for diagnostics.
    pub fn window_texts(&self) -> Vec<Vec<String>> {
        self.buckets
            .iter()
            .map(|b| {
                b.iter()
                    .map(|w| String::from_utf8_lossy(&w.text).into_owned())
                    .collect()
            })
            .collect()
    }

    /// Fingerprint passes per bucket over `data`, with each bucket's windows: how often
    /// ordinary text reaches verification (for tuning; `cargo bench` prints it).
    pub fn pass_counts(&self, data: &[u8]) -> Vec<(Vec<String>, u64)> {
        let mut counts = [0u64; BUCKETS];
        let mut res: Res = [[0; BLOCK]; SETS];
        for i in 0..data.len().saturating_sub(PAD) / BLOCK {
            block_scalar(&self.tables, &data[i * BLOCK..], &mut res);
            for (a, b) in res[0].iter().zip(&res[1]) {
                let mut bits = *a as u16 | (*b as u16) << 8;
                while bits != 0 {
                    counts[bits.trailing_zeros() as usize] += 1;
                    bits &= bits - 1;
                }
            }
        }
        self.window_texts().into_iter().zip(counts).collect()
    }

    /// Every (keyword index, start) occurrence in `data`, sorted by start.
    pub fn find(&self, data: &[u8]) -> Vec<(usize, usize)> {
        self.marks(data).keywords
    }

    /// Keywords, encoded runs and escapes of `data`, in one pass.
    pub fn marks(&self, data: &[u8]) -> Marks {
        self.marks_with(data, self.avx2)
    }

    /// Runs `blocks` blocks of `src` (which holds `PAD` more bytes) through the kernel,
    /// reporting them at `origin` onwards; bits at or past `live` are cleared.
    fn kernel(
        &self,
        avx2: bool,
        src: &[u8],
        blocks: usize,
        origin: usize,
        live: usize,
        c: &mut Collector,
    ) {
        if blocks == 0 {
            return;
        }
        assert!(src.len() >= blocks * BLOCK + PAD);
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: AVX2, BMI1, LZCNT and POPCNT were detected at construction, and
            // `src` holds the `blocks` blocks plus `PAD` bytes the kernel reads.
            unsafe {
                match self.unmasked {
                    0b1111 => blocks_avx2::<0b1111>(&self.tables, src, blocks, origin, live, c),
                    0b0111 => blocks_avx2::<0b0111>(&self.tables, src, blocks, origin, live, c),
                    0b0011 => blocks_avx2::<0b0011>(&self.tables, src, blocks, origin, live, c),
                    _ => blocks_avx2::<0>(&self.tables, src, blocks, origin, live, c),
                }
            }
            return;
        }
        let _ = avx2;
        blocks_scalar(&self.tables, src, blocks, origin, live, c);
    }

    fn marks_with(&self, data: &[u8], avx2: bool) -> Marks {
        let mut c = Collector {
            pre: self,
            data,
            marks: Marks::default(),
            top: 0,
        };
        let full = data.len().saturating_sub(PAD) / BLOCK;
        self.kernel(avx2, data, full, 0, usize::MAX, &mut c);
        // The tail, zero-padded (zero is in no class; keyword hits are verified against
        // `data`, so padding cannot produce one), through the same kernel: small writes
        // are most of what the sensor scans.
        let base = full * BLOCK;
        let rest = &data[base..];
        let mut buf = [0u8; 2 * BLOCK + PAD];
        buf[..rest.len()].copy_from_slice(rest);
        self.kernel(
            avx2,
            &buf,
            rest.len().div_ceil(BLOCK),
            base,
            rest.len(),
            &mut c,
        );
        c.finish();
        let mut marks = c.marks;
        marks.keywords.sort_unstable_by_key(|&(k, s)| (s, k));
        marks.keywords.dedup();
        marks
    }
}

/// Turns block masks into marks.
struct Collector<'a> {
    pre: &'a Prefilter,
    data: &'a [u8],
    marks: Marks,
    /// Length of the base64 run reaching the end of the previous block.
    top: usize,
}

impl Collector<'_> {
    #[inline(always)]
    fn consume(&mut self, base: usize, m: &BlockMasks, res: &Res) {
        if m.cand != 0 {
            self.verify(base, m.cand, res);
        }
        self.runs(base, m.b64);
        let mut pct = m.pct;
        while pct != 0 {
            let pos = base + pct.trailing_zeros() as usize;
            pct &= pct - 1;
            let hex = |i: usize| self.data.get(i).and_then(|c| (*c as char).to_digit(16));
            if let (Some(h), Some(l)) = (hex(pos + 1), hex(pos + 2)) {
                if (0x21..0x7f).contains(&(h * 16 + l)) {
                    self.marks.percent.push(pos);
                }
            }
        }
        let mut bsl = m.bsl;
        while bsl != 0 {
            let pos = base + bsl.trailing_zeros() as usize;
            bsl &= bsl - 1;
            if matches!(self.data.get(pos + 1), Some(b'u' | b'/')) {
                self.marks.backslash.push(pos);
            }
        }
    }

    #[cold]
    fn verify(&mut self, base: usize, mut cand: u64, res: &Res) {
        let data = self.data;
        while cand != 0 {
            let j = cand.trailing_zeros() as usize;
            cand &= cand - 1;
            let x = base + j;
            let mut bytes = [0u8; 8];
            let avail = (data.len() - x).min(FP);
            bytes[..avail].copy_from_slice(&data[x..x + avail]);
            let word = u64::from_le_bytes(bytes);
            let mut bits = res[0][j] as u16 | (res[1][j] as u16) << 8;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                for w in &self.pre.buckets[b] {
                    if word & w.mask != w.word || w.text.len() > avail {
                        continue;
                    }
                    for &(k, off) in &w.covers {
                        if x >= off && data[x - off..].starts_with(&self.pre.keywords[k]) {
                            self.marks.keywords.push((k, x - off));
                        }
                    }
                }
            }
        }
    }

    /// Maximal base64 runs of at least `MIN_ENCODED`. A run that reaches the end of a
    /// block is carried (`top`) and reported by the block where it ends. Most blocks of
    /// text have no long run ending in them, which a few shifts decide.
    #[inline(always)]
    fn runs(&mut self, base: usize, m: u64) {
        let top = self.top;
        let cross = top + m.trailing_ones() as usize >= MIN_ENCODED;
        // Bit i survives when bits i..i+24 are all set.
        let mut x = m;
        x &= x >> 1;
        x &= x >> 2;
        x &= x >> 4;
        x &= x >> 8;
        x &= x >> 8;
        self.top = if m == u64::MAX {
            top + BLOCK
        } else {
            m.leading_ones() as usize
        };
        if x != 0 || cross {
            self.long_runs(base, m, top);
        }
    }

    #[cold]
    fn long_runs(&mut self, base: usize, m: u64, top: usize) {
        if m & 1 == 0 && top >= MIN_ENCODED {
            self.marks.runs.push((base - top, base));
        }
        let mut r = m;
        while r != 0 {
            let s = r.trailing_zeros() as usize;
            let len = (r >> s).trailing_ones() as usize;
            if s + len == BLOCK {
                break; // carried into the next block
            }
            let start = if s == 0 { base - top } else { base + s };
            if base + s + len - start >= MIN_ENCODED {
                self.marks.runs.push((start, base + s + len));
            }
            r &= !(((1u64 << len) - 1) << s);
        }
    }

    /// A run reaching the end of the data.
    fn finish(&mut self) {
        if self.top >= MIN_ENCODED {
            let n = self.data.len();
            self.marks.runs.push((n - self.top, n));
        }
    }
}

/// Masks of the block at `d[..BLOCK]` (`d` holds `PAD` more bytes); fingerprint bucket
/// bits per byte go to `res`.
#[inline(always)]
fn block_scalar(t: &Tables, d: &[u8], res: &mut Res) -> BlockMasks {
    let d = &d[..BLOCK + PAD];
    let mut m = BlockMasks {
        cand: 0,
        b64: 0,
        pct: 0,
        bsl: 0,
    };
    for j in 0..BLOCK {
        let mut r = u16::MAX;
        for p in 0..FP {
            r &= t.full[p][d[j + p] as usize];
        }
        res[0][j] = r as u8;
        res[1][j] = (r >> 8) as u8;
        let cl = CLASS[d[j] as usize];
        m.cand |= ((r != 0) as u64) << j;
        m.b64 |= ((cl & B64_BITS != 0) as u64) << j;
        m.pct |= ((cl & PCT_BIT != 0) as u64) << j;
        m.bsl |= ((cl & BSL_BIT != 0) as u64) << j;
    }
    m
}

fn blocks_scalar(
    t: &Tables,
    src: &[u8],
    blocks: usize,
    origin: usize,
    live: usize,
    c: &mut Collector,
) {
    let mut res: Res = [[0; BLOCK]; SETS];
    for i in 0..blocks {
        let at = i * BLOCK;
        let mut m = block_scalar(t, &src[at..at + BLOCK + PAD], &mut res);
        clip(&mut m, at, live);
        c.consume(origin + at, &m, &res);
    }
}

/// Clears the bits of bytes at or past `live` (in a block starting at `at`).
#[inline(always)]
fn clip(m: &mut BlockMasks, at: usize, live: usize) {
    if at + BLOCK > live {
        let keep = (1u64 << (live - at)) - 1;
        m.cand &= keep;
        m.b64 &= keep;
        m.pct &= keep;
        m.bsl &= keep;
    }
}

/// The AVX2 kernel: the same masks as [`block_scalar`], 32 bytes per step.
///
/// # Safety
/// The CPU must support AVX2, BMI1, LZCNT and POPCNT, and `src` must hold `blocks * BLOCK + PAD` bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,lzcnt,popcnt")]
unsafe fn blocks_avx2<const UNMASKED: u8>(
    t: &Tables,
    src: &[u8],
    blocks: usize,
    origin: usize,
    live: usize,
    c: &mut Collector,
) {
    use std::arch::x86_64::*;
    assert!(blocks == 0 || src.len() >= blocks * BLOCK + PAD);
    let zero = _mm256_setzero_si256();
    let (mut lo, mut hi) = ([[zero; FP]; SETS], [[zero; FP]; SETS]);
    for s in 0..SETS {
        for p in 0..FP {
            lo[s][p] = bcast(&t.lo[s][p]);
            hi[s][p] = bcast(&t.hi[s][p]);
        }
    }
    let cls_lo = bcast(&CLASS_LO);
    let cls_hi = bcast(&CLASS_HI);
    let nib = _mm256_set1_epi8(0x0f);
    let b64_bits = _mm256_set1_epi8(B64_BITS as i8);
    let mut res: Res = [[0; BLOCK]; SETS];
    let ptr = src.as_ptr();
    for i in 0..blocks {
        let base = i * BLOCK;
        let mut m = BlockMasks {
            cand: 0,
            b64: 0,
            pct: 0,
            bsl: 0,
        };
        let mut accs = [[zero; SETS]; 2];
        for (h, acc) in accs.iter_mut().enumerate() {
            let at = ptr.add(base + h * 32);
            *acc = [_mm256_set1_epi8(-1); SETS];
            let mut v0 = zero;
            for p in 0..FP {
                let v = _mm256_loadu_si256(at.add(p) as *const __m256i);
                if p == 0 {
                    v0 = v;
                }
                let l = if UNMASKED & (1 << p) != 0 {
                    v
                } else {
                    _mm256_and_si256(v, nib)
                };
                let hh = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
                for s in 0..SETS {
                    acc[s] = _mm256_and_si256(
                        acc[s],
                        _mm256_and_si256(
                            _mm256_shuffle_epi8(lo[s][p], l),
                            _mm256_shuffle_epi8(hi[s][p], hh),
                        ),
                    );
                }
            }
            // The class tables hold no non-ASCII byte either.
            let l0 = v0;
            let h0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), nib);
            let cl = _mm256_and_si256(
                _mm256_shuffle_epi8(cls_lo, l0),
                _mm256_shuffle_epi8(cls_hi, h0),
            );
            let shift = 32 * h as u32;
            let mut any = acc[0];
            for a in &acc[1..] {
                any = _mm256_or_si256(any, *a);
            }
            let cand = !(_mm256_movemask_epi8(_mm256_cmpeq_epi8(any, zero)) as u32);
            let b64 =
                !(_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(cl, b64_bits), zero))
                    as u32);
            let pct = _mm256_movemask_epi8(_mm256_slli_epi16(cl, 2)) as u32;
            let bsl = _mm256_movemask_epi8(_mm256_slli_epi16(cl, 1)) as u32;
            m.cand |= (cand as u64) << shift;
            m.b64 |= (b64 as u64) << shift;
            m.pct |= (pct as u64) << shift;
            m.bsl |= (bsl as u64) << shift;
        }
        if m.cand != 0 {
            for s in 0..SETS {
                _mm256_storeu_si256(res[s].as_mut_ptr() as *mut __m256i, accs[0][s]);
                _mm256_storeu_si256(res[s].as_mut_ptr().add(32) as *mut __m256i, accs[1][s]);
            }
        }
        clip(&mut m, base, live);
        c.consume(origin + base, &m, &res);
    }
}

/// A 16-byte table in both lanes (`pshufb` looks up within each 128-bit lane).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn bcast(tab: &[u8; 16]) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    _mm256_broadcastsi128_si256(_mm_loadu_si128(tab.as_ptr() as *const __m128i))
}

/// Greedy placement on top of `chosen`: each keyword of `order` not yet covered gets the
/// window (of its 4-byte substrings, or itself when shorter) and bucket that add the
/// least expected cost.
fn extend(
    kw: &[Vec<u8>],
    order: &[usize],
    mut chosen: Vec<(Vec<u8>, usize)>,
    model: &Model,
) -> Vec<(Vec<u8>, usize)> {
    let mut shapes = shapes_of(&chosen);
    let mut uncovered: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&k| !chosen.iter().any(|(w, _)| contains(&kw[k], w)))
        .collect();
    for &k in order {
        if !uncovered.contains(&k) {
            continue;
        }
        let word = &kw[k];
        let windows: Vec<&[u8]> = if word.len() <= FP {
            vec![word.as_slice()]
        } else {
            word.windows(FP).collect()
        };
        // Set cover: cost per keyword newly covered, so windows that several keywords
        // share (`DER_` for three CODER_* variables) win over cheaper single ones.
        let mut best: Option<(f64, &[u8], usize)> = None;
        let now: Vec<f64> = shapes.iter().map(|s| model.cost(s)).collect();
        for w in windows {
            let gain = uncovered.iter().filter(|&&j| contains(&kw[j], w)).count() as f64;
            let penalty = word_penalty(w, model);
            for (b, shape) in shapes.iter().enumerate() {
                let delta = (model.cost(&with_window(shape, w)) - now[b] + penalty) / gain;
                if best.is_none_or(|(d, _, _)| delta < d) {
                    best = Some((delta, w, b));
                }
            }
        }
        let (_, w, b) = best.expect("at least one window and bucket");
        shapes[b] = with_window(&shapes[b], w);
        uncovered.retain(|&j| !contains(&kw[j], w));
        chosen.push((w.to_vec(), b));
    }
    chosen
}

fn shapes_of(chosen: &[(Vec<u8>, usize)]) -> Vec<BucketShape> {
    let mut shapes = vec![BucketShape::default(); BUCKETS];
    for (w, b) in chosen {
        shapes[*b] = with_window(&shapes[*b], w);
    }
    shapes
}

fn total_cost(chosen: &[(Vec<u8>, usize)], model: &Model) -> f64 {
    shapes_of(chosen).iter().map(|s| model.cost(s)).sum::<f64>()
        + chosen
            .iter()
            .map(|(w, _)| word_penalty(w, model))
            .sum::<f64>()
}

/// Extra expected cost of a window made only of letters: a piece of a word (`SESSION`,
/// `PRIVATE`, `agent`) occurs far more often than its letters' frequencies predict, while
/// windows spanning a separator, digit or case change (`N_TO`, `_v1_`, `ATT3`) do not.
fn word_penalty(w: &[u8], model: &Model) -> f64 {
    if w.iter().all(|c| c.is_ascii_alphabetic()) {
        (WORD_FACTOR * model.cost(&with_window(&BucketShape::default(), w))).max(WORD_FLOOR)
    } else {
        0.0
    }
}

/// How much more often a letters-only window occurs than the model says (measured on
/// C headers and Rust sources: `SSIO`, `CODE` and `PRIV` passed 10–100× their estimate).
const WORD_FACTOR: f64 = 50.0;
/// Least expected frequency of a letters-only window (`PRIV` occurs 3e-5 per byte of C).
const WORD_FLOOR: f64 = 2e-5;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.len() > hay.len() {
        return Vec::new();
    }
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn builtin() -> &'static (Vec<String>, Prefilter) {
        static P: std::sync::OnceLock<(Vec<String>, Prefilter)> = std::sync::OnceLock::new();
        P.get_or_init(|| {
            // The keywords the engine gives the tables (the others are found through
            // base64 runs, see `anchor`).
            let rules = crate::detect::rules::builtin();
            let runs_only = |k: &String| {
                rules
                    .iter()
                    .filter(|r| r.keywords.contains(k))
                    .all(crate::detect::anchor::run_anchored)
            };
            let mut kws: Vec<String> = rules
                .iter()
                .flat_map(|r| r.keywords.clone())
                .filter(|k| !runs_only(k))
                .collect();
            kws.sort();
            kws.dedup();
            let p = Prefilter::new(&kws).unwrap();
            (kws, p)
        })
    }

    /// The obvious, slow definition of every mark.
    fn reference(kws: &[String], data: &[u8]) -> Marks {
        let mut keywords = Vec::new();
        for (k, kw) in kws.iter().enumerate() {
            for s in find_all(data, kw.as_bytes()) {
                keywords.push((k, s));
            }
        }
        keywords.sort_unstable_by_key(|&(k, s)| (s, k));
        let mut runs = Vec::new();
        let mut i = 0;
        while i < data.len() {
            if !data[i].is_ascii_alphanumeric() && !b"+/-_=".contains(&data[i]) {
                i += 1;
                continue;
            }
            let s = i;
            while i < data.len() && (data[i].is_ascii_alphanumeric() || b"+/-_=".contains(&data[i]))
            {
                i += 1;
            }
            if i - s >= MIN_ENCODED {
                runs.push((s, i));
            }
        }
        let hexv = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16));
        let percent = (0..data.len())
            .filter(|&i| data[i] == b'%' && matches!((hexv(data.get(i + 1)), hexv(data.get(i + 2))), (Some(h), Some(l)) if (0x21..0x7f).contains(&(h * 16 + l))))
            .collect();
        let backslash = (0..data.len())
            .filter(|&i| data[i] == b'\\' && matches!(data.get(i + 1), Some(b'u' | b'/')))
            .collect();
        Marks {
            keywords,
            runs,
            percent,
            backslash,
        }
    }

    #[test]
    fn class_tables_are_the_base64_alphabet_and_escapes() {
        for c in 0..=255u8 {
            let want = c.is_ascii_alphanumeric() || b"+/-_=".contains(&c);
            assert_eq!(is_b64(c), want, "byte {c:#x}");
            assert_eq!(class(c) & PCT_BIT != 0, c == b'%', "byte {c:#x}");
            assert_eq!(class(c) & BSL_BIT != 0, c == b'\\', "byte {c:#x}");
        }
    }

    #[test]
    fn finds_every_keyword_occurrence_including_overlaps() {
        let kws: Vec<String> = [
            "ghp_", "gho_", "ghs_eyJ", "ghs_", "glpat-", "eyJ", "AKIA", "Q~", ":AA",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = Prefilter::new(&kws).unwrap();
        let text = b"x ghp_abc ghs_eyJhb glpat-1 AKIAXX 8Q~y 123:AAbb eyJ";
        let found: Vec<(String, usize)> = p
            .find(text)
            .into_iter()
            .map(|(k, s)| (kws[k].clone(), s))
            .collect();
        let want = [
            ("ghp_", 2),
            ("ghs_eyJ", 10),
            ("ghs_", 10),
            ("eyJ", 14),
            ("glpat-", 20),
            ("AKIA", 28),
            ("Q~", 36),
            (":AA", 43),
            ("eyJ", 49),
        ];
        for (k, s) in want {
            assert!(
                found.contains(&(k.to_string(), s)),
                "{k}@{s} missing from {found:?}"
            );
        }
        assert_eq!(found.len(), want.len(), "{found:?}");
    }

    #[test]
    fn long_runs_across_blocks_and_at_the_ends() {
        // Runs longer than a block, starting and ending on and off block boundaries, and
        // reaching the end of the data, are reported once, whole.
        let (kws, p) = builtin();
        let kws: &[String] = kws;
        for start in [0usize, 1, 23, 40, 63, 64, 65, 127, 128] {
            for len in [23usize, 24, 25, 63, 64, 65, 128, 200] {
                for after in [0usize, 1, 5, 64, 70] {
                    let mut d = vec![b' '; start];
                    d.extend((0..len).map(|i| b"Ab3+/=_-"[i % 8]));
                    d.extend(std::iter::repeat_n(b'.', after));
                    let want = reference(kws, &d);
                    assert_eq!(want.runs.len(), usize::from(len >= MIN_ENCODED));
                    assert_eq!(p.marks(&d), want, "start {start} len {len} after {after}");
                    assert_eq!(
                        p.marks_with(&d, false),
                        want,
                        "scalar: start {start} len {len} after {after}"
                    );
                }
            }
        }
    }

    #[test]
    fn short_keywords_before_non_ascii_bytes() {
        // Wildcard fingerprint positions must accept bytes with the top bit set.
        let (kws, p) = builtin();
        let kws: &[String] = kws;
        for tail in [&b"\x80"[..], b"\xff\xfe", b"\xc3\xa9\xc3"] {
            // (Short keywords the tables hold; `hf_` is found through base64 runs.)
            for k in ["Q~", "SG.", "eyJ", ":AA"] {
                let mut data = b"0123456789".repeat(7);
                data.extend_from_slice(k.as_bytes());
                data.extend_from_slice(tail);
                let want = reference(kws, &data);
                assert!(!want.keywords.is_empty());
                assert_eq!(p.marks(&data), want, "{k} + {tail:?}");
                let mut mid = k.as_bytes().to_vec();
                mid.extend_from_slice(tail);
                mid.extend_from_slice(&b"x".repeat(80));
                assert_eq!(p.marks(&mid), reference(kws, &mid), "{k} + {tail:?} at 0");
            }
        }
    }

    #[test]
    fn builtin_keywords_fit_one_pass() {
        let (kws, p) = builtin();
        let kws: &[String] = kws;
        eprintln!(
            "{} windows for {} keywords: {:?}",
            p.windows(),
            kws.len(),
            p.window_texts()
        );
        assert!(
            p.windows() < kws.len(),
            "{} windows for {} keywords",
            p.windows(),
            kws.len()
        );
    }

    #[test]
    fn marks_agree_with_the_reference_at_every_length_and_alignment() {
        let (kws, p) = builtin();
        let kws: &[String] = kws;
        let mut text = Vec::new();
        for (i, k) in kws.iter().enumerate() {
            text.extend_from_slice(k.as_bytes());
            text.extend_from_slice(if i % 3 == 0 {
                b" %41%2F \\u0041 \\n "
            } else {
                b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
            });
        }
        // Every 7th cut of a short text; ~1000 cuts of a long one (the reference is slow).
        for cut in (0..text.len()).step_by((text.len() / 1000).max(7)) {
            for start in 0..3.min(cut) {
                let d = &text[start..cut];
                let want = reference(kws, d);
                assert_eq!(p.marks_with(d, false), want, "scalar, bytes {start}..{cut}");
                assert_eq!(p.marks(d), want, "native, bytes {start}..{cut}");
            }
        }
    }

    #[test]
    fn non_ascii_keywords_match_exactly() {
        // Imported rules may carry non-ASCII keywords: the kernel must then mask nibbles.
        let kws: Vec<String> = ["passwört=", "clé_", "ключ", "ghp_", "Q~"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = Prefilter::new(&kws).unwrap();
        assert_eq!(p.unmasked, 0);
        let mut data = Vec::new();
        for i in 0..40 {
            data.extend_from_slice(kws[i % kws.len()].as_bytes());
            data.extend_from_slice("é ü ключи passwort= cle_ \\u00e9 ".as_bytes());
        }
        let want = reference(&kws, &data).keywords;
        assert_eq!(p.find(&data), want);
        assert_eq!(p.marks_with(&data, false).keywords, want);
    }

    #[test]
    fn hundreds_of_keywords_build_quickly_and_match_exactly() {
        // A large imported rule set (gitleaks' own config has ~200 rules): the greedy
        // placement must stay fast and the matcher exact.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.=:";
        let kws: Vec<String> = (0..400)
            .map(|_| {
                let n = 2 + (next() % 12) as usize;
                (0..n)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
                    .collect()
            })
            .collect();
        let t = std::time::Instant::now();
        let p = Prefilter::new(&kws).unwrap();
        let built = t.elapsed();
        assert!(
            built < std::time::Duration::from_secs(20),
            "built in {built:?}"
        );
        let mut data = Vec::new();
        for (i, k) in kws.iter().enumerate() {
            data.extend_from_slice(k.as_bytes());
            data.extend_from_slice(if i % 2 == 0 { b" some text " } else { b"\n" });
        }
        let want = reference(&kws, &data).keywords;
        assert_eq!(p.find(&data), want);
        assert_eq!(p.marks_with(&data, false).keywords, want);
        eprintln!(
            "{} keywords: {} windows, built in {built:?}",
            kws.len(),
            p.windows()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn marks_agree_with_the_reference_on_arbitrary_bytes(
            parts in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..40),
                    proptest::collection::vec(proptest::sample::select(b"aAzZ09+/-_=%\\u/ ghp_glpat-xoxb:QA~".to_vec()), 0..90),
                    proptest::sample::select(vec![b"ghp_".to_vec(), b"sk-ant-api03-".to_vec(), b"Q~".to_vec(), b"%2F".to_vec(), b"\\u00".to_vec(), b"eyJ".to_vec(), b"glpat-".to_vec()]),
                ],
                0..24,
            )
        ) {
            let (kws, p) = builtin();
            let kws: &[String] = kws;
            let data: Vec<u8> = parts.concat();
            let want = reference(kws, &data);
            prop_assert_eq!(&p.marks_with(&data, false), &want);
            prop_assert_eq!(&p.marks(&data), &want);
        }
    }
}
