//! Folding and skipping: what the automaton sees of a text.
//!
//! Every character is folded one-to-one (width, case, digit styles,
//! traditional → simplified; see `tools/gen_tables.py`) and classed. Word
//! characters are fed to the automaton as their dictionary code; skippable
//! ones are passed over; a letter or ideograph of no dictionary word, a
//! gap that is too wide, or a line break restarts the search, so no match
//! can span it. Because the fold is 1:1 and characters are visited in
//! place, every match maps back to the exact byte range of the original.

use std::{collections::HashMap, sync::OnceLock};

use crate::tables::{CLASS_RUNS, FOLD};

/// How the matcher treats a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Letters, digits, CJK: part of words; breaks a match.
    Word,
    /// Spaces, punctuation, symbols, emoji: skipped, counted against the gap.
    Skip,
    /// Zero-width and format characters, combining marks: skipped, free.
    Invisible,
    /// Line breaks: never skipped.
    Break,
}

impl Class {
    fn from_bits(bits: u32) -> Self {
        match bits {
            1 => Class::Skip,
            2 => Class::Invisible,
            3 => Class::Break,
            _ => Class::Word,
        }
    }
}

const CLASS_SHIFT: u32 = 24;
const CP_MASK: u32 = (1 << 21) - 1;

/// Dense lookup for the Basic Multilingual Plane: folded code point in the
/// low 21 bits, class above. Built once, in well under a millisecond.
fn bmp() -> &'static [u32] {
    static BMP: OnceLock<Box<[u32]>> = OnceLock::new();
    BMP.get_or_init(|| {
        let mut table: Vec<u32> = (0..0x1_0000u32).collect();
        for &(from, to) in FOLD.iter() {
            if from < 0x1_0000 {
                table[from as usize] = to;
            }
        }
        for &(first, last, class) in CLASS_RUNS.iter() {
            if first >= 0x1_0000 {
                break;
            }
            for cp in first..=last.min(0xFFFF) {
                table[cp as usize] |= u32::from(class) << CLASS_SHIFT;
            }
        }
        table.into_boxed_slice()
    })
}

/// The folded character and its class.
#[inline]
pub(crate) fn fold(c: char) -> (char, Class) {
    let cp = c as u32;
    if cp < 0x1_0000 {
        let entry = bmp()[cp as usize];
        let folded = char::from_u32(entry & CP_MASK).unwrap_or(c);
        return (folded, Class::from_bits(entry >> CLASS_SHIFT));
    }
    let folded = FOLD
        .binary_search_by_key(&cp, |&(from, _)| from)
        .ok()
        .and_then(|i| char::from_u32(FOLD[i].1))
        .unwrap_or(c);
    (folded, class_of(folded as u32))
}

fn class_of(cp: u32) -> Class {
    let i = CLASS_RUNS.partition_point(|&(first, _, _)| first <= cp);
    match i.checked_sub(1).map(|i| CLASS_RUNS[i]) {
        Some((_, last, class)) if cp <= last => Class::from_bits(u32::from(class)),
        _ => Class::Word,
    }
}

/// A Latin letter or digit: the characters a Latin dictionary word must
/// not be glued to.
#[inline]
pub(crate) fn is_latin_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || (('\u{C0}'..='\u{24F}').contains(&c) && c.is_alphabetic())
        || ('\u{1E00}'..='\u{1EFF}').contains(&c)
}

/// Folds a dictionary word: word characters folded, everything else
/// dropped. `None` when it contains a line break.
pub(crate) fn fold_word(word: &str) -> Option<String> {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        match fold(c) {
            (f, Class::Word) => out.push(f),
            (_, Class::Break) => return None,
            _ => {}
        }
    }
    Some(out)
}

/// The characters of one filter's dictionary, each given a code of one
/// to three bytes, and the per-filter lookup from an original character
/// to its class and code.
///
/// A code is the character's number written in base `b` with `width`
/// digits (the fewest that fit), most significant first, and digit `j` is
/// the byte `1 + j·b + value`: each digit position has its own byte range.
/// So a match of whole codes can only start where a character starts,
/// every character costs the same number of automaton steps (two for the
/// 4,669 characters of a 50,000-word dictionary, against three for CJK in
/// UTF-8), and the automaton's byte alphabet stays small (138 values
/// there), which keeps its states small. Byte 0 is never used.
#[derive(Debug, Clone)]
pub(crate) struct Alphabet {
    /// Folded character → packed code (first byte lowest).
    codes: HashMap<char, u32>,
    width: u8,
    /// For each BMP code point, its [`entry`](Self::entry).
    bmp: Box<[u32]>,
}

