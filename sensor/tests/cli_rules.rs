//! Rule files through the real binary: every check `sensor rules check` makes is an error
//! naming the file and the rule, both there and when `scan` loads the file; gitleaks
//! allowlists and `[extend]` change what is found; oversized and deeply nested files are
//! refused fast.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

const GH: &str = "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";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sensor"))
}

fn dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sensor-rules-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A YAML rule (fields after `id` as given).
fn yaml_rule(id: &str, extra: &str) -> String {
    format!("  - {{id: {id}, name: n, provider: p, kind: k, severity: high, {extra}}}\n")
}

/// `rules check FILE` fails naming the file, the rule and `what`; `scan --rules FILE`
/// refuses it the same way (exit 2).
fn rejected(file: &std::path::Path, content: &str, rule: &str, what: &str) {
    std::fs::write(file, content).unwrap();
    let o = bin().args(["rules", "check"]).arg(file).output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        t.contains(name) && t.contains(&format!("`{rule}`")) && t.contains(what),
        "rules check of {name} should name `{rule}` and {what:?}:\n{t}"
    );
    let o = bin()
        .args(["scan", "--rules"])
        .arg(file)
        .arg("/dev/null")
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains(&format!("`{rule}`")) && t.contains(what), "{t}");
}

#[test]
fn every_rule_check_names_the_rule() {
    let d = dir("checks");
    let y = |body: String| format!("version: 1\nrules:\n{body}");
    let ok = "keywords: [acme_], pattern: 'acme_[a-z0-9]{20}'";
    rejected(
        &d.join("dup.yaml"),
        &y(yaml_rule("acme-key", ok) + &yaml_rule("acme-key", ok)),
        "acme-key",
        "duplicate rule id",
    );
    rejected(
        &d.join("builtin-dup.yaml"),
        &y(yaml_rule("github-personal-access-token", ok)),
        "github-personal-access-token",
        "already defined in the built-in rules",
    );
    // The built-in rule files themselves (as `cargo xtask install` copies them), as a
    // directory, repeat every built-in rule unchanged: accepted. One of them changed is a
    // conflict.
    let installed = d.join("installed");
    std::fs::create_dir_all(&installed).unwrap();
    let rules_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");
    for e in std::fs::read_dir(rules_dir).unwrap().flatten() {
        std::fs::copy(e.path(), installed.join(e.file_name())).unwrap();
    }
    let o = bin()
        .args(["rules", "check"])
        .arg(&installed)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let github = std::fs::read_to_string(installed.join("github.yaml")).unwrap();
    rejected(
        &d.join("changed.yaml"),
        &github.replacen("severity: critical", "severity: low", 1),
        "github-personal-access-token",
        "already defined in the built-in rules",
    );
    rejected(
        &d.join("empty.yaml"),
        &y(yaml_rule("empty-pattern", "keywords: [acme_], pattern: ''")),
        "empty-pattern",
        "empty string",
    );
    rejected(
        &d.join("zero.yaml"),
        &y(yaml_rule(
            "zero-length",
            "keywords: [acme_], pattern: '(?:acme_)*'",
        )),
        "zero-length",
        "empty string",
    );
    rejected(
        &d.join("prefix.yaml"),
        &y(yaml_rule(
            "long-prefix",
            "keywords: [acme_], pattern: 'acme_[a-z0-9]{20}', safe_prefix: 25",
        )),
        "long-prefix",
        "safe_prefix",
    );
    let g = |body: &str| {
        format!("[[rules]]\nid = \"acme\"\nregex = '''acme_[a-z0-9]{{20}}'''\nkeywords = [\"acme_\"]\n{body}")
    };
    rejected(
        &d.join("gl-dup.toml"),
        &(g("") + "\n[[rules]]\nid = \"acme\"\nregex = 'x[0-9]{9}'\nkeywords = [\"x1\"]\n"),
        "gitleaks-acme",
        "duplicate rule id",
    );
    rejected(
        &d.join("gl-key.toml"),
        &g("severity = \"high\"\n"),
        "gitleaks-acme",
        "`severity`",
    );
    rejected(
        &d.join("gl-path.toml"),
        &g("path = '''\\.env$'''\n"),
        "gitleaks-acme",
        "path",
    );
    rejected(
        &d.join("gl-allow.toml"),
        &g("[[rules.allowlists]]\npaths = ['''x''']\n"),
        "gitleaks-acme",
        "paths",
    );
    rejected(
        &d.join("gl-target.toml"),
        &g("[[rules.allowlists]]\nregexTarget = \"line\"\nregexes = ['''x''']\n"),
        "gitleaks-acme",
        "regexTarget",
    );
    rejected(
        &d.join("gl-extend.toml"),
        &("[extend]\nuseDefault = true\ndisabledRules = [\"generic-api-key\"]\n".to_string()
            + &g("")),
        "generic-api-key",
        "disabledRules",
    );
    // Many problems in one check: all reported, the count at the end.
    std::fs::write(
        d.join("a.yaml"),
        y(yaml_rule("one", "keywords: [aa], pattern: ''")),
    )
    .unwrap();
    std::fs::write(
        d.join("b.yaml"),
        y(yaml_rule("two", "keywords: [bb], pattern: 'b*'")),
    )
    .unwrap();
    let o = bin()
        .args(["rules", "check"])
        .arg(d.join("a.yaml"))
        .arg(d.join("b.yaml"))
        .output()
        .unwrap();
    let t = text(&o);
    assert!(
        t.contains("`one`") && t.contains("`two`") && t.contains("2 problems"),
        "{t}"
    );
}

