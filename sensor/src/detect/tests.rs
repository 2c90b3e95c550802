//! Engine tests: every rule against its examples, encodings, split streams, learned
//! secrets, redaction, and property tests (no panics on arbitrary bytes).

use base64::Engine as _;
use proptest::prelude::*;
use zeroize::Zeroizing;

use super::*;
use crate::redact::Fingerprinter;

fn engine() -> &'static Engine {
    static E: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    E.get_or_init(|| {
        Engine::new(rules::builtin(), Fingerprinter::new(vec![7; 32]).unwrap()).unwrap()
    })
}

const GH: &str = "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";

#[test]
fn builtin_rules_pass_their_examples_and_counterexamples() {
    let rules = rules::builtin();
    assert!(rules.len() >= 60, "{} rules", rules.len());
    let problems = check::check_examples(&rules);
    assert!(problems.is_empty(), "{problems:#?}");
    let ids: std::collections::HashSet<_> = rules.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), rules.len(), "duplicate rule ids");
}

#[test]
fn checksum_failures_are_not_reported_as_the_type() {
    let e = engine();
    let bad = "ghp_M7H4jxUDDWHP4kZ6A4dxlQYsQIWJuq11T4V5";
    assert!(e.scan(bad.as_bytes(), 0, ScanOptions::default()).is_empty());
    let c = e.scan(
        bad.as_bytes(),
        0,
        ScanOptions {
            candidates: true,
            ..Default::default()
        },
    );
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].confidence, "low");
    let ok = e.scan(GH.as_bytes(), 0, ScanOptions::default());
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].confidence, "high");
    assert_eq!(ok[0].safe_prefix, "ghp_");
    assert_eq!(ok[0].length, 40);
}

#[test]
fn encoded_tokens_are_found() {
    let e = engine();
    let b64 = base64::engine::general_purpose::STANDARD;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    for prefix in ["", "x", "xy"] {
        let plain = format!("{prefix}token={GH}&more");
        let enc = b64.encode(&plain);
        let f = e.scan(
            format!("payload: {enc}\n").as_bytes(),
            0,
            ScanOptions::default(),
        );
        assert!(
            f.iter()
                .any(|f| f.detector == "github-personal-access-token"
                    && f.encoding == Encoding::Base64),
            "std b64 alignment {prefix:?}"
        );
        let enc = url.encode(&plain);
        let f = e.scan(enc.as_bytes(), 0, ScanOptions::default());
        assert!(
            f.iter().any(|f| f.encoding == Encoding::Base64),
            "url b64 alignment {prefix:?}"
        );
    }
    let basic = format!(
        "Authorization: Basic {}",
        b64.encode(format!("x-access-token:{GH}"))
    );
    assert!(e
        .scan(basic.as_bytes(), 0, ScanOptions::default())
        .iter()
        .any(|f| f.detector.starts_with("github")));
    let docker = format!(
        "{{\"auths\":{{\"ghcr.io\":{{\"auth\":\"{}\"}}}}}}",
        b64.encode(format!("me:{GH}"))
    );
    assert!(!e
        .scan(docker.as_bytes(), 0, ScanOptions::default())
        .is_empty());
    let hexed = hex::encode(GH);
    assert!(e
        .scan(hexed.as_bytes(), 0, ScanOptions::default())
        .iter()
        .any(|f| f.encoding == Encoding::Hex));
    let pct: String = GH.bytes().map(|c| format!("%{c:02X}")).collect();
    assert!(e
        .scan(format!("q={pct}").as_bytes(), 0, ScanOptions::default())
        .iter()
        .any(|f| f.encoding == Encoding::Percent));
    let json = format!("{{\"t\":\"{}\"}}", GH.replace('_', "\\u005f"));
    assert!(e
        .scan(json.as_bytes(), 0, ScanOptions::default())
        .iter()
        .any(|f| f.encoding == Encoding::JsonEscape));
}

