//! `sensor scan`: the detection engine on files, directories (recursive, in parallel) and
//! stdin, so rules can be tried without a kernel. Output as a table, JSON lines or SARIF
//! 2.1.0; exit 0 without findings, 1 with findings, 2 on errors (as gitleaks does).
//!
//! Symbolic links are followed (a link loop is reported, not walked forever). A path named
//! on the command line that is not a regular file or directory — `-`, `/dev/stdin`, a
//! FIFO, a process substitution (`<(cmd)`), a device — is read as a stream; inside a
//! directory such files are skipped (a FIFO could block the scan forever), and each skip
//! is reported with its reason. A named path that could not be scanned makes the exit 2.

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
    /// Paths not scanned because of an error (a named path among them makes the exit 2).
    pub errors: Vec<String>,
    /// Paths found inside directories and left out on purpose, with the reason.
    pub skipped: Vec<String>,
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

/// What to read.
enum Input {
    /// A regular file (scanned in parallel).
    File(PathBuf),
    /// Read once, in order, as a stream: stdin (`-`), FIFOs, devices, `/dev/fd/N`.
    Stream(String),
}

/// What kind of non-regular file `t` is, for messages.
fn kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// The inputs a named path stands for (following symbolic links), with errors and skips.
fn collect(named: &str, out: &mut Vec<Input>, errors: &mut Vec<String>, skipped: &mut Vec<String>) {
    if named == "-" {
        out.push(Input::Stream(named.into()));
        return;
    }
    let path = Path::new(named);
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if std::fs::symlink_metadata(path).is_ok() => {
            errors.push(format!("{named}: broken or looping symbolic link: {e}"));
            return;
        }
        Err(e) => {
            errors.push(format!("{named}: {e}"));
            return;
        }
    };
    if meta.is_file() {
        out.push(Input::File(path.to_path_buf()));
        return;
    }
    if !meta.is_dir() {
        if kind(meta.file_type()) == "a socket" {
            errors.push(format!("{named}: a socket cannot be read; not scanned"));
        } else {
            out.push(Input::Stream(named.into()));
        }
        return;
    }
    let walk = walkdir::WalkDir::new(path)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || e.file_name() != ".git");
    for entry in walk {
        match entry {
            Ok(e) if e.file_type().is_file() => out.push(Input::File(e.into_path())),
            Ok(e) if e.file_type().is_dir() => {}
            Ok(e) => skipped.push(format!(
                "{}: {} inside a directory; not read",
                e.path().display(),
                kind(e.file_type())
            )),
            Err(e) => {
                let at = e
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                match e.loop_ancestor() {
                    Some(a) => skipped.push(format!(
                        "{at}: symbolic link loop (back to {}); not followed",
                        a.display()
                    )),
                    None => errors.push(match e.io_error() {
                        Some(io) => format!("{at}: {io}"),
                        None => e.to_string(),
                    }),
                }
            }
        }
    }
}

/// Reads one stream to its end through a stream scanner (bounded memory).
fn scan_stream(
    engine: &Engine,
    name: &str,
    opts: ScanOptions,
) -> Result<(Vec<Located>, u64), String> {
    let mut stream = crate::detect::StreamScanner::new();
    let mut found = Vec::new();
    let mut feed = |mut r: &mut dyn Read| -> std::io::Result<()> {
        while let Some(f) = stream.feed_from(engine, &mut r, CHUNK, opts)? {
            found.extend(f.into_iter().map(|finding| Located {
                path: name.to_string(),
                finding,
            }));
        }
        Ok(())
    };
    let res = if name == "-" {
        feed(&mut std::io::stdin().lock())
    } else {
        std::fs::File::open(name).and_then(|mut f| feed(&mut f))
    };
    res.map_err(|e| format!("{name}: {e}"))?;
    Ok((found, stream.position()))
}

/// Scans `inputs` ("-" = stdin).
pub fn scan(engine: &Engine, inputs: &[String], opts: ScanOptions, progress: bool) -> Report {
    let mut todo = Vec::new();
    let mut errors = Vec::new();
    let mut skipped = Vec::new();
    for i in inputs {
        collect(i, &mut todo, &mut errors, &mut skipped);
    }
    let mut findings = Vec::new();
    let mut bytes = 0u64;
    let mut nfiles = 0;
    let mut files = Vec::new();
    for input in todo {
        match input {
            Input::File(p) => files.push(p),
            Input::Stream(name) => match scan_stream(engine, &name, opts) {
                Ok((f, b)) => {
                    findings.extend(f);
                    bytes += b;
                    nfiles += 1;
                }
                Err(e) => errors.push(e),
            },
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
        skipped,
        files: nfiles,
        bytes,
    }
}

/// `s` with control characters (C0, DEL, C1) and backslashes escaped, for a terminal: a
/// file name can otherwise carry escape sequences that rewrite the screen.
pub fn escape_control(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A path as a SARIF `uri`: a relative reference, or `file://` for an absolute path, with
/// every byte outside RFC 3986's unreserved characters and `/` percent-encoded.
pub fn sarif_uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    if path.starts_with('/') {
        out.push_str("file://");
    }
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
                        format!("{}…({})", escape_control(&f.safe_prefix), f.length),
                        f.fingerprint,
                        escape_control(&l.path)
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
                            "artifactLocation": {"uri": sarif_uri(&l.path)},
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
