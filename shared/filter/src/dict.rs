//! Word lists: deny entries with a category and an action, and an
//! allow-list of longer innocent words, read from any number of sources.
//!
//! Deny lines are `word<TAB>category[<TAB>action]`. A line
//! `@default<TAB>category<TAB>action` sets the action of a category's
//! entries that name none; without either, an entry blocks. Allow lines are
//! one word each. Blank lines and lines starting with `#` are ignored.

use std::{collections::HashMap, path::Path, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::{Filter, FilterError, Options};

/// What to do with a text that holds a word: the order is strictness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let it through; record the hit.
    Flag,
    /// Send it with the word replaced by `*`.
    Mask,
    /// Do not send it.
    Block,
}

impl Action {
    /// `block`, `mask` or `flag`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "block" => Some(Action::Block),
            "mask" => Some(Action::Mask),
            "flag" => Some(Action::Flag),
            _ => None,
        }
    }

    /// The lowercase name, as in dictionaries and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Mask => "mask",
            Action::Flag => "flag",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A forbidden word as the dictionary wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyEntry {
    /// The word as written in the dictionary.
    pub word: String,
    /// Its category, e.g. `fraud`.
    pub category: String,
    /// What a hit on it does.
    pub action: Action,
}

#[derive(Debug, Clone)]
pub(crate) struct PendingDeny {
    pub(crate) word: String,
    pub(crate) category: String,
    pub(crate) action: Option<Action>,
    pub(crate) origin: Origin,
}

/// Where an entry comes from, `source:line` (or `api`), for errors; the
/// source name is shared, so recording it costs no allocation per line.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    source: Arc<str>,
    /// 1-based; 0 for entries added through the API.
    line: usize,
}

impl Origin {
    fn api() -> Self {
        Self {
            source: Arc::from("api"),
            line: 0,
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            f.write_str(&self.source)
        } else {
            write!(f, "{}:{}", self.source, self.line)
        }
    }
}

/// Deny and allow lists, merged from several sources, ready to
/// [`build`](Dictionary::build) into a [`Filter`].
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    pub(crate) deny: Vec<PendingDeny>,
    pub(crate) allow: Vec<(String, Origin)>,
    pub(crate) defaults: HashMap<String, Action>,
}

impl Dictionary {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the deny lines of `text`; `source` names it in errors.
    pub fn add_deny(&mut self, source: &str, text: &str) -> Result<&mut Self, FilterError> {
        let shared: Arc<str> = Arc::from(source);
        for (n, line) in lines(text) {
            let err = |reason: String| FilterError::Line {
                file: source.to_owned(),
                line: n,
                reason,
            };
            let parts: Vec<&str> = line.split('\t').map(str::trim).collect();
            if parts[0] == "@default" {
                let [_, category, action] = parts[..] else {
                    return Err(err("expected @default<TAB>category<TAB>action".to_owned()));
                };
                let action = parse_action(action).map_err(err)?;
                if category.is_empty() {
                    return Err(err("empty category".to_owned()));
                }
                self.defaults.insert(category.to_owned(), action);
                continue;
            }
            let (word, category, action) = match parts[..] {
                [word, category] => (word, category, None),
                [word, category, action] => {
                    (word, category, Some(parse_action(action).map_err(err)?))
                }
                [_] => {
                    return Err(err(
                        "expected word<TAB>category[<TAB>action]; found no TAB".to_owned()
                    ));
                }
                _ => {
                    return Err(err(format!(
                        "expected word<TAB>category[<TAB>action]; found {} fields",
                        parts.len()
                    )));
                }
            };
            if word.is_empty() {
                return Err(err("empty word".to_owned()));
            }
            if category.is_empty() {
                return Err(err("empty category".to_owned()));
            }
            self.deny.push(PendingDeny {
                word: word.to_owned(),
                category: category.to_owned(),
                action,
                origin: Origin {
                    source: Arc::clone(&shared),
                    line: n,
                },
            });
        }
        Ok(self)
    }

    /// Adds the allow lines of `text` (one word each).
    pub fn add_allow(&mut self, source: &str, text: &str) -> Result<&mut Self, FilterError> {
        let shared: Arc<str> = Arc::from(source);
        for (n, line) in lines(text) {
            let word = line.trim();
            if word.contains('\t') {
                return Err(FilterError::Line {
                    file: source.to_owned(),
                    line: n,
                    reason: "allow-list lines hold one word, without TABs".to_owned(),
                });
            }
            self.allow.push((
                word.to_owned(),
                Origin {
                    source: Arc::clone(&shared),
                    line: n,
                },
            ));
        }
        Ok(self)
    }

    /// Adds one deny word.
    pub fn deny(&mut self, word: &str, category: &str, action: Option<Action>) -> &mut Self {
        self.deny.push(PendingDeny {
            word: word.to_owned(),
            category: category.to_owned(),
            action,
            origin: Origin::api(),
        });
        self
    }

    /// Adds one allowed word.
    pub fn allow(&mut self, word: &str) -> &mut Self {
        self.allow.push((word.to_owned(), Origin::api()));
        self
    }