#[test]
fn split_across_writes_is_found_once_with_its_offset() {
    let e = engine();
    let text = format!("POST /x HTTP/1.1\r\nAuthorization: token {GH}\r\n\r\n");
    let at = text.find("ghp_").unwrap() as u64;
    for cuts in [
        vec![at as usize + 5],
        vec![at as usize + 1, at as usize + 20, at as usize + 39],
        vec![3, 9, 40],
    ] {
        let mut s = StreamScanner::new();
        let mut found = Vec::new();
        let mut prev = 0;
        for &c in cuts.iter().chain(std::iter::once(&text.len())) {
            found.extend(s.feed(
                e,
                None,
                prev as u64,
                &text.as_bytes()[prev..c],
                ScanOptions::default(),
            ));
            prev = c;
        }
        let gh: Vec<_> = found
            .iter()
            .filter(|f| f.detector == "github-personal-access-token")
            .collect();
        assert_eq!(gh.len(), 1, "cuts {cuts:?}: {found:?}");
        assert_eq!(gh[0].offset, at);
    }
}

#[test]
fn appended_writes_scanned_as_one_batch_and_gaps_restart_the_stream() {
    // The sensor appends small writes unscanned and scans them in batches.
    let e = engine();
    let text = format!("POST /x HTTP/1.1\r\nAuthorization: token {GH}\r\n\r\n");
    let at = text.find("ghp_").unwrap();
    let mut s = StreamScanner::new();
    s.append(0, &text.as_bytes()[..at + 10]);
    assert!(s
        .scan(e, None, ScanOptions::default())
        .iter()
        .all(|f| f.detector != "github-personal-access-token"));
    s.append((at + 10) as u64, &text.as_bytes()[at + 10..at + 20]);
    s.append((at + 20) as u64, &text.as_bytes()[at + 20..]);
    assert_eq!(s.pending(), text.len() - at - 10);
    assert_eq!(s.position(), text.len() as u64);
    let found = s.scan(e, None, ScanOptions::default());
    assert_eq!(
        found
            .iter()
            .filter(|f| f.detector == "github-personal-access-token")
            .map(|f| f.offset)
            .collect::<Vec<_>>(),
        vec![at as u64]
    );
    assert_eq!(s.pending(), 0);
    assert!(
        s.scan(e, None, ScanOptions::default()).is_empty(),
        "nothing new to scan"
    );
    // A gap: the first half of a token from before it must not join the bytes after it.
    let mut s = StreamScanner::new();
    s.append(0, &text.as_bytes()[..at + 20]);
    let _ = s.scan(e, None, ScanOptions::default());
    s.append(10_000, &text.as_bytes()[at + 20..]);
    assert_eq!(s.position(), 10_000 + (text.len() - at - 20) as u64);
    assert!(s
        .scan(e, None, ScanOptions::default())
        .iter()
        .all(|f| f.detector != "github-personal-access-token"));
}

