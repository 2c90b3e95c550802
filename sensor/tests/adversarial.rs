//! The detection engine against input a watched process controls: findings identical to
//! a simple reference matcher on adversarial mixes (keyword floods, token-like tails,
//! non-ASCII bytes, pathological user patterns), and throughput on every adversarial
//! class within a floor of clean text's, measured in the same run (CPU time of this
//! thread, so other load on the machine does not count). The reference covers the
//! context-keyed rules (over base64 runs found byte by byte) and the one-finding-per-span
//! policy too.

use proptest::prelude::*;
use regex_automata::{meta, Input};
use sensor::detect::pattern;
use sensor::detect::prefilter::{is_b64, MIN_ENCODED};
use sensor::detect::rules::{builtin, parse_yaml, Rule};
use sensor::detect::validators::{entropy, Validation};
use sensor::detect::{Engine, ScanOptions, StreamScanner};
use sensor::redact::Fingerprinter;

#[path = "../../xtask/src/corpus.rs"]
#[allow(dead_code)]
mod corpus;

/// A rule as the reference runs it: the regex over whole regions, nothing else.
struct RefRule {
    rule: Rule,
    re: meta::Regex,
    span: usize,
    back: usize,
    allow: Vec<regex::bytes::Regex>,
}

fn reference_rules(rules: &[Rule]) -> Vec<RefRule> {
    rules
        .iter()
        .map(|r| {
            let a = pattern::analyse(&r.pattern, &r.keywords, r.max_len).unwrap();
            RefRule {
                rule: r.clone(),
                re: pattern::build(&a.hir).unwrap(),
                span: a.span,
                back: if a.prefix { 0 } else { pattern::BACK },
                allow: r
                    .allowlist
                    .iter()
                    .map(|p| regex::bytes::Regex::new(p).unwrap())
                    .collect(),
            }
        })
        .collect()
}

/// A rule's filters on a secret: length, entropy, allowlist, validator.
fn accept(r: &RefRule, secret: &[u8], candidates: bool) -> Option<Validation> {
    if r.rule.min_len.is_some_and(|n| secret.len() < n)
        || r.rule.max_len.is_some_and(|n| secret.len() > n)
        || r.rule.entropy.is_some_and(|f| entropy(secret) < f)
        || r.allow.iter().any(|a| a.is_match(secret))
    {
        return None;
    }
    let v = match r.rule.validator {
        Some(v) if v.check(secret) => Validation::Valid,
        Some(_) => Validation::Failed,
        None => Validation::NotApplicable,
    };
    (v != Validation::Failed || candidates).then_some(v)
}

/// The engine's definition, written the obvious way: every keyword occurrence (found
/// by comparing at every position) opens a window of `back` bytes before and `span`
/// after it; overlapping windows merge; the regex finds leftmost-first matches in each
/// merged region; a match counts when a keyword occurrence lies within `back` bytes of
/// its start and before its end; then length, entropy, allowlist and validator. Then the
/// context-keyed rules over every maximal base64-alphabet run (found byte by byte), and
/// one finding per secret span: see [`one_per_span`].
fn reference(rules: &[RefRule], data: &[u8], candidates: bool) -> Vec<(String, usize, usize)> {
    let mut hits = Vec::new();
    for (ri, r) in rules.iter().enumerate() {
        let mut occ: Vec<usize> = (0..data.len())
            .filter(|&i| {
                r.rule
                    .keywords
                    .iter()
                    .any(|k| data[i..].starts_with(k.as_bytes()))
            })
            .collect();
        occ.dedup();
        let mut regions: Vec<(usize, usize)> = Vec::new();
        for &k in &occ {
            let w = (k.saturating_sub(r.back), (k + r.span).min(data.len()));
            match regions.last_mut() {
                Some(last) if w.0 <= last.1 => last.1 = last.1.max(w.1),
                _ => regions.push(w),
            }
        }
        for (from, to) in regions {
            let mut caps = r.re.create_captures();
            let mut pos = from;
            while pos < to {
                r.re.search_captures(&Input::new(data).range(pos..to), &mut caps);
                let Some(m) = caps.get_match() else { break };
                pos = if m.is_empty() { m.end() + 1 } else { m.end() };
                if m.is_empty()
                    || !occ
                        .iter()
                        .any(|&k| k + r.back >= m.start() && k <= m.start() + r.back && k < m.end())
                {
                    continue;
                }
                let g = caps
                    .get_group(r.rule.secret_group.unwrap_or(0))
                    .unwrap_or(m.span());
                if let Some(v) = accept(r, &data[g.start..g.end], true) {
                    hits.push((ri, g.start, g.end, v));
                }
            }
        }
    }
    let ctx = context_reference(rules, data, candidates);
    let mut out: Vec<_> = one_per_span(rules, hits, ctx, candidates)
        .into_iter()
        .map(|(ri, s, e, _)| (rules[ri].rule.id.clone(), s, e))
        .collect();
    out.sort();
    out
}