impl Alphabet {
    /// Codes every character of `words` (already folded), numbered in
    /// order of first appearance.
    pub(crate) fn new<'a>(words: impl IntoIterator<Item = &'a str>) -> Self {
        let mut numbers: HashMap<char, u32> = HashMap::new();
        for word in words {
            for c in word.chars() {
                let next = numbers.len() as u32;
                numbers.entry(c).or_insert(next);
            }
        }
        let n = numbers.len() as u32;
        // The fewest digits whose ranges fit in bytes 1..=255 together.
        let (width, base) = if n <= 255 {
            (1, n.max(1))
        } else if n <= 127 * 127 {
            (2, (n as f64).sqrt().ceil() as u32)
        } else {
            // Unicode has fewer characters than 85³.
            (3, (n as f64).cbrt().ceil() as u32)
        };
        let pack = |mut number: u32| -> u32 {
            let mut packed = 0;
            for j in (0..width).rev() {
                let byte = 1 + j * base + number % base;
                packed |= byte << (8 * j);
                number /= base;
            }
            packed
        };
        let codes: HashMap<char, u32> = numbers.into_iter().map(|(c, i)| (c, pack(i))).collect();
        // Code by folded BMP code point, so the table below needs no hashing.
        let mut dense = vec![0u32; 0x1_0000];
        for (&c, &code) in &codes {
            if let Some(slot) = dense.get_mut(c as usize) {
                *slot = code;
            }
        }
        let bmp = bmp()
            .iter()
            .zip(0u32..)
            .map(|(&entry, cp)| {
                let class = entry >> CLASS_SHIFT;
                let folded = (entry & CP_MASK) as usize;
                let code = match (class, dense.get(folded)) {
                    (0, Some(&code)) => code,
                    _ => 0,
                };
                let pause = char::from_u32(cp).is_some_and(is_pause);
                (class << CLASS_SHIFT) | code | if pause { PAUSE_BIT } else { 0 }
            })
            .collect();
        Self {
            codes,
            width: width as u8,
            bmp,
        }
    }

    /// Bytes per character.
    pub(crate) fn width(&self) -> usize {
        usize::from(self.width)
    }

    /// The coded form of a folded dictionary word (every character of it
    /// is in the alphabet).
    pub(crate) fn encode(&self, folded: &str) -> Vec<u8> {
        let width = self.width();
        folded
            .chars()
            .flat_map(|c| {
                let packed = self.codes.get(&c).copied().unwrap_or(0);
                packed.to_le_bytes().into_iter().take(width)
            })
            .collect()
    }

    /// What the scanner needs of `c`: its class at [`CLASS_SHIFT`] (0 for
    /// a word character), [`PAUSE_BIT`] for clause punctuation, and the
    /// packed code of its fold in the low 24 bits (0 when in no word).
    /// So 0 is a word character of no dictionary word, and anything below
    /// `1 << CLASS_SHIFT` else is a dictionary character's code.
    #[inline(always)]
    fn entry(&self, c: char) -> u32 {
        let cp = c as u32;
        if cp < 0x1_0000 {
            return self.bmp[cp as usize];
        }
        let (folded, class) = fold(c);
        let code = match class {
            Class::Word => self.codes.get(&folded).copied().unwrap_or(0),
            _ => 0,
        };
        ((class as u32) << CLASS_SHIFT) | code
    }

    #[cfg(test)]
    fn lookup(&self, c: char) -> (u32, Class) {
        let entry = self.entry(c);
        (
            entry & 0xFF_FFFF,
            Class::from_bits((entry >> CLASS_SHIFT) & 3),
        )
    }
}

/// In a [`Step::Word`]'s flags: something was skipped before the character.
pub(crate) const GAP_SKIPPED: u8 = 1;
/// In a [`Step::Word`]'s flags: clause punctuation was skipped before it.
pub(crate) const GAP_PAUSE: u8 = 2;
/// In the scanner only: a line break was passed since the last word
/// character.
const GAP_BREAK: u8 = 4;
/// In an [`Alphabet`] entry: the character is clause punctuation.
const PAUSE_BIT: u32 = 1 << 26;

