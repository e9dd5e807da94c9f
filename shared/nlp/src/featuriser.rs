//! The wca featuriser (version 1): text in, hashed feature ids out.
//!
//! This is the Rust twin of `shared/nlp/train/featuriser.py`, which the
//! models were trained with. The two must agree id for id, or the model sees
//! different input in production than in training; the golden vectors in
//! `tests/golden/` (written by the training script) hold them together.
//!
//! The definition, also written into every `featuriser.json`:
//!
//! 1. Map each code point: U+FF01..U+FF5E (full-width ASCII) minus 0xFEE0;
//!    U+3000 and U+00A0 to U+0020; A-Z to a-z; 0-9 to `0` (each step only if
//!    its setting is on). No Unicode tables, so the result cannot drift with
//!    the Unicode version of Python or Rust.
//! 2. Collapse each run of ASCII whitespace into one space and trim the ends.
//! 3. Keep the first `max_chars` code points.
//! 4. Features, in this order: the bias `b`; for each order n of
//!    `char_ngrams`, every n-gram of code points left to right, keyed
//!    `c<n>` U+001F n-gram; every maximal run of ASCII letters and digits of
//!    at least `min_word_chars`, keyed `w` U+001F run.
//! 5. id = FNV-1a 64 of the key's UTF-8 bytes, modulo `buckets`.

use serde::Deserialize;

use crate::NlpError;

/// The featuriser family this crate implements, as named in `featuriser.json`.
pub const FEATURISER_NAME: &str = "wca-hashed-ngrams";
/// The featuriser version this crate implements.
pub const FEATURISER_VERSION: u64 = 1;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Separates a feature's kind from its text in the hashed key.
const UNIT_SEPARATOR: u8 = 0x1f;

/// Continues an FNV-1a 64 hash over `bytes`.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// `featuriser.json`, as written by `train.py` (unknown keys such as
/// `definition` are ignored).
#[derive(Debug, Deserialize)]
struct Config {
    buckets: u64,
    hash: String,
    normalise: NormaliseConfig,
    max_chars: usize,
    char_ngrams: Vec<usize>,
    word_tokens: bool,
    min_word_chars: usize,
    bias_feature: bool,
    pooling: String,
}

#[derive(Debug, Deserialize)]
struct NormaliseConfig {
    fullwidth_to_ascii: bool,
    unicode_spaces: bool,
    ascii_lowercase: bool,
    collapse_digits: bool,
}

/// Just the fields that say which featuriser a file is for, read first so
/// that a future version's file is refused as unsupported rather than as
/// malformed.
#[derive(Debug, Deserialize)]
struct Header {
    featuriser: String,
    version: u64,
}

/// Turns a text into the feature ids of one model.
///
/// Built from the model's `featuriser.json`; cheap to clone.
#[derive(Debug, Clone)]
pub struct Featuriser {
    buckets: u64,
    max_chars: usize,
    fullwidth_to_ascii: bool,
    unicode_spaces: bool,
    ascii_lowercase: bool,
    collapse_digits: bool,
    /// `(n, FNV state after "c<n>" U+001F)` per n-gram order, in file order.
    orders: Vec<(usize, u64)>,
    /// FNV state after `"w" U+001F`, when word tokens are on.
    words: Option<u64>,
    min_word_chars: usize,
    /// The id of the bias feature `b`.
    bias_id: i64,
}

impl Featuriser {
    /// Parses a `featuriser.json`.
    ///
    /// # Errors
    ///
    /// [`NlpError::UnsupportedFeaturiser`] for another featuriser or version,
    /// [`NlpError::Featuriser`] for a malformed file.
    pub fn from_json(json: &str) -> Result<Self, NlpError> {
        Self::parse(json, "featuriser.json")
    }

