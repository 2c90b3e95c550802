//! The matcher: one SIMD pass (see [`super::prefilter`]) finds every rule keyword, encoded
//! run and escape; keywords select the few rules worth running, each rule's regex runs only
//! in the regions its keyword windows form — each byte searched at most once per rule
//! however densely keywords repeat, so the cost per byte is bounded whatever a watched
//! process writes — and validators and entropy floors reject near misses. Encoded
//! payloads (base64, URL-safe base64, percent-encoding, hex, JSON escapes) are decoded and
//! scanned again. Findings carry redacted forms and a keyed fingerprint, never the value.

use base64::Engine as _;
use regex::bytes::Regex;
use regex_automata::{meta, Anchored, Input};
use rustc_hash::FxHashSet as HashSet;

use super::anchor;
use super::context;
pub use super::finding::{Encoding, Finding, SecretValue};
use super::learned::LearnedSecrets;
use super::pattern::{self, BACK};
use super::prefilter::{is_b64, Marks, MIN_ENCODED};
use super::rules::{Rule, RuleError, Severity};
use super::validators::{entropy, Validation};
use crate::redact::Fingerprinter;

/// Keyword occurrences of a prefix rule are tried one by one while the bytes their
/// attempts examine stay within this many times the bytes they got past (plus two spans).
const DENSE: usize = 4;

struct Compiled {
    rule: Rule,
    /// The pattern with ASCII word boundaries (see [`pattern`]).
    hir: regex_syntax::hir::Hir,
    /// Built on the rule's first keyword hit: most scans see few rules' keywords, and
    /// building all ~90 automata was most of `sensor scan`'s start-up. Holds the build
    /// error if there was one.
    re: std::sync::OnceLock<Result<meta::Regex, String>>,
    /// For prefix rules: the anchored DFA tried at each keyword occurrence (`None` if
    /// too large; the meta engine is used then), and the bytes viable at the first
    /// positions of a match (see [`pattern::viable`]).
    anchored: std::sync::OnceLock<Option<(pattern::Dfa, Vec<[u64; 4]>)>>,
    /// The shortest match, in bytes.
    min_len: usize,
    allow: Vec<Regex>,
    /// Bytes a region reaches past a keyword occurrence (the longest match).
    span: usize,
    /// Bytes a region starts before a keyword occurrence: 0 when every match starts with
    /// a keyword, [`BACK`] otherwise.
    back: usize,
    /// The secret is a capture group, not the whole match.
    group: Option<usize>,
}

/// Options of a scan.
#[derive(Clone, Copy, Debug)]
pub struct ScanOptions {
    /// Decode encoded runs and scan them too.
    pub decode: bool,
    /// Report checksum failures as low-confidence candidates.
    pub candidates: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            decode: true,
            candidates: false,
        }
    }
}

/// A compiled rule set.
pub struct Engine {
    rules: Vec<Compiled>,
    pre: super::prefilter::Prefilter,
    /// The prefilter's keyword index → the engine's.
    table_kw: Vec<usize>,
    /// Keywords found through the prefilter's base64 runs instead of its tables.
    run_kw: anchor::RunKeywords,
    /// keyword index → rules that listed it.
    kw_rules: Vec<Vec<usize>>,
    /// Context-keyed rules (no keywords), anchored on values and their keys.
    ctx: context::Index,
    fp: Fingerprinter,
}

/// A match before redaction (internal; holds positions only).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Hit {
    rule: usize,
    start: usize,
    end: usize,
    validation: Validation,
}

/// Character kinds for [`looks_encoded`]: upper, lower, digit, separator (`_-+/`).
const fn kind_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = if b.is_ascii_uppercase() {
            1
        } else if b.is_ascii_lowercase() {
            2
        } else if b.is_ascii_digit() {
            4
        } else if matches!(b, b'_' | b'-' | b'+' | b'/') {
            8
        } else {
            0
        };
        c += 1;
    }
    t
}

static KIND: [u8; 256] = kind_table();

/// Base64 or hex of real data mixes character classes; identifiers and words do not. And
/// separators are rare in base64 (each of `+/` or `-_` is 1 in 64 characters of random
/// data, and base64 of ASCII text has fewer) but frequent in identifiers
/// (`EVP_PKEY_CTX_set1_rsa`) and paths (`x86_64-linux-gnu/bits`).
fn looks_encoded(run: &[u8]) -> bool {
    let (mut kinds, mut seps) = (0u8, 0usize);
    for &c in run {
        let k = KIND[c as usize];
        kinds |= k;
        seps += (k >> 3) as usize;
    }
    if seps * 8 > run.len() {
        return false;
    }
    // all three of upper, lower, digit — or hex (digits and one case)
    kinds & 7 == 7
        || (kinds & 4 != 0
            && kinds & 3 != 3
            && kinds & 3 != 0
            && run.len() >= 2 * MIN_ENCODED
            && run.iter().all(|c| c.is_ascii_hexdigit()))
}