type RefHit = (usize, usize, usize, Validation);

/// Context-keyed values over every maximal run of base64-alphabet characters of at
/// least `MIN_ENCODED` (found byte by byte instead of by the prefilter's pass).
fn context_reference(
    rules: &[RefRule],
    data: &[u8],
    candidates: bool,
) -> Vec<(sensor::detect::context::Candidate, Validation)> {
    let plain: Vec<Rule> = rules.iter().map(|r| r.rule.clone()).collect();
    let index = sensor::detect::context::Index::new(&plain);
    let mut runs = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let s = i;
        while i < data.len() && is_b64(data[i]) {
            i += 1;
        }
        if i - s >= MIN_ENCODED {
            runs.push((s, i));
        }
        i = i.max(s + 1);
    }
    index.hits(
        data,
        &runs,
        |ri, secret| accept(&rules[ri], secret, candidates),
        &mut None,
    )
}

/// One finding per secret, the obvious (quadratic) way: a context value overlapping a
/// keyword rule's checksum failure is dropped, a generic one overlapping any keyword hit
/// too; checksum failures go unless `candidates`; of the hits on one span the best ranks
/// (severity, not `generic`-tagged, validated, context rule, first rule).
fn one_per_span(
    rules: &[RefRule],
    kw: Vec<RefHit>,
    ctx: Vec<(sensor::detect::context::Candidate, Validation)>,
    candidates: bool,
) -> Vec<RefHit> {
    let overlaps = |a: &RefHit, s: usize, e: usize| a.1 < e && a.2 > s;
    let mut all = kw.clone();
    for (c, v) in ctx {
        let shadowed = kw
            .iter()
            .any(|h| overlaps(h, c.start, c.end) && (h.3 == Validation::Failed || c.generic));
        if !shadowed {
            all.push((c.rule, c.start, c.end, v));
        }
    }
    all.retain(|h| candidates || h.3 != Validation::Failed);
    let rank = |h: &RefHit| {
        let r = &rules[h.0].rule;
        (
            std::cmp::Reverse(r.severity),
            r.tags.iter().any(|t| t == "generic"),
            h.3 != Validation::Valid,
            r.context.is_none(),
            h.0,
        )
    };
    all.iter()
        .filter(|h| {
            !all.iter()
                .any(|o| o.1 == h.1 && o.2 == h.2 && rank(o) < rank(h))
        })
        .cloned()
        .collect()
}

fn engine_hits(e: &Engine, data: &[u8], candidates: bool) -> Vec<(String, usize, usize)> {
    let opts = ScanOptions {
        decode: false,
        candidates,
    };
    let mut v: Vec<_> = e
        .scan(data, 0, opts)
        .into_iter()
        .map(|f| (f.detector, f.offset as usize, f.offset as usize + f.length))
        .collect();
    v.sort();
    v
}

/// User rules that stress the engine's paths: a pathological nested quantifier with an
/// end anchor, unbounded prefix patterns, a non-prefix pattern with a capture group, a
/// keyword inside the token, and a pattern whose DFA is too large to build.
const USER_RULES: &str = r#"version: 1
rules:
  - {id: nested-plus, name: n, provider: p, kind: k, keywords: [aa], pattern: '(a+)+$', severity: low}
  - {id: unbounded, name: n, provider: p, kind: k, keywords: [eyJ], pattern: 'eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9]{4,}', severity: low}
  - {id: grouped, name: n, provider: p, kind: k, keywords: [':XX'], pattern: '\b([0-9]{3,6}):XX([a-z]{5,9})\b', secret_group: 2, severity: low}
  - {id: inner, name: n, provider: p, kind: k, keywords: [MID], pattern: '[a-z]{2,10}MID[0-9]{2,10}', severity: low}
  - {id: overlap, name: n, provider: p, kind: k, keywords: [ab], pattern: 'ab[a-z]{3,40}ab[a-z]{3,40}\b', severity: low}
  - {id: huge-dfa, name: n, provider: p, kind: k, keywords: ['q-'], pattern: 'q-[a-z0-9]{10,60}zz[a-z0-9]{10,60}\b', severity: low}
