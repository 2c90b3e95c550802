//! Detection rules as data: the YAML schema of `rules/*.yaml`, the embedded default rule
//! set, loading of user rule files and of gitleaks TOML configs, and validation that names
//! the file, the rule and the field of every problem.

use serde::{Deserialize, Serialize};

use super::validators::Validator;

/// The rule files shipped with the sensor, embedded at build time.
pub const BUILTIN_RULES: &[(&str, &str)] = &[(
    "rules/tokens.yaml",
    include_str!("../../../rules/tokens.yaml"),
)];

/// Rule loading errors.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// A file could not be read or was refused (too large, not text, nested too deep).
    #[error("reading {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        error: crate::input::InputError,
    },
    /// YAML/TOML syntax or schema error (with line/column from the parser).
    #[error("{origin}: {message}")]
    Parse {
        /// File name.
        origin: String,
        /// Parser message.
        message: String,
    },
    /// A rule is invalid.
    #[error("{origin}: rule `{id}`: {field}: {problem}")]
    Invalid {
        /// File name.
        origin: String,
        /// Rule id.
        id: String,
        /// Offending field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// How bad a leak of this credential is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    Low,
    /// Worth a look.
    Medium,
    /// Credential with real reach.
    High,
    /// Credential that grants broad or administrative access.
    Critical,
}

impl Severity {
    /// The severity's name as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One detector.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable identifier (kebab-case).
    pub id: String,
    /// Human name.
    pub name: String,
    /// Issuing provider ("github").
    pub provider: String,
    /// Token kind ("personal_access_token").
    pub kind: String,
    /// Literal strings, one of which occurs in every match (prefilter).
    pub keywords: Vec<String>,
    /// Regular expression (Rust `regex` syntax) matching the token or its context.
    pub pattern: String,
    /// Capture group holding the secret (0 = whole match).
    #[serde(default)]
    pub secret_group: Option<usize>,
    /// Minimum secret length.
    #[serde(default)]
    pub min_len: Option<usize>,
    /// Maximum secret length.
    #[serde(default)]
    pub max_len: Option<usize>,
    /// Structural/checksum validator.
    #[serde(default)]
    pub validator: Option<Validator>,
    /// Minimum Shannon entropy (bits per char) of the secret.
    #[serde(default)]
    pub entropy: Option<f64>,
    /// Severity of a leak.
    pub severity: Severity,
    /// MITRE ATT&CK and other tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Hosts that legitimately receive this credential (its issuer); `*.` wildcards.
    #[serde(default)]
    pub issuers: Vec<String>,
    /// Name of the revocation method the action layer uses.
    #[serde(default = "default_revoke")]
    pub revoke: String,
    /// Leading characters safe to show (the public prefix); default 4.
    #[serde(default)]
    pub safe_prefix: Option<usize>,
    /// Whether the last 4 characters may be shown.
    #[serde(default)]
    pub show_last4: bool,
    /// Synthetic strings that must be found by this rule.
    #[serde(default)]
    pub examples: Vec<String>,
    /// Near misses that must not be found (as this rule).
    #[serde(default)]
    pub counterexamples: Vec<String>,
    /// Regexes: a secret matching any of them is ignored (e.g. known placeholders).
    #[serde(default)]
    pub allowlist: Vec<String>,
}

/// The revocation method of rules that name none.
pub fn default_revoke() -> String {
    "webhook".into()
}

/// A versioned rule file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Schema version (1).
    pub version: u32,
    /// Detectors.
    pub rules: Vec<Rule>,
}

/// Parses one YAML rule file and checks each rule's fields.
pub fn parse_yaml(text: &str, origin: &str) -> Result<Vec<Rule>, RuleError> {
    let f: RuleFile = yaml_serde::from_str(text).map_err(|e| RuleError::Parse {
        origin: origin.into(),
        message: e.to_string(),
    })?;
    if f.version != 1 {
        return Err(RuleError::Parse {
            origin: origin.into(),
            message: format!("unsupported rules version {} (expected 1)", f.version),
        });
    }
    let mut seen = std::collections::HashSet::new();
    for r in &f.rules {
        check_rule(r, origin)?;
        if !seen.insert(r.id.as_str()) {
            return Err(RuleError::Invalid {
                origin: origin.into(),
                id: r.id.clone(),
                field: "id",
                problem: "duplicate rule id in this file".into(),
            });
        }
    }
    Ok(f.rules)
}

