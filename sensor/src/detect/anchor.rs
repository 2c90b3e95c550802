//! Which keywords the fingerprint tables must find, and which the base64 runs can. The
//! prefilter's Teddy tables hold 16 buckets; a few hundred keyword windows crowd them
//! until ordinary text passes every few bytes and verification dominates the scan. But
//! most prefixed tokens (`gsk_…`, `xoxb-…`, `sk_live_…`, `ghp_…`) are made only of
//! base64-alphabet characters and are at least [`MIN_ENCODED`] long, so every match lies
//! inside a run the same pass already marks; and a pattern that starts with `\b` before
//! a word character can only start a match where a run starts or right after one of the
//! run's non-word characters (`+ / = -`). Those positions are few (one per identifier or
//! per dozens of base64 characters), and a keyword is looked up there by its first two
//! bytes. A keyword is found this way only when every rule listing it qualifies; the
//! rest stay in the tables, which then have room to keep ordinary text out.

use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Class, Hir, HirKind, Look};
use rustc_hash::FxHashMap;

use super::prefilter::{is_b64, MIN_ENCODED};
use super::rules::Rule;

/// True when every byte a match of `hir` can contain is in the base64 alphabet.
fn b64_only(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => true,
        HirKind::Literal(l) => l.0.iter().all(|&b| is_b64(b)),
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .all(|r| (r.start() as u32..=r.end() as u32).all(|c| c < 128 && is_b64(c as u8))),
        HirKind::Class(Class::Bytes(c)) => {
            c.ranges().iter().all(|r| (r.start()..=r.end()).all(is_b64))
        }
        HirKind::Repetition(r) => b64_only(&r.sub),
        HirKind::Capture(c) => b64_only(&c.sub),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => subs.iter().all(b64_only),
    }
}

/// Whether `rule`'s keywords can be found through base64 runs: every match starts, after
/// a leading `\b`, with one of its keywords (each beginning with a word character), and
/// is at least [`MIN_ENCODED`] bytes of the base64 alphabet.
pub fn run_anchored(rule: &Rule) -> bool {
    if rule.context.is_some() || rule.keywords.is_empty() {
        return false;
    }
    let Ok(hir) = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(&rule.pattern)
    else {
        return false;
    };
    let starts_at_boundary = match hir.kind() {
        HirKind::Concat(subs) => matches!(
            subs.first().map(|h| h.kind()),
            Some(HirKind::Look(Look::WordUnicode | Look::WordAscii))
        ),
        _ => false,
    };
    // A match longer than the engine's region after its keyword (see
    // [`super::pattern::analyse`]) is cut at the region's end, which then depends on
    // every occurrence of the keyword, mid-run ones included: such rules stay in the
    // tables, which find them all.
    let ceiling = rule.max_len.unwrap_or(super::pattern::DEFAULT_MAX) + super::pattern::BACK;
    if !starts_at_boundary
        || hir.properties().maximum_len().is_none_or(|m| m > ceiling)
        || hir.properties().minimum_len().unwrap_or(0) < MIN_ENCODED
        || !b64_only(&hir)
        || !rule
            .keywords
            .iter()
            .all(|k| k.as_bytes()[0].is_ascii_alphanumeric() || k.as_bytes()[0] == b'_')
    {
        return false;
    }
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    seq.literals().is_some_and(|lits| {
        !lits.is_empty()
            && lits.iter().all(|l| {
                rule.keywords
                    .iter()
                    .any(|k| l.as_bytes().starts_with(k.as_bytes()))
            })
    })
}

/// Keywords found at the starts of the prefilter's runs.
#[derive(Default)]
pub struct RunKeywords {
    /// First two bytes → (keyword index, keyword).
    by_head: FxHashMap<[u8; 2], Vec<(usize, Vec<u8>)>>,
    /// The same first two bytes as a 65536-bit set, checked before the map.
    heads: Vec<u64>,
}

