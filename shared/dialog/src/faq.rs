//! FAQ answers: a shop's questions and answers, and finding the entry a
//! customer's message asks about — or, when none clearly fits, saying so.
//!
//! # Files
//!
//! UTF-8 text, one record a line, fields separated by tabs; blank lines and
//! lines starting with `#` are skipped, trailing `\r` and a byte-order mark
//! are ignored:
//!
//! ```text
//! id<TAB>question<TAB>answer     an entry: its canonical question and the reply
//! id<TAB>question                one more example question for the entry `id`
//! ```
//!
//! Ids are lower-case ASCII letters, digits and hyphens (`shipping-fee`); logs,
//! analytics and tests refer to entries by them. An example line may come
//! before or after its entry, or in another file loaded together with
//! [`Faq::load_all`] (the demo shop keeps `faq.tsv` as the operator's FAQ and
//! `faq-extra.tsv` with more ways customers ask), but its id must have an
//! answer somewhere. An id with two answers, and one question text given to
//! two ids, are errors; every error names the file and the 1-based line.
//!
//! # Retrieval
//!
//! Texts are folded by [`wca_filter::fold_text`] (width, case, digit styles,
//! traditional → simplified; punctuation, spaces and emoji dropped) and cut
//! into character unigrams and bigrams, so there is no word segmentation to
//! get wrong and a typo costs only the n-grams it touches. Terms carrying a
//! particle, pronoun or greeting character (`吗`, `呢`, `的`, `了`, `亲`,
//! `你`, `我`, `什么`, `请问`, `你好`, …) weigh a fifth, so filler neither
//! finds an entry nor hides one.
//! Each term is weighted by its inverse document frequency over the entries,
//! and an entry's score mixes, half and half:
//!
//! - **coverage**: the share of the query's weight found in the entry — in
//!   its questions at full weight, only in its answer at 0.7 (answers name
//!   things customers ask about, `银行卡`, `购物清单`, that the questions do
//!   not);
//! - **cosine** between the query and the entry's questions taken together,
//!   which also counts what the query leaves out.
//!
//! A score is between 0 (nothing in common) and 1. [`Faq::best`] answers
//! only when the best entry clears the threshold, leads the runner-up by a
//! margin, **and** the query has enough in common with it (about two
//! characters found in that entry only: `发票` is enough, `怎么办` or
//! `订单` alone are not, however well they score). A wrong answer costs more
//! than none (the customer can still ask a human), so a close call stays
//! silent. The defaults were tuned on `shared/dialog/tests/faq-dev.tsv`; the
//! held-out rates are asserted by `shared/dialog/tests/faq.rs`.
//!
//! Loading builds an inverted index (term → entries); a query folds the text
//! once and walks the postings of its terms, a few microseconds for the 40
//! entries of the demo shop.
//!
//! ```
//! use wca_dialog::Faq;
//!
//! let faq = Faq::parse(
//!     "shipping-fee\t运费怎么算？满多少包邮？\t实付满99元包邮，不满99元收8元运费。\n\
//!      refund-time\t退款多久能到账？\t验收后48小时内退款，1-3个工作日到账。\n\
//!      invoice\t可以开发票吗？\t确认收货后在订单详情申请电子发票。\n\
//!      shipping-fee\t邮费多少钱\n",
//!     "faq.tsv",
//! )?;
//! let hit = faq.best("滿99包郵嗎？");
//! assert_eq!(hit.entry.map(|e| e.id.as_str()), Some("shipping-fee"));
//! assert!(faq.best("今天天气怎么样").entry.is_none());
//! # Ok::<(), wca_dialog::faq::FaqError>(())
//! ```

use std::collections::HashMap;
use std::path::Path;

/// The score the best entry must reach, by default, to be answered.
pub const DEFAULT_THRESHOLD: f32 = 0.32;

/// How far, by default, the best entry's score must lead the runner-up's.
pub const DEFAULT_MARGIN: f32 = 0.04;

