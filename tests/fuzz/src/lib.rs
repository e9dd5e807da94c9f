//! Fuzzing of wca's parsers and loaders on stable Rust.
//!
//! Each [`Target`] takes bytes, calls the real entry point (the WeChat XML
//! parser, the crypto envelope, the filter dictionary loader, the rules,
//! flow and FAQ loaders, the `wca serve` config loader) and checks
//! properties that could fail: no panic, a refusal is an `Err` with a
//! message, and where there is a writer, writing then reading gives back
//! what was written. [`campaign`] runs many cases under
//! [`std::panic::catch_unwind`], fed by [`mutate`] from the seed corpus in
//! `tests/fuzz/corpus/<target>/`; the `wca-fuzz` binary is its command
//! line, and `tests/` runs a short pass of every target in CI.
//!
//! ```
//! use wca_fuzz::{Outcome, Target, campaign};
//!
//! let xml = b"<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName>\
//!             <CreateTime>1</CreateTime><MsgType>text</MsgType><Content>hi</Content></xml>";
//! assert_eq!(campaign::run_case(Target::Xml, xml), Ok(Outcome::Accepted));
//! assert_eq!(campaign::run_case(Target::Xml, b"<xml"), Ok(Outcome::Refused));
//! ```

pub mod campaign;
pub mod cli;
pub mod mutate;
pub mod rng;
mod targets;

/// What a case did, when every property held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The entry point accepted the input.
    Accepted,
    /// The entry point refused it with an error that has a message.
    Refused,
}

/// The outcome of a case, or the property it broke.
pub type Checked = Result<Outcome, String>;

/// A fuzz target: one entry point and its properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `Inbound::parse` and `parse_reply`, with reply and message writers
    /// read back.
    Xml,
    /// AES decryption of `Encrypt`, key and token parsing, sealed replies
    /// and requests opened again.
    Crypto,
    /// Filter dictionaries: deny and allow lines, build, check.
    Dict,
    /// Keyword rules (`[reply]`, `default-rules.toml`).
    Rules,
    /// The dialog file: intents, flows and slots (`[dialog]`).
    Flow,
    /// FAQ files (`faq.tsv`).
    Faq,
    /// The `wca serve --config` file, parsed and resolved.
    Config,
}

impl Target {
    /// Every target, in the order the runner and the README list them.
    pub const ALL: [Target; 7] = [
        Target::Xml,
        Target::Crypto,
        Target::Dict,
        Target::Rules,
        Target::Flow,
        Target::Faq,
        Target::Config,
    ];

    /// The name used on the command line, for the corpus folder and for
    /// files of `found/`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Xml => "xml",
            Target::Crypto => "crypto",
            Target::Dict => "dict",
            Target::Rules => "rules",
            Target::Flow => "flow",
            Target::Faq => "faq",
            Target::Config => "config",
        }
    }

    /// The target called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs one case and checks its properties. A panic propagates: run
    /// cases through [`campaign::run_case`] to catch it.
    pub fn check(self, input: &[u8]) -> Checked {
        match self {
            Target::Xml => targets::xml::check(input),
            Target::Crypto => targets::crypto::check(input),
            Target::Dict => targets::dict::check(input),
            Target::Rules => targets::dialog::check_rules(input),
            Target::Flow => targets::dialog::check_flow(input),
            Target::Faq => targets::dialog::check_faq(input),
            Target::Config => targets::config::check(input),
        }
    }

    /// Pieces of the target's syntax the mutator inserts.
    pub fn tokens(self) -> &'static [&'static [u8]] {
        match self {
            Target::Xml => targets::xml::TOKENS,
            Target::Crypto => targets::crypto::TOKENS,
            Target::Dict => targets::dict::TOKENS,
            Target::Rules | Target::Flow | Target::Config => targets::TOML_TOKENS,
            Target::Faq => targets::dialog::FAQ_TOKENS,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
