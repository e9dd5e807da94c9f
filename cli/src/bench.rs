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
    /// Build a filter from a dictionary and find all matches in a corpus.
    Filter(FilterBenchArgs),
    /// Load both NLP models and classify every line of a file (p50/p99).
    Nlp(crate::classify::NlpBenchArgs),
    /// Hold N connections to a webhook and post signed messages (throughput,
    /// p50/p90/p99/max, errors).
    Load(crate::load::LoadArgs),
    /// Send customer-service messages through the WeChat API client to the
    /// stand-in on loopback (sends/s, latency, an optional outage).
    Outbound(crate::outbound::OutboundBenchArgs),
    /// Run one campaign occurrence to a tag of N followers on the stand-in,
    /// through the embedded store (recipients/s end to end).
    Campaign(crate::campaign::CampaignBenchArgs),
}

#[derive(Debug, Args)]
pub struct FilterBenchArgs {
    /// Deny dictionary files.
    #[arg(long, required = true)]
    deny: Vec<PathBuf>,
    /// Allow files.
    #[arg(long)]
    allow: Vec<PathBuf>,
    /// UTF-8 corpus, checked as one text.
    #[arg(long)]
    text: PathBuf,
    /// Rounds; the best is reported.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Keep timing past `--rounds` until this many seconds have passed, for
    /// the build and for the search each: a side-by-side run gives every
    /// implementation the same stretch of time to find its best, so a fast
    /// one is not judged on a fraction of a second of a busy machine.
    #[arg(long, default_value_t = 0.0)]
    min_seconds: f64,
    /// Most skippable characters between two characters of a word.
    #[arg(long, default_value_t = wca_filter::Options::default().max_gap)]
    max_gap: usize,
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
        BenchCommand::Filter(args) => filter(args),
        BenchCommand::Nlp(args) => crate::classify::bench(args),
        BenchCommand::Load(args) => crate::load::run(args),
        BenchCommand::Outbound(args) => crate::outbound::bench(args),
        BenchCommand::Campaign(args) => crate::campaign::bench(args),
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

/// Round numbers from 0: at least `rounds` (and at least one), and on
/// until `min_seconds` have passed since the first was asked for.
#[derive(Debug, Clone)]
struct Rounds {
    next: u32,
    rounds: u32,
    min_seconds: f64,
    began: Option<Instant>,
}

impl Rounds {
    fn new(rounds: u32, min_seconds: f64) -> Self {
        Self {
            next: 0,
            rounds: rounds.max(1),
            min_seconds,
            began: None,
        }
    }
}

impl Iterator for Rounds {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let began = *self.began.get_or_insert_with(Instant::now);
        if self.next >= self.rounds && began.elapsed().as_secs_f64() >= self.min_seconds {
            return None;
        }
        self.next += 1;
        Some(self.next - 1)
    }
}

/// Best-of-N dictionary build and all-matches search over the corpus,
/// normalisation included; counts hits and the hits that exist only
/// because characters inside them were skipped (false-alarm candidates).
fn filter(args: FilterBenchArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.text)
        .with_context(|| format!("reading {}", args.text.display()))?;
    let rounds = Rounds::new(args.rounds, args.min_seconds);
    let mut build = f64::INFINITY;
    let mut built = None;
    for _ in rounds.clone() {
        let start = Instant::now();
        let f = crate::filter::load(&args.deny, &args.allow, args.max_gap)?;
        build = build.min(start.elapsed().as_secs_f64());
        built = Some(f);
    }
    let Some(filter) = built else {
        bail!("no round ran");
    };
    let mut best = f64::INFINITY;
    let mut scratch = wca_filter::Scratch::default();
    let mut hits = 0usize;
    let mut skipped = 0usize;
    let mut examples = Vec::new();
    for round in rounds {
        let start = Instant::now();
        let verdict = filter.check_with(&text, &mut scratch);
        best = best.min(start.elapsed().as_secs_f64());
        if round == 0 {
            hits = verdict.hits.len();
            for hit in verdict.hits.iter().filter(|h| h.skipped_characters(&text)) {
                skipped += 1;
                if examples.len() < 20 {
                    examples.push(format!(
                        "{} <- {:?}",
                        hit.entry.word,
                        &text[hit.start..hit.end]
                    ));
                }
            }
        }
    }
    let mb = text.len() as f64 / 1e6;
    println!(
        "{}",
        serde_json::json!({
            "entries": filter.deny_len(),
            "build_seconds": build,
            "text_bytes": text.len(),
            "seconds": best,
            "mb_per_s": mb / best,
            "hits": hits,
            "hits_only_by_skipping": skipped,
            "skipping_examples": examples,
        })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Rounds;

    #[test]
    fn rounds_run_the_count_asked_and_at_least_one() {
        assert_eq!(Rounds::new(3, 0.0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(Rounds::new(0, 0.0).count(), 1);
    }

    #[test]
    fn rounds_go_on_until_the_minimum_time_has_passed() {
        let began = Instant::now();
        let rounds = Rounds::new(1, 0.03)
            .inspect(|_| std::thread::sleep(Duration::from_millis(5)))
            .count();
        assert!(began.elapsed() >= Duration::from_millis(30));
        assert!(rounds >= 2, "{rounds}");
    }
}