/// Characters that carry tone, person or politeness rather than topic;
/// terms containing one count [`STOP_WEIGHT`] of a normal term. (`在`, `想`,
/// `一`, `下` are here for `在吗`, `我想问一下`.)
const STOP_CHARS: &[char] = &[
    '吗', '呢', '吧', '啊', '呀', '哈', '嘛', '哦', '啦', '么', '的', '了', '亲', '你', '我', '您',
    '们', '什', '怎', '请', '问', '好', '在', '想', '一', '下',
];
/// Weight of a term carrying one of [`STOP_CHARS`], against 1 for others.
const STOP_WEIGHT: f32 = 0.2;
/// Weight of a query term found only in an entry's answer, not its questions.
const ANSWER_WEIGHT: f32 = 0.7;
/// Share of coverage in the score; the rest is cosine.
const COVERAGE_SHARE: f32 = 0.5;
/// The least evidence (weight of the query's terms found in the entry) an
/// answer needs, in units of a term found in that entry only: about two
/// telling characters, so `怎么办`, `多久`, `订单` alone get no answer while
/// `发票` or `顺丰` do.
const MIN_EVIDENCE: f32 = 1.9;
/// Document frequency given to a term no entry has: rarer than any, so an
/// unknown word in the query weighs heavily against every entry.
const UNSEEN_DF: f32 = 0.5;

/// What can be wrong with FAQ files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaqError {
    /// A line does not have the fields it should, or a field is invalid.
    #[error("{origin}:{line}: {reason}")]
    Line {
        /// The file (or the name given to [`Faq::parse`]).
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong, e.g. `expected id<TAB>question<TAB>answer`.
        reason: String,
    },
    /// An id has an answer on two lines.
    #[error("{origin}:{line}: id {id:?} already has an answer at {first}")]
    DuplicateId {
        /// Where the second answer is.
        origin: String,
        /// 1-based line of the second answer.
        line: usize,
        /// The id.
        id: String,
        /// `file:line` of the first answer.
        first: String,
    },
    /// The same question (after folding) is given to two different ids.
    #[error("{origin}:{line}: question {question:?} is also asked for {other_id:?} at {other}")]
    AmbiguousQuestion {
        /// Where the second one is.
        origin: String,
        /// 1-based line of the second one.
        line: usize,
        /// The question as written on that line.
        question: String,
        /// The id it was first given to.
        other_id: String,
        /// `file:line` of the first one.
        other: String,
    },
    /// An example question names an id that no loaded file gives an answer.
    #[error("{origin}:{line}: no answer for id {id:?} in the FAQ")]
    UnknownId {
        /// Where the example is.
        origin: String,
        /// 1-based line of the example.
        line: usize,
        /// The id it names.
        id: String,
    },
    /// A file could not be read (or is not UTF-8).
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The path as given.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
}

/// One question and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaqEntry {
    /// Stable slug (`shipping-fee`), what logs and analytics record.
    pub id: String,
    /// The canonical question, as written in the file.
    pub question: String,
    /// The reply, sent as it stands.
    pub answer: String,
    /// More ways to ask it, from `id<TAB>question` lines, in file order.
    pub examples: Vec<String>,
}

/// The outcome of [`Faq::best`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaqMatch<'a> {
    /// The entry to answer with: `Some` only when [`score`](Self::score)
    /// clears the threshold, leads [`runner_up`](Self::runner_up) by the
    /// margin, and the text shares enough telling terms with the entry.
    pub entry: Option<&'a FaqEntry>,
    /// The best-scoring entry whether or not it was accepted (for logs and
    /// tuning); `None` only for an empty FAQ or a text that shares no term
    /// with any entry.
    pub candidate: Option<&'a FaqEntry>,
    /// The candidate's score, 0 to 1.
    pub score: f32,
    /// The best score of any other entry, 0 to 1.
    pub runner_up: f32,
}

/// A term: a character (`c`) or a character pair (`1 << 42 | a << 21 | b`).
type Term = u64;

/// Where a term occurs in one entry.
#[derive(Debug, Clone, Copy)]
struct Posting {
    entry: u32,
    /// The term's tf·idf weight in the entry's questions; 0 when it occurs
    /// only in the answer.
    weight: f32,
}