    /// [`Featuriser::from_json`], naming the file `origin` in errors.
    pub(crate) fn parse(json: &str, origin: &str) -> Result<Self, NlpError> {
        let bad = |reason: String| NlpError::Featuriser {
            path: origin.to_owned(),
            reason,
        };
        let header: Header = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        if header.featuriser != FEATURISER_NAME || header.version != FEATURISER_VERSION {
            return Err(NlpError::UnsupportedFeaturiser {
                path: origin.to_owned(),
                name: header.featuriser,
                version: header.version,
            });
        }
        let cfg: Config = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        if cfg.hash != "fnv1a64" {
            return Err(bad(format!("hash {:?} is not \"fnv1a64\"", cfg.hash)));
        }
        if cfg.pooling != "mean" {
            return Err(bad(format!("pooling {:?} is not \"mean\"", cfg.pooling)));
        }
        // Ids travel as int64, so the largest must fit.
        if cfg.buckets == 0 || cfg.buckets > i64::MAX as u64 {
            return Err(bad(format!("buckets {} is not in 1..=2^63-1", cfg.buckets)));
        }
        if cfg.char_ngrams.contains(&0) {
            return Err(bad("char_ngrams holds 0; orders start at 1".to_owned()));
        }
        // Without the bias an empty text has no features, and the mean of
        // nothing is a division by zero.
        if !cfg.bias_feature {
            return Err(bad(
                "bias_feature is false; wca-nlp needs it so that every text has a feature"
                    .to_owned(),
            ));
        }
        let keyed = |prefix: &[u8]| fnv1a(FNV_OFFSET, prefix);
        let orders = cfg
            .char_ngrams
            .iter()
            .map(|&n| {
                let prefix = format!("c{n}\u{1f}");
                (n, keyed(prefix.as_bytes()))
            })
            .collect();
        let mut featuriser = Self {
            buckets: cfg.buckets,
            max_chars: cfg.max_chars,
            fullwidth_to_ascii: cfg.normalise.fullwidth_to_ascii,
            unicode_spaces: cfg.normalise.unicode_spaces,
            ascii_lowercase: cfg.normalise.ascii_lowercase,
            collapse_digits: cfg.normalise.collapse_digits,
            orders,
            words: cfg.word_tokens.then(|| keyed(&[b'w', UNIT_SEPARATOR])),
            min_word_chars: cfg.min_word_chars,
            bias_id: 0,
        };
        featuriser.bias_id = featuriser.id(keyed(b"b"));
        Ok(featuriser)
    }

    /// The number of hash buckets: every id is below it.
    pub fn buckets(&self) -> u64 {
        self.buckets
    }

    /// The normalised text the n-grams are taken from (steps 1-3).
    pub fn normalise(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        self.normalise_each(text, |c| out.push(c));
        out
    }

    /// The feature ids of `text`, never empty (the bias comes first).
    pub fn ids(&self, text: &str) -> Vec<i64> {
        let mut ids = Vec::new();
        self.ids_into(text, &mut ids);
        ids
    }

    /// [`Featuriser::ids`] into a buffer the caller reuses (it is cleared first).
    pub fn ids_into(&self, text: &str, ids: &mut Vec<i64>) {
        ids.clear();
        let mut chars: Vec<char> = Vec::with_capacity(text.len().min(self.max_chars));
        self.normalise_each(text, |c| chars.push(c));

        let grams: usize = self
            .orders
            .iter()
            .map(|&(n, _)| (chars.len() + 1).saturating_sub(n))
            .sum();
        ids.reserve(1 + grams + chars.len() / 2);
        ids.push(self.bias_id);

        let mut utf8 = [0u8; 4];
        for &(n, state) in &self.orders {
            for gram in chars.windows(n) {
                let h = gram
                    .iter()
                    .fold(state, |h, c| fnv1a(h, c.encode_utf8(&mut utf8).as_bytes()));
                ids.push(self.id(h));
            }
        }

        if let Some(state) = self.words {
            // Maximal runs of ASCII letters and digits; the end of the text
            // closes the last one.
            let mut start = 0;
            for (i, c) in chars.iter().copied().map(Some).chain([None]).enumerate() {
                if c.is_some_and(|c| c.is_ascii_alphanumeric()) {
                    continue;
                }
                let run = &chars[start..i];
                if !run.is_empty() && run.len() >= self.min_word_chars {
                    // ASCII: one byte per char.
                    let h = run.iter().fold(state, |h, &c| fnv1a(h, &[c as u8]));
                    ids.push(self.id(h));
                }
                start = i + 1;
            }
        }
    }

