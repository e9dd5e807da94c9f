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
//! - `wca bench protocol`: times the per-message protocol path on a file of
//!   requests (for the side-by-side comparison with wechatpy).
//! - `wca bench filter`: times dictionary build and matching on a corpus.
//! - `wca bench nlp`: times model load and classify + sentiment per message.

mod ask;
mod bench;
mod chat;
mod classify;
mod filter;
mod send;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
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
        Command::Bench(cmd) => bench::run(cmd),
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
/// becomes one line of stdout. A line that is not UTF-8 is
/// reported on stderr and skipped, not fatal: the rest of the input still
/// gets its answer.
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
        let Ok(text) = std::str::from_utf8(line) else {
            eprintln!("wca {command}: line {}: not UTF-8; skipped", n + 1);
            continue;
        };
        out.write_all(one(text)?.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
