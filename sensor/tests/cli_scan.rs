//! `sensor scan` and `sensor rules check` through the real binary: formats, exit codes,
//! recursion, stdin, and no raw value in any output.

use std::io::Write;
use std::process::{Command, Stdio};

const GH: &str = "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";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sensor"))
}

fn tmp(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sensor-scan-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
    d
}

#[test]
fn scan_formats_and_exit_codes() {
    let d = tmp("fmt");
    std::fs::write(d.join("clean.txt"), "nothing to see here\n".repeat(100)).unwrap();
    std::fs::write(
        d.join("sub/deeper/config.env"),
        format!("X=1\nGITHUB_TOKEN={GH}\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("sub/bad-checksum.txt"),
        "ghp_M7H4jxUDDWHP4kZ6A4dxlQYsQIWJuq11T4V5\nAKIAIOSFODNN7EXAMPLE\n",
    )
    .unwrap();

    let out = bin()
        .args([
            "scan",
            "--format",
            "json",
            "--fingerprint-key",
            "00112233445566778899aabbccddeeff",
        ])
        .arg(&d)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(&GH[4..]), "raw token printed");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "only the valid token: {text}");
    let f = &lines[0];
    assert_eq!(f["detector"], "github-personal-access-token");
    assert_eq!(f["provider"], "github");
    assert!(f["path"]
        .as_str()
        .unwrap()
        .ends_with("sub/deeper/config.env"));
    assert_eq!(f["offset"], 17);
    let fp = sensor::redact::Fingerprinter::from_hex("00112233445566778899aabbccddeeff")
        .unwrap()
        .fingerprint(GH.as_bytes());
    assert_eq!(f["fingerprint"], fp.as_str());

    let out = bin()
        .args(["scan", "--format", "sarif"])
        .arg(&d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["ruleId"], "github-personal-access-token");
    assert!(
        sarif["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap()
            .len()
            >= 60
    );

    let out = bin()
        .args(["scan"])
        .arg(d.join("clean.txt"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no findings"));

    let out = bin()
        .args(["scan", "--format", "table"])
        .arg(&d)
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains("github-personal-access-token")
            && t.contains("ghp_…(40)")
            && !t.contains(&GH[4..]),
        "{t}"
    );

    let out = bin()
        .args(["scan"])
        .arg(d.join("does-not-exist"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does-not-exist"));

    let out = bin()
        .args(["scan", "--candidates", "--format", "json"])
        .arg(d.join("sub/bad-checksum.txt"))
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.contains("\"confidence\":\"low\""), "{t}");
}

#[test]
fn scan_stdin_and_encoded() {
    let mut child = bin()
        .args(["scan", "--format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use base64::Engine as _;
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("user:{GH}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("Authorization: Basic {enc}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(v["path"], "-");
    assert_eq!(v["encoding"], "base64");
}

#[test]
fn rules_check_passes_builtin_and_names_bad_files() {
    let out = bin().args(["rules", "check"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("rules ok"));
    let d = tmp("rules");
    let bad = d.join("bad.yaml");
    std::fs::write(&bad, "version: 1\nrules:\n  - id: my-rule\n    name: n\n    provider: p\n    kind: k\n    keywords: [abc_]\n    pattern: 'abc_[0-9]{4}'\n    severity: high\n    examples: ['abc_12']\n").unwrap();
    let out = bin().args(["rules", "check"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("my-rule") && err.contains("example #0 is not found"),
        "{err}"
    );
    std::fs::write(&bad, "version: 1\nrules:\n  - id: x\n    nme: typo\n").unwrap();
    let out = bin().args(["rules", "check"]).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && err.contains("bad.yaml"),
        "{err}"
    );
}

#[test]
fn large_files_stream_through_chunks_without_losing_tokens_at_the_seams() {
    use base64::Engine as _;
    // `sensor scan` reads files larger than 256 KiB in 256 KiB chunks: tokens straddling
    // each seam (raw and base64) must be found once, at their file offsets.
    const CHUNK: usize = 256 << 10;
    let d = tmp("large");
    let mut data = b"let value = compute(input);\n".repeat(40_000);
    let mut want = Vec::new();
    for (i, seam) in [CHUNK, 2 * CHUNK, 3 * CHUNK].into_iter().enumerate() {
        let at = seam - 7 - i * 3;
        data[at..at + GH.len()].copy_from_slice(GH.as_bytes());
        data[at - 1] = b' ';
        data[at + GH.len()] = b' ';
        want.push(("github-personal-access-token", "raw", at));
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("user:{GH}"));
    let at = 4 * CHUNK - b64.len() / 2;
    data[at..at + b64.len()].copy_from_slice(b64.as_bytes());
    data[at - 1] = b' ';
    data[at + b64.len()] = b' ';
    want.push(("github-personal-access-token", "base64", at));
    assert!(data.len() > 4 * CHUNK + 1000);
    std::fs::write(d.join("big.log"), &data).unwrap();

    let out = bin()
        .args(["scan", "--format", "json"])
        .arg(d.join("big.log"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(&GH[4..]), "raw token printed");
    let mut got: Vec<(String, String, u64)> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|f| {
            (
                f["detector"].as_str().unwrap().to_string(),
                f["encoding"].as_str().unwrap().to_string(),
                f["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort_by_key(|g| g.2);
    let want: Vec<(String, String, u64)> = want
        .into_iter()
        .map(|(d, e, o)| (d.to_string(), e.to_string(), o as u64))
        .collect();
    assert_eq!(got, want);

    // The same bytes through a pipe on stdin (short reads, streamed the same way).
    let mut child = bin()
        .args(["scan", "--format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let mut piped: Vec<(String, String, u64)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|f| {
            (
                f["detector"].as_str().unwrap().to_string(),
                f["encoding"].as_str().unwrap().to_string(),
                f["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    piped.sort_by_key(|g| g.2);
    assert_eq!(piped, want);
}

#[test]
fn symlinks_fifos_stdin_and_process_substitutions_are_read_and_skips_reported() {
    let d = tmp("special");
    let secret = format!("GITHUB_TOKEN={GH}\n");
    std::fs::write(d.join("sub/deeper/tok.env"), &secret).unwrap();
    std::os::unix::fs::symlink("sub/deeper/tok.env", d.join("link.env")).unwrap();
    std::os::unix::fs::symlink(d.join("sub"), d.join("dirlink")).unwrap();
    // A loop: sub/deeper/up -> sub.
    std::os::unix::fs::symlink(d.join("sub"), d.join("sub/deeper/up")).unwrap();
    let fifo = d.join("sub/pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let json_paths = |out: &std::process::Output| -> Vec<String> {
        let t = String::from_utf8_lossy(&out.stdout);
        assert!(!t.contains(&GH[4..]), "raw token printed");
        t.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["path"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };

    // A symlink to a file, named.
    let out = bin()
        .args(["scan", "--format", "json"])
        .arg(d.join("link.env"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        json_paths(&out),
        vec![d.join("link.env").display().to_string()]
    );

    // A directory: links followed (to the file and into the linked directory), the loop
    // and the FIFO inside skipped with their reasons, which do not make it an error.
    let out = bin()
        .args(["scan", "--format", "json"])
        .arg(&d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    let mut paths = json_paths(&out);
    paths.sort();
    let mut want: Vec<String> = ["dirlink/deeper/tok.env", "link.env", "sub/deeper/tok.env"]
        .iter()
        .map(|p| d.join(p).display().to_string())
        .collect();
    want.sort();
    assert_eq!(paths, want, "{err}");
    assert!(
        err.contains("symbolic link loop") && err.contains("up"),
        "{err}"
    );
    assert!(err.contains("sub/pipe: a FIFO inside a directory"), "{err}");

    // A FIFO named on the command line is read.
    let writer = {
        let fifo = fifo.clone();
        let secret = secret.clone();
        std::thread::spawn(move || std::fs::write(fifo, secret).unwrap())
    };
    let out = bin()
        .args(["scan", "--format", "json"])
        .arg(&fifo)
        .output()
        .unwrap();
    writer.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_paths(&out), vec![fifo.display().to_string()]);

    // /dev/stdin, as a pipe and as a redirected file.
    let mut child = bin()
        .args(["scan", "--format", "json", "/dev/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(secret.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_paths(&out), vec!["/dev/stdin".to_string()]);
    let out = bin()
        .args(["scan", "--format", "json", "/dev/stdin"])
        .stdin(std::fs::File::open(d.join("sub/deeper/tok.env")).unwrap())
        .output()
        .unwrap();
    assert_eq!(json_paths(&out), vec!["/dev/stdin".to_string()]);

    // A process substitution (a /dev/fd/N pipe), through bash.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec {:?} scan --format json <(cat {:?})",
            env!("CARGO_BIN_EXE_sensor"),
            d.join("sub/deeper/tok.env")
        ))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(json_paths(&out)[0].starts_with("/dev/fd/"));

    // Named paths that cannot be scanned: exit 2, each named with its reason, even when
    // another named path had findings.
    std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling")).unwrap();
    let out = bin()
        .args(["scan", "--format", "json"])
        .arg(d.join("link.env"))
        .arg(d.join("dangling"))
        .arg(d.join("sub/deeper/up/deeper/up/missing"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("dangling: broken or looping symbolic link"),
        "{err}"
    );
    assert!(err.contains("missing"), "{err}");
    assert_eq!(json_paths(&out).len(), 1);
}

#[test]
fn table_escapes_control_characters_and_sarif_uris_are_percent_encoded() {
    let d = tmp("names");
    let evil = d.join("evil\u{1b}[31mred\u{7}bell name%.env");
    std::fs::write(&evil, format!("token {GH}\n")).unwrap();
    let out = bin()
        .args(["scan", "--format", "table"])
        .arg(&evil)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let t = String::from_utf8(out.stdout).unwrap();
    assert!(
        !t.contains('\u{1b}') && !t.contains('\u{7}'),
        "raw control bytes: {t:?}"
    );
    assert!(t.contains("evil\\u{1b}[31mred\\u{7}bell name%.env"), "{t}");

    let out = bin()
        .args(["scan", "--format", "sarif"])
        .arg(&evil)
        .output()
        .unwrap();
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let uri = sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
        ["artifactLocation"]["uri"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(uri.starts_with("file:///"), "{uri}");
    assert!(
        uri.ends_with("/evil%1B%5B31mred%07bell%20name%25.env"),
        "{uri}"
    );
    // Every character is a URI character, and decoding gives the path back.
    assert!(
        uri.bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b)),
        "{uri}"
    );
    let mut decoded = Vec::new();
    let raw = uri.strip_prefix("file://").unwrap().as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            decoded.push(
                u8::from_str_radix(std::str::from_utf8(&raw[i + 1..i + 3]).unwrap(), 16).unwrap(),
            );
            i += 3;
        } else {
            decoded.push(raw[i]);
            i += 1;
        }
    }
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        evil.display().to_string()
    );
}
