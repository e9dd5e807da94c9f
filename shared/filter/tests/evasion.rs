//! The filter against each evasion class and each allow-list rule, as data
//! tables, plus property tests of the invariants the message path relies on.

use proptest::prelude::*;
use wca_filter::{Action, Dictionary, Filter};

const DENY: &str = "\
# category defaults
@default\tabuse\tmask
稳赚不赔\tfraud\tblock
保本保息\tfraud\tblock
刷单\tfraud\tblock
刷单返利\tfraud\tflag
滚\tabuse
傻逼\tabuse
sb\tabuse
fuck you\tabuse
赌博\tgambling
加微信\tads\tflag
vx\tads\tflag
论理\ttest\tflag
";

const ALLOW: &str = "\
刷单词
滚筒洗衣机
滚动
";

fn filter() -> Filter {
    let mut dict = Dictionary::new();
    dict.add_deny("deny.tsv", DENY).expect("deny list parses");
    dict.add_allow("allow.txt", ALLOW)
        .expect("allow list parses");
    dict.build().expect("filter builds")
}

/// The words hit in `text`, as written in the dictionary.
fn words(filter: &Filter, text: &str) -> Vec<String> {
    filter
        .check(text)
        .hits
        .iter()
        .map(|h| h.entry.word.clone())
        .collect()
}

#[test]
fn each_evasion_class_still_hits() {
    let f = filter();
    let table: &[(&str, &str, &str)] = &[
        ("plain", "这个产品稳赚不赔", "稳赚不赔"),
        ("spaces", "稳 赚 不 赔", "稳赚不赔"),
        ("stars", "稳*赚*不*赔", "稳赚不赔"),
        ("zero-width space", "稳\u{200b}赚不赔", "稳赚不赔"),
        (
            "zero-width joiner",
            "稳\u{200d}赚\u{200d}不\u{200d}赔",
            "稳赚不赔",
        ),
        ("full-width punctuation", "稳，赚。不！赔", "稳赚不赔"),
        ("emoji", "稳😀赚💰不👍🏻赔", "稳赚不赔"),
        (
            "emoji with variation selector",
            "稳❤\u{fe0f}赚不赔",
            "稳赚不赔",
        ),
        ("mixed noise", "稳-_-赚~不~赔", "稳赚不赔"),
        (
            "ideographic space",
            "稳\u{3000}赚\u{3000}不\u{3000}赔",
            "稳赚不赔",
        ),
        (
            "combining mark",
            "稳\u{0336}赚\u{0336}不\u{0336}赔",
            "稳赚不赔",
        ),
        ("traditional", "穩賺不賠", "稳赚不赔"),
        ("traditional with noise", "穩.賺.不.賠", "稳赚不赔"),
        ("full-width latin", "你个ＳＢ", "sb"),
        ("latin case", "你个Sb", "sb"),
        ("latin with noise", "你个s.b", "sb"),
        ("latin phrase", "FUCK   YOU", "fuck you"),
        ("latin phrase without space", "fuckyou!", "fuck you"),
        ("circled digits", "加微信①②③", "加微信"),
        ("latin word between cjk and digits", "加我vx 123", "vx"),
        ("traditional in a longer text", "我們這裡可以賭博嗎", "赌博"),
        ("tab between characters", "赌\t博", "赌博"),
    ];
    for (class, text, word) in table {
        let hits = words(&f, text);
        assert!(
            hits.iter().any(|w| w == word),
            "{class}: {text:?} should hit {word:?}, hits {hits:?}"
        );
    }
}

#[test]
fn real_characters_between_a_words_characters_break_it() {
    let f = filter();
    let table: &[(&str, &str)] = &[
        ("cjk between", "稳定赚钱不赔本"),
        ("one cjk between", "稳们赚不赔"),
        ("latin between", "稳a赚b不c赔"),
        ("digit between", "赌1博"),
        ("line break between", "稳赚\n不赔"),
        ("carriage return between", "稳赚\r\n不赔"),
        ("too much noise", "赌        博"),
        ("latin word inside a longer word", "usb接口"),
        ("latin word across words", "thanks bye"),
        ("latin word before letters", "sbc"),
        ("latin word after digits", "3sb"),
        ("latin word glued to digits", "vx123"),
        ("clause punctuation between phrases", "我们讨论，理论上可以"),
        ("a full stop between sentences", "这个赌。博物馆呢"),
        ("a comma inside a partly spaced word", "稳赚，不赔本"),
        ("quotes around phrases", "“刷”“单”"),
    ];
    for (class, text) in table {
        let hits = words(&f, text);
        assert!(
            hits.is_empty(),
            "{class}: {text:?} should be clean, hits {hits:?}"
        );
    }
}

