//! `wca classify [--model-dir DIR]`: the intent and sentiment of each line of
//! stdin, one JSON object per line:
//!
//! ```text
//! {"text": ..., "intent": ..., "confidence": F, "top": [[label, F], ...], "sentiment": ..., "sentiment_score": F}
//! ```
//!
//! `top` holds the three most probable intents, best first. Every input line
//! gets an output line, the empty one included, so the output lines up with
//! the input; a line that is not UTF-8 is reported on stderr and skipped.
//! This format is a contract: keep it stable.
//!
//! Also `wca bench nlp --messages FILE`: load time and per-message latency
//! (p50/p99, single thread) of both models, for the side-by-side run against
//! onnxruntime (`infra/bench/onnxruntime_vs_wca.py`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use serde::Serialize;
use wca_nlp::Nlp;

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Directory holding `intent/` and `sentiment/` model directories
    /// (model.onnx, labels.txt, featuriser.json each); default: the models
    /// built into wca.
    #[arg(long)]
    model_dir: Option<PathBuf>,
}

/// One output line, fields in contract order.
#[derive(Serialize)]
struct Classified<'a> {
    text: &'a str,
    intent: &'a str,
    confidence: f32,
    top: Vec<(&'a str, f32)>,
    sentiment: &'a str,
    sentiment_score: f32,
}

/// The models `--model-dir` names, or the embedded defaults.
pub fn load(model_dir: Option<&Path>) -> anyhow::Result<Nlp> {
    Ok(match model_dir {
        Some(dir) => Nlp::load_dir(dir)?,
        None => Nlp::default_models()?,
    })
}

pub fn run(args: ClassifyArgs) -> anyhow::Result<()> {
    let nlp = load(args.model_dir.as_deref())?;
    crate::json_lines("classify", |text| {
        let intent = nlp.classify(text)?;
        let sentiment = nlp.sentiment(text)?;
        Ok(serde_json::to_string(&Classified {
            text,
            intent: &intent.label,
            confidence: intent.confidence,
            top: intent.top.iter().map(|(l, p)| (l.as_str(), *p)).collect(),
            sentiment: &sentiment.label,
            sentiment_score: sentiment.score,
        })?)
    })
}

#[derive(Debug, Args)]
pub struct NlpBenchArgs {
    /// UTF-8 messages, one a line (blank lines are skipped).
    #[arg(long)]
    messages: PathBuf,
    /// Model directory as for `wca classify`; default: the embedded models.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Timed passes over the file, after one untimed warm-up pass.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Model loads timed (the first is the cold one).
    #[arg(long, default_value_t = 10)]
    loads: u32,
}

/// Times model loading and classify + sentiment per message on this thread,
/// and prints one JSON line.
pub fn bench(args: NlpBenchArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.messages)
        .with_context(|| format!("reading {}", args.messages.display()))?;
    let messages: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if messages.is_empty() {
        bail!("{} holds no messages", args.messages.display());
    }

    let mut loads = Vec::new();
    let mut nlp = None;
    for _ in 0..args.loads.max(1) {
        let start = Instant::now();
        let loaded = load(args.model_dir.as_deref())?;
        loads.push(start.elapsed());
        nlp = Some(loaded);
    }
    let Some(nlp) = nlp else {
        bail!("no load ran");
    };

    let once = |text: &str| -> anyhow::Result<f32> {
        let intent = nlp.classify(std::hint::black_box(text))?;
        let sentiment = nlp.sentiment(std::hint::black_box(text))?;
        Ok(intent.confidence + sentiment.score)
    };
    let mut sink = 0.0f32;
    for text in &messages {
        sink += once(text)?;
    }
    let mut times = Vec::with_capacity(messages.len() * args.rounds as usize);
    let total = Instant::now();
    for _ in 0..args.rounds.max(1) {
        for text in &messages {
            let start = Instant::now();
            sink += once(text)?;
            times.push(start.elapsed());
        }
    }
    let total = total.elapsed();
    std::hint::black_box(sink);
    times.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let quantile = |q: f64| us(times[((times.len() - 1) as f64 * q).round() as usize]);
    println!(
        "{}",
        serde_json::json!({
            "implementation": "wca (tract-onnx)",
            "messages": messages.len(),
            "rounds": args.rounds.max(1),
            "load_ms_first": ms(loads[0]),
            "load_ms_min": loads.iter().copied().map(ms).fold(f64::INFINITY, f64::min),
            "p50_us": quantile(0.50),
            "p90_us": quantile(0.90),
            "p99_us": quantile(0.99),
            "max_us": quantile(1.0),
            "mean_us": us(total) / times.len() as f64,
        })
    );
    Ok(())
}
