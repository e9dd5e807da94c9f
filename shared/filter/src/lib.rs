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
//! Matching runs an [`aho_corasick`] automaton over the text as it is
//! folded, one character to one character, in a single pass without a
//! copy, so each hit is reported as the exact byte range of the original
//! text, skipped characters inside it included. The pass restarts at
//! clause punctuation (`，`, `。`, …); the few stretches where a word could
//! run across it (`稳，赚，不，赔`) are scanned again on their own. Long
//! texts are scanned with a memo of whole-character steps of the
//! automaton, which finds the same hits sooner.
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

mod cache;
mod dict;
mod normalize;
mod reload;
mod tables;

use std::collections::HashMap;

use aho_corasick::{
    Anchored, MatchKind,
    automaton::{Automaton, StateID},
    nfa::contiguous,
};
use serde::Serialize;

pub use dict::{Action, BUILTIN_ALLOW, BUILTIN_DENY, DenyEntry, Dictionary};
pub use reload::{DictionaryFiles, DictionarySource, ReloadingFilter};

use normalize::{Alphabet, Class, Scanner, Step, fold, fold_word, is_latin_alnum};

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

/// The automaton over the coded words, their alphabet, and where an
/// unanchored search starts.
#[derive(Debug, Clone)]
struct Matcher {
    nfa: contiguous::NFA,
    alphabet: Alphabet,
    start: StateID,
    /// Whether long texts may be scanned with a [`cache::TransitionCache`].
    cacheable: bool,
}

/// One folded word of the automaton while the filter is built.
#[derive(Debug)]
struct Draft<'d> {
    /// Indices into the deny entries (one folded word may carry several
    /// categories).
    deny: Vec<usize>,
    /// Where it was first denied.
    denied_at: Option<&'d dict::Origin>,
    allow: bool,
}

/// One folded word of the automaton: 16 bytes, so that looking one up per
/// match stays in cache even for large dictionaries.
#[derive(Debug, Clone, Copy)]
struct Pattern {
    /// Its deny entries are `Filter::deny[first_deny..][..denies]`.
    first_deny: u32,
    denies: u32,
    chars: u32,
    flags: u8,
}

impl Pattern {
    const ALLOW: u8 = 1;
    /// Starts with a Latin letter or digit: must not follow one.
    const LATIN_HEAD: u8 = 2;
    /// Ends with a Latin letter or digit: must not be followed by one.
    const LATIN_TAIL: u8 = 4;

    fn has(self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn chars(self) -> usize {
        self.chars as usize
    }
}

/// A built, immutable filter. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Filter {
    /// `None` for an empty dictionary.
    matcher: Option<Matcher>,
    has_allow: bool,
    /// The most characters in one word.
    longest: usize,
    /// By pattern id. The first `plain` have one deny entry each, at the
    /// same index, and no flags.
    patterns: Vec<Pattern>,
    plain: usize,
    /// Plain pattern ids are sorted by length: ids below `.0` (and at or
    /// above the previous run's) have `.1` characters.
    plain_runs: Vec<(usize, usize)>,
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
}

