//! Sensitive-word filtering that evasion does not beat.
//!
//! A [`Filter`] is built from a [`Dictionary`] of deny entries (word,
//! category, [`Action`]) and an allow-list of longer innocent words, and
//! finds every deny word in a text even when it is disguised:
//!
//! - **width and case**: `ＳＢ`, `Sb` are `sb`;
//! - **digit styles**: `①`, `❶`, `⑴`, `⒈`, `９` are digits;
//! - **traditional characters**: `穩賺不賠` is `稳赚不赔` (OpenCC's table);
//! - **noise between characters**: spaces, punctuation, symbols, emoji and
//!   zero-width characters are skipped (`稳 赚 不 赔`, `稳*赚*不*赔`,
//!   `稳\u{200b}赚不赔`), but only a few per gap and never across a line
//!   break, because deleting noise also glues phrases together;
//!
//! while a real letter or CJK character between them breaks the word
//! (`稳定赚钱不赔本` is clean), a Latin word only matches whole (`sb` is not
//! in `usb` nor in `thanks bye`), and a deny word inside an allowed word is
//! not a hit (`刷单词` does not hit `刷单`).
//!
//! Matching runs [`aho_corasick`] over a folded copy of the text in which
//! every character maps to exactly one character, so each hit is reported
//! as the exact byte range of the original text, skipped characters inside
//! it included.
//!
//! ```
//! use wca_filter::{Action, Dictionary};
//!
//! let mut dict = Dictionary::new();
//! dict.add_deny("deny.tsv", "稳赚不赔\tfraud\tblock\n傻逼\tabuse\tmask\n")?;
//! dict.add_allow("allow.txt", "刷单词\n")?;
//! let filter = dict.build()?;
//!
//! let verdict = filter.check("保证穩 赚·不 赔！");
//! assert_eq!(verdict.action(), Some(Action::Block));
//! let hit = &verdict.hits[0];
//! assert_eq!(hit.entry.word, "稳赚不赔");
//! assert_eq!(&"保证穩 赚·不 赔！"[hit.start..hit.end], "穩 赚·不 赔");
//! assert_eq!(verdict.masked("保证穩 赚·不 赔！"), "保证*******！");
//!
//! assert!(filter.check("稳定赚钱不赔本").hits.is_empty());
//! # Ok::<(), wca_filter::FilterError>(())
//! ```

mod dict;
mod normalize;
mod reload;
mod tables;

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::Serialize;

pub use dict::{Action, BUILTIN_ALLOW, BUILTIN_DENY, DenyEntry, Dictionary};
pub use reload::{DictionaryFiles, DictionarySource, ReloadingFilter};

use normalize::{Alphabet, Normalized, fold, fold_word, is_latin_alnum};

/// Everything that can go wrong building a filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A dictionary line is malformed.
    #[error("{file}:{line}: {reason}")]
    Line {
        /// The file or source name.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A dictionary file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The path.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// A word has nothing left to match after normalisation (`***`).
    #[error("{origin}: {word:?} has no letters, digits or CJK characters to match")]
    EmptyWord {
        /// `source:line` of the entry.
        origin: String,
        /// The word as written.
        word: String,
    },
    /// The same word is both denied and allowed.
    #[error("{word:?} is both denied ({deny}) and allowed ({allow})")]
    Conflict {
        /// The word, folded.
        word: String,
        /// Where it is denied.
        deny: String,
        /// Where it is allowed.
        allow: String,
    },
    /// The automaton could not be built.
    #[error("cannot build the matcher: {0}")]
    Build(String),
}

/// Tuning of the matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The most skippable characters (spaces, punctuation, symbols, emoji)
    /// allowed between two characters of a word. Zero-width and format
    /// characters do not count; a line break always ends a word.
    pub max_gap: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { max_gap: 3 }
    }
}

#[derive(Debug, Clone)]
struct Pattern {
    /// Indices into `Filter::deny` (one folded word may carry several
    /// categories).
    deny: Vec<usize>,
    allow: bool,
    latin_head: bool,
    latin_tail: bool,
    chars: usize,
}

/// A built, immutable filter. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Filter {
    ac: Option<AhoCorasick>,
    alphabet: Option<Alphabet>,
    has_allow: bool,
    patterns: Vec<Pattern>,
    deny: Vec<DenyEntry>,
    options: Options,
}

