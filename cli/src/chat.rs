//! `wca chat`: an interactive conversation with a running `wca serve`,
//! as one WeChat user. Each line typed is sent as a text message; every
//! reply is printed.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

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

pub fn run(args: ChatArgs) -> anyhow::Result<()> {
    let client = Client::from_env(&args.data_dir, &args.url, &args.from, &args.to)?;
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
            Ok(answer) => {
                for (i, reply_line) in show(&answer).lines().enumerate() {
                    let lead = if i == 0 { "客服> " } else { "      " };
                    writeln!(out, "{lead}{reply_line}")?;
                }
            }
            Err(e) => writeln!(out, "wca chat: {e:#}")?,
        }
        out.flush()?;
    }
    Ok(())
}
