//! `sensor scan`: the detection engine on files, directories (recursive, in parallel) and
//! stdin, so rules can be tried without a kernel. Output as a table, JSON lines or SARIF
//! 2.1.0; exit 0 without findings, 1 with findings, 2 on errors (as gitleaks does).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde_json::json;

use crate::detect::{Engine, Finding, ScanOptions};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable table.
    Table,
    /// One JSON object per finding per line.
    Json,
    /// SARIF 2.1.0 log.
    Sarif,
}

/// A finding with the file it was found in.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Located {
    pub path: String,
    #[serde(flatten)]
    pub finding: Finding,
}

/// Result of a scan run.
pub struct Report {
    pub findings: Vec<Located>,
    pub errors: Vec<String>,
    pub files: usize,
    pub bytes: u64,
}

/// Files up to this size are scanned whole; larger ones stream through in chunks of
/// this size, which stay in the CPU cache between the read and the scan (and memory use
/// does not grow with the file).
const CHUNK: usize = 256 << 10;

thread_local! {
    /// One read buffer per worker, reused: a fresh allocation per file costs page faults.
    static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Scans one file: findings (with its path) and bytes scanned.
fn scan_file(engine: &Engine, p: &Path, opts: ScanOptions) -> Result<(Vec<Located>, u64), String> {
    let err = |e: std::io::Error| format!("{}: {e}", p.display());
    let mut file = std::fs::File::open(p).map_err(err)?;
    let path = p.display().to_string();
    let locate = |v: Vec<Finding>| {
        v.into_iter()
            .map(|finding| Located {
                path: path.clone(),
                finding,
            })
            .collect::<Vec<_>>()
    };
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        let n = Read::by_ref(&mut file)
            .take(CHUNK as u64)
            .read_to_end(buf)
            .map_err(err)?;
        if n < CHUNK {
            return Ok((locate(engine.scan(&buf[..n], 0, opts)), n as u64));
        }
        let mut stream = crate::detect::StreamScanner::new();
        let mut found = locate(stream.feed(engine, None, 0, &buf[..n], opts));
        // Later chunks are read straight into the stream's own buffer.
        while let Some(f) = stream
            .feed_from(engine, &mut file, CHUNK, opts)
            .map_err(err)?
        {
            found.extend(locate(f));
        }
        Ok((found, stream.position()))
    })
}

fn collect(path: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => match std::fs::read_dir(path) {
            Ok(rd) => {
                let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
                entries.sort();
                for p in entries {
                    if p.file_name().is_some_and(|n| n == ".git") {
                        continue;
                    }
                    collect(&p, out, errors);
                }
            }
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        },
        Ok(m) if m.is_file() => out.push(path.to_path_buf()),
        Ok(_) => {} // symlinks, sockets, devices: not followed
        Err(e) => errors.push(format!("{}: {e}", path.display())),
    }
}

/// Scans `inputs` ("-" = stdin).
pub fn scan(engine: &Engine, inputs: &[String], opts: ScanOptions, progress: bool) -> Report {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut findings = Vec::new();
    let mut bytes = 0u64;
    let mut nfiles = 0;
    for i in inputs {
        if i == "-" {
            // Streamed like a large file: a pipe of any length in bounded memory.
            let mut stream = crate::detect::StreamScanner::new();
            let mut stdin = std::io::stdin().lock();
            loop {
                match stream.feed_from(engine, &mut stdin, CHUNK, opts) {
                    Ok(Some(found)) => findings.extend(found.into_iter().map(|f| Located {
                        path: "-".into(),
                        finding: f,
                    })),
                    Ok(None) => break,
                    Err(e) => {
                        errors.push(format!("stdin: {e}"));
                        break;
                    }
                }
            }
            bytes += stream.position();
            nfiles += 1;
        } else {
            collect(Path::new(i), &mut files, &mut errors);
        }
    }
    let done = AtomicUsize::new(0);
    let total = files.len();
    let show = progress && std::io::stderr().is_terminal() && total > 1;
    let results: Vec<Result<(Vec<Located>, u64), String>> = files
        .par_iter()
        .map(|p| {
            let r = scan_file(engine, p, opts);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if show && (n.is_multiple_of(64) || n == total) {
                eprint!("\rscanning: {n}/{total} files");
                if n == total {
                    eprintln!();
                }
            }
            r
        })
        .collect();
    for r in results {
        match r {
            Ok((f, b)) => {
                findings.extend(f);
                bytes += b;
                nfiles += 1;
            }
            Err(e) => errors.push(e),
        }
    }
    Report {
        findings,
        errors,
        files: nfiles,
        bytes,
    }
}

/// Writes the report in `format`.
pub fn write(
    report: &Report,
    format: Format,
    engine: &Engine,
    w: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        Format::Json => {
            for f in &report.findings {
                writeln!(w, "{}", serde_json::to_string(f).expect("serializable"))?;
            }
        }
        Format::Table => {
            if report.findings.is_empty() {
                writeln!(
                    w,
                    "no findings ({} files, {} bytes)",
                    report.files, report.bytes
                )?;
            } else {
                writeln!(
                    w,
                    "{:<34} {:<12} {:<8} {:<10} {:>8} {:<14} {:<42} path",
                    "detector",
                    "provider",
                    "severity",
                    "confidence",
                    "offset",
                    "prefix",
                    "fingerprint"
                )?;
                for l in &report.findings {
                    let f = &l.finding;
                    writeln!(
                        w,
                        "{:<34} {:<12} {:<8} {:<10} {:>8} {:<14} {:<42} {}",
                        f.detector,
                        f.provider,
                        format!("{:?}", f.severity).to_lowercase(),
                        f.confidence,
                        f.offset,
                        format!("{}…({})", f.safe_prefix, f.length),
                        f.fingerprint,
                        l.path
                    )?;
                }
                writeln!(
                    w,
                    "{} findings in {} files ({} bytes)",
                    report.findings.len(),
                    report.files,
                    report.bytes
                )?;
            }
        }
        Format::Sarif => {
            let rules: Vec<_> = engine
                .rules()
                .map(|r| {
                    json!({
                        "id": r.id,
                        "name": r.name,
                        "shortDescription": {"text": r.name},
                        "properties": {"tags": r.tags, "provider": r.provider, "severity": r.severity},
                    })
                })
                .collect();
            let results: Vec<_> = report
                .findings
                .iter()
                .map(|l| {
                    let f = &l.finding;
                    json!({
                        "ruleId": f.detector,
                        "level": match f.severity { crate::detect::rules::Severity::Critical | crate::detect::rules::Severity::High => "error", crate::detect::rules::Severity::Medium => "warning", _ => "note" },
                        "message": {"text": format!("{} ({}…, {} chars, {})", f.name, f.safe_prefix, f.length, f.confidence)},
                        "locations": [{"physicalLocation": {
                            "artifactLocation": {"uri": l.path},
                            "region": {"byteOffset": f.offset, "byteLength": f.length}
                        }}],
                        "partialFingerprints": {"secretHmac/v1": f.fingerprint},
                    })
                })
                .collect();
            let log = json!({
                "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
                "version": "2.1.0",
                "runs": [{
                    "tool": {"driver": {"name": "token-sensor", "version": env!("CARGO_PKG_VERSION"), "rules": rules}},
                    "results": results,
                }]
            });
            writeln!(
                w,
                "{}",
                serde_json::to_string_pretty(&log).expect("serializable")
            )?;
        }
    }
    Ok(())
}
