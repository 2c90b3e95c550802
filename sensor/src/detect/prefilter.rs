//! Keyword prefilter. Searching for all ~90 rule keywords at once defeats the SIMD
//! (Teddy) literal search — its fingerprints saturate and it falls back to a DFA at a few
//! hundred MB/s — while a couple dozen short, rare literals run at several GB/s. So every
//! keyword is covered by an *anchor*: a 2–4 byte substring chosen by greedy set cover to be
//! shared by as many keywords as possible and rare in ordinary text (by a static byte
//! frequency model of source code and logs). Anchors are found with Teddy, in groups of
//! at most [`GROUP`]; each hit is verified against the keywords it anchors.

use aho_corasick::packed;

/// Anchors per SIMD searcher (Teddy stays selective up to about this many).
const GROUP: usize = 24;
/// An anchor expected more often than this (per byte) is too common to be useful.
const MAX_FREQ: f64 = 2e-4;

/// Estimated frequency of a byte in source code and logs.
fn byte_freq(b: u8) -> f64 {
    const LOWER: [f64; 26] = [
        8.2, 1.5, 2.8, 4.3, 12.7, 2.2, 2.0, 6.1, 7.0, 0.15, 0.8, 4.0, 2.4, 6.7, 7.5, 1.9, 0.1, 6.0, 6.3, 9.1, 2.8, 1.0, 2.4, 0.15, 2.0, 0.07,
    ];
    match b {
        b'a'..=b'z' => LOWER[(b - b'a') as usize] / 100.0 * 0.6,
        b'A'..=b'Z' => LOWER[(b - b'A') as usize] / 100.0 * 0.06,
        b'0'..=b'9' => 0.006,
        b' ' => 0.15,
        b'\n' => 0.03,
        b'_' | b'.' => 0.012,
        b'-' | b'/' | b'(' | b')' | b'"' | b',' | b';' => 0.006,
        b':' | b'=' => 0.004,
        b'~' => 0.0001,
        _ => 0.002,
    }
}

/// Expected matches per byte of text. Runs of lowercase letters are words, far more
/// common than the letter model says, so they cost a thousand times more.
fn cost(s: &[u8]) -> f64 {
    let f: f64 = s.iter().map(|&b| byte_freq(b)).product();
    let wordlike = s.iter().all(|b| b.is_ascii_lowercase());
    let f = if wordlike { f * 1000.0 } else { f };
    if f > MAX_FREQ {
        f * 1e3
    } else {
        f
    }
}

/// An anchor and the keywords it covers (keyword index, offset of the anchor in it).
struct Anchor {
    text: Vec<u8>,
    covers: Vec<(usize, usize)>,
}

/// The compiled prefilter.
pub struct Prefilter {
    keywords: Vec<Vec<u8>>,
    anchors: Vec<Anchor>,
    /// (searcher, index of its first anchor)
    groups: Vec<(packed::Searcher, usize)>,
}

