//! Rule files from other tools, loaded at run time next to the built-in rules: gitleaks
//! TOML configs (see [`crate::detect::rules::parse_gitleaks`]) and Kingfisher-style YAML
//! ([`kingfisher`]), as single files or directories of them (`--rules DIR`). The format
//! is told by the extension (`.toml`) and, for YAML, by the content: the sensor's own
//! files carry `version: 1`, Kingfisher's do not.

pub mod kingfisher;

use std::path::Path;

use super::rules::{parse_gitleaks, parse_yaml, Rule, RuleError};

/// Rules loaded from a path, and those that could not be honoured.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Detectors, in file order.
    pub rules: Vec<Rule>,
    /// Rules rejected with the reason (the file's other rules still load).
    pub rejected: Vec<RuleError>,
}

/// Loads a rule file or every rule file (`.yaml`, `.yml`, `.toml`) under a directory, in
/// name order. A file that cannot be read or parsed is an error; a single imported rule
/// that cannot be honoured is reported in [`Loaded::rejected`].
pub fn load_path(path: &Path) -> Result<Loaded, RuleError> {
    let mut out = Loaded::default();
    let meta = std::fs::metadata(path).map_err(|source| RuleError::Read {
        path: path.display().to_string(),
        source,
    })?;
    if meta.is_dir() {
        let mut files = Vec::new();
        collect(path, &mut files)?;
        if files.is_empty() {
            return Err(RuleError::Parse {
                origin: path.display().to_string(),
                message: "no rule files (.yaml, .yml, .toml) in this directory".into(),
            });
        }
        for f in files {
            let l = load_file(&f)?;
            out.rules.extend(l.rules);
            out.rejected.extend(l.rejected);
        }
        return Ok(out);
    }
    load_file(path)
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), RuleError> {
    let rd = std::fs::read_dir(dir).map_err(|source| RuleError::Read {
        path: dir.display().to_string(),
        source,
    })?;
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "toml"))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Loads one file: the sensor's YAML, Kingfisher YAML, or a gitleaks TOML config.
pub fn load_file(path: &Path) -> Result<Loaded, RuleError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RuleError::Read {
        path: origin.clone(),
        source,
    })?;
    if path.extension().is_some_and(|e| e == "toml") {
        return Ok(Loaded {
            rules: parse_gitleaks(&text, &origin)?,
            rejected: Vec::new(),
        });
    }
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| RuleError::Parse {
        origin: origin.clone(),
        message: e.to_string(),
    })?;
    if doc.get("version").is_none() && kingfisher::looks_like(&doc) {
        let (rules, rejected) = kingfisher::parse(&text, &origin)?;
        return Ok(Loaded { rules, rejected });
    }
    Ok(Loaded {
        rules: parse_yaml(&text, &origin)?,
        rejected: Vec::new(),
    })
}