    fn id(&self, hash: u64) -> i64 {
        // `buckets` <= i64::MAX was checked at parse time, so this is exact.
        (hash % self.buckets) as i64
    }

    /// Step 1 for one code point.
    fn map(&self, c: char) -> char {
        let mut c = c;
        if self.fullwidth_to_ascii && ('\u{ff01}'..='\u{ff5e}').contains(&c) {
            // Lands in 0x21..=0x7e: ASCII, so the byte is the char.
            c = ((c as u32 - 0xfee0) as u8) as char;
        }
        if self.unicode_spaces && matches!(c, '\u{3000}' | '\u{a0}') {
            c = ' ';
        }
        if self.ascii_lowercase {
            c = c.to_ascii_lowercase();
        }
        if self.collapse_digits && c.is_ascii_digit() {
            c = '0';
        }
        c
    }

    /// Steps 1-3, one output code point at a time.
    fn normalise_each(&self, text: &str, mut push: impl FnMut(char)) {
        let mut left = self.max_chars;
        let mut emit = |c: char| {
            if left == 0 {
                return false;
            }
            left -= 1;
            push(c);
            true
        };
        let mut pending_space = false;
        let mut started = false;
        for c in text.chars() {
            let c = self.map(c);
            // Python's set of ASCII whitespace: \t \n \v \f \r and space
            // (Rust's `is_ascii_whitespace` leaves out \v).
            if matches!(c, '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ') {
                pending_space = started;
                continue;
            }
            if pending_space {
                pending_space = false;
                if !emit(' ') {
                    return;
                }
            }
            if !emit(c) {
                return;
            }
            started = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(buckets: u64) -> String {
        format!(
            r#"{{"featuriser": "wca-hashed-ngrams", "version": 1, "buckets": {buckets},
            "hash": "fnv1a64", "normalise": {{"fullwidth_to_ascii": true,
            "unicode_spaces": true, "ascii_lowercase": true, "collapse_digits": true}},
            "max_chars": 8, "char_ngrams": [1, 2, 3], "word_tokens": true,
            "min_word_chars": 2, "bias_feature": true, "pooling": "mean"}}"#
        )
    }

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn normalise_maps_full_width_spaces_case_and_digits() {
        let f = Featuriser::from_json(&config(1 << 16)).expect("config");
        let table = [
            ("", ""),
            ("   ", ""),
            ("ＡＢ１２", "ab00"),
            ("\u{3000}a\u{a0}\u{a0}b\t\n", "a b"),
            ("x\u{b}y", "x y"),
            ("123456789", "00000000"),
            ("a b c d e f", "a b c d "),
            ("你好，世界！", "你好,世界!"),
        ];
        for (text, want) in table {
            assert_eq!(f.normalise(text), want, "normalise({text:?})");
        }
    }

    #[test]
    fn ids_start_with_the_bias_and_count_every_gram_and_word() {
        let f = Featuriser::from_json(&config(1 << 16)).expect("config");
        assert_eq!(f.ids(""), [f.bias_id]);
        // "ab c": 4 unigrams, 3 bigrams, 2 trigrams, 1 word ("c" is too short).
        assert_eq!(f.ids("AB c").len(), 1 + 4 + 3 + 2 + 1);
    }

    #[test]
    fn a_future_featuriser_version_is_unsupported_not_malformed() {
        let err = Featuriser::from_json(r#"{"featuriser": "wca-hashed-ngrams", "version": 2}"#)
            .expect_err("version 2");
        assert!(
            matches!(err, NlpError::UnsupportedFeaturiser { version: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_featuriser_without_the_bias_is_refused() {
        let json = config(16).replace(r#""bias_feature": true"#, r#""bias_feature": false"#);
        let err = Featuriser::from_json(&json).expect_err("no bias");
        assert!(err.to_string().contains("bias_feature"), "{err}");
    }

    #[test]
    fn zero_buckets_are_refused() {
        let err = Featuriser::from_json(&config(0)).expect_err("0 buckets");
        assert!(err.to_string().contains("buckets"), "{err}");
    }
}