#[test]
fn learned_uuid_agent_token_is_found_raw_and_encoded() {
    let e = engine();
    let mut l = LearnedSecrets::new(e.fingerprinter().clone());
    let token = "5f0c8c1e-4c2b-4f7e-9d3a-2b1c0d9e8f7a";
    for (v, m) in harvest::from_env(&[("CODER_AGENT_TOKEN".into(), token.into())]) {
        assert!(l.learn(&v, m));
    }
    assert_eq!(l.len(), 1);
    let raw = format!("GET / HTTP/1.1\r\nCoder-Session-Token: {token}\r\n");
    let f = e.scan_with_learned(raw.as_bytes(), 100, Some(&l), ScanOptions::default());
    let learned: Vec<_> = f
        .iter()
        .filter(|f| f.validation == validators::Validation::Learned)
        .collect();
    assert_eq!(learned.len(), 1, "{f:?}");
    assert_eq!(learned[0].offset, 100 + raw.find(token).unwrap() as u64);
    assert_eq!(learned[0].length, token.len());
    for prefix in ["", "a", "ab"] {
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{prefix}{token}"));
        let f = e.scan_with_learned(enc.as_bytes(), 0, Some(&l), ScanOptions::default());
        assert!(
            f.iter()
                .any(|f| f.validation == validators::Validation::Learned
                    && f.encoding == Encoding::Base64),
            "alignment {prefix:?}"
        );
    }
    let f = e.scan_with_learned(
        hex::encode(token).as_bytes(),
        0,
        Some(&l),
        ScanOptions::default(),
    );
    assert!(f.iter().any(|f| f.encoding == Encoding::Hex));
    // Not found when absent, or when one character differs.
    let other = token.replace('5', "6");
    assert!(e
        .scan_with_learned(other.as_bytes(), 0, Some(&l), ScanOptions::default())
        .iter()
        .all(|f| f.validation != validators::Validation::Learned));
    // Learning the same value twice is a no-op; short values are ignored.
    let (v, m) = harvest::from_env(&[("GITHUB_TOKEN".into(), token.into())])
        .pop()
        .unwrap();
    assert!(!l.learn(&v, m.clone()));
    assert!(!l.learn(&Zeroizing::new(b"short".to_vec()), m));
}

#[test]
fn findings_never_serialize_the_value() {
    let e = engine();
    let mut l = LearnedSecrets::new(e.fingerprinter().clone());
    let learned = "learned-secret-value-9f8e7d";
    l.learn(
        &Zeroizing::new(learned.as_bytes().to_vec()),
        SecretMeta {
            source: "env:X_TOKEN".into(),
            provider: "w".into(),
            kind: "k".into(),
            issuers: vec![],
            revoke: "webhook".into(),
        },
    );
    let mut corpus = String::new();
    for r in rules::builtin() {
        for ex in &r.examples {
            corpus.push_str(ex);
            corpus.push('\n');
        }
    }
    corpus.push_str(learned);
    let f = e.scan_with_learned(corpus.as_bytes(), 0, Some(&l), ScanOptions::default());
    let json = serde_json::to_string(&f).unwrap();
    assert!(f.len() >= 60);
    for r in rules::builtin() {
        // Bytes semantics, as the engine's: ASCII-only classes (`(?-u:[^…])`) are allowed.
        let re = regex::bytes::Regex::new(&r.pattern).unwrap();
        for ex in &r.examples {
            // No 12-character piece from the middle of any secret may appear.
            let caps = re.captures(ex.as_bytes()).unwrap();
            let secret =
                std::str::from_utf8(caps.get(r.secret_group.unwrap_or(0)).unwrap().as_bytes())
                    .unwrap();
            let mid = secret.len() / 2;
            let piece = &secret[mid.saturating_sub(6)..(mid + 6).min(secret.len())];
            assert!(!json.contains(piece), "{} leaked", r.id);
        }
    }
    assert!(!json.contains(learned));
}

#[test]
fn gitleaks_config_loads_as_detectors() {
    let toml = r#"
title = "team rules"
[[rules]]
id = "acme-api-key"
description = "ACME API key"
regex = '''acme_(?P<key>[a-z0-9]{32})'''
secretGroup = 1
keywords = ["acme_"]
entropy = 3.0
tags = ["acme"]
[rules.allowlist]
regexes = ['''^0{32}$''']
"#;
    let rules = rules::parse_gitleaks(toml, "team.toml").unwrap();
    assert_eq!(rules.len(), 1);
    let e = Engine::new(rules, Fingerprinter::random()).unwrap();
    let hit = "key: acme_q8w7e6r5t4y3u2i1o0p9a8s7d6f5g4h3";
    let f = e.scan(hit.as_bytes(), 0, ScanOptions::default());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].detector, "gitleaks-acme-api-key");
    assert_eq!(f[0].length, 32);
    assert!(
        e.scan(
            b"acme_00000000000000000000000000000000",
            0,
            ScanOptions::default()
        )
        .is_empty(),
        "allowlisted"
    );
    let bad = "[[rules]]\nid = \"x\"\nregex = \"(\"\nkeywords = [\"xx\"]\n";
    let err = rules::parse_gitleaks(bad, "bad.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.toml") && err.contains("`gitleaks-x`") && err.contains("pattern"),
        "{err}"
    );
    let nokw = "[[rules]]\nid = \"y\"\nregex = \"abc\"\n";
    assert!(rules::parse_gitleaks(nokw, "k.toml")
        .unwrap_err()
        .to_string()
        .contains("keywords"));
}

