//! Detection rules as data: the YAML schema of `rules/*.yaml`, the embedded default rule
//! set, loading of user rule files and of gitleaks TOML configs, and validation that names
//! the file, the rule and the field of every problem.

use serde::{Deserialize, Serialize};

use super::validators::Validator;

/// Embeds `rules/<name>`, shipped with the sensor.
macro_rules! builtin_file {
    ($name:literal) => {
        (
            concat!("rules/", $name),
            include_str!(concat!("../../../rules/", $name)),
        )
    };
}

/// The rule files shipped with the sensor (one per provider family), embedded at build
/// time. A test holds this list to the directory's contents.
pub const BUILTIN_RULES: &[(&str, &str)] = &[
    builtin_file!("ai.yaml"),
    builtin_file!("cloud.yaml"),
    builtin_file!("data-apis.yaml"),
    builtin_file!("databases.yaml"),
    builtin_file!("generic.yaml"),
    builtin_file!("github.yaml"),
    builtin_file!("gitlab.yaml"),
    builtin_file!("identity.yaml"),
    builtin_file!("messaging.yaml"),
    builtin_file!("observability.yaml"),
    builtin_file!("payments.yaml"),
    builtin_file!("private-keys.yaml"),
    builtin_file!("registries.yaml"),
    builtin_file!("saas.yaml"),
    builtin_file!("source-ci.yaml"),
    builtin_file!("workspaces.yaml"),
];

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
    /// Literal strings, one of which occurs in every match (prefilter). Empty only for a
    /// context rule.
    #[serde(default)]
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
    /// A context-keyed secret (a format without a prefix): `pattern` is the shape of the
    /// value, which counts only when assigned to a key with one of these names (see
    /// [`super::context`]). Such a rule has no keywords.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
}

/// What a context-keyed value must be assigned to.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// Names, one of which the key must contain as whole words (`aws secret access key`
    /// matches `AWS_SECRET_ACCESS_KEY`, `awsSecretAccessKey`, `aws-secret-access-key`).
    /// Empty: any key (a generic rule, which then yields to every named one).
    #[serde(default)]
    pub names: Vec<String>,
    /// The key must also contain one of these words; absent: the default credential words
    /// (`key`, `token`, `secret`, `password`, …); `[]`: no such requirement.
    #[serde(default)]
    pub words: Option<Vec<String>>,
    /// Least number of character classes (lowercase, uppercase, digits) in the value
    /// (default 2: identifiers and words are not secrets).
    #[serde(default)]
    pub classes: Option<u8>,
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
    if let Some(c) = &r.context {
        if !r.keywords.is_empty() {
            return inv(
                "keywords",
                "a context rule is anchored on its value and the key it is assigned to; it takes no keywords".into(),
            );
        }
        if let Some(p) = super::context::check(c) {
            return inv("context", p);
        }
    } else if r.keywords.is_empty() || r.keywords.iter().any(|k| k.len() < 2) {
        return inv(
            "keywords",
            "at least one keyword of ≥ 2 bytes is required for prefiltering (or a `context`)"
                .into(),
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
    builtin_checked().expect("embedded rules are valid (checked by tests)")
}

/// The embedded rule set, or the first problem in it (for `sensor rules check`): a
/// rule invalid, or an id defined in two of the files.
pub fn builtin_checked() -> Result<Vec<Rule>, RuleError> {
    parse_files(BUILTIN_RULES)
}

/// Rules of several (origin, YAML text) files whose ids must be unique across them.
pub fn parse_files(files: &[(&str, &str)]) -> Result<Vec<Rule>, RuleError> {
    let mut out = Vec::new();
    let mut from = std::collections::HashMap::new();
    for (origin, text) in files {
        for r in parse_yaml(text, origin)? {
            if let Some(first) = from.insert(r.id.clone(), *origin) {
                return Err(RuleError::Invalid {
                    origin: (*origin).into(),
                    id: r.id,
                    field: "id",
                    problem: format!("duplicate rule id: already defined in {first}"),
                });
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// Whether `id` is a built-in rule.
pub fn is_builtin(id: &str) -> bool {
    static IDS: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();
    IDS.get_or_init(|| builtin().into_iter().map(|r| r.id).collect())
        .contains(id)
}

/// Loads a rule file: the sensor's YAML, Kingfisher YAML (`.yaml`/`.yml`) or a gitleaks
/// config (`.toml`), at most [`crate::input::MAX_BYTES`]. Rules only, Kingfisher rules
/// that cannot be honoured left out: see [`load_set`] for extends, duplicates and
/// directories.
pub fn load_file(path: &std::path::Path) -> Result<Vec<Rule>, RuleError> {
    super::import::load_file(path).map(|l| l.import.rules)
}

/// The built-in rules plus those of `paths` (rule files, or directories of them), as the
/// engine runs them: gitleaks `[extend]` applied (disabled built-in rules dropped, global
/// allowlists on built-in rules), and every rule id unique — a second rule with an id
/// already defined (built in, or in an earlier file) is an error naming both. Stops at
/// the first problem; imported rules that cannot be honoured (see
/// [`super::import::kingfisher`]) are skipped with a warning naming rule and reason.
pub fn load_set(paths: &[std::path::PathBuf]) -> Result<Vec<Rule>, RuleError> {
    let (rules, mut problems, skipped) = assemble(paths);
    if !problems.is_empty() {
        return Err(problems.remove(0));
    }
    for e in &skipped {
        tracing::warn!("rule skipped: {e}");
    }
    Ok(rules)
}

/// Like [`load_set`], but goes on past problems (for `sensor rules check`): the rules that
/// loaded, and every problem (imported rules that cannot be honoured included).
pub fn check_set(paths: &[std::path::PathBuf]) -> (Vec<Rule>, Vec<RuleError>) {
    let (rules, mut problems, skipped) = assemble(paths);
    problems.extend(skipped);
    (rules, problems)
}

/// The set of [`load_set`]: rules, problems, and imported rules that cannot be honoured.
fn assemble(paths: &[std::path::PathBuf]) -> (Vec<Rule>, Vec<RuleError>, Vec<RuleError>) {
    let mut problems = Vec::new();
    let mut skipped = Vec::new();
    let mut rules = builtin_checked().unwrap_or_else(|e| {
        problems.push(e);
        Vec::new()
    });
    let mut from: std::collections::HashMap<String, String> = rules
        .iter()
        .map(|r| (r.id.clone(), "the built-in rules".to_string()))
        .collect();
    // A file named twice (itself and through its directory) is loaded once.
    let mut files = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in paths {
        match super::import::files(p) {
            Ok(f) => files.extend(
                f.into_iter()
                    .filter(|f| seen.insert(std::fs::canonicalize(f).unwrap_or(f.clone()))),
            ),
            Err(e) => problems.push(e),
        }
    }
    for f in &files {
        let origin = f.display().to_string();
        let import = match super::import::load_file(f) {
            Ok(l) => {
                skipped.extend(l.rejected);
                l.import
            }
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
            // A built-in rule repeated unchanged (an installed copy of rules/*.yaml) adds
            // nothing; the same id defined differently is a conflict.
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
    (rules, problems, skipped)
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