/// Start of an encoded-looking base64 run at the very end of `data` (at most 1 KiB back),
/// which the next chunk of a stream may continue.
pub fn trailing_run_start(data: &[u8]) -> Option<usize> {
    let mut s = data.len();
    while s > 0 && is_b64(data[s - 1]) && data.len() - s < 1024 {
        s -= 1;
    }
    (data.len() - s >= MIN_ENCODED && looks_encoded(&data[s..])).then_some(s)
}

/// Segments (delimited by whitespace, quotes, `<>`) around the relevant escapes at
/// `positions` (found by the prefilter: `%XX` of a printable character in URLs, `\u`/`\/`
/// in JSON — `\n`, `%d`, `%02x` cannot stand for token characters), at least
/// [`MIN_ENCODED`] long.
fn escaped_segments(data: &[u8], esc: u8, positions: &[usize]) -> Vec<(usize, usize)> {
    let delim = |c: u8| {
        c.is_ascii_whitespace()
            || matches!(c, b'\'' | b'<' | b'>' | b'`')
            || (c == b'"' && esc != b'\\')
    };
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &pos in positions {
        if out.last().is_some_and(|&(_, e)| pos < e) {
            continue;
        }
        let mut s = pos;
        while s > 0 && !delim(data[s - 1]) && pos - s < 4096 {
            s -= 1;
        }
        let mut e = pos + 1;
        while e < data.len() && !delim(data[e]) && e - pos < 4096 {
            e += 1;
        }
        if e - s >= MIN_ENCODED {
            out.push((s, e));
        }
    }
    out
}