/// A loaded, indexed FAQ.
#[derive(Debug, Clone)]
pub struct Faq {
    entries: Vec<FaqEntry>,
    by_id: HashMap<String, usize>,
    /// Term → (idf, postings sorted by entry).
    index: HashMap<Term, (f32, Vec<Posting>)>,
    /// Length of each entry's question vector.
    norms: Vec<f32>,
    /// idf of a term that no entry has.
    unseen_idf: f32,
    /// [`MIN_EVIDENCE`] in this FAQ's idf units.
    min_evidence: f32,
    threshold: f32,
    margin: f32,
}

/// A record of a file, before the entries of all files are put together.
struct Record<'a> {
    origin: &'a str,
    line: usize,
    id: &'a str,
    question: &'a str,
    answer: Option<&'a str>,
}

impl Faq {
    /// Parses one FAQ text; `origin` names it in errors (`faq.tsv:7: ...`).
    pub fn parse(text: &str, origin: &str) -> Result<Self, FaqError> {
        Self::parse_all([(text, origin)])
    }

    /// Parses several texts as one FAQ, each given with the name for its
    /// errors: example lines in one may name ids answered in another.
    pub fn parse_all<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, FaqError> {
        let mut records = Vec::new();
        for (text, origin) in sources {
            records_of(text, origin, &mut records)?;
        }
        Self::build(records)
    }

    /// Reads and parses one file.
    pub fn load(path: &Path) -> Result<Self, FaqError> {
        Self::load_all(&[path])
    }

    /// Reads and parses several files as one FAQ (`faq.tsv` and
    /// `faq-extra.tsv`); errors name each file as given.
    pub fn load_all<P: AsRef<Path>>(paths: &[P]) -> Result<Self, FaqError> {
        let mut texts = Vec::with_capacity(paths.len());
        for path in paths {
            let path = path.as_ref();
            let text = std::fs::read_to_string(path).map_err(|e| FaqError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            texts.push((text, path.display().to_string()));
        }
        Self::parse_all(texts.iter().map(|(t, o)| (t.as_str(), o.as_str())))
    }

    /// The same FAQ answering only at `threshold` (0 to 1) or above; see
    /// [`DEFAULT_THRESHOLD`]. Higher is more often silent, less often wrong.
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = threshold;
        self
    }

    /// The same FAQ answering only when the best entry leads the runner-up
    /// by `margin` or more; see [`DEFAULT_MARGIN`].
    pub fn with_margin(mut self, margin: f32) -> Self {
        self.margin = margin;
        self
    }