"#;

fn engines() -> &'static (Engine, Vec<RefRule>) {
    static E: std::sync::OnceLock<(Engine, Vec<RefRule>)> = std::sync::OnceLock::new();
    E.get_or_init(|| {
        let mut rules = builtin();
        rules.extend(parse_yaml(USER_RULES, "user.yaml").unwrap());
        let e = Engine::new(rules.clone(), Fingerprinter::new(vec![3; 32]).unwrap()).unwrap();
        (e, reference_rules(&rules))
    })
}

fn pieces() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = Vec::new();
    for r in builtin() {
        v.extend(r.keywords.iter().map(|k| k.as_bytes().to_vec()));
        v.extend(r.examples.iter().map(|k| k.as_bytes().to_vec()));
        v.extend(r.counterexamples.iter().map(|k| k.as_bytes().to_vec()));
    }
    for s in [
        "aa",
        "aaaaaaaaaaaa",
        "b",
        "eyJ",
        "abc.",
        "Xyz9",
        ":XX",
        "1234",
        "hello",
        "MID",
        "42",
        "ab",
        "zz",
        "q-",
        "0123456789abcdef",
        "-",
        "_",
        ".",
        " ",
        "\n",
        "\"",
        "=",
        "é",
        "\u{1F600}",
    ] {
        v.push(s.as_bytes().to_vec());
    }
    v.push(vec![0xff, 0xfe]);
    v
}

