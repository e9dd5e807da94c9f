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

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
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
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (n, line) in stdin.split(b'\n').enumerate() {
        let line = line.context("reading stdin")?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        let Ok(text) = std::str::from_utf8(line) else {
            eprintln!("wca ask: line {}: not UTF-8; skipped", n + 1);
            continue;
        };
        let found = faq.best(text);
        let asked = Asked {
            text,
            faq_id: found.entry.map(|e| e.id.as_str()),
            score: found.score,
            answer: found.entry.map(|e| e.answer.as_str()),
        };
        serde_json::to_writer(&mut out, &asked)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