#[test]
fn bad_rule_files_name_file_rule_and_field() {
    let e = rules::parse_yaml("version: 1\nrules:\n  - id: x\n", "r.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("r.yaml"), "{e}");
    let y = "version: 1\nrules:\n  - {id: my-rule, name: n, provider: p, kind: k, keywords: [ab], pattern: '(', severity: high}\n";
    let e = rules::parse_yaml(y, "r.yaml").unwrap_err().to_string();
    assert!(e.contains("my-rule") && e.contains("pattern"), "{e}");
    let y = "version: 2\nrules: []\n";
    assert!(rules::parse_yaml(y, "r.yaml")
        .unwrap_err()
        .to_string()
        .contains("version"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn scanner_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let e = engine();
        let _ = e.scan(&data, 0, ScanOptions { decode: true, candidates: true });
    }

    #[test]
    fn scanner_never_panics_on_token_like_text(s in "[A-Za-z0-9_%\\-+/=.:\\\\\" ]{0,600}") {
        let e = engine();
        let mut l = LearnedSecrets::new(e.fingerprinter().clone());
        l.learn(&Zeroizing::new(b"abcdefgh12345".to_vec()), SecretMeta { source: "t".into(), provider: "p".into(), kind: "k".into(), issuers: vec![], revoke: "w".into() });
        let _ = e.scan_with_learned(s.as_bytes(), 0, Some(&l), ScanOptions { decode: true, candidates: true });
        let mut st = StreamScanner::new();
        let mid = s.len() / 2;
        let _ = st.feed(e, Some(&l), 0, &s.as_bytes()[..mid], ScanOptions::default());
        let _ = st.feed(e, Some(&l), mid as u64, &s.as_bytes()[mid..], ScanOptions::default());
    }

    #[test]
    fn rule_loader_never_panics(text in "\\PC{0,400}") {
        let _ = rules::parse_yaml(&text, "fuzz.yaml");
        let _ = rules::parse_gitleaks(&text, "fuzz.toml");
    }

    #[test]
    fn rule_loader_never_panics_on_structured_yaml(id in "[a-z-]{0,12}", pat in "\\PC{0,40}", kw in "\\PC{0,6}") {
        let y = format!("version: 1\nrules:\n  - id: {id:?}\n    name: n\n    provider: p\n    kind: k\n    keywords: [{kw:?}]\n    pattern: {pat:?}\n    severity: high\n");
        if let Ok(rules) = rules::parse_yaml(&y, "fuzz.yaml") {
            let _ = Engine::new(rules, Fingerprinter::random());
        }
    }
}

#[test]
fn checksum_failures_assigned_to_secret_names_stay_silent() {
    // A look-alike that fails its format's checksum is not reported under any other rule
    // either (not as a generic secret, not as a provider named by the key).
    let e = engine();
    let bad = "ghp_M7H4jxUDDWHP4kZ6A4dxlQYsQIWJuq11T4V5";
    for text in [
        format!("GITHUB_TOKEN={bad}"),
        format!("{{\"token\": \"{bad}\"}}"),
        format!("github_codespace_token: {bad}"),
        format!("export DEPLOY_SECRET='{bad}'"),
    ] {
        let f = e.scan(text.as_bytes(), 0, ScanOptions::default());
        assert!(f.is_empty(), "{text}: {f:?}");
        let c = e.scan(
            text.as_bytes(),
            0,
            ScanOptions {
                candidates: true,
                ..Default::default()
            },
        );
        assert_eq!(c.len(), 1, "{text}: {c:?}");
        assert_eq!(c[0].confidence, "low");
    }
}

#[test]
fn context_keyed_secrets_by_key_name_in_each_syntax() {
    let e = engine();
    let secret = "hpju+rwL6xdTfLmoiv6s9AWdRYAXwUr5c0QeW2vt";
    for text in [
        format!("AWS_SECRET_ACCESS_KEY={secret}"),
        format!("aws_secret_access_key = {secret}"),
        format!("{{\"awsSecretKey\": \"{secret}\"}}"),
        format!("  SecretAccessKey: \"{secret}\""),
        format!(
            "aws configure set aws_secret_access_key --value x; export AWS_SECRET_KEY=\"{secret}\""
        ),
    ] {
        let f = e.scan(text.as_bytes(), 0, ScanOptions::default());
        let hit: Vec<_> = f
            .iter()
            .filter(|f| f.detector == "aws-secret-access-key-assigned")
            .collect();
        assert_eq!(hit.len(), 1, "{text}: {f:?}");
        assert_eq!(hit[0].length, secret.len());
        assert_eq!(hit[0].offset as usize, text.find(secret).unwrap());
        assert_eq!(hit[0].safe_prefix, "", "no part of a bare secret is shown");
    }
    // The provider named first in the key wins over AWS's phrase inside it.
    let f = e.scan(
        format!("WASABI_SECRET_ACCESS_KEY={secret}").as_bytes(),
        0,
        ScanOptions::default(),
    );
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].detector, "wasabi-secret-key");
    // Keys that name something else than the secret, values that are not random, and a
    // value with no key at all: silent.
    for text in [
        format!("AWS_SECRET_ACCESS_KEY_FILE={secret}"),
        format!("NEXT_PAGE_TOKEN={secret}"),
        format!("aws_secret_access_key = {}", "x".repeat(40)),
        "aws_secret_access_key = AbstractSecretAccessKeyProviderFactory1".to_string(),
        format!("checksum {secret}"),
    ] {
        let f = e.scan(text.as_bytes(), 0, ScanOptions::default());
        assert!(f.is_empty(), "{text}: {f:?}");
    }
    // Generic: any secret-named key with a random value, yielding to providers.
    let f = e.scan(
        b"SIGNING_SECRET=q7Rt2Lp9Xw4Km6Bn3Vc8Hd5Jf0Gs",
        0,
        ScanOptions::default(),
    );
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].detector, "generic-secret-assignment");
    // Inside a base64-encoded .env file, and split across writes of a stream.
    let env = format!("X=1\nAWS_SECRET_ACCESS_KEY={secret}\n");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&env);
    let f = e.scan(b64.as_bytes(), 0, ScanOptions::default());
    assert!(
        f.iter()
            .any(|f| f.detector == "aws-secret-access-key-assigned"
                && f.encoding == Encoding::Base64),
        "{f:?}"
    );
    let mut s = StreamScanner::new();
    let at = env.find(secret).unwrap();
    let mut found = s.feed(
        e,
        None,
        0,
        &env.as_bytes()[..at + 7],
        ScanOptions::default(),
    );
    found.extend(s.feed(
        e,
        None,
        (at + 7) as u64,
        &env.as_bytes()[at + 7..],
        ScanOptions::default(),
    ));
    let hit: Vec<_> = found
        .iter()
        .filter(|f| f.detector == "aws-secret-access-key-assigned")
        .collect();
    assert_eq!(hit.len(), 1, "{found:?}");
    assert_eq!(hit[0].offset as usize, at);
}

