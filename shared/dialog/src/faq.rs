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
//! traditional → simplified; punctuation, spaces and emoji dropped), words
//! customers use for the same thing are read as one (a small table:
//! `啥` → `什么`, `物流` → `快递`, `免邮` → `包邮`, a country → `国外`, a
//! colour → `颜色`, a holiday → `节假日`, …), numbers of five digits or more
//! (order, phone and tracking numbers) are dropped, and the text is cut into
//! character unigrams and bigrams, so there is no word segmentation to get
//! wrong and a typo costs only the n-grams it touches. A query's homophone
//! typos are put right first: a character that forms no bigram the FAQ
//! knows with either neighbour is replaced by a character of the FAQ that
//! sounds the same (toneless pinyin, from a table of the 6,763 GB 2312
//! characters) and does (`邮废` → `邮费`, `顺风` → `顺丰`). Terms carrying a
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
//! silent. The defaults were tuned on `shared/dialog/tests/faq-dev.tsv` (and
//! its homophone-typo copy `faq-dev-typos.tsv`); on the demo shop they
//! answer 206 of its 240 answerable questions correctly and 5 of its 310
//! wrongly. The held-out rates, asserted by `shared/dialog/tests/faq.rs`,
//! are 183/210 correct and 2/270 wrong on `faq-heldout.tsv`, 124/161
//! correct and 6/201 wrong on `faq-heldout2.tsv`.
//!
//! Loading builds an inverted index (term → entries); a query folds the text
//! once and walks the postings of its terms, about 4 µs (release build) for
//! the 40 entries and 600 example questions of the demo shop.
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

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;

/// The score the best entry must reach, by default, to be answered.
pub const DEFAULT_THRESHOLD: f32 = 0.33;

/// How far, by default, the best entry's score must lead the runner-up's.
pub const DEFAULT_MARGIN: f32 = 0.08;

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
    /// Bigrams of the FAQ's texts as folded (before synonyms), and of the
    /// words of [`SYNONYMS`]: what a typo is corrected towards.
    known: HashSet<Term>,
    /// The FAQ's characters by their sound (see [`sound_of`]).
    by_sound: HashMap<u16, Vec<char>>,
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
        let query = term_weights(&self.fold_query(text));
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

    /// A customer's text as the index sees it: folded, homophone typos
    /// corrected, synonyms replaced.
    fn fold_query(&self, text: &str) -> String {
        normalise(&self.correct(&wca_filter::fold_text(text)))
    }

    /// `folded` with each character that forms no known bigram with either
    /// neighbour replaced by the same-sounding FAQ character that forms the
    /// most; characters with no such homophone, and one-character texts,
    /// stay as they are.
    fn correct(&self, folded: &str) -> String {
        let mut chars: Vec<char> = folded.chars().collect();
        if chars.len() < 2 {
            return folded.to_owned();
        }
        let known = |a: Option<char>, b: Option<char>| match (a, b) {
            (Some(a), Some(b)) => u32::from(self.known.contains(&bigram(a, b))),
            _ => 0,
        };
        for i in 0..chars.len() {
            let c = chars[i];
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            if known(prev, Some(c)) + known(Some(c), next) > 0 {
                continue;
            }
            let Some(alike) = sound_of(c).and_then(|s| self.by_sound.get(&s)) else {
                continue;
            };
            let best = alike
                .iter()
                .map(|&h| (known(prev, Some(h)) + known(Some(h), next), h))
                .filter(|&(n, h)| n > 0 && h != c)
                .max_by_key(|&(n, _)| n);
            if let Some((_, h)) = best {
                chars[i] = h;
            }
        }
        chars.into_iter().collect()
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
        let (known, by_sound) = vocabulary(&entries);
        Self {
            entries,
            by_id,
            index,
            norms,
            known,
            by_sound,
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

/// An FAQ text as the index sees it: folded, synonyms replaced.
fn fold(text: &str) -> String {
    normalise(&wca_filter::fold_text(text))
}

/// Words customers use for the same thing, each with the word it is read
/// as (folded: simplified, lower case). Where two words start at the same
/// character the longer wins; a word kept as itself (`支付宝`) is not read
/// as a shorter one inside it (`支付`).
const SYNONYMS: &[(&str, &str)] = &[
    // Colloquial.
    ("啥", "什么"),
    ("咋", "怎么"),
    ("木有", "没有"),
    ("没得", "没有"),
    // Shop words.
    ("物流", "快递"),
    ("邮费", "运费"),
    ("免邮", "包邮"),
    ("免运费", "包邮"),
    ("退钱", "退款"),
    ("开票", "开发票"),
    ("专票", "专用发票"),
    ("支付宝", "支付宝"),
    ("支付", "付款"),
    ("付钱", "付款"),
    ("给钱", "付款"),
    ("门店", "实体店"),
    ("店面", "实体店"),
    ("线下店", "实体店"),
    ("缺货", "售罄"),
    ("断货", "售罄"),
    ("没货", "售罄"),
    ("卖完", "售罄"),
    ("断码", "售罄"),
    ("缺码", "售罄"),
    ("尺寸", "尺码"),
    ("码数", "尺码"),
    // Kinds: a country, a colour, a holiday.
    ("美国", "国外"),
    ("英国", "国外"),
    ("日本", "国外"),
    ("韩国", "国外"),
    ("新加坡", "国外"),
    ("马来西亚", "国外"),
    ("泰国", "国外"),
    ("澳洲", "国外"),
    ("澳大利亚", "国外"),
    ("加拿大", "国外"),
    ("法国", "国外"),
    ("德国", "国外"),
    ("意大利", "国外"),
    ("新西兰", "国外"),
    ("俄罗斯", "国外"),
    ("越南", "国外"),
    ("菲律宾", "国外"),
    ("红色", "颜色"),
    ("蓝色", "颜色"),
    ("黑色", "颜色"),
    ("白色", "颜色"),
    ("灰色", "颜色"),
    ("粉色", "颜色"),
    ("绿色", "颜色"),
    ("黄色", "颜色"),
    ("紫色", "颜色"),
    ("米色", "颜色"),
    ("卡其色", "颜色"),
    ("咖啡色", "颜色"),
    ("元旦", "节假日"),
    ("清明节", "节假日"),
    ("清明", "节假日"),
    ("五一", "节假日"),
    ("劳动节", "节假日"),
    ("端午节", "节假日"),
    ("端午", "节假日"),
    ("中秋节", "节假日"),
    ("中秋", "节假日"),
    ("国庆节", "节假日"),
    ("国庆", "节假日"),
];

/// Digits in a row from which a number is an identifier (an order number,
/// a phone number, a tracking number), not an amount, and is dropped.
const LONG_NUMBER: usize = 5;

/// `folded` with each word of [`SYNONYMS`] replaced, scanning from the
/// start and taking the longest word at each character, and numbers of
/// [`LONG_NUMBER`] digits or more dropped (`99` stays: `满99包邮吗`).
fn normalise(folded: &str) -> String {
    static BY_FIRST: OnceLock<HashMap<char, Vec<(&str, &str)>>> = OnceLock::new();
    let by_first = BY_FIRST.get_or_init(|| {
        let mut by_first: HashMap<char, Vec<(&str, &str)>> = HashMap::new();
        for &(from, to) in SYNONYMS {
            if let Some(c) = from.chars().next() {
                by_first.entry(c).or_default().push((from, to));
            }
        }
        for words in by_first.values_mut() {
            words.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        }
        by_first
    });
    let mut out = String::with_capacity(folded.len());
    let mut rest = folded;
    while let Some(c) = rest.chars().next() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits >= LONG_NUMBER {
            rest = &rest[digits..];
            continue;
        }
        let hit = by_first
            .get(&c)
            .and_then(|words| words.iter().find(|(from, _)| rest.starts_with(from)));
        let (taken, put) = match hit {
            Some((from, to)) => (from.len(), *to),
            None => (c.len_utf8(), &rest[..c.len_utf8()]),
        };
        out.push_str(put);
        rest = &rest[taken..];
    }
    out
}

/// The bigrams a typo may be corrected towards, and the FAQ's characters
/// by sound: from every question, example and answer as folded (before
/// synonyms, so `邮费` is known although it is read as `运费`) and from the
/// words of [`SYNONYMS`].
fn vocabulary(entries: &[FaqEntry]) -> (HashSet<Term>, HashMap<u16, Vec<char>>) {
    let mut known = HashSet::new();
    let mut by_sound: HashMap<u16, Vec<char>> = HashMap::new();
    let texts = entries
        .iter()
        .flat_map(|e| [&e.question, &e.answer].into_iter().chain(&e.examples))
        .map(|t| wca_filter::fold_text(t))
        .chain(
            SYNONYMS
                .iter()
                .flat_map(|(from, to)| [*from, *to])
                .map(str::to_owned),
        );
    for text in texts {
        let mut prev = None;
        for c in text.chars() {
            if let Some(p) = prev {
                known.insert(bigram(p, c));
            }
            prev = Some(c);
            if let Some(sound) = sound_of(c) {
                let alike = by_sound.entry(sound).or_default();
                if !alike.contains(&c) {
                    alike.push(c);
                }
            }
        }
    }
    (known, by_sound)
}

/// The term of the character pair `a`, `b`.
fn bigram(a: char, b: char) -> Term {
    (1 << 42) | (u64::from(a) << 21) | u64::from(b)
}

/// The sound of a GB 2312 character: its toneless pinyin syllable (the
/// most common reading), numbered; `None` for other characters.
fn sound_of(c: char) -> Option<u16> {
    static TABLE: OnceLock<HashMap<char, u16>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = HashMap::new();
        for (n, group) in SOUNDS.split_whitespace().enumerate() {
            let n = u16::try_from(n).unwrap_or(u16::MAX);
            for c in group.chars().filter(|c| !c.is_ascii()) {
                table.insert(c, n);
            }
        }
        table
    });
    table.get(&c).copied()
}

