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

/// What the webhook answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `success`: received, no reply.
    Acknowledged,
    /// A text reply.
    Text(String),
    /// Another reply type (`transfer_customer_service`, `image`, ...).
    Other(String),
}

/// What signs requests as WeChat does: the token, the EncodingAESKey in
/// safe mode, and the AppID the envelope names.
pub struct Secrets {
    pub token: Token,
    pub key: Option<AesKey>,
    pub app_id: String,
}

impl Secrets {
    /// `WECHAT_TOKEN` (or `wca serve`'s development token in `data_dir`),
    /// `WECHAT_AES_KEY` (safe mode when set) and `WECHAT_APP_ID`.
    pub fn from_env(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        let token = match std::env::var("WECHAT_TOKEN").ok().filter(|t| !t.is_empty()) {
            Some(t) => t,
            None => read_dev_token(data_dir).with_context(|| {
                format!(
                    "WECHAT_TOKEN is not set and no development token is in {} (start `wca serve` first)",
                    data_dir.display()
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
        Ok(Self { token, key, app_id })
    }
}

/// Plays one WeChat user against a webhook: signs (and, in safe mode,
/// encrypts) each message as WeChat does and opens the reply.
pub struct Client {
    token: Token,
    key: Option<AesKey>,
    app_id: String,
    url: String,
    from: String,
    to: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client with the secrets from the environment (or `wca serve`'s
    /// development token in `data_dir`).
    pub fn from_env(
        data_dir: &std::path::Path,
        url: &str,
        from: &str,
        to: &str,
    ) -> anyhow::Result<Self> {
        let Secrets { token, key, app_id } = Secrets::from_env(data_dir)?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Ok(Self {
            token,
            key,
            app_id,
            url: url.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            agent,
        })
    }

    /// Sends a text message (a random MsgId unless given) and returns the
    /// reply.
    pub fn send_text(&self, text: &str, msg_id: Option<u64>) -> anyhow::Result<Answer> {
        let mut rng = rand::rng();
        let now = wca_core::Clock::now(&wca_core::SystemClock);
        let msg_id = msg_id.unwrap_or_else(|| rng.random_range(1..u64::MAX / 2));
        let inner =
            client_side::text_message_xml(&self.to, &self.from, now, &msg_id.to_string(), text);
        let nonce = rng.random_range(100_000_000u64..999_999_999).to_string();
        let sealed = client_side::seal_request(
            &self.token,
            self.key.as_ref(),
            &self.app_id,
            &self.to,
            &self.from,
            &inner,
            now,
            &nonce,
            rng.random(),
        );
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&sealed.query)
            .finish();
        let sep = if self.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}{query}", self.url);
        let mut resp = self
            .agent
            .post(&url)
            .header("Content-Type", "text/xml; charset=utf-8")
            .send(sealed.body.as_bytes())
            .with_context(|| format!("posting to {}", self.url))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .context("reading the reply")?;
        if status != 200 {
            bail!("the webhook answered HTTP {status}: {}", body.trim());
        }
        if body.trim() == "success" || body.trim().is_empty() {
            return Ok(Answer::Acknowledged);
        }
        let xml = match &self.key {
            Some(key) => reply::open_encrypted_reply(&self.token, key, &self.app_id, &body)
                .context("the encrypted reply did not verify")?,
            None => body,
        };
        let parsed = reply::parse_reply(&xml).context("the reply is not WeChat reply XML")?;
        if parsed.to_user_name != self.from {
            bail!(
                "the reply is addressed to {:?}, not {:?}",
                parsed.to_user_name,
                self.from
            );
        }
        Ok(match parsed.content {
            Some(content) => Answer::Text(content),
            None => Answer::Other(parsed.msg_type),
        })
    }
}

pub fn run(args: SendArgs) -> anyhow::Result<()> {
    let client = Client::from_env(&args.data_dir, &args.url, &args.from, &args.to)?;
    match client.send_text(&args.text, args.msg_id)? {
        Answer::Acknowledged => println!("(acknowledged, no reply)"),
        Answer::Text(content) => println!("{content}"),
        Answer::Other(kind) => println!("[{kind}]"),
    }
    Ok(())
}
