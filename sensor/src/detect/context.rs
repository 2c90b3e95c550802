//! Context-keyed secrets. Many credentials have no prefix to anchor on: an AWS secret
//! access key, a Datadog API key, an OAuth client secret are 32–88 random characters that
//! mean something only by what they are assigned to (`aws_secret_access_key = …`,
//! `"datadogApiKey": "…"`, `DD_API_KEY=…`). A regex per provider of the form
//! `(?i)name … = value` would cost as much as every other rule together, on every byte.
//! This module is anchored on the value instead: the prefilter's one pass already marks
//! every run of base64-alphabet characters long enough to hide a token, and for each run
//! it reads the few bytes around it for an assignment — `KEY=value` inside the run itself,
//! `key: value`, `"key": "value"`, `key => 'value'`, `key := "value"`, `<key>value`,
//! `--key value` — splits the key into words (`AWS_SECRET_ACCESS_KEY`,
//! `awsSecretAccessKey`, `aws-secret-access-key` → aws secret access key) and looks them
//! up in one Aho-Corasick automaton of every rule's names and credential words. Only a
//! key that names a rule's provider (or, for generic rules, any credential word) gets its
//! value tried against the rule's value pattern, character classes and entropy floor.
//! When several rules claim a value, the one whose name covers most of the key wins, so
//! `AWS_SECRET_ACCESS_KEY` is an AWS secret key, not a generic secret.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::bytes::Regex;

use super::rules::{Context, Rule, Severity};
use super::validators::Validation;

/// Credential words a key must contain when a rule does not list its own. Compounds are
/// listed because a key written without separators (`APIKEY`) is one word.
pub const DEFAULT_WORDS: &[&str] = &[
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "pass",
    "auth",
    "credential",
    "credentials",
    "pat",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "authtoken",
    "accesstoken",
    "clientsecret",
    "apitoken",
    "apisecret",
];

/// A key whose last word is one of these names something about a secret, not the secret
/// (`AWS_ACCESS_KEY_ID`, `TOKEN_URL`, `API_KEY_FILE`, `SECRET_NAME`).
const NOT_LAST: &[&str] = &[
    "id",
    "ids",
    "url",
    "uri",
    "urls",
    "endpoint",
    "path",
    "file",
    "files",
    "dir",
    "name",
    "names",
    "type",
    "types",
    "format",
    "len",
    "length",
    "size",
    "count",
    "prefix",
    "suffix",
    "header",
    "headers",
    "field",
    "param",
    "env",
    "var",
    "hash",
    "digest",
    "version",
    "region",
    "host",
    "port",
    "user",
    "username",
    "email",
    "ttl",
    "expiry",
    "expires",
    "expiration",
    "timeout",
    "mode",
    "kind",
    "label",
    "ref",
    "arn",
    "index",
    "policy",
    "scope",
    "scopes",
    "location",
    "algorithm",
    "alg",
    "method",
    "provider",
    "store",
    "storage",
    "manager",
    "service",
    "helper",
    "class",
    "enabled",
    "required",
    "valid",
    "validator",
    "regex",
    "pattern",
    "placeholder",
    "example",
    "sample",
    "template",
];

/// Words that make a key something other than a credential wherever they occur: public
/// material (`PUBLIC_KEY`, `publishableKey`), pagination and request state
/// (`NextContinuationToken`, `page_token`, `cursor`), digests and integrity values
/// (`CodeSha256`, `checksum`, `nonce`, `salt`), device-flow codes, anti-forgery tokens.
const NOT_SECRET: &[&str] = &[
    "public",
    "publishable",
    "pub",
    "pubkey",
    "next",
    "continuation",
    "page",
    "pagination",
    "cursor",
    "marker",
    "etag",
    "checksum",
    "sha",
    "sha1",
    "sha256",
    "sha384",
    "sha512",
    "md5",
    "integrity",
    "fingerprint",
    "device",
    "nonce",
    "salt",
    "csrf",
    "xsrf",
    "sample",
    "example",
    "dummy",
    "fake",
    "mock",
];

