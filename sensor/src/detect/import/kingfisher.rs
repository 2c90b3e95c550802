//! Kingfisher-style YAML rules (`rules:` entries with `name`, `id`, `pattern`,
//! `min_entropy`, `confidence`, `examples`, `pattern_requirements`, …), loaded as
//! detectors so a team's existing rule files work unchanged.
//!
//! Mapping: `pattern` as is (Rust `regex` syntax, which Kingfisher also uses; `(?x)` and
//! POSIX classes included); the secret is the capture named `TOKEN` or `secret`, else the
//! first capture, else the whole match; `min_entropy` → the entropy floor; `confidence`
//! (low/medium/high) → the severity; `examples` → examples that `sensor rules check`
//! proves; `pattern_requirements` → allowlist patterns (a secret with fewer digits,
//! uppercase, lowercase or special characters than required, or containing an ignored
//! word, is dropped). Keywords, which Kingfisher does not have, are derived from the
//! pattern: its literal prefixes, or a literal (or case-insensitive word) every match
//! contains — a case-insensitive word is prefiltered in its lower, UPPER and Capitalized
//! forms, and the rule says so in its name.
//!
//! Not honoured, and therefore rejected with the reason: checksum requirements (Liquid
//! templates), patterns with no literal of at least three bytes in every match (they
//! could not be prefiltered), unknown keys. Skipped without complaint: `visible: false`
//! helper rules (they capture hosts and ids, not secrets). Ignored: `validation`,
//! `revocation`, `depends_on_rule`, `references`, `categories` (the sensor never sends a
//! secret anywhere to check it).

use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Class, Hir, HirKind};
use serde::Deserialize;

use crate::detect::rules::{check_rule, Rule, RuleError, Severity};

#[derive(Deserialize)]
struct File {
    rules: Vec<yaml_serde::Value>,
}

/// Keys a Kingfisher rule may carry.
const KNOWN: &[&str] = &[
    "name",
    "id",
    "pattern",
    "min_entropy",
    "confidence",
    "examples",
    "negative_examples",
    "references",
    "visible",
    "depends_on_rule",
    "pattern_requirements",
    "validation",
    "revocation",
    "categories",
    "description",
    "tags",
];

