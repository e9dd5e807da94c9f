//! `wca ask --faq FILE [--faq FILE ...] [--threshold X] [--margin X]`: the
//! FAQ entry that answers each line of stdin, one JSON object per line:
//!
//! ```text
//! {"text": ..., "faq_id": "shipping-fee" | null, "score": F, "answer": ... | null}
//! ```
//!
//! `faq_id` and `answer` are null when no entry clears the threshold and the
//! margin over the runner-up; `score` is the best entry's score (0 to 1)
//! either way, so a run over a question set shows how far each one was from
//! an answer. Every input line gets an output line, the empty one included;
//! a line that is not UTF-8 is reported on stderr and skipped. This format
//! is a contract: keep it stable.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use wca_dialog::Faq;
use wca_dialog::faq::{DEFAULT_MARGIN, DEFAULT_THRESHOLD};

#[derive(Debug, Args)]
pub struct AskArgs {
    /// FAQ file (`id<TAB>question<TAB>answer`, or `id<TAB>question` for an
    /// extra example); repeatable, the files form one FAQ.
    #[arg(long, required = true)]
    faq: Vec<PathBuf>,
    /// Lowest score (0 to 1) that is answered.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    threshold: f32,
    /// Lead over the runner-up entry needed to answer.
    #[arg(long, default_value_t = DEFAULT_MARGIN)]
    margin: f32,
}

/// One output line, fields in contract order.
#[derive(Serialize)]
struct Asked<'a> {
    text: &'a str,
    faq_id: Option<&'a str>,
    score: f32,
    answer: Option<&'a str>,
}

pub fn run(args: AskArgs) -> anyhow::Result<()> {
    let faq = Faq::load_all(&args.faq)?
        .with_threshold(args.threshold)
        .with_margin(args.margin);
    crate::json_lines("ask", |text| {
        let found = faq.best(text);
        Ok(serde_json::to_string(&Asked {
            text,
            faq_id: found.entry.map(|e| e.id.as_str()),
            score: found.score,
            answer: found.entry.map(|e| e.answer.as_str()),
        })?)
    })
}
