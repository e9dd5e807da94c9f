//! Structure-aware mutation of seed inputs.
//!
//! Random bytes rarely get past `<xml>` or the first `=` of a TOML file, so
//! most cases are valid seeds with a few edits stacked on them: bit flips,
//! byte insertions and deletions, copied ranges, splices of two seeds, and
//! insertions of tokens that mean something to the target (`]]>`,
//! `<![CDATA[`, `[[flow]]`, a TAB, `@default`), numbers at the edges of
//! their types in place of a number, and multi-byte or invalid UTF-8.
//! Mutants that the target accepts join a small pool and are mutated
//! further, so edits accumulate on inputs that still parse.

use crate::rng::Rng;

/// Numbers at the edges of `i64`, `u64`, `u32`, `f64` and of the ranges the
/// loaders check, written as TOML and XML would carry them.
const NUMBERS: &[&[u8]] = &[
    b"0",
    b"-0",
    b"1",
    b"-1",
    b"2",
    b"255",
    b"256",
    b"1023",
    b"1024",
    b"3600",
    b"3601",
    b"65536",
    b"2147483647",
    b"2147483648",
    b"-2147483648",
    b"4294967295",
    b"4294967296",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"9223372036854775808",
    b"18446744073709551615",
    b"18446744073709551616",
    b"106751991167300",
    b"213503982336",
    b"1e308",
    b"1e309",
    b"-1e309",
    b"0.5",
    b"1.0000001",
    b"nan",
    b"NaN",
    b"inf",
    b"-inf",
    b"+inf",
];

/// Characters that matter to every text format here: multi-byte UTF-8,
/// a byte-order mark, zero-width and non-characters, controls, and bytes
/// that are not UTF-8 at all.
const CHARS: &[&[u8]] = &[
    "中".as_bytes(),
    "ｅ".as_bytes(),
    "穩".as_bytes(),
    "\u{feff}".as_bytes(),
    "\u{200b}".as_bytes(),
    "\u{fffe}".as_bytes(),
    "\u{ffff}".as_bytes(),
    "\u{10ffff}".as_bytes(),
    "😀".as_bytes(),
    "\u{301}".as_bytes(),
    b"\0",
    b"\x1b",
    b"\r",
    b"\r\n",
    b"\t",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
];

/// Inputs longer than this are cut: long inputs only make cases slow.
pub const MAX_LEN: usize = 8 * 1024;

/// The pool of accepted mutants kept for further mutation.
const POOL: usize = 256;

/// Makes inputs for one target from its seeds.
#[derive(Debug, Clone)]
pub struct Mutator {
    seeds: Vec<Vec<u8>>,
    pool: Vec<Vec<u8>>,
    tokens: &'static [&'static [u8]],
}

