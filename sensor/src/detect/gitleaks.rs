//! Import of gitleaks configurations (`.toml`), so that a team's existing rules run in the
//! sensor. Every key gitleaks defines is either applied or refused with an error naming
//! the rule and the key — a rule that silently lost its allowlist would report what the
//! team had excluded. Keys about files (`path`, `paths`) and commits have no meaning for
//! bytes in flight and are refused.
//!
//! What is applied: `[[rules]]` (`id`, `description`, `regex`, `secretGroup`, `entropy`,
//! `keywords`, `tags`), their allowlists (`[rules.allowlist]`, `[[rules.allowlists]]`:
//! `regexes` and `stopwords` on the secret) and the global ones (`[allowlist]`,
//! `[[allowlists]]`, with `targetRules`); and `[extend] useDefault = true`, which maps
//! gitleaks' default rule set to the sensor's built-in rules (always loaded; gitleaks'
//! own defaults are not embedded) — its `disabledRules` then names built-in rules to drop,
//! and the global allowlists apply to the built-in rules too. A rule may also carry
//! `examples` and `counterexamples` (the sensor's extension, which gitleaks ignores),
//! proven by `sensor rules check`.

use toml::{Table, Value};

use super::rules::{check_rule, default_revoke, Rule, RuleError, Severity};

/// A gitleaks file as the sensor applies it.
#[derive(Debug, Default)]
pub struct Import {
    /// Its rules, as detectors (`gitleaks-<id>`).
    pub rules: Vec<Rule>,
    /// Built-in rule ids to drop (`[extend] disabledRules`).
    pub disabled: Vec<String>,
    /// Allowlist patterns for built-in rules (global allowlists of a file that extends
    /// the default): (target built-in ids, or all when `None`; patterns).
    pub builtin_allow: Vec<(Option<Vec<String>>, Vec<String>)>,
}

const TOP_KEYS: &[&str] = &[
    "title",
    "description",
    "minVersion",
    "extend",
    "rules",
    "allowlist",
    "allowlists",
];
const RULE_KEYS: &[&str] = &[
    "id",
    "description",
    "regex",
    "secretGroup",
    "entropy",
    "keywords",
    "tags",
    "allowlist",
    "allowlists",
    "path",
    "skipReport",
    // The sensor's extension (gitleaks ignores unknown keys): proven by `rules check`.
    "examples",
    "counterexamples",
];
const ALLOW_KEYS: &[&str] = &[
    "description",
    "regexes",
    "stopwords",
    "regexTarget",
    "condition",
    "paths",
    "commits",
    "targetRules",
];

struct Ctx<'a> {
    origin: &'a str,
}

impl Ctx<'_> {
    fn err(&self, id: &str, field: &'static str, problem: impl Into<String>) -> RuleError {
        RuleError::Invalid {
            origin: self.origin.into(),
            id: id.into(),
            field,
            problem: problem.into(),
        }
    }

    fn unknown(&self, id: &str, t: &Table, known: &[&str]) -> Result<(), RuleError> {
        match t.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(self.err(
                id,
                "key",
                format!(
                    "unknown or unsupported gitleaks key `{k}` (known keys: {})",
                    known.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }

    fn string(&self, id: &str, t: &Table, key: &'static str) -> Result<Option<String>, RuleError> {
        match t.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.err(id, key, format!("must be a string, not {}", v.type_str()))),
        }
    }

    fn strings(&self, id: &str, t: &Table, key: &'static str) -> Result<Vec<String>, RuleError> {
        match t.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    v => Err(self.err(
                        id,
                        key,
                        format!("entries must be strings, not {}", v.type_str()),
                    )),
                })
                .collect(),
            Some(v) => Err(self.err(
                id,
                key,
                format!("must be a list of strings, not {}", v.type_str()),
            )),
        }
    }

    /// The tables of `key`: one table (the old singular form) or an array of tables.
    fn tables<'t>(
        &self,
        id: &str,
        t: &'t Table,
        key: &'static str,
    ) -> Result<Vec<&'t Table>, RuleError> {
        match t.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Table(x)) => Ok(vec![x]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::Table(x) => Ok(x),
                    v => Err(self.err(
                        id,
                        key,
                        format!("entries must be tables, not {}", v.type_str()),
                    )),
                })
                .collect(),
            Some(v) => Err(self.err(id, key, format!("must be a table, not {}", v.type_str()))),
        }
    }

    /// An allowlist's patterns on the secret; `targets` receives `targetRules` when
    /// given (global allowlists only).
    fn allowlist(
        &self,
        id: &str,
        a: &Table,
        targets: Option<&mut Option<Vec<String>>>,
    ) -> Result<Vec<String>, RuleError> {
        self.unknown(id, a, ALLOW_KEYS)?;
        for key in ["paths", "commits"] {
            if a.contains_key(key) {
                return Err(self.err(
                    id,
                    "allowlist",
                    format!("`{key}` has no meaning for bytes in flight (no file, no commit); remove it"),
                ));
            }
        }
        if let Some(t) = self.string(id, a, "regexTarget")? {
            if t != "secret" {
                return Err(self.err(
                    id,
                    "allowlist",
                    format!("regexTarget = {t:?} is not supported (only \"secret\")"),
                ));
            }
        }
        let regexes = self.strings(id, a, "regexes")?;
        let stopwords = self.strings(id, a, "stopwords")?;
        if let Some(c) = self.string(id, a, "condition")? {
            let both = !regexes.is_empty() && !stopwords.is_empty();
            let supported =
                c.eq_ignore_ascii_case("or") || (c.eq_ignore_ascii_case("and") && !both);
            if !supported {
                return Err(self.err(
                    id,
                    "allowlist",
                    format!("condition = {c:?} is not supported (\"OR\", or \"AND\" with one kind of check)"),
                ));
            }
        }
        match targets {
            Some(slot) if a.contains_key("targetRules") => {
                *slot = Some(self.strings(id, a, "targetRules")?);
            }
            None if a.contains_key("targetRules") => {
                return Err(self.err(id, "allowlist", "targetRules belongs in a global allowlist"))
            }
            _ => {}
        }
        // Stopwords as gitleaks applies them: contained in the secret, any case.
        Ok(regexes
            .into_iter()
            .chain(
                stopwords
                    .iter()
                    .map(|s| format!("(?i){}", regex::escape(s))),
            )
            .collect())
    }
}