impl Hit<'_> {
    /// Whether the hit exists only because characters were skipped inside
    /// it: its span in `text`, the text it was found in, holds more than
    /// the word's own characters.
    pub fn skipped_characters(&self, text: &str) -> bool {
        text.get(self.start..self.end)
            .is_some_and(|span| span.chars().any(|c| fold(c).1 != normalize::Class::Word))
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

/// The filter screens messages we start (customer-service messages,
/// campaigns) as it screens passive replies.
impl wca_core::OutboundScreen for Filter {
    fn screen(&self, text: &str) -> Option<wca_core::outbound::Screened> {
        let verdict = self.check(text);
        let action = verdict.action()?;
        Some(wca_core::outbound::Screened {
            action: action.as_str().to_owned(),
            masked: verdict.masked(text),
            hits: verdict.compliance_words(),
        })
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
    /// Where the last word characters fed start, by position modulo its
    /// length (a power of two at least the longest word).
    recent: Vec<usize>,
    /// The same for the rescan of a filled run (allocated when one is).
    again: Vec<usize>,
    allow: Vec<(usize, usize)>,
    found: Vec<(usize, usize, u32)>,
    /// Slots of the [`cache::TransitionCache`] for long texts.
    steps: Vec<u64>,
}

impl Filter {
    fn build(dict: &Dictionary, options: Options) -> Result<Self, FilterError> {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut drafts: Vec<Draft<'_>> = Vec::new();
        let mut folded_words: Vec<String> = Vec::new();
        let mut deny: Vec<DenyEntry> = Vec::with_capacity(dict.deny.len());
        let mut slot = |folded: String,
                        drafts: &mut Vec<Draft<'_>>,
                        folded_words: &mut Vec<String>|
         -> usize {
            *index.entry(folded.clone()).or_insert_with(|| {
                drafts.push(Draft {
                    deny: Vec::new(),
                    denied_at: None,
                    allow: false,
                });
                folded_words.push(folded);
                drafts.len() - 1
            })
        };
        for entry in &dict.deny {
            let folded = folded_or_err(&entry.word, &entry.origin)?;
            let id = slot(folded, &mut drafts, &mut folded_words);
            let action = entry
                .action
                .unwrap_or_else(|| dict.default_action(&entry.category));
            let draft = &mut drafts[id];
            // The same word twice in one category: keep the strictest.
            match draft
                .deny
                .iter()
                .find(|&&i| deny[i].category == entry.category)
            {
                Some(&i) => deny[i].action = deny[i].action.max(action),
                None => {
                    draft.denied_at.get_or_insert(&entry.origin);
                    draft.deny.push(deny.len());
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
            let id = slot(folded, &mut drafts, &mut folded_words);
            if let Some(denied) = drafts[id].denied_at {
                return Err(FilterError::Conflict {
                    word: folded_words[id].clone(),
                    deny: denied.to_string(),
                    allow: origin.to_string(),
                });
            }
            drafts[id].allow = true;
        }
        // Pattern order: first the plain words (one deny entry, no
        // allow-list or Latin rule), whose pattern id is also the index of
        // their deny entry, so a match of one needs no lookup; then the
        // rest. Deny entries are regrouped by word, each word's in a range.
        let latin = |c: Option<char>| c.is_some_and(is_latin_alnum);
        let flags: Vec<u8> = drafts
            .iter()
            .zip(&folded_words)
            .map(|(draft, folded)| {
                [
                    (draft.allow, Pattern::ALLOW),
                    (latin(folded.chars().next()), Pattern::LATIN_HEAD),
                    (latin(folded.chars().next_back()), Pattern::LATIN_TAIL),
                ]
                .into_iter()
                .filter(|&(on, _)| on)
                .fold(0, |acc, (_, flag)| acc | flag)
            })
            .collect();
        let is_plain = |i: usize| flags[i] == 0 && drafts[i].deny.len() == 1;
        let (mut order, rest): (Vec<usize>, Vec<usize>) =
            (0..drafts.len()).partition(|&i| is_plain(i));
        // Plain words by length, so a plain match's length is found in a
        // short table instead of a lookup per match.
        let chars: Vec<usize> = folded_words.iter().map(|w| w.chars().count()).collect();
        order.sort_by_key(|&i| chars[i]);
        let mut plain_runs: Vec<(usize, usize)> = Vec::new();
        for (pid, &i) in order.iter().enumerate() {
            match plain_runs.last_mut() {
                Some((end, len)) if *len == chars[i] => *end = pid + 1,
                _ => plain_runs.push((pid + 1, chars[i])),
            }
        }
        let plain = order.len();
        order.extend(rest);
        let too_many = || FilterError::Build("more than 4,294,967,295 entries".to_owned());
        let mut deny: Vec<Option<DenyEntry>> = deny.into_iter().map(Some).collect();
        let mut grouped = Vec::with_capacity(deny.len());
        let mut patterns = Vec::with_capacity(order.len());
        for &i in &order {
            let first_deny = u32::try_from(grouped.len()).map_err(|_| too_many())?;
            grouped.extend(drafts[i].deny.iter().filter_map(|&d| deny[d].take()));
            patterns.push(Pattern {
                first_deny,
                denies: u32::try_from(drafts[i].deny.len()).map_err(|_| too_many())?,
                chars: u32::try_from(chars[i]).map_err(|_| too_many())?,
                flags: flags[i],
            });
        }
        let deny = grouped;
        let folded_words: Vec<String> = order
            .iter()
            .map(|&i| std::mem::take(&mut folded_words[i]))
            .collect();
        let matcher = if folded_words.is_empty() {
            None
        } else {
            let alphabet = Alphabet::new(folded_words.iter().map(String::as_str));
            let coded: Vec<Vec<u8>> = folded_words.iter().map(|w| alphabet.encode(w)).collect();
            let nfa = contiguous::Builder::new()
                .match_kind(MatchKind::Standard)
                // Dense transitions for the states of a word's first
                // character (aho-corasick counts depth from 0 at the first
                // byte), sparse below: with tens of thousands of words,
                // deeper dense states cost more in cache misses than they
                // save (measured on the 50,000-word benchmark with two-byte
                // codes: one character dense ran 10% faster than half a
                // character, and 20% faster than one and a half).
                .dense_depth(alphabet.width())
                .build(&coded)
                .map_err(|e| FilterError::Build(e.to_string()))?;
            let start = nfa
                .start_state(Anchored::No)
                .map_err(|e| FilterError::Build(e.to_string()))?;
            Some(Matcher {
                cacheable: alphabet.width() == 2 && cache::fits(&nfa),
                nfa,
                alphabet,
                start,
            })
        };
        Ok(Self {
            matcher,
            has_allow: patterns.iter().any(|p| p.has(Pattern::ALLOW)),
            longest: patterns.iter().map(|p| p.chars()).max().unwrap_or(0),
            patterns,
            plain,
            plain_runs,
            deny,
            options,
        })
    }

    /// A filter that finds nothing.
    pub fn empty() -> Self {
        Self {
            matcher: None,
            has_allow: false,
            longest: 0,
            patterns: Vec::new(),
            plain: 0,
            plain_runs: Vec::new(),
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
        let Some(matcher) = &self.matcher else {
            return Verdict::default();
        };
        // One copy of the loop per code width, so that feeding a character
        // to the automaton is unrolled.
        match matcher.alphabet.width() {
            1 => self.search::<1, false>(matcher, text, scratch),
            2 if matcher.cacheable && text.len() >= cache::FROM_BYTES => {
                self.search::<2, true>(matcher, text, scratch)
            }
            2 => self.search::<2, false>(matcher, text, scratch),
            _ => self.search::<3, false>(matcher, text, scratch),
        }
    }

    /// `CACHED`: with a [`cache::TransitionCache`] (two-byte codes only).
    fn search<'f, const WIDTH: usize, const CACHED: bool>(
        &'f self,
        matcher: &Matcher,
        text: &str,
        scratch: &mut Scratch,
    ) -> Verdict<'f> {
        let Matcher {
            nfa,
            alphabet,
            start,
            ..
        } = matcher;
        let start = *start;
        let Scratch {
            recent,
            again,
            allow,
            found,
            steps,
        } = scratch;
        let mut cache = CACHED.then(|| cache::TransitionCache::prepare(steps, text.len()));
        let size = self.longest.next_power_of_two();
        if recent.len() < size {
            recent.resize(size, 0);
        }
        let mask = recent.len() - 1;
        allow.clear();
        found.clear();
        let mut hits = Vec::new();
        // Without allowed words every deny match is final at once; with
        // them, allowed spans must all be known first.
        let direct = !self.has_allow;
        let mut scanner = Scanner::new(alphabet, self.options.max_gap);
        let mut sid = start;
        // Word characters fed so far: the position in `recent`.
        let mut fed = 0usize;
        // No word joins a character fed before this position to one fed
        // at or after it: a letter or ideograph of no word came between.
        let mut barrier = 0usize;
        let mut run = Run::NONE;
        // A filled run that has ended is rescanned if a word across
        // clause punctuation may lie in it.
        let mut finish_run = |run: Run, hits: &mut Vec<Hit<'f>>, allow: &mut _, found: &mut _| {
            if run.may_cross_a_pause() {
                let sink = &mut Sink {
                    direct,
                    hits,
                    allow,
                    found,
                };
                self.rescan::<WIDTH>(matcher, text, run, again, sink);
            }
        };
        for (at, c) in text.char_indices() {
            let code = match scanner.step(c) {
                Step::Skip => continue,
                Step::Reset => {
                    sid = start;
                    barrier = fed;
                    continue;
                }
                Step::Word {
                    code,
                    flags,
                    restart,
                } => {
                    // Only after a gap: a character right after another
                    // neither extends a filled run nor starts one.
                    if flags != 0 || restart {
                        if !restart && flags & normalize::GAP_SKIPPED != 0 && fed > barrier {
                            if run.last.wrapping_add(1) != fed {
                                finish_run(run, &mut hits, allow, found);
                                run = Run::new(fed - 1, recent[(fed - 1) & mask]);
                            }
                            run.last = fed;
                            run.end = at + c.len_utf8();
                            run.pause |= flags & normalize::GAP_PAUSE != 0;
                        }
                        // Matches across clause punctuation are left to
                        // the run's rescan, so no fallback through the
                        // automaton's failure links is paid here.
                        if restart || flags & normalize::GAP_PAUSE != 0 {
                            sid = start;
                        }
                    }
                    code
                }
            };
            recent[fed & mask] = at;
            fed += 1;
            sid = match &mut cache {
                Some(cache) if CACHED => cache.feed(nfa, sid, code),
                _ => feed::<WIDTH>(nfa, sid, code),
            };
            if CACHED
                && fed.is_multiple_of(cache::WINDOW)
                && cache.as_mut().is_some_and(|cache| !cache.pays())
            {
                cache = None;
            }
            if !nfa.is_match(sid) {
                continue;
            }
            // Every digit position has its own bytes, so a match ends and
            // starts on whole characters; since the last restart the
            // automaton has seen at least the matched characters, all in
            // `recent`.
            let end = at + c.len_utf8();
            let sink = &mut Sink {
                direct,
                hits: &mut hits,
                allow,
                found,
            };
            for i in 0..nfa.match_len(sid) {
                let pid = nfa.match_pattern(sid, i).as_usize();
                self.matched(pid, fed, end, recent, text, None, sink);
            }
        }
        finish_run(run, &mut hits, allow, found);
        if !found.is_empty() {
            // A deny hit wholly inside an allowed word's span is not a hit.
            found.sort_by_key(|&(s, e, _)| (s, std::cmp::Reverse(e)));
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
                self.push_hits(&mut hits, s, e, self.patterns[pid as usize], text.len());
            }
        }
        Verdict { hits }
    }

    /// Pattern `pid`. A plain word's is not read from memory: its deny
    /// entry sits at its id, its length in `plain_runs`.
    #[inline(always)]
    fn pattern(&self, pid: usize) -> Pattern {
        if pid < self.plain {
            let chars = self
                .plain_runs
                .iter()
                .find(|&&(end, _)| pid < end)
                .map_or(0, |&(_, chars)| chars);
            Pattern {
                first_deny: pid as u32,
                denies: 1,
                chars: chars as u32,
                flags: 0,
            }
        } else {
            self.patterns[pid]
        }
    }

    /// Handles a match of pattern `pid` ending with the `fed`-th word
    /// character, at byte `end`; `recent` holds where the last word
    /// characters start. With `last_pause` (the position of the last word
    /// character after clause punctuation), only a match across that
    /// punctuation counts, and only if it looks like a disguised word.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn matched<'f>(
        &'f self,
        pid: usize,
        fed: usize,
        end: usize,
        recent: &[usize],
        text: &str,
        last_pause: Option<usize>,
        sink: &mut Sink<'_, 'f>,
    ) {
        let pattern = self.pattern(pid);
        let first = fed - pattern.chars();
        if let Some(pause) = last_pause
            && (pause <= first || pattern.chars() < 3)
        {
            return;
        }
        let begin = recent[first & (recent.len() - 1)];
        if (pattern.has(Pattern::LATIN_HEAD) && glued_before(text, begin))
            || (pattern.has(Pattern::LATIN_TAIL) && glued_after(text, end))
        {
            return;
        }
        if pattern.has(Pattern::ALLOW) {
            sink.allow.push((begin, end));
        }
        if pattern.denies == 0 {
            return;
        }
        if sink.direct {
            self.push_hits(sink.hits, begin, end, pattern, text.len());
        } else {
            sink.found.push((begin, end, pid as u32));
        }
    }

    /// Finds the words across clause punctuation in a finished filled
    /// `run`, which the main pass restarts at. Deleting clause punctuation
    /// makes false words across phrase boundaries (`讨论，理论` holds
    /// `论，理`), so such a word counts only when it has at least three
    /// characters and every gap inside it is filled (`稳，赚，不，赔`): the
    /// shape of deliberate insertion. Inside a run every gap is filled; a
    /// run is rescanned only if it holds clause punctuation and three
    /// characters, which clean text seldom has.
    #[cold]
    #[inline(never)]
    fn rescan<'f, const WIDTH: usize>(
        &'f self,
        matcher: &Matcher,
        text: &str,
        run: Run,
        ring: &mut Vec<usize>,
        out: &mut Sink<'_, 'f>,
    ) {
        if ring.len() < self.longest.next_power_of_two() {
            ring.resize(self.longest.next_power_of_two(), 0);
        }
        let Matcher {
            nfa,
            alphabet,
            start,
            ..
        } = matcher;
        let mask = ring.len() - 1;
        // Hits found here start before some already found: they are
        // gathered apart and merged in at the end.
        let mut late = Vec::new();
        let sink = &mut Sink {
            direct: out.direct,
            hits: &mut late,
            allow: &mut *out.allow,
            found: &mut *out.found,
        };
        let mut scanner = Scanner::new(alphabet, self.options.max_gap);
        let (mut sid, mut fed, mut last_pause) = (*start, 0usize, 0usize);
        for (offset, c) in text[run.start..run.end].char_indices() {
            let at = run.start + offset;
            let code = match scanner.step(c) {
                Step::Skip => continue,
                // Neither happens inside a run; restarting keeps a match
                // from running through one all the same.
                Step::Reset => {
                    sid = *start;
                    continue;
                }
                Step::Word {
                    code,
                    flags,
                    restart,
                } => {
                    if restart {
                        sid = *start;
                    }
                    if flags & normalize::GAP_PAUSE != 0 {
                        last_pause = fed;
                    }
                    code
                }
            };
            ring[fed & mask] = at;
            fed += 1;
            sid = feed::<WIDTH>(nfa, sid, code);
            if nfa.is_match(sid) {
                let end = at + c.len_utf8();
                for i in 0..nfa.match_len(sid) {
                    let pid = nfa.match_pattern(sid, i).as_usize();
                    self.matched(pid, fed, end, ring, text, Some(last_pause), sink);
                }
            }
        }
        merge_late(out.hits, &mut late, run.start);
    }

    /// Records the hits of `pattern` found at `start..end` of the
    /// original text, `total` bytes long.
    fn push_hits<'f>(
        &'f self,
        hits: &mut Vec<Hit<'f>>,
        start: usize,
        end: usize,
        pattern: Pattern,
        total: usize,
    ) {
        let first = pattern.first_deny as usize;
        let denies = pattern.denies as usize;
        if hits.capacity() - hits.len() < denies {
            reserve_projected(hits, denies, end, total);
        }
        for entry in &self.deny[first..first + denies] {
            hits.push(Hit { entry, start, end });
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

/// Grows `hits` by at least `more` for a text of `total` bytes read up to
/// `done`: once a fair sample is read, to the count the density so far
/// projects for the whole text (with an eighth to spare), so a text dense
/// with hits is not copied again at every doubling, and a text with few
/// gets little.
#[cold]
fn reserve_projected<T>(hits: &mut Vec<T>, more: usize, done: usize, total: usize) {
    const SAMPLE: usize = 64 * 1024;
    let needed = hits.len() + more;
    let projected = if done >= SAMPLE {
        let whole = needed.saturating_mul(total) / done;
        whole.saturating_add(whole / 8)
    } else {
        0
    };
    hits.reserve(projected.max(needed * 2).max(4) - hits.len());
}

/// Feeds one character's code to the automaton, a byte per digit.
#[inline(always)]
fn feed<const WIDTH: usize>(nfa: &contiguous::NFA, mut sid: StateID, code: u32) -> StateID {
    for byte in code.to_le_bytes().into_iter().take(WIDTH) {
        sid = nfa.next_state(Anchored::No, sid, byte);
    }
    sid
}

/// Moves the hits of a rescanned run starting at byte `from` into
/// `hits`, in text order. Only hits starting at `from` or later can
/// follow them, and runs are rescanned in text order, so the stretches
/// sorted here do not overlap (but for one-character words at a run's
/// first character): a text of n hits costs O(n log n) at worst.
fn merge_late<'f>(hits: &mut Vec<Hit<'f>>, late: &mut Vec<Hit<'f>>, from: usize) {
    if late.is_empty() {
        return;
    }
    let tail = hits.partition_point(|h| h.start < from);
    hits.append(late);
    hits[tail..].sort_by_key(|h| (h.start, std::cmp::Reverse(h.end)));
}

/// Where the matches of one pass go.
struct Sink<'s, 'f> {
    /// Without allowed words a deny match is a hit at once.
    direct: bool,
    hits: &'s mut Vec<Hit<'f>>,
    /// Spans of allowed words.
    allow: &'s mut Vec<(usize, usize)>,
    /// Deny matches waiting for the allowed spans: start, end, pattern.
    found: &'s mut Vec<(usize, usize, u32)>,
}

/// A filled run: word characters with something skipped in every gap
/// between them, the only place a word across clause punctuation counts.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Positions of its first and last word characters.
    first: usize,
    last: usize,
    /// Its byte range in the text.
    start: usize,
    end: usize,
    /// Whether some gap in it holds clause punctuation.
    pause: bool,
}

