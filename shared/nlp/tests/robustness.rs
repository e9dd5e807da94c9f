//! Any text a customer can send is classified without a panic, and the
//! featuriser's ids always fit the model.

use proptest::prelude::*;
use wca_nlp::Nlp;

fn nlp() -> &'static Nlp {
    static NLP: std::sync::OnceLock<Nlp> = std::sync::OnceLock::new();
    NLP.get_or_init(|| Nlp::default_models().expect("embedded models load"))
}

fn check(text: &str) {
    let nlp = nlp();
    let intent = nlp.classify(text).expect("classify");
    assert_eq!(intent.top.len(), 3);
    assert_eq!(intent.top[0], (intent.label.clone(), intent.confidence));
    assert!(
        intent.top.windows(2).all(|w| w[0].1 >= w[1].1),
        "{:?}",
        intent.top
    );
    assert!((0.0..=1.0).contains(&intent.confidence));
    let sentiment = nlp.sentiment(text).expect("sentiment");
    assert!((-1.0..=1.0).contains(&sentiment.score), "{sentiment:?}");
    assert!(["negative", "neutral", "positive"].contains(&sentiment.label.as_str()));
}

#[test]
fn empty_and_whitespace_only_texts_are_classified() {
    for text in ["", " ", "\t\r\n", "\u{3000}\u{a0}"] {
        check(text);
    }
}

#[test]
fn emoji_only_texts_are_classified() {
    for text in ["😀", "👍👍👍", "👨‍👩‍👧", "🇨🇳", "\u{fe0f}\u{200d}"] {
        check(text);
    }
}

#[test]
fn a_ten_thousand_character_text_is_classified() {
    check(&"我要投诉".repeat(2_500));
    check(&"x".repeat(10_000));
    check(&"啊 ".repeat(5_000));
}

#[test]
fn control_characters_and_nul_are_classified() {
    check("\0");
    check("a\0b\u{7f}\u{1b}[31m");
}

proptest! {
    #[test]
    fn ids_are_never_empty_and_always_below_buckets(text in any::<String>()) {
        for model in [nlp().intent_model(), nlp().sentiment_model()] {
            let f = model.featuriser();
            let ids = f.ids(&text);
            prop_assert!(!ids.is_empty());
            prop_assert!(ids.iter().all(|&id| id >= 0 && (id as u64) < f.buckets()));
        }
    }

    #[test]
    fn chinese_and_mixed_texts_are_classified(text in "[\\u{4e00}-\\u{4e80}a-zA-Z0-9 ，。！？😀]{0,80}") {
        check(&text);
    }

    // Below max_chars (256): a cut can leave a trailing space that a second
    // pass would trim, exactly as featuriser.py does.
    #[test]
    fn normalising_twice_changes_nothing(text in "(\\PC|\\s){0,200}") {
        let f = nlp().intent_model().featuriser();
        let once = f.normalise(&text);
        prop_assert_eq!(f.normalise(&once), once);
    }
}
