//! `wca chat`: an interactive conversation with a running `wca serve`,
//! as one WeChat user. Each line typed is sent as a text message; every
//! reply is printed. When the server runs with `--fake-wechat`, replies
//! come as customer-service messages pushed to the user: they are read
//! back from its WeChat stand-in and printed too.

use std::io::{BufRead as _, IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use crate::DEFAULT_DATA_DIR;
use crate::send::{Answer, Client};

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The user to play (the demo shop's users are o_demo_user01 to
    /// o_demo_user10).
    #[arg(long = "from", default_value = "oWcaDevUser000000000000001")]
    from: String,
    /// The webhook URL.
    #[arg(long, default_value = "http://127.0.0.1:3000/wechat")]
    url: String,
    /// The Official Account's id (ToUserName).
    #[arg(long = "to", default_value = "gh_wcadev0000")]
    to: String,
    /// Where `wca serve` keeps its development token.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

/// How a reply is shown.
pub fn show(answer: &Answer) -> String {
    match answer {
        Answer::Acknowledged => "（已收到，无回复）".to_owned(),
        Answer::Text(text) => text.clone(),
        Answer::Other(kind) if kind == "transfer_customer_service" => {
            "（已转接人工客服）".to_owned()
        }
        Answer::Other(kind) => format!("[{kind}]"),
    }
}

/// Messages pushed to one user through `wca serve --fake-wechat`'s
/// stand-in, read from its `/_fake/sent`.
struct Pushed {
    sent_url: String,
    openid: String,
    seen: usize,
    agent: ureq::Agent,
}

impl Pushed {
    /// The stand-in a running `wca serve --fake-wechat` named in
    /// `data_dir`, if any; what it already holds counts as seen.
    fn find(data_dir: &Path, openid: &str) -> Option<Self> {
        let base = std::fs::read_to_string(crate::outbound::stand_in_file(data_dir)).ok()?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        let mut pushed = Self {
            sent_url: format!("{}/_fake/sent", base.trim()),
            openid: openid.to_owned(),
            seen: 0,
            agent,
        };
        pushed.seen = pushed.all().ok()?.len();
        Some(pushed)
    }

    /// The texts of every message pushed to the user so far.
    fn all(&self) -> anyhow::Result<Vec<String>> {
        let body = self
            .agent
            .get(&self.sent_url)
            .call()?
            .body_mut()
            .read_to_string()?;
        let sent: Vec<serde_json::Value> = serde_json::from_str(&body)?;
        Ok(sent
            .iter()
            .filter(|m| m["openid"] == self.openid.as_str())
            .map(|m| match m["content"].as_str() {
                Some(text) if !text.is_empty() => text.to_owned(),
                _ => format!("[{}]", m["msgtype"].as_str().unwrap_or("message")),
            })
            .collect())
    }

    /// Waits up to `within` for messages not seen yet, and returns them.
    fn wait_new(&mut self, within: Duration) -> Vec<String> {
        let until = Instant::now() + within;
        loop {
            if let Ok(all) = self.all()
                && all.len() > self.seen
            {
                let new = all[self.seen..].to_vec();
                self.seen = all.len();
                return new;
            }
            if Instant::now() >= until {
                return Vec::new();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// How long a chat waits for a pushed reply after `success`.
const PUSH_WAIT: Duration = Duration::from_secs(3);

fn print_reply(out: &mut impl Write, lead: &str, text: &str) -> std::io::Result<()> {
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            writeln!(out, "{lead}{line}")?;
        } else {
            // Aligned under the first line: a CJK character is two columns.
            let width = lead.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
            writeln!(out, "{:width$}{line}", "")?;
        }
    }
    Ok(())
}

pub fn run(args: ChatArgs) -> anyhow::Result<()> {
    let client = Client::from_env(&args.data_dir, &args.url, &args.from, &args.to)?;
    let mut pushed = Pushed::find(&args.data_dir, &args.from);
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "wca chat: you are {} at {}. Type a message and press Enter; Ctrl-D ends.",
            args.from, args.url
        );
    }
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("我> ");
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if !interactive {
            writeln!(out, "我> {text}")?;
        }
        // A failed send is shown and the chat goes on: the server may be
        // restarting.
        match client.send_text(text, None) {
            // Async mode: the reply comes as a customer-service message.
            Ok(Answer::Acknowledged) if pushed.is_some() => {
                let new = pushed
                    .as_mut()
                    .map(|p| p.wait_new(PUSH_WAIT))
                    .unwrap_or_default();
                if new.is_empty() {
                    writeln!(out, "客服> {}", show(&Answer::Acknowledged))?;
                }
                for text in new {
                    print_reply(&mut out, "客服(推送)> ", &text)?;
                }
            }
            Ok(answer) => print_reply(&mut out, "客服> ", &show(&answer))?,
            Err(e) => writeln!(out, "wca chat: {e:#}")?,
        }
        out.flush()?;
    }
    Ok(())
}