#[test]
fn a_character_of_no_word_before_clause_punctuation_still_breaks_a_word() {
    let f = filter();
    assert_eq!(words(&f, "稳，赚，不，赔"), ["稳赚不赔"]);
    assert!(words(&f, "稳好，赚，不，赔").is_empty());
    assert!(words(&f, "稳x，赚，不，赔").is_empty());
    assert!(words(&f, "稳\n，赚，不，赔").is_empty());
}

#[test]
fn allowed_words_hide_the_deny_words_inside_them() {
    let f = filter();
    let table: &[(&str, &[&str])] = &[
        ("刷单词", &[]),
        ("背刷单词很有用", &[]),
        ("滚筒洗衣机", &[]),
        ("滚 筒 洗 衣 机", &[]),
        ("滚动播放", &[]),
        // Across clause punctuation an allowed word follows the rule deny
        // words do: only the shape of insertion makes it the word.
        ("滚，筒，洗，衣，机", &[]),
        ("滚，筒洗衣机", &["滚"]),
        // Outside the allowed word, the deny word still hits.
        ("刷单刷单词", &["刷单"]),
        ("滚，滚筒洗衣机坏了", &["滚"]),
        ("你给我滚", &["滚"]),
    ];
    for (text, expected) in table {
        assert_eq!(&words(&f, text), expected, "{text:?}");
    }
}

#[test]
fn nested_words_are_all_reported_and_the_strictest_action_wins() {
    let f = filter();
    let verdict = f.check("兼职刷单返利");
    let found: Vec<(&str, Action)> = verdict
        .hits
        .iter()
        .map(|h| (h.entry.word.as_str(), h.entry.action))
        .collect();
    assert_eq!(
        found,
        vec![("刷单返利", Action::Flag), ("刷单", Action::Block)]
    );
    assert_eq!(verdict.action(), Some(Action::Block));
}

#[test]
fn category_defaults_and_explicit_actions_are_applied() {
    let f = filter();
    assert_eq!(
        f.check("傻逼").action(),
        Some(Action::Mask),
        "abuse default"
    );
    assert_eq!(
        f.check("赌博").action(),
        Some(Action::Block),
        "no default: block"
    );
    assert_eq!(f.check("加微信").action(), Some(Action::Flag), "explicit");
    assert_eq!(f.check("你好").action(), None);
}

#[test]
fn masking_covers_the_original_span_including_skipped_characters() {
    let f = filter();
    let table: &[(&str, &str)] = &[
        ("这个稳 赚 不 赔哦", "这个*******哦"),
        ("穩賺不賠!", "****!"),
        ("你个ＳＢ。", "你个**。"),
        ("清白的文字", "清白的文字"),
        ("滚滚筒洗衣机", "*滚筒洗衣机"),
    ];
    for (text, masked) in table {
        let verdict = f.check(text);
        assert_eq!(&verdict.masked(text), masked, "{text:?}");
    }
}

#[test]
fn a_report_carries_exact_byte_offsets_into_the_text() {
    let f = filter();
    let text = "🙂 sb 赌\u{200b}博";
    let report = f.check(text).report(text);
    let spans: Vec<(&str, &str)> = report
        .hits
        .iter()
        .map(|h| (h.word.as_str(), &text[h.start..h.end]))
        .collect();
    assert_eq!(spans, vec![("sb", "sb"), ("赌博", "赌\u{200b}博")]);
    assert_eq!(report.action, "block");
    let clean = f.check("你好").report("你好");
    assert!(clean.hits.is_empty());
    assert_eq!(clean.action, "pass");
    assert_eq!(clean.masked, "你好");
}

#[test]
fn a_word_both_denied_and_allowed_is_refused() {
    let mut dict = Dictionary::new();
    dict.add_deny("deny.tsv", "刷单\tfraud\n").expect("parse");
    dict.add_allow("allow.txt", "刷 单\n").expect("parse");
    let err = dict.build().expect_err("conflict");
    assert!(err.to_string().contains("deny.tsv:1"), "{err}");
    assert!(err.to_string().contains("allow.txt:1"), "{err}");
}

