//! Detection throughput benchmark: generates a corpus of source-like text and logs with
//! planted tokens of every rule's format, scans it with `sensor scan`, and prints MB/s (per
//! core and overall), findings vs planted, and the same for peer scanners found on PATH
//! (ripsecrets from crates.io, installed by `cargo xtask bench-scan`; gitleaks if present).
//! A second corpus of real source code (the crates in the local cargo registry and the
//! system's C headers) shows what the synthetic one flatters. Prints figures; asserts
//! nothing.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::corpus::{gen_text, Rng};

/// Every rule's examples, from every file in `rules/`.
fn examples(root: &Path) -> Result<Vec<String>> {
    let mut files: Vec<_> = std::fs::read_dir(root.join("rules"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let v: serde_yaml::Value = serde_yaml::from_str(&text)?;
        for r in v["rules"].as_sequence().context("rules")? {
            for e in r["examples"].as_sequence().into_iter().flatten() {
                if let Some(s) = e.as_str() {
                    out.push(s.to_string());
                }
            }
        }
    }
    Ok(out)
}

fn time_cmd(cmd: &mut Command) -> Result<(f64, String)> {
    let t = Instant::now();
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("{cmd:?}"))?;
    Ok((
        t.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// Up to `limit` bytes of real source files (Rust crates from the cargo registry, C
/// headers), concatenated into 4 MiB files in `dir`. Returns the bytes written.
fn real_corpus(dir: &Path, limit: usize) -> Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut roots = Vec::new();
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
    {
        roots.push(home.join("registry/src"));
    }
    roots.push("/usr/include".into());
    let mut files = Vec::new();
    for r in roots {
        walk(&r, &mut files);
    }
    files.sort();
    let (mut total, mut part, mut n) = (0usize, Vec::new(), 0);
    for f in files {
        if total >= limit {
            break;
        }
        let Ok(data) = std::fs::read(&f) else {
            continue;
        };
        total += data.len();
        part.extend_from_slice(&data);
        if part.len() >= 4 << 20 {
            std::fs::write(dir.join(format!("r{n:03}.src")), &part)?;
            part.clear();
            n += 1;
        }
    }
    if !part.is_empty() {
        std::fs::write(dir.join(format!("r{n:03}.src")), &part)?;
    }
    Ok(total)
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out),
            Ok(t)
                if t.is_file()
                    && p.extension()
                        .is_some_and(|x| x == "rs" || x == "h" || x == "toml" || x == "md") =>
            {
                out.push(p)
            }
            _ => {}
        }
    }
}

/// Runs the benchmark over a corpus of `mib` MiB.
pub fn run(root: &Path, mib: usize) -> Result<()> {
    let sensor = root.join("target/release/sensor");
    let dir = std::env::temp_dir().join("token-sensor-scanbench");
    let clean = dir.join("clean");
    let planted = dir.join("planted");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&clean)?;
    std::fs::create_dir_all(&planted)?;
    let mut rng = Rng(Rng::SEED);
    let files = 64;
    let per = mib * (1 << 20) / files;
    for i in 0..files {
        std::fs::write(clean.join(format!("f{i:03}.rs")), gen_text(&mut rng, per))?;
    }
    let ex = examples(root)?;
    let mut planted_n = 0;
    for i in 0..8 {
        let mut t = gen_text(&mut rng, 1 << 20);
        for (j, e) in ex.iter().enumerate() {
            if j % 8 == i {
                t.extend_from_slice(format!("\nlet secret = \"{e}\";\n").as_bytes());
                planted_n += 1;
            }
        }
        std::fs::File::create(planted.join(format!("p{i}.log")))?.write_all(&t)?;
    }
    let total_mb = (files * per) as f64 / 1e6;
    let real = dir.join("real");
    let real_mb = real_corpus(&real, (mib << 20).min(128 << 20))? as f64 / 1e6;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let has = |b: &str| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let sensor_scan = |threads: Option<usize>, path: &Path| -> Result<(f64, String)> {
        let mut c = Command::new(&sensor);
        if let Some(t) = threads {
            c.env("RAYON_NUM_THREADS", t.to_string());
        }
        time_cmd(c.args(["scan", "--format", "json"]).arg(path))
    };
    // Warm the page cache: the figures are about scanning, not the disk.
    sensor_scan(None, &clean)?;
    sensor_scan(None, &real)?;

    println!("# token-sensor scan throughput ({cores} cores)");
    println!("## generated corpus: {total_mb:.0} MB of token-free source-like text and logs; {planted_n} planted tokens in 8 MB");
    let (t1, _) = sensor_scan(Some(1), &clean)?;
    let (tn, _) = sensor_scan(None, &clean)?;
    let (_, found) = sensor_scan(None, &planted)?;
    let found_n = found.lines().count();
    println!("token-sensor  1 thread: {:>8.1} MB/s per core   {} threads: {:>8.1} MB/s   findings {found_n} (planted: {planted_n} rule examples)", total_mb / t1, cores, total_mb / tn);
    println!(
        "target ≥ 1000 MB/s per core on token-free text: {}",
        if total_mb / t1 >= 1000.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    let mut rip = None;
    if has("ripsecrets") {
        let (tr, _) = time_cmd(Command::new("ripsecrets").arg(&clean))?;
        let (_, rf) = time_cmd(Command::new("ripsecrets").arg(&planted))?;
        println!("ripsecrets    {} threads: {:>8.1} MB/s   findings {} lines   token-sensor is {:.0}x faster", cores, total_mb / tr, rf.lines().count(), tr / tn);
        rip = Some(());
    } else {
        println!("ripsecrets not on PATH (cargo install ripsecrets) — no peer figure");
    }
    if has("gitleaks") {
        let (tg, _) = time_cmd(
            Command::new("gitleaks")
                .args(["dir", "--no-banner"])
                .arg(&clean),
        )?;
        println!(
            "gitleaks      {:>8.1} MB/s   token-sensor is {:.1}x faster",
            total_mb / tg,
            tg / tn
        );
    }

    println!("## real source code: {real_mb:.0} MB of Rust crates (cargo registry) and C headers");
    let (r1, rf) = sensor_scan(Some(1), &real)?;
    let (rn, _) = sensor_scan(None, &real)?;
    println!(
        "token-sensor  1 thread: {:>8.1} MB/s per core   {} threads: {:>8.1} MB/s   findings {}",
        real_mb / r1,
        cores,
        real_mb / rn,
        rf.lines().count()
    );
    if rip.is_some() {
        let (tr, _) = time_cmd(Command::new("ripsecrets").arg(&real))?;
        println!(
            "ripsecrets    {} threads: {:>8.1} MB/s   token-sensor is {:.0}x faster",
            cores,
            real_mb / tr,
            tr / rn
        );
    }
    Ok(())
}