    /// The score the best entry must reach.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The lead over the runner-up the best entry must have.
    pub fn margin(&self) -> f32 {
        self.margin
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&FaqEntry> {
        self.by_id.get(id).map(|&i| &self.entries[i])
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries (every text gets no answer).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All entries, in the order their answers appear in the files.
    pub fn entries(&self) -> &[FaqEntry] {
        &self.entries
    }

    /// The entry that answers `text`, if one clearly does, with the scores
    /// that decided it.
    pub fn best(&self, text: &str) -> FaqMatch<'_> {
        let (scores, evidence) = self.scores(text);
        let mut best: Option<(usize, f32)> = None;
        let mut runner_up = 0.0f32;
        for (i, &s) in scores.iter().enumerate() {
            match best {
                Some((_, b)) if s <= b => runner_up = runner_up.max(s),
                _ => {
                    if let Some((_, b)) = best {
                        runner_up = runner_up.max(b);
                    }
                    best = Some((i, s));
                }
            }
        }
        let (candidate, score, evidence) = match best {
            Some((i, s)) if s > 0.0 => (Some(&self.entries[i]), s, evidence[i]),
            _ => (None, 0.0, 0.0),
        };
        let accepted = score >= self.threshold
            && score - runner_up >= self.margin
            && evidence >= self.min_evidence;
        FaqMatch {
            entry: candidate.filter(|_| accepted),
            candidate,
            score,
            runner_up,
        }
    }

    /// Every entry's score for `text`, in entry order, and the weight of
    /// the query's terms found in it (its evidence).
    fn scores(&self, text: &str) -> (Vec<f32>, Vec<f32>) {
        let n = self.entries.len();
        let mut dot = vec![0.0f32; n];
        let mut covered = vec![0.0f32; n];
        let query = term_weights(&fold(text));
        let mut query_mass = 0.0f32;
        let mut query_norm = 0.0f32;
        for (term, tf) in query {
            let (idf, postings) = match self.index.get(&term) {
                Some((idf, postings)) => (*idf, postings.as_slice()),
                None => (self.unseen_idf, &[][..]),
            };
            let w = tf * idf;
            query_mass += w;
            query_norm += w * w;
            for p in postings {
                let e = p.entry as usize;
                if p.weight > 0.0 {
                    dot[e] += w * p.weight;
                    covered[e] += w;
                } else {
                    covered[e] += w * ANSWER_WEIGHT;
                }
            }
        }
        if query_mass <= 0.0 {
            return (dot, covered);
        }
        let query_norm = query_norm.sqrt();
        for e in 0..n {
            let cosine = if self.norms[e] > 0.0 {
                dot[e] / (query_norm * self.norms[e])
            } else {
                0.0
            };
            let coverage = covered[e] / query_mass;
            dot[e] = COVERAGE_SHARE * coverage + (1.0 - COVERAGE_SHARE) * cosine;
        }
        (dot, covered)
    }

    fn build(records: Vec<Record<'_>>) -> Result<Self, FaqError> {
        let mut entries: Vec<FaqEntry> = Vec::new();
        let mut by_id: HashMap<String, usize> = HashMap::new();
        let mut answered_at: Vec<String> = Vec::new();
        for r in records.iter().filter(|r| r.answer.is_some()) {
            if let Some(&i) = by_id.get(r.id) {
                return Err(FaqError::DuplicateId {
                    origin: r.origin.to_owned(),
                    line: r.line,
                    id: r.id.to_owned(),
                    first: answered_at[i].clone(),
                });
            }
            by_id.insert(r.id.to_owned(), entries.len());
            answered_at.push(format!("{}:{}", r.origin, r.line));
            entries.push(FaqEntry {
                id: r.id.to_owned(),
                question: r.question.to_owned(),
                answer: r.answer.unwrap_or_default().to_owned(),
                examples: Vec::new(),
            });
        }
        // Each entry's questions, folded; and who asked each one first.
        let mut questions: Vec<Vec<String>> = vec![Vec::new(); entries.len()];
        let mut asked: HashMap<String, (usize, String)> = HashMap::new();
        for r in &records {
            let Some(&i) = by_id.get(r.id) else {
                return Err(FaqError::UnknownId {
                    origin: r.origin.to_owned(),
                    line: r.line,
                    id: r.id.to_owned(),
                });
            };
            let folded = fold(r.question);
            match asked.get(&folded) {
                Some((j, _)) if *j == i => continue,
                Some((j, at)) => {
                    return Err(FaqError::AmbiguousQuestion {
                        origin: r.origin.to_owned(),
                        line: r.line,
                        question: r.question.to_owned(),
                        other_id: entries[*j].id.clone(),
                        other: at.clone(),
                    });
                }
                None => {
                    asked.insert(folded.clone(), (i, format!("{}:{}", r.origin, r.line)));
                }
            }
            if r.answer.is_none() {
                entries[i].examples.push(r.question.to_owned());
            }
            questions[i].push(folded);
        }
        Ok(Self::index(entries, by_id, &questions))
    }

    fn index(
        entries: Vec<FaqEntry>,
        by_id: HashMap<String, usize>,
        questions: &[Vec<String>],
    ) -> Self {
        // Term weights of each entry's questions (summed over them, so no
        // bigram spans two questions) and the terms of its answer.
        let mut asked: Vec<HashMap<Term, f32>> = Vec::with_capacity(entries.len());
        let mut answered: Vec<HashMap<Term, f32>> = Vec::with_capacity(entries.len());
        let mut df: HashMap<Term, f32> = HashMap::new();
        for (entry, folded) in entries.iter().zip(questions) {
            let mut q: HashMap<Term, f32> = HashMap::new();
            for text in folded {
                for (t, w) in term_weights(text) {
                    *q.entry(t).or_default() += w;
                }
            }
            let a = term_weights(&fold(&entry.answer));
            for t in q.keys().chain(a.keys().filter(|t| !q.contains_key(t))) {
                *df.entry(*t).or_default() += 1.0;
            }
            asked.push(q);
            answered.push(a);
        }
        let n = entries.len() as f32;
        let idf = |df: f32| (1.0 + n / df).ln();
        let mut index: HashMap<Term, (f32, Vec<Posting>)> = df
            .iter()
            .map(|(&t, &df)| (t, (idf(df), Vec::new())))
            .collect();
        let mut norms = vec![0.0f32; entries.len()];
        for (e, (q, a)) in asked.iter().zip(&answered).enumerate() {
            for (t, tf) in q {
                if let Some((idf, postings)) = index.get_mut(t) {
                    let weight = tf * *idf;
                    norms[e] += weight * weight;
                    postings.push(Posting {
                        entry: e as u32,
                        weight,
                    });
                }
            }
            for t in a.keys().filter(|t| !q.contains_key(t)) {
                if let Some((_, postings)) = index.get_mut(t) {
                    postings.push(Posting {
                        entry: e as u32,
                        weight: 0.0,
                    });
                }
            }
        }
        for n in &mut norms {
            *n = n.sqrt();
        }
        Self {
            entries,
            by_id,
            index,
            norms,
            unseen_idf: idf(UNSEEN_DF),
            min_evidence: MIN_EVIDENCE * idf(1.0),
            threshold: DEFAULT_THRESHOLD,
            margin: DEFAULT_MARGIN,
        }
    }
}

/// Splits one text into records, checking each line on its own.
fn records_of<'a>(
    text: &'a str,
    origin: &'a str,
    out: &mut Vec<Record<'a>>,
) -> Result<(), FaqError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let bad = |reason: String| FaqError::Line {
            origin: origin.to_owned(),
            line,
            reason,
        };
        let fields: Vec<&str> = raw.split('\t').map(str::trim).collect();
        let (id, question, answer) = match fields[..] {
            [id, question, answer] => (id, question, Some(answer)),
            [id, question] => (id, question, None),
            [_] => return Err(bad("expected id<TAB>question<TAB>answer".to_owned())),
            _ => {
                return Err(bad(format!(
                    "expected id<TAB>question<TAB>answer, found {} fields",
                    fields.len()
                )));
            }
        };
        if !valid_id(id) {
            return Err(bad(format!(
                "id {id:?} must be lower-case ASCII letters, digits and hyphens"
            )));
        }
        if fold(question).is_empty() {
            return Err(bad(
                "question has no letters, digits or CJK characters".to_owned()
            ));
        }
        if answer.is_some_and(str::is_empty) {
            return Err(bad("empty answer".to_owned()));
        }
        out.push(Record {
            origin,
            line,
            id,
            question,
            answer,
        });
    }
    Ok(())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn fold(text: &str) -> String {
    wca_filter::fold_text(text)
}