#[test]
fn a_word_with_nothing_to_match_is_refused_with_its_line() {
    let mut dict = Dictionary::new();
    dict.add_deny("deny.tsv", "ok\tx\n***\tx\n").expect("parse");
    let err = dict.build().expect_err("empty word");
    assert!(err.to_string().starts_with("deny.tsv:2:"), "{err}");
}

#[test]
fn several_files_merge_and_the_strictest_duplicate_wins() {
    let mut dict = Dictionary::new();
    dict.add_deny("a.tsv", "赌博\tgambling\tflag\n")
        .expect("parse");
    dict.add_deny("b.tsv", "賭博\tgambling\tblock\n刷单\tfraud\n")
        .expect("parse");
    let f = dict.build().expect("build");
    assert_eq!(f.deny_len(), 2);
    let verdict = f.check("赌博");
    assert_eq!(verdict.hits.len(), 1);
    assert_eq!(verdict.action(), Some(Action::Block));
}

#[test]
fn a_large_dictionary_builds() {
    let mut text = String::new();
    for i in 0..100_000u32 {
        // Distinct 3-character CJK words.
        let a = char::from_u32(0x4E00 + i % 200).expect("cjk");
        let b = char::from_u32(0x4E00 + (i / 200) % 500).expect("cjk");
        text.push_str(&format!("{a}{b}词{i}\tbulk\n"));
    }
    let mut dict = Dictionary::new();
    dict.add_deny("bulk.tsv", &text).expect("parse");
    let f = dict.build().expect("build");
    assert_eq!(f.deny_len(), 100_000);
    assert_eq!(f.check("这是丁丁词201。").hits.len(), 1);
    assert!(f.check("丁丁词2010").hits.is_empty(), "whole-word digits");
}

#[test]
fn a_word_in_several_categories_is_reported_once_per_category_among_plain_words() {
    // Plain one-category words of several lengths around a word in two
    // categories and a Latin word, with and without an allow-list: each
    // kind of word is looked up its own way, and the hits must not mix
    // them up.
    let deny = "赌博\tgambling\tblock\n网络赌博平台\tgambling\n赌博\tads\tflag\n\
                代开发票\tfraud\tmask\nvx\tads\tflag\n洗钱\tfraud\n";
    let text = "网络赌博平台可以代开发票，加vx，洗钱机不是洗钱";
    let both = [
        ("网络赌博平台", "gambling", Action::Block, "网络赌博平台"),
        ("赌博", "gambling", Action::Block, "赌博"),
        ("赌博", "ads", Action::Flag, "赌博"),
        ("代开发票", "fraud", Action::Mask, "代开发票"),
        ("vx", "ads", Action::Flag, "vx"),
    ];
    for allow in ["", "洗钱机\n"] {
        let mut dict = Dictionary::new();
        dict.add_deny("deny.tsv", deny).expect("parse");
        dict.add_allow("allow.txt", allow).expect("parse");
        let f = dict.build().expect("build");
        let verdict = f.check(text);
        let found: Vec<(&str, &str, Action, &str)> = verdict
            .hits
            .iter()
            .map(|h| {
                (
                    h.entry.word.as_str(),
                    h.entry.category.as_str(),
                    h.entry.action,
                    &text[h.start..h.end],
                )
            })
            .collect();
        let mut expected = both.to_vec();
        if allow.is_empty() {
            expected.push(("洗钱", "fraud", Action::Block, "洗钱"));
        }
        expected.push(("洗钱", "fraud", Action::Block, "洗钱"));
        assert_eq!(found, expected, "allow-list {allow:?}");
    }
}