#[test]
fn every_occurrence_of_a_learned_value_is_found_and_redacted() {
    let e = engine();
    let mut l = LearnedSecrets::new(e.fingerprinter().clone());
    let token = "Zq8Rt3Wm9Xv2Lp7Kd4Hn6Bf1Jc5Gs0Ye";
    for (v, m) in harvest::from_argv(&[format!("env API_TOKEN={token} prog")]) {
        assert!(l.learn(&v, m));
    }
    let text = format!("sh:env API_TOKEN={token} /bin/prog set:{token} and {token}");
    let f = e.scan_with_learned(text.as_bytes(), 0, Some(&l), ScanOptions::default());
    assert_eq!(f.len(), 3, "{f:?}");
    let red = e.redact(&text, Some(&l));
    assert!(!red.contains(token), "{red}");
    assert_eq!(red.matches("[REDACTED").count(), 3, "{red}");
    // A rule's finding of a learned value is upgraded, not doubled; a second copy of it
    // is a second finding.
    let mut l = LearnedSecrets::new(e.fingerprinter().clone());
    for (v, m) in harvest::from_env(&[("GITHUB_TOKEN".into(), GH.into())]) {
        l.learn(&v, m);
    }
    let text = format!("a {GH} b {GH}");
    let f = e.scan_with_learned(text.as_bytes(), 0, Some(&l), ScanOptions::default());
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(f
        .iter()
        .all(|f| f.validation == validators::Validation::Learned
            && f.detector == "github-personal-access-token"));
}

