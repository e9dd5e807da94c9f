//! The targets, one module per entry point family, and the checks they
//! share.

pub(crate) mod config;
pub(crate) mod crypto;
pub(crate) mod dialog;
pub(crate) mod dict;
pub(crate) mod xml;

use crate::{Checked, Outcome};

/// TOML syntax and the keys of `wca.toml`, `[dialog]` and `[reply]`.
pub(crate) const TOML_TOKENS: &[&[u8]] = &[
    b"[",
    b"]",
    b"[[",
    b"]]",
    b"=",
    b"\"",
    b"'",
    b"'''",
    b"\"\"\"",
    b"{",
    b"}",
    b",",
    b".",
    b"\\u0000",
    b"\\U0010FFFF",
    b"\\",
    b"\n",
    b"#",
    b" = true",
    b" = false",
    b" = []",
    b" = {}",
    b"[[rule]]\nmatch = \"exact\"\nkeywords = [\"a\"]\nreply = \"b\"\n",
    b"[[flow]]\nname = \"f\"\naction = \"order_status\"\n",
    b"[[flow.slot]]\nname = \"order_id\"\nkind = \"order\"\nprompt = \"p\"\n",
    b"[[flow.slot]]\nname = \"s\"\nprompt = \"p\"\npattern = \"",
    b"[intents]\n",
    b"= { flow = \"",
    b"= { reply = \"",
    b"{name}",
    b"{vip}",
    b"{last_question}",
    b"{nmae}",
    b"{",
    b"}",
    b"match",
    b"keywords",
    b"transfer",
    b"welcome",
    b"contains",
    b"exact",
    b"pattern",
    b"choices",
    b"retries",
    b"kind",
    b"order",
    b"return_ticket",
    b"policy_time = \"2026-11-20T10:00:00+08:00\"",
    b"idle_timeout_secs",
    b"min_confidence",
    b"faq_threshold",
    b"[wechat]\n",
    b"[webhook]\n",
    b"[filter]\n",
    b"[nlp]\n",
    b"[shop]\n",
    b"[dialog]\n",
    b"[reply]\n",
    b"[dialog.handoff]\n",
    b"retention_days = ",
    b"timestamp_window_secs = ",
    b"max_body_bytes = ",
    b"lease_secs = ",
    b"inflight_wait_ms = ",
    b"reload_secs = ",
    b"max_gap = ",
    b"timezone = \"",
    b"aes_key = \"",
    b"token = \"",
    b"fallback = \"",
    b"Asia/Shanghai",
    b"UTC",
    b"1979-05-27T07:32:00Z",
    b"(",
    b")",
    b"*",
    b"+",
    b"?",
    b"{2,200}",
    b"\\p{Han}",
    b"(?i)",
];

/// A refusal must say why: its message is not blank.
pub(crate) fn refused(what: &str, message: String) -> Checked {
    if message.trim().is_empty() {
        return Err(format!("{what} refused the input with an empty message"));
    }
    Ok(Outcome::Refused)
}

/// `Err` with `what` unless `ok`.
pub(crate) fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

/// The number of lines an error may point at (a last line without `\n`
/// counts, and one past the end for "unexpected end of file").
pub(crate) fn line_count(text: &str) -> usize {
    text.split('\n').count() + 1
}
