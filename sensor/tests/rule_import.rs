//! Rule import through the real binary: a Kingfisher-style YAML file and a gitleaks TOML
//! file (written for this test, each carrying examples) are checked by `sensor rules
//! check` — every example found by its own rule, every counterexample silent — and load
//! with `--rules` (file or directory) into `sensor scan`, which finds their tokens without
//! printing them. Rules that cannot be honoured are rejected naming file, rule and reason.

use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/import");

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sensor"));
    c.env("NO_COLOR", "1").env("SENSOR_LOG", "warn");
    c
}

fn run(c: &mut Command) -> (Option<i32>, String, String) {
    let o = c.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn tmp(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sensor-import-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The examples of a rule file (Kingfisher YAML or gitleaks TOML), read independently of
/// the sensor's loaders.
fn examples(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{file}")).unwrap();
    if file.ends_with(".toml") {
        let v: toml::Value = toml::from_str(&text).unwrap();
        v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["examples"].as_array().unwrap().clone())
            .map(|e| e.as_str().unwrap().to_string())
            .collect()
    } else {
        let v: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
        v["rules"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter(|r| r["visible"].as_bool() != Some(false))
            .flat_map(|r| r["examples"].as_sequence().unwrap().clone())
            .map(|e| e.as_str().unwrap().to_string())
            .collect()
    }
}

#[test]
fn kingfisher_and_gitleaks_files_pass_rules_check_with_their_examples() {
    for file in ["kingfisher-team.yml", "gitleaks-team.toml"] {
        let (code, out, err) = run(bin()
            .args(["rules", "check"])
            .arg(format!("{FIXTURES}/{file}")));
        assert_eq!(code, Some(0), "{file}: {out}{err}");
        assert!(out.contains("rules ok"), "{out}");
    }
    // Both at once, and as a directory of files.
    let d = tmp("dir");
    for f in ["kingfisher-team.yml", "gitleaks-team.toml"] {
        std::fs::copy(format!("{FIXTURES}/{f}"), d.join(f)).unwrap();
    }
    let (code, out, err) = run(bin().args(["rules", "check"]).arg(&d));
    assert_eq!(code, Some(0), "{out}{err}");
    let base: usize = run(bin().args(["rules", "check"]))
        .1
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let with: usize = out.split_whitespace().next().unwrap().parse().unwrap();
    // Two Kingfisher rules (the third is a `visible: false` helper) and one gitleaks rule.
    assert_eq!(with, base + 3, "{out}");
}

#[test]
fn a_broken_example_fails_the_check_naming_the_rule() {
    let d = tmp("broken");
    let text = std::fs::read_to_string(format!("{FIXTURES}/gitleaks-team.toml")).unwrap();
    // The token's body one character short no longer matches its rule.
    let ex = &examples("gitleaks-team.toml")[0];
    let short = &ex[..ex.len() - 1];
    std::fs::write(d.join("t.toml"), text.replace(ex.as_str(), short)).unwrap();
    let (code, _, err) = run(bin().args(["rules", "check"]).arg(d.join("t.toml")));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("gitleaks-initech-deploy-token") && err.contains("example #0 is not found"),
        "{err}"
    );
    assert!(!err.contains(short), "the check printed a token");
}

#[test]
fn imported_rules_find_their_tokens_in_scan_without_printing_them() {
    let d = tmp("scan");
    let mut text = String::from("# release notes\n");
    let mut tokens = Vec::new();
    for f in ["kingfisher-team.yml", "gitleaks-team.toml"] {
        for e in examples(f) {
            text.push_str(&format!("config: {e}\n"));
            tokens.push(e);
        }
    }
    std::fs::write(d.join("notes.txt"), &text).unwrap();
    for rules in [
        FIXTURES.to_string() + "/kingfisher-team.yml",
        FIXTURES.to_string(),
    ] {
        let (code, out, err) = run(bin()
            .args(["scan", "--format", "json", "--rules", &rules, "--rules"])
            .arg(format!("{FIXTURES}/gitleaks-team.toml"))
            .arg(d.join("notes.txt")));
        assert_eq!(code, Some(1), "{err}");
        let detectors: Vec<String> = out
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["detector"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        for want in [
            "kingfisher-acme-1",
            "kingfisher-acme-2",
            "gitleaks-initech-deploy-token",
        ] {
            assert!(
                detectors.iter().any(|d| d == want),
                "{want} in {detectors:?}"
            );
        }
        // The helper rule (a region name) is not a secret and reports nothing.
        assert!(
            !detectors.iter().any(|d| d == "kingfisher-acme-3"),
            "{detectors:?}"
        );
        for t in &tokens {
            // The secret part: the longest word of the example.
            let secret = t
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .max_by_key(|w| w.len())
                .unwrap();
            assert!(
                !out.contains(secret) && !err.contains(secret),
                "printed {secret}"
            );
        }
        if rules == FIXTURES {
            // The directory includes rules that cannot be honoured: warned, skipped.
            assert!(
                err.contains("kingfisher-checked-1") && err.contains("checksum"),
                "{err}"
            );
        }
    }
}

#[test]
fn unhonoured_kingfisher_rules_are_rejected_with_the_reason() {
    let (code, out, err) = run(bin()
        .args(["rules", "check"])
        .arg(format!("{FIXTURES}/bad/kingfisher-unhonoured.yml")));
    assert_eq!(code, Some(1), "{out}{err}");
    for (rule, reason) in [
        (
            "kingfisher-checked-1",
            "`checksum` (a Liquid template) cannot be honoured",
        ),
        ("kingfisher-bare-1", "cannot be prefiltered"),
        ("kingfisher-typo-1", "unknown Kingfisher key `min_entropie`"),
    ] {
        assert!(
            err.lines().any(|l| l.contains("kingfisher-unhonoured.yml")
                && l.contains(rule)
                && l.contains(reason)),
            "{rule}: {err}"
        );
    }
    // The honourable rule in the same file still loads and proves its example.
    assert!(!err.contains("kingfisher-fine-1"), "{err}");
    assert!(err.contains("3 problems"), "{err}");
}

#[test]
fn imported_ids_go_through_the_duplicate_checks() {
    // A second copy of an imported file defines its ids again: a conflict naming both
    // files, in `rules check` and when `scan` loads them. The same file named twice
    // (itself and through its directory) is loaded once.
    let d = tmp("dup");
    for f in ["kingfisher-team.yml", "gitleaks-team.toml"] {
        let copy = d.join(format!("copy-{f}"));
        std::fs::copy(format!("{FIXTURES}/{f}"), &copy).unwrap();
        let (code, out, err) = run(bin()
            .args(["rules", "check"])
            .arg(format!("{FIXTURES}/{f}"))
            .arg(&copy));
        assert_eq!(code, Some(1), "{out}{err}");
        assert!(
            err.contains(&format!("copy-{f}"))
                && err.contains("duplicate rule id: already defined in")
                && err.contains(&format!("{FIXTURES}/{f}")),
            "{err}"
        );
        let (code, _, err) = run(bin()
            .args(["scan", "--rules"])
            .arg(format!("{FIXTURES}/{f}"))
            .arg("--rules")
            .arg(&copy)
            .arg("/dev/null"));
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("duplicate rule id"), "{err}");
        let (code, out, err) = run(bin()
            .args(["rules", "check"])
            .arg(format!("{FIXTURES}/{f}"))
            .arg(format!("{FIXTURES}/../import/{f}")));
        assert_eq!(code, Some(0), "{out}{err}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