impl Run {
    const NONE: Self = Self {
        first: usize::MAX,
        last: usize::MAX,
        start: 0,
        end: 0,
        pause: false,
    };

    /// Whether a word across clause punctuation may lie in it: it holds
    /// some, and three characters.
    #[inline(always)]
    fn may_cross_a_pause(&self) -> bool {
        self.pause && self.last - self.first >= 2
    }

    fn new(first: usize, start: usize) -> Self {
        Self {
            first,
            last: first,
            start,
            end: start,
            pause: false,
        }
    }
}

fn folded_or_err(word: &str, origin: &dict::Origin) -> Result<String, FilterError> {
    match fold_word(word) {
        Some(f) if !f.is_empty() => Ok(f),
        _ => Err(FilterError::EmptyWord {
            origin: origin.to_string(),
            word: word.to_owned(),
        }),
    }
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

/// Folds a text the way the matcher sees it, for other crates that compare
/// texts (the FAQ retrieval of `wca-dialog`): each character through the
/// same one-to-one fold (width, case, digit styles, traditional →
/// simplified), keeping letters, digits and CJK characters and dropping
/// spaces, punctuation, symbols, emoji, invisible characters and line
/// breaks.
///
/// ```
/// assert_eq!(wca_filter::fold_text("發貨要幾天？ＳＦ，①２3！"), "发货要几天sf123");
/// ```
pub fn fold_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let (folded, class) = fold(c);
        if class == Class::Word || folded.is_alphanumeric() {
            out.push(folded);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{fold_text, reserve_projected};

    #[test]
    fn hit_space_is_projected_from_the_density_so_far_once_a_sample_is_read() {
        // Before 64 KiB are read: doubling, at least 4.
        let mut hits: Vec<u8> = Vec::new();
        reserve_projected(&mut hits, 1, 100, 10_000_000);
        assert!((4..64).contains(&hits.capacity()), "{}", hits.capacity());
        // 1,000 hits in the first 100,000 bytes of 10 MB: room for about
        // 100,000 more, and an eighth to spare.
        let mut hits: Vec<u8> = vec![0; 1_000];
        hits.shrink_to_fit();
        reserve_projected(&mut hits, 1, 100_000, 10_000_000);
        assert!(
            (100_000..=120_000).contains(&hits.capacity()),
            "{}",
            hits.capacity()
        );
        // A sparse text gets little.
        let mut hits: Vec<u8> = vec![0; 2];
        hits.shrink_to_fit();
        reserve_projected(&mut hits, 1, 5_000_000, 10_000_000);
        assert!(hits.capacity() < 16, "{}", hits.capacity());
    }

    #[test]
    fn fold_text_folds_like_the_matcher_and_drops_everything_but_words() {
        let table = [
            ("退貨運費誰付？", "退货运费谁付"),
            ("ＶＩＰ會員", "vip会员"),
            ("满 99 包邮~~😊", "满99包邮"),
            ("稳\u{200b}赚\n不赔", "稳赚不赔"),
            ("⑴號", "1号"),
            ("", ""),
            ("？！…", ""),
        ];
        for (text, want) in table {
            assert_eq!(fold_text(text), want, "{text:?}");
        }
    }
}
