//! The FAQ: file errors, folding, silence, and retrieval measured on the
//! demo shop's held-out paraphrases.
//!
//! The test sets are `expected_id<TAB>question` lines, `-` for a question the
//! FAQ does not answer. `faq-heldout.tsv` was written before the retrieval
//! was first tuned; `faq-heldout2.tsv` (colloquial, typos, traditional
//! characters, emoji) after that one had been measured and before the second
//! round. Neither is tuned on: the method, the threshold and the margin were
//! chosen on `faq-dev.tsv` and `faq-dev-typos.tsv` (the dev questions with
//! one character each swapped for a common homophone, generated). Run
//! `cargo test -p wca-dialog --test faq -- --nocapture` to see the rates.

use std::path::{Path, PathBuf};

use wca_dialog::Faq;
use wca_dialog::faq::FaqError;

fn demo(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/demo-shop")
        .join(file)
}

fn demo_faq() -> Faq {
    Faq::load_all(&[demo("faq.tsv"), demo("faq-extra.tsv")]).expect("the demo FAQ loads")
}

/// `(expected id or "-", question)` lines of a test set.
fn questions(file: &str) -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("test set readable");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (id, q) = l.split_once('\t').expect("expected_id<TAB>question");
            (id.to_owned(), q.to_owned())
        })
        .collect()
}

/// How a FAQ does on a test set.
#[derive(Debug)]
struct Rates {
    /// Questions with an answer in the FAQ.
    answerable: usize,
    /// All questions.
    total: usize,
    /// Answered with the expected entry.
    correct: usize,
    /// Answered with another entry, or answered at all when nothing should be.
    wrong: usize,
    /// Of `wrong`, the questions the FAQ does not answer.
    wrong_negative: usize,
}

impl Rates {
    /// Prints the rates under `set`'s name (the test output shows them with
    /// `--nocapture`).
    fn print(&self, set: &str) {
        println!(
            "{set}: {}/{} correct ({:.3}), {}/{} wrong ({:.3}; {} of them negatives answered)",
            self.correct,
            self.answerable,
            self.correct_rate(),
            self.wrong,
            self.total,
            self.wrong_rate(),
            self.wrong_negative
        );
    }

    fn of(faq: &Faq, set: &[(String, String)]) -> Self {
        let mut rates = Rates {
            answerable: 0,
            total: set.len(),
            correct: 0,
            wrong: 0,
            wrong_negative: 0,
        };
        for (want, question) in set {
            if want != "-" {
                rates.answerable += 1;
            }
            match faq.best(question).entry {
                Some(e) if e.id == *want => rates.correct += 1,
                Some(_) => {
                    rates.wrong += 1;
                    if want == "-" {
                        rates.wrong_negative += 1;
                    }
                }
                None => {}
            }
        }
        rates
    }

    /// Share of answerable questions answered correctly.
    fn correct_rate(&self) -> f64 {
        self.correct as f64 / self.answerable as f64
    }

    /// Share of all questions answered wrongly.
    fn wrong_rate(&self) -> f64 {
        self.wrong as f64 / self.total as f64
    }
}

#[test]
fn loading_errors_name_the_file_and_the_line() {
    let table: &[(&str, &str)] = &[
        (
            "shipping-fee\n",
            "faq.tsv:1: expected id<TAB>question<TAB>answer",
        ),
        (
            "# comment\n\nShipping\t运费？\t8元\n",
            "faq.tsv:3: id \"Shipping\" must be lower-case ASCII letters, digits and hyphens",
        ),
        (
            "fee\t运费？\t8元\textra\n",
            "faq.tsv:1: expected id<TAB>question<TAB>answer, found 4 fields",
        ),
        ("fee\t运费？\t \n", "faq.tsv:1: empty answer"),
        (
            "fee\t？？\t8元\n",
            "faq.tsv:1: question has no letters, digits or CJK characters",
        ),
        (
            "fee\t运费？\t8元\nfee\t邮费？\t9元\n",
            "faq.tsv:2: id \"fee\" already has an answer at faq.tsv:1",
        ),
        (
            "fee\t运费多少\t8元\nfast\t運費多少？\t顺丰\n",
            "faq.tsv:2: question \"運費多少？\" is also asked for \"fee\" at faq.tsv:1",
        ),
        (
            "fee\t运费？\t8元\nfree\t包邮吗\n",
            "faq.tsv:2: no answer for id \"free\" in the FAQ",
        ),
    ];
    for (text, want) in table {
        let err = Faq::parse(text, "faq.tsv").expect_err(text);
        assert_eq!(err.to_string(), *want, "{text:?}");
    }
}

