//! Keyword auto-reply rules: the first, simplest layer of the dialog.
//!
//! Operators write rules in TOML (exact or contains match, a text reply or a
//! hand-over to human agents) plus a welcome message for new followers; the
//! webhook asks [`Rules::answer`] for every text message. The shipped
//! defaults ([`Rules::defaults`]) answer greetings and thanks, so a fresh
//! `wca serve` replies out of the box.
//!
//! ```
//! use wca_dialog::{Answer, Rules};
//!
//! let rules = Rules::from_toml(r#"
//!     [[rule]]
//!     match = "contains"
//!     keywords = ["发货"]
//!     reply = "下单后 48 小时内发货。"
//! "#).unwrap();
//! assert_eq!(rules.answer("什么时候发货？"), Some(Answer::Text("下单后 48 小时内发货。")));
//! assert_eq!(rules.answer("你好"), None);
//! ```

pub mod faq;

pub use faq::{Faq, FaqEntry, FaqMatch};

use serde::Deserialize;

pub mod config;
pub mod engine;
pub mod template;

pub use config::DEFAULT_DIALOG;
pub use engine::{Decision, Dialog, Input, Shop, Turn};

/// The rules shipped with wca (`default-rules.toml`).
pub const DEFAULT_RULES: &str = include_str!("../default-rules.toml");

/// Errors in a rules file.
#[derive(Debug, thiserror::Error)]
pub enum DialogError {
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("rules file: {0}")]
    Syntax(String),
    /// The dialog configuration is wrong; `line` is known for TOML syntax
    /// and type errors.
    #[error("{origin}{}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Config {
        /// The file.
        origin: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong, naming the key.
        reason: String,
    },
    /// An FAQ file could not be loaded (the message names file and line).
    #[error("{0}")]
    Faq(String),
    /// A rule is well-formed TOML but makes no sense.
    #[error("rule {index}: {reason}")]
    BadRule {
        /// 1-based position of the rule in the file.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// How a rule's keywords are compared with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchKind {
    /// The whole message equals a keyword (ignoring case and outer spaces).
    Exact,
    /// The message contains a keyword (ignoring case).
    Contains,
}

/// What a matched rule says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    /// Reply with this text.
    Text(&'a str),
    /// Hand the conversation to human agents.
    Transfer,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    #[serde(rename = "match")]
    kind: MatchKind,
    keywords: Vec<String>,
    #[serde(default)]
    reply: Option<String>,
    #[serde(default)]
    transfer: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesSpec {
    #[serde(default)]
    welcome: Option<String>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Clone)]
struct Rule {
    kind: MatchKind,
    /// Lower-cased keywords.
    keywords: Vec<String>,
    reply: Option<String>,
}

/// A parsed, validated set of keyword rules and the welcome message.
#[derive(Debug, Clone)]
pub struct Rules {
    welcome: Option<String>,
    rules: Vec<Rule>,
}

impl Rules {
    /// The shipped defaults.
    pub fn defaults() -> Self {
        // The default file is part of the binary and covered by a test.
        Self::from_toml(DEFAULT_RULES).unwrap_or_else(|_| Self::empty())
    }

    /// No rules and no welcome: every message is acknowledged silently.
    pub fn empty() -> Self {
        Self {
            welcome: None,
            rules: Vec::new(),
        }
    }

    /// Parses a rules file.
    pub fn from_toml(text: &str) -> Result<Self, DialogError> {
        let spec: RulesSpec =
            toml::from_str(text).map_err(|e| DialogError::Syntax(config::toml_reason(&e)))?;
        Self::from_spec(spec)
    }

    /// Builds rules from an already parsed TOML table (the `[reply]`
    /// section of a larger config file).
    pub fn from_table(table: toml::Table) -> Result<Self, DialogError> {
        let spec: RulesSpec = table
            .try_into()
            .map_err(|e: toml::de::Error| DialogError::Syntax(config::toml_reason(&e)))?;
        Self::from_spec(spec)
    }

    fn from_spec(spec: RulesSpec) -> Result<Self, DialogError> {
        let mut rules = Vec::with_capacity(spec.rules.len());
        for (i, r) in spec.rules.into_iter().enumerate() {
            let index = i + 1;
            let bad = |reason: &str| DialogError::BadRule {
                index,
                reason: reason.to_owned(),
            };
            let keywords: Vec<String> = r
                .keywords
                .iter()
                .map(|k| k.trim().to_lowercase())
                .filter(|k| !k.is_empty())
                .collect();
            if keywords.is_empty() {
                return Err(bad("needs at least one non-empty keyword"));
            }
            let reply = match (r.reply, r.transfer) {
                (Some(_), true) => return Err(bad("has both a reply and transfer = true")),
                (None, false) => return Err(bad("needs a reply or transfer = true")),
                (Some(text), false) if text.trim().is_empty() => {
                    return Err(bad("has an empty reply"));
                }
                (reply, _) => reply,
            };
            rules.push(Rule {
                kind: r.kind,
                keywords,
                reply,
            });
        }
        Ok(Self {
            welcome: spec.welcome.filter(|w| !w.trim().is_empty()),
            rules,
        })
    }