/// The 6,763 characters of GB 2312 grouped by toneless pinyin (`fei菲非…`),
/// generated with pypinyin's most common reading of each.
const SOUNDS: &str = "\
    a啊阿嗄锕 ai埃挨哎唉哀皑癌蔼矮艾碍爱隘捱嗳嗌嫒瑷暧砹锿霭 an鞍氨安俺按暗岸胺案谙埯揞犴庵桉铵鹌黯 ang肮昂盎 \
    ao凹敖熬翱袄傲奥懊澳坳拗嗷岙廒遨媪骜獒聱螯鏊鳌鏖 ba芭捌扒叭吧笆八疤巴拔跋靶把耙坝霸罢爸茇菝岜灞钯粑鲅魃 \
    bai白柏百摆佰败拜稗捭掰擘 ban斑班搬扳般颁板版扮拌伴瓣半办绊阪坂钣瘢癍舨 bang邦帮梆榜膀绑棒磅蚌镑傍谤蒡浜 \
    bao苞胞包褒薄雹保堡饱宝抱报暴豹鲍爆勹葆孢煲鸨褓趵龅 bei杯碑悲卑北辈背贝钡倍狈备惫焙被孛陂邶蓓呗悖碚鹎褙鐾鞴 \
    ben奔苯本笨畚坌贲锛 beng崩绷甭泵蹦迸嘣甏 \
    bi逼鼻比鄙笔彼碧蓖蔽毕毙毖币庇痹闭敝弊必壁臂避陛匕俾荜荸萆薜吡哔狴庳愎滗濞弼妣婢嬖璧畀铋秕裨筚箅篦舭襞跸髀 \
    bian鞭边编贬扁便变卞辨辩辫遍匾弁苄忭汴缏煸砭碥窆褊蝙笾鳊 biao标彪膘表婊骠杓飑飙飚灬镖镳瘭裱鳔髟 \
    bie鳖憋别瘪蹩 bin彬斌濒滨宾摈傧豳缤玢槟殡膑镔髌鬓 bing兵冰柄丙秉饼炳病并禀冫邴摒 \
    bo剥玻菠播拨钵波博勃搏铂箔伯帛舶脖膊渤驳卜亳啵饽檗礴钹鹁簸跛踣 bu捕哺补埠不布步簿部怖卟逋瓿晡钚钸醭 ca擦嚓礤 \
    cai猜裁材才财睬踩采彩菜蔡 can餐参蚕残惭惨灿掺孱骖璨粲黪 cang苍舱仓沧藏伧 cao操糙槽曹草艹嘈漕螬艚 \
    ce厕策侧册测恻 cen岑涔 ceng层蹭曾噌 cha插叉茬茶查碴搽察岔差诧猹馇汊姹杈槎檫锸镲衩 chai拆柴豺侪钗瘥虿 \
    chan搀蝉馋谗缠铲产阐颤冁谄蒇廛忏潺澶羼婵骣觇禅镡蟾躔 chang昌猖场尝常偿肠厂敞畅唱倡伥鬯苌菖徜怅惝阊娼嫦昶氅鲳 \
    chao超抄钞朝嘲潮巢吵炒怊晁焯耖 che车扯撤掣彻澈坼屮砗 chen郴臣辰尘晨忱沉陈趁衬谌谶抻嗔宸琛榇碜龀 \
    cheng撑称城橙成呈乘程惩澄诚承逞骋秤丞埕枨柽晟塍瞠铖裎蛏酲 \
    chi吃痴持池迟弛驰耻齿侈尺赤翅斥炽傺坻墀茌叱哧啻嗤彳饬媸敕眵鸱瘛褫蚩螭笞篪踟魑 chong充冲虫崇宠茺忡憧铳舂艟 \
    chou抽酬畴踌稠愁筹仇绸瞅丑臭俦帱惆瘳雠 chu初出橱厨躇锄雏滁除楚础储矗搐触处畜亍刍怵憷绌杵楮樗褚蜍蹰黜 \
    chuai揣搋啜嘬膪踹 chuan川穿椽传船喘串舛遄巛氚钏舡 chuang疮窗幢床闯创怆 chui吹炊捶锤垂椎陲棰槌 \
    chun春椿醇唇淳纯蠢莼鹑蝽 chuo戳绰辶辍踔龊 ci疵茨磁雌辞慈瓷词此刺赐次伺茈呲祠鹚糍 \
    cong聪葱囱匆从丛苁淙骢琮璁枞 cou凑辏腠 cu粗醋簇促蔟徂猝殂酢蹙蹴 cuan蹿篡窜汆撺爨镩 \
    cui摧崔催脆瘁粹淬翠萃啐悴璀榱毳 cun村存寸忖皴 cuo磋撮搓措挫错厝嵯脞锉矬痤鹾蹉 \
    da搭达答瘩打大耷哒嗒怛妲沓褡笪靼鞑 dai呆歹傣戴带殆代贷袋待逮怠埭甙呔岱迨骀绐玳黛 \
    dan耽担丹单郸掸胆旦氮但惮淡诞弹蛋儋萏啖澹殚赕眈疸瘅聃箪 dang当挡党荡档谠凼菪宕砀铛裆 \
    dao刀捣蹈倒岛祷导到稻悼道盗刂叨忉氘焘纛 de德得的锝 deng蹬灯登等瞪凳邓噔嶝戥磴镫簦 \
    di堤低滴迪敌笛狄涤翟嫡抵底地蒂第帝弟递缔氐籴诋谛邸荻嘀娣柢棣觌砥碲睇镝羝骶 \
    dian颠掂滇碘点典靛垫电佃甸店惦奠淀殿阽坫巅玷钿癜癫簟踮 diao碉叼雕凋刁掉吊钓调铞铫貂鲷 \
    die跌爹碟蝶迭谍叠垤堞揲喋嗲牒瓞耋蹀鲽 ding丁盯叮钉顶鼎锭定订仃啶玎腚碇铤疔耵酊 diu丢铥 \
    dong东冬董懂动栋侗恫冻洞垌咚岽峒氡胨胴硐鸫 dou兜抖斗陡豆逗痘都蔸窦蚪篼 \
    du督毒犊独读堵睹赌杜镀肚度渡妒芏嘟渎椟牍碡蠹笃髑黩 duan端短锻段断缎椴煅簖 dui堆兑队对怼憝碓镦 \
    dun墩吨蹲敦顿囤钝盾遁沌炖砘礅盹趸 duo掇哆多夺垛躲朵跺舵剁惰堕咄哚缍柁铎裰踱 \
    e蛾峨鹅俄额讹娥恶厄扼遏鄂饿噩谔垩苊莪萼呃愕阏屙婀轭腭锇锷鹗颚鳄 ei诶 en恩蒽摁 er而儿耳尔饵洱二贰佴迩珥铒鸸鲕 \
    fa发罚筏伐乏阀法珐垡砝 fan藩帆番翻樊矾钒繁凡烦反返范贩犯饭泛蕃蘩幡梵燔畈蹯 \
    fang坊芳方肪房防妨仿访纺放匚邡枋钫舫鲂 fei菲非啡飞肥匪诽吠肺废沸费芾狒悱淝妃绯榧腓斐扉镄痱蜚篚翡霏鲱 \
    fen芬酚吩氛分纷坟焚汾粉奋份忿愤粪偾瀵棼鲼鼢 feng丰封枫蜂峰锋风疯烽逢冯缝讽奉凤俸酆葑唪沣砜 fou否缶 \
    fu佛夫敷肤孵扶拂辐幅氟符伏俘服浮涪福袱弗甫抚辅俯釜斧腑府腐赴副覆赋复傅付阜父腹负富讣附妇缚咐匐凫阝郛芙苻茯莩菔拊呋幞怫滏艴孚驸绂绋桴赙祓砩黻黼罘稃馥蚨蜉蝠蝮麸趺跗鲋鳆 \
    ga噶嘎伽尬呷尕尜旮钆 gai该改概钙盖溉丐陔垓戤赅 gan干甘杆柑竿肝赶感秆敢赣坩苷尴擀泔淦澉绀橄旰矸疳酐 \
    gang冈刚钢缸肛纲岗港杠戆罡筻 gao篙皋高膏羔糕搞镐稿告睾诰郜藁缟槔槁杲锆 \
    ge哥歌搁戈鸽胳疙割革葛格阁隔铬个各咯鬲仡哿圪塥嗝纥搿膈硌镉袼虼舸骼 gei给 gen根跟亘茛哏艮 \
    geng耕更庚羹埂耿梗哽赓绠鲠 gong工攻功恭龚供躬公宫弓巩汞拱贡共廾珙肱蚣觥 \
    gou钩勾沟苟狗垢构购够佝诟岣遘媾缑枸觏彀笱篝鞲 \
    gu辜菇咕箍估沽孤姑鼓古蛊骨谷股故顾固雇嘏诂菰呱崮汩梏轱牯牿臌毂瞽罟钴锢鸪鹄痼蛄酤觚鲴鹘 gua刮瓜剐寡挂褂卦诖栝胍鸹聒 \
    guai乖拐怪掴 guan棺关官冠观管馆罐惯灌贯倌莞掼涫盥鹳鳏 guang光广逛咣犷桄胱 \
    gui瑰规圭硅归龟闺轨鬼诡癸桂柜跪贵刽傀炔匦刿庋宄妫桧晷皈簋鲑鳜 gun辊滚棍丨衮绲磙鲧 \
    guo锅郭国果裹过馘埚呙帼崞猓椁虢蜾蝈 ha蛤哈铪 hai骸孩海氦亥害骇还嗨胲醢 \
    han酣憨邯韩含涵寒函喊罕翰撼捍旱憾悍焊汗汉邗菡撖阚瀚晗焓顸颔蚶鼾 hang夯杭航沆绗珩颃 \
    hao壕嚎豪毫郝好耗号浩貉蒿薅嗥嚆濠灏昊皓颢蚝 he呵喝荷菏核禾和何合盒阂河涸赫褐鹤贺诃劾壑嗬阖曷盍颌蚵翮 hei嘿黑 \
    hen痕很狠恨 heng哼亨横衡恒蘅桁 hong轰哄烘虹鸿洪宏弘红黉訇讧荭蕻薨闳泓 hou喉侯猴吼厚候后堠後逅瘊篌糇鲎骺 \
    hu呼乎忽瑚壶葫胡蝴狐糊湖弧虎唬护互沪户冱唿囫岵猢怙惚浒滹琥槲轷觳烀煳戽扈祜瓠鹕鹱虍笏醐斛 \
    hua花哗华猾滑画划化话骅桦铧 huai槐徊怀淮坏踝 huan欢环桓缓换患唤痪豢焕涣宦幻郇奂萑擐圜獾洹浣漶寰逭缳锾鲩鬟 \
    huang荒慌黄磺蝗簧皇凰惶煌晃幌恍谎隍徨湟潢遑璜肓癀蟥篁鳇 \
    hui灰挥辉徽恢蛔回毁悔慧卉惠晦贿秽会烩汇讳诲绘诙茴荟蕙咴哕喙隳洄浍彗缋珲晖恚虺蟪麾 hun荤昏婚魂浑混诨馄阍溷 \
    huo豁活伙火获或惑霍货祸劐藿攉嚯夥砉钬锪镬耠蠖 \
    ji击圾基机畸稽积箕肌饥迹激讥鸡姬绩缉吉极棘辑籍集及急疾汲即嫉级挤几脊己蓟技冀季伎祭剂悸济寄寂计记既忌际妓继纪藉丌亟乩剞佶偈诘墼芨芰荠蒺蕺掎叽咭哜唧岌嵴洎彐屐骥畿玑楫殛戟戢赍觊犄齑矶羁嵇稷瘠虮笈笄暨跻跽霁鲚鲫髻麂 \
    jia嘉枷夹佳家加荚颊贾甲钾假稼价架驾嫁茄郏葭岬浃迦珈戛胛恝铗镓痂瘕袷蛱笳袈跏 \
    jian歼监坚尖笺间煎兼肩艰奸缄茧检柬碱硷拣捡简俭剪减荐鉴践贱见键箭件健舰剑饯渐溅涧建僭谏谫菅蒹搛囝湔蹇謇缣枧楗戋戬牮犍毽腱睑锏鹣裥笕翦趼踺鲣鞯 \
    jiang僵姜将浆江疆蒋桨奖讲匠酱降茳洚绛缰犟礓耩糨豇 \
    jiao蕉椒礁焦胶交郊浇骄娇搅铰矫侥脚狡角饺缴绞剿教酵轿较叫窖佼僬艽茭挢噍峤徼湫姣敫皎鹪蛟醮跤鲛 \
    jie揭接皆秸街阶截劫节杰捷睫竭洁结解姐戒芥界借介疥诫届讦卩拮喈嗟婕孑桀碣疖颉蚧羯鲒骱 \
    jin巾筋斤金今津襟紧锦仅谨进靳晋禁近烬浸尽劲卺荩堇噤馑廑妗缙瑾槿赆觐钅衿矜 \
    jing荆兢茎睛晶鲸京惊精粳经井警景颈静境敬镜径痉靖竟竞净刭儆阱菁獍憬泾迳弪婧肼胫腈旌靓 jiong炯窘冂迥炅扃 \
    jiu揪究纠玖韭久灸九酒厩救旧臼舅咎就疚僦啾阄柩桕鸠鹫赳鬏 \
    ju桔鞠拘狙疽居驹菊局咀矩举沮聚拒据巨具距踞锯俱句惧炬剧倨讵苣苴莒菹掬遽屦琚椐榘榉橘犋飓钜锔窭裾趄醵踽龃雎鞫 \
    juan捐鹃娟倦眷卷绢鄄狷涓桊蠲锩镌隽 jue嚼撅攫抉掘倔爵觉决诀绝厥劂谲矍蕨噘噱崛獗孓珏桷橛爝镢蹶觖 \
    jun均菌钧军君峻俊竣浚郡骏捃皲麇 ka喀咖卡佧咔胩 kai开揩楷凯慨剀垲蒈忾恺铠锎锴 kan槛刊堪勘坎砍看侃莰戡龛瞰 \
    kang康慷糠扛抗亢炕伉闶钪 kao考拷烤靠尻栲犒铐 \
    ke坷苛柯棵磕颗科壳咳可渴克刻客课嗑岢恪溘骒缂珂轲氪瞌钶锞稞疴窠颏蝌髁 ken肯啃垦恳裉龈 keng坑吭铿 \
    kong空恐孔控倥崆箜 kou抠口扣寇芤蔻叩眍筘 ku枯哭窟苦酷库裤刳堀喾绔骷 kua夸垮挎跨胯侉 \
    kuai块筷侩快蒯郐哙狯脍 kuan宽款髋 kuang匡筐狂框矿眶旷况诓诳邝圹夼哐纩贶 \
    kui亏盔岿窥葵奎魁馈愧溃馗匮夔隗蒉揆喹喟悝愦逵暌睽聩蝰篑跬 kun坤昆捆困悃阃琨锟醌鲲髡 kuo括扩廓阔蛞 \
    la垃拉喇蜡腊辣啦剌邋旯砬瘌 lai莱来赖崃徕涞濑赉睐铼癞籁 lan蓝婪栏拦篮阑兰澜谰揽览懒缆烂滥岚漤榄斓罱镧褴 \
    lang琅榔狼廊郎朗浪莨蒗啷阆锒稂螂 lao捞劳牢老佬姥酪烙涝潦唠崂栳铑铹痨耢醪 le乐肋了仂叻泐鳓 \
    lei勒雷镭蕾磊累儡垒擂类泪羸诔嘞嫘缧檑耒酹 leng棱楞冷塄愣 \
    li厘梨犁黎篱狸离漓理李里鲤礼莉荔吏栗丽厉励砾历利傈例俐痢立粒沥隶力璃哩俪俚郦坜苈莅蓠藜呖唳喱猁溧澧逦娌嫠骊缡枥栎轹戾砺詈罹锂鹂疠疬蛎蜊蠡笠篥粝醴跞雳鲡鳢黧 \
    lia俩 lian联莲连镰廉怜涟帘敛脸链恋炼练蔹奁潋濂琏楝殓臁裢裣蠊鲢 liang粮凉梁粱良两辆量晾亮谅墚椋踉魉 \
    liao撩聊僚疗燎寥辽撂镣廖料蓼尥嘹獠寮缭钌鹩 lie列裂烈劣猎冽埒捩咧洌趔躐鬣 \
    lin琳林磷霖临邻鳞淋凛赁吝拎蔺啉嶙廪懔遴檩辚膦瞵粼躏麟 ling玲菱零龄铃伶羚凌灵陵岭领另令酃苓呤囹泠绫柃棂瓴聆蛉翎鲮 \
    liu溜琉榴硫馏留刘瘤流柳六浏遛骝绺旒熘锍镏鹨鎏 long龙聋咙笼窿隆垄拢陇垅茏泷珑栊胧砻癃 \
    lou楼娄搂篓漏陋偻蒌喽嵝镂瘘耧蝼髅 \
    lu芦卢颅庐炉掳卤虏鲁麓碌露路赂鹿潞禄录陆戮垆撸噜泸渌漉逯璐栌橹轳辂辘氇胪镥鸬鹭簏舻鲈 luan峦挛孪滦卵乱脔娈栾鸾銮 \
    lun抡轮伦仑沦纶论囵 luo萝螺罗逻锣箩骡裸落洛骆络倮蠃荦摞猡泺漯珞椤脶镙瘰雒 \
    lv驴吕铝侣旅履屡缕虑氯律率滤绿捋闾榈膂稆褛 lve掠略锊 ma妈麻玛码蚂马骂嘛吗唛犸嬷杩蟆 mai埋买麦卖迈脉劢荬霾 \
    man瞒馒蛮满蔓曼慢漫谩墁幔缦熳镘颟螨鳗鞔 mang芒茫盲氓忙莽邙漭硭蟒 \
    mao猫茅锚毛矛铆卯茂冒帽貌贸袤茆峁泖瑁昴牦耄旄懋瞀蝥蟊髦 me么 \
    mei玫枚梅酶霉煤没眉媒镁每美昧寐妹媚莓嵋猸浼湄楣镅鹛袂魅 men门闷们扪焖懑钔 \
    meng萌蒙檬盟锰猛梦孟勐甍瞢懵朦礞虻蜢蠓艋艨 mi眯醚靡糜迷谜弥米秘觅泌蜜密幂芈冖谧蘼咪嘧猕汨宓弭脒祢敉糸縻麋 \
    mian棉眠绵冕免勉娩缅面沔渑湎宀腼眄 miao苗描瞄藐秒渺庙妙喵邈缈杪淼眇鹋 mie蔑灭乜咩蠛篾 \
    min民抿皿敏悯闽苠岷闵泯缗珉愍黾鳘 ming明螟鸣铭名命冥茗溟暝瞑酩 miu谬 \
    mo摸摹蘑模膜磨摩魔抹末莫墨默沫漠寞陌谟茉蓦馍嫫殁镆秣瘼耱貊貘麽 mou谋牟某侔哞缪眸蛑鍪 \
    mu拇牡亩姆母墓暮幕募慕木目睦牧穆仫坶苜沐毪钼 n嗯 na拿哪呐钠那娜纳捺肭镎衲 nai氖乃奶耐奈鼐艿萘柰 \
    nan南男难喃囡楠腩蝻赧 nang囊攮囔馕曩 nao挠脑恼闹淖孬垴呶猱瑙硇铙蛲 ne呢讷疒 nei馁内 nen嫩恁 \
    neng能 ni妮霓倪泥尼拟你匿腻逆溺伲坭猊怩昵旎睨铌鲵 nian蔫拈年碾撵捻念辗廿埝辇黏鲇鲶 niang娘酿 \
    niao鸟尿茑嬲脲袅 nie捏聂孽啮镊镍涅陧蘖嗫颞臬蹑 nin您 ning柠狞凝宁拧泞佞咛甯聍 niu牛扭钮纽狃忸妞 \
    nong脓浓农弄侬哝 nou耨 nu奴努怒弩胬孥驽 nuan暖 nuo挪懦糯诺傩搦喏锘 nv女恧钕衄 nve虐疟 \
    o哦喔噢 ou欧鸥殴藕呕偶沤讴怄瓯耦 pa啪趴爬帕怕琶葩杷筢 pai拍排牌徘湃派俳蒎哌 \
    pan攀潘盘磐盼畔判叛拚爿泮袢襻蟠蹒 pang乓庞旁耪胖彷滂逄螃 pao抛咆刨炮袍跑泡匏狍庖脬疱 \
    pei呸胚培裴赔陪配佩沛辔帔旆锫醅霈 pen喷盆湓 peng砰抨烹澎彭蓬棚硼篷膨朋鹏捧碰堋嘭怦蟛 \
    pi辟坯砒霹批披劈琵毗啤脾疲皮匹痞僻屁譬丕仳陴邳郫圮埤鼙芘擗噼庀淠媲纰枇甓睥罴铍癖疋蚍蜱貔 pian篇偏片骗谝骈犏胼翩蹁 \
    piao飘漂瓢票剽嘌嫖缥殍瞟螵 pie撇瞥丿苤氕 pin拼频贫品聘姘嫔榀牝颦 ping乒坪苹萍平凭瓶评屏俜娉枰鲆 \
    po泊坡泼颇婆破魄迫粕叵鄱珀钋钷皤笸 pou剖裒掊 pu脯扑铺仆莆葡菩蒲埔朴圃普浦谱曝瀑匍噗溥濮璞攴氆攵镤镨蹼 \
    qi期欺栖戚妻七凄漆柒沏其棋奇歧畦崎脐齐旗祈祁骑起岂乞企启契砌器气迄弃汽泣讫亓俟圻芑芪萁萋葺蕲嘁屺岐汔淇骐绮琪琦杞桤槭耆祺憩碛颀蛴蜞綦綮蹊鳍麒 \
    qia掐恰洽葜髂 qian牵扦钎铅千迁签仟谦乾黔钱钳前潜遣浅谴堑嵌欠歉倩佥阡凵芊芡茜掮岍悭慊骞搴褰缱椠肷愆钤虔箝 \
    qiang枪呛腔羌墙蔷强抢丬戕嫱樯戗炝锖锵镪襁蜣羟跄 qiao橇锹敲悄桥瞧乔侨巧鞘撬翘峭俏窍劁诮谯荞愀憔缲樵硗跷鞒 \
    qie切且怯窃郄惬妾挈锲箧 qin钦侵亲秦琴勤芹擒禽寝沁芩揿吣嗪噙溱檎锓螓衾 \
    qing青轻氢倾卿清擎晴氰情顷请庆苘圊檠磬蜻罄箐謦鲭黥 qiong琼穷邛芎茕穹蛩筇跫銎 \
    qiu秋丘邱球求囚酋泅俅巯犰逑遒楸赇虬蚯蝤裘糗鳅鼽 \
    qu趋区蛆曲躯屈驱渠取娶龋趣去诎劬蕖蘧岖衢阒璩觑氍朐祛磲鸲癯蛐蠼麴瞿黢 \
    quan圈颧权醛泉全痊拳犬券劝诠荃犭悛绻辁畎铨蜷筌鬈 que缺瘸却鹊榷确雀阕阙悫 qun裙群逡 ran然燃冉染苒蚺髯 \
    rang瓤壤攘嚷让禳穰 rao饶扰绕荛娆桡 re惹热 ren壬仁人忍韧任认刃妊纫亻仞荏葚饪轫稔衽 reng扔仍 ri日 \
    rong戎茸蓉荣融熔溶容绒冗嵘狨榕肜蝾 rou揉柔肉糅蹂鞣 ru茹蠕儒孺如辱乳汝入褥蓐薷嚅洳溽濡缛铷襦颥 ruan软阮朊 \
    rui蕊瑞锐芮蕤枘睿蚋 run闰润 ruo若弱偌箬 sa撒洒萨卅仨挲脎飒 sai腮鳃塞赛噻 san三叁伞散馓毵糁 \
    sang桑嗓丧搡磉颡 sao搔骚扫嫂埽缫臊瘙鳋 se瑟色涩啬铯穑 sen森 seng僧 \
    sha莎砂杀刹沙纱傻啥煞厦唼歃铩痧裟霎鲨 shai筛晒酾 \
    shan珊苫杉山删煽衫闪陕擅赡膳善汕扇缮剡讪鄯埏芟彡潸姗嬗骟膻钐疝蟮舢跚鳝 shang墒伤商赏晌上尚裳垧绱殇熵觞 \
    shao梢捎稍烧芍勺韶少哨邵绍劭苕潲蛸筲艄 she奢赊蛇舌舍赦摄射慑涉社设厍佘猞滠歙畲麝 \
    shen砷申呻伸身深娠绅神沈审婶甚肾慎渗什诜谂莘哂渖椹胂矧蜃 sheng声生甥牲升绳省盛剩胜圣嵊眚笙 \
    shi匙师失狮施湿诗尸虱十石拾时食蚀实识史矢使屎驶始式示士世柿事拭誓逝势是嗜噬适仕侍释饰氏市恃室视试似谥埘莳蓍弑饣轼贳炻礻铈螫舐筮豉豕鲥鲺 \
    shou收手首守寿授售受瘦兽扌狩绶艏 \
    shu蔬枢梳殊抒输叔舒淑疏书赎孰熟薯暑曙署蜀黍鼠属术述树束戍竖墅庶数漱恕倏塾菽摅沭澍姝纾毹腧殳秫 shua刷耍唰 \
    shuai摔衰甩帅蟀 shuan栓拴闩涮 shuang霜双爽孀 shui谁水睡税氵 shun吮瞬顺舜 \
    shuo说硕朔烁蒴搠妁槊铄 si斯撕嘶思私司丝死肆寺嗣四饲巳厮兕厶咝汜泗澌姒驷纟缌祀锶鸶耜蛳笥 \
    song松耸怂颂送宋讼诵凇菘崧嵩忪悚淞竦 sou搜艘擞嗽叟薮嗖嗾馊溲飕瞍锼螋 \
    su苏酥俗素速粟僳塑溯宿诉肃夙谡蔌嗉愫涑簌觫稣 suan酸蒜算狻 sui虽隋随绥髓碎岁穗遂隧祟谇荽濉邃燧眭睢 \
    sun孙损笋荪狲飧榫隼 suo蓑梭唆缩琐索锁所唢嗦嗍娑桫睃羧 ta塌他它她塔獭挞蹋踏闼溻遢榻铊趿鳎 \
    tai胎苔抬台泰酞太态汰邰薹肽炱钛跆鲐 tan坍摊贪瘫滩坛檀痰潭谭谈坦毯袒碳探叹炭郯昙忐钽锬覃 \
    tang汤塘搪堂棠膛唐糖倘躺淌趟烫傥帑饧溏瑭樘铴镗耥螗螳羰醣 tao掏涛滔绦萄桃逃淘陶讨套鼗啕洮韬饕 te特忒忑慝铽 \
    teng藤腾疼誊滕 ti梯剔踢锑提题蹄啼体替嚏惕涕剃屉倜荑悌逖绨缇鹈裼醍 tian天添填田甜恬舔腆掭忝阗殄畋 \
    tiao挑条迢眺跳佻祧窕蜩笤粜龆鲦髫 tie贴铁帖萜餮 ting厅听烃汀廷停亭庭挺艇莛葶婷梃町蜓霆 \
    tong通桐酮瞳同铜彤童桶捅筒统痛佟僮仝茼嗵恸潼砼 tou偷投头透亠钭骰 tu凸秃突图徒途涂屠土吐兔堍荼菟钍酴 \
    tuan湍团抟彖疃 tui推颓腿蜕褪退煺 tun吞屯臀氽饨暾豚 tuo拖托脱鸵陀驮驼椭妥拓唾乇佗坨庹沲沱柝橐砣箨酡跎鼍 \
    wa挖哇蛙洼娃瓦袜佤娲腽 wai歪外崴 wan豌弯湾玩顽丸烷完碗挽晚皖惋宛婉万腕剜芄菀纨绾琬脘畹蜿 \
    wang汪王亡枉网往旺望忘妄罔惘辋魍 \
    wei威巍微危韦违桅围唯惟为潍维苇萎委伟伪尾纬未蔚味畏胃喂魏位渭谓尉慰卫偎诿隈圩葳薇囗帏帷嵬猥猬闱沩洧涠逶娓玮韪軎炜煨痿艉鲔 \
    wen瘟温蚊文闻纹吻稳紊问刎阌汶玟璺雯 weng嗡翁瓮蓊蕹 wo挝蜗涡窝我斡卧握沃倭莴幄渥肟硪龌 \
    wu巫呜钨乌污诬屋无芜梧吾吴毋武五捂午舞伍侮坞戊雾晤物勿务悟误兀仵阢邬圬芴呒唔庑怃忤浯寤迕妩婺骛杌牾焐鹉鹜痦蜈鋈鼯 \
    xi昔熙析西硒矽晰嘻吸锡牺稀息希悉膝夕惜熄烯溪汐犀檄袭席习媳喜铣洗系隙戏细僖兮隰郗菥葸蓰奚唏徙饩阋浠淅屣嬉玺樨曦觋欷熹禊禧皙穸蜥螅蟋舄舾羲粞翕醯鼷 \
    xia瞎虾匣霞辖暇峡侠狭下夏吓狎遐瑕柙硖罅黠 \
    xian掀锨先仙鲜纤咸贤衔舷闲涎弦嫌显险现献县腺馅羡宪陷限线冼苋莶藓岘猃暹娴氙燹祆鹇痫蚬筅籼酰跣跹霰 \
    xiang相厢镶香箱襄湘乡翔祥详想响享项巷橡像向象芗葙饷庠骧缃蟓鲞飨 \
    xiao萧硝霄哮嚣销消宵淆晓小孝校肖啸笑效哓崤潇逍骁绡枭枵筱箫魈 \
    xie楔些歇蝎鞋协挟携邪斜胁谐写械卸蟹懈泄泻谢屑偕亵勰燮薤撷獬廨渫瀣邂绁缬榭榍躞 xin薪芯锌欣辛新忻心信衅囟馨忄昕歆鑫 \
    xing星腥猩惺兴刑型形邢行醒幸杏性姓陉荇荥擤悻硎 xiong兄凶胸匈汹雄熊 xiu休修羞朽嗅锈秀袖绣咻岫馐庥溴鸺貅髹 \
    xu墟戌需虚嘘须徐许蓄酗叙旭序恤絮婿绪续吁诩勖蓿洫溆顼栩煦盱胥糈醑 \
    xuan轩喧宣悬旋玄选癣眩绚儇谖萱揎泫渲漩璇楦暄炫煊碹铉镟痃 xue削靴薛学穴雪血谑泶踅鳕 \
    xun勋熏循旬询寻驯巡殉汛训讯逊迅巽埙荀荨蕈薰峋徇獯恂洵浔曛窨醺鲟 \
    ya压押鸦鸭呀丫芽牙蚜崖衙涯雅哑亚讶轧伢垭揠吖岈迓娅琊桠氩砑睚痖 \
    yan焉咽阉烟淹盐严研蜒岩延言颜阎炎沿奄掩眼衍演艳堰燕厌砚雁唁彦焰宴谚验厣赝俨偃兖讠谳郾鄢芫菸崦恹闫湮滟妍嫣琰檐晏胭腌焱罨筵酽魇餍鼹 \
    yang殃央鸯秧杨扬佯疡羊洋阳氧仰痒养样漾徉怏泱炀烊恙蛘鞅 \
    yao邀腰妖瑶摇尧遥窑谣姚咬舀药要耀钥夭爻吆崾徭幺珧杳轺曜肴鹞窈繇鳐 ye椰噎耶爷野冶也页掖业叶曳腋夜液靥谒邺揶晔烨铘 \
    yi一壹医揖铱依伊衣颐夷遗移仪胰疑沂宜姨彝椅蚁倚已乙矣以艺抑易邑屹亿役臆逸肄疫亦裔意毅忆义益溢诣议谊译异翼翌绎刈劓佚佾诒圯埸懿苡薏弈奕挹弋呓咦咿噫峄嶷猗饴怿怡悒漪迤驿缢殪轶贻欹旖熠眙钇镒镱痍瘗癔翊衤蜴舣羿翳酏黟 \
    yin茵荫因殷音阴姻吟银淫寅饮尹引隐印胤鄞廴垠堙茚吲喑狺夤洇氤铟瘾蚓霪 \
    ying英樱婴鹰应缨莹萤营荧蝇迎赢盈影颖硬映嬴郢茔莺萦蓥撄嘤膺滢潆瀛瑛璎楹媵鹦瘿颍罂 yo哟唷 \
    yong拥佣臃痈庸雍踊蛹咏泳涌永恿勇用俑壅墉喁慵邕镛甬鳙饔 \
    you幽优悠忧尤由邮铀犹油游酉有友右佑釉诱又幼卣攸侑莠莜莸尢呦囿宥柚猷牖铕疣蚰蚴蝣鱿黝鼬 \
    yu迂淤于盂榆虞愚舆余俞逾鱼愉渝渔隅予娱雨与屿禹宇语羽玉域芋郁遇喻峪御愈欲狱育誉浴寓裕预豫驭禺毓伛俣谀谕萸蓣揄圄圉嵛狳饫馀庾阈鬻妪妤纡瑜昱觎腴欤於煜燠肀聿钰鹆鹬瘐瘀窬窳蜮蝓竽臾舁雩龉 \
    yuan鸳渊冤元垣袁原援辕园员圆猿源缘远苑愿怨院垸塬掾沅媛瑗橼爰眢鸢螈箢鼋 yue曰约越跃岳粤月悦阅龠瀹樾刖钺 \
    yun耘云郧匀陨允运蕴酝晕韵孕郓芸狁恽愠纭韫殒昀氲熨筠 za匝砸杂咋拶咂 zai栽哉灾宰载再在仔崽甾 \
    zan咱攒暂赞瓒昝簪糌趱錾 zang赃脏葬奘驵臧 zao遭糟凿藻枣早澡蚤躁噪造皂灶燥唣 ze责择则泽仄赜啧帻迮昃笮箦舴 \
    zei贼 zen怎谮 zeng增憎赠缯甑罾锃 zha扎喳渣札铡闸眨栅榨乍炸诈柞揸吒咤哳楂砟痄蚱齄 \
    zhai摘斋宅窄债寨砦瘵 zhan瞻毡詹粘沾盏斩崭展蘸栈占战站湛绽谵搌旃 \
    zhang长樟章彰漳张掌涨杖丈帐账仗胀瘴障仉鄣幛嶂獐嫜璋蟑 zhao招昭找沼赵照罩兆肇召爪诏啁棹钊笊 \
    zhe遮折哲蛰辙者锗蔗这浙着谪摺柘辄磔鹧褶蜇赭 zhen珍斟真甄砧臻贞针侦枕疹诊震振镇阵帧圳蓁浈缜桢榛轸赈胗朕祯畛稹鸩箴 \
    zheng蒸挣睁征狰争怔整拯正政症郑证诤峥徵钲铮筝 \
    zhi芝枝支吱蜘知肢脂汁之织职直植殖执值侄址指止趾只旨纸志挚掷至致置帜峙制智秩稚质炙痔滞治窒卮陟郅埴芷摭帙夂忮彘咫骘栉枳栀桎轵轾贽胝膣祉祗黹雉鸷痣蛭絷酯跖踬踯豸觯 \
    zhong中盅忠钟衷终种肿重仲众冢锺螽舯踵 zhou舟周州洲诌粥轴肘帚咒皱宙昼骤荮妯纣绉胄籀酎 \
    zhu珠株蛛朱猪诸诛逐竹烛煮拄瞩嘱主著柱助蛀贮铸筑住注祝驻丶伫侏邾苎茱洙渚潴杼槠橥炷铢疰瘃竺箸舳翥躅麈 zhua抓 \
    zhuai拽 zhuan专砖转撰赚篆啭馔颛 zhuang桩庄装妆撞壮状 zhui锥追赘坠缀惴骓缒隹 zhun谆准肫窀 \
    zhuo捉拙卓桌茁酌啄灼浊倬诼擢浞涿濯禚斫镯 zi兹咨资姿滋淄孜紫籽滓子自渍字谘嵫姊孳缁梓辎赀恣眦锱秭耔笫粢趑觜訾龇鲻髭 \
    zong鬃棕踪宗综总纵偬腙粽 zou邹走奏揍诹陬鄹驺楱鲰 zu租足卒族祖诅阻组俎镞 zuan钻纂攥缵躜 zui嘴醉最罪蕞 \
    zun尊遵撙樽鳟 zuo琢昨左佐做作坐座阼唑怍胙祚 \
";

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
            *terms.entry(bigram(p, c)).or_default() += weight(p).min(weight(c));
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
    fn synonyms_are_read_as_one_word_and_the_longest_wins() {
        assert_eq!(normalise("啥时候发物流"), "什么时候发快递");
        assert_eq!(normalise("能寄日本吗要免邮"), "能寄国外吗要包邮");
        assert_eq!(normalise("用支付宝支付"), "用支付宝付款");
        assert_eq!(normalise("清明节发吗"), "节假日发吗");
        assert_eq!(normalise("订单2026111800012到哪了"), "订单到哪了");
        assert_eq!(normalise("满99包邮吗"), "满99包邮吗");
        assert_eq!(normalise(""), "");
    }

    #[test]
    fn every_synonym_is_folded_and_read_as_a_word_that_is_not_read_again() {
        for (from, to) in SYNONYMS {
            assert_eq!(wca_filter::fold_text(from), *from, "{from}");
            assert_eq!(normalise(to), *to, "{from} -> {to}");
        }
    }

    #[test]
    fn homophones_share_a_sound_and_other_characters_have_none() {
        assert_eq!(sound_of('费'), sound_of('废'));
        assert_eq!(sound_of('呗'), sound_of('被'));
        assert_ne!(sound_of('费'), sound_of('运'));
        assert_eq!(sound_of('a'), None);
        assert_eq!(sound_of('😀'), None);
    }

    #[test]
    fn a_homophone_typo_is_corrected_towards_a_known_bigram_only() {
        let faq = Faq::parse(
            "fee\t运费多少？\t8元。\nhuabei\t能用花呗吗\t可以。\n",
            "faq.tsv",
        )
        .expect("parses");
        assert_eq!(faq.correct("运废多少"), "运费多少");
        assert_eq!(faq.correct("花被"), "花呗");
        // Known bigrams stay, and so does what has no homophone to go to.
        assert_eq!(faq.correct("运费多少"), "运费多少");
        assert_eq!(faq.correct("今天好热"), "今天好热");
        assert_eq!(faq.correct("废"), "废");
    }

    #[test]
    fn bigrams_of_a_stop_character_weigh_like_it() {
        let terms = term_weights("包邮吗");
        assert_eq!(terms[&u64::from('包')], 1.0);
        assert_eq!(terms[&u64::from('吗')], STOP_WEIGHT);
        assert_eq!(terms[&bigram('包', '邮')], 1.0);
        assert_eq!(terms[&bigram('邮', '吗')], STOP_WEIGHT);
        assert_eq!(terms.len(), 5);
    }
}
