//! The dialog loaders: keyword rules (`Rules::from_toml`), the dialog file
//! with its intents and flows (`Dialog::from_toml`), and FAQ files
//! (`Faq::parse`).
//!
//! Properties: errors name a rule, line or key that exists; loaded rules
//! answer every one of their own keywords; a loaded dialog has sane
//! timeouts; a loaded FAQ finds each entry by id and scores any text
//! between 0 and 1.

use std::path::Path;

use wca_dialog::faq::FaqError;
use wca_dialog::{Dialog, DialogError, Faq, Rules};

use super::{ensure, line_count, refused};
use crate::{Checked, Outcome};

pub(crate) const FAQ_TOKENS: &[&[u8]] = &[
    b"\t",
    b"\n",
    b"\r\n",
    b"#",
    b"shipping-fee",
    b"shipping-fee\t",
    b"Shipping_Fee\t",
    b"\t\t",
    "包邮".as_bytes(),
    "滿99包郵嗎？".as_bytes(),
    "邮废".as_bytes(),
    "啥".as_bytes(),
    "吗".as_bytes(),
    b"12345678901234",
    b"?",
    "，".as_bytes(),
];

/// FAQ paths of the fuzzed dialog files are resolved against a folder that
/// does not exist, so a case never reads a file through a relative path.
const NO_DIR: &str = "/nonexistent/wca-fuzz";

/// Whether the input names a device or kernel file, which a loader would
/// read without end (`/dev/zero`). Mutation practically never writes one;
/// a hand-made input could.
pub(crate) fn names_special_file(input: &[u8]) -> bool {
    [b"/dev".as_slice(), b"/proc", b"/sys"]
        .iter()
        .any(|p| input.windows(p.len()).any(|w| w == *p))
}

pub(crate) fn check_rules(input: &[u8]) -> Checked {
    let text = String::from_utf8_lossy(input);
    let rules = match Rules::from_toml(&text) {
        Ok(rules) => rules,
        Err(e) => return dialog_error(&e, &text, rule_count(&text)),
    };
    rules_answer_their_keywords(&rules, &text)?;
    Ok(Outcome::Accepted)
}

/// The number of `[[rule]]` tables, when the text is TOML.
fn rule_count(text: &str) -> Option<usize> {
    let table: toml::Table = toml::from_str(text).ok()?;
    Some(table.get("rule")?.as_array()?.len())
}

/// Every non-blank keyword of every rule gets an answer (perhaps another
/// rule's: exact rules come first), and no text makes `answer` panic.
pub(crate) fn rules_answer_their_keywords(rules: &Rules, text: &str) -> Result<(), String> {
    for line in text.lines() {
        let _ = rules.answer(line);
    }
    if let Some(w) = rules.welcome() {
        ensure(!w.trim().is_empty(), || {
            "a blank welcome was kept".to_owned()
        })?;
    }
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return Err("rules loaded from text that is not TOML".to_owned());
    };
    let keywords = table
        .get("rule")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter_map(|rule| rule.get("keywords")?.as_array())
        .flatten()
        .filter_map(|k| k.as_str());
    for k in keywords.filter(|k| !k.trim().is_empty()) {
        ensure(rules.answer(k).is_some(), || {
            format!("keyword {k:?} gets no answer")
        })?;
    }
    Ok(())
}

/// A dialog error says what is wrong, and any line or rule it names is
/// in the file.
fn dialog_error(e: &DialogError, text: &str, rules: Option<usize>) -> Checked {
    let reason = match e {
        DialogError::Syntax(reason) | DialogError::Faq(reason) => reason,
        DialogError::Config { line, reason, .. } => {
            if let Some(line) = line {
                ensure((1..=line_count(text)).contains(line), || {
                    format!("{e} points past the end of the file")
                })?;
            }
            reason
        }
        DialogError::BadRule { index, reason } => {
            ensure(rules.is_none_or(|n| (1..=n).contains(index)), || {
                format!("{e} but the file has {rules:?} rules")
            })?;
            reason
        }
    };
    refused("dialog loader", reason.clone())
}

pub(crate) fn check_flow(input: &[u8]) -> Checked {
    if names_special_file(input) {
        return Ok(Outcome::Refused);
    }
    let text = String::from_utf8_lossy(input);
    match Dialog::from_toml(&text, "dialog.toml", Path::new(NO_DIR)) {
        Ok(dialog) => {
            dialog_is_sane(&dialog)?;
            Ok(Outcome::Accepted)
        }
        Err(e) => dialog_error(&e, &text, None),
    }
}

pub(crate) fn dialog_is_sane(dialog: &Dialog) -> Result<(), String> {
    let idle = dialog.idle_timeout_secs();
    ensure(idle >= 1, || format!("idle timeout of {idle} s accepted"))?;
    let ttl = dialog.conversation_ttl_secs();
    ensure(ttl >= idle && ttl >= 7 * 24 * 3600, || {
        format!("conversations kept {ttl} s with an idle timeout of {idle} s")
    })
}

pub(crate) fn check_faq(input: &[u8]) -> Checked {
    let text = String::from_utf8_lossy(input);
    let faq = match Faq::parse(&text, "faq.tsv") {
        Ok(faq) => faq,
        Err(e) => return faq_error(&e, &text),
    };
    for entry in faq.entries() {
        let id_ok = !entry.id.is_empty()
            && entry
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        ensure(id_ok, || format!("id {:?} accepted", entry.id))?;
        ensure(faq.get(&entry.id) == Some(entry), || {
            format!("entry {:?} is not found by its id", entry.id)
        })?;
        ensure(!entry.answer.is_empty(), || {
            format!("{:?} has an empty answer", entry.id)
        })?;
        score_is_sound(&faq, &entry.question)?;
    }
    for line in text.lines().take(16) {
        score_is_sound(&faq, line)?;
    }
    Ok(Outcome::Accepted)
}

fn score_is_sound(faq: &Faq, text: &str) -> Result<(), String> {
    let m = faq.best(text);
    let unit = |s: f32| (0.0..=1.0 + 1e-4).contains(&s);
    ensure(unit(m.score) && unit(m.runner_up), || {
        format!("scores {} and {} for {text:?}", m.score, m.runner_up)
    })?;
    ensure(m.runner_up <= m.score, || {
        format!(
            "runner-up {} above the best {} for {text:?}",
            m.runner_up, m.score
        )
    })?;
    ensure(m.entry.is_none() || m.entry == m.candidate, || {
        format!("answered with another entry than the candidate for {text:?}")
    })
}

fn faq_error(e: &FaqError, text: &str) -> Checked {
    let line = match e {
        FaqError::Line { line, .. }
        | FaqError::DuplicateId { line, .. }
        | FaqError::AmbiguousQuestion { line, .. }
        | FaqError::UnknownId { line, .. } => *line,
        FaqError::Read { .. } => return Err(format!("parsing text gave a read error: {e}")),
    };
    ensure((1..=line_count(text)).contains(&line), || {
        format!("{e} points past the end of the file")
    })?;
    refused("Faq::parse", e.to_string())
}
