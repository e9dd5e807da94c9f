//! One classifier: an ONNX file run by tract, its labels and its featuriser.
//!
//! tract stays inside this module: the rest of the crate, and every crate
//! that uses it, sees texts, labels and probabilities only.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::{
    Framework as _, InferenceModelExt as _, IntoRunnable as _, Tensor, TypedSimplePlan, tvec,
};
use tract_onnx::tract_core::ops::array::Gather;

use crate::{Featuriser, NlpError};

/// The file names of a model directory.
const MODEL_FILE: &str = "model.onnx";
const LABELS_FILE: &str = "labels.txt";
const FEATURISER_FILE: &str = "featuriser.json";

/// A loaded classifier: text in, one probability per label out.
///
/// The ONNX graph takes `ids` (int64 `[N]`, the featuriser's ids) and
/// `weights` (float32 `[1, N]`, each `1/N`) and returns `probs` (float32
/// `[1, labels]`). It is parsed, checked and optimised once, in
/// [`Model::load`] or [`Model::from_bytes`]; running it is then read-only, so
/// one `Model` serves any number of threads.
#[derive(Clone)]
pub struct Model {
    plan: Arc<TypedSimplePlan>,
    labels: Vec<String>,
    featuriser: Featuriser,
    /// Where the ONNX file came from, for error messages.
    origin: String,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("origin", &self.origin)
            .field("labels", &self.labels)
            .field("featuriser", &self.featuriser)
            .finish_non_exhaustive()
    }
}

/// What to call the three inputs in error messages.
struct Origins {
    model: String,
    labels: String,
    featuriser: String,
}

