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
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// I/O error.
        #[source]
        source: std::io::Error,
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

fn default_revoke() -> String {
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
    let f: RuleFile = serde_yaml::from_str(text).map_err(|e| RuleError::Parse {
        origin: origin.into(),
        message: e.to_string(),
    })?;
    if f.version != 1 {
        return Err(RuleError::Parse {
            origin: origin.into(),
            message: format!("unsupported rules version {} (expected 1)", f.version),
        });
    }
    for r in &f.rules {
        check_rule(r, origin)?;
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

/// The embedded rule set, or the first problem in it (for `sensor rules check`).
pub fn builtin_checked() -> Result<Vec<Rule>, RuleError> {
    let mut out = Vec::new();
    for (origin, text) in BUILTIN_RULES {
        out.extend(parse_yaml(text, origin)?);
    }
    Ok(out)
}

/// Loads a rule file: YAML (`.yaml`/`.yml`) or a gitleaks config (`.toml`).
pub fn load_file(path: &std::path::Path) -> Result<Vec<Rule>, RuleError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RuleError::Read {
        path: origin.clone(),
        source,
    })?;
    if path.extension().is_some_and(|e| e == "toml") {
        parse_gitleaks(&text, &origin)
    } else {
        parse_yaml(&text, &origin)
    }
}

#[derive(Deserialize)]
struct GitleaksConfig {
    #[serde(default)]
    rules: Vec<GitleaksRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GitleaksRule {
    id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    secret_group: Option<usize>,
    #[serde(default)]
    entropy: Option<f64>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    allowlist: Option<GitleaksAllowlist>,
    #[serde(default)]
    allowlists: Vec<GitleaksAllowlist>,
    #[serde(default)]
    path: Option<String>,
    /// Sensor extension (gitleaks ignores it): strings the rule must find.
    #[serde(default)]
    examples: Vec<String>,
    /// Sensor extension: strings that must stay silent.
    #[serde(default)]
    counterexamples: Vec<String>,
}

#[derive(Deserialize, Default)]
struct GitleaksAllowlist {
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default)]
    stopwords: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    paths: Vec<String>,
}

/// Converts gitleaks `[[rules]]` into detectors (`examples` and `counterexamples`, which
/// gitleaks ignores, are proven by `sensor rules check`). Gitleaks keywords are case-insensitive;
/// rules without keywords cannot be prefiltered and are rejected with a clear error, as are
/// path-only rules. Allowlist regexes and stopwords become counter-patterns.
pub fn parse_gitleaks(text: &str, origin: &str) -> Result<Vec<Rule>, RuleError> {
    let cfg: GitleaksConfig = toml::from_str(text).map_err(|e| RuleError::Parse {
        origin: origin.into(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for g in cfg.rules {
        let id =
            g.id.to_ascii_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
        let Some(regex) = g.regex else {
            if g.path.is_some() {
                continue; // path-only rules describe files, not bytes in flight
            }
            return Err(RuleError::Invalid {
                origin: origin.into(),
                id,
                field: "regex",
                problem: "missing".into(),
            });
        };
        if g.keywords.is_empty() {
            return Err(RuleError::Invalid {
                origin: origin.into(),
                id,
                field: "keywords",
                problem: "gitleaks rules without keywords cannot be prefiltered; add keywords"
                    .into(),
            });
        }
        // Gitleaks matches keywords case-insensitively: add the common case forms.
        let mut keywords = Vec::new();
        for k in &g.keywords {
            for v in [k.clone(), k.to_ascii_lowercase(), k.to_ascii_uppercase()] {
                if !keywords.contains(&v) {
                    keywords.push(v);
                }
            }
        }
        let mut counter = Vec::new();
        for a in g.allowlist.into_iter().chain(g.allowlists) {
            counter.extend(a.regexes);
            counter.extend(a.stopwords.iter().map(|s| regex::escape(s)));
        }
        let rule = Rule {
            id: format!("gitleaks-{id}"),
            name: g.description.unwrap_or_else(|| g.id.clone()),
            provider: "custom".into(),
            kind: g.id.clone(),
            keywords,
            // Go RE2 syntax is (almost) Rust regex syntax.
            pattern: regex,
            secret_group: g.secret_group,
            min_len: None,
            max_len: None,
            validator: None,
            entropy: g.entropy,
            severity: Severity::High,
            tags: g.tags,
            issuers: Vec::new(),
            revoke: default_revoke(),
            safe_prefix: Some(0),
            show_last4: false,
            examples: g.examples,
            counterexamples: g.counterexamples,
            allowlist: counter,
            context: None,
        };
        check_rule(&rule, origin)?;
        out.push(rule);
    }
    Ok(out)
}
