//! `cargo bench -p sensor --bench scan`: figures for the detection engine's hot path —
//! the one-pass kernel (throughput, in and out of cache), its cost per call on small
//! writes (what the sensor scans), whole-engine throughput, and how often each keyword
//! bucket passes ordinary text. On generated source-like text, or on the files of
//! `$SCAN_CORPUS` (a directory) when set. Prints figures; asserts nothing.

use std::hint::black_box;
use std::time::Instant;

use sensor::detect::prefilter::Prefilter;
use sensor::detect::{Engine, ScanOptions};
use sensor::redact::Fingerprinter;

// The corpus generator `cargo xtask bench-scan` uses, so both scan the same text.
#[path = "../../xtask/src/corpus.rs"]
mod corpus;

/// CPU time of this thread, in seconds: the figures stay meaningful on a shared, loaded
/// machine (wall time counts the waits for a core).
fn cpu_secs() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// Worst-case throughput per adversarial class (see `corpus::adversarial`), streamed in
/// `chunk`-byte writes as `sensor scan` (256 KiB) and the daemon (4 KiB batches) do.
fn adversarial(engine: &Engine, bytes: usize) {
    let mut kws: Vec<String> = sensor::detect::rules::builtin()
        .iter()
        .flat_map(|r| r.keywords.clone())
        .collect();
    kws.sort();
    kws.dedup();
    let clean = corpus::gen_text(&mut corpus::Rng(corpus::Rng::SEED), bytes);
    let opts = ScanOptions::default();
    let rate = |data: &[u8], chunk: usize| {
        let mut best = f64::MAX;
        let mut found = 0;
        let reps = std::env::var("ADVERSARIAL_REPS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(3);
        for _ in 0..reps {
            let t = cpu_secs();
            let mut s = sensor::detect::StreamScanner::new();
            let mut at = 0u64;
            found = 0;
            for c in data.chunks(chunk) {
                found += black_box(s.feed(engine, None, at, c, opts)).len();
                at += c.len() as u64;
            }
            best = best.min(cpu_secs() - t);
        }
        (mbps(data.len(), best), found)
    };
    for chunk in [256usize << 10, 4096] {
        println!(
            "# adversarial inputs, {} KiB writes (clean text: {:.0} MB/s)",
            chunk >> 10,
            rate(&clean, chunk).0
        );
        let mut worst = f64::MAX;
        let only = std::env::var("ADVERSARIAL_CLASS").unwrap_or_default();
        for (class, parts) in corpus::adversarial(&kws, bytes) {
            if !class.contains(&only) {
                continue;
            }
            let part = std::env::var("ADVERSARIAL_PART").unwrap_or_default();
            let mut rates: Vec<(f64, String, usize)> = parts
                .iter()
                .filter(|p| p.starts_with(part.as_bytes()))
                .map(|p| {
                    let (r, n) = rate(p, chunk);
                    (
                        r,
                        String::from_utf8_lossy(&p[..24.min(p.len())]).into_owned(),
                        n,
                    )
                })
                .collect();
            rates.sort_by(|a, b| a.0.total_cmp(&b.0));
            let Some(low) = rates.first() else { continue };
            worst = worst.min(low.0);
            println!(
                "  {class:<28} worst {:>7.0} MB/s  ({:?}…, {} findings)",
                low.0, low.1, low.2
            );
            if std::env::var_os("ADVERSARIAL_ALL").is_some() {
                for r in rates.iter().skip(1).take(12) {
                    println!(
                        "  {:<28}       {:>7.0} MB/s  ({:?}…, {} findings)",
                        "", r.0, r.1, r.2
                    );
                }
            }
        }
        println!("  worst case: {worst:.0} MB/s");
    }
}

/// Time per rule (an engine of that rule alone) on each adversarial class: which rules
/// an input makes slow.
fn per_rule(bytes: usize) {
    let rules = sensor::detect::rules::builtin();
    let mut kws: Vec<String> = rules.iter().flat_map(|r| r.keywords.clone()).collect();
    kws.sort();
    kws.dedup();
    let only = std::env::var("ADVERSARIAL_CLASS").unwrap_or_default();
    for (class, parts) in corpus::adversarial(&kws, bytes) {
        if !class.contains(&only) {
            continue;
        }
        let mut times: Vec<(f64, String)> = Vec::new();
        for r in &rules {
            let e = Engine::new(vec![r.clone()], Fingerprinter::random()).unwrap();
            e.prepare().unwrap();
            // Once untimed: lazily built automata (anchored DFAs) are not counted.
            for p in &parts {
                black_box(e.scan(&p[..p.len().min(64 << 10)], 0, ScanOptions::default()));
            }
            let t = cpu_secs();
            for p in &parts {
                for c in p.chunks(256 << 10) {
                    black_box(e.scan(c, 0, ScanOptions::default()));
                }
            }
            times.push((cpu_secs() - t, r.id.clone()));
        }
        times.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
        let total: f64 = times.iter().map(|t| t.0).sum();
        println!("{class}: {:.1} ms over all rules", total * 1e3);
        for (t, id) in times.iter().take(8) {
            println!("  {:>8.2} ms  {id}", t * 1e3);
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "per-rule") {
        per_rule(1 << 20);
        return;
    }
    if std::env::args().any(|a| a == "adversarial") {
        adversarial(&Engine::builtin(Fingerprinter::random()), 1 << 20);
        return;
    }
    let (name, data) = match std::env::var_os("SCAN_CORPUS") {
        Some(dir) => {
            let mut data = Vec::new();
            for e in std::fs::read_dir(&dir)
                .expect("$SCAN_CORPUS is a directory")
                .flatten()
            {
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    data.extend(std::fs::read(e.path()).unwrap_or_default());
                }
            }
            (format!("{}", std::path::Path::new(&dir).display()), data)
        }
        None => (
            "generated source-like text".to_string(),
            corpus::gen_text(&mut corpus::Rng(corpus::Rng::SEED), 256 << 20),
        ),
    };
    let mut kws: Vec<String> = sensor::detect::rules::builtin()
        .iter()
        .flat_map(|r| r.keywords.clone())
        .collect();
    kws.sort();
    kws.dedup();
    let t = Instant::now();
    let pre = Prefilter::new(&kws).expect("prefilter");
    println!("# scan engine: {} MB of {name}", data.len() / 1_000_000);
    println!(
        "prefilter: {} keywords in {} windows, built in {:.1} ms",
        kws.len(),
        pre.windows(),
        t.elapsed().as_secs_f64() * 1e3
    );

    for _ in 0..2 {
        let t = Instant::now();
        let mut n = 0;
        for chunk in data.chunks(256 << 10) {
            n += pre.marks(chunk).keywords.len();
        }
        println!(
            "kernel, 256 KiB chunks:      {:>7.0} MB/s  ({n} keyword hits)",
            mbps(data.len(), t.elapsed().as_secs_f64())
        );
    }
    let hot = &data[..(256 << 10).min(data.len())];
    let t = Instant::now();
    for _ in 0..500 {
        black_box(pre.marks(black_box(hot)));
    }
    println!(
        "kernel, in cache:            {:>7.0} MB/s",
        mbps(500 * hot.len(), t.elapsed().as_secs_f64())
    );
    let t = Instant::now();
    black_box(memchr::memchr3(0xfd, 0xfe, 0xff, black_box(&data)));
    println!(
        "(memchr3 over the same bytes: {:>6.0} MB/s — the memory/CPU ceiling)",
        mbps(data.len(), t.elapsed().as_secs_f64())
    );

    for n in [64usize, 512, 4096] {
        let d = &data[..n.min(data.len())];
        let iters = 200_000;
        let t = Instant::now();
        for _ in 0..iters {
            black_box(pre.marks(black_box(d)));
        }
        println!(
            "kernel, {n:>5}-byte writes:  {:>7.1} ns/call",
            t.elapsed().as_nanos() as f64 / iters as f64
        );
    }

    let engine = Engine::builtin(Fingerprinter::random());
    let opts = ScanOptions::default();
    let t = Instant::now();
    let mut found = 0;
    for chunk in data.chunks(256 << 10) {
        found += engine.scan(chunk, 0, opts).len();
    }
    println!(
        "engine (all rules, decoding): {:>6.0} MB/s  ({found} findings)",
        mbps(data.len(), t.elapsed().as_secs_f64())
    );

    // Learned secrets: a workspace holding 16 values of assorted lengths (as from
    // `*_TOKEN`/`*_KEY` variables), matched in every encoding.
    let mut learned = sensor::detect::LearnedSecrets::new(Fingerprinter::random());
    for i in 0..16usize {
        let len = [36, 40, 20, 64, 32, 24, 48, 93][i % 8] + i / 8;
        let value: Vec<u8> = (0..len)
            .map(|j| {
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                    [(i * 31 + j * 7) % 62]
            })
            .collect();
        let meta = sensor::detect::SecretMeta {
            source: format!("env:T{i}_TOKEN"),
            provider: "workspace".into(),
            kind: "token".into(),
            issuers: vec![],
            revoke: "webhook".into(),
        };
        learned.learn(&zeroize::Zeroizing::new(value), meta);
    }
    let part = &data[..(32 << 20).min(data.len())];
    let t = Instant::now();
    let mut n = 0;
    for chunk in part.chunks(4096) {
        n += learned.find(chunk).len();
    }
    println!(
        "learned secrets (16, all encodings), 4 KiB writes: {:>6.0} MB/s  ({n} matches)",
        mbps(part.len(), t.elapsed().as_secs_f64())
    );

    let sample = &data[..(64 << 20).min(data.len())];
    println!(
        "fingerprint passes per byte, by bucket (first {} MB):",
        sample.len() / 1_000_000
    );
    for (windows, count) in pre.pass_counts(sample) {
        println!(
            "  {:>9.2e}  {}",
            count as f64 / sample.len() as f64,
            windows.join(" ")
        );
    }
    adversarial(&engine, 1 << 20);
}
