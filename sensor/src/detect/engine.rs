//! The matcher: one SIMD pass (see [`super::prefilter`]) finds every rule keyword, encoded
//! run and escape; keywords select the few rules worth running, each rule's regex runs only in a window
//! around its keyword, and validators and entropy floors reject near misses. Encoded
//! payloads (base64, URL-safe base64, percent-encoding, hex, JSON escapes) are decoded and
//! scanned again. Findings carry redacted forms and a keyed fingerprint, never the value.

use base64::Engine as _;
use regex::bytes::Regex;

use super::anchor;
use super::context;
pub use super::finding::{Encoding, Finding};
use super::learned::LearnedSecrets;
use super::prefilter::{is_b64, Marks, MIN_ENCODED};
use super::rules::{Rule, RuleError, Severity};
use super::validators::{entropy, Validation};
use crate::redact::Fingerprinter;

/// Bytes searched before a keyword for patterns whose keyword is not at their start.
const BACK: usize = 128;
/// Default maximum token length when a rule does not say.
const DEFAULT_MAX: usize = 1024;
struct Compiled {
    rule: Rule,
    /// Built on the rule's first keyword hit: most scans see few rules' keywords, and
    /// building all ~90 automata was most of `sensor scan`'s start-up. Holds the build
    /// error if there was one.
    re: std::sync::OnceLock<Result<Regex, String>>,
    allow: Vec<Regex>,
    window: usize,
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
            let window = r.max_len.unwrap_or(DEFAULT_MAX) + BACK;
            compiled.push(Compiled {
                rule: r,
                re: std::sync::OnceLock::new(),
                allow,
                window,
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

    /// Builds every rule's automaton now (the daemon does, so that the first event does
    /// not pay for it and a pattern too large to build is reported at start).
    pub fn prepare(&self) -> Result<(), RuleError> {
        for c in &self.rules {
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

    fn built(c: &Compiled) -> &Result<Regex, String> {
        c.re.get_or_init(|| {
            Regex::new(&c.rule.pattern).map_err(|e| {
                tracing::error!(rule = %c.rule.id, error = %e, "rule pattern cannot be built; rule disabled");
                e.to_string()
            })
        })
    }

    fn regex<'a>(&self, c: &'a Compiled) -> Option<&'a Regex> {
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
        if validation == Validation::Failed && !opts.candidates {
            return None;
        }
        Some(validation)
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
    fn raw_hits_open(
        &self,
        data: &[u8],
        keywords: &[(usize, usize)],
        opts: ScanOptions,
        open: &mut Option<usize>,
    ) -> Vec<Hit> {
        let mut out: Vec<Hit> = Vec::new();
        for &(kw, kw_start) in keywords {
            for &ri in &self.kw_rules[kw] {
                let c = &self.rules[ri];
                let from = kw_start.saturating_sub(BACK);
                if kw_start + c.window > data.len() {
                    *open = Some(open.map_or(from, |o: usize| o.min(from)));
                }
                let to = (kw_start + c.window).min(data.len());
                let hay = &data[from..to];
                let Some(re) = self.regex(c) else { continue };
                for caps in re.captures_iter(hay) {
                    let whole = caps.get(0).expect("group 0");
                    let g = caps.get(c.rule.secret_group.unwrap_or(0)).unwrap_or(whole);
                    let (s, e) = (from + g.start(), from + g.end());
                    let (ws, we) = (from + whole.start(), from + whole.end());
                    // Only matches that involve this keyword occurrence.
                    if we <= kw_start || ws > kw_start + BACK {
                        continue;
                    }
                    let secret = &data[s..e];
                    if c.rule.min_len.is_some_and(|n| secret.len() < n)
                        || c.rule.max_len.is_some_and(|n| secret.len() > n)
                    {
                        continue;
                    }
                    if c.rule.entropy.is_some_and(|f| entropy(secret) < f) {
                        continue;
                    }
                    if c.allow.iter().any(|a| a.is_match(secret)) {
                        continue;
                    }
                    let validation = match c.rule.validator {
                        Some(v) if v.check(secret) => Validation::Valid,
                        Some(_) => Validation::Failed,
                        None => Validation::NotApplicable,
                    };
                    if validation == Validation::Failed && !opts.candidates {
                        continue;
                    }
                    if !out.iter().any(|h| h.rule == ri && h.start == s) {
                        out.push(Hit {
                            rule: ri,
                            start: s,
                            end: e,
                            validation,
                        });
                    }
                }
            }
        }
        out
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
        let push = |enc: Encoding, run_start: usize, decoded: &[u8], out: &mut Vec<Finding>| {
            for h in self.raw_hits(decoded, inner) {
                let f = self.finding(&h, &decoded[h.start..h.end], enc, base + run_start as u64);
                if !out
                    .iter()
                    .any(|o| o.fingerprint == f.fingerprint && o.detector == f.detector)
                {
                    out.push(f);
                }
            }
        };
        // base64 runs (standard and URL-safe); decoding the whole run finds the token at
        // any alignment inside it.
        for &(start, end) in &marks.runs {
            let run = &data[start..end];
            if !looks_encoded(run) {
                continue;
            }
            for d in decode_b64_run(run) {
                push(Encoding::Base64, start, &d, out);
            }
            if run.len() >= 2 * MIN_ENCODED
                && run.len().is_multiple_of(2)
                && run.iter().all(|c| c.is_ascii_hexdigit())
            {
                if let Ok(d) = hex::decode(run) {
                    push(Encoding::Hex, start, &d, out);
                }
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
            // A rule already named it: the workspace held exactly this value, so it is
            // certain — upgrade instead of reporting twice.
            if let Some(f) = out.iter_mut().find(|f| f.fingerprint == m.fingerprint) {
                f.validation = Validation::Learned;
                f.confidence = "high";
                continue;
            }
            out.push(Finding {
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
            });
        }
        out
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

/// Decodes a base64 run as standard and URL-safe, with and without padding, at each of the
/// four possible start offsets (a token may begin mid-run after a non-encoded prefix).
fn decode_b64_run(run: &[u8]) -> Vec<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let trimmed: &[u8] = {
        let mut e = run.len();
        while e > 0 && run[e - 1] == b'=' {
            e -= 1;
        }
        &run[..e]
    };
    let mut out = Vec::new();
    let url = trimmed.iter().any(|c| *c == b'-' || *c == b'_');
    for skip in 0..4.min(trimmed.len()) {
        let s = &trimmed[skip..];
        let usable = s.len() - s.len() % 4 + if s.len() % 4 >= 2 { s.len() % 4 } else { 0 };
        let s = &s[..usable.min(s.len())];
        let dec = if url {
            URL_SAFE_NO_PAD.decode(s)
        } else {
            STANDARD_NO_PAD.decode(s)
        };
        if let Ok(d) = dec {
            // Mostly-printable output only: binary is not where tokens hide.
            let printable = d
                .iter()
                .filter(|c| c.is_ascii_graphic() || c.is_ascii_whitespace())
                .count();
            if d.len() >= 8 && printable * 10 >= d.len() * 9 {
                out.push(d);
                break;
            }
        }
    }
    out
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
