//! The Rust side agrees with the training side.
//!
//! `train.py` writes golden vectors (`tests/golden/<task>.jsonl`): for tricky
//! inputs and a sample of the test split, the normalised text and the ids
//! from `featuriser.py`, and the probabilities onnxruntime computed from the
//! exported ONNX file. If the featuriser drifted by one id, the model would
//! see different input in production than it was trained and evaluated on.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use wca_nlp::{Model, Nlp};

/// How far tract's probabilities may be from onnxruntime's: the two sum the
/// bag in different orders, so they agree to float32 rounding, not bits.
const TOLERANCE: f32 = 1e-5;

#[derive(Deserialize)]
struct Golden {
    text: String,
    normalised: String,
    ids: Vec<i64>,
    probs: Vec<f32>,
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden(task: &str) -> Vec<Golden> {
    let path = crate_dir()
        .join("tests/golden")
        .join(format!("{task}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let records: Vec<Golden> = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect();
    assert!(
        records.len() > 30,
        "{}: only {} vectors",
        path.display(),
        records.len()
    );
    records
}

fn model(task: &str) -> Model {
    Model::load(crate_dir().join("models").join(task)).expect("the default model loads")
}

fn check_featuriser(task: &str) {
    let model = model(task);
    let featuriser = model.featuriser();
    for g in golden(task) {
        assert_eq!(
            featuriser.normalise(&g.text),
            g.normalised,
            "{task}: normalise({:?})",
            g.text
        );
        assert_eq!(featuriser.ids(&g.text), g.ids, "{task}: ids({:?})", g.text);
    }
}

fn check_probabilities(task: &str) {
    let model = model(task);
    let mut worst = 0.0f32;
    for g in golden(task) {
        let probs = model.probabilities(&g.text).expect("runs");
        assert_eq!(probs.len(), g.probs.len(), "{task}: {:?}", g.text);
        for (label, (ours, theirs)) in model.labels().iter().zip(probs.iter().zip(&g.probs)) {
            let diff = (ours - theirs).abs();
            worst = worst.max(diff);
            assert!(
                diff <= TOLERANCE,
                "{task}: p({label} | {:?}) is {ours} in tract, {theirs} in onnxruntime",
                g.text
            );
        }
    }
    eprintln!("{task}: largest difference from onnxruntime {worst:e}");
}

#[test]
fn the_rust_featuriser_reproduces_every_intent_golden_vector() {
    check_featuriser("intent");
}

#[test]
fn the_rust_featuriser_reproduces_every_sentiment_golden_vector() {
    check_featuriser("sentiment");
}

#[test]
fn tract_matches_onnxruntime_on_the_intent_golden_vectors() {
    check_probabilities("intent");
}

#[test]
fn tract_matches_onnxruntime_on_the_sentiment_golden_vectors() {
    check_probabilities("sentiment");
}

#[test]
fn the_embedded_models_are_the_files_in_models() {
    // The default models are compiled in; the golden vectors check the
    // files. Both must be the same models.
    let nlp = Nlp::default_models().expect("embedded models load");
    for (task, embedded) in [
        ("intent", nlp.intent_model()),
        ("sentiment", nlp.sentiment_model()),
    ] {
        let on_disk = model(task);
        assert_eq!(embedded.labels(), on_disk.labels(), "{task}");
        for g in golden(task).iter().take(20) {
            assert_eq!(
                embedded.probabilities(&g.text).expect("runs"),
                on_disk.probabilities(&g.text).expect("runs"),
                "{task}: {:?}",
                g.text
            );
        }
    }
}

#[test]
fn golden_files_exist_for_both_models() {
    for task in ["intent", "sentiment"] {
        assert!(
            Path::new(
                &crate_dir()
                    .join("tests/golden")
                    .join(format!("{task}.jsonl"))
            )
            .exists()
        );
    }
}
