//! Model directories: a user can drop in their own, and a broken one is
//! refused at load with a message that names the file to fix.

use std::fs;
use std::path::{Path, PathBuf};

use wca_nlp::{Model, Nlp, NlpError};

const FILES: [&str; 3] = ["model.onnx", "labels.txt", "featuriser.json"];

fn default_dir(task: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(task)
}

/// A copy of a default model directory in a tempdir.
fn copy_of(task: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in FILES {
        fs::copy(default_dir(task).join(file), dir.path().join(file)).expect("copy");
    }
    dir
}

#[test]
fn a_user_model_directory_loads_and_classifies() {
    let root = tempfile::tempdir().expect("tempdir");
    for task in ["intent", "sentiment"] {
        fs::create_dir(root.path().join(task)).expect("mkdir");
        for file in FILES {
            fs::copy(
                default_dir(task).join(file),
                root.path().join(task).join(file),
            )
            .expect("copy");
        }
    }
    let nlp = Nlp::load_dir(root.path()).expect("a copy of the defaults loads");
    let default = Nlp::default_models().expect("defaults");
    for text in ["我要退货", "转人工", "你好"] {
        assert_eq!(
            nlp.classify(text).expect("runs"),
            default.classify(text).expect("runs")
        );
        assert_eq!(
            nlp.sentiment(text).expect("runs"),
            default.sentiment(text).expect("runs")
        );
    }
}

#[test]
fn a_user_model_with_other_labels_loads() {
    // Renaming labels is the simplest "own model": same graph, new names.
    let dir = copy_of("intent");
    let renamed: String = (0..12).map(|i| format!("my_label_{i}\n")).collect();
    fs::write(dir.path().join("labels.txt"), renamed).expect("write");
    let model = Model::load(dir.path()).expect("loads");
    assert_eq!(model.labels()[11], "my_label_11");
}

#[test]
fn a_label_file_that_does_not_match_the_model_is_refused() {
    let dir = copy_of("intent");
    fs::write(dir.path().join("labels.txt"), "greeting\nother\n").expect("write");
    let err = Model::load(dir.path()).expect_err("2 labels for 12 outputs");
    assert!(
        matches!(
            err,
            NlpError::LabelCount {
                labels: 2,
                outputs: 12,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("labels.txt") && msg.contains("model.onnx"),
        "{msg}"
    );
    assert!(msg.contains("2 labels") && msg.contains("12"), "{msg}");
}

#[test]
fn a_missing_file_error_names_the_path() {
    for file in FILES {
        let dir = copy_of("sentiment");
        let path = dir.path().join(file);
        fs::remove_file(&path).expect("rm");
        let err = Model::load(dir.path()).expect_err("missing file");
        assert!(
            matches!(&err, NlpError::Missing { path: p } if *p == path),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}

#[test]
fn a_missing_directory_is_refused_with_its_path() {
    let err = Nlp::load_dir("/nonexistent/wca-models").expect_err("no dir");
    assert!(
        err.to_string()
            .contains("/nonexistent/wca-models/intent/model.onnx"),
        "{err}"
    );
}

#[test]
fn a_featuriser_of_an_unsupported_version_is_refused() {
    let dir = copy_of("intent");
    let path = dir.path().join("featuriser.json");
    let json = fs::read_to_string(&path).expect("read");
    fs::write(&path, json.replace("\"version\": 1", "\"version\": 7")).expect("write");
    let err = Model::load(dir.path()).expect_err("version 7");
    assert!(
        matches!(err, NlpError::UnsupportedFeaturiser { version: 7, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_malformed_featuriser_config_is_refused_naming_the_file() {
    let dir = copy_of("intent");
    let path = dir.path().join("featuriser.json");
    let json = fs::read_to_string(&path).expect("read");
    fs::write(&path, json.replace("\"max_chars\"", "\"max_characters\"")).expect("write");
    let err = Model::load(dir.path()).expect_err("no max_chars");
    let msg = err.to_string();
    assert!(matches!(err, NlpError::Featuriser { .. }), "{msg}");
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("max_chars"),
        "{msg}"
    );
}

#[test]
fn more_buckets_than_embedding_rows_is_refused_rather_than_panicking_later() {
    let dir = copy_of("intent");
    let path = dir.path().join("featuriser.json");
    let json = fs::read_to_string(&path).expect("read");
    fs::write(
        &path,
        json.replace("\"buckets\": 65536", "\"buckets\": 65537"),
    )
    .expect("write");
    let err = Model::load(dir.path()).expect_err("too many buckets");
    assert!(matches!(err, NlpError::Onnx { .. }), "{err:?}");
    assert!(err.to_string().contains("buckets"), "{err}");
}

#[test]
fn a_file_that_is_not_onnx_is_refused_naming_it() {
    let dir = copy_of("intent");
    let path = dir.path().join("model.onnx");
    fs::write(&path, b"not a model").expect("write");
    let err = Model::load(dir.path()).expect_err("garbage");
    assert!(matches!(err, NlpError::Onnx { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_sentiment_model_without_positive_and_negative_is_refused() {
    let dir = copy_of("sentiment");
    fs::write(dir.path().join("labels.txt"), "bad\nmeh\ngood\n").expect("write");
    let err = Nlp::load(default_dir("intent"), dir.path()).expect_err("no positive");
    assert!(matches!(err, NlpError::SentimentLabels { .. }), "{err:?}");
}

#[test]
fn a_label_listed_twice_is_refused() {
    let err = Model::from_bytes(
        &fs::read(default_dir("sentiment").join("model.onnx")).expect("read"),
        "negative\nneutral\nnegative\n",
        &fs::read_to_string(default_dir("sentiment").join("featuriser.json")).expect("read"),
    )
    .expect_err("duplicate");
    assert!(matches!(err, NlpError::Labels { .. }), "{err:?}");
    assert!(err.to_string().contains("\"negative\""), "{err}");
}
