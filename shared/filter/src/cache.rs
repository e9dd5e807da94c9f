//! A memo of whole-character steps of the automaton, for long texts.
//!
//! Feeding one two-byte character code to the automaton takes two steps,
//! each a few dependent reads and, when the character does not continue
//! the current word, a walk down failure links. The same (state,
//! character) pairs come back again and again in real text, so a long
//! text is scanned with a direct-mapped table from the pair to the state
//! after the whole character: one read when it hits. It is the automaton's
//! own answer stored, so results are the same with or without it; only
//! time differs. On the benchmark's 10 MB of reviews about four pairs in
//! five hit.
//!
//! Each slot is one `u64`: the key (state below 2^24, code below 2^16) in
//! the high 40 bits, the next state in the low 24. The table is cleared
//! for every text, so it never outlives the filter that filled it.

use aho_corasick::{
    Anchored,
    automaton::{Automaton, StateID},
    nfa::contiguous,
};

/// Texts shorter than this are scanned without the table: clearing it
/// would cost more than it saves.
pub(crate) const FROM_BYTES: usize = 256 * 1024;
/// Slots: one per 16 bytes of text, between these powers of two (1 MiB
/// at most, about the size of a core's second-level cache).
const MIN_BITS: u32 = 14;
const MAX_BITS: u32 = 17;
/// Never a key: codes of two-byte alphabets stay below 0xFF00.
const EMPTY: u64 = u64::MAX;
/// States and codes must fit the slot layout.
const STATE_LIMIT: usize = 1 << 24;

/// Whether the table can stand in for `nfa` with two-byte codes.
pub(crate) fn fits(nfa: &contiguous::NFA) -> bool {
    // State ids are offsets into the automaton's table of `u32`s, which
    // `memory_usage` bounds from above.
    nfa.memory_usage() / 4 < STATE_LIMIT
}

/// The table for one text, borrowed from the caller's scratch space.
pub(crate) struct TransitionCache<'s> {
    slots: &'s mut [u64],
    shift: u32,
    /// Misses in the current window.
    misses: usize,
    /// Whether the first window, which fills the empty table, is over.
    warm: bool,
}

/// Characters fed between two looks at the miss rate.
pub(crate) const WINDOW: usize = 1 << 14;

impl<'s> TransitionCache<'s> {
    /// Clears (and sizes, the first time) `slots` for a text of
    /// `text_len` bytes.
    pub(crate) fn prepare(slots: &'s mut Vec<u64>, text_len: usize) -> Self {
        let bits = (text_len / 16)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(MIN_BITS, MAX_BITS);
        slots.clear();
        slots.resize(1 << bits, EMPTY);
        Self {
            slots: slots.as_mut_slice(),
            shift: 64 - bits,
            misses: 0,
            warm: false,
        }
    }

    /// Called every [`WINDOW`] characters: whether the table still pays.
    /// A miss costs a table read on top of the automaton's own steps, so
    /// on text that repeats itself little (random characters ran 20%
    /// slower with the table than without) it is dropped once fewer than
    /// half the steps of a window hit. The first window, which starts
    /// from an empty table, is not judged.
    pub(crate) fn pays(&mut self) -> bool {
        let pays = !self.warm || self.misses * 2 <= WINDOW;
        self.warm = true;
        self.misses = 0;
        pays
    }

    /// The state after feeding the two-byte `code` to `nfa` from `sid`.
    #[inline(always)]
    pub(crate) fn feed(&mut self, nfa: &contiguous::NFA, sid: StateID, code: u32) -> StateID {
        let key = (u64::from(sid.as_u32()) << 16) | u64::from(code);
        // Fibonacci hashing: the top bits of the product.
        let slot = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize;
        let entry = self.slots[slot];
        if entry >> 24 == key {
            return StateID::from_u32_unchecked((entry & 0xFF_FFFF) as u32);
        }
        self.misses += 1;
        let [low, high, ..] = code.to_le_bytes();
        let mid = nfa.next_state(Anchored::No, sid, low);
        let next = nfa.next_state(Anchored::No, mid, high);
        self.slots[slot] = (key << 24) | u64::from(next.as_u32());
        next
    }
}

#[cfg(test)]
mod tests {
    use aho_corasick::{MatchKind, automaton::Automaton, nfa::contiguous};

    use super::{MAX_BITS, MIN_BITS, TransitionCache, WINDOW, fits};

    #[test]
    fn the_table_is_sized_by_the_text_and_cleared_for_each() {
        let mut slots = Vec::new();
        TransitionCache::prepare(&mut slots, 1_000);
        assert_eq!(slots.len(), 1 << MIN_BITS);
        slots[3] = 7;
        TransitionCache::prepare(&mut slots, 10_000_000);
        assert_eq!(slots.len(), 1 << MAX_BITS);
        assert!(slots.iter().all(|&s| s == u64::MAX));
        TransitionCache::prepare(&mut slots, 1 << 20);
        assert_eq!(slots.len(), 1 << 16);
    }

    #[test]
    fn the_table_is_dropped_when_fewer_than_half_the_steps_of_a_window_hit() {
        let mut slots = Vec::new();
        let mut cache = TransitionCache::prepare(&mut slots, 1 << 20);
        // The first window fills the table: not judged.
        cache.misses = WINDOW;
        assert!(cache.pays());
        cache.misses = WINDOW / 2;
        assert!(cache.pays());
        cache.misses = WINDOW / 2 + 1;
        assert!(!cache.pays());
        assert_eq!(cache.misses, 0);
    }

    #[test]
    fn a_remembered_step_is_the_automatons_own() {
        // Two-byte codes: first digits 1..=3, second 4..=6.
        let words: [&[u8]; 3] = [&[1, 4, 2, 5], &[2, 5, 3, 6], &[1, 4]];
        let nfa = contiguous::Builder::new()
            .match_kind(MatchKind::Standard)
            .build(words)
            .expect("build");
        assert!(fits(&nfa));
        let start = nfa.start_state(aho_corasick::Anchored::No).expect("start");
        let mut slots = Vec::new();
        let mut cache = TransitionCache::prepare(&mut slots, 0);
        // Four slots in use, so that pairs share them and overwrite.
        cache.shift = 62;
        let codes: Vec<u32> = [
            (1, 4),
            (2, 5),
            (3, 6),
            (1, 4),
            (1, 4),
            (2, 5),
            (2, 5),
            (3, 6),
        ]
        .iter()
        .cycle()
        .take(64)
        .map(|&(a, b)| a | (b << 8))
        .collect();
        let (mut cached, mut direct) = (start, start);
        for &code in &codes {
            cached = cache.feed(&nfa, cached, code);
            let mid = nfa.next_state(aho_corasick::Anchored::No, direct, code as u8);
            direct = nfa.next_state(aho_corasick::Anchored::No, mid, (code >> 8) as u8);
            assert_eq!(cached, direct);
        }
        assert!(cache.slots[..4].iter().all(|&s| s != u64::MAX));
    }
}