#[test]
fn an_example_in_a_second_file_is_reported_at_its_own_file_and_line() {
    let err = Faq::parse_all([
        ("fee\t运费？\t8元\n", "faq.tsv"),
        ("fee\t邮费多少\nfree\t包邮吗\n", "faq-extra.tsv"),
    ])
    .expect_err("unknown id");
    assert_eq!(
        err,
        FaqError::UnknownId {
            origin: "faq-extra.tsv".into(),
            line: 2,
            id: "free".into()
        }
    );
}

#[test]
fn a_missing_file_is_an_error_that_names_it() {
    let err = Faq::load(Path::new("no/such/faq.tsv")).expect_err("missing file");
    assert!(
        matches!(&err, FaqError::Read { path, .. } if path == "no/such/faq.tsv"),
        "{err}"
    );
}

#[test]
fn examples_join_their_entry_from_any_line_or_file_and_crlf_and_bom_are_ignored() {
    let faq = Faq::parse_all([
        (
            "\u{feff}fee\t邮费多少\r\n# the entry comes after its example\r\nfee\t运费怎么算？\t满99包邮。\r\n",
            "faq.tsv",
        ),
        ("fee\t要运费吗\nfee\t运费怎么算\n", "extra.tsv"),
    ])
    .expect("parses");
    assert_eq!(faq.len(), 1);
    let entry = faq.get("fee").expect("entry");
    assert_eq!(entry.question, "运费怎么算？");
    assert_eq!(entry.answer, "满99包邮。");
    // The repeated canonical question is not an extra example.
    assert_eq!(entry.examples, ["邮费多少", "要运费吗"]);
    assert!(faq.get("free").is_none());
}

#[test]
fn the_demo_shop_faq_loads_with_examples_for_every_entry() {
    let faq = demo_faq();
    assert_eq!(faq.len(), 40);
    for entry in faq.entries() {
        assert!(!entry.examples.is_empty(), "{} has no examples", entry.id);
    }
    assert!(faq.get("coupon-stack").is_some());
}

#[test]
fn every_canonical_question_finds_its_own_entry() {
    let faq = demo_faq();
    for entry in faq.entries() {
        let found = faq.best(&entry.question);
        assert_eq!(
            found.entry.map(|e| e.id.as_str()),
            Some(entry.id.as_str()),
            "{} scored {:?}",
            entry.question,
            found
        );
    }
}

#[test]
fn traditional_and_full_width_questions_hit_the_same_entry_as_simplified_ones() {
    let faq = demo_faq();
    let pairs = [
        ("退货的运费谁承担？", "退貨的運費誰承擔？"),
        ("优惠券可以叠加使用吗", "優惠券可以疊加使用嗎"),
        ("会员等级怎么划分", "會員等級怎麼劃分"),
        ("可以开发票吗", "可以開發票嗎"),
        ("满99包邮吗", "滿９９包郵嗎？"),
        ("能用花呗吗", "能用花唄嗎!!!"),
    ];
    for (simplified, other) in pairs {
        let a = faq.best(simplified);
        let b = faq.best(other);
        assert!(a.entry.is_some(), "{simplified}: {a:?}");
        assert_eq!(
            a.entry.map(|e| &e.id),
            b.entry.map(|e| &e.id),
            "{other}: {b:?}"
        );
        assert!((a.score - b.score).abs() < 1e-6, "{simplified} vs {other}");
    }
}