#[test]
fn dictionaries_of_every_alphabet_size_find_their_words() {
    // 100, 5,000 and 20,000 distinct characters: codes of one, two and
    // three bytes a character.
    for distinct in [100u32, 5_000, 20_000] {
        let chars: Vec<char> = (0x4E00u32..)
            .filter_map(char::from_u32)
            .take(distinct as usize)
            .collect();
        let mut deny = String::new();
        for pair in chars.chunks(2) {
            let word: String = pair.iter().collect();
            if word.chars().count() == 2 {
                deny.push_str(&format!("{word}\tbulk\n"));
            }
        }
        let mut dict = Dictionary::new();
        dict.add_deny("bulk.tsv", &deny).expect("parse");
        let f = dict.build().expect("build");
        let last = chars.len() - 2;
        let (a, b) = (chars[last], chars[last + 1]);
        let text = format!("前{a} {b}后");
        let verdict = f.check(&text);
        assert_eq!(verdict.hits.len(), 1, "{distinct} characters");
        assert_eq!(
            &text[verdict.hits[0].start..verdict.hits[0].end],
            format!("{a} {b}")
        );
        assert!(
            f.check(&format!("{a}{}{b}", chars[0])).hits.is_empty(),
            "a dictionary character between them breaks the word ({distinct})"
        );
        assert!(
            f.check(&format!("{b}{a}")).hits.is_empty(),
            "the reverse is not the word ({distinct})"
        );
    }
}

/// Characters the filter skips between any two characters of a word.
fn skippable() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            " ",
            "*",
            ".",
            "-",
            "~",
            "😀",
            "👍🏻",
            "\u{200b}",
            "\u{200d}",
            "\u{3000}",
            "❤\u{fe0f}",
            "#",
            "\t",
            "/",
            "|",
            "♥",
            "＊",
            "_",
        ]),
        0..=3,
    )
    .prop_map(|parts| parts.concat())
}

/// Clause punctuation, plus noise: skipped when it fills every gap of a
/// word of three or more characters.
fn pause_gap() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "，", "。", "！", "？", "、", ",", "!", "?", ":", "【", "】",
        ]),
        skippable(),
    )
        .prop_map(|(pause, noise)| format!("{pause}{noise}"))
        .prop_filter("at most three counted characters", |g| {
            g.chars()
                .filter(|c| !matches!(c, '\u{200b}' | '\u{200d}' | '\u{fe0f}' | '\u{1F3FB}'))
                .count()
                <= 3
        })
}

fn deny_words() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["稳赚不赔", "保本保息", "赌博", "傻逼", "加微信"])
}