impl Engine {
    /// Compiles rules, already field-checked by [`super::rules::check_rule`] (patterns
    /// parsed there; their automata are built on first use, or by [`Engine::prepare`]).
    pub fn new(rules: Vec<Rule>, fp: Fingerprinter) -> Result<Engine, RuleError> {
        let ctx = context::Index::new(&rules);
        let mut compiled = Vec::new();
        let mut keywords: Vec<String> = Vec::new();
        let mut kw_of: Vec<Vec<usize>> = Vec::new();
        for (i, r) in rules.into_iter().enumerate() {
            let allow = r
                .allowlist
                .iter()
                .map(|a| Regex::new(a))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| RuleError::Invalid {
                    origin: "engine".into(),
                    id: r.id.clone(),
                    field: "allowlist",
                    problem: e.to_string(),
                })?;
            for k in &r.keywords {
                match keywords.iter().position(|x| x == k) {
                    Some(j) => kw_of[j].push(i),
                    None => {
                        keywords.push(k.clone());
                        kw_of.push(vec![i]);
                    }
                }
            }
            let a = pattern::analyse(&r.pattern, &r.keywords, r.max_len).map_err(|problem| {
                RuleError::Invalid {
                    origin: "engine".into(),
                    id: r.id.clone(),
                    field: "pattern",
                    problem,
                }
            })?;
            compiled.push(Compiled {
                group: r.secret_group.filter(|&g| g > 0),
                rule: r,
                hir: a.hir,
                re: std::sync::OnceLock::new(),
                anchored: std::sync::OnceLock::new(),
                allow,
                span: a.span,
                min_len: a.min_len,
                back: if a.prefix { 0 } else { BACK },
            });
        }
        // Keywords of run-anchored rules are found through the base64 runs (see
        // [`anchor`]); the fingerprint tables get the rest.
        let runs_only: Vec<bool> = kw_of
            .iter()
            .map(|rs| rs.iter().all(|&r| anchor::run_anchored(&compiled[r].rule)))
            .collect();
        let table_kw: Vec<usize> = (0..keywords.len()).filter(|&k| !runs_only[k]).collect();
        let table_text: Vec<String> = table_kw.iter().map(|&k| keywords[k].clone()).collect();
        let run_kw = anchor::RunKeywords::new(
            (0..keywords.len())
                .filter(|&k| runs_only[k])
                .map(|k| (k, keywords[k].as_str())),
        );
        let pre =
            super::prefilter::Prefilter::new(&table_text).ok_or_else(|| RuleError::Invalid {
                origin: "engine".into(),
                id: "*".into(),
                field: "keywords",
                problem: "no prefilter could be built".into(),
            })?;
        Ok(Engine {
            rules: compiled,
            pre,
            table_kw,
            run_kw,
            kw_rules: kw_of,
            ctx,
            fp,
        })
    }

    /// Builds every rule's automata now: ~0.7 s and ~36 MB for the 475 built-in rules
    /// (`rules check` and the benchmarks, which should not time the builds). The daemon
    /// only [`Engine::validate`]s and builds a rule's automata on its first keyword hit:
    /// a host hits few rules, and a first flood of every keyword pays the ~0.7 s once.
    pub fn prepare(&self) -> Result<(), RuleError> {
        for c in &self.rules {
            if c.back == 0 {
                Self::anchored(c);
            }
            if let Err(problem) = Self::built(c) {
                return Err(RuleError::Invalid {
                    origin: "engine".into(),
                    id: c.rule.id.clone(),
                    field: "pattern",
                    problem: problem.clone(),
                });
            }
        }
        Ok(())
    }

    /// Builds every rule's automaton not built yet and drops it again: a rule that cannot
    /// be built is an error at load, while the engine still builds each rule on its first
    /// keyword hit. A daemon hits few of the rules, and all of them built hold ~17 MB.
    pub fn validate(&self) -> Result<(), RuleError> {
        for c in &self.rules {
            if c.re.get().is_some() {
                continue;
            }
            if let Err(problem) = pattern::build(&c.hir) {
                return Err(RuleError::Invalid {
                    origin: "engine".into(),
                    id: c.rule.id.clone(),
                    field: "pattern",
                    problem,
                });
            }
        }
        Ok(())
    }

    fn built(c: &Compiled) -> &Result<meta::Regex, String> {
        c.re.get_or_init(|| {
            pattern::build(&c.hir).inspect_err(|e| {
                tracing::error!(rule = %c.rule.id, error = %e, "rule pattern cannot be built; rule disabled");
            })
        })
    }

    /// A prefix rule's anchored DFA and viable bytes (built on first use), `None` if
    /// the DFA is too large.
    fn anchored(c: &Compiled) -> Option<&(pattern::Dfa, Vec<[u64; 4]>)> {
        c.anchored
            .get_or_init(|| {
                pattern::build_anchored(&c.hir).map(|d| {
                    let v = pattern::viable(&d, c.min_len);
                    (d, v)
                })
            })
            .as_ref()
    }

    fn regex<'a>(&self, c: &'a Compiled) -> Option<&'a meta::Regex> {
        Self::built(c).as_ref().ok()
    }

    /// Engine over the embedded rules.
    pub fn builtin(fp: Fingerprinter) -> Engine {
        Engine::new(super::rules::builtin(), fp).expect("embedded rules compile")
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The fingerprinter.
    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fp
    }

    /// The prefilter's one pass over `data`, with keyword occurrences in the engine's
    /// keyword indices, those found through base64 runs included.
    fn marks(&self, data: &[u8]) -> Marks {
        let mut marks = self.pre.marks(data);
        for (k, _) in marks.keywords.iter_mut() {
            *k = self.table_kw[*k];
        }
        let n = marks.keywords.len();
        self.run_kw.find(data, &marks.runs, &mut marks.keywords);
        if marks.keywords.len() > n {
            marks.keywords.sort_unstable_by_key(|&(k, s)| (s, k));
        }
        marks
    }

    /// Keywords in the prefilter's tables and keywords found through base64 runs.
    pub fn keyword_split(&self) -> (usize, usize) {
        (
            self.table_kw.len(),
            self.kw_rules.len() - self.table_kw.len(),
        )
    }

    fn raw_hits(&self, data: &[u8], opts: ScanOptions) -> Vec<Hit> {
        let marks = self.marks(data);
        let all = ScanOptions {
            candidates: true,
            ..opts
        };
        let mut hits = self.raw_hits_open(data, &marks.keywords, all, &mut None);
        self.context_hits(data, &marks, opts, &mut None, &mut hits);
        hits
    }

    /// Adds the context-keyed secrets of `data` (see [`context`]) to `hits` (the keyword
    /// rules' hits, computed with candidates so that checksum failures are known), then
    /// keeps one hit per secret span. A context value overlapping a keyword rule's
    /// checksum failure is a look-alike and dropped; a generic one yields to any keyword
    /// hit it overlaps. Checksum failures are then dropped unless `opts.candidates`. Of
    /// hits on the same span the highest severity wins, then a rule not tagged `generic`,
    /// then a validated one (checksum), then a context rule (its key named the provider),
    /// then the first rule.
    fn context_hits(
        &self,
        data: &[u8],
        marks: &Marks,
        opts: ScanOptions,
        open: &mut Option<usize>,
        hits: &mut Vec<Hit>,
    ) {
        let found = self.ctx.hits(
            data,
            &marks.runs,
            |ri, secret| self.accept(&self.rules[ri], secret, opts),
            open,
        );
        if !found.is_empty() {
            // Keyword hits by start, with the furthest end so far (all, and failures only).
            hits.sort_unstable_by_key(|h| (h.start, h.end, h.rule));
            let (mut all, mut failed) = (0usize, 0usize);
            let reach: Vec<(usize, usize)> = hits
                .iter()
                .map(|h| {
                    all = all.max(h.end);
                    if h.validation == Validation::Failed {
                        failed = failed.max(h.end);
                    }
                    (all, failed)
                })
                .collect();
            let starts: Vec<usize> = hits.iter().map(|h| h.start).collect();
            for (c, validation) in found {
                let before = starts.partition_point(|&s| s < c.end);
                let (all, failed) = before.checked_sub(1).map_or((0, 0), |i| reach[i]);
                if failed > c.start || (c.generic && all > c.start) {
                    continue;
                }
                hits.push(Hit {
                    rule: c.rule,
                    start: c.start,
                    end: c.end,
                    validation,
                });
            }
        }
        if !opts.candidates {
            hits.retain(|h| h.validation != Validation::Failed);
        }
        if hits.len() < 2 {
            return;
        }
        let rank = |h: &Hit| {
            let r = &self.rules[h.rule].rule;
            (
                std::cmp::Reverse(r.severity),
                r.tags.iter().any(|t| t == "generic"),
                h.validation != Validation::Valid,
                r.context.is_none(),
                h.rule,
            )
        };
        hits.sort_by_key(|h| (h.start, h.end, rank(h)));
        hits.dedup_by(|later, first| later.start == first.start && later.end == first.end);
    }

    /// Like `raw_hits`; also lowers `open` to the start of the earliest keyword window
    /// that runs past the end of `data` (a token that may continue in the next chunk).
    ///
    /// Each keyword occurrence opens a window on its rules: from `back` bytes before it
    /// to `span` bytes after it. A rule's overlapping windows are merged into regions, and
    /// the rule's regex runs once over each region (leftmost-first, non-overlapping
    /// matches, as `find_iter` over the region), so every byte is searched at most once
    /// per rule however densely keywords repeat. A match counts when it starts within
    /// `back` bytes of one of the rule's keyword occurrences and ends after it.
    fn raw_hits_open(
        &self,
        data: &[u8],
        keywords: &[(usize, usize)],
        opts: ScanOptions,
        open: &mut Option<usize>,
    ) -> Vec<Hit> {
        let mut out: Vec<Hit> = Vec::new();
        if keywords.is_empty() {
            return out;
        }
        // Occurrences grouped by rule (a counting sort: keeps each rule's in order).
        let mut first = vec![0usize; self.rules.len() + 1];
        for &(kw, _) in keywords {
            for &ri in &self.kw_rules[kw] {
                first[ri + 1] += 1;
            }
        }
        for i in 0..self.rules.len() {
            first[i + 1] += first[i];
        }
        let mut at = vec![0usize; first[self.rules.len()]];
        let mut fill = first.clone();
        for &(kw, start) in keywords {
            for &ri in &self.kw_rules[kw] {
                at[fill[ri]] = start;
                fill[ri] += 1;
            }
        }
        for (ri, c) in self.rules.iter().enumerate() {
            let occ = &at[first[ri]..first[ri + 1]];
            if occ.is_empty() {
                continue;
            }
            // Windows still open at the end of the data (the next chunk may finish them).
            for &k in occ.iter().rev() {
                if k + c.span <= data.len() {
                    break;
                }
                let from = k.saturating_sub(c.back);
                *open = Some(open.map_or(from, |o: usize| o.min(from)));
            }
            if self.regex(c).is_none() {
                continue;
            }
            let mut i = 0;
            while i < occ.len() {
                let from = occ[i].saturating_sub(c.back);
                let mut to = (occ[i] + c.span).min(data.len());
                let mut j = i + 1;
                while j < occ.len() && occ[j].saturating_sub(c.back) <= to {
                    to = to.max((occ[j] + c.span).min(data.len()));
                    j += 1;
                }
                self.region_hits(ri, data, (from, to), &occ[i..j], opts, &mut out);
                i = j;
            }
        }
        out.sort_unstable_by_key(|h| (h.start, h.rule));
        out
    }

    /// Matches of rule `ri` in one region of `data` (`occ`: its keyword occurrences there).
    fn region_hits(
        &self,
        ri: usize,
        data: &[u8],
        (from, to): (usize, usize),
        occ: &[usize],
        opts: ScanOptions,
        out: &mut Vec<Hit>,
    ) {
        let c = &self.rules[ri];
        let Some(re) = self.regex(c) else { return };
        let mut caps = c.group.map(|_| re.create_captures());
        let mut find = |range: std::ops::Range<usize>, anchored: bool| {
            let mut input = Input::new(data).range(range);
            if anchored {
                input = input.anchored(Anchored::Yes);
            }
            let m = match caps.as_mut() {
                None => re.search(&input),
                Some(caps) => {
                    re.search_captures(&input, caps);
                    caps.get_match()
                }
            }?;
            let secret = match c.group {
                None => m.range(),
                Some(g) => caps
                    .as_ref()
                    .and_then(|cp| cp.get_group(g))
                    .map_or(m.range(), |sp| sp.range()),
            };
            Some((m, secret))
        };
        let mut push = |(s, e): (usize, usize)| {
            if let Some(v) = self.accept(c, &data[s..e], opts) {
                out.push(Hit {
                    rule: ri,
                    start: s,
                    end: e,
                    validation: v,
                });
            }
        };
        // Every match of a prefix rule starts at one of its keyword occurrences: try each
        // with the rule's anchored DFA (a few bytes each, usually), within a budget of
        // bytes examined proportional to the region; past it (keywords so dense, or
        // attempts so long, that they would cover the region many times over) one
        // unanchored search continues over the rest of the region, as for other rules.
        let mut pos = from;
        if let Some((dfa, viable)) = (c.back == 0).then(|| Self::anchored(c)).flatten() {
            let mut used = 0;
            let mut over = false;
            for (i, &k) in occ.iter().enumerate() {
                // A byte no match can have at its place: the attempt would miss.
                if k < pos || (i > 0 && occ[i - 1] == k) || pattern::rejects(viable, data, k) {
                    continue;
                }
                // What the attempts so far have bought: the bytes up to this occurrence.
                // (An attempt reads up to a span, plus the bytes that end it.)
                let budget = (DENSE * (k - from) + 2 * c.span + 2).saturating_sub(used);
                let (outcome, n) = pattern::attempt(dfa, data, k, to, budget);
                used += n;
                match outcome {
                    pattern::Attempt::Miss => {}
                    pattern::Attempt::OverBudget => {
                        over = true;
                        break;
                    }
                    pattern::Attempt::Match(end) => {
                        pos = end.max(k + 1);
                        if end == k {
                            continue;
                        }
                        if c.group.is_none() {
                            push((k, end));
                        } else if let Some((_, secret)) = find(k..end, true) {
                            push((secret.start, secret.end));
                        }
                    }
                }
            }
            if !over {
                return;
            }
        }
        while pos < to {
            let Some((m, secret)) = find(pos..to, false) else {
                break;
            };
            pos = if m.is_empty() { m.end() + 1 } else { m.end() };
            if m.is_empty() {
                continue;
            }
            // Only matches that involve one of this rule's keyword occurrences.
            let lo = m.start().saturating_sub(c.back);
            let k = occ.partition_point(|&k| k < lo);
            if k == occ.len() || occ[k] > m.start() + c.back || occ[k] >= m.end() {
                continue;
            }
            push((secret.start, secret.end));
        }
    }

    /// The rule's filters on a matched secret: length bounds, entropy floor, allowlist
    /// and validator. `None` when rejected.
    fn accept(&self, c: &Compiled, secret: &[u8], opts: ScanOptions) -> Option<Validation> {
        if c.rule.min_len.is_some_and(|n| secret.len() < n)
            || c.rule.max_len.is_some_and(|n| secret.len() > n)
        {
            return None;
        }
        if c.rule.entropy.is_some_and(|f| entropy(secret) < f) {
            return None;
        }
        if c.allow.iter().any(|a| a.is_match(secret)) {
            return None;
        }
        let validation = match c.rule.validator {
            Some(v) if v.check(secret) => Validation::Valid,
            Some(_) => Validation::Failed,
            None => Validation::NotApplicable,
        };
        (validation != Validation::Failed || opts.candidates).then_some(validation)
    }

    fn finding(&self, h: &Hit, secret: &[u8], encoding: Encoding, offset: u64) -> Finding {
        let r = &self.rules[h.rule].rule;
        // Never more than all but 8 characters, however generous the rule.
        let prefix_len = r
            .safe_prefix
            .unwrap_or(4)
            .min(secret.len().saturating_sub(8));
        let safe_prefix = String::from_utf8_lossy(&secret[..prefix_len]).into_owned();
        let last4 = (r.show_last4 && secret.len() >= 16)
            .then(|| String::from_utf8_lossy(&secret[secret.len() - 4..]).into_owned());
        Finding {
            detector: r.id.clone(),
            name: r.name.clone(),
            provider: r.provider.clone(),
            kind: r.kind.clone(),
            severity: r.severity,
            confidence: match h.validation {
                Validation::Valid | Validation::Learned => "high",
                Validation::NotApplicable => "medium",
                Validation::Failed => "low",
            },
            validation: h.validation,
            encoding,
            offset,
            length: secret.len(),
            safe_prefix,
            last4,
            fingerprint: self.fp.fingerprint(secret),
            tags: r.tags.clone(),
            issuers: r.issuers.clone(),
            revoke: r.revoke.clone(),
            learned_from: None,
            secret: Some(SecretValue::new(secret)),
        }
    }

    /// Scans a buffer; offsets are relative to `base`.
    pub fn scan(&self, data: &[u8], base: u64, opts: ScanOptions) -> Vec<Finding> {
        self.scan_open(data, base, opts, &mut None)
    }

    /// `scan`, reporting in `open` where an unfinished candidate starts (for streams).
    pub fn scan_open(
        &self,
        data: &[u8],
        base: u64,
        opts: ScanOptions,
        open: &mut Option<usize>,
    ) -> Vec<Finding> {
        let marks = self.marks(data);
        let mut out = Vec::new();
        let all = ScanOptions {
            candidates: true,
            ..opts
        };
        let mut hits = self.raw_hits_open(data, &marks.keywords, all, open);
        self.context_hits(data, &marks, opts, open, &mut hits);
        for h in hits {
            out.push(self.finding(
                &h,
                &data[h.start..h.end],
                Encoding::Raw,
                base + h.start as u64,
            ));
        }
        if opts.decode {
            self.scan_decoded(data, &marks, base, opts, &mut out);
        }
        out
    }

    fn scan_decoded(
        &self,
        data: &[u8],
        marks: &Marks,
        base: u64,
        opts: ScanOptions,
        out: &mut Vec<Finding>,
    ) {
        let inner = ScanOptions {
            decode: false,
            ..opts
        };
        // One finding per (rule, value) however many encoded copies hold it.
        let mut seen: HashSet<(String, String)> = out
            .iter()
            .map(|f| (f.detector.clone(), f.fingerprint.clone()))
            .collect();
        let mut push = |enc: Encoding, run_start: usize, decoded: &[u8], out: &mut Vec<Finding>| {
            for h in self.raw_hits(decoded, inner) {
                let f = self.finding(&h, &decoded[h.start..h.end], enc, base + run_start as u64);
                if seen.insert((f.detector.clone(), f.fingerprint.clone())) {
                    out.push(f);
                }
            }
        };
        // base64 runs (standard and URL-safe); decoding the whole run finds the token at
        // any alignment inside it. One buffer serves every run.
        let mut buf = Vec::new();
        for &(start, end) in &marks.runs {
            let run = &data[start..end];
            if !looks_encoded(run) {
                continue;
            }
            if decode_b64_run(run, &mut buf) {
                push(Encoding::Base64, start, &buf, out);
            }
            if run.len() >= 2 * MIN_ENCODED
                && run.len().is_multiple_of(2)
                && hex_decode(run, &mut buf)
            {
                push(Encoding::Hex, start, &buf, out);
            }
        }
        // Percent-encoded and JSON-escaped tokens: decode only the segments (between
        // whitespace and quotes) that contain an escape, not the whole buffer.
        for (start, end) in escaped_segments(data, b'%', &marks.percent) {
            let d = percent_decode(&data[start..end]);
            if d.len() != end - start {
                push(Encoding::Percent, start, &d, out);
            }
        }
        for (start, end) in escaped_segments(data, b'\\', &marks.backslash) {
            if let Some(d) = json_unescape(&data[start..end]) {
                push(Encoding::JsonEscape, start, &d, out);
            }
        }
    }

    /// Scans for rules and, when given, learned exact values (and their encodings).
    pub fn scan_with_learned(
        &self,
        data: &[u8],
        base: u64,
        learned: Option<&LearnedSecrets>,
        opts: ScanOptions,
    ) -> Vec<Finding> {
        self.scan_with_learned_open(data, base, learned, opts, &mut None)
    }

    /// `scan_with_learned`, reporting unfinished candidates in `open` (for streams).
    pub fn scan_with_learned_open(
        &self,
        data: &[u8],
        base: u64,
        learned: Option<&LearnedSecrets>,
        opts: ScanOptions,
        open: &mut Option<usize>,
    ) -> Vec<Finding> {
        let mut out = self.scan_open(data, base, opts, open);
        let Some(learned) = learned else { return out };
        for m in learned.find(data) {
            // A rule already named it (this occurrence: same place, or inside the same
            // encoded run): the workspace held exactly this value, so it is certain —
            // upgrade instead of reporting twice. Another occurrence is its own finding.
            let at = base + m.start as u64;
            if let Some(f) = out.iter_mut().find(|f| {
                f.fingerprint == m.fingerprint
                    && !f.detector.starts_with("learned:")
                    && (f.offset == at || (f.encoding != Encoding::Raw && f.offset <= at))
            }) {
                f.validation = Validation::Learned;
                f.confidence = "high";
                f.learned_from = Some(m.source.clone());
                continue;
            }
            out.push(learned_finding(m, base));
        }
        out
    }

    /// Only the workspace's learned values in `data` (exact, in every encoding the learned
    /// matcher knows): the detector's degraded mode for a workspace over its budget.
    pub fn find_learned(&self, data: &[u8], base: u64, learned: &LearnedSecrets) -> Vec<Finding> {
        learned
            .find(data)
            .into_iter()
            .map(|m| learned_finding(m, base))
            .collect()
    }

    /// `text` with every secret found in it (by rules or, if given, learned values)
    /// replaced by `[REDACTED <detector> <fingerprint>]`. Encoded finds blank the whole text.
    pub fn redact(&self, text: &str, learned: Option<&LearnedSecrets>) -> String {
        let found = self.scan_with_learned(text.as_bytes(), 0, learned, ScanOptions::default());
        if found.is_empty() {
            return text.to_string();
        }
        if found.iter().any(|f| f.encoding != Encoding::Raw) {
            return format!("[REDACTED {}]", found[0].fingerprint);
        }
        let mut spans: Vec<(usize, usize, String)> = found
            .iter()
            .map(|f| {
                (
                    f.offset as usize,
                    f.offset as usize + f.length,
                    format!("[REDACTED {} {}]", f.detector, f.fingerprint),
                )
            })
            .collect();
        spans.sort_by_key(|s| s.0);
        let b = text.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut pos = 0;
        for (s, e, rep) in spans {
            if s < pos || e > b.len() {
                continue;
            }
            out.extend_from_slice(&b[pos..s]);
            out.extend_from_slice(rep.as_bytes());
            pos = e;
        }
        out.extend_from_slice(&b[pos..]);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Bytes a stream must always carry over: a keyword may start just before a chunk
    /// boundary, and patterns may look back `BACK` bytes from their keyword.
    pub fn min_overlap(&self) -> usize {
        BACK + self
            .rules
            .iter()
            .flat_map(|c| c.rule.keywords.iter().map(|k| k.len()))
            .max()
            .unwrap_or(0)
    }

    /// Rules (for `rules check` / listings).
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|c| &c.rule)
    }
}