#[test]
fn homophone_typos_hit_the_same_entry_as_the_right_characters() {
    let faq = demo_faq();
    for (right, typo) in [
        ("能发顺丰吗", "能发顺风吗"),
        ("会员等级怎么划分", "会员等级怎么化分"),
        ("可以开发票吗", "可以开发飘吗"),
    ] {
        let a = faq.best(right);
        let b = faq.best(typo);
        assert!(a.entry.is_some(), "{right}: {a:?}");
        assert_eq!(
            a.entry.map(|e| &e.id),
            b.entry.map(|e| &e.id),
            "{typo}: {b:?}"
        );
    }
}

#[test]
fn an_order_number_alone_is_no_question() {
    let faq = demo_faq().with_threshold(0.0).with_margin(0.0);
    for text in ["9999999999999", "2026111800012", "13800138000"] {
        let found = faq.best(text);
        assert!(found.entry.is_none(), "{text:?} -> {found:?}");
    }
}

#[test]
fn questions_the_faq_does_not_answer_get_no_answer() {
    let faq = demo_faq();
    for text in [
        "今天天气怎么样",
        "讲个笑话",
        "你好",
        "哈哈哈",
        "",
        "？？？",
        "你们有没有卖手机壳",
    ] {
        let found = faq.best(text);
        assert!(found.entry.is_none(), "{text:?} -> {found:?}");
    }
}

#[test]
fn a_rejected_candidate_is_still_reported_with_its_score() {
    let faq = demo_faq();
    // Below the threshold, but the right entry is the candidate.
    let found = faq.best("会不会卖假货");
    assert!(found.entry.is_none(), "{found:?}");
    assert_eq!(found.candidate.map(|e| e.id.as_str()), Some("genuine"));
    assert!(
        found.score > 0.0 && found.score >= found.runner_up,
        "{found:?}"
    );
    // With no threshold and no margin the candidate is the answer.
    let lenient = faq.clone().with_threshold(0.0).with_margin(0.0);
    assert_eq!(
        lenient.best("会不会卖假货").entry.map(|e| e.id.as_str()),
        Some("genuine")
    );
    // Above the highest possible score nothing is answered.
    let strict = faq.with_threshold(1.01);
    assert!(strict.best("优惠券可以叠加使用吗？").entry.is_none());
}

#[test]
fn a_bare_common_word_is_too_little_to_answer_but_a_telling_one_is_enough() {
    let faq = demo_faq().with_threshold(0.0).with_margin(0.0);
    for vague in ["怎么办", "多久", "订单", "发货", "可以吗"] {
        let found = faq.best(vague);
        assert!(found.entry.is_none(), "{vague:?} -> {found:?}");
    }
    let faq = demo_faq();
    for (word, id) in [("发票", "invoice"), ("花呗", "huabei"), ("顺丰", "courier")] {
        assert_eq!(
            faq.best(word).entry.map(|e| e.id.as_str()),
            Some(id),
            "{word}"
        );
    }
}

#[test]
fn an_empty_faq_answers_nothing() {
    let faq = Faq::parse("# nothing yet\n\n", "faq.tsv").expect("parses");
    assert!(faq.is_empty());
    let found = faq.best("运费怎么算");
    assert!(found.entry.is_none() && found.candidate.is_none());
    assert_eq!(found.score, 0.0);
}

#[test]
fn the_extra_examples_do_not_contain_held_out_questions() {
    let faq = demo_faq();
    let fold = |s: &str| wca_filter::fold_text(s);
    let examples: Vec<String> = faq
        .entries()
        .iter()
        .flat_map(|e| &e.examples)
        .map(|q| fold(q))
        .collect();
    let leaked: Vec<String> = ["faq-heldout.tsv", "faq-heldout2.tsv"]
        .into_iter()
        .flat_map(questions)
        .map(|(_, question)| question)
        .filter(|question| examples.contains(&fold(question)))
        .collect();
    assert!(
        leaked.is_empty(),
        "held-out questions in the FAQ files: {leaked:?}"
    );
}

