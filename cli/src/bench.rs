//! `wca bench protocol`: the per-message protocol path (verify, decrypt,
//! parse, build a reply, encrypt it) over a JSONL file of WeChat requests,
//! for the side-by-side run against wechatpy
//! (`infra/bench/wechatpy_vs_wca.py`).

use std::io::BufRead as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde::Deserialize;
use wca_wechat::{
    AesKey, Token,
    callback::{CallbackConfig, Query},
    reply::Reply,
};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Verify + decrypt + parse + reply + encrypt every request in a file.
    Protocol(ProtocolArgs),
}

#[derive(Debug, Args)]
pub struct ProtocolArgs {
    /// JSONL: {"query": {...}, "body": "<xml>...</xml>"} per line.
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    token: String,
    #[arg(long)]
    app_id: String,
    #[arg(long)]
    aes_key: Option<String>,
    /// Passes over the file; the best is reported.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
}

#[derive(Deserialize)]
struct Line {
    query: Query,
    body: String,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Protocol(args) => protocol(args),
    }
}

fn protocol(args: ProtocolArgs) -> anyhow::Result<()> {
    let file = std::fs::File::open(&args.input)
        .with_context(|| format!("opening {}", args.input.display()))?;
    let mut lines = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line =
            serde_json::from_str(&line).with_context(|| format!("line {}", i + 1))?;
        lines.push(parsed);
    }
    if lines.is_empty() {
        bail!("{} holds no requests", args.input.display());
    }
    let config = CallbackConfig {
        token: Token::new(args.token).context("--token")?,
        app_id: args.app_id,
        aes_key: args
            .aes_key
            .as_deref()
            .map(AesKey::parse)
            .transpose()
            .context("--aes-key")?,
        max_body_bytes: 64 * 1024,
        // Recorded requests are old; the window is not what is measured.
        timestamp_window_secs: None,
    };
    let reply = Reply::Text {
        content: "您好，请问有什么可以帮您？".to_owned(),
    };
    let mut best = f64::INFINITY;
    let mut bytes_out = 0usize;
    for _ in 0..args.rounds.max(1) {
        let start = Instant::now();
        for line in &lines {
            let opened = config
                .open_request(&line.query, line.body.as_bytes(), 0)
                .map_err(|e| anyhow::anyhow!("request refused: {e}"))?;
            let xml = reply.to_xml(
                &opened.inbound.from_user_name,
                &opened.inbound.to_user_name,
                opened.inbound.create_time,
            );
            let sealed = config.seal_reply(&opened, &xml, opened.inbound.create_time);
            bytes_out += sealed.len();
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    std::hint::black_box(bytes_out);
    let n = lines.len() as f64;
    println!(
        "{}",
        serde_json::json!({
            "messages": lines.len(),
            "seconds": best,
            "per_message_us": best / n * 1e6,
            "per_sec": n / best,
        })
    );
    Ok(())
}