#[derive(Deserialize)]
struct KfRule {
    name: String,
    id: String,
    pattern: String,
    #[serde(default)]
    min_entropy: Option<f64>,
    #[serde(default)]
    confidence: Option<String>,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    negative_examples: Vec<String>,
    #[serde(default = "yes")]
    visible: bool,
    #[serde(default)]
    pattern_requirements: Option<Requirements>,
    #[serde(default)]
    tags: Vec<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Requirements {
    #[serde(default)]
    min_digits: Option<usize>,
    #[serde(default)]
    min_uppercase: Option<usize>,
    #[serde(default)]
    min_lowercase: Option<usize>,
    #[serde(default)]
    min_special_chars: Option<usize>,
    #[serde(default)]
    special_chars: Option<String>,
    #[serde(default)]
    ignore_if_contains: Vec<String>,
    #[serde(default)]
    checksum: Option<yaml_serde::Value>,
}

/// Kingfisher's default special characters for `min_special_chars`.
const SPECIAL: &str = "!@#$%^&*()_+-=[]{}|;:'\",.<>/?`~\\";

/// True when `text` looks like a Kingfisher rule file (a `rules` list, no `version`).
pub fn looks_like(doc: &yaml_serde::Value) -> bool {
    doc.get("version").is_none()
        && doc
            .get("rules")
            .and_then(|r| r.as_sequence())
            .is_some_and(|rs| rs.iter().all(|r| r.get("pattern").is_some()))
}

/// Parses a Kingfisher rule file: the detectors it yields, and the rules it could not
/// honour (each a [`RuleError`] naming the file, rule and reason).
pub fn parse(text: &str, origin: &str) -> Result<(Vec<Rule>, Vec<RuleError>), RuleError> {
    let f: File = yaml_serde::from_str(text).map_err(|e| RuleError::Parse {
        origin: origin.into(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    let mut rejected = Vec::new();
    for (i, v) in f.rules.into_iter().enumerate() {
        let id_hint = v
            .get("id")
            .and_then(|x| x.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| format!("rules[{i}]"));
        match convert(v, origin, &id_hint) {
            Ok(Some(r)) => out.push(r),
            Ok(None) => {}
            Err(e) => rejected.push(e),
        }
    }
    Ok((out, rejected))
}

fn invalid(origin: &str, id: &str, field: &'static str, problem: impl Into<String>) -> RuleError {
    RuleError::Invalid {
        origin: origin.into(),
        id: id.into(),
        field,
        problem: problem.into(),
    }
}

/// Our id for a Kingfisher id: kebab-case, under `kingfisher-`.
fn our_id(id: &str) -> String {
    let mut s: String = id
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-').to_string();
    if s.starts_with("kingfisher-") {
        s
    } else {
        format!("kingfisher-{s}")
    }
}

fn convert(v: yaml_serde::Value, origin: &str, id: &str) -> Result<Option<Rule>, RuleError> {
    let id = &our_id(id);
    if let Some(m) = v.as_mapping() {
        for k in m.keys() {
            let k = k.as_str().unwrap_or("");
            if !KNOWN.contains(&k) {
                return Err(invalid(
                    origin,
                    id,
                    "key",
                    format!("unknown Kingfisher key `{k}` (known: {})", KNOWN.join(", ")),
                ));
            }
        }
    }
    let k: KfRule =
        yaml_serde::from_value(v).map_err(|e| invalid(origin, id, "rule", e.to_string()))?;
    if !k.visible {
        return Ok(None); // a helper capturing a host or an id, not a secret
    }
    let rid = our_id(&k.id);
    let hir = parse_pattern(&k.pattern).map_err(|e| invalid(origin, &rid, "pattern", e))?;
    let secret_group = secret_group(&k.pattern);
    let (keywords, approximated) =
        keywords_of(&hir).map_err(|e| invalid(origin, &rid, "pattern", e))?;
    let mut allowlist = Vec::new();
    if let Some(req) = &k.pattern_requirements {
        if req.checksum.is_some() {
            return Err(invalid(
                origin,
                &rid,
                "pattern_requirements",
                "`checksum` (a Liquid template) cannot be honoured; write the rule natively with a validator",
            ));
        }
        allowlist = requirements(req);
    }
    let severity = match k.confidence.as_deref().unwrap_or("medium") {
        "low" => Severity::Low,
        "medium" => Severity::Medium,
        "high" => Severity::High,
        other => {
            return Err(invalid(
                origin,
                &rid,
                "confidence",
                format!("`{other}` is not low, medium or high"),
            ))
        }
    };
    let provider =
        k.id.split('.')
            .nth(1)
            .filter(|_| k.id.starts_with("kingfisher."))
            .unwrap_or("custom")
            .to_ascii_lowercase();
    let mut tags = vec!["attack.t1552.001".to_string(), "attack.t1567".to_string()];
    tags.push("kingfisher".into());
    tags.extend(k.tags);
    let name = match &approximated {
        Some(w) => format!("{} (prefiltered on {w})", k.name),
        None => k.name.clone(),
    };
    let rule = Rule {
        id: rid,
        name,
        provider,
        kind: k
            .name
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect(),
        keywords,
        pattern: k.pattern,
        secret_group,
        min_len: None,
        max_len: None,
        validator: None,
        entropy: k.min_entropy.filter(|&e| e > 0.0),
        severity,
        tags,
        issuers: Vec::new(),
        revoke: "webhook".into(),
        safe_prefix: Some(0),
        show_last4: false,
        examples: k.examples,
        counterexamples: k.negative_examples,
        allowlist,
        context: None,
    };
    check_rule(&rule, origin)?;
    Ok(Some(rule))
}

/// Parses as `regex::bytes` does, ASCII case folding first (so that `(?i)datadog` is a
/// word, not 128 Unicode variants), Unicode if the pattern needs it.
fn parse_pattern(p: &str) -> Result<Hir, String> {
    let build = |unicode: bool| {
        regex_syntax::ParserBuilder::new()
            .utf8(false)
            .unicode(unicode)
            .build()
            .parse(p)
            .map_err(|e| e.to_string())
    };
    // The Unicode parse is what the engine runs; it must succeed.
    let full = build(true)?;
    Ok(build(false).unwrap_or(full))
}

/// The capture holding the secret: named `TOKEN` or `secret`, else the first one.
fn secret_group(p: &str) -> Option<usize> {
    let re = regex::bytes::Regex::new(p).ok()?;
    let names: Vec<Option<&str>> = re.capture_names().collect();
    if names.len() < 2 {
        return None;
    }
    names
        .iter()
        .position(|n| matches!(n, Some("TOKEN") | Some("token") | Some("secret")))
        .or(Some(1))
}

/// `pattern_requirements` as allowlist patterns matching secrets that fall short.
fn requirements(r: &Requirements) -> Vec<String> {
    let mut out = Vec::new();
    let fewer =
        |class: &str, n: usize| format!("^(?:[^{class}]*[{class}]){{0,{}}}[^{class}]*$", n - 1);
    if let Some(n) = r.min_digits.filter(|&n| n > 0) {
        out.push(fewer("0-9", n));
    }
    if let Some(n) = r.min_uppercase.filter(|&n| n > 0) {
        out.push(fewer("A-Z", n));
    }
    if let Some(n) = r.min_lowercase.filter(|&n| n > 0) {
        out.push(fewer("a-z", n));
    }
    if let Some(n) = r.min_special_chars.filter(|&n| n > 0) {
        let set: String = r
            .special_chars
            .as_deref()
            .unwrap_or(SPECIAL)
            .chars()
            .map(|c| regex_syntax::escape(&c.to_string()))
            .collect();
        out.push(fewer(&set, n));
    }
    for w in &r.ignore_if_contains {
        out.push(format!("(?i){}", regex::escape(w)));
    }
    out
}

/// A literal word (bytes) and whether it is matched case-insensitively (ASCII).
type Word = (Vec<u8>, bool);

/// The word `h` matches exactly: literals, and ASCII letters in both cases.
fn word(h: &Hir) -> Option<Word> {
    match h.kind() {
        HirKind::Literal(l) => Some((l.0.to_vec(), false)),
        HirKind::Capture(c) => word(&c.sub),
        HirKind::Class(c) => {
            let mut bytes: Vec<u8> = match c {
                Class::Bytes(b) => b
                    .ranges()
                    .iter()
                    .flat_map(|r| r.start()..=r.end())
                    .collect(),
                Class::Unicode(u) => {
                    let mut v = Vec::new();
                    for r in u.ranges() {
                        for c in r.start()..=r.end() {
                            if !c.is_ascii() || v.len() > 2 {
                                return None;
                            }
                            v.push(c as u8);
                        }
                    }
                    v
                }
            };
            bytes.sort_unstable();
            match bytes.as_slice() {
                [b] => Some((vec![*b], false)),
                [u, l] if u.is_ascii_uppercase() && *l == u.to_ascii_lowercase() => {
                    Some((vec![*l], true))
                }
                _ => None,
            }
        }
        HirKind::Concat(subs) => {
            let mut w = Vec::new();
            let mut ci = false;
            for s in subs {
                let (b, c) = word(s)?;
                w.extend(b);
                ci |= c;
            }
            Some((w, ci))
        }
        _ => None,
    }
}

/// The alternatives of `h` when each is a word.
fn words(h: &Hir) -> Option<Vec<Word>> {
    match h.kind() {
        HirKind::Alternation(subs) => subs.iter().map(word).collect(),
        HirKind::Capture(c) => words(&c.sub),
        _ => word(h).map(|w| vec![w]),
    }
}

/// Keywords for a pattern: every match contains one of them. Returns them and, when a
/// case-insensitive word had to be approximated by its usual case forms, that word.
fn keywords_of(hir: &Hir) -> Result<(Vec<String>, Option<String>), String> {
    // Literal prefixes (case-sensitive patterns, alternations of prefixes).
    let seq = Extractor::new()
        .kind(ExtractKind::Prefix)
        .limit_total(32)
        .extract(hir);
    if let Some(lits) = seq.literals() {
        let mut kws: Vec<String> = Vec::new();
        let ok = !lits.is_empty()
            && lits.iter().all(|l| {
                let b = &l.as_bytes()[..l.len().min(24)];
                match std::str::from_utf8(b) {
                    Ok(s) if s.len() >= 3 => {
                        if !kws.iter().any(|k| k == s) {
                            kws.push(s.to_string());
                        }
                        true
                    }
                    _ => false,
                }
            });
        if ok && kws.len() <= 16 {
            return Ok((kws, None));
        }
    }
    // A required element of the top-level sequence that is a word or words.
    let top: Vec<&Hir> = match hir.kind() {
        HirKind::Concat(subs) => subs.iter().collect(),
        HirKind::Capture(c) => match c.sub.kind() {
            HirKind::Concat(subs) => subs.iter().collect(),
            _ => vec![hir],
        },
        _ => vec![hir],
    };
    // Candidates: runs of consecutive literal/word elements, and alternations of words.
    let mut cands: Vec<Vec<Word>> = Vec::new();
    let mut run: Option<Word> = None;
    for el in top {
        if let Some((w, ci)) = word(el) {
            run = Some(match run.take() {
                Some((mut r, rci)) => {
                    r.extend(w);
                    (r, rci || ci)
                }
                None => (w, ci),
            });
            continue;
        }
        cands.extend(run.take().map(|w| vec![w]));
        if let Some(ws) = words(el) {
            cands.push(ws);
        }
    }
    cands.extend(run.take().map(|w| vec![w]));
    let mut best: Option<(Vec<String>, Option<String>, usize)> = None;
    for ws in cands {
        if ws.is_empty()
            || ws
                .iter()
                .any(|(w, _)| w.len() < 3 || std::str::from_utf8(w).is_err())
        {
            continue;
        }
        let mut kws = Vec::new();
        let mut approx = None;
        for (w, ci) in &ws {
            let s = String::from_utf8(w.clone()).expect("checked");
            if *ci {
                let mut cap = s.clone();
                cap[..1].make_ascii_uppercase();
                for v in [s.clone(), s.to_ascii_uppercase(), cap] {
                    if !kws.contains(&v) {
                        kws.push(v);
                    }
                }
                approx = Some(s);
            } else if !kws.contains(&s) {
                kws.push(s);
            }
        }
        let shortest = ws.iter().map(|(w, _)| w.len()).min().unwrap_or(0);
        let better = match &best {
            None => true,
            Some((b, _, bs)) => kws.len() < b.len() || (kws.len() == b.len() && shortest > *bs),
        };
        if better && kws.len() <= 24 {
            best = Some((kws, approx, shortest));
        }
    }
    best.map(|(k, a, _)| (k, a)).ok_or_else(|| {
        "no literal of at least 3 bytes occurs in every match, so the rule cannot be prefiltered"
            .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(p: &str) -> Result<(Vec<String>, Option<String>), String> {
        keywords_of(&parse_pattern(p).unwrap())
    }

    #[test]
    fn keywords_from_prefixes_words_and_case_insensitive_words() {
        assert_eq!(kw(r"\bghp_[A-Za-z0-9]{36}\b").unwrap().0, ["ghp_"]);
        assert_eq!(
            kw(r"(?:AKIA|ASIA)[A-Z2-7]{16}").unwrap().0,
            ["AKIA", "ASIA"]
        );
        let (k, approx) = kw(r"(?xi)\b datadog (?:.|[\n\r]){0,64}? ([a-f0-9]{32})").unwrap();
        assert_eq!(k, ["datadog", "DATADOG", "Datadog"]);
        assert_eq!(approx.as_deref(), Some("datadog"));
        let (k, _) = kw(r"(?i)\b(?:sentry|glitchtip)[\s\S]{0,20}([a-f0-9]{64})").unwrap();
        assert_eq!(k.len(), 6, "{k:?}");
        assert!(kw(r"[a-f0-9]{32}").is_err());
        assert!(
            kw(r"(?i)\bdd[\s\S]{0,9}([a-f0-9]{32})").is_err(),
            "2-byte word"
        );
    }

    #[test]
    fn requirements_become_allowlists() {
        let r = Requirements {
            min_digits: Some(3),
            min_uppercase: None,
            min_lowercase: None,
            min_special_chars: None,
            special_chars: None,
            ignore_if_contains: vec!["test".into()],
            checksum: None,
        };
        let a: Vec<regex::Regex> = requirements(&r)
            .iter()
            .map(|p| regex::Regex::new(p).unwrap())
            .collect();
        let dropped = |s: &str| a.iter().any(|re| re.is_match(s));
        assert!(dropped("ab1c2"), "two digits");
        assert!(!dropped("a1b2c3"), "three digits");
        assert!(dropped("x1y2z3TeSt"), "ignored word");
    }
}