/// One deny word found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit<'f> {
    /// The dictionary entry.
    pub entry: &'f DenyEntry,
    /// Byte offset in the original text where the hit starts.
    pub start: usize,
    /// Byte offset in the original text just past the hit.
    pub end: usize,
    chars: usize,
}

impl Hit<'_> {
    /// Whether the hit exists only because characters were skipped inside
    /// it (its original span holds more characters than the word).
    pub fn skipped_characters(&self, text: &str) -> bool {
        text.get(self.start..self.end)
            .is_some_and(|span| span.chars().count() > self.chars)
    }
}

/// All hits in one text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict<'f> {
    /// Hits ordered by start, longer first; nested and overlapping hits
    /// are all reported.
    pub hits: Vec<Hit<'f>>,
}

impl Verdict<'_> {
    /// The strictest action of any hit; `None` when clean.
    pub fn action(&self) -> Option<Action> {
        self.hits.iter().map(|h| h.entry.action).max()
    }

    /// `text` with every character inside a hit's span replaced by `*`,
    /// everything else untouched.
    pub fn masked(&self, text: &str) -> String {
        if self.hits.is_empty() {
            return text.to_owned();
        }
        let mut spans: Vec<(usize, usize)> = self.hits.iter().map(|h| (h.start, h.end)).collect();
        spans.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in spans {
            let start = start.max(at);
            if end <= start {
                continue;
            }
            out.push_str(&text[at..start]);
            out.extend(text[start..end].chars().map(|_| '*'));
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// The hits as audit records ([`wca_core::ComplianceWord`]).
    pub fn compliance_words(&self) -> Vec<wca_core::ComplianceWord> {
        self.hits
            .iter()
            .map(|h| wca_core::ComplianceWord {
                word: h.entry.word.clone(),
                category: h.entry.category.clone(),
                action: h.entry.action.as_str().to_owned(),
                start: h.start,
                end: h.end,
            })
            .collect()
    }

    /// The serialisable report of this verdict on `text`.
    pub fn report(&self, text: &str) -> Report {
        Report {
            text: text.to_owned(),
            hits: self
                .hits
                .iter()
                .map(|h| ReportHit {
                    word: h.entry.word.clone(),
                    category: h.entry.category.clone(),
                    action: h.entry.action,
                    start: h.start,
                    end: h.end,
                })
                .collect(),
            action: self.action().map_or("pass", Action::as_str).to_owned(),
            masked: self.masked(text),
        }
    }
}

/// The JSON shape of a check, shared by `wca filter`, the `filter`
/// function and the compliance records. Stable: field names and meanings
/// do not change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Report {
    /// The text checked.
    pub text: String,
    /// Hits, empty when clean.
    pub hits: Vec<ReportHit>,
    /// The strictest action: `block`, `mask`, `flag`, or `pass` when clean.
    pub action: String,
    /// The text with every hit's span replaced by `*`.
    pub masked: String,
}

/// One hit in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ReportHit {
    /// The dictionary entry as written.
    pub word: String,
    /// Its category.
    pub category: String,
    /// Its action.
    pub action: Action,
    /// Byte offset in `text` where the hit starts.
    pub start: usize,
    /// Byte offset in `text` just past the hit.
    pub end: usize,
}

/// Reusable buffers for [`Filter::check_with`], to avoid allocating per
/// text in hot loops.
#[derive(Debug, Default)]
pub struct Scratch {
    norm: Normalized,
    allow: Vec<(usize, usize)>,
    found: Vec<(usize, usize, u32)>,
}

