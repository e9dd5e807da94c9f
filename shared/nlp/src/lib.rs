//! Intent and sentiment of customer messages, from small models run by tract.
//!
//! Every inbound text gets one of the twelve intents of
//! `shared/spec/intents.md` (with a confidence and the top three) and a
//! sentiment (`negative`, `neutral`, `positive`, with a score in [-1, 1]).
//! The default models are fastText-style classifiers over hashed character
//! n-grams, trained by `shared/nlp/train/run.sh` and embedded in the binary,
//! so a Lambda function or `wca serve` needs no model files. A model
//! directory (`model.onnx`, `labels.txt`, `featuriser.json`) replaces either
//! one; `shared/nlp/MODELS.md` documents the data, the evaluation and the
//! latency.
//!
//! Load once (a few milliseconds), then classify from any thread:
//!
//! ```
//! use wca_nlp::Nlp;
//!
//! let nlp = Nlp::default_models()?;
//! let intent = nlp.classify("我要退货")?;
//! assert_eq!(intent.label, "return_refund");
//! assert_eq!(intent.top.len(), 3);
//! assert_eq!(intent.top[0], (intent.label.clone(), intent.confidence));
//!
//! let sentiment = nlp.sentiment("请问什么时候发货")?;
//! assert!((-1.0..=1.0).contains(&sentiment.score));
//! # Ok::<(), wca_nlp::NlpError>(())
//! ```
//!
//! Your own models:
//!
//! ```no_run
//! # use wca_nlp::Nlp;
//! // models/intent/{model.onnx,labels.txt,featuriser.json}, models/sentiment/...
//! let nlp = Nlp::load_dir("models")?;
//! # Ok::<(), wca_nlp::NlpError>(())
//! ```

mod error;
mod featuriser;
mod model;

use std::path::Path;

pub use error::NlpError;
pub use featuriser::{FEATURISER_NAME, FEATURISER_VERSION, Featuriser};
pub use model::Model;

/// How many labels [`Intent::top`] holds (fewer if the model has fewer).
pub const TOP: usize = 3;

/// The default models, built into the binary.
mod embedded {
    pub const INTENT_ONNX: &[u8] = include_bytes!("../models/intent/model.onnx");
    pub const INTENT_LABELS: &str = include_str!("../models/intent/labels.txt");
    pub const INTENT_FEATURISER: &str = include_str!("../models/intent/featuriser.json");
    pub const SENTIMENT_ONNX: &[u8] = include_bytes!("../models/sentiment/model.onnx");
    pub const SENTIMENT_LABELS: &str = include_str!("../models/sentiment/labels.txt");
    pub const SENTIMENT_FEATURISER: &str = include_str!("../models/sentiment/featuriser.json");
}

/// The intent of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    /// The most probable label.
    pub label: String,
    /// Its probability, in [0, 1].
    pub confidence: f32,
    /// The most probable labels with their probabilities, best first
    /// (`top[0]` is `(label, confidence)`).
    pub top: Vec<(String, f32)>,
}

/// The sentiment of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Sentiment {
    /// The most probable label (`negative`, `neutral` or `positive` for the
    /// default model).
    pub label: String,
    /// p(positive) - p(negative): -1 is surely negative, 1 surely positive,
    /// near 0 neutral or unsure.
    pub score: f32,
}

/// The intent and sentiment models together.
#[derive(Debug, Clone)]
pub struct Nlp {
    intent: Model,
    sentiment: Model,
    /// Indices of `negative` and `positive` among the sentiment labels.
    negative: usize,
    positive: usize,
}

impl Nlp {
    /// Pairs an intent model with a sentiment model.
    ///
    /// # Errors
    ///
    /// [`NlpError::SentimentLabels`] if the sentiment model has no
    /// `negative` or no `positive` label.
    pub fn new(intent: Model, sentiment: Model) -> Result<Self, NlpError> {
        let index = |name: &str| sentiment.labels().iter().position(|l| l == name);
        let (Some(negative), Some(positive)) = (index("negative"), index("positive")) else {
            return Err(NlpError::SentimentLabels {
                path: "the sentiment model's labels.txt".to_owned(),
                labels: sentiment.labels().to_vec(),
            });
        };
        Ok(Self {
            intent,
            sentiment,
            negative,
            positive,
        })
    }

    /// The default models, embedded in the binary (no files needed).
    ///
    /// # Errors
    ///
    /// None in practice: the embedded files are checked by this crate's
    /// tests. The `Result` is there because loading is the same code as for
    /// a user's model.
    pub fn default_models() -> Result<Self, NlpError> {
        use embedded::*;
        Self::new(
            Model::from_bytes(INTENT_ONNX, INTENT_LABELS, INTENT_FEATURISER)?,
            Model::from_bytes(SENTIMENT_ONNX, SENTIMENT_LABELS, SENTIMENT_FEATURISER)?,
        )
    }

    /// Loads two model directories (see [`Model::load`]).
    ///
    /// # Errors
    ///
    /// Those of [`Model::load`] and [`Nlp::new`].
    pub fn load(
        intent_dir: impl AsRef<Path>,
        sentiment_dir: impl AsRef<Path>,
    ) -> Result<Self, NlpError> {
        Self::new(Model::load(intent_dir)?, Model::load(sentiment_dir)?)
    }

    /// Loads `dir/intent` and `dir/sentiment`.
    ///
    /// # Errors
    ///
    /// Those of [`Nlp::load`].
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self, NlpError> {
        let dir = dir.as_ref();
        Self::load(dir.join("intent"), dir.join("sentiment"))
    }

    /// The intent model.
    pub fn intent_model(&self) -> &Model {
        &self.intent
    }

    /// The sentiment model.
    pub fn sentiment_model(&self) -> &Model {
        &self.sentiment
    }

    /// The intent of `text`. Any text works, the empty one included.
    ///
    /// # Errors
    ///
    /// [`NlpError::Inference`] if tract fails (see [`Model::probabilities`]).
    pub fn classify(&self, text: &str) -> Result<Intent, NlpError> {
        let probs = self.intent.probabilities(text)?;
        let labels = self.intent.labels();
        let mut order: Vec<usize> = (0..probs.len()).collect();
        // Best first; ties keep the label file's order, so the result is
        // deterministic.
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        let top: Vec<(String, f32)> = order
            .iter()
            .take(TOP)
            .map(|&i| (labels[i].clone(), probs[i]))
            .collect();
        let (label, confidence) = top[0].clone();
        Ok(Intent {
            label,
            confidence,
            top,
        })
    }

    /// The sentiment of `text`. Any text works, the empty one included.
    ///
    /// # Errors
    ///
    /// [`NlpError::Inference`] if tract fails (see [`Model::probabilities`]).
    pub fn sentiment(&self, text: &str) -> Result<Sentiment, NlpError> {
        let probs = self.sentiment.probabilities(text)?;
        let best = argmax(&probs);
        Ok(Sentiment {
            label: self.sentiment.labels()[best].clone(),
            score: (probs[self.positive] - probs[self.negative]).clamp(-1.0, 1.0),
        })
    }
}

/// The index of the largest value; the first on ties.
fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nlp_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Nlp>();
    }

    #[test]
    fn argmax_takes_the_first_of_equals() {
        assert_eq!(argmax(&[0.2, 0.4, 0.4]), 1);
        assert_eq!(argmax(&[1.0]), 0);
    }
}