#[test]
fn the_held_out_set_covers_every_entry_and_has_negatives() {
    let faq = demo_faq();
    let set = questions("faq-heldout.tsv");
    for entry in faq.entries() {
        let n = set.iter().filter(|(id, _)| *id == entry.id).count();
        assert!(n >= 4, "{}: {n} held-out paraphrases", entry.id);
    }
    for (id, question) in &set {
        assert!(
            id == "-" || faq.get(id).is_some(),
            "{question}: unknown id {id}"
        );
    }
    assert!(set.iter().filter(|(id, _)| id == "-").count() >= 40);
}

/// The measured rates on the held-out set are 183/210 correct (0.871) and
/// 2/270 wrong (0.007, both negatives answered), with the default threshold
/// and margin; a change that lowers them fails here.
#[test]
fn held_out_accuracy_stays_at_the_measured_rates() {
    let rates = Rates::of(&demo_faq(), &questions("faq-heldout.tsv"));
    rates.print("held-out");
    assert!(rates.correct_rate() >= 0.86, "{rates:?}");
    assert!(rates.wrong_rate() <= 0.015, "{rates:?}");
}

/// The second held-out set, `faq-heldout2.tsv`, written after the first
/// had been measured and before the retrieval was tuned again: 124/161
/// correct (0.770) and 6/201 wrong (0.030). (The method before that round
/// scored 100/161 and 6/201.)
#[test]
fn second_held_out_accuracy_stays_at_the_measured_rates() {
    let rates = Rates::of(&demo_faq(), &questions("faq-heldout2.tsv"));
    rates.print("held-out 2");
    assert!(rates.correct_rate() >= 0.76, "{rates:?}");
    assert!(rates.wrong_rate() <= 0.035, "{rates:?}");
}

/// The defaults were chosen on the dev set: 206/240 correct (0.858), 5/310
/// wrong (0.016).
#[test]
fn dev_accuracy_stays_at_the_tuned_rates() {
    let rates = Rates::of(&demo_faq(), &questions("faq-dev.tsv"));
    rates.print("dev");
    assert!(rates.correct_rate() >= 0.85, "{rates:?}");
    assert!(rates.wrong_rate() <= 0.02, "{rates:?}");
}

/// The dev questions with a homophone typo each do nearly as well: 203/239
/// correct (0.849), 6/301 wrong (0.020); without the typo correction they
/// scored 148/239 (0.619) and 2/301.
#[test]
fn dev_questions_with_homophone_typos_are_answered_nearly_as_well() {
    let rates = Rates::of(&demo_faq(), &questions("faq-dev-typos.tsv"));
    rates.print("dev typos");
    assert!(rates.correct_rate() >= 0.83, "{rates:?}");
    assert!(rates.wrong_rate() <= 0.025, "{rates:?}");
}

/// For tuning: lists the dev questions (both dev sets) answered wrongly or
/// not at all, with their scores. Never a held-out set: those are measured
/// only in aggregate. `cargo test -p wca-dialog --test faq -- --ignored
/// --nocapture`.
#[test]
#[ignore = "prints the dev misses for tuning"]
fn dev_misses_are_listed_for_tuning() {
    let faq = demo_faq();
    for set in ["faq-dev.tsv", "faq-dev-typos.tsv"] {
        for (want, question) in questions(set) {
            let found = faq.best(&question);
            let got = found.entry.map_or("-", |e| e.id.as_str());
            if got != want {
                let candidate = found.candidate.map_or("-", |e| e.id.as_str());
                println!(
                    "{set}\t{want}\t{question}\tgot {got}\tcandidate {candidate} {:.3} (runner-up {:.3})",
                    found.score, found.runner_up
                );
            }
        }
    }
}

/// For the latency budget: the mean time of one lookup over the dev
/// questions. `cargo test --release -p wca-dialog --test faq -- --ignored
/// --nocapture a_lookup`.
#[test]
#[ignore = "prints the time of a lookup; meaningful in release builds"]
fn a_lookup_takes_a_few_microseconds() {
    let faq = demo_faq();
    let set = questions("faq-dev.tsv");
    let rounds = 200;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        for (_, question) in &set {
            std::hint::black_box(faq.best(question));
        }
    }
    let each = start.elapsed() / (rounds * set.len()) as u32;
    println!("one lookup: {each:?} (mean of {} questions)", set.len());
}