/// Field-level checks that need no compilation.
pub fn check_rule(r: &Rule, origin: &str) -> Result<(), RuleError> {
    let inv = |field, problem: String| {
        Err(RuleError::Invalid {
            origin: origin.into(),
            id: r.id.clone(),
            field,
            problem,
        })
    };
    if r.id.is_empty()
        || !r
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return inv("id", "must be non-empty kebab-case".into());
    }
    if r.keywords.is_empty() || r.keywords.iter().any(|k| k.len() < 2) {
        return inv(
            "keywords",
            "at least one keyword of ≥ 2 bytes is required for prefiltering".into(),
        );
    }
    // Parsed (with the settings of `regex::bytes`), not built: building is the engine's.
    let parse = |p: &str| {
        regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(p)
            .map_err(|e| e.to_string())
    };
    let hir = match parse(&r.pattern) {
        Ok(h) => h,
        Err(e) => return inv("pattern", e),
    };
    if r.pattern.is_empty() || hir.properties().minimum_len() == Some(0) {
        return inv(
            "pattern",
            "matches the empty string (every position would be a finding)".into(),
        );
    }
    if let Some(e) = r.allowlist.iter().find_map(|a| parse(a).err()) {
        return inv("allowlist", e);
    }
    if let (Some(a), Some(b)) = (r.min_len, r.max_len) {
        if a > b {
            return inv("min_len", format!("{a} > max_len {b}"));
        }
    }
    if let Some(g) = r.secret_group {
        let groups = hir.properties().explicit_captures_len();
        if g > groups {
            return inv(
                "secret_group",
                format!("{g} but the pattern has {groups} groups"),
            );
        }
    }
    // The shown prefix must leave part of every token hidden.
    if let Some(p) = r.safe_prefix.filter(|&p| p > 0) {
        let group = r
            .secret_group
            .filter(|&g| g > 0)
            .and_then(|g| group_hir(&hir, g));
        let shortest = group
            .unwrap_or(&hir)
            .properties()
            .minimum_len()
            .unwrap_or(0)
            .max(r.min_len.unwrap_or(0));
        if p >= shortest {
            return inv(
                "safe_prefix",
                format!("{p} would show the whole of the shortest token ({shortest} bytes)"),
            );
        }
    }
    if let Some(e) = r.entropy {
        if !(0.0..=8.0).contains(&e) {
            return inv("entropy", format!("{e} is outside 0..8 bits"));
        }
    }
    if r.name.is_empty() || r.provider.is_empty() || r.kind.is_empty() {
        return inv("name", "name, provider and kind are required".into());
    }
    Ok(())
}

/// The embedded rule set.
pub fn builtin() -> Vec<Rule> {
    let mut out = Vec::new();
    for (origin, text) in BUILTIN_RULES {
        out.extend(parse_yaml(text, origin).expect("embedded rules are valid (checked by tests)"));
    }
    out
}

/// Whether `id` is a built-in rule.
pub fn is_builtin(id: &str) -> bool {
    static IDS: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();
    IDS.get_or_init(|| builtin().into_iter().map(|r| r.id).collect())
        .contains(id)
}

/// Loads a rule file: YAML (`.yaml`/`.yml`) or a gitleaks config (`.toml`), at most
/// [`crate::input::MAX_BYTES`]. Rules only: see [`load_set`] for extends and duplicates.
pub fn load_file(path: &std::path::Path) -> Result<Vec<Rule>, RuleError> {
    load_import(path).map(|i| i.rules)
}

fn load_import(path: &std::path::Path) -> Result<super::gitleaks::Import, RuleError> {
    let origin = path.display().to_string();
    let text = crate::input::read_text(path).map_err(|error| RuleError::Read {
        path: origin.clone(),
        error,
    })?;
    if path.extension().is_some_and(|e| e == "toml") {
        super::gitleaks::parse(&text, &origin)
    } else {
        Ok(super::gitleaks::Import {
            rules: parse_yaml(&text, &origin)?,
            ..Default::default()
        })
    }
}

