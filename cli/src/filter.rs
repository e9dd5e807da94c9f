//! `wca filter [--deny FILE ...] [--allow FILE ...]`: checks each line of
//! stdin and writes one JSON object per line:
//!
//! ```text
//! {"text": ..., "hits": [{"word", "category", "action", "start", "end"}], "action": ..., "masked": ...}
//! ```
//!
//! `start`/`end` are byte offsets into `text`; `hits` is empty and `action`
//! is `pass` when the line is clean. This format is a contract.
//!
//! Without `--deny` the dictionary is the built-in one
//! ([`Dictionary::builtin`], with its allow-list), the one `wca serve`
//! starts from, so a first `wca filter` checks what the bot would check.
//! `--deny` replaces it: the files given are the whole deny list.

use std::path::PathBuf;

use clap::Args;
use wca_filter::{Dictionary, Filter, Options, Scratch};

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Deny dictionary (`word<TAB>category[<TAB>action]` per line);
    /// repeatable. Without it, the built-in dictionary (as `wca serve`).
    #[arg(long)]
    deny: Vec<PathBuf>,
    /// Allow-list (one innocent word per line); repeatable; added to the
    /// built-in one when no `--deny` is given.
    #[arg(long)]
    allow: Vec<PathBuf>,
    /// Most skippable characters allowed between two characters of a word.
    #[arg(long, default_value_t = Options::default().max_gap)]
    max_gap: usize,
}

/// Builds the filter the arguments name: the `deny` files, or the
/// built-in dictionary when there are none, plus the `allow` files.
pub fn load(deny: &[PathBuf], allow: &[PathBuf], max_gap: usize) -> anyhow::Result<Filter> {
    let mut dict = if deny.is_empty() {
        Dictionary::builtin()
    } else {
        Dictionary::new()
    };
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
