//! `wca filter --deny FILE [--deny FILE ...] [--allow FILE ...]`: checks
//! each line of stdin and writes one JSON object per line:
//!
//! ```text
//! {"text": ..., "hits": [{"word", "category", "action", "start", "end"}], "action": ..., "masked": ...}
//! ```
//!
//! `start`/`end` are byte offsets into `text`; `hits` is empty and `action`
//! is `pass` when the line is clean. This format is a contract.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use wca_filter::{Dictionary, Filter, Options, Scratch};

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Deny dictionary (`word<TAB>category[<TAB>action]` per line); repeatable.
    #[arg(long, required = true)]
    deny: Vec<PathBuf>,
    /// Allow-list (one innocent word per line); repeatable.
    #[arg(long)]
    allow: Vec<PathBuf>,
    /// Most skippable characters allowed between two characters of a word.
    #[arg(long, default_value_t = Options::default().max_gap)]
    max_gap: usize,
}

/// Builds the filter the arguments name.
pub fn load(deny: &[PathBuf], allow: &[PathBuf], max_gap: usize) -> anyhow::Result<Filter> {
    let mut dict = Dictionary::new();
    for path in deny {
        dict.add_deny_file(path)?;
    }
    for path in allow {
        dict.add_allow_file(path)?;
    }
    Ok(dict.build_with(Options { max_gap })?)
}

pub fn run(args: FilterArgs) -> anyhow::Result<()> {
    let filter = load(&args.deny, &args.allow, args.max_gap)?;
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut scratch = Scratch::default();
    for (n, line) in stdin.split(b'\n').enumerate() {
        let line = line.context("reading stdin")?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        // A line that is not UTF-8 is reported, not fatal: the rest of the
        // input still gets checked.
        let Ok(text) = std::str::from_utf8(line) else {
            eprintln!("wca filter: line {}: not UTF-8; skipped", n + 1);
            continue;
        };
        let report = filter.check_with(text, &mut scratch).report(text);
        serde_json::to_writer(&mut out, &report)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
