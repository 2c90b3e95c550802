//! `sensor rules check`: validates rule files the way the engine will use them — schema,
//! regex compilation, secret groups — and proves every rule against its own examples
//! (must be found by the rule, validated when the rule has a validator, and not also
//! reported by another rule at a higher severity) and counterexamples (must be silent:
//! no rule reports them). Problems name the file and the rule.

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
        // Imported formats may come without examples; the sensor's own rules may not.
        if r.examples.is_empty()
            && !r.id.starts_with("gitleaks-")
            && !r.id.starts_with("kingfisher-")
        {
            problems.push(Problem {
                rule: r.id.clone(),
                message: "has no examples".into(),
            });
        }
        for (i, ex) in r.examples.iter().enumerate() {
            let found = engine.scan(ex.as_bytes(), 0, opts);
            let Some(own) = found.iter().find(|f| f.detector == r.id) else {
                let by: Vec<&str> = found.iter().map(|f| f.detector.as_str()).collect();
                problems.push(Problem {
                    rule: r.id.clone(),
                    message: if by.is_empty() {
                        format!("example #{i} is not found")
                    } else {
                        format!(
                            "example #{i} is not found (reported as `{}`)",
                            by.join("`, `")
                        )
                    },
                });
                continue;
            };
            if r.validator.is_some() && own.validation != Validation::Valid {
                problems.push(Problem {
                    rule: r.id.clone(),
                    message: format!("example #{i} does not validate"),
                });
            }
            // Another rule reporting the same secret (or part of it) more severely would
            // make this rule's finding noise.
            let overlaps = |f: &super::Finding| {
                f.offset < own.offset + own.length as u64 && own.offset < f.offset + f.length as u64
            };
            for f in &found {
                if f.detector != r.id && f.severity > own.severity && overlaps(f) {
                    problems.push(Problem {
                        rule: r.id.clone(),
                        message: format!(
                            "example #{i} is also reported by `{}` at a higher severity",
                            f.detector
                        ),
                    });
                }
            }
        }
        for (i, ex) in r.counterexamples.iter().enumerate() {
            // Silent: not this rule, and no other rule either.
            let found = engine.scan(ex.as_bytes(), 0, opts);
            if !found.is_empty() {
                let by: Vec<&str> = found.iter().map(|f| f.detector.as_str()).collect();
                problems.push(Problem {
                    rule: r.id.clone(),
                    message: format!("counterexample #{i} is reported (as `{}`)", by.join("`, `")),
                });
            }
        }
    }
    problems
}
