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