/// Substrings of values that are documentation or test placeholders, not secrets.
const PLACEHOLDERS: &[&str] = &[
    "example",
    "xxxxx",
    "00000",
    "11111",
    "12345",
    "abcdef",
    "dummy",
    "sample",
    "changeme",
    "placeholder",
    "your",
    "redacted",
    "insert",
    "replace",
    "fake",
    "notreal",
];

/// Longest key read before a value.
const MAX_KEY: usize = 80;

/// Problems with a rule's `context`, for [`super::rules::check_rule`].
pub fn check(c: &Context) -> Option<String> {
    let blank = |v: &[String]| v.iter().any(|n| normalize(n.as_bytes()).0.is_empty());
    if blank(&c.names) {
        return Some("names must have letters or digits".into());
    }
    if c.words.as_deref().is_some_and(blank) {
        return Some("words must have letters or digits".into());
    }
    if c.names.is_empty() && c.words.as_ref().is_some_and(|w| w.is_empty()) {
        return Some("a rule without names needs credential words (any key would do)".into());
    }
    if c.classes.is_some_and(|n| n > 3) {
        return Some("classes counts lowercase, uppercase and digits: at most 3".into());
    }
    None
}

/// One context rule.
struct Entry {
    /// Index of the rule in the engine.
    rule: usize,
    pattern: String,
    secret_group: Option<usize>,
    /// `^(?:pattern)$`, built on first use.
    value: OnceLock<Option<Regex>>,
    /// Ids of the words one of which the key must contain (`None`: no requirement).
    words: Option<Vec<usize>>,
    /// No names: any key with a credential word will do.
    any_key: bool,
    /// Yields to provider rules (no names, or tagged `generic`).
    generic: bool,
    classes: u8,
    severity: Severity,
}

/// What one automaton pattern stands for.
#[derive(Default)]
struct Pat {
    /// Entries that have it as a name.
    names: Vec<usize>,
    /// Its id as a credential word.
    word: Option<usize>,
    /// A word that ends a non-secret key (`_ID`, `_URL`).
    not_last: bool,
    /// A word that makes a key a non-secret anywhere in it.
    public: bool,
}

/// A context-keyed secret: rule and secret span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Engine rule index.
    pub rule: usize,
    /// Secret span.
    pub start: usize,
    /// End of the secret span.
    pub end: usize,
    /// The rule is generic (no names, or tagged `generic`).
    pub generic: bool,
}

/// The compiled context rules of an engine.
#[derive(Default)]
pub struct Index {
    entries: Vec<Entry>,
    /// Entries without names (any key with a credential word).
    any_key: Vec<usize>,
    /// The fewest character classes any entry asks of a value.
    min_classes: u8,
    ac: Option<AhoCorasick>,
    pats: Vec<Pat>,
}

/// `key` as lowercase letters and digits, and the positions in that string where a word
/// starts or ends (separators, `camelCase` humps, `ACRONYMWord` ends).
fn normalize(key: &[u8]) -> (Vec<u8>, u128) {
    let mut buf = vec![0u8; key.len().min(127)];
    let (n, bounds) = normalize_into(&key[..key.len().min(127)], &mut buf);
    buf.truncate(n);
    (buf, bounds)
}

/// [`normalize`] into `out` (at least as long as `key`, at most 127): returns the length.
fn normalize_into(key: &[u8], out: &mut [u8]) -> (usize, u128) {
    let mut len = 0;
    let mut bounds: u128 = 1;
    let mut prev = b' ';
    for (i, &c) in key.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            bounds |= 1 << len.min(127);
            prev = b' ';
            continue;
        }
        let next = key.get(i + 1).copied().unwrap_or(b' ');
        let hump = (prev.is_ascii_lowercase() || prev.is_ascii_digit()) && c.is_ascii_uppercase();
        let acronym_end =
            prev.is_ascii_uppercase() && c.is_ascii_uppercase() && next.is_ascii_lowercase();
        if hump || acronym_end {
            bounds |= 1 << len.min(127);
        }
        out[len] = c.to_ascii_lowercase();
        len += 1;
        prev = c;
    }
    bounds |= 1 << len.min(127);
    (len, bounds)
}

fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

fn is_quote(c: u8) -> bool {
    matches!(c, b'"' | b'\'' | b'`')
}

/// The key a value (`data[vs..]`, a run of base64-alphabet characters) is assigned to,
/// read backwards from the value: `key = "value"`, `"key": "value"`, `key => 'value'`,
/// `("key", "value")`, `<key>value`, `--key value`.
fn key_before(data: &[u8], vs: usize) -> Option<(usize, usize)> {
    let mut i = vs;
    let quoted = i > 0 && is_quote(data[i - 1]);
    if quoted {
        i -= 1;
        // `\"` inside a string literal (`"{\"key\":\"value\"}"`).
        if i > 0 && data[i - 1] == b'\\' {
            i -= 1;
        }
    }
    let spaces = |i: &mut usize| {
        let from = *i;
        while *i > 0 && matches!(data[*i - 1], b' ' | b'\t') && from - *i < 8 {
            *i -= 1;
        }
        from - *i
    };
    let gap = spaces(&mut i);
    let op_end = i;
    while i > 0 && matches!(data[i - 1], b'=' | b':' | b'>' | b'?' | b'|' | b',') && op_end - i < 3
    {
        i -= 1;
    }
    let op = &data[i..op_end];
    // No operator: only `--flag value` remains, which needs a space and a `-` before it.
    if op.is_empty() && (gap == 0 || i == 0 || !is_key_char(data[i - 1])) {
        return None;
    }
    spaces(&mut i);
    let mut closers = 0;
    while i > 0 && matches!(data[i - 1], b'"' | b'\'' | b'`' | b']' | b')' | b'\\') && closers < 4 {
        i -= 1;
        closers += 1;
    }
    let ke = i;
    while i > 0 && is_key_char(data[i - 1]) && ke - i < MAX_KEY {
        i -= 1;
    }
    let mut ks = i;
    let flag = data[ks..ke].starts_with(b"--");
    while ks < ke && matches!(data[ks], b'-' | b'.' | b'_') {
        ks += 1;
    }
    if ks == ke || !data[ks..ke].iter().any(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let ok = match op {
        [] => flag && gap > 0 && closers == 0,
        b"," => quoted && closers > 0,
        b">" => i > 0 && data[i - 1] == b'<',
        b"::" => false,
        _ => op.iter().any(|&c| c == b'=' || c == b':'),
    };
    ok.then_some((ks, ke))
}

/// In prose (`Here is my Jira token: …`, `Next page token: …`) the key read before the
/// operator is only its last word: up to two more words before it, each separated by one
/// space, belong to it (they may name the provider, or say it is no credential).
fn prose_start(data: &[u8], ks: usize) -> usize {
    let mut start = ks;
    for _ in 0..2 {
        if start < 2 || data[start - 1] != b' ' || !data[start - 2].is_ascii_alphanumeric() {
            break;
        }
        let mut s = start - 1;
        while s > 0 && data[s - 1].is_ascii_alphanumeric() && start - s < 24 {
            s -= 1;
        }
        if s > 0
            && !matches!(
                data[s - 1],
                b' ' | b'\n' | b'\t' | b'#' | b'/' | b'*' | b'"'
            )
        {
            break;
        }
        start = s;
    }
    start
}

/// The assignment a run takes part in: `(key, value)` spans.
fn assignment(data: &[u8], (rs, re): (usize, usize)) -> Option<((usize, usize), (usize, usize))> {
    let run = &data[rs..re];
    // `KEY=value` inside the run (environment files, query strings, flags).
    if let Some(eq) = memchr::memchr(b'=', run) {
        if eq > 0 && eq + 1 < run.len() && run[eq + 1] != b'=' {
            let mut ks = rs;
            while ks < rs + eq && matches!(data[ks], b'-' | b'.' | b'_') {
                ks += 1;
            }
            let key = &data[ks..rs + eq];
            if key.len() <= MAX_KEY && key.iter().any(|c| c.is_ascii_alphabetic()) {
                return Some(((ks, rs + eq), (rs + eq + 1, re)));
            }
        }
    }
    key_before(data, rs).map(|k| (k, (rs, re)))
}

/// Letters and digits classes present: lowercase, uppercase, digit.
fn classes(v: &[u8]) -> u8 {
    let (mut l, mut u, mut d) = (false, false, false);
    for c in v {
        l |= c.is_ascii_lowercase();
        u |= c.is_ascii_uppercase();
        d |= c.is_ascii_digit();
    }
    l as u8 + u as u8 + d as u8
}

/// Identifiers (`Pkcs10AllowedSignatureTypes`, `AbstractRequestHandlerFactory`) mix
/// cases like a base62 secret, but their lowercase letters come in words: runs of four
/// or more cover most of them. In a random base62 string a run of four lowercase
/// letters starts at ~2% of positions, so such runs cover a tenth of it at most.
/// (Single-case values — hex, base32, `SCREAMING_CASE` — are left to the entropy floor
/// and the character-class count.)
fn identifier_like(v: &[u8]) -> bool {
    // The longest stretch between separators: a value's fixed words (`live_`, `secret-`)
    // are not its random part.
    let v = v
        .split(|c| !c.is_ascii_alphanumeric())
        .max_by_key(|s| s.len())
        .unwrap_or(v);
    if !(v.iter().any(u8::is_ascii_lowercase) && v.iter().any(u8::is_ascii_uppercase)) {
        return false;
    }
    let (mut in_words, mut run) = (0usize, 0usize);
    for &c in v.iter().chain(std::iter::once(&b' ')) {
        if c.is_ascii_lowercase() {
            run += 1;
        } else {
            if run >= 4 {
                in_words += run;
            }
            run = 0;
        }
    }
    in_words * 10 >= v.len() * 4
}

/// Code identifiers joined by separators (`NID_pbe_WithSHA1And3_Key_TripleDES_CBC`,
/// `my-service-prod-eu-west-1`): several separators, and most stretches between them
/// read as words (one case, or few case changes). In a random base64url value the
/// stretches change class at most characters. (Generic rules only: provider rules'
/// values have their own shapes.)
fn dotted_words(v: &[u8]) -> bool {
    let segs: Vec<&[u8]> = v
        .split(|c| matches!(c, b'_' | b'-' | b'.'))
        .filter(|s| s.len() >= 2)
        .collect();
    if segs.len() < 3 {
        return false;
    }
    let class = |c: &u8| {
        if c.is_ascii_lowercase() {
            0u8
        } else if c.is_ascii_uppercase() {
            1
        } else {
            2
        }
    };
    let wordy = segs
        .iter()
        .filter(|s| {
            let changes = s
                .windows(2)
                .filter(|w| class(&w[0]) != class(&w[1]))
                .count();
            changes * 3 <= s.len()
        })
        .count();
    wordy * 3 >= segs.len() * 2
}

fn placeholder(v: &[u8]) -> bool {
    let lower = v.to_ascii_lowercase();
    PLACEHOLDERS
        .iter()
        .any(|p| memchr::memmem::find(&lower, p.as_bytes()).is_some())
}

impl Index {
    /// Compiles the context rules among `rules` (indices are the engine's).
    pub fn new(rules: &[Rule]) -> Index {
        let mut text: Vec<Vec<u8>> = Vec::new();
        let mut pats: Vec<Pat> = Vec::new();
        let mut id_of = |t: Vec<u8>, pats: &mut Vec<Pat>| -> usize {
            match text.iter().position(|x| *x == t) {
                Some(i) => i,
                None => {
                    text.push(t);
                    pats.push(Pat::default());
                    text.len() - 1
                }
            }
        };
        let mut words_seen: Vec<Vec<u8>> = Vec::new();
        let mut entries = Vec::new();
        for (ri, r) in rules.iter().enumerate() {
            let Some(c) = &r.context else { continue };
            let e = entries.len();
            for n in &c.names {
                let id = id_of(normalize(n.as_bytes()).0, &mut pats);
                pats[id].names.push(e);
            }
            let words = match &c.words {
                None => Some(DEFAULT_WORDS.iter().map(|w| w.to_string()).collect()),
                Some(w) if w.is_empty() => None,
                Some(w) => Some(w.clone()),
            };
            let words = words.map(|ws: Vec<String>| {
                ws.iter()
                    .map(|w| {
                        let t = normalize(w.as_bytes()).0;
                        let id = id_of(t.clone(), &mut pats);
                        let wid = match words_seen.iter().position(|x| *x == t) {
                            Some(i) => i,
                            None => {
                                words_seen.push(t);
                                words_seen.len() - 1
                            }
                        };
                        pats[id].word = Some(wid);
                        wid
                    })
                    .collect()
            });
            entries.push(Entry {
                rule: ri,
                pattern: r.pattern.clone(),
                secret_group: r.secret_group.filter(|&g| g > 0),
                value: OnceLock::new(),
                words,
                any_key: c.names.is_empty(),
                generic: c.names.is_empty() || r.tags.iter().any(|t| t == "generic"),
                classes: c.classes.unwrap_or(2),
                severity: r.severity,
            });
        }
        if entries.is_empty() {
            return Index::default();
        }
        for w in NOT_LAST {
            let id = id_of(w.as_bytes().to_vec(), &mut pats);
            pats[id].not_last = true;
        }
        for w in NOT_SECRET {
            let id = id_of(w.as_bytes().to_vec(), &mut pats);
            pats[id].public = true;
        }
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&text)
            .expect("context names build an automaton");
        Index {
            any_key: (0..entries.len()).filter(|&e| entries[e].any_key).collect(),
            min_classes: entries.iter().map(|e| e.classes).min().unwrap_or(0),
            entries,
            ac: Some(ac),
            pats,
        }
    }

    /// True when there are no context rules.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn value_regex(e: &Entry) -> Option<&Regex> {
        e.value
            .get_or_init(|| match Regex::new(&format!("^(?:{})$", e.pattern)) {
                Ok(r) => Some(r),
                Err(err) => {
                    tracing::error!(error = %err, "context rule value pattern cannot be built; rule disabled");
                    None
                }
            })
            .as_ref()
    }

    /// Entries a key selects, best first: provider rules before generic ones, then the
    /// name found earliest in the key (`WASABI_SECRET_ACCESS_KEY` names Wasabi first,
    /// not AWS's "secret access key"), then the longest, then severity.
    fn select(&self, key: &[u8]) -> Vec<usize> {
        let Some(ac) = &self.ac else {
            return Vec::new();
        };
        if key.len() > 120 {
            return Vec::new();
        }
        let mut buf = [0u8; 128];
        let (n, bounds) = normalize_into(key, &mut buf);
        let norm = &buf[..n];
        if norm.is_empty() {
            return Vec::new();
        }
        let at = |i: usize| bounds & (1 << i) != 0;
        // (entry, start, length) of each whole-word name match; credential words seen.
        let mut named: Vec<(usize, usize, usize)> = Vec::new();
        let mut words: u128 = 0;
        for m in ac.find_overlapping_iter(norm) {
            if !at(m.start()) || !at(m.end()) {
                continue;
            }
            let p = &self.pats[m.pattern().as_usize()];
            if p.public || (p.not_last && m.end() == norm.len()) {
                return Vec::new();
            }
            if let Some(w) = p.word {
                words |= 1 << w.min(127);
            }
            named.extend(p.names.iter().map(|&e| (e, m.start(), m.len())));
        }
        if words == 0 && named.is_empty() {
            return Vec::new();
        }
        // Per entry, its earliest name match (the longest there).
        named.sort_unstable_by_key(|&(e, start, len)| (e, start, std::cmp::Reverse(len)));
        named.dedup_by_key(|m| m.0);
        let place = |e: usize| {
            named
                .iter()
                .find(|m| m.0 == e)
                .map_or((usize::MAX, 0), |m| (m.1, m.2))
        };
        let mut out: Vec<usize> = named
            .iter()
            .map(|m| m.0)
            .chain(self.any_key.iter().copied())
            .filter(|&e| {
                self.entries[e]
                    .words
                    .as_ref()
                    .is_none_or(|ws| ws.iter().any(|&w| words & (1 << w.min(127)) != 0))
            })
            .collect();
        out.sort_by_key(|&e| {
            let (start, len) = place(e);
            (
                self.entries[e].generic,
                start,
                std::cmp::Reverse(len),
                std::cmp::Reverse(self.entries[e].severity),
                e,
            )
        });
        out.dedup();
        out
    }

    /// Context-keyed secrets among the assignments around `runs` (the prefilter's
    /// base64-alphabet runs of `data`). `accept` applies the engine's filters (length
    /// bounds, entropy, allowlist, validator) to a rule and secret; the first rule (best
    /// first) it accepts wins the value. Lowers `open` to the key of an assignment whose
    /// value reaches the end of `data` (the next chunk may continue it).
    pub fn hits(
        &self,
        data: &[u8],
        runs: &[(usize, usize)],
        mut accept: impl FnMut(usize, &[u8]) -> Option<Validation>,
        open: &mut Option<usize>,
    ) -> Vec<(Candidate, Validation)> {
        let mut out = Vec::new();
        if self.is_empty() {
            return out;
        }
        for &run in runs {
            let Some(((ks, ke), (vs, ve))) = assignment(data, run) else {
                continue;
            };
            if ve == data.len() {
                *open = Some(open.map_or(ks, |o: usize| o.min(ks)));
            }
            let value = &data[vs..ve];
            // The value first: most runs in code are identifiers and paths, and these
            // checks are cheaper than reading the key.
            let value_classes = classes(value);
            if value_classes < self.min_classes || identifier_like(value) {
                continue;
            }
            let cands = self.select(&data[prose_start(data, ks)..ke]);
            if cands.is_empty() || placeholder(value) {
                continue;
            }
            for e in cands {
                let en = &self.entries[e];
                if value_classes < en.classes || (en.generic && dotted_words(value)) {
                    continue;
                }
                let Some(re) = Self::value_regex(en) else {
                    continue;
                };
                let (s, t) = match en.secret_group {
                    None if re.is_match(value) => (vs, ve),
                    None => continue,
                    Some(g) => match re.captures(value).and_then(|c| c.get(g)) {
                        Some(m) => (vs + m.start(), vs + m.end()),
                        None => continue,
                    },
                };
                if let Some(v) = accept(en.rule, &data[s..t]) {
                    out.push((
                        Candidate {
                            rule: en.rule,
                            start: s,
                            end: t,
                            generic: en.generic,
                        },
                        v,
                    ));
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_of(k: &str) -> Vec<String> {
        let (n, b) = normalize(k.as_bytes());
        let mut out = Vec::new();
        let mut start = 0;
        for i in 1..=n.len() {
            if b & (1 << i) != 0 {
                out.push(String::from_utf8(n[start..i].to_vec()).unwrap());
                start = i;
            }
        }
        out
    }

    #[test]
    fn keys_split_into_words() {
        assert_eq!(
            words_of("AWS_SECRET_ACCESS_KEY"),
            ["aws", "secret", "access", "key"]
        );
        assert_eq!(
            words_of("awsSecretAccessKey"),
            ["aws", "secret", "access", "key"]
        );
        assert_eq!(words_of("AWSSecretKey"), ["aws", "secret", "key"]);
        assert_eq!(words_of("x-api-key"), ["x", "api", "key"]);
        assert_eq!(words_of("OAUTH2_TOKEN"), ["oauth2", "token"]);
        assert_eq!(words_of("dd.apiKey"), ["dd", "api", "key"]);
    }

    fn kv(s: &str) -> Option<(String, String)> {
        let d = s.as_bytes();
        // The run: the longest stretch of base64-alphabet bytes ending at the last one.
        let re = d
            .iter()
            .rposition(|&c| super::super::prefilter::is_b64(c))
            .unwrap()
            + 1;
        let mut rs = re;
        while rs > 0 && super::super::prefilter::is_b64(d[rs - 1]) {
            rs -= 1;
        }
        assignment(d, (rs, re)).map(|((ks, ke), (vs, ve))| {
            (
                String::from_utf8(d[ks..ke].to_vec()).unwrap(),
                String::from_utf8(d[vs..ve].to_vec()).unwrap(),
            )
        })
    }

    #[test]
    fn identifiers_are_not_secrets() {
        assert!(identifier_like(b"Pkcs10AllowedSignatureTypes"));
        assert!(identifier_like(b"AbstractRequestHandlerFactory2"));
        assert!(!identifier_like(b"Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0Lz"));
        assert!(!identifier_like(
            b"hpju+rwL6xdTfLmoiv6s9AWdRYAXwUr5c0QeW2vt"
        ));
        assert!(!identifier_like(b"7e1b8d56eb86bc1347fd61bd15219714"));
    }

    #[test]
    fn identifiers_joined_by_separators_are_not_generic_secrets() {
        assert!(dotted_words(b"NID_pbe_WithSHA1And3_Key_TripleDES_CBC"));
        assert!(dotted_words(b"my-service-prod-eu-west-1"));
        assert!(!dotted_words(b"Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0Lz"));
        assert!(!dotted_words(b"Zx9Qw8Er7Ty6U_i5Op4As3Df2Gh1Jk0Lz-q8"));
        assert!(!dotted_words(b"GD8ZLjPT3U7Bmjv_pK_4Xa6KV"));
    }

    #[test]
    fn pagination_and_public_keys_are_not_credentials() {
        let rules = super::super::rules::parse_yaml(
            "version: 1\nrules:\n- {id: g, name: n, provider: p, kind: k, context: {}, pattern: '[A-Za-z0-9+/]{24,64}={0,2}', severity: medium}\n",
            "t.yaml",
        )
        .unwrap();
        let idx = Index::new(&rules);
        let v = "eav1OzQB0OM8rLdGXOEsyQWSGx7";
        let found = |text: &str| {
            let d = text.as_bytes();
            let s = text.find(v).unwrap();
            !idx.hits(
                d,
                &[(s, s + v.len())],
                |_, _| Some(Validation::NotApplicable),
                &mut None,
            )
            .is_empty()
        };
        assert!(found(&format!("API token: {v}")));
        assert!(found(&format!("SERVICE_TOKEN={v}")));
        assert!(!found(&format!("Next page token: {v}")));
        assert!(!found(&format!("\"NextContinuationToken\": \"{v}\"")));
        assert!(!found(&format!("PUBLIC_KEY={v}")));
        assert!(!found(&format!("csrf_token = '{v}'")));
        assert!(found(&format!("\"{{\\\"apiToken\\\":\\\"{v}\\\"}}\"")));
    }

    #[test]
    fn assignments_in_the_usual_syntaxes() {
        let v = "Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0Lz";
        for (text, key) in [
            (format!("export DD_API_KEY={v}"), "DD_API_KEY"),
            (format!("dd_api_key: {v}"), "dd_api_key"),
            (format!("  \"ddApiKey\": \"{v}\""), "ddApiKey"),
            (format!("dd_api_key = '{v}'"), "dd_api_key"),
            (format!("ddApiKey := \"{v}\""), "ddApiKey"),
            (format!("'dd_api_key' => '{v}'"), "dd_api_key"),
            (
                format!("os.environ[\"DD_API_KEY\"] = \"{v}\""),
                "DD_API_KEY",
            ),
            (format!("setenv(\"DD_API_KEY\", \"{v}\")"), "DD_API_KEY"),
            (format!("<ddApiKey>{v}"), "ddApiKey"),
            (format!("tool --dd-api-key {v}"), "dd-api-key"),
            (format!("tool --dd-api-key={v}"), "dd-api-key"),
            (format!("https://x/y?dd_api_key={v}"), "dd_api_key"),
            (format!("DD-API-KEY: {v}"), "DD-API-KEY"),
        ] {
            assert_eq!(kv(&text), Some((key.to_string(), v.to_string())), "{text}");
        }
        for text in [
            format!("call({v})"),
            format!("x {v}"),
            format!("path/{v}"),
            format!("a.{v}"),
            format!("Foo::{v}"),
            format!("tool -x {v}"),
            format!("123 = {v}"),
        ] {
            assert_eq!(kv(&text), None, "{text}");
        }
    }
}
