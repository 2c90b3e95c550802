//! Rule files from other tools, loaded at run time next to the built-in rules: gitleaks
//! TOML configs (see [`super::gitleaks`]) and Kingfisher-style YAML ([`kingfisher`]), as
//! single files or directories of them (`--rules DIR`). The format is told by the
//! extension (`.toml`) and, for YAML, by the content: the sensor's own files carry
//! `version: 1`, Kingfisher's do not. Duplicate ids and `[extend]` are applied over the
//! whole set by [`super::rules::load_set`].

pub mod kingfisher;

use std::path::{Path, PathBuf};

use super::gitleaks::Import;
use super::rules::{parse_yaml, RuleError};

/// One rule file as loaded.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Its rules (and, for gitleaks, `[extend]` and global allowlists).
    pub import: Import,
    /// Imported rules that cannot be honoured, with the reason (the file's other rules
    /// still load).
    pub rejected: Vec<RuleError>,
}

/// The rule files a path names: itself, or every `.yaml`, `.yml` and `.toml` file under a
/// directory, in name order (an error if there is none).
pub fn files(path: &Path) -> Result<Vec<PathBuf>, RuleError> {
    let read_err = |p: &Path, e: std::io::Error| RuleError::Read {
        path: p.display().to_string(),
        error: crate::input::InputError::Io(e),
    };
    let meta = std::fs::metadata(path).map_err(|e| read_err(path, e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(path)
        .follow_links(true)
        .sort_by_file_name()
    {
        let e = e.map_err(|e| {
            let p = e.path().unwrap_or(path).to_path_buf();
            read_err(&p, e.into())
        })?;
        let rule_file = e
            .path()
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| matches!(x, "yaml" | "yml" | "toml"));
        if e.file_type().is_file() && rule_file {
            out.push(e.into_path());
        }
    }
    if out.is_empty() {
        return Err(RuleError::Parse {
            origin: path.display().to_string(),
            message: "no rule files (.yaml, .yml, .toml) in this directory".into(),
        });
    }
    Ok(out)
}

/// Loads one file (bounded like every input file, see [`crate::input`]): the sensor's
/// YAML, Kingfisher YAML, or a gitleaks TOML config.
pub fn load_file(path: &Path) -> Result<Loaded, RuleError> {
    let origin = path.display().to_string();
    let text = crate::input::read_text(path).map_err(|error| RuleError::Read {
        path: origin.clone(),
        error,
    })?;
    if path.extension().is_some_and(|e| e == "toml") {
        return Ok(Loaded {
            import: super::gitleaks::parse(&text, &origin)?,
            rejected: Vec::new(),
        });
    }
    let doc: yaml_serde::Value = yaml_serde::from_str(&text).map_err(|e| RuleError::Parse {
        origin: origin.clone(),
        message: e.to_string(),
    })?;
    let rules_only = |rules| Import {
        rules,
        ..Default::default()
    };
    if doc.get("version").is_none() && kingfisher::looks_like(&doc) {
        let (rules, rejected) = kingfisher::parse(&text, &origin)?;
        return Ok(Loaded {
            import: rules_only(rules),
            rejected,
        });
    }
    Ok(Loaded {
        import: rules_only(parse_yaml(&text, &origin)?),
        rejected: Vec::new(),
    })
}
