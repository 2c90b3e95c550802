//! `sensor rules check`: validates rule files the way the engine will use them — schema,
//! regex compilation, secret groups — and proves every rule against its own examples
//! (must be found, validated when the rule has a validator) and counterexamples (must not
//! be found as that rule). Problems name the file and the rule.

use super::engine::{Engine, ScanOptions};
use super::rules::Rule;
use super::validators::Validation;
use crate::redact::Fingerprinter;

/// One problem found by the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Rule id.
    pub rule: String,
    /// What is wrong (never includes the example's value).
    pub message: String,
}

/// Checks rules against their examples; an empty result means all good.
pub fn check_examples(rules: &[Rule]) -> Vec<Problem> {
    let engine = match Engine::new(rules.to_vec(), Fingerprinter::random())
        .and_then(|e| e.prepare().map(|()| e))
    {
        Ok(e) => e,
        Err(e) => {
            return vec![Problem {
                rule: "*".into(),
                message: e.to_string(),
            }]
        }
    };
    let mut problems = Vec::new();
    let opts = ScanOptions {
        decode: false,
        candidates: false,
    };
    for r in rules {
        if r.examples.is_empty() && !r.id.starts_with("gitleaks-") {
            problems.push(Problem {
                rule: r.id.clone(),
                message: "has no examples".into(),
            });
        }
        for (i, ex) in r.examples.iter().enumerate() {
            let found = engine.scan(ex.as_bytes(), 0, opts);
            match found.iter().find(|f| f.detector == r.id) {
                None => problems.push(Problem {
                    rule: r.id.clone(),
                    message: format!("example #{i} is not found"),
                }),
                Some(f) if r.validator.is_some() && f.validation != Validation::Valid => problems
                    .push(Problem {
                        rule: r.id.clone(),
                        message: format!("example #{i} does not validate"),
                    }),
                _ => {}
            }
        }
        for (i, ex) in r.counterexamples.iter().enumerate() {
            if engine
                .scan(ex.as_bytes(), 0, opts)
                .iter()
                .any(|f| f.detector == r.id)
            {
                problems.push(Problem {
                    rule: r.id.clone(),
                    message: format!("counterexample #{i} is reported"),
                });
            }
        }
    }
    problems
}
