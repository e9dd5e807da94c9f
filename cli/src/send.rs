//! `wca send`: plays WeChat against a webhook.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use rand::Rng;
use wca_webhook::settings::DEV_APP_ID;
use wca_wechat::{AesKey, Token, client_side, reply};

use crate::{DEFAULT_DATA_DIR, read_dev_token};

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The text to send.
    text: String,
    /// The webhook URL.
    #[arg(long, default_value = "http://127.0.0.1:3000/wechat")]
    url: String,
    /// The sender's OpenID.
    #[arg(long = "from", default_value = "oWcaDevUser000000000000001")]
    from: String,
    /// The Official Account's id (ToUserName).
    #[arg(long = "to", default_value = "gh_wcadev0000")]
    to: String,
    /// Where `wca serve` keeps its development token.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// MsgId to use (random by default; repeat one to play a WeChat retry).
    #[arg(long)]
    msg_id: Option<u64>,
}

pub fn run(args: SendArgs) -> anyhow::Result<()> {
    let token = match std::env::var("WECHAT_TOKEN").ok().filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => read_dev_token(&args.data_dir).with_context(|| {
            format!(
                "WECHAT_TOKEN is not set and no development token is in {} (start `wca serve` first)",
                args.data_dir.display()
            )
        })?,
    };
    let token = Token::new(token).context("WECHAT_TOKEN")?;
    let app_id = std::env::var("WECHAT_APP_ID")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| DEV_APP_ID.to_owned());
    let key = match std::env::var("WECHAT_AES_KEY")
        .ok()
        .filter(|k| !k.is_empty())
    {
        Some(k) => Some(AesKey::parse(&k).context("WECHAT_AES_KEY")?),
        None => None,
    };

    let mut rng = rand::rng();
    let now = wca_core::Clock::now(&wca_core::SystemClock);
    let msg_id = args
        .msg_id
        .unwrap_or_else(|| rng.random_range(1..u64::MAX / 2));
    let inner =
        client_side::text_message_xml(&args.to, &args.from, now, &msg_id.to_string(), &args.text);
    let nonce = rng.random_range(100_000_000u64..999_999_999).to_string();
    let sealed = client_side::seal_request(
        &token,
        key.as_ref(),
        &app_id,
        &args.to,
        &args.from,
        &inner,
        now,
        &nonce,
        rng.random(),
    );
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&sealed.query)
        .finish();
    let sep = if args.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}{query}", args.url);

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut resp = agent
        .post(&url)
        .header("Content-Type", "text/xml; charset=utf-8")
        .send(sealed.body.as_bytes())
        .with_context(|| format!("posting to {}", args.url))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .read_to_string()
        .context("reading the reply")?;
    if status != 200 {
        bail!("the webhook answered HTTP {status}: {}", body.trim());
    }
    if body.trim() == "success" || body.trim().is_empty() {
        println!("(acknowledged, no reply)");
        return Ok(());
    }
    let xml = match &key {
        Some(key) => reply::open_encrypted_reply(&token, key, &app_id, &body)
            .context("the encrypted reply did not verify")?,
        None => body,
    };
    let parsed = reply::parse_reply(&xml).context("the reply is not WeChat reply XML")?;
    if parsed.to_user_name != args.from {
        bail!(
            "the reply is addressed to {:?}, not {:?}",
            parsed.to_user_name,
            args.from
        );
    }
    match parsed.content {
        Some(content) => println!("{content}"),
        None => println!("[{}]", parsed.msg_type),
    }
    Ok(())
}