/// The built-in rules plus `files`, as the engine runs them: gitleaks `[extend]`
/// applied (disabled built-in rules dropped, global allowlists on built-in rules), and
/// every rule id unique — a second rule with an id already defined (built in, or in an
/// earlier file) is an error naming both. Stops at the first problem.
pub fn load_set(files: &[std::path::PathBuf]) -> Result<Vec<Rule>, RuleError> {
    let (rules, mut problems) = check_set(files);
    match problems.is_empty() {
        true => Ok(rules),
        false => Err(problems.remove(0)),
    }
}

/// Like [`load_set`], but goes on past problems (for `sensor rules check`): the rules that
/// loaded, and every problem.
pub fn check_set(files: &[std::path::PathBuf]) -> (Vec<Rule>, Vec<RuleError>) {
    let mut rules = builtin();
    let mut from: std::collections::HashMap<String, String> = rules
        .iter()
        .map(|r| (r.id.clone(), "the built-in rules".to_string()))
        .collect();
    let mut problems = Vec::new();
    for f in files {
        let origin = f.display().to_string();
        let import = match load_import(f) {
            Ok(i) => i,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        for id in &import.disabled {
            match rules.iter().position(|r| r.id == *id && is_builtin(id)) {
                Some(i) => {
                    rules.remove(i);
                }
                None => problems.push(RuleError::Invalid {
                    origin: origin.clone(),
                    id: id.clone(),
                    field: "extend",
                    problem: "disabledRules names no built-in rule".into(),
                }),
            }
        }
        for (targets, pats) in &import.builtin_allow {
            for r in rules.iter_mut().filter(|r| is_builtin(&r.id)) {
                if targets.as_ref().is_none_or(|t| t.contains(&r.id)) {
                    r.allowlist.extend(pats.iter().cloned());
                }
            }
        }
        for r in import.rules {
            // A built-in rule repeated unchanged (the installed copy of rules/tokens.yaml)
            // adds nothing; the same id defined differently is a conflict.
            if is_builtin(&r.id) && builtin_unchanged(&r) {
                continue;
            }
            if let Some(first) = from.get(&r.id) {
                problems.push(RuleError::Invalid {
                    origin: origin.clone(),
                    id: r.id.clone(),
                    field: "id",
                    problem: format!("duplicate rule id: already defined in {first}"),
                });
                continue;
            }
            from.insert(r.id.clone(), origin.clone());
            rules.push(r);
        }
    }
    (rules, problems)
}

/// Whether `r` is exactly the built-in rule of its id.
fn builtin_unchanged(r: &Rule) -> bool {
    static BUILTIN: std::sync::OnceLock<std::collections::HashMap<String, serde_json::Value>> =
        std::sync::OnceLock::new();
    let by_id = BUILTIN.get_or_init(|| {
        builtin()
            .into_iter()
            .map(|b| (b.id.clone(), serde_json::to_value(&b).unwrap_or_default()))
            .collect()
    });
    by_id
        .get(&r.id)
        .is_some_and(|b| serde_json::to_value(r).is_ok_and(|v| v == *b))
}

/// Converts a gitleaks config into detectors (see [`super::gitleaks`]).
pub fn parse_gitleaks(text: &str, origin: &str) -> Result<Vec<Rule>, RuleError> {
    super::gitleaks::parse(text, origin).map(|i| i.rules)
}

/// The sub-pattern of capture group `g`.
fn group_hir(hir: &regex_syntax::hir::Hir, g: usize) -> Option<&regex_syntax::hir::Hir> {
    use regex_syntax::hir::HirKind;
    match hir.kind() {
        HirKind::Capture(c) if c.index as usize == g => Some(&c.sub),
        HirKind::Capture(c) => group_hir(&c.sub, g),
        HirKind::Repetition(r) => group_hir(&r.sub, g),
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().find_map(|h| group_hir(h, g)),
        _ => None,
    }
}