impl Filter {
    fn build(dict: &Dictionary, options: Options) -> Result<Self, FilterError> {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut patterns: Vec<Pattern> = Vec::new();
        let mut folded_words: Vec<String> = Vec::new();
        let mut deny_origin: HashMap<usize, String> = HashMap::new();
        let mut deny = Vec::with_capacity(dict.deny.len());
        let mut seen: HashMap<(usize, String), usize> = HashMap::new();
        let mut slot = |folded: String,
                        patterns: &mut Vec<Pattern>,
                        folded_words: &mut Vec<String>|
         -> usize {
            *index.entry(folded.clone()).or_insert_with(|| {
                let chars = folded.chars().count();
                patterns.push(Pattern {
                    deny: Vec::new(),
                    allow: false,
                    latin_head: folded.chars().next().is_some_and(is_latin_alnum),
                    latin_tail: folded.chars().next_back().is_some_and(is_latin_alnum),
                    chars,
                });
                folded_words.push(folded);
                patterns.len() - 1
            })
        };
        for entry in &dict.deny {
            let folded = folded_or_err(&entry.word, &entry.origin)?;
            let id = slot(folded, &mut patterns, &mut folded_words);
            let action = entry
                .action
                .unwrap_or_else(|| dict.default_action(&entry.category));
            // The same word twice in one category: keep the strictest.
            match seen.get(&(id, entry.category.clone())) {
                Some(&i) => {
                    let existing: &mut DenyEntry = &mut deny[i];
                    existing.action = existing.action.max(action);
                }
                None => {
                    seen.insert((id, entry.category.clone()), deny.len());
                    deny_origin
                        .entry(id)
                        .or_insert_with(|| entry.origin.clone());
                    patterns[id].deny.push(deny.len());
                    deny.push(DenyEntry {
                        word: entry.word.clone(),
                        category: entry.category.clone(),
                        action,
                    });
                }
            }
        }
        for (word, origin) in &dict.allow {
            let folded = folded_or_err(word, origin)?;
            let id = slot(folded, &mut patterns, &mut folded_words);
            if let Some(deny) = deny_origin.get(&id) {
                return Err(FilterError::Conflict {
                    word: folded_words[id].clone(),
                    deny: deny.clone(),
                    allow: origin.clone(),
                });
            }
            patterns[id].allow = true;
        }
        let alphabet = Alphabet::new(folded_words.iter().map(String::as_str)).ok_or_else(|| {
            FilterError::Build("the words use more than 65,535 distinct characters".to_owned())
        })?;
        let ac = if folded_words.is_empty() {
            None
        } else {
            let coded: Vec<Vec<u8>> = folded_words.iter().map(|w| alphabet.encode(w)).collect();
            Some(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::Standard)
                    // Dense transitions only near the root: with tens of
                    // thousands of words, deeper dense states cost more in
                    // cache misses than they save (measured: depth 2 ran
                    // the 50,000-word benchmark 15% faster than 3).
                    .dense_depth(2)
                    .build(&coded)
                    .map_err(|e| FilterError::Build(e.to_string()))?,
            )
        };
        Ok(Self {
            ac,
            alphabet: Some(alphabet),
            has_allow: patterns.iter().any(|p| p.allow),
            patterns,
            deny,
            options,
        })
    }

    /// A filter that finds nothing.
    pub fn empty() -> Self {
        Self {
            ac: None,
            alphabet: None,
            has_allow: false,
            patterns: Vec::new(),
            deny: Vec::new(),
            options: Options::default(),
        }
    }

    /// Number of deny entries.
    pub fn deny_len(&self) -> usize {
        self.deny.len()
    }

    /// Every deny word in `text`.
    pub fn check(&self, text: &str) -> Verdict<'_> {
        self.check_with(text, &mut Scratch::default())
    }

    /// [`check`](Self::check) with reusable buffers.
    pub fn check_with(&self, text: &str, scratch: &mut Scratch) -> Verdict<'_> {
        let (Some(ac), Some(alphabet)) = (&self.ac, &self.alphabet) else {
            return Verdict::default();
        };
        let Scratch { norm, allow, found } = scratch;
        norm.fill(text, self.options.max_gap, alphabet);
        allow.clear();
        found.clear();
        let mut hits = Vec::new();
        // Without allowed words every deny match is final at once; with
        // them, allowed spans must all be known first.
        let direct = !self.has_allow;
        for m in ac.find_overlapping_iter(norm.codes.as_slice()) {
            // Two bytes a character: a match at an odd offset straddles two.
            if m.start() % 2 != 0 {
                continue;
            }
            let (s, e) = (m.start() / 2, m.end() / 2);
            let pid = m.pattern().as_usize();
            let pattern = &self.patterns[pid];
            if (pattern.latin_head && glued_before(text, norm.origin[s]))
                || (pattern.latin_tail && glued_after(text, char_end(text, norm.origin[e - 1])))
            {
                continue;
            }
            if direct {
                self.push_hits(&mut hits, text, &norm.origin[s..e], &norm.gaps[s..e], pid);
                continue;
            }
            if pattern.allow {
                allow.push((s, e));
            }
            if !pattern.deny.is_empty() {
                found.push((s, e, pid as u32));
            }
        }
        if !found.is_empty() {
            // A deny hit wholly inside an allowed word's span is not a hit.
            allow.sort_unstable();
            let mut reach = Vec::with_capacity(allow.len());
            let mut furthest = 0;
            for &(_, e) in allow.iter() {
                furthest = furthest.max(e);
                reach.push(furthest);
            }
            for &(s, e, pid) in found.iter() {
                let before = allow.partition_point(|&(a, _)| a <= s);
                if before > 0 && reach[before - 1] >= e {
                    continue;
                }
                self.push_hits(
                    &mut hits,
                    text,
                    &norm.origin[s..e],
                    &norm.gaps[s..e],
                    pid as usize,
                );
            }
        }
        Verdict { hits }
    }

    /// The hits of pattern `pid`, matched on the characters that start at
    /// `starts` in `text`, unless the match is two phrases glued together.
    fn push_hits<'f>(
        &'f self,
        hits: &mut Vec<Hit<'f>>,
        text: &str,
        starts: &[usize],
        gaps: &[u8],
        pid: usize,
    ) {
        let pattern = &self.patterns[pid];
        let (Some(&start), Some(&last)) = (starts.first(), starts.last()) else {
            return;
        };
        if !evasion_shaped(gaps, pattern.chars) {
            return;
        }
        let end = char_end(text, last);
        for &i in &pattern.deny {
            hits.push(Hit {
                entry: &self.deny[i],
                start,
                end,
                chars: pattern.chars,
            });
            // Matches come ordered by their end; hits are kept in text
            // order, longer first. A word spans a few characters, so a new
            // hit moves back a few places at most: cheaper than sorting.
            let mut at = hits.len() - 1;
            while at > 0 && {
                let (a, b) = (&hits[at - 1], &hits[at]);
                (a.start, std::cmp::Reverse(a.end)) > (b.start, std::cmp::Reverse(b.end))
            } {
                hits.swap(at - 1, at);
                at -= 1;
            }
        }
    }
}