/// The detector id of gitleaks rule `id`.
pub fn rule_id(id: &str) -> String {
    let id = id
        .to_ascii_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
    format!("gitleaks-{id}")
}

/// Converts a gitleaks config. Gitleaks keywords are case-insensitive: each is added in
/// its lower and upper case forms. Rules without keywords cannot be prefiltered and are
/// refused, as are path rules and unknown keys (naming the rule and the key).
pub fn parse(text: &str, origin: &str) -> Result<Import, RuleError> {
    let cx = Ctx { origin };
    let top: Table = toml::from_str(text).map_err(|e| RuleError::Parse {
        origin: origin.into(),
        message: e.to_string(),
    })?;
    cx.unknown("(file)", &top, TOP_KEYS)?;
    let mut out = Import::default();
    let mut extends_default = false;
    if let Some(ext) = cx.tables("(file)", &top, "extend")?.first() {
        cx.unknown(
            "(file)",
            ext,
            &["useDefault", "path", "url", "disabledRules"],
        )?;
        for key in ["path", "url"] {
            if ext.contains_key(key) {
                return Err(cx.err(
                    "(file)",
                    "extend",
                    format!("`{key}` is not supported: only useDefault (the built-in rules)"),
                ));
            }
        }
        extends_default = match ext.get("useDefault") {
            None => false,
            Some(Value::Boolean(b)) => *b,
            Some(v) => {
                return Err(cx.err(
                    "(file)",
                    "extend",
                    format!("useDefault must be true or false, not {}", v.type_str()),
                ))
            }
        };
        out.disabled = cx.strings("(file)", ext, "disabledRules")?;
        if !out.disabled.is_empty() && !extends_default {
            return Err(cx.err("(file)", "extend", "disabledRules needs useDefault = true"));
        }
    }
    let mut ids: Vec<String> = Vec::new();
    let mut global = Vec::new();
    for a in cx
        .tables("(file)", &top, "allowlist")?
        .into_iter()
        .chain(cx.tables("(file)", &top, "allowlists")?)
    {
        let mut targets = None;
        let pats = cx.allowlist("(global allowlist)", a, Some(&mut targets))?;
        global.push((targets, pats));
    }
    for (i, v) in top
        .get("rules")
        .map(|v| match v {
            Value::Array(a) => Ok(a.as_slice()),
            v => Err(cx.err(
                "(file)",
                "rules",
                format!("must be [[rules]] tables, not {}", v.type_str()),
            )),
        })
        .transpose()?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let Value::Table(t) = v else {
            return Err(cx.err(&format!("#{i}"), "rules", "entries must be tables"));
        };
        let rule = parse_rule(&cx, t, i)?;
        if ids.contains(&rule.id) {
            return Err(cx.err(&rule.id, "id", "duplicate rule id in this file"));
        }
        ids.push(rule.id.clone());
        out.rules.push(rule);
    }
    // Global allowlists: on this file's rules (all, or the targeted ones), and on the
    // built-in rules when the file extends the default.
    for (targets, pats) in global {
        if let Some(t) = &targets {
            let known = |t: &String| {
                ids.contains(&rule_id(t)) || (extends_default && super::rules::is_builtin(t))
            };
            if let Some(bad) = t.iter().find(|t| !known(t)) {
                return Err(cx.err(
                    "(global allowlist)",
                    "allowlist",
                    format!("targetRules names `{bad}`, which is neither a rule of this file nor a built-in rule extended by useDefault"),
                ));
            }
        }
        for r in &mut out.rules {
            let gid = r.kind.clone();
            if targets.as_ref().is_none_or(|t| t.contains(&gid)) {
                r.allowlist.extend(pats.iter().cloned());
            }
        }
        if extends_default {
            let builtin_targets = targets.map(|t| {
                t.into_iter()
                    .filter(|x| super::rules::is_builtin(x))
                    .collect::<Vec<_>>()
            });
            if builtin_targets.as_ref().is_none_or(|t| !t.is_empty()) {
                out.builtin_allow.push((builtin_targets, pats));
            }
        }
    }
    for r in &out.rules {
        check_rule(r, origin)?;
    }
    Ok(out)
}