impl Prefilter {
    /// Builds anchors for `keywords` (each at least 2 bytes).
    pub fn new(keywords: &[String]) -> Option<Prefilter> {
        let kw: Vec<Vec<u8>> = keywords.iter().map(|k| k.as_bytes().to_vec()).collect();
        let mut uncovered: Vec<bool> = vec![true; kw.len()];
        // Every 2..=4-byte substring of every keyword, with the keywords containing it.
        let mut cands: std::collections::BTreeMap<Vec<u8>, Vec<usize>> = Default::default();
        for (i, k) in kw.iter().enumerate() {
            for len in 2..=4.min(k.len()) {
                for s in 0..=k.len() - len {
                    let list = cands.entry(k[s..s + len].to_vec()).or_default();
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                }
            }
        }
        let costs: Vec<(f64, &Vec<u8>, &Vec<usize>)> = cands.iter().map(|(c, l)| (cost(c), c, l)).collect();
        let mut chosen: Vec<(Vec<u8>, Anchor)> = Vec::new();
        while uncovered.iter().any(|u| *u) {
            // Weighted set cover: estimated hits per keyword covered (squared, to favour
            // anchors that many keywords share).
            let mut best: Option<(f64, Vec<u8>)> = None;
            for (c, cand, list) in &costs {
                let gain = list.iter().filter(|&&j| uncovered[j]).count() as f64;
                if gain == 0.0 {
                    continue;
                }
                let score = c / (gain * gain);
                if best.as_ref().is_none_or(|(b, _)| score < *b) {
                    best = Some((score, cand.to_vec()));
                }
            }
            let (_, a) = best?;
            let mut covers = Vec::new();
            for (j, other) in kw.iter().enumerate() {
                // An anchor may occur several times in a keyword: record each offset.
                for off in find_all(other, &a) {
                    covers.push((j, off));
                }
                if contains(other, &a) {
                    uncovered[j] = false;
                }
            }
            chosen.push((a.clone(), Anchor { text: a, covers }));
        }
        // Teddy fingerprints as many bytes as the group's shortest anchor (up to 3): keep
        // short anchors together so they do not blunt the others.
        chosen.sort_by_key(|(a, _)| std::cmp::Reverse(a.len().min(3)));
        let mut groups = Vec::new();
        let mut start = 0;
        while start < chosen.len() {
            let fp = chosen[start].0.len().min(3);
            let mut end = start;
            while end < chosen.len() && end - start < GROUP && chosen[end].0.len().min(3) == fp {
                end += 1;
            }
            let mut b = packed::Config::new().match_kind(packed::MatchKind::LeftmostFirst).builder();
            for (a, _) in &chosen[start..end] {
                b.add(a);
            }
            groups.push((b.build()?, start));
            start = end;
        }
        Some(Prefilter { keywords: kw, anchors: chosen.into_iter().map(|(_, a)| a).collect(), groups })
    }

    /// Number of anchors.
    pub fn anchors(&self) -> usize {
        self.anchors.len()
    }

    /// The anchors, for diagnostics.
    pub fn anchor_texts(&self) -> Vec<String> {
        self.anchors.iter().map(|a| String::from_utf8_lossy(&a.text).into_owned()).collect()
    }

    /// Every (keyword index, start) occurrence in `data`, sorted by start.
    pub fn find(&self, data: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (searcher, first) in &self.groups {
            let mut at = 0;
            while at < data.len() {
                let Some(m) = searcher.find_in(data, aho_corasick::Span::from(at..data.len())) else { break };
                for &(k, off) in &self.anchors[first + m.pattern().as_usize()].covers {
                    if m.start() < off {
                        continue;
                    }
                    let s = m.start() - off;
                    let kw = &self.keywords[k];
                    if data.len() - s >= kw.len() && &data[s..s + kw.len()] == kw.as_slice() {
                        out.push((k, s));
                    }
                }
                // Next search from the following byte: anchors may overlap.
                at = m.start() + 1;
            }
        }
        out.sort_unstable_by_key(|&(k, s)| (s, k));
        out.dedup();
        out
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_keyword_occurrence_including_overlaps() {
        let kws: Vec<String> = ["ghp_", "gho_", "ghs_eyJ", "ghs_", "glpat-", "eyJ", "AKIA", "Q~", ":AA"].iter().map(|s| s.to_string()).collect();
        let p = Prefilter::new(&kws).unwrap();
        let text = b"x ghp_abc ghs_eyJhb glpat-1 AKIAXX 8Q~y 123:AAbb eyJ";
        let found: Vec<(String, usize)> = p.find(text).into_iter().map(|(k, s)| (kws[k].clone(), s)).collect();
        let want = [("ghp_", 2), ("ghs_eyJ", 10), ("ghs_", 10), ("eyJ", 14), ("glpat-", 20), ("AKIA", 28), ("Q~", 36), (":AA", 43), ("eyJ", 49)];
        for (k, s) in want {
            assert!(found.contains(&(k.to_string(), s)), "{k}@{s} missing from {found:?}");
        }
        assert_eq!(found.len(), want.len(), "{found:?}");
    }

    #[test]
    fn builtin_keywords_need_few_anchors() {
        let mut kws: Vec<String> = crate::detect::rules::builtin().iter().flat_map(|r| r.keywords.clone()).collect();
        kws.sort();
        kws.dedup();
        let p = Prefilter::new(&kws).unwrap();
        eprintln!("{} anchors: {:?}", p.anchors(), p.anchor_texts());
        assert!(p.anchors() < kws.len(), "{} anchors for {} keywords", p.anchors(), kws.len());
    }
}