impl RunKeywords {
    /// Indexes `keywords` (engine keyword index, text; each at least 2 bytes).
    pub fn new<'a>(keywords: impl IntoIterator<Item = (usize, &'a str)>) -> RunKeywords {
        let mut by_head: FxHashMap<[u8; 2], Vec<(usize, Vec<u8>)>> = FxHashMap::default();
        for (i, k) in keywords {
            let b = k.as_bytes();
            by_head
                .entry([b[0], b[1]])
                .or_default()
                .push((i, b.to_vec()));
        }
        let mut heads = vec![0u64; 1 << 10];
        for h in by_head.keys() {
            let i = u16::from_le_bytes(*h) as usize;
            heads[i >> 6] |= 1 << (i & 63);
        }
        RunKeywords { by_head, heads }
    }

    /// True when no keyword is found this way.
    pub fn is_empty(&self) -> bool {
        self.by_head.is_empty()
    }

    /// Appends (keyword index, start) of every keyword at a position of `runs` where a
    /// `\b`-led match may start: the run's start, or after a `+`, `/`, `=` or `-` in it.
    pub fn find(&self, data: &[u8], runs: &[(usize, usize)], out: &mut Vec<(usize, usize)>) {
        if self.is_empty() {
            return;
        }
        let at = |p: usize, end: usize, out: &mut Vec<(usize, usize)>| {
            if end - p < 2 {
                return;
            }
            let h = u16::from_le_bytes([data[p], data[p + 1]]) as usize;
            if self.heads[h >> 6] & (1 << (h & 63)) == 0 {
                return;
            }
            if let Some(ks) = self.by_head.get(&[data[p], data[p + 1]]) {
                for (i, k) in ks {
                    if data[p..end].starts_with(k) {
                        out.push((*i, p));
                    }
                }
            }
        };
        for &(s, e) in runs {
            at(s, e, out);
            let run = &data[s..e - 1];
            for i in
                memchr::memchr3_iter(b'+', b'/', b'=', run).chain(memchr::memchr_iter(b'-', run))
            {
                at(s + i + 1, e, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, kw: &[&str]) -> Rule {
        let y = format!(
            "version: 1\nrules:\n- {{id: t, name: n, provider: p, kind: k, keywords: {kw:?}, pattern: '{pattern}', severity: high}}\n"
        );
        super::super::rules::parse_yaml(&y, "t.yaml")
            .unwrap()
            .remove(0)
    }

    #[test]
    fn which_rules_are_run_anchored() {
        assert!(run_anchored(&rule(r"\bghp_[A-Za-z0-9]{36}\b", &["ghp_"])));
        assert!(run_anchored(&rule(
            r"\bxox[ab]-[0-9]{10,13}-[A-Za-z0-9]{24}",
            &["xoxa-", "xoxb-"]
        )));
        // Too short to lie in a marked run; a dot; no leading \b; a keyword not at the start.
        assert!(!run_anchored(&rule(r"\bAKIA[A-Z2-7]{16}\b", &["AKIA"])));
        assert!(!run_anchored(&rule(r"\bhvs\.[A-Za-z0-9]{90}", &["hvs."])));
        assert!(!run_anchored(&rule(r"ghp_[A-Za-z0-9]{36}", &["ghp_"])));
        assert!(!run_anchored(&rule(
            r"\b[0-9]{8,10}:AA[A-Za-z0-9_-]{33}",
            &[":AA"]
        )));
        assert!(!run_anchored(&rule(r"\b[a-f0-9]{36}NRAL\b", &["NRAL"])));
    }

    #[test]
    fn finds_keywords_where_a_bounded_match_can_start() {
        let rk = RunKeywords::new([(0, "ghp_"), (1, "gsk_")]);
        let data = b"x=ghp_aaaaaaaaaaaaaaaaaaaaaaaa y xghp_bbbbbbbbbbbbbbbbbbbbbbbbbb gsk_cccccccccccccccccccccccc/ghp_dddddddddddddddddddd";
        let mut runs = Vec::new();
        let mut i = 0;
        while i < data.len() {
            if !is_b64(data[i]) {
                i += 1;
                continue;
            }
            let s = i;
            while i < data.len() && is_b64(data[i]) {
                i += 1;
            }
            if i - s >= MIN_ENCODED {
                runs.push((s, i));
            }
        }
        let mut out = Vec::new();
        rk.find(data, &runs, &mut out);
        // After `=`, at a run start, after `/`; not inside the word `xghp_`.
        assert_eq!(out, vec![(0, 2), (1, 65), (0, 94)]);
    }
}
