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
    let mut out = Vec::new();
    for (origin, text) in BUILTIN_RULES {
        out.extend(parse_yaml(text, origin).expect("embedded rules are valid (checked by tests)"));
    }
    out
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

/// Converts gitleaks `[[rules]]` into detectors. Gitleaks keywords are case-insensitive;
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
            examples: Vec::new(),
            counterexamples: Vec::new(),
            allowlist: counter,
        };
        check_rule(&rule, origin)?;
        out.push(rule);
    }
    Ok(out)
}