/// Clause punctuation: what ends a phrase in ordinary writing.
pub(crate) fn is_pause(c: char) -> bool {
    matches!(
        c,
        '，' | '。'
            | '！'
            | '？'
            | '；'
            | '：'
            | '、'
            | '…'
            | ','
            | '!'
            | '?'
            | ';'
            | ':'
            | '「'
            | '」'
            | '『'
            | '』'
            | '（'
            | '）'
            | '('
            | ')'
            | '《'
            | '》'
            | '〈'
            | '〉'
            | '“'
            | '”'
            | '‘'
            | '’'
            | '"'
            | '【'
            | '】'
            | '［'
            | '］'
            | '['
            | ']'
    )
}

/// What one character of the original means to the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A character of some dictionary word: feed its `code`. `restart`:
    /// the gap before it was too wide or held a line break, so no match
    /// may continue across it. `flags`: [`GAP_SKIPPED`] and [`GAP_PAUSE`]
    /// for what was skipped right before it.
    Word { code: u32, flags: u8, restart: bool },
    /// A letter, digit or ideograph of no dictionary word: no match can
    /// run through it.
    Reset,
    /// Noise, skipped.
    Skip,
}

/// Folds, classes and skips the characters of one text, one at a time,
/// in a single pass with no copy of the text: gaps of more than `max_gap`
/// counted characters, and gaps holding a line break, restart the search.
#[derive(Debug)]
pub(crate) struct Scanner<'a> {
    alphabet: &'a Alphabet,
    max_gap: usize,
    /// Skipped characters counted since the last word character.
    gap: usize,
    /// [`GAP_SKIPPED`], [`GAP_PAUSE`] and [`GAP_BREAK`] since the last
    /// word character: 0 when it was the character just before.
    flags: u8,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(alphabet: &'a Alphabet, max_gap: usize) -> Self {
        Self {
            alphabet,
            max_gap,
            gap: 0,
            flags: 0,
        }
    }

    // Called once per character of every text checked: always inlined
    // into the search loop, with the common case (a word character right
    // after another) first.
    #[inline(always)]
    pub(crate) fn step(&mut self, c: char) -> Step {
        let entry = self.alphabet.entry(c);
        if entry < 1 << CLASS_SHIFT {
            // A word character.
            let (flags, restart) = if self.flags == 0 {
                (0, false)
            } else {
                let restart = self.flags & GAP_BREAK != 0 || self.gap > self.max_gap;
                let flags = self.flags & (GAP_SKIPPED | GAP_PAUSE);
                self.gap = 0;
                self.flags = 0;
                (flags, restart)
            };
            return if entry == 0 {
                Step::Reset
            } else {
                Step::Word {
                    code: entry,
                    flags,
                    restart,
                }
            };
        }
        match Class::from_bits((entry >> CLASS_SHIFT) & 3) {
            Class::Skip => {
                self.gap += 1;
                self.flags |= GAP_SKIPPED;
                if entry & PAUSE_BIT != 0 {
                    self.flags |= GAP_PAUSE;
                }
            }
            Class::Invisible => self.flags |= GAP_SKIPPED,
            Class::Break => self.flags |= GAP_BREAK,
            // Word entries are all below `1 << CLASS_SHIFT`.
            Class::Word => {}
        }
        Step::Skip
    }
}

