//! A rule's pattern as the engine runs it. The engine searches each rule only in regions
//! around its keywords, and needs three facts about a pattern for that: how long a match
//! can be (the region after a keyword), whether every match starts with one of the rule's
//! keywords (then a region starts at the keyword instead of [`BACK`] bytes before it), and
//! whether it can match the empty string (such a rule reports nothing useful, and is
//! rejected). Patterns are parsed with the settings of `regex::bytes` and run by the
//! `regex-automata` meta engine, which searches a sub-range of the bytes while its
//! look-around (`\b`, `^`, `$`) sees the bytes around it: a region boundary is never
//! mistaken for the end of the data.
//!
//! Word boundaries are ASCII (`\b` as in Go's RE2, which gitleaks rules are written for):
//! token alphabets are ASCII, and a Unicode `\b` makes the DFA give up on any non-ASCII
//! byte and fall back to the much slower PikeVM — which a watched process could force by
//! sprinkling such bytes into its output.

use regex_automata::{dfa, meta, nfa::thompson, Anchored, Input};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Capture, Hir, HirKind, Look, Repetition};

/// Bytes searched before a keyword for patterns whose keyword is not at their start.
pub const BACK: usize = 128;
/// Longest match searched for after a keyword when the pattern (and the rule) set no bound.
pub const DEFAULT_MAX: usize = 1024;

/// What the engine needs to know about one pattern (the automaton is built later).
pub struct Analysis {
    /// The pattern with ASCII word boundaries.
    pub hir: Hir,
    /// Every match starts with one of the rule's keywords.
    pub prefix: bool,
    /// Bytes a region extends after a keyword occurrence.
    pub span: usize,
    /// The shortest match, in bytes.
    pub min_len: usize,
    /// Explicit capture groups.
    pub groups: usize,
}

/// Parses `pattern` as `regex::bytes::Regex` would (Unicode classes, no UTF-8 requirement,
/// the same nesting limit).
pub fn parse(pattern: &str) -> Result<Hir, String> {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())
}

/// Parses and analyses a rule's pattern. `max_secret` is the rule's `max_len`.
pub fn analyse(
    pattern: &str,
    keywords: &[String],
    max_secret: Option<usize>,
) -> Result<Analysis, String> {
    let hir = ascii_words(&parse(pattern)?);
    let props = hir.properties();
    let min_len = props.minimum_len().unwrap_or(0);
    let groups = props.explicit_captures_len();
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    let prefix = seq.literals().is_some_and(|lits| {
        !lits.is_empty()
            && lits.iter().all(|l| {
                keywords
                    .iter()
                    .any(|k| l.as_bytes().starts_with(k.as_bytes()))
            })
    });
    // A bounded pattern needs no more than its longest match; an unbounded one gets the
    // rule's own bound (plus context), else the default (a longer match is cut there).
    let ceiling = max_secret.unwrap_or(DEFAULT_MAX) + BACK;
    let span = props
        .maximum_len()
        .map_or(ceiling, |m| m.min(ceiling))
        .max(1);
    Ok(Analysis {
        hir,
        prefix,
        span,
        min_len,
        groups,
    })
}

/// Builds the automaton (bytes semantics, as `regex::bytes`).
pub fn build(hir: &Hir) -> Result<meta::Regex, String> {
    meta::Builder::new()
        .configure(meta::Config::new().utf8_empty(false))
        .build_from_hir(hir)
        .map_err(|e| e.to_string())
}

/// A built DFA.
pub type Dfa = dfa::dense::DFA<Vec<u32>>;

/// How an anchored attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The leftmost-first match from the start ends here.
    Match(usize),
    /// No match starts there.
    Miss,
    /// The byte budget ran out before the DFA decided.
    OverBudget,
}

