//! The filter dictionary loader: deny lines, allow lines, building the
//! matcher, and checking texts with what was built.
//!
//! Input: a deny file, then optionally a line `%%` and an allow file.
//! Properties: a bad line is a `FilterError::Line` naming a line of the
//! file; a built filter reports hits inside the text on character
//! boundaries, masks exactly their characters, and finds every deny word
//! that is already in folded form when checked on its own.

use wca_filter::{Dictionary, Filter, FilterError, fold_text};

use super::{ensure, line_count, refused};
use crate::{Checked, Outcome};

pub(crate) const TOKENS: &[&[u8]] = &[
    b"\t",
    b"\tfraud",
    b"\tabuse\tmask",
    b"\tx\tflag",
    b"\tx\tblock",
    b"\tx\tban",
    b"@default\t",
    b"@default\tfraud\tmask\n",
    b"\n%%\n",
    b"\n",
    b"\r\n",
    b"#",
    b" ",
    b"*",
    "，".as_bytes(),
    "。".as_bytes(),
    "稳赚不赔".as_bytes(),
    "刷单".as_bytes(),
    "①".as_bytes(),
    "Ｓ".as_bytes(),
    b"sb",
    b"usb",
];

/// How many of the input's lines a built filter checks (every deny word
/// is still checked for finding itself).
const CHECKED_LINES: usize = 16;

/// Texts every built filter is checked on, besides the input's own lines.
const TEXTS: [&str; 4] = [
    "保证穩 赚·不 赔！",
    "稳，赚，不，赔",
    "刷单词 usb SB ①②③",
    "",
];

pub(crate) fn check(input: &[u8]) -> Checked {
    let text = String::from_utf8_lossy(input);
    let (deny, allow) = text.split_once("\n%%\n").unwrap_or((&text, ""));
    let mut dict = Dictionary::new();
    if let Err(e) = dict.add_deny("deny.tsv", deny) {
        return line_error(&e, "deny.tsv", deny);
    }
    if let Err(e) = dict.add_allow("allow.txt", allow) {
        return line_error(&e, "allow.txt", allow);
    }
    let filter = match dict.build() {
        Ok(filter) => filter,
        Err(e @ FilterError::Line { .. }) => return Err(format!("build gave a line error: {e}")),
        Err(e) => return refused("Dictionary::build", e.to_string()),
    };
    for t in TEXTS
        .iter()
        .copied()
        .chain(text.lines().take(CHECKED_LINES))
    {
        verdict_is_sound(&filter, t)?;
    }
    for line in deny.lines() {
        every_folded_word_finds_itself(&filter, line)?;
    }
    Ok(Outcome::Accepted)
}

fn line_error(e: &FilterError, file: &str, text: &str) -> Checked {
    match e {
        FilterError::Line {
            file: f,
            line,
            reason,
        } => {
            ensure(f == file && (1..=line_count(text)).contains(line), || {
                format!(
                    "{e} points outside the {} lines of {file}",
                    line_count(text) - 1
                )
            })?;
            refused("Dictionary::add_deny", reason.clone())
        }
        other => Err(format!("a text source gave {other:?}")),
    }
}

fn verdict_is_sound(filter: &Filter, text: &str) -> Result<(), String> {
    let verdict = filter.check(text);
    for hit in &verdict.hits {
        ensure(
            hit.start < hit.end
                && hit.end <= text.len()
                && text.is_char_boundary(hit.start)
                && text.is_char_boundary(hit.end),
            || {
                format!(
                    "hit {}..{} of {:?} in {text:?}",
                    hit.start, hit.end, hit.entry.word
                )
            },
        )?;
    }
    let ordered = verdict.hits.windows(2).all(|w| {
        (w[0].start, std::cmp::Reverse(w[0].end)) <= (w[1].start, std::cmp::Reverse(w[1].end))
    });
    ensure(ordered, || format!("hits out of order in {text:?}"))?;
    let masked = verdict.masked(text);
    ensure(masked.chars().count() == text.chars().count(), || {
        format!("masking {text:?} gave {masked:?}")
    })?;
    let hidden = |i: usize| verdict.hits.iter().any(|h| (h.start..h.end).contains(&i));
    let kept = text
        .char_indices()
        .zip(masked.chars())
        .all(|((i, c), m)| if hidden(i) { m == '*' } else { m == c });
    ensure(kept, || format!("masking {text:?} gave {masked:?}"))?;
    let report = verdict.report(text);
    let action = verdict.action().map_or("pass", |a| a.as_str());
    ensure(report.action == action && report.masked == masked, || {
        format!("report of {text:?} disagrees with its verdict")
    })
}

/// A deny word already in folded form, and without the skippable
/// characters the matcher allows only a few of, is found in itself.
fn every_folded_word_finds_itself(filter: &Filter, line: &str) -> Result<(), String> {
    let line = line.trim_end_matches('\r');
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    if line.trim().starts_with('#') {
        return Ok(());
    }
    let Some((word, _)) = line.split_once('\t') else {
        return Ok(());
    };
    let word = word.trim();
    if word == "@default" {
        return Ok(());
    }
    if word.is_empty() || fold_text(word) != word {
        return Ok(());
    }
    ensure(!filter.check(word).hits.is_empty(), || {
        format!("deny word {word:?} is not found in itself")
    })
}