impl Model {
    /// Loads a model directory: `model.onnx`, `labels.txt` (one label per
    /// line, in the order of the model's outputs) and `featuriser.json`.
    ///
    /// # Errors
    ///
    /// [`NlpError::Missing`] or [`NlpError::Read`] naming the file that
    /// could not be read, or any error of [`Model::from_bytes`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, NlpError> {
        let dir = dir.as_ref();
        let paths = [MODEL_FILE, LABELS_FILE, FEATURISER_FILE].map(|f| dir.join(f));
        let [model_path, labels_path, featuriser_path] = &paths;
        let onnx = read(model_path)?;
        let labels = read_text(labels_path)?;
        let featuriser = read_text(featuriser_path)?;
        Self::build(
            &onnx,
            &labels,
            &featuriser,
            Origins {
                model: model_path.display().to_string(),
                labels: labels_path.display().to_string(),
                featuriser: featuriser_path.display().to_string(),
            },
        )
    }

    /// Builds a model from the contents of the three files of a model
    /// directory (this is how the embedded default models load).
    ///
    /// # Errors
    ///
    /// [`NlpError::Featuriser`] or [`NlpError::UnsupportedFeaturiser`] for
    /// the featuriser config, [`NlpError::Labels`] for an empty label list or
    /// a label listed twice, [`NlpError::Onnx`] for a file tract cannot load
    /// or that is not shaped as described on [`Model`], and
    /// [`NlpError::LabelCount`] when the model's output width is not the
    /// number of labels.
    pub fn from_bytes(onnx: &[u8], labels: &str, featuriser_json: &str) -> Result<Self, NlpError> {
        Self::build(
            onnx,
            labels,
            featuriser_json,
            Origins {
                model: MODEL_FILE.to_owned(),
                labels: LABELS_FILE.to_owned(),
                featuriser: FEATURISER_FILE.to_owned(),
            },
        )
    }

    fn build(
        onnx: &[u8],
        labels: &str,
        featuriser_json: &str,
        origins: Origins,
    ) -> Result<Self, NlpError> {
        let featuriser = Featuriser::parse(featuriser_json, &origins.featuriser)?;
        let labels = parse_labels(labels, &origins.labels)?;
        let onnx_error = |reason: String| NlpError::Onnx {
            path: origins.model.clone(),
            reason,
        };
        let tract = |e: tract_onnx::prelude::TractError| onnx_error(format!("{e:#}"));

        let model = tract_onnx::onnx()
            .model_for_read(&mut Cursor::new(onnx))
            .map_err(tract)?
            .into_typed()
            .map_err(tract)?
            .into_decluttered()
            .map_err(tract)?;

        if model.inputs.len() != 2 || model.outputs.len() != 1 {
            return Err(onnx_error(format!(
                "has {} inputs and {} outputs; wca-nlp runs models with inputs (ids, weights) \
                 and one output (probs)",
                model.inputs.len(),
                model.outputs.len()
            )));
        }
        let output = model.output_fact(0).map_err(tract)?;
        let width = match output.shape.as_concrete() {
            Some(&[1, width]) => width,
            _ => {
                return Err(onnx_error(format!(
                    "outputs shape {:?}; wca-nlp needs [1, labels]",
                    output.shape
                )));
            }
        };
        if width != labels.len() {
            return Err(NlpError::LabelCount {
                labels_path: origins.labels,
                labels: labels.len(),
                model_path: origins.model,
                outputs: width,
            });
        }
        // tract's Gather indexes without a bounds check at run time, so an
        // embedding smaller than the featuriser's buckets would panic on the
        // first unlucky text. Check every Gather that reads the ids now.
        let ids_input = model.inputs[0];
        for node in &model.nodes {
            let Some(gather) = node.op_as::<Gather>() else {
                continue;
            };
            if node.inputs.get(1) != Some(&ids_input) {
                continue;
            }
            let data = model.outlet_fact(node.inputs[0]).map_err(tract)?;
            let rows = data.shape.get(gather.axis).and_then(|d| d.to_i64().ok());
            if rows.is_none_or(|rows| rows < 0 || (rows as u64) < featuriser.buckets()) {
                return Err(onnx_error(format!(
                    "its embedding has {rows:?} rows but {} says buckets = {}",
                    origins.featuriser,
                    featuriser.buckets()
                )));
            }
        }

        let plan = model
            .into_optimized()
            .map_err(tract)?
            .into_runnable()
            .map_err(tract)?;
        let model = Self {
            plan,
            labels,
            featuriser,
            origin: origins.model.clone(),
        };
        // One run at load: it proves the graph runs end to end on the
        // highest id, and the first real message does not pay for any lazy
        // set-up.
        let buckets = i64::try_from(model.featuriser.buckets() - 1).unwrap_or(i64::MAX);
        let probs = model.run(&[0, buckets])?;
        if probs.len() != model.labels.len() {
            return Err(onnx_error(format!(
                "returned {} probabilities for {} labels",
                probs.len(),
                model.labels.len()
            )));
        }
        Ok(model)
    }

    /// The labels, in the order of the model's outputs.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The model's featuriser.
    pub fn featuriser(&self) -> &Featuriser {
        &self.featuriser
    }

    /// One probability per label (in [`Model::labels`] order) for `text`.
    ///
    /// # Errors
    ///
    /// [`NlpError::Inference`] if tract fails; a model that loaded runs
    /// every text, so this points at a bug rather than at the input.
    pub fn probabilities(&self, text: &str) -> Result<Vec<f32>, NlpError> {
        let mut ids = Vec::new();
        self.featuriser.ids_into(text, &mut ids);
        self.run(&ids)
    }

    /// Runs the graph on feature ids (at least one).
    pub(crate) fn run(&self, ids: &[i64]) -> Result<Vec<f32>, NlpError> {
        let inference = |e: tract_onnx::prelude::TractError| NlpError::Inference {
            path: self.origin.clone(),
            reason: format!("{e:#}"),
        };
        let n = ids.len();
        // The mean of the bag, computed as the training script does: one
        // float32 division.
        let weight = 1.0f32 / n as f32;
        let ids = Tensor::from_shape(&[n], ids).map_err(inference)?;
        let weights = Tensor::from_shape(&[1, n], &vec![weight; n]).map_err(inference)?;
        let outputs = self
            .plan
            .run(tvec![ids.into(), weights.into()])
            .map_err(inference)?;
        let probs = outputs
            .first()
            .ok_or_else(|| inference(tract_onnx::prelude::TractError::msg("no output")))?;
        let plain = probs.try_as_plain_ram().map_err(inference)?;
        Ok(plain.as_slice::<f32>().map_err(inference)?.to_vec())
    }
}

fn parse_labels(text: &str, origin: &str) -> Result<Vec<String>, NlpError> {
    let bad = |reason: String| NlpError::Labels {
        path: origin.to_owned(),
        reason,
    };
    let labels: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if labels.is_empty() {
        return Err(bad("no labels".to_owned()));
    }
    for (i, label) in labels.iter().enumerate() {
        if labels[..i].contains(label) {
            return Err(bad(format!("label {label:?} is listed twice")));
        }
    }
    Ok(labels)
}

fn read(path: &PathBuf) -> Result<Vec<u8>, NlpError> {
    std::fs::read(path).map_err(|e| io_error(path, e))
}

fn read_text(path: &PathBuf) -> Result<String, NlpError> {
    std::fs::read_to_string(path).map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, source: std::io::Error) -> NlpError {
    if source.kind() == std::io::ErrorKind::NotFound {
        NlpError::Missing {
            path: path.to_owned(),
        }
    } else {
        NlpError::Read {
            path: path.to_owned(),
            source,
        }
    }
}