/// What the table must say of ASCII (checked by a test).
#[cfg(test)]
fn ascii_fold(c: char) -> (char, Class) {
    match c {
        'A'..='Z' => (c.to_ascii_lowercase(), Class::Word),
        'a'..='z' | '0'..='9' => (c, Class::Word),
        '\n' | '\r' | '\x0b' | '\x0c' => (c, Class::Break),
        // Everything else in ASCII: space, punctuation, symbols, controls.
        _ => (c, Class::Skip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_is_one_to_one_for_the_evasion_classes() {
        let cases = [
            ('Ａ', 'a'),
            ('ｓ', 's'),
            ('Ｂ', 'b'),
            ('９', '9'),
            ('①', '1'),
            ('❶', '1'),
            ('⑴', '1'),
            ('⒈', '1'),
            ('萬', '万'),
            ('賺', '赚'),
            ('穩', '稳'),
            ('賠', '赔'),
            ('Ω', 'ω'),
        ];
        for (from, to) in cases {
            assert_eq!(fold(from).0, to, "fold of {from}");
            assert_eq!(fold(from).1, Class::Word, "class of {from}");
        }
    }

    #[test]
    fn noise_characters_are_classed_as_skippable() {
        for c in [' ', '*', '，', '。', '😀', '♥', '\t', '　', '-', '_'] {
            assert_eq!(fold(c).1, Class::Skip, "{c:?}");
        }
        for c in ['\u{200b}', '\u{200d}', '\u{fe0f}', '\u{0301}', '\u{1F3FB}'] {
            assert_eq!(fold(c).1, Class::Invisible, "{c:?}");
        }
        for c in ['\n', '\r', '\u{2028}'] {
            assert_eq!(fold(c).1, Class::Break, "{c:?}");
        }
    }

    #[test]
    fn ascii_fast_path_agrees_with_the_table() {
        for b in 0u8..0x80 {
            let c = char::from(b);
            assert_eq!(ascii_fold(c), fold(c), "{c:?}");
        }
    }

    fn alphabet() -> Alphabet {
        Alphabet::new(["ab", "稳赚"])
    }

    fn steps(text: &str) -> Vec<Step> {
        let a = alphabet();
        let mut scanner = Scanner::new(&a, 3);
        text.chars().map(|c| scanner.step(c)).collect()
    }

    fn word(code: u32, flags: u8, restart: bool) -> Step {
        Step::Word {
            code,
            flags,
            restart,
        }
    }

    #[test]
    fn folded_characters_get_their_dictionary_codes_and_others_reset() {
        assert_eq!(
            steps("Ａ b，稳\u{200b}賺x"),
            [
                word(1, 0, false),
                Step::Skip,
                word(2, GAP_SKIPPED, false),
                Step::Skip,
                word(3, GAP_SKIPPED | GAP_PAUSE, false),
                Step::Skip,
                word(4, GAP_SKIPPED, false),
                Step::Reset,
            ]
        );
    }

    #[test]
    fn wide_gaps_and_line_breaks_restart_the_search() {
        let restarts = |text: &str| -> Vec<bool> {
            steps(text)
                .into_iter()
                .filter_map(|s| match s {
                    Step::Word { restart, .. } => Some(restart),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(restarts("稳 赚"), [false, false]);
        assert_eq!(
            restarts("稳   赚"),
            [false, false],
            "three spaces are allowed"
        );
        assert_eq!(restarts("稳    赚"), [false, true], "four are not");
        assert_eq!(restarts("稳\n赚"), [false, true]);
        assert_eq!(
            restarts("稳\u{200b}\u{200b}\u{200b}\u{200b}\u{200b}赚"),
            [false, false],
            "zero-width characters do not count"
        );
        assert_eq!(restarts("稳 x 赚"), [false, false], "x resets on its own");
    }

    #[test]
    fn codes_use_disjoint_byte_ranges_per_digit_and_never_byte_zero() {
        for n in [1usize, 200, 255, 256, 5_000, 16_129, 16_130, 40_000] {
            let chars: String = (0x4E00u32..).filter_map(char::from_u32).take(n).collect();
            let a = Alphabet::new([chars.as_str()]);
            let width = a.width();
            assert_eq!(
                width,
                if n <= 255 {
                    1
                } else if n <= 16_129 {
                    2
                } else {
                    3
                },
                "{n}"
            );
            let coded = a.encode(&chars);
            assert_eq!(coded.len(), n * width);
            let mut ranges = vec![(u8::MAX, 0u8); width];
            let mut seen = std::collections::HashSet::new();
            for code in coded.chunks(width) {
                assert!(seen.insert(code.to_vec()), "codes are distinct ({n})");
                for (j, &b) in code.iter().enumerate() {
                    assert_ne!(b, 0);
                    ranges[j] = (ranges[j].0.min(b), ranges[j].1.max(b));
                }
            }
            for pair in ranges.windows(2) {
                assert!(
                    pair[0].1 < pair[1].0,
                    "digit ranges overlap for {n}: {ranges:?}"
                );
            }
        }
    }

    #[test]
    fn every_code_point_is_looked_up_as_the_global_table_folds_and_classes_it() {
        let a = Alphabet::new(["aé稳"]);
        for c in [
            'A',
            'a',
            'É',
            'é',
            '稳',
            '穩',
            ' ',
            '\n',
            '\u{200b}',
            '😀',
            'q',
            '\u{20000}',
        ] {
            let (folded, class) = fold(c);
            let (code, got_class) = a.lookup(c);
            assert_eq!(got_class, class, "{c:?}");
            let expected = match folded {
                'a' => 1,
                'é' => 2,
                '稳' => 3,
                _ => 0,
            };
            assert_eq!(
                code,
                if class == Class::Word { expected } else { 0 },
                "{c:?}"
            );
        }
    }
}