    /// Reads a deny file.
    pub fn add_deny_file(&mut self, path: &Path) -> Result<&mut Self, FilterError> {
        let text = read(path)?;
        self.add_deny(&path.display().to_string(), &text)
    }

    /// Reads an allow file.
    pub fn add_allow_file(&mut self, path: &Path) -> Result<&mut Self, FilterError> {
        let text = read(path)?;
        self.add_allow(&path.display().to_string(), &text)
    }

    /// The action an entry of `category` gets when it names none.
    pub fn default_action(&self, category: &str) -> Action {
        self.defaults
            .get(category)
            .copied()
            .unwrap_or(Action::Block)
    }

    /// Number of deny entries.
    pub fn deny_len(&self) -> usize {
        self.deny.len()
    }

    /// Builds the filter with default [`Options`].
    pub fn build(&self) -> Result<Filter, FilterError> {
        Filter::build(self, Options::default())
    }

    /// The dictionary shipped with wca (`shared/filter/dictionaries/`): a
    /// small, conservative set of fraud, gambling, adult, drug, abuse and
    /// off-platform words with an allow-list, used when nothing else is
    /// configured.
    pub fn builtin() -> Self {
        let mut dict = Self::new();
        // Both files are checked by a test, so these cannot fail at run time;
        // an error would only leave the dictionary partly filled.
        let _ = dict.add_deny("builtin deny.tsv", BUILTIN_DENY);
        let _ = dict.add_allow("builtin allow.txt", BUILTIN_ALLOW);
        dict
    }

    /// Builds the filter with `options`.
    pub fn build_with(&self, options: Options) -> Result<Filter, FilterError> {
        Filter::build(self, options)
    }
}

/// The shipped deny list.
pub const BUILTIN_DENY: &str = include_str!("../dictionaries/deny.tsv");
/// The shipped allow-list.
pub const BUILTIN_ALLOW: &str = include_str!("../dictionaries/allow.txt");

fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .map(|(n, l)| (n, l.strip_prefix('\u{feff}').unwrap_or(l)))
        .filter(|(_, l)| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
}

fn parse_action(s: &str) -> Result<Action, String> {
    Action::parse(s).ok_or_else(|| format!("unknown action {s:?} (expected block, mask or flag)"))
}

fn read(path: &Path) -> Result<String, FilterError> {
    std::fs::read_to_string(path).map_err(|e| FilterError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_error(text: &str) -> (usize, String) {
        match Dictionary::new().add_deny("deny.tsv", text) {
            Err(FilterError::Line { line, reason, .. }) => (line, reason),
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn bad_lines_are_reported_with_their_line_numbers() {
        let table = [
            ("ok\tfraud\n# c\nno-tab-here\n", 3, "found no TAB"),
            ("a\tb\tban\n", 1, "unknown action \"ban\""),
            ("\tfraud\n", 1, "empty word"),
            ("word\t\n", 1, "empty category"),
            ("a\tb\tc\td\n", 1, "found 4 fields"),
            ("@default\tfraud\n", 1, "expected @default"),
        ];
        for (text, line, reason) in table {
            let (got_line, got_reason) = line_error(text);
            assert_eq!(got_line, line, "{text:?}");
            assert!(got_reason.contains(reason), "{text:?}: {got_reason}");
        }
    }

    #[test]
    fn comments_blank_lines_crlf_and_a_bom_are_ignored() {
        let mut d = Dictionary::new();
        d.add_deny(
            "d",
            "\u{feff}# header\r\n\r\n稳赚不赔\tfraud\tblock\r\n  # indented\n",
        )
        .expect("parse");
        assert_eq!(d.deny.len(), 1);
        assert_eq!(d.deny[0].word, "稳赚不赔");
        assert_eq!(d.deny[0].action, Some(Action::Block));
    }

    #[test]
    fn category_defaults_apply_to_entries_without_an_action() {
        let mut d = Dictionary::new();
        d.add_deny("d", "@default\tabuse\tmask\n傻逼\tabuse\n")
            .expect("parse");
        assert_eq!(d.default_action("abuse"), Action::Mask);
        assert_eq!(d.default_action("fraud"), Action::Block);
    }

    #[test]
    fn the_builtin_dictionary_parses_and_builds() {
        let mut d = Dictionary::new();
        d.add_deny("deny.tsv", BUILTIN_DENY)
            .expect("builtin deny parses");
        d.add_allow("allow.txt", BUILTIN_ALLOW)
            .expect("builtin allow parses");
        assert_eq!(d.deny.len(), Dictionary::builtin().deny.len());
        let filter = Dictionary::builtin().build().expect("builtin builds");
        assert!(filter.deny_len() > 50);
        assert!(filter.check("刷单词").hits.is_empty());
        assert_eq!(filter.check("稳 赚 不 赔").action(), Some(Action::Block));
    }

    #[test]
    fn actions_order_by_strictness() {
        assert!(Action::Block > Action::Mask);
        assert!(Action::Mask > Action::Flag);
    }
}