/// Decodes a base64 run into `out` as standard or URL-safe base64, with or without
/// padding, at the first of the four possible start offsets (a token may begin mid-run
/// after a non-encoded prefix) that yields mostly printable bytes — binary is not where
/// tokens hide. False when none does. Decodes piecewise and gives up on an offset as soon
/// as too many bytes are unprintable, so a long run of random base64 costs little.
pub fn decode_b64_run(run: &[u8], out: &mut Vec<u8>) -> bool {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let trimmed: &[u8] = {
        let mut e = run.len();
        while e > 0 && run[e - 1] == b'=' {
            e -= 1;
        }
        &run[..e]
    };
    let url = trimmed.iter().any(|c| *c == b'-' || *c == b'_');
    let engine = if url {
        &URL_SAFE_NO_PAD
    } else {
        &STANDARD_NO_PAD
    };
    'skip: for skip in 0..4.min(trimmed.len()) {
        let s = &trimmed[skip..];
        let usable = s.len() - s.len() % 4 + if s.len() % 4 >= 2 { s.len() % 4 } else { 0 };
        let s = &s[..usable.min(s.len())];
        let total = s.len() / 4 * 3 + (s.len() % 4).saturating_sub(1);
        if total < 8 || too_binary(s, if url { &URL_SEXTETS } else { &STD_SEXTETS }, total) {
            continue;
        }
        out.clear();
        let mut bad = 0;
        for piece in s.chunks(4096) {
            let at = out.len();
            out.resize(at + piece.len() / 4 * 3 + 3, 0);
            match engine.decode_slice(piece, &mut out[at..]) {
                Ok(n) => out.truncate(at + n),
                Err(_) => continue 'skip,
            }
            bad += out[at..]
                .iter()
                .map(|&c| UNPRINTABLE[c as usize] as usize)
                .sum::<usize>();
            if bad * 10 > total {
                continue 'skip;
            }
        }
        return true;
    }
    false
}