#[test]
fn command_line_assignments_and_options_name_secrets() {
    let argv: Vec<String> = [
        "docker",
        "run",
        "-e",
        "GITHUB_TOKEN=0123456789abcdefXYZ",
        "--api-key",
        "k3y-Value-9876543210",
        "--token=t0k3n-Value-abcdefgh",
        "sh -c 'NPM_TOKEN=npm-Value-11223344 npm publish'",
        "PATH=/usr/bin:/bin",
        "--verbose",
        "yes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut got: Vec<String> = harvest::from_argv(&argv)
        .into_iter()
        .map(|(v, _)| String::from_utf8(v.to_vec()).unwrap())
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "0123456789abcdefXYZ",
            "k3y-Value-9876543210",
            "npm-Value-11223344",
            "t0k3n-Value-abcdefgh"
        ]
    );
}

#[test]
fn findings_carry_the_decoded_value_for_revocation_but_never_print_it() {
    let e = engine();
    let b64 = base64::engine::general_purpose::STANDARD;
    let forms = [
        format!("token={GH}"),
        format!("payload: {}", b64.encode(format!("x-access-token:{GH}"))),
        format!("hex {}", hex::encode(GH)),
        format!(
            "q={}",
            GH.bytes().map(|c| format!("%{c:02X}")).collect::<String>()
        ),
        format!("{{\"t\":\"{}\"}}", GH.replace('_', "\\u005f")),
    ];
    for form in &forms {
        let found = e.scan(form.as_bytes(), 0, ScanOptions::default());
        let f = found
            .iter()
            .find(|f| f.detector == "github-personal-access-token")
            .unwrap_or_else(|| panic!("not found in {form}"));
        let v = f.secret.as_ref().expect("value carried");
        assert_eq!(v.expose(), GH.as_bytes(), "{form}");
        assert_eq!(e.fingerprinter().fingerprint(v.expose()), f.fingerprint);
        let shown = format!("{f:?} {}", serde_json::to_string(f).unwrap());
        assert!(!shown.contains(&GH[4..]), "value printed: {shown}");
    }
}

