//! `wca filter --deny FILE [--deny FILE ...] [--allow FILE ...]`: checks
//! each line of stdin and writes one JSON object per line:
//!
//! ```text
//! {"text": ..., "hits": [{"word", "category", "action", "start", "end"}], "action": ..., "masked": ...}
//! ```
//!
//! `start`/`end` are byte offsets into `text`; `hits` is empty and `action`
//! is `pass` when the line is clean. This format is a contract.

use std::path::PathBuf;

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
    let mut scratch = Scratch::default();
    crate::json_lines("filter", |text| {
        let report = filter.check_with(text, &mut scratch).report(text);
        Ok(serde_json::to_string(&report)?)
    })
}