/// Sextet value of each byte in a base64 alphabet (standard or URL-safe), 0xff for a byte
/// outside it.
const fn sextets(url: bool) -> [u8; 256] {
    let mut t = [0xffu8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' if !url => 62,
            b'/' if !url => 63,
            b'-' if url => 62,
            b'_' if url => 63,
            _ => 0xff,
        };
        c += 1;
    }
    t
}

static STD_SEXTETS: [u8; 256] = sextets(false);
static URL_SEXTETS: [u8; 256] = sextets(true);

/// 1 for a byte [`decode_b64_run`] counts against a decoding (neither graphic nor
/// whitespace), else 0.
static UNPRINTABLE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = !(b.is_ascii_graphic() || b.is_ascii_whitespace()) as u8;
        c += 1;
    }
    t
};

/// True when the whole 4-character groups of `s` before its first character outside the
/// alphabet (`sextets`) already decode to more than a tenth of `total` unprintable bytes:
/// [`decode_b64_run`] would give up on this offset (it counts the same bytes, and more).
/// Checked without decoding into a buffer, and decided within a few groups on random
/// data, which is what long adversarial runs are.
fn too_binary(s: &[u8], sextets: &[u8; 256], total: usize) -> bool {
    let mut bad = 0usize;
    for q in s.chunks_exact(4) {
        let (a, b, c, d) = (
            sextets[q[0] as usize],
            sextets[q[1] as usize],
            sextets[q[2] as usize],
            sextets[q[3] as usize],
        );
        if (a | b | c | d) & 0xc0 != 0 {
            // Not this alphabet: the decoder decides (it rejects, or `=` ends the data).
            return false;
        }
        let n = (a as usize) << 18 | (b as usize) << 12 | (c as usize) << 6 | d as usize;
        bad +=
            (UNPRINTABLE[n >> 16] + UNPRINTABLE[(n >> 8) & 0xff] + UNPRINTABLE[n & 0xff]) as usize;
        if bad * 10 > total {
            return true;
        }
    }
    false
}

