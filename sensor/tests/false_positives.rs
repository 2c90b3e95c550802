//! The false-positive corpus: the shipped rules report nothing on the system's C headers
//! and on real source code collected from the machine (the crates of the cargo registry,
//! Python's standard library), test code and fixtures left out (see
//! `xtask/src/fpcorpus.rs`; `cargo xtask bench-scan` runs the same on ≥ 500 MB with
//! PyPI and npm packages added). Through the real binary, as `sensor scan`.

#[path = "../../xtask/src/fpcorpus.rs"]
#[allow(dead_code)]
mod fpcorpus;

use std::path::PathBuf;

#[test]
fn shipped_rules_report_nothing_on_system_headers_and_real_source() {
    let dir = std::env::temp_dir().join(format!("sensor-fp-corpus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // All headers, and enough of the rest to be real without taking minutes in a debug
    // build: the cargo registry holds this project's ~350 dependencies.
    let roots: Vec<(PathBuf, usize)> = fpcorpus::system_roots()
        .into_iter()
        .map(|r| {
            let limit = if r.starts_with("/usr/include") {
                usize::MAX
            } else if r.ends_with("registry/src") {
                160 << 20
            } else {
                64 << 20
            };
            (r, limit)
        })
        .collect();
    let parts = fpcorpus::collect(&roots, &dir).unwrap();
    for p in &parts {
        eprintln!(
            "corpus: {:>5} MB in {:>6} files from {}",
            p.bytes >> 20,
            p.files,
            p.root.display()
        );
    }
    let bytes = |f: &dyn Fn(&PathBuf) -> bool| -> usize {
        parts.iter().filter(|p| f(&p.root)).map(|p| p.bytes).sum()
    };
    assert!(
        bytes(&|r| r.starts_with("/usr/include")) > 20 << 20,
        "system headers missing (libc6-dev, linux-libc-dev)"
    );
    assert!(
        bytes(&|r| r.ends_with("registry/src")) > 50 << 20,
        "the cargo registry holds too little source"
    );
    let total = bytes(&|_| true);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(["scan", "--format", "json"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Each finding by rule, place and the key before it — never the value.
    let mut report = Vec::new();
    for line in stdout.lines() {
        let f: serde_json::Value = serde_json::from_str(line).unwrap();
        let path = f["path"].as_str().unwrap();
        let at = f["offset"].as_u64().unwrap() as usize;
        let data = std::fs::read(path).unwrap();
        let before = String::from_utf8_lossy(&data[at.saturating_sub(60)..at]).into_owned();
        report.push(format!(
            "{} ({} bytes, {:?}) after {before:?}",
            f["detector"], f["length"], f["encoding"]
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        report.is_empty(),
        "{} findings in {} MB of token-free source:\n{}",
        report.len(),
        total >> 20,
        report.join("\n")
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("no findings in {} MB", total >> 20);
}