/// Runs `dfa` anchored at `at` over `data[at..to]` (its look-around sees the bytes
/// around that range), examining at most `budget` bytes. Returns how it ended and the
/// bytes examined. (The search loop of `regex-automata`, which does not say how far it
/// read; a prefix rule's attempts are budgeted by that.)
pub fn attempt(dfa: &Dfa, data: &[u8], at: usize, to: usize, budget: usize) -> (Attempt, usize) {
    use dfa::Automaton;
    let input = Input::new(data).range(at..to).anchored(Anchored::Yes);
    let Ok(mut sid) = dfa.start_state_forward(&input) else {
        return (Attempt::OverBudget, 0);
    };
    let mut found = None;
    let end = to.min(at.saturating_add(budget));
    let mut i = at;
    while i < end {
        sid = dfa.next_state(sid, data[i]);
        if dfa.is_special_state(sid) {
            if dfa.is_match_state(sid) {
                // Matches are reported one byte late (after the look-ahead).
                found = Some(i);
            } else if dfa.is_dead_state(sid) {
                return (found.map_or(Attempt::Miss, Attempt::Match), i - at);
            } else {
                return (Attempt::OverBudget, i - at);
            }
        }
        i += 1;
    }
    if end < to {
        return (Attempt::OverBudget, end - at);
    }
    // The byte after the range (or the end of the data) settles a trailing look-ahead.
    sid = match data.get(to) {
        Some(&b) => dfa.next_state(sid, b),
        None => dfa.next_eoi_state(sid),
    };
    if dfa.is_match_state(sid) {
        found = Some(to);
    }
    (found.map_or(Attempt::Miss, Attempt::Match), to - at)
}

/// Largest anchored DFA built for a prefix rule; a pattern whose DFA would be larger is
/// searched with the meta engine instead.
const DFA_LIMIT: usize = 4 << 20;

/// A fully built DFA for anchored searches from a keyword occurrence: a prefix rule tries
/// every occurrence of its keywords, and the meta engine's set-up per search (cache pool,
/// strategy) cost more than the search itself on keyword-dense input. `None` when the
/// automaton would exceed [`DFA_LIMIT`].
pub fn build_anchored(hir: &Hir) -> Option<Dfa> {
    let nfa = thompson::Compiler::new()
        .configure(
            thompson::Config::new()
                .utf8(false)
                .which_captures(thompson::WhichCaptures::None),
        )
        .build_from_hir(hir)
        .ok()?;
    dfa::dense::Builder::new()
        .configure(
            dfa::dense::Config::new()
                .start_kind(dfa::StartKind::Anchored)
                .accelerate(false)
                .dfa_size_limit(Some(DFA_LIMIT))
                .determinize_size_limit(Some(4 * DFA_LIMIT)),
        )
        .build_from_nfa(&nfa)
        .ok()
}

/// Most leading positions [`viable`] describes.
const VIABLE_MAX: usize = 16;

/// The bytes that can occur at each of the first positions of an anchored match of `dfa`
/// (at most [`VIABLE_MAX`] positions, none at or past `min_len`, the shortest match):
/// byte `b` is in set `i` when, from some start state (whatever byte precedes the
/// match), some `i` bytes lead to a state that `b` does not kill. A byte outside its set
/// kills every path before any match can have ended, so an attempt there would miss: the
/// engine rejects most keyword occurrences with a few lookups in these small tables
/// instead of walking the (much larger, cache-missing) DFA. Empty when the DFA's start
/// states cannot all be computed.
pub fn viable(dfa: &Dfa, min_len: usize) -> Vec<[u64; 4]> {
    use dfa::Automaton;
    use regex_automata::util::start;
    let mut states: Vec<regex_automata::util::primitives::StateID> = Vec::new();
    for lb in std::iter::once(None).chain((0..=255u8).map(Some)) {
        let cfg = start::Config::new().anchored(Anchored::Yes).look_behind(lb);
        let Ok(sid) = dfa.start_state(&cfg) else {
            return Vec::new();
        };
        if !states.contains(&sid) {
            states.push(sid);
        }
    }
    let mut sets = Vec::new();
    for depth in 0..min_len.min(VIABLE_MAX) {
        if depth > 0 && states.iter().any(|&s| dfa.is_match_state(s)) {
            break;
        }
        let mut set = [0u64; 4];
        let mut next = Vec::new();
        for &s in &states {
            for b in 0..=255u8 {
                let t = dfa.next_state(s, b);
                if dfa.is_dead_state(t) {
                    continue;
                }
                set[(b >> 6) as usize] |= 1 << (b & 63);
                if !next.contains(&t) {
                    next.push(t);
                }
            }
        }
        sets.push(set);
        states = next;
    }
    // Trailing positions that admit every byte reject nothing.
    while sets.last().is_some_and(|s| *s == [u64::MAX; 4]) {
        sets.pop();
    }
    sets
}

/// True when a byte of `data` from `at` on lies outside its position's set of `viable`:
/// no match starts at `at`.
#[inline]
pub fn rejects(viable: &[[u64; 4]], data: &[u8], at: usize) -> bool {
    let tail = data.get(at..).unwrap_or_default();
    viable
        .iter()
        .zip(tail)
        .any(|(set, &b)| set[(b >> 6) as usize] & (1 << (b & 63)) == 0)
}