/// Decodes a hex run (even length, all hex digits) into `out`; false if it is not one.
fn hex_decode(run: &[u8], out: &mut Vec<u8>) -> bool {
    const fn table() -> [u8; 256] {
        let mut t = [0xffu8; 256];
        let mut c = 0;
        while c < 256 {
            let b = c as u8;
            t[c] = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => 0xff,
            };
            c += 1;
        }
        t
    }
    static HEX: [u8; 256] = table();
    if !run.len().is_multiple_of(2) {
        return false;
    }
    out.clear();
    out.reserve(run.len() / 2);
    let mut bad = 0u8;
    for p in run.chunks_exact(2) {
        let (h, l) = (HEX[p[0] as usize], HEX[p[1] as usize]);
        bad |= h | l;
        out.push(h << 4 | (l & 15));
    }
    bad & 0xf0 == 0
}

/// Percent-decodes (`%XX` and `+` kept as is).
pub fn percent_decode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'%' && i + 2 < data.len() {
            if let (Some(h), Some(l)) = (
                (data[i + 1] as char).to_digit(16),
                (data[i + 2] as char).to_digit(16),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

/// Removes JSON string escapes (`\/`, `\"`, `\\`, `\uXXXX`, `\n`…); `None` if nothing changed.
pub fn json_unescape(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    let mut changed = false;
    while i < data.len() {
        if data[i] == b'\\' && i + 1 < data.len() {
            let c = data[i + 1];
            let rep = match c {
                b'/' | b'"' | b'\\' => Some(c),
                b'n' => Some(b'\n'),
                b't' => Some(b'\t'),
                b'r' => Some(b'\r'),
                b'u' if i + 5 < data.len() => {
                    let hexs = std::str::from_utf8(&data[i + 2..i + 6]).ok();
                    match hexs
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .and_then(char::from_u32)
                    {
                        Some(ch) => {
                            let mut b = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                            i += 6;
                            changed = true;
                            continue;
                        }
                        None => None,
                    }
                }
                _ => None,
            };
            if let Some(r) = rep {
                out.push(r);
                i += 2;
                changed = true;
                continue;
            }
        }
        out.push(data[i]);
        i += 1;
    }
    changed.then_some(out)
}

/// The finding of a learned value's occurrence (no rule named it).
fn learned_finding(m: super::learned::LearnedMatch, base: u64) -> Finding {
    Finding {
        detector: format!("learned:{}", m.source),
        name: format!("Workspace secret learned from {}", m.source),
        provider: m.provider.clone(),
        kind: m.kind.clone(),
        severity: Severity::Critical,
        confidence: "high",
        validation: Validation::Learned,
        encoding: m.encoding,
        offset: base + m.start as u64,
        length: m.secret_len,
        safe_prefix: m.safe_prefix.clone(),
        last4: None,
        fingerprint: m.fingerprint.clone(),
        tags: vec!["attack.t1552".into(), "attack.t1567".into()],
        issuers: m.issuers.clone(),
        revoke: m.revoke.clone(),
        learned_from: Some(m.source.clone()),
        secret: m.secret.clone(),
    }
}