proptest! {
    #[test]
    fn skippable_characters_between_a_words_characters_never_hide_it(
        word in deny_words(),
        gaps in prop::collection::vec(skippable(), 4),
        prefix in "[你好吗的了]{0,3}",
        suffix in "[你好吗的了]{0,3}",
    ) {
        let mut text = prefix.clone();
        for (i, c) in word.chars().enumerate() {
            if i > 0 {
                text.push_str(&gaps[i - 1]);
            }
            text.push(c);
        }
        text.push_str(&suffix);
        let f = filter();
        prop_assert!(words(&f, &text).iter().any(|w| w == word), "{text:?}");
    }

    #[test]
    fn clause_punctuation_in_every_gap_of_a_long_word_still_hits_it(
        word in prop::sample::select(vec!["稳赚不赔", "保本保息", "刷单返利"]),
        gaps in prop::collection::vec(pause_gap(), 3),
    ) {
        let mut text = String::new();
        for (i, c) in word.chars().enumerate() {
            if i > 0 {
                text.push_str(&gaps[i - 1]);
            }
            text.push(c);
        }
        let f = filter();
        prop_assert!(words(&f, &text).iter().any(|w| w == word), "{text:?}");
    }

    #[test]
    fn a_cjk_character_between_a_words_characters_always_breaks_it(
        word in deny_words(),
        at in 1usize..4,
        inserted in "[\u{4e00}-\u{9fa5}]",
    ) {
        let chars: Vec<char> = word.chars().collect();
        let at = at.min(chars.len() - 1);
        let text: String = chars[..at].iter().chain(inserted.chars().collect::<Vec<_>>().iter()).chain(chars[at..].iter()).collect();
        let f = filter();
        prop_assert!(!words(&f, &text).iter().any(|w| w == word), "{text:?}");
    }

    #[test]
    fn hits_fall_on_character_boundaries_and_masking_touches_nothing_else(text in "\\PC{0,40}", word in deny_words(), at in 0usize..40) {
        let mut text: String = text;
        let at = text.char_indices().map(|(i, _)| i).nth(at).unwrap_or(text.len());
        text.insert_str(at, word);
        let f = filter();
        let verdict = f.check(&text);
        let masked = verdict.masked(&text);
        prop_assert_eq!(masked.chars().count(), text.chars().count());
        for hit in &verdict.hits {
            prop_assert!(text.is_char_boundary(hit.start) && text.is_char_boundary(hit.end));
            prop_assert!(hit.start < hit.end);
        }
        for ((i, original), replaced) in text.char_indices().zip(masked.chars()) {
            let inside = verdict.hits.iter().any(|h| h.start <= i && i < h.end);
            if inside {
                prop_assert_eq!(replaced, '*');
            } else {
                prop_assert_eq!(replaced, original);
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let f = filter();
        let verdict = f.check(&text);
        let _ = verdict.report(&text);
    }
}

/// Words of the reference dictionary: they share characters, nest and
/// overlap, so a text of their characters holds many candidate matches.
const REFERENCE_WORDS: [&str; 9] = [
    "稳赚",
    "稳赚不赔",
    "赚不",
    "不赔",
    "赔钱",
    "不赔钱",
    "赌博",
    "博彩",
    "赌博网站",
];

/// Allowed words of the reference dictionary, made of its characters and
/// holding some of its deny words.
const REFERENCE_ALLOWED: [&str; 2] = ["赚不赔", "博彩网"];

/// Every match of `words` the rules allow in `text` (made of the
/// reference alphabet), found the slow way: for each word and each start,
/// walk the text.
/// Between two characters of a word only skippable characters may stand
/// (space, `*`, `，`, `。`, counted, at most three; a zero-width space,
/// free), never a line break or a word character; and a word across
/// clause punctuation counts only with three or more characters and every
/// gap filled.
fn reference_hits(text: &str, words: &[&str]) -> Vec<(String, usize, usize)> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    for &word in words {
        let wanted: Vec<char> = word.chars().collect();
        for first in 0..chars.len() {
            if chars[first].1 != wanted[0] {
                continue;
            }
            let (mut at, mut pause, mut all_filled) = (first, false, true);
            let mut ok = true;
            for &next in &wanted[1..] {
                let (mut counted, mut skipped) = (0, 0);
                let mut j = at + 1;
                loop {
                    let Some(&(_, c)) = chars.get(j) else {
                        ok = false;
                        break;
                    };
                    match c {
                        ' ' | '*' => counted += 1,
                        '，' | '。' => {
                            counted += 1;
                            pause = true;
                        }
                        '\u{200b}' => {}
                        _ => break,
                    }
                    skipped += 1;
                    j += 1;
                }
                if !ok || counted > 3 || chars[j].1 != next {
                    ok = false;
                    break;
                }
                all_filled &= skipped > 0;
                at = j;
            }
            if ok && (!pause || (wanted.len() >= 3 && all_filled)) {
                let end = chars[at].0 + chars[at].1.len_utf8();
                out.push((word.to_owned(), chars[first].0, end));
            }
        }
    }
    out.sort();
    out
}

/// A piece of a reference text: a reference word with noise between its
/// characters, or one character of any kind.
fn reference_piece() -> impl Strategy<Value = String> {
    let noise = prop::sample::select(vec![
        "",
        "",
        " ",
        "*",
        "，",
        "。",
        "\u{200b}",
        " 。",
        "，，",
        "   ",
        "* *。",
        "\u{200b}\u{200b}  \u{200b}",
        "\n",
        "好",
    ]);
    let word = (
        prop::sample::select(REFERENCE_WORDS.to_vec()),
        prop::collection::vec(noise, 3),
    )
        .prop_map(|(word, gaps)| {
            let mut out = String::new();
            for (i, c) in word.chars().enumerate() {
                if i > 0 {
                    out.push_str(gaps[i - 1]);
                }
                out.push(c);
            }
            out
        });
    let single = prop::sample::select(vec![
        "稳", "赚", "不", "赔", "钱", "赌", "博", "彩", "网", "站", " ", "*", "，", "。",
        "\u{200b}", "\n", "好",
    ])
    .prop_map(str::to_owned);
    prop_oneof![word, single]
}

/// The hits of `f` in `text` as (word, start, end), checking on the way
/// that they come in text order, longer first.
fn hits_in_order(f: &Filter, text: &str) -> Result<Vec<(String, usize, usize)>, TestCaseError> {
    let hits = f.check(text).hits;
    for pair in hits.windows(2) {
        prop_assert!(
            (pair[0].start, std::cmp::Reverse(pair[0].end))
                <= (pair[1].start, std::cmp::Reverse(pair[1].end)),
            "hits out of order in {:?}: {:?}",
            text,
            hits
        );
    }
    let mut found: Vec<_> = hits
        .iter()
        .map(|h| (h.entry.word.clone(), h.start, h.end))
        .collect();
    found.sort();
    Ok(found)
}

proptest! {
    #[test]
    fn every_hit_the_rules_allow_is_found_and_nothing_else(
        parts in prop::collection::vec(reference_piece(), 0..16),
    ) {
        let text: String = parts.concat();
        let mut dict = Dictionary::new();
        for word in REFERENCE_WORDS {
            dict.deny(word, "test", None);
        }
        let f = dict.build().expect("build");
        prop_assert_eq!(hits_in_order(&f, &text)?, reference_hits(&text, &REFERENCE_WORDS), "{:?}", text);
    }

    #[test]
    fn allowed_words_follow_the_same_rules_and_shield_only_the_hits_wholly_inside_them(
        parts in prop::collection::vec(reference_piece(), 0..16),
    ) {
        let text: String = parts.concat();
        let mut dict = Dictionary::new();
        for word in REFERENCE_WORDS {
            dict.deny(word, "test", None);
        }
        for word in REFERENCE_ALLOWED {
            dict.allow(word);
        }
        let f = dict.build().expect("build");
        let allowed = reference_hits(&text, &REFERENCE_ALLOWED);
        let mut expected = reference_hits(&text, &REFERENCE_WORDS);
        expected.retain(|(_, s, e)| !allowed.iter().any(|(_, a, b)| a <= s && e <= b));
        prop_assert_eq!(hits_in_order(&f, &text)?, expected, "{:?}", text);
    }
}

/// A small deterministic generator (xorshift), so the long texts below
/// are the same on every run.
struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Long texts are scanned with a memo of automaton steps (from 256 KiB on,
/// for dictionaries of more than 255 characters), dropped again when the
/// text repeats itself too little. Either way, a line break ends every
/// word, so a long text must hit exactly what its lines hit one by one.
#[test]
fn a_long_text_hits_exactly_what_its_lines_hit_one_by_one() {
    // 400 more two-character words: more than 255 characters in all.
    let extra: Vec<String> = (0..400u32)
        .map(|i| {
            let c = |n: u32| char::from_u32(0x5000 + n).expect("CJK");
            format!("{}{}", c(i), c((i * 7 + 3) % 400))
        })
        .collect();
    let mut dict = Dictionary::new();
    for word in REFERENCE_WORDS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
    {
        dict.deny(word, "test", None);
    }
    for word in REFERENCE_ALLOWED {
        dict.allow(word);
    }
    let f = dict.build().expect("build");
    let noise = ["", "", "", " ", "*", "，", "。", "\u{200b}", "好", "x"];
    // Repetitive text first (the memo pays), then text of random
    // characters (it does not, and is dropped).
    let mut rng = Xorshift(0x2545_F491_4F6C_DD1D);
    let mut text = String::new();
    while text.len() < 400_000 {
        for _ in 0..rng.below(40) {
            let word = if rng.below(3) == 0 {
                REFERENCE_WORDS[rng.below(REFERENCE_WORDS.len())]
            } else {
                extra[rng.below(40)].as_str()
            };
            for (i, c) in word.chars().enumerate() {
                if i > 0 {
                    text.push_str(noise[rng.below(noise.len())]);
                }
                text.push(c);
            }
            text.push_str(noise[rng.below(noise.len())]);
        }
        text.push('\n');
    }
    while text.len() < 800_000 {
        for _ in 0..rng.below(80) {
            text.push(char::from_u32(0x5000 + rng.below(400) as u32).expect("CJK"));
            text.push_str(noise[rng.below(noise.len())]);
        }
        text.push('\n');
    }
    let whole: Vec<(String, usize, usize)> = f
        .check(&text)
        .hits
        .iter()
        .map(|h| (h.entry.word.clone(), h.start, h.end))
        .collect();
    let mut by_line = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        by_line.extend(
            f.check(line)
                .hits
                .iter()
                .map(|h| (h.entry.word.clone(), offset + h.start, offset + h.end)),
        );
        offset += line.len();
    }
    assert!(whole.len() > 10_000, "{} hits", whole.len());
    assert_eq!(whole.len(), by_line.len());
    assert!(
        whole == by_line,
        "the long text's hits differ from its lines'"
    );
}