/// `hir` with every Unicode word-boundary assertion replaced by its ASCII form.
pub fn ascii_words(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Look(l) => Hir::look(match l {
            Look::WordUnicode => Look::WordAscii,
            Look::WordUnicodeNegate => Look::WordAsciiNegate,
            Look::WordStartUnicode => Look::WordStartAscii,
            Look::WordEndUnicode => Look::WordEndAscii,
            Look::WordStartHalfUnicode => Look::WordStartHalfAscii,
            Look::WordEndHalfUnicode => Look::WordEndHalfAscii,
            other => *other,
        }),
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(ascii_words(&r.sub)),
        }),
        HirKind::Capture(c) => Hir::capture(Capture {
            index: c.index,
            name: c.name.clone(),
            sub: Box::new(ascii_words(&c.sub)),
        }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(ascii_words).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(ascii_words).collect()),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) => hir.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kws(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prefix_span_and_min_len() {
        let a = analyse(r"\bghp_[A-Za-z0-9]{36}\b", &kws(&["ghp_"]), None).unwrap();
        assert!(a.prefix);
        assert_eq!(a.span, 40);
        assert_eq!(a.min_len, 40);
        let a = analyse(r"(?:AKIA|ASIA)[A-Z2-7]{16}", &kws(&["AKIA", "ASIA"]), None).unwrap();
        assert!(a.prefix);
        let a = analyse(r"(?:AKIA|ASIA)[A-Z2-7]{16}", &kws(&["AKIA"]), None).unwrap();
        assert!(!a.prefix, "ASIA matches do not start with a keyword");
        let a = analyse(r"[0-9]{8,10}:AA[A-Za-z0-9_-]{33}", &kws(&[":AA"]), None).unwrap();
        assert!(!a.prefix);
        let a = analyse(r"eyJ[A-Za-z0-9]{8,}", &kws(&["eyJ"]), None).unwrap();
        assert_eq!(a.span, DEFAULT_MAX + BACK);
        let a = analyse(r"eyJ[A-Za-z0-9]{8,}", &kws(&["eyJ"]), Some(100)).unwrap();
        assert_eq!(a.span, 100 + BACK);
        assert_eq!(analyse("a*", &kws(&["aa"]), None).unwrap().min_len, 0);
        assert_eq!(analyse(r"\b", &kws(&["aa"]), None).unwrap().min_len, 0);
    }

    #[test]
    fn rejected_occurrences_are_misses() {
        // Wherever the viable bytes reject a start, the anchored attempt misses; and they
        // do reject the near misses of a keyword-dense write.
        let cases: [(&str, &[&str]); 4] = [
            (r"\bghp_[A-Za-z0-9]{36}\b", &["ghp_"]),
            (
                r"\bxox[ab]-[0-9]{10,13}-[A-Za-z0-9]{24}",
                &["xoxa-", "xoxb-"],
            ),
            (r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}", &["eyJ"]),
            (r"(?i)glpat-(?P<t>[a-z0-9_-]{20})", &["glpat-"]),
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"ghp_xoxb-eyJglpat-Aa0.9_- =!\xc3";
        let mut data = Vec::new();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push(alphabet[(x % alphabet.len() as u64) as usize]);
        }
        for (p, k) in cases {
            let a = analyse(p, &kws(k), None).unwrap();
            let dfa = build_anchored(&a.hir).unwrap();
            let v = viable(&dfa, a.min_len);
            assert!(!v.is_empty(), "{p}");
            let mut rejected = 0;
            for at in 0..data.len() {
                if rejects(&v, &data, at) {
                    rejected += 1;
                    let to = (at + a.span).min(data.len());
                    assert_eq!(
                        attempt(&dfa, &data, at, to, usize::MAX).0,
                        Attempt::Miss,
                        "{p} at {at}"
                    );
                }
            }
            assert!(rejected > data.len() / 2, "{p}: {rejected} rejected");
        }
    }

    #[test]
    fn word_boundaries_are_ascii() {
        let a = analyse(r"\bghp_[a-z]{4}\b", &kws(&["ghp_"]), None).unwrap();
        let re = build(&a.hir).unwrap();
        // `é` is a word character for Unicode `\b`, not for ASCII `\b`.
        assert!(re.is_match("é ghp_abcdé".as_bytes()));
        assert!(re.is_match("éghp_abcd".as_bytes()));
        assert!(!re.is_match("xghp_abcd".as_bytes()));
    }
}