/// The unigrams and bigrams of a folded text with their weights (count,
/// with a stop character a fifth).
fn term_weights(folded: &str) -> HashMap<Term, f32> {
    let weight = |c: char| {
        if STOP_CHARS.contains(&c) {
            STOP_WEIGHT
        } else {
            1.0
        }
    };
    let mut terms: HashMap<Term, f32> = HashMap::new();
    let mut prev: Option<char> = None;
    for c in folded.chars() {
        *terms.entry(u64::from(c)).or_default() += weight(c);
        if let Some(p) = prev {
            let bigram = (1 << 42) | (u64::from(p) << 21) | u64::from(c);
            *terms.entry(bigram).or_default() += weight(p).min(weight(c));
        }
        prev = Some(c);
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_allow_lower_case_letters_digits_and_hyphens_only() {
        for ok in ["shipping-fee", "a", "v3-perks", "404"] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "Shipping", "shipping_fee", "运费", "a b", "a.b"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn bigrams_of_a_stop_character_weigh_like_it() {
        let terms = term_weights("包邮吗");
        assert_eq!(terms[&u64::from('包')], 1.0);
        assert_eq!(terms[&u64::from('吗')], STOP_WEIGHT);
        let bigram = |a: char, b: char| (1 << 42) | (u64::from(a) << 21) | u64::from(b);
        assert_eq!(terms[&bigram('包', '邮')], 1.0);
        assert_eq!(terms[&bigram('邮', '吗')], STOP_WEIGHT);
        assert_eq!(terms.len(), 5);
    }
}