#[test]
fn gitleaks_allowlists_and_extend_change_what_is_found() {
    let d = dir("gitleaks");
    let secret = "acme_q8w7e6r5t4y3u2i1o0p9";
    let allowed = "acme_examplexxxxxxxxxxxxx";
    std::fs::write(
        d.join("input.txt"),
        format!("a {secret} b {allowed} c {GH} d\n"),
    )
    .unwrap();
    let scan = |rules: &str| -> Vec<String> {
        let f = d.join("team.toml");
        std::fs::write(&f, rules).unwrap();
        let o = bin()
            .args(["scan", "--format", "json", "--rules"])
            .arg(&f)
            .arg(d.join("input.txt"))
            .output()
            .unwrap();
        assert!(o.status.code().is_some_and(|c| c < 2), "{}", text(&o));
        let out = String::from_utf8(o.stdout).unwrap();
        assert!(
            !out.contains(&secret[5..]) && !out.contains(&GH[4..]),
            "raw value printed"
        );
        out.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| format!("{}@{}", v["detector"].as_str().unwrap(), v["offset"]))
            .collect()
    };
    let rule =
        "[[rules]]\nid = \"acme\"\nregex = '''acme_[a-z0-9]{20}'''\nkeywords = [\"ACME_\"]\n";
    let at = |s: &str| format!("gitleaks-acme@{}", if s == secret { 2 } else { 30 });
    let gh = "github-personal-access-token@58".to_string();
    // No allowlist: both acme values and the built-in GitHub rule.
    assert_eq!(scan(rule), vec![at(secret), at(allowed), gh.clone()]);
    // Per-rule allowlist (stopword, any case) and the global one (regex) each drop one.
    let r = format!("{rule}[[rules.allowlists]]\nstopwords = [\"EXAMPLE\"]\n");
    assert_eq!(scan(&r), vec![at(secret), gh.clone()]);
    let r = format!("[allowlist]\nregexes = ['''^acme_q8''']\n{rule}");
    assert_eq!(scan(&r), vec![at(allowed), gh.clone()]);
    // targetRules: a global allowlist for another rule leaves this one alone.
    let r = format!("{rule}[[rules]]\nid = \"other\"\nregex = '''zz[0-9]{{8}}'''\nkeywords = [\"zz\"]\n[[allowlists]]\ntargetRules = [\"other\"]\nregexes = ['''.''']\n");
    assert_eq!(scan(&r), vec![at(secret), at(allowed), gh.clone()]);
    // [extend] useDefault maps to the built-in rules: disabledRules drops one of them,
    // and a global allowlist applies to them.
    let r = format!(
        "[extend]\nuseDefault = true\ndisabledRules = [\"github-personal-access-token\"]\n{rule}"
    );
    assert_eq!(scan(&r), vec![at(secret), at(allowed)]);
    let r =
        format!("[extend]\nuseDefault = true\n[allowlist]\nregexes = ['''^ghp_M7H4''']\n{rule}");
    assert_eq!(scan(&r), vec![at(secret), at(allowed)]);
}

#[test]
fn oversized_and_deeply_nested_rule_files_are_refused_fast() {
    let d = dir("bounded");
    let deep = d.join("deep.toml");
    std::fs::write(&deep, format!("a = {}", "[".repeat(100_000))).unwrap();
    let deep_yaml = d.join("deep.yaml");
    std::fs::write(&deep_yaml, "{a: ".repeat(100_000)).unwrap();
    for (f, what) in [
        (std::path::PathBuf::from("/dev/zero"), "16 MiB"),
        (deep, "nest"),
        (deep_yaml, "nest"),
    ] {
        for args in [vec!["rules", "check"], vec!["scan", "/dev/null", "--rules"]] {
            let t = Instant::now();
            let o = bin().args(&args).arg(&f).output().unwrap();
            let out = text(&o);
            assert!(o.status.code().is_some_and(|c| c > 0), "{out}");
            assert!(
                out.contains(f.to_str().unwrap()) && out.contains(what),
                "{args:?} {}: {out}",
                f.display()
            );
            assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
        }
    }
}
