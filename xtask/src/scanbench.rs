//! Detection throughput benchmark: generates a corpus of source-like text and logs with
//! planted tokens of every rule's format, scans it with `sensor scan`, and prints MB/s (per
//! core and overall), findings vs planted, and the same for peer scanners found on PATH
//! (ripsecrets from crates.io, installed by `cargo xtask bench-scan`; gitleaks if present).
//! A second corpus of real source code (the crates in the local cargo registry and the
//! system's C headers) shows what the synthetic one flatters. Prints figures; asserts
//! nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::corpus::{adversarial, gen_text, Rng};

/// Every rule's `field` list (`examples`, `keywords`) from every file in `rules/`.
fn rule_lists(root: &Path, field: &str) -> Result<Vec<String>> {
    let mut files: Vec<_> = std::fs::read_dir(root.join("rules"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let v: yaml_serde::Value = yaml_serde::from_str(&text)?;
        for r in v["rules"].as_sequence().context("rules")? {
            for e in r[field].as_sequence().into_iter().flatten() {
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
    let ex = rule_lists(root, "examples")?;
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
    let (rules, providers) = rule_count(&sensor)?;
    let empty = dir.join("empty");
    std::fs::write(&empty, b"")?;
    let startup = (0..5)
        .map(|_| sensor_scan(Some(1), &empty).map(|(t, _)| t))
        .collect::<Result<Vec<f64>>>()?
        .into_iter()
        .fold(f64::MAX, f64::min);
    println!(
        "rules: {rules} from {providers} providers; start-up (load and compile rules, scan nothing): {:.0} ms",
        startup * 1e3
    );
    println!("## generated corpus: {total_mb:.0} MB of token-free source-like text and logs; {planted_n} planted tokens in 8 MB");
    let (t1, _) = sensor_scan(Some(1), &clean)?;
    let (tn, _) = sensor_scan(None, &clean)?;
    let (_, found) = sensor_scan(None, &planted)?;
    let found_n = found.lines().count();
    println!("token-sensor  1 thread: {:>8.1} MB/s per core   {} threads: {:>8.1} MB/s   findings {found_n} (planted: {planted_n} rule examples)", total_mb / t1, cores, total_mb / tn);
    println!(
        "              1 thread, start-up excluded: {:>8.1} MB/s per core   ({rules} rules)",
        total_mb / (t1 - startup)
    );
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

    adversarial_figures(&sensor, &dir.join("adversarial"), root, total_mb / t1)?;

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
    println!(
        "              1 thread, start-up excluded: {:>8.1} MB/s per core",
        real_mb / (r1 - startup)
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
    false_positive_corpus(&sensor, &dir.join("fp"), cores)
}

/// `sensor rules list`: the number of rules and of distinct providers.
fn rule_count(sensor: &Path) -> Result<(usize, usize)> {
    let out = Command::new(sensor).args(["rules", "list"]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let providers: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    Ok((text.lines().count(), providers.len()))
}

/// Python and npm packages that make up the larger part of the false-positive corpus:
/// popular web, cloud and AI SDKs (their code mentions every credential name there is).
const PIP_PACKAGES: &[&str] = &[
    "requests",
    "django",
    "flask",
    "sqlalchemy",
    "boto3",
    "fastapi",
    "pydantic",
    "httpx",
    "celery",
    "redis",
    "psycopg2-binary",
    "pymongo",
    "stripe",
    "openai",
    "anthropic",
    "google-cloud-storage",
    "azure-storage-blob",
    "azure-identity",
    "paramiko",
    "cryptography",
    "pyjwt",
    "kubernetes",
    "ansible-core",
];
const NPM_PACKAGES: &[&str] = &[
    "express",
    "react",
    "react-dom",
    "next",
    "typescript",
    "eslint",
    "webpack",
    "@babel/core",
    "lodash",
    "axios",
    "jest",
    "@aws-sdk/client-s3",
    "stripe",
    "@octokit/rest",
    "openai",
    "@anthropic-ai/sdk",
    "firebase-admin",
    "pg",
    "mysql2",
    "mongodb",
    "redis",
    "dotenv",
];

/// Installs [`PIP_PACKAGES`] into a virtualenv and [`NPM_PACKAGES`] into a project under
/// `~/.cache/token-sensor/fpcorpus` (once); returns their source roots. A failure (no
/// network, no npm) is reported and leaves that part out.
fn fp_package_roots() -> Vec<PathBuf> {
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return Vec::new();
    };
    let base = home.join(".cache/token-sensor/fpcorpus");
    let mut roots = Vec::new();
    let py = base.join("py");
    if !py.join("bin/pip").exists() {
        eprintln!(
            "xtask: installing PyPI packages for the false-positive corpus into {}",
            py.display()
        );
        let ok = Command::new("/usr/bin/python3")
            .args(["-m", "venv"])
            .arg(&py)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(py.join("bin/pip"))
                .args(["install", "--disable-pip-version-check", "-q"])
                .args(PIP_PACKAGES)
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("xtask: pip install failed; the corpus goes without PyPI packages");
        }
    }
    roots.push(py.join("lib"));
    let node = base.join("node");
    if !node.join("node_modules").exists() {
        eprintln!(
            "xtask: installing npm packages for the false-positive corpus into {}",
            node.display()
        );
        let ok = std::fs::create_dir_all(&node).is_ok()
            && std::fs::write(
                node.join("package.json"),
                r#"{"name": "fpcorpus", "private": true, "version": "1.0.0"}"#,
            )
            .is_ok()
            && Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--ignore-scripts",
                    "--legacy-peer-deps",
                ])
                .args(NPM_PACKAGES)
                .current_dir(&node)
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("xtask: npm install failed; the corpus goes without npm packages");
        }
    }
    roots.push(node.join("node_modules"));
    roots
}

/// Scans ≥ 500 MB of real source (system headers, the cargo registry, Python's standard
/// library, PyPI and npm packages; test code left out) and prints the findings: every
/// one is a false positive.
fn false_positive_corpus(sensor: &Path, dir: &Path, cores: usize) -> Result<()> {
    let mut roots: Vec<(PathBuf, usize)> = crate::fpcorpus::system_roots()
        .into_iter()
        .map(|r| (r, usize::MAX))
        .collect();
    roots.extend(fp_package_roots().into_iter().map(|r| (r, usize::MAX)));
    let parts = crate::fpcorpus::collect(&roots, dir)?;
    let mb = parts.iter().map(|p| p.bytes).sum::<usize>() as f64 / 1e6;
    println!("## false-positive corpus: {mb:.0} MB of real source without test code");
    for p in &parts {
        println!(
            "  {:>6.0} MB in {:>6} files  {}",
            p.bytes as f64 / 1e6,
            p.files,
            p.root.display()
        );
    }
    let (t, out) = time_cmd(
        Command::new(sensor)
            .args(["scan", "--format", "json"])
            .arg(dir),
    )?;
    let mut by_rule: std::collections::BTreeMap<String, usize> = Default::default();
    for l in out.lines() {
        // JSON lines (YAML reads JSON).
        let v: yaml_serde::Value = yaml_serde::from_str(l)?;
        *by_rule
            .entry(v["detector"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    println!(
        "token-sensor  {cores} threads: {:>8.1} MB/s   findings {} {:?}",
        mb / t,
        out.lines().count(),
        by_rule
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// Bytes of each adversarial part (one file each).
const ADVERSARIAL_PART: usize = 1 << 20;

/// What a watched process could write to slow detection down (see
/// `corpus::adversarial`), one file per part and a directory per class, scanned on one
/// thread. Parts whose keyword repetitions form valid tokens (`GOCSPX-` repeated is one
/// every 35 bytes) cost what their findings cost and are reported apart, with the findings.
fn adversarial_figures(sensor: &Path, dir: &Path, root: &Path, clean: f64) -> Result<()> {
    let mut keywords = rule_lists(root, "keywords")?;
    keywords.sort();
    keywords.dedup();
    let tokens = dir.join("token-floods");
    std::fs::create_dir_all(&tokens)?;
    let mut classes = Vec::new();
    for (i, (class, parts)) in adversarial(&keywords, ADVERSARIAL_PART)
        .into_iter()
        .enumerate()
    {
        let d = dir.join(format!("class{i}"));
        std::fs::create_dir_all(&d)?;
        // Classes of few parts are made longer, so that each is timed on ≥ 32 MiB.
        let times = (32 / parts.len().max(1)).max(1);
        for (j, p) in parts.iter().enumerate() {
            std::fs::write(d.join(format!("part{j:03}.txt")), p.repeat(times))?;
        }
        // Findings per file: a part with more than one per 256 bytes is a token flood.
        let out = Command::new(sensor)
            .args(["scan", "--format", "json"])
            .arg(&d)
            .stderr(Stdio::null())
            .output()?;
        let mut per: std::collections::HashMap<String, usize> = Default::default();
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(l)?;
            if let Some(p) = v["path"].as_str() {
                *per.entry(p.to_string()).or_default() += 1;
            }
        }
        for (p, n) in per {
            let len = std::fs::metadata(&p).map_or(ADVERSARIAL_PART as u64, |m| m.len());
            if n as u64 * 256 > len {
                let from = Path::new(&p);
                let name = format!("class{i}-{}", from.file_name().unwrap().to_string_lossy());
                std::fs::rename(from, tokens.join(name))?;
            }
        }
        classes.push((class, d));
    }
    // Start-up (every rule's automaton is built on first sight of its keyword, which an
    // input naming every keyword forces) is measured on a small file and subtracted.
    let startup_file = dir.join("every-keyword.txt");
    std::fs::write(&startup_file, keywords.join(" "))?;
    // CPU time of the scan (user + system), not wall time: other load on a shared
    // machine does not count.
    let run = |p: &Path| -> Result<(f64, String)> {
        let mut c = Command::new(sensor);
        c.env("RAYON_NUM_THREADS", "1");
        let before = children_cpu();
        let (_, out) = time_cmd(c.args(["scan", "--format", "json"]).arg(p))?;
        Ok((children_cpu() - before, out))
    };
    let mut startup = f64::MAX;
    for _ in 0..3 {
        startup = startup.min(run(&startup_file)?.0);
    }
    let timed = |d: &Path| -> Result<(f64, f64, usize)> {
        let bytes: u64 = std::fs::read_dir(d)?
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        let (t, out) = run(d)?;
        Ok((
            bytes as f64 / 1e6,
            (t - startup).max(1e-3),
            out.lines().count(),
        ))
    };
    println!(
        "## adversarial inputs, 1 thread, CPU time ({} MiB per part; start-up of {:.0} ms subtracted; clean text above: {clean:.0} MB/s)",
        ADVERSARIAL_PART >> 20,
        startup * 1e3
    );
    let mut worst = f64::MAX;
    for (class, d) in &classes {
        let (mb, t, found) = timed(d)?;
        if mb == 0.0 {
            continue;
        }
        worst = worst.min(mb / t);
        println!(
            "{class:<28} {:>8.1} MB/s   ({mb:.0} MB, {found} findings)",
            mb / t
        );
    }
    println!(
        "worst-case adversarial: {worst:.1} MB/s per core (target ≥ 100: {})",
        if worst >= 100.0 { "met" } else { "NOT met" }
    );
    let (mb, t, found) = timed(&tokens)?;
    if mb > 0.0 {
        println!(
            "token floods (keyword repetitions that form tokens) {:>8.1} MB/s   ({mb:.0} MB, {found} findings: {:.2} µs per finding)",
            mb / t,
            t * 1e6 / found.max(1) as f64
        );
    }
    Ok(())
}

/// CPU seconds (user + system) used by this process's waited-for children so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(u.ru_utime) + secs(u.ru_stime)
}
