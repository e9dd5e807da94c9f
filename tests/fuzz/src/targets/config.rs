//! The `wca serve --config` loader: `FileSettings::parse` of a `wca.toml`,
//! then `Settings::resolve`, which validates every section and builds the
//! rules, the filter and the dialog from it.
//!
//! The environment turns off what would make a case slow or read large
//! files (the embedded models, the built-in dictionary); the file's own
//! values are all in play. Relative paths in the file resolve against a
//! folder that does not exist.
//!
//! Properties: a syntax error names a line of the file; a refused file
//! says why without repeating the token or the EncodingAESKey; resolved
//! settings hold what the file asked for (retention in whole days, a
//! lease of 3 to 3600 s, a body limit of at least 1 KiB).

use std::path::PathBuf;

use wca_webhook::settings::{FileSettings, Settings};

use super::dialog::names_special_file;
use super::{ensure, line_count, refused};
use crate::{Checked, Outcome};

const ENV: [(&str, &str); 2] = [("WCA_NLP", "off"), ("WCA_FILTER_BUILTIN", "false")];

pub(crate) fn check(input: &[u8]) -> Checked {
    if names_special_file(input) {
        return Ok(Outcome::Refused);
    }
    let text = String::from_utf8_lossy(input);
    let mut file = match FileSettings::parse(&text) {
        Ok(file) => file,
        Err(reason) => return syntax_error(&reason, &text),
    };
    file.base_dir = PathBuf::from("/nonexistent/wca-fuzz");
    let secrets: Vec<String> = [&file.wechat.token, &file.wechat.aes_key]
        .into_iter()
        .flatten()
        .filter(|s| s.len() >= 12)
        .cloned()
        .collect();
    let retention_days = file.webhook.retention_days;
    let settings = match Settings::resolve(file, &ENV, Some("devToken123")) {
        Ok(settings) => settings,
        Err(e) => {
            let message = e.to_string();
            for secret in &secrets {
                ensure(!message.contains(secret.as_str()), || {
                    format!("the error repeats a secret: {message}")
                })?;
            }
            return refused("Settings::resolve", message);
        }
    };
    let days = retention_days.unwrap_or(180);
    ensure(
        settings.retention_secs > 0 && settings.retention_secs.checked_div(86_400) == Some(days),
        || {
            format!(
                "retention_days = {days} resolved to {} s",
                settings.retention_secs
            )
        },
    )?;
    ensure((3..=3600).contains(&settings.lease_secs), || {
        format!("lease of {} s", settings.lease_secs)
    })?;
    ensure(settings.callback.max_body_bytes >= 1024, || {
        format!("body limit of {} bytes", settings.callback.max_body_bytes)
    })?;
    ensure(
        settings
            .callback
            .timestamp_window_secs
            .is_none_or(|w| w > 0),
        || "a timestamp window of 0 s or less is in force".to_owned(),
    )?;
    super::dialog::dialog_is_sane(&settings.dialog)?;
    // The filter was built; a text through it must not panic.
    let _ = settings.filter.current().check(&text);
    Ok(Outcome::Accepted)
}

/// `line N: why`, with N a line of the file (or no line at all).
fn syntax_error(reason: &str, text: &str) -> Checked {
    let why = match reason.strip_prefix("line ") {
        Some(rest) => {
            let (n, why) = rest.split_once(':').unwrap_or((rest, ""));
            ensure(
                n.parse().is_ok_and(|n| (1..=line_count(text)).contains(&n)),
                || format!("syntax error {reason:?} points outside the file"),
            )?;
            why
        }
        None => reason,
    };
    refused("FileSettings::parse", why.to_owned())
}
