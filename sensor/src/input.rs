//! Bounded reading of configuration and rule files. A parser given `/dev/zero` grows
//! without end, and one given 100,000 nested `[` or `{a: ` spends seconds to minutes
//! before its own recursion limit fires; so files are read up to a size cap and their
//! nesting is measured in one pass over the text before any parser sees it.

use std::io::Read;
use std::path::Path;

/// Largest configuration or rule file accepted.
pub const MAX_BYTES: u64 = 16 << 20;
/// Deepest nesting of collections accepted (real files need under 10).
pub const MAX_DEPTH: usize = 64;

/// Why an input file was refused.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// It could not be opened or read.
    #[error("{0}")]
    Io(std::io::Error),
    /// It is larger than [`MAX_BYTES`].
    #[error("larger than {} MiB; refused", MAX_BYTES >> 20)]
    TooLarge,
    /// It is not UTF-8 text.
    #[error("not UTF-8 text (at byte {0})")]
    NotText(usize),
    /// Collections nest deeper than [`MAX_DEPTH`].
    #[error(
        "line {line}: collections nest deeper than {} levels; refused",
        MAX_DEPTH
    )]
    TooDeep {
        /// 1-based line where the limit was passed.
        line: usize,
    },
}

/// Reads a text file of at most [`MAX_BYTES`] (stopping right after the limit: a device
/// or pipe that never ends is refused as fast as a large file) and checks its nesting.
pub fn read_text(path: &Path) -> Result<String, InputError> {
    let f = std::fs::File::open(path).map_err(InputError::Io)?;
    let mut buf = Vec::new();
    f.take(MAX_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(InputError::Io)?;
    if buf.len() as u64 > MAX_BYTES {
        return Err(InputError::TooLarge);
    }
    let text =
        String::from_utf8(buf).map_err(|e| InputError::NotText(e.utf8_error().valid_up_to()))?;
    check_depth(&text)?;
    Ok(text)
}

/// Measures the nesting of YAML or TOML text: flow collections (`[`, `{`) outside quoted
/// strings and comments, plus, for YAML block style, indentation and `- ` items opened on
/// one line. Over-approximates (a bracket inside a plain scalar counts), which only
/// matters for text that is far past any sane depth anyway.
pub fn check_depth(text: &str) -> Result<(), InputError> {
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let too_deep = || Err(InputError::TooDeep { line: n + 1 });
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        let mut rest = &line[indent..];
        let mut dashes = 0;
        while let Some(r) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("? ")) {
            dashes += 1;
            rest = r.trim_start_matches(' ');
        }
        // Block nesting: two columns of indentation per level is the narrowest YAML allows
        // in practice; each `- ` on the line opens one more.
        if indent / 2 + dashes > 2 * MAX_DEPTH {
            return too_deep();
        }
        let mut quote: Option<char> = None;
        let mut escaped = false;
        for c in rest.chars() {
            match quote {
                Some(q) => {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' && q == '"' {
                        escaped = true;
                    } else if c == q {
                        quote = None;
                    }
                }
                None => match c {
                    '"' | '\'' => quote = Some(c),
                    '#' => break,
                    '[' | '{' => {
                        flow += 1;
                        if flow > MAX_DEPTH {
                            return too_deep();
                        }
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_and_block_nesting_are_refused_fast() {
        for text in [
            "[".repeat(100_000),
            "{a: ".repeat(100_000),
            format!("{}x\n", "- ".repeat(100_000)),
            format!("a = {}", "[".repeat(100_000)),
            (0..2000)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect::<String>(),
        ] {
            let t = std::time::Instant::now();
            assert!(
                matches!(check_depth(&text), Err(InputError::TooDeep { .. })),
                "{}",
                &text[..40]
            );
            assert!(t.elapsed() < std::time::Duration::from_secs(1));
        }
    }

    #[test]
    fn ordinary_files_pass_and_brackets_in_strings_or_comments_do_not_count() {
        check_depth(crate::config::DEFAULT_CONFIG).unwrap();
        for (_, rules) in crate::detect::rules::BUILTIN_RULES {
            check_depth(rules).unwrap();
        }
        let s = format!(
            "a: \"{}\"\nb: '{}' # {}\n",
            "[".repeat(500),
            "{".repeat(500),
            "[".repeat(500)
        );
        check_depth(&s).unwrap();
    }

    #[test]
    fn devices_and_large_files_are_refused_at_the_limit() {
        let t = std::time::Instant::now();
        assert!(matches!(
            read_text(Path::new("/dev/zero")),
            Err(InputError::TooLarge)
        ));
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
        assert!(matches!(
            read_text(Path::new("/nonexistent/x.yaml")),
            Err(InputError::Io(_))
        ));
    }
}