    /// The message for a new follower, if any.
    pub fn welcome(&self) -> Option<&str> {
        self.welcome.as_deref()
    }

    /// The answer for a text message: exact rules first, then contains
    /// rules, each in file order; `None` when nothing matches.
    pub fn answer(&self, text: &str) -> Option<Answer<'_>> {
        let folded = text.trim().to_lowercase();
        if folded.is_empty() {
            return None;
        }
        let exact = self
            .rules
            .iter()
            .filter(|r| r.kind == MatchKind::Exact)
            .find(|r| r.keywords.contains(&folded));
        let hit = exact.or_else(|| {
            self.rules
                .iter()
                .filter(|r| r.kind == MatchKind::Contains)
                .find(|r| r.keywords.iter().any(|k| folded.contains(k.as_str())))
        })?;
        Some(match &hit.reply {
            Some(text) => Answer::Text(text),
            None => Answer::Transfer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_defaults_parse_and_answer_greetings() {
        let rules = Rules::from_toml(DEFAULT_RULES).expect("default rules parse");
        for greeting in ["你好", "您好", " 在吗 ", "Hello", "HI"] {
            match rules.answer(greeting) {
                Some(Answer::Text(t)) => assert!(t.contains("你好"), "{greeting} -> {t}"),
                other => panic!("{greeting} -> {other:?}"),
            }
        }
        assert!(rules.welcome().is_some_and(|w| w.contains("欢迎")));
    }

    #[test]
    fn asking_for_a_human_transfers_the_conversation() {
        let rules = Rules::defaults();
        assert_eq!(rules.answer("帮我转人工"), Some(Answer::Transfer));
        assert_eq!(rules.answer("人工"), Some(Answer::Transfer));
    }

    #[test]
    fn exact_rules_do_not_match_inside_longer_messages() {
        let rules = Rules::defaults();
        assert_eq!(rules.answer("你好，我的快递到哪了"), None);
    }

    #[test]
    fn exact_rules_win_over_earlier_contains_rules() {
        let rules = Rules::from_toml(
            r#"
            [[rule]]
            match = "contains"
            keywords = ["好"]
            reply = "contains"
            [[rule]]
            match = "exact"
            keywords = ["你好"]
            reply = "exact"
            "#,
        )
        .expect("parse");
        assert_eq!(rules.answer("你好"), Some(Answer::Text("exact")));
        assert_eq!(rules.answer("好的"), Some(Answer::Text("contains")));
    }

    /// Found by `wca-fuzz --target rules` (`found/rules-*`): the TOML
    /// parser gives a key with no value at the end of the file an empty
    /// message, and the error read `rules file: ` with no reason.
    #[test]
    fn a_key_without_a_value_at_the_end_of_the_file_is_an_error_that_says_why() {
        for text in [
            "reply = ",
            "[[rule]]\nmatch = \"exact\"\nkeywords = [\"a\"]\nreply = ",
        ] {
            let err = Rules::from_toml(text).expect_err(text);
            assert!(
                matches!(&err, DialogError::Syntax(m) if !m.trim().is_empty()),
                "{err:?}"
            );
            let err =
                Dialog::from_toml(text, "dialog.toml", std::path::Path::new(".")).expect_err(text);
            assert!(
                matches!(&err, DialogError::Config { reason, .. } if !reason.trim().is_empty()),
                "{err:?}"
            );
        }
    }

    #[test]
    fn bad_rules_are_reported_with_their_position() {
        let table = [
            (
                "[[rule]]\nmatch = \"exact\"\nkeywords = []\nreply = \"x\"",
                "rule 1: needs at least one non-empty keyword",
            ),
            (
                "[[rule]]\nmatch = \"exact\"\nkeywords = [\"a\"]",
                "rule 1: needs a reply or transfer = true",
            ),
            (
                "[[rule]]\nmatch = \"exact\"\nkeywords = [\"a\"]\nreply = \"x\"\ntransfer = true",
                "rule 1: has both a reply and transfer = true",
            ),
        ];
        for (text, want) in table {
            let err = Rules::from_toml(text).expect_err(text);
            assert_eq!(err.to_string(), want);
        }
        let err =
            Rules::from_toml("[[rule]]\nmatch = \"fuzzy\"\nkeywords = [\"a\"]\nreply = \"x\"")
                .expect_err("unknown match kind");
        assert!(matches!(err, DialogError::Syntax(_)), "{err}");
        let err = Rules::from_toml("colour = 1").expect_err("unknown key");
        assert!(matches!(err, DialogError::Syntax(_)), "{err}");
    }
}
