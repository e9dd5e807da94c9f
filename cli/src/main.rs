//! `wca`: the WeChat customer-service assistant on one machine.
//!
//! - `wca serve`: the bot with an embedded store, no AWS account needed.
//! - `wca send "你好"`: plays WeChat: signs (and encrypts) a message, posts
//!   it, verifies and opens the reply, prints it.
//! - `wca chat --from o_demo_user01`: an interactive conversation with a
//!   running `wca serve`, as one WeChat user.
//! - `wca filter --deny FILE`: checks stdin's lines against a sensitive-word
//!   dictionary, one JSON object per line.
//! - `wca classify`: intent and sentiment of stdin's lines, one JSON object
//!   per line.
//! - `wca ask --faq FILE`: the FAQ entry that answers each of stdin's lines,
//!   one JSON object per line.
//! - `wca event webhook-get|webhook-post|sqs`: prints a signed sample
//!   Lambda event with a fresh timestamp, for `sam local invoke -e` and
//!   `cargo lambda invoke --data-file`.
//! - `wca user export|erase OPENID`: everything wca holds about one user,
//!   as JSON, or removed (personal data on request).
//! - `wca bench protocol`: times the per-message protocol path on a file of
//!   requests (for the side-by-side comparison with wechatpy).
//! - `wca bench filter`: times dictionary build and matching on a corpus.
//! - `wca bench nlp`: times model load and classify + sentiment per message.
//! - `wca bench load`: holds N connections to a webhook and posts signed
//!   messages; reports throughput, latency percentiles and errors.

mod ask;
mod bench;
mod campaign;
mod chat;
mod classify;
mod event;
mod filter;
mod load;
mod outbound;
mod send;
mod serve;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: under thousands of connections the
/// server allocates and frees many small buffers from several threads, and
/// a profile put a quarter of the server's samples in glibc's malloc and
/// free (issue 13).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The default state directory, shared by `serve` and `send`.
pub const DEFAULT_DATA_DIR: &str = ".wca-data";

#[derive(Debug, Parser)]
#[command(name = "wca", version, about = "WeChat customer-service assistant")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bot locally: webhook at http://127.0.0.1:PORT/wechat.
    Serve(serve::ServeArgs),
    /// Send a message to a webhook as WeChat would and print the reply.
    Send(send::SendArgs),
    /// Talk to a running `wca serve` as one WeChat user.
    Chat(chat::ChatArgs),
    /// Check stdin's lines against a sensitive-word dictionary (JSONL out).
    Filter(filter::FilterArgs),
    /// Intent and sentiment of stdin's lines (JSONL out).
    Classify(classify::ClassifyArgs),
    /// The FAQ entry that answers each of stdin's lines (JSONL out).
    Ask(ask::AskArgs),
    /// Print a signed sample Lambda event (JSON) with a fresh timestamp.
    Event(event::EventArgs),
    /// Personal data on request: export or erase everything about one user.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Scheduled and tag campaigns, through the admin API.
    #[command(subcommand)]
    Campaign(Box<campaign::CampaignCommand>),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run a stand-in for the WeChat API (tokens, customer-service and
    /// template messages, tags) for local sending and tests.
    FakeWechat(outbound::FakeWeChatArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Send(args) => send::run(args),
        Command::Chat(args) => chat::run(args),
        Command::Filter(args) => filter::run(args),
        Command::Classify(args) => classify::run(args),
        Command::Ask(args) => ask::run(args),
        Command::Event(args) => event::run(args),
        Command::User(cmd) => user::run(cmd),
        Command::Campaign(cmd) => campaign::run(*cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::FakeWechat(args) => outbound::fake_wechat(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wca: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the development token `wca serve` wrote into `data_dir`, if any.
pub fn read_dev_token(data_dir: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(dev_token_path(data_dir))
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Where the development token lives.
pub fn dev_token_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("dev-token")
}

/// The loop of the line-oriented commands (`filter`, `classify`, `ask`):
/// each line of stdin (a trailing `\r` dropped) is passed to `one`, whose
/// JSON text (serialised by the caller, so field order is the caller's)
/// becomes one line of stdout. Every input line gets exactly one output
/// line, so a caller can zip input and output by line number: a line that
/// is not UTF-8 is decoded lossily (U+FFFD for each bad sequence), answered
/// like any other with `"invalid_utf8": true` added to its object, and
/// noted on stderr; it is not fatal.
pub fn json_lines<F>(command: &str, mut one: F) -> anyhow::Result<()>
where
    F: FnMut(&str) -> anyhow::Result<String>,
{
    use anyhow::Context as _;
    use std::io::{BufRead as _, Write as _};
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (n, line) in stdin.split(b'\n').enumerate() {
        let line = line.context("reading stdin")?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        let json = match std::str::from_utf8(line) {
            Ok(text) => one(text)?,
            Err(_) => {
                eprintln!(
                    "wca {command}: line {}: not UTF-8; answered with U+FFFD in its place",
                    n + 1
                );
                mark_invalid_utf8(one(&String::from_utf8_lossy(line))?)
            }
        };
        out.write_all(json.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Adds `"invalid_utf8":true` as the last field of the JSON object `json`.
/// Spliced into the text rather than parsed and re-serialised, which would
/// reorder the caller's fields (serde_json's map is sorted).
fn mark_invalid_utf8(json: String) -> String {
    let Some(head) = json.trim_end().strip_suffix('}') else {
        return json; // not an object: the callers never do this
    };
    let head = head.trim_end();
    let comma = if head.ends_with('{') { "" } else { "," };
    format!("{head}{comma}\"invalid_utf8\":true}}")
}

#[cfg(test)]
mod tests {
    use super::mark_invalid_utf8;

    #[test]
    fn the_invalid_utf8_flag_is_appended_to_the_object_keeping_its_field_order() {
        for (json, want) in [
            (
                r#"{"text":"\ufffd","b":1}"#,
                r#"{"text":"\ufffd","b":1,"invalid_utf8":true}"#,
            ),
            ("{}", r#"{"invalid_utf8":true}"#),
            ("{ }\n", r#"{"invalid_utf8":true}"#),
        ] {
            assert_eq!(mark_invalid_utf8(json.to_owned()), want, "{json}");
        }
    }
}