/// Whether a hit looks like a disguised word rather than two phrases
/// glued together, from what was skipped before each of its characters
/// (`gaps`, see [`normalize::GAP_SKIPPED`]). Deleting clause punctuation
/// makes false words across phrase boundaries (`讨论，理论` holds `论，理`),
/// so a hit across it counts only when the word has at least three
/// characters and every gap inside it is filled (`稳，赚，不，赔`): the
/// shape of deliberate insertion. Spaces, symbols, emoji and zero-width
/// characters are skipped without this condition.
fn evasion_shaped(gaps: &[u8], chars: usize) -> bool {
    let inner = gaps.get(1..).unwrap_or_default();
    if inner.iter().all(|g| g & normalize::GAP_PAUSE == 0) {
        return true;
    }
    chars >= 3 && inner.iter().all(|g| g & normalize::GAP_SKIPPED != 0)
}

fn folded_or_err(word: &str, origin: &str) -> Result<String, FilterError> {
    match fold_word(word) {
        Some(f) if !f.is_empty() => Ok(f),
        _ => Err(FilterError::EmptyWord {
            origin: origin.to_owned(),
            word: word.to_owned(),
        }),
    }
}

/// Byte offset just past the character that starts at `at`.
fn char_end(text: &str, at: usize) -> usize {
    at + text[at..].chars().next().map_or(0, char::len_utf8)
}

/// Whether the character right before byte `start` of the original is a
/// Latin letter or digit (after folding: `Ａ` is `a`), so a Latin word
/// starting there would be the tail of a longer one.
fn glued_before(text: &str, start: usize) -> bool {
    text[..start]
        .chars()
        .next_back()
        .is_some_and(|c| is_latin_alnum(fold(c).0))
}

/// Whether the character right at byte `end` of the original is a Latin
/// letter or digit.
fn glued_after(text: &str, end: usize) -> bool {
    text[end..]
        .chars()
        .next()
        .is_some_and(|c| is_latin_alnum(fold(c).0))
}