impl Mutator {
    /// A mutator over `seeds` that also inserts the target's `tokens`.
    pub fn new(seeds: Vec<Vec<u8>>, tokens: &'static [&'static [u8]]) -> Self {
        Self {
            seeds,
            pool: Vec::new(),
            tokens,
        }
    }

    /// The next input: one in ten is random bytes, the rest a seed (or an
    /// accepted mutant) with one to eight edits.
    pub fn next(&self, rng: &mut Rng) -> Vec<u8> {
        if self.seeds.is_empty() || rng.chance(10) {
            let len = rng.below(64);
            return (0..len).map(|_| rng.byte()).collect();
        }
        let from_pool = !self.pool.is_empty() && rng.chance(30);
        let base = if from_pool {
            rng.pick(&self.pool)
        } else {
            rng.pick(&self.seeds)
        };
        let mut data = base.cloned().unwrap_or_default();
        // Mostly few edits: an input with one broken spot reaches deeper
        // than one broken everywhere.
        let edits = 1 + rng.below(4) * rng.below(3);
        for _ in 0..edits {
            self.edit(&mut data, rng);
        }
        data.truncate(MAX_LEN);
        data
    }

    /// Keeps an accepted mutant for further mutation.
    pub fn keep(&mut self, input: &[u8], rng: &mut Rng) {
        if self.pool.len() < POOL {
            self.pool.push(input.to_vec());
        } else {
            let i = rng.below(POOL);
            self.pool[i] = input.to_vec();
        }
    }

    fn edit(&self, data: &mut Vec<u8>, rng: &mut Rng) {
        let at = rng.below(data.len() + 1);
        match rng.below(12) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = *rng
                    .pick(b"<>/&;]![\"'=\t\n #{}.,:\\0\xff\x80")
                    .unwrap_or(&0);
            }
            2 => {
                let n = 1 + rng.below(4);
                let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                insert(data, at, &bytes);
            }
            3 if !data.is_empty() => {
                let len = 1 + rng.below(16.min(data.len()));
                let start = rng.below(data.len() - len + 1);
                data.drain(start..start + len);
            }
            4 if !data.is_empty() => {
                // Copy a range elsewhere: repeats elements, lines, tables.
                let len = 1 + rng.below(64.min(data.len()));
                let start = rng.below(data.len() - len + 1);
                let chunk = data[start..start + len].to_vec();
                insert(data, at, &chunk);
            }
            5 | 6 => {
                if let Some(token) = rng.pick(self.tokens) {
                    insert(data, at, token);
                }
            }
            7 => {
                if let Some(c) = rng.pick(CHARS) {
                    insert(data, at, c);
                }
            }
            8 => replace_number(data, rng),
            9 => {
                if let Some(other) = rng.pick(&self.seeds) {
                    let cut = rng.below(other.len() + 1);
                    data.truncate(at);
                    data.extend_from_slice(&other[cut..]);
                }
            }
            10 => data.truncate(at),
            _ => {
                // Toggle ASCII case of a short run: element names and
                // TOML keys are case-sensitive, WeChat's values are not.
                let end = (at + 1 + rng.below(8)).min(data.len());
                for b in &mut data[at.min(end)..end] {
                    if b.is_ascii_alphabetic() {
                        *b ^= 0x20;
                    }
                }
            }
        }
    }
}

fn insert(data: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    let at = at.min(data.len());
    data.splice(at..at, bytes.iter().copied());
}

/// Replaces a run of digits (with its sign and fraction) by an edge
/// value, or inserts one when the input has no number.
fn replace_number(data: &mut Vec<u8>, rng: &mut Rng) {
    let number = rng.pick(NUMBERS).copied().unwrap_or(b"0");
    let digits: Vec<usize> = (0..data.len())
        .filter(|&i| data[i].is_ascii_digit())
        .collect();
    let Some(&hit) = rng.pick(&digits) else {
        let at = rng.below(data.len() + 1);
        insert(data, at, number);
        return;
    };
    let number_byte = |b: u8| b.is_ascii_digit() || b == b'.' || b == b'_';
    let mut start = hit;
    while start > 0 && (number_byte(data[start - 1]) || data[start - 1] == b'-') {
        start -= 1;
    }
    let mut end = hit;
    while end < data.len() && number_byte(data[end]) {
        end += 1;
    }
    data.splice(start..end, number.iter().copied());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_replaced_whole() {
        let mut data = b"retention_days = 180\n".to_vec();
        let mut rng = Rng::new(3);
        replace_number(&mut data, &mut rng);
        let text = String::from_utf8_lossy(&data);
        assert!(text.starts_with("retention_days = "), "{text}");
        assert!(!text.contains("180"), "{text}");
    }

    #[test]
    fn mutants_stay_within_the_length_limit_and_differ_from_their_seed() {
        let seed = b"<xml><A>1</A></xml>".to_vec();
        let m = Mutator::new(vec![seed.clone()], &[b"]]>"]);
        let mut rng = Rng::new(9);
        let mutants: Vec<Vec<u8>> = (0..200).map(|_| m.next(&mut rng)).collect();
        assert!(mutants.iter().all(|x| x.len() <= MAX_LEN));
        assert!(mutants.iter().filter(|x| **x != seed).count() > 150);
    }
}
