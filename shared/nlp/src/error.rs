//! The one error type of `wca-nlp`.
//!
//! Every variant names the file it is about: a user who drops in their own
//! model directory should learn from the message alone which file to fix.

use std::path::PathBuf;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NlpError {
    /// A file of a model directory does not exist.
    #[error(
        "{path} is missing (a model directory holds model.onnx, labels.txt and featuriser.json)",
        path = .path.display()
    )]
    Missing {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// A file of a model directory exists but could not be read.
    #[error("cannot read {path}: {source}", path = .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// `featuriser.json` is not valid JSON or lacks a setting.
    #[error("bad featuriser config {path}: {reason}")]
    Featuriser {
        /// The file (or its name, for a model built from bytes).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `featuriser.json` is for a featuriser this build does not implement.
    #[error(
        "{path}: unsupported featuriser {name:?} version {version}; this build of wca-nlp \
         implements \"wca-hashed-ngrams\" version 1"
    )]
    UnsupportedFeaturiser {
        /// The file.
        path: String,
        /// The `featuriser` it names.
        name: String,
        /// The `version` it names.
        version: u64,
    },
    /// `labels.txt` is empty or lists a label twice.
    #[error("bad label file {path}: {reason}")]
    Labels {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `labels.txt` does not have one label per output of the model.
    #[error(
        "{labels_path} lists {labels} labels but {model_path} outputs {outputs} probabilities; \
         they must match"
    )]
    LabelCount {
        /// The label file.
        labels_path: String,
        /// How many labels it lists.
        labels: usize,
        /// The ONNX file.
        model_path: String,
        /// How wide the model's output is.
        outputs: usize,
    },
    /// The ONNX file could not be parsed, is not the shape wca-nlp runs, or
    /// does not fit its featuriser.
    #[error("cannot use ONNX model {path}: {reason}")]
    Onnx {
        /// The file.
        path: String,
        /// What went wrong, from tract or from the checks.
        reason: String,
    },
    /// A sentiment model whose labels lack `negative` or `positive`, so the
    /// score cannot be computed.
    #[error("sentiment model {path} must have the labels negative and positive; it has {labels:?}")]
    SentimentLabels {
        /// The label file.
        path: String,
        /// The labels it has.
        labels: Vec<String>,
    },
    /// Running a loaded model failed.
    #[error("running model {path} failed: {reason}")]
    Inference {
        /// The ONNX file.
        path: String,
        /// What tract said.
        reason: String,
    },
}