#[test]
fn builtin_rule_files_are_the_rules_directory_and_ids_are_unique_across_them() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| format!("rules/{}", e.file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = rules::BUILTIN_RULES
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    embedded.sort();
    assert_eq!(embedded, on_disk);
    let all = rules::builtin_checked().unwrap();
    let ids: std::collections::HashSet<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), all.len());
    // The same id in two files is refused, naming both.
    let rule = "version: 1\nrules:\n- {id: acme-key, name: n, provider: p, kind: k, severity: high, keywords: [acme_], pattern: 'acme_[a-z0-9]{20}'}\n";
    let err = rules::parse_files(&[("rules/a.yaml", rule), ("rules/b.yaml", rule)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rules/b.yaml") && err.contains("acme-key") && err.contains("rules/a.yaml"),
        "{err}"
    );
}

#[test]
fn run_anchored_rules_are_bounded_within_their_region() {
    // Which built-in rules are found through base64 runs, and which are not only because
    // their matches can outgrow the region after a keyword.
    let (mut anchored, mut unbounded) = (0, Vec::new());
    for r in rules::builtin() {
        if super::anchor::run_anchored(&r) {
            anchored += 1;
            let a = super::pattern::analyse(&r.pattern, &r.keywords, r.max_len).unwrap();
            let hir = super::pattern::parse(&r.pattern).unwrap();
            assert_eq!(hir.properties().maximum_len(), Some(a.span), "{}", r.id);
        } else {
            let mut b = r.clone();
            b.max_len = Some(1 << 20);
            if super::anchor::run_anchored(&b) {
                unbounded.push(r.id.clone());
            }
        }
    }
    eprintln!("{anchored} run-anchored; unbounded: {unbounded:?}");
    assert!(anchored > 100, "{anchored}");
    assert!(unbounded.is_empty(), "give these a max_len: {unbounded:?}");
}

/// `decode_b64_run` as it was before its quick rejection of binary offsets: decode each
/// offset whole, then count unprintable bytes.
fn decode_b64_reference(run: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut e = run.len();
    while e > 0 && run[e - 1] == b'=' {
        e -= 1;
    }
    let trimmed = &run[..e];
    let url = trimmed.iter().any(|c| *c == b'-' || *c == b'_');
    let engine = if url {
        &URL_SAFE_NO_PAD
    } else {
        &STANDARD_NO_PAD
    };
    for skip in 0..4.min(trimmed.len()) {
        let s = &trimmed[skip..];
        let usable = s.len() - s.len() % 4 + if s.len() % 4 >= 2 { s.len() % 4 } else { 0 };
        let s = &s[..usable.min(s.len())];
        let total = s.len() / 4 * 3 + (s.len() % 4).saturating_sub(1);
        if total < 8 {
            continue;
        }
        let Ok(out) = engine.decode(s) else { continue };
        let bad = out
            .iter()
            .filter(|c| !(c.is_ascii_graphic() || c.is_ascii_whitespace()))
            .count();
        if bad * 10 <= total {
            return Some(out);
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    /// The quick rejection changes no decision: same offset chosen, same bytes, on
    /// encoded text, random alphabet runs, mixed alphabets and stray `=`.
    #[test]
    fn decode_b64_run_matches_its_reference(
        text in proptest::collection::vec(
            prop_oneof![
                4 => 0x20u8..0x7f,
                1 => any::<u8>(),
            ],
            0..200,
        ),
        noise in proptest::collection::vec(
            proptest::sample::select(b"ABCxyz019+/-_=".to_vec()),
            0..12,
        ),
        cut in 0usize..4,
        url in any::<bool>(),
    ) {
        let mut run = if url {
            base64::engine::general_purpose::URL_SAFE.encode(&text)
        } else {
            base64::engine::general_purpose::STANDARD.encode(&text)
        }
        .into_bytes();
        run.drain(..cut.min(run.len()));
        let at = if run.is_empty() { 0 } else { text.len() % run.len() };
        for (i, c) in noise.iter().enumerate() {
            run.insert((at + 7 * i).min(run.len()), *c);
        }
        let mut out = Vec::new();
        let got = super::engine::decode_b64_run(&run, &mut out).then_some(out);
        prop_assert_eq!(got, decode_b64_reference(&run));
    }
}
