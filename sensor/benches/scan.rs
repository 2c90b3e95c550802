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

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn main() {
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
}