fn parse_rule(cx: &Ctx, t: &Table, i: usize) -> Result<Rule, RuleError> {
    let raw_id = cx
        .string(&format!("#{i}"), t, "id")?
        .ok_or_else(|| cx.err(&format!("#{i}"), "id", "missing"))?;
    let id = rule_id(&raw_id);
    cx.unknown(&id, t, RULE_KEYS)?;
    if t.contains_key("path") {
        return Err(cx.err(
            &id,
            "path",
            "rules on file paths have no meaning for bytes in flight; remove the rule or its path",
        ));
    }
    match t.get("skipReport") {
        None | Some(Value::Boolean(false)) => {}
        Some(_) => {
            return Err(cx.err(
                &id,
                "skipReport",
                "only false is supported (composite rules are not)",
            ))
        }
    }
    let regex = cx
        .string(&id, t, "regex")?
        .ok_or_else(|| cx.err(&id, "regex", "missing"))?;
    let keywords_given = cx.strings(&id, t, "keywords")?;
    if keywords_given.is_empty() {
        return Err(cx.err(
            &id,
            "keywords",
            "gitleaks rules without keywords cannot be prefiltered; add keywords",
        ));
    }
    let mut keywords = Vec::new();
    for k in &keywords_given {
        for v in [k.clone(), k.to_ascii_lowercase(), k.to_ascii_uppercase()] {
            if !keywords.contains(&v) {
                keywords.push(v);
            }
        }
    }
    let secret_group = match t.get("secretGroup") {
        None => None,
        Some(Value::Integer(g)) if *g >= 0 => Some(*g as usize),
        Some(v) => {
            return Err(cx.err(
                &id,
                "secretGroup",
                format!("must be a group number, not {v}"),
            ))
        }
    };
    let entropy = match t.get("entropy") {
        None => None,
        Some(Value::Float(f)) => Some(*f),
        Some(Value::Integer(n)) => Some(*n as f64),
        Some(v) => {
            return Err(cx.err(
                &id,
                "entropy",
                format!("must be a number, not {}", v.type_str()),
            ))
        }
    };
    let mut allowlist = Vec::new();
    for a in cx
        .tables(&id, t, "allowlist")?
        .into_iter()
        .chain(cx.tables(&id, t, "allowlists")?)
    {
        allowlist.extend(cx.allowlist(&id, a, None)?);
    }
    let examples = cx.strings(&id, t, "examples")?;
    let counterexamples = cx.strings(&id, t, "counterexamples")?;
    Ok(Rule {
        id,
        name: cx
            .string(&raw_id, t, "description")?
            .unwrap_or_else(|| raw_id.clone()),
        provider: "custom".into(),
        kind: raw_id,
        keywords,
        // Go RE2 syntax is (almost) Rust regex syntax.
        pattern: regex,
        secret_group,
        min_len: None,
        max_len: None,
        validator: None,
        entropy,
        severity: Severity::High,
        tags: cx.strings("", t, "tags")?,
        issuers: Vec::new(),
        revoke: default_revoke(),
        safe_prefix: Some(0),
        show_last4: false,
        examples,
        counterexamples,
        allowlist,
        context: None,
    })
}