fn adversarial_bytes() -> impl Strategy<Value = Vec<u8>> {
    let pieces = pieces();
    proptest::collection::vec(
        (
            proptest::sample::select(pieces),
            1usize..6,
            proptest::collection::vec(any::<u8>(), 0..3),
        ),
        0..60,
    )
    .prop_map(|parts| {
        let mut d = Vec::new();
        for (p, times, noise) in parts {
            for _ in 0..times {
                d.extend_from_slice(&p);
            }
            d.extend_from_slice(&noise);
        }
        d
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn findings_equal_the_reference_matcher(data in adversarial_bytes(), candidates in any::<bool>()) {
        let (e, r) = engines();
        prop_assert_eq!(engine_hits(e, &data, candidates), reference(r, &data, candidates));
    }

    #[test]
    fn floods_of_one_piece_equal_the_reference(
        piece in proptest::sample::select(pieces()),
        tail in proptest::sample::select(pieces()),
        times in 1usize..400,
    ) {
        let (e, r) = engines();
        let mut data = piece.repeat(times);
        data.extend_from_slice(&tail);
        data.extend_from_slice(&piece.repeat(times / 3));
        prop_assert_eq!(engine_hits(e, &data, true), reference(r, &data, true));
    }
}

#[test]
fn pathological_user_pattern_is_fast_and_reports_nothing_false() {
    // `(a+)+$` over 100 KB of `a` that does not reach the end: no match anywhere, and the
    // windows of the old engine ended in a false `$` ~100,000 times.
    let (e, _) = engines();
    let mut data = vec![b'a'; 100_000];
    data.push(b'!');
    let t = std::time::Instant::now();
    let found = e.scan(&data, 0, ScanOptions::default());
    assert!(
        found.iter().all(|f| f.detector != "nested-plus"),
        "{} false findings",
        found.len()
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        t.elapsed()
    );
    // And where it does match (the data ends in a's), it is found once.
    data.pop();
    let found = e.scan(&data, 0, ScanOptions::default());
    assert_eq!(
        found.iter().filter(|f| f.detector == "nested-plus").count(),
        1
    );
}

/// CPU time of this thread, in seconds.
fn cpu_secs() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Bytes per CPU second scanning `data` as a stream of `chunk`-byte writes (best of 3),
/// and the findings made.
fn rate(e: &Engine, data: &[u8], chunk: usize) -> (f64, usize) {
    rate_with(e, None, data, chunk)
}

fn rate_with(
    e: &Engine,
    learned: Option<&sensor::detect::LearnedSecrets>,
    data: &[u8],
    chunk: usize,
) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut found = 0;
    for _ in 0..3 {
        let t = cpu_secs();
        let mut s = StreamScanner::new();
        let mut at = 0u64;
        found = 0;
        for c in data.chunks(chunk) {
            found += std::hint::black_box(s.feed(e, learned, at, c, ScanOptions::default())).len();
            at += c.len() as u64;
        }
        best = best.min(cpu_secs() - t);
    }
    (data.len() as f64 / best.max(1e-9), found)
}

/// How much slower than clean text an adversarial input may scan. Measured (release):
/// clean ~4 GB/s in process, the worst adversarial class ~60–100 MB/s; the engine before
/// windows were merged fell to ~1 MB/s on keyword floods (a ratio in the thousands).
const FLOOR_RATIO: f64 = 200.0;
/// Inputs where keyword repetitions form valid-looking tokens (`GOCSPX-` repeated is one
/// every 35 bytes) cost what their findings cost (~1 µs each: a keyed hash and the
/// finding's fields): bounded per finding instead, and by a wider ratio.
const TOKEN_FLOOD_RATIO: f64 = 2000.0;
/// Every keyword of the ~475 rules mixed: each occurrence starts its rule's anchored
/// attempt, so this class is the slowest (measured 128–210× in test builds on the shared
/// 2-core VM, ~22 MB/s in process in release). Its own floor keeps the test meaningful
/// (the engine before regions were merged was 2000–5000× slower on floods) without
/// failing on this VM's noise; the README lists it as the open throughput gap.
const MIXED_RATIO: f64 = 400.0;
const MAX_SECS_PER_FINDING: f64 = 20e-6;

#[test]
fn every_adversarial_class_scans_within_a_floor_of_clean_text() {
    let e = Engine::builtin(Fingerprinter::random());
    e.prepare().unwrap();
    let mut kws: Vec<String> = builtin().iter().flat_map(|r| r.keywords.clone()).collect();
    kws.sort();
    kws.dedup();
    let size = 64 << 10;
    let clean = corpus::gen_text(&mut corpus::Rng(corpus::Rng::SEED), size);
    let verbose = std::env::var_os("ADVERSARIAL_VERBOSE").is_some();
    let mut classes = corpus::adversarial(&kws, size);
    classes.push(("context".into(), context_floods(size)));
    for (class, parts) in classes {
        for p in &parts {
            let head = String::from_utf8_lossy(&p[..20]).into_owned();
            for chunk in [64 << 10, 4096] {
                // Clean text measured right before, so both see the same machine.
                let (base, _) = rate(&e, &clean, chunk);
                let (r, found) = rate(&e, p, chunk);
                let ratio = base / r;
                let per_finding = p.len() as f64 / r / found.max(1) as f64;
                if verbose {
                    eprintln!(
                        "{ratio:>7.1}x {:>8.1} MB/s {found:>6} findings  {class} {head:?} {chunk}",
                        r / 1e6
                    );
                }
                if found * 256 > p.len() {
                    assert!(
                        ratio < TOKEN_FLOOD_RATIO && per_finding < MAX_SECS_PER_FINDING,
                        "{class} ({head:?}…, {chunk}-byte writes): {:.1} MB/s vs {:.1} MB/s clean, {found} findings",
                        r / 1e6,
                        base / 1e6
                    );
                } else {
                    let floor = if class == "mixed keywords" {
                        MIXED_RATIO
                    } else {
                        FLOOR_RATIO
                    };
                    assert!(
                        ratio < floor,
                        "{class} ({head:?}…, {chunk}-byte writes): {:.1} MB/s vs {:.1} MB/s clean",
                        r / 1e6,
                        base / 1e6
                    );
                }
            }
        }
    }
}

/// Inputs for the context-keyed rules (which have no keywords): every base64 run an
/// assignment whose key names a context rule (each rule's names in turn, as
/// `NAME_WORDS=value` and `"nameWords": "value"`), values random base64 that pass or just
/// miss the value shapes; and one key naming as many providers as fit before one long run.
fn context_floods(size: usize) -> Vec<Vec<u8>> {
    let names: Vec<Vec<String>> = builtin()
        .iter()
        .filter_map(|r| r.context.as_ref())
        .flat_map(|c| c.names.clone())
        .map(|n| n.split(' ').map(str::to_string).collect())
        .collect();
    assert!(!names.is_empty(), "no context rules");
    let mut rng = corpus::Rng(corpus::Rng::SEED ^ 0xc0);
    let b64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut value =
        |n: usize| -> Vec<u8> { (0..n).map(|_| b64[(rng.next() % 64) as usize]).collect() };
    let (mut env, mut json) = (Vec::new(), Vec::new());
    let mut i = 0;
    while env.len() < size || json.len() < size {
        let words = &names[i % names.len()];
        let len = [20, 24, 32, 39, 40, 41, 44, 64, 88][i % 9];
        env.extend_from_slice(words.join("_").to_ascii_uppercase().as_bytes());
        env.push(b'=');
        env.extend_from_slice(&value(len));
        env.push(b'\n');
        let camel: String = words
            .iter()
            .enumerate()
            .map(|(j, w)| match j {
                0 => w.clone(),
                _ => w[..1].to_ascii_uppercase() + &w[1..],
            })
            .collect();
        json.extend_from_slice(format!("\"{camel}\": \"").as_bytes());
        json.extend_from_slice(&value(len));
        json.extend_from_slice(b"\", ");
        i += 1;
    }
    let mut many = String::new();
    for w in names.iter().flatten() {
        if many.len() + w.len() + 1 > 78 {
            break;
        }
        many.push_str(w);
        many.push('_');
    }
    let mut long = format!("{many}key=").into_bytes();
    long.extend_from_slice(&value(size));
    vec![env, json, long]
}

/// Learned matching is the slower part of clean scanning (~0.5 GB/s with 16 secrets), so
/// its floods are held to a tighter ratio: measured 3–10x; before near misses were
/// rejected by a keyed hash of the whole form, every prefix pass cost a MAC (17–25x on
/// these floods, ~150x on a flood of a secret's repeated first byte).
const LEARNED_FLOOR_RATIO: f64 = 50.0;

#[test]
fn floods_of_a_learned_secrets_first_bytes_scan_within_the_floor() {
    // The learned matcher checks a keyed hash of every position's next 8 bytes; a flood
    // repeating the start of a secret the workspace holds passes that check everywhere.
    use base64::Engine as _;
    let e = Engine::builtin(Fingerprinter::random());
    let mut l = sensor::detect::LearnedSecrets::new(e.fingerprinter().clone());
    let mut secrets: Vec<String> = (0..15)
        .map(|i| format!("{i:02}Zq8Rt3Wm9Xv2Lp7Kd4Hn6Bf1Jc5Gs0Ye{i:02}"))
        .collect();
    // One whose first 8 bytes are one byte repeated: a flood of that byte passes the
    // prefix check at every position.
    secrets.push("aaaaaaaaaaaaQ7wE4rT1yU8iO5pZ2xC9".into());
    for s in &secrets {
        l.learn(
            &zeroize::Zeroizing::new(s.as_bytes().to_vec()),
            sensor::detect::SecretMeta {
                source: "env:X_TOKEN".into(),
                provider: "p".into(),
                kind: "k".into(),
                issuers: vec![],
                revoke: "webhook".into(),
            },
        );
    }
    let size = 256 << 10;
    let clean = corpus::gen_text(&mut corpus::Rng(corpus::Rng::SEED), size);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&secrets[3]);
    for unit in ["a", &secrets[0][..8], &secrets[5][..31], &b64[..8]] {
        let flood = unit.as_bytes().repeat(size / unit.len());
        for chunk in [64 << 10, 4096] {
            let (base, _) = rate_with(&e, Some(&l), &clean, chunk);
            let (r, _) = rate_with(&e, Some(&l), &flood, chunk);
            if std::env::var_os("ADVERSARIAL_VERBOSE").is_some() {
                eprintln!(
                    "{:>7.1}x {:>8.1} MB/s  learned flood {unit:?} {chunk}",
                    base / r,
                    r / 1e6
                );
            }
            assert!(
                base / r < LEARNED_FLOOR_RATIO,
                "{unit:?} flood, {chunk}-byte writes: {:.1} MB/s vs {:.1} MB/s clean",
                r / 1e6,
                base / 1e6
            );
        }
    }
}
