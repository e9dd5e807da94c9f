//! Configuration: an optional TOML file, then environment variables on top.
//!
//! Every knob has a default that suits a shop in China, so only the WeChat
//! secrets must be given. Secrets are held in types whose `Debug` redacts
//! them, and no error here ever repeats a secret's value.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Deserialize;
use wca_dialog::{Dialog, Rules};
use wca_filter::{DictionaryFiles, Options as FilterOptions, ReloadingFilter};
use wca_wechat::{AesKey, Token, callback::CallbackConfig};

/// Errors in the configuration.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The config file is not valid TOML for these settings.
    #[error("config file {path}: {reason}")]
    Syntax {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A value is missing or out of range (the message names the setting,
    /// never a secret's value).
    #[error("{0}")]
    Invalid(String),
}

/// The raw shape of the config file (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// `[wechat]`
    #[serde(default)]
    pub wechat: WechatSection,
    /// `[webhook]`
    #[serde(default)]
    pub webhook: WebhookSection,
    /// `[reply]`: keyword rules and welcome, same format as the defaults.
    #[serde(default)]
    pub reply: Option<toml::Table>,
    /// `[filter]`: sensitive-word dictionaries.
    #[serde(default)]
    pub filter: FilterSection,
    /// `[nlp]`: intent and sentiment models.
    #[serde(default)]
    pub nlp: NlpSection,
    /// `[dialog]`: intent routes, flows, FAQ, hand-over policy (format of
    /// `shared/dialog/default-dialog.toml`); the shipped dialog when absent.
    #[serde(default)]
    pub dialog: Option<wca_dialog::config::DialogConfig>,
    /// `[shop]`: the shop's order, profile and ticket systems.
    #[serde(default)]
    pub shop: ShopSection,
    /// The folder relative paths in the file are resolved against (the
    /// file's own folder); the working directory for settings without a
    /// file.
    #[serde(skip)]
    pub base_dir: std::path::PathBuf,
    /// The file's name as given, for error messages.
    #[serde(skip)]
    pub origin: String,
}

/// `[shop]` section: where the shop's order, profile and ticket systems
/// are. Each value is a JSONL file (relative to the config file), an
/// `http://` or `https://` URL of the shop's own API
/// ([`wca_local::HttpShop`]), or `dynamodb` (profiles and tickets in the
/// stack's table, on AWS). An unset system turns off the flows that need
/// it; see [`crate::shop`] for where tickets go by default.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopSection {
    /// Orders (`examples/demo-shop/orders.jsonl`, or a URL).
    pub orders: Option<String>,
    /// Customer profiles.
    pub users: Option<String>,
    /// Where after-sales tickets go.
    pub tickets: Option<String>,
    /// The deadline of one call to a shop API, in milliseconds (1500).
    pub timeout_ms: Option<u64>,
}

/// `[nlp]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NlpSection {
    /// Classify every text message (default true).
    pub enabled: Option<bool>,
    /// A folder with `intent/` and `sentiment/` model directories
    /// (`model.onnx`, `labels.txt`, `featuriser.json` each); the embedded
    /// default models when unset.
    pub model_dir: Option<String>,
}

/// `[filter]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSection {
    /// Use the built-in dictionary as well (default true).
    pub builtin: Option<bool>,
    /// Deny files (`word<TAB>category[<TAB>action]`), merged in order.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Allow-list files.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Check the files for changes at most this often (default 30).
    pub reload_secs: Option<u64>,
    /// Most skippable characters inside a word (default 3).
    pub max_gap: Option<usize>,
    /// Sent instead of a reply that the filter blocks.
    pub fallback: Option<String>,
}

/// The reply sent instead of one the filter blocks, unless configured.
pub const DEFAULT_FALLBACK: &str = "抱歉，这个问题我暂时无法回答，已为您记录，稍后由人工客服跟进。";

/// `[wechat]` section. Prefer environment variables for secrets.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatSection {
    /// Token set in the WeChat console.
    pub token: Option<String>,
    /// The AppID (`wx...`).
    pub app_id: Option<String>,
    /// EncodingAESKey (43 characters); safe mode when set.
    pub aes_key: Option<String>,
}

impl std::fmt::Debug for WechatSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatSection")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("app_id", &self.app_id)
            .field("aes_key", &self.aes_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `[webhook]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    /// Days to keep archived messages (default 180).
    pub retention_days: Option<i64>,
    /// Reject requests whose timestamp is further than this from now
    /// (default 300; 0 turns the check off).
    pub timestamp_window_secs: Option<i64>,
    /// Largest accepted request body (default 65536).
    pub max_body_bytes: Option<usize>,
    /// Time zone for daily and hourly counters (default Asia/Shanghai).
    pub timezone: Option<String>,
    /// How long a retry waits for the first delivery's reply (default: the
    /// lease and a second, by which time it is done or taken over).
    pub inflight_wait_ms: Option<u64>,
    /// How long a claim on a message lasts before a retry may take it over
    /// (default 8: shorter than WeChat's last retry, 10 s after the first).
    pub lease_secs: Option<i64>,
}

/// Everything the webhook needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Protocol settings (token, AppID, AES key, limits).
    pub callback: CallbackConfig,
    /// Archive retention.
    pub retention_secs: i64,
    /// How long a finished reply is remembered for retries.
    pub dedup_ttl_secs: i64,
    /// How long a claim on a message lasts before another delivery may
    /// take it over (a crashed worker).
    pub lease_secs: i64,
    /// How long a retry waits for the first delivery to finish.
    pub inflight_wait: Duration,
    /// Time zone of the counters.
    pub timezone: jiff::tz::TimeZone,
    /// Keyword rules and welcome message.
    pub rules: Rules,
    /// The sensitive-word filter, following its dictionary files.
    pub filter: ReloadingFilter,
    /// Sent instead of a blocked reply.
    pub fallback: String,
    /// Intent and sentiment models; `None` when classification is off.
    pub nlp: Option<Arc<wca_nlp::Nlp>>,
    /// The dialog: keyword rules, intent routes, flows, FAQ, hand-over.
    pub dialog: Arc<Dialog>,
    /// The `[shop]` section, paths resolved against the config file.
    pub shop: ShopSection,
    /// The folder the shop paths are relative to.
    pub base_dir: std::path::PathBuf,
}

/// Where the values come from: environment variables by name.
pub trait Env {
    /// The variable's value, if set and non-empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// The AppID used when none is configured (local development only).
pub const DEV_APP_ID: &str = "wx0000000000000000";

impl FileSettings {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|e| SettingsError::Read {
            path: path.display().to_string(),
            reason: e.kind().to_string(),
        })?;
        let mut file = Self::parse(&text).map_err(|reason| SettingsError::Syntax {
            path: path.display().to_string(),
            reason,
        })?;
        file.base_dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        file.origin = path.display().to_string();
        Ok(file)
    }

    /// Parses config text; errors say the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut file: Self = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => format!(
                "line {}: {}",
                wca_dialog::config::line_of(text, span.start),
                wca_dialog::config::toml_reason(&e)
            ),
            None => wca_dialog::config::toml_reason(&e),
        })?;
        file.base_dir = std::path::PathBuf::from(".");
        file.origin = "config".to_owned();
        Ok(file)
    }
}

impl Settings {
    /// Builds settings from a parsed file (or defaults) with environment
    /// variables taking precedence: `WECHAT_TOKEN`, `WECHAT_APP_ID`,
    /// `WECHAT_AES_KEY`, `WCA_RETENTION_DAYS`, `WCA_TIMESTAMP_WINDOW_SECS`,
    /// `WCA_MAX_BODY_BYTES`, `WCA_TIMEZONE`, `WCA_FILTER_DENY` and
    /// `WCA_FILTER_ALLOW` (comma-separated paths), `WCA_FILTER_BUILTIN`
    /// (`false` drops the built-in dictionary), `WCA_FILTER_RELOAD_SECS`,
    /// `WCA_FILTER_FALLBACK`, `WCA_NLP` (`false` turns classification off)
    /// and `WCA_MODEL_DIR`. `fallback_token` is used when
    /// neither gives a token (`wca serve`'s development token).
    pub fn resolve(
        file: FileSettings,
        env: &dyn Env,
        fallback_token: Option<&str>,
    ) -> Result<Self, SettingsError> {
        let invalid = |m: String| SettingsError::Invalid(m);
        let token = env
            .var("WECHAT_TOKEN")
            .or(file.wechat.token)
            .or_else(|| fallback_token.map(str::to_owned))
            .ok_or_else(|| invalid("WECHAT_TOKEN is not set".into()))?;
        let token = Token::new(token)
            .map_err(|e| invalid(format!("WECHAT_TOKEN is not a valid WeChat token: {e}")))?;
        let app_id = env
            .var("WECHAT_APP_ID")
            .or(file.wechat.app_id)
            .unwrap_or_else(|| DEV_APP_ID.to_owned());
        let aes_key = match env.var("WECHAT_AES_KEY").or(file.wechat.aes_key) {
            Some(k) => Some(AesKey::parse(&k).map_err(|e| {
                invalid(format!("WECHAT_AES_KEY is not a valid EncodingAESKey: {e}"))
            })?),
            None => None,
        };
        let num =
            |name: &str, from_file: Option<i64>, default: i64| -> Result<i64, SettingsError> {
                match env.var(name) {
                    Some(v) => v
                        .trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| invalid(format!("{name} must be a whole number >= 0"))),
                    None => Ok(from_file.unwrap_or(default)),
                }
            };
        let w = &file.webhook;
        let retention_days = num("WCA_RETENTION_DAYS", w.retention_days, 180)?;
        // 100 years: past that the seconds overflow, and nobody means it.
        if !(1..=36_500).contains(&retention_days) {
            return Err(invalid(format!(
                "retention must be 1 to 36500 days, not {retention_days}"
            )));
        }
        let window = num("WCA_TIMESTAMP_WINDOW_SECS", w.timestamp_window_secs, 300)?;
        let max_body = num(
            "WCA_MAX_BODY_BYTES",
            w.max_body_bytes.map(|n| n as i64),
            64 * 1024,
        )?;
        if max_body < 1024 {
            return Err(invalid(
                "the body size limit must be at least 1024 bytes".into(),
            ));
        }
        let lease_secs = num("WCA_LEASE_SECS", w.lease_secs, 8)?;
        if !(3..=3600).contains(&lease_secs) {
            return Err(invalid(
                "the claim lease must be 3 to 3600 seconds (a delivery gives up 2 s before it ends; 8 lets WeChat's last retry take over)"
                    .into(),
            ));
        }
        let tz_name = env
            .var("WCA_TIMEZONE")
            .or_else(|| w.timezone.clone())
            .unwrap_or_else(|| "Asia/Shanghai".to_owned());
        let timezone = jiff::tz::TimeZone::get(&tz_name)
            .map_err(|_| invalid(format!("unknown time zone {tz_name:?}")))?;
        let rules = match file.reply {
            Some(table) => Rules::from_table(table).map_err(|e| invalid(format!("[reply] {e}")))?,
            None => Rules::defaults(),
        };
        let (filter, fallback) = filter_settings(file.filter, env)?;
        let nlp = nlp_settings(file.nlp, env)?;
        let dialog = match file.dialog {
            Some(config) => Dialog::from_config(config, &file.origin, &file.base_dir)
                .map_err(|e| invalid(format!("[dialog] {e}")))?,
            None => Dialog::defaults(),
        }
        .with_rules(rules.clone());
        Ok(Self {
            callback: CallbackConfig {
                token,
                app_id,
                aes_key,
                max_body_bytes: max_body as usize,
                timestamp_window_secs: (window > 0).then_some(window),
            },
            retention_secs: retention_days * 24 * 3600,
            dedup_ttl_secs: 24 * 3600,
            lease_secs,
            inflight_wait: Duration::from_millis(
                w.inflight_wait_ms
                    .unwrap_or(lease_secs.unsigned_abs().saturating_mul(1000) + 1000),
            ),
            timezone,
            rules,
            filter,
            fallback,
            nlp,
            dialog: Arc::new(dialog),
            shop: file.shop,
            base_dir: file.base_dir,
        })
    }

    /// Settings for the Lambda function: the file named by `WCA_CONFIG`
    /// when set (the config folder shipped as a layer, mounted under
    /// `/opt`), with the environment on top.
    pub fn from_env() -> Result<Self, SettingsError> {
        let file = match ProcessEnv.var("WCA_CONFIG") {
            Some(path) => FileSettings::load(Path::new(&path))?,
            None => FileSettings::default(),
        };
        Self::resolve(file, &ProcessEnv, None)
    }
}

fn nlp_settings(
    section: NlpSection,
    env: &dyn Env,
) -> Result<Option<Arc<wca_nlp::Nlp>>, SettingsError> {
    let invalid = |m: String| SettingsError::Invalid(m);
    let enabled = match env.var("WCA_NLP") {
        Some(v) => match v.trim() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(invalid("WCA_NLP must be true or false".into())),
        },
        None => section.enabled.unwrap_or(true),
    };
    if !enabled {
        return Ok(None);
    }
    match env.var("WCA_MODEL_DIR").or(section.model_dir) {
        Some(dir) => wca_nlp::Nlp::load_dir(&dir)
            .map(|nlp| Some(Arc::new(nlp)))
            .map_err(|e| invalid(format!("[nlp] {e}"))),
        None => default_models().map(Some),
    }
}

/// The embedded models, loaded once per process however many webhooks
/// are built from settings.
fn default_models() -> Result<Arc<wca_nlp::Nlp>, SettingsError> {
    static MODELS: OnceLock<Result<Arc<wca_nlp::Nlp>, String>> = OnceLock::new();
    MODELS
        .get_or_init(|| {
            wca_nlp::Nlp::default_models()
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| SettingsError::Invalid(format!("[nlp] default models: {e}")))
}

fn filter_settings(
    section: FilterSection,
    env: &dyn Env,
) -> Result<(ReloadingFilter, String), SettingsError> {
    let invalid = |m: String| SettingsError::Invalid(m);
    let paths = |var: &str, from_file: Vec<String>| -> Vec<std::path::PathBuf> {
        match env.var(var) {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(Into::into)
                .collect(),
            None => from_file.into_iter().map(Into::into).collect(),
        }
    };
    let builtin = match env.var("WCA_FILTER_BUILTIN") {
        Some(v) => match v.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(invalid("WCA_FILTER_BUILTIN must be true or false".into())),
        },
        None => section.builtin.unwrap_or(true),
    };
    let reload_secs = match env.var("WCA_FILTER_RELOAD_SECS") {
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| invalid("WCA_FILTER_RELOAD_SECS must be a whole number".into()))?,
        None => section.reload_secs.unwrap_or(30),
    };
    let source = DictionaryFiles {
        builtin,
        deny: paths("WCA_FILTER_DENY", section.deny),
        allow: paths("WCA_FILTER_ALLOW", section.allow),
        options: FilterOptions {
            max_gap: section.max_gap.unwrap_or(FilterOptions::default().max_gap),
        },
    };
    let filter = ReloadingFilter::new(source, Duration::from_secs(reload_secs.max(1)))
        .map_err(|e| invalid(format!("[filter] {e}")))?
        .on_error(|e| tracing::error!(error = %e, "dictionary reload failed; the old one stays"));
    let fallback = env
        .var("WCA_FILTER_FALLBACK")
        .or(section.fallback)
        .unwrap_or_else(|| DEFAULT_FALLBACK.to_owned());
    // A fallback that the filter itself would stop could never be sent.
    let verdict_on_fallback = filter.current().check(&fallback).action();
    if verdict_on_fallback.is_some_and(|a| a > wca_filter::Action::Flag) {
        return Err(invalid(
            "[filter] fallback holds a word the dictionary blocks or masks".into(),
        ));
    }
    Ok((filter, fallback))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_variables_override_the_file() {
        let file = FileSettings::parse(
            "[wechat]\ntoken = \"fileToken1\"\napp_id = \"wxfile\"\n[webhook]\nretention_days = 7\n",
        )
        .expect("parse");
        let env = [("WECHAT_TOKEN", "envToken1"), ("WCA_RETENTION_DAYS", "30")];
        let s = Settings::resolve(file, &env, None).expect("resolve");
        assert_eq!(s.callback.token.expose(), "envToken1");
        assert_eq!(s.callback.app_id, "wxfile");
        assert_eq!(s.retention_secs, 30 * 24 * 3600);
        assert!(s.callback.aes_key.is_none());
    }

    #[test]
    fn a_missing_token_is_a_clear_error_unless_a_fallback_is_given() {
        let env: [(&str, &str); 0] = [];
        let err = Settings::resolve(FileSettings::default(), &env, None).expect_err("no token");
        assert_eq!(err.to_string(), "WECHAT_TOKEN is not set");
        let s = Settings::resolve(FileSettings::default(), &env, Some("devToken123"))
            .expect("fallback");
        assert_eq!(s.callback.app_id, DEV_APP_ID);
    }

    #[test]
    fn a_bad_aes_key_is_reported_without_repeating_it() {
        let secret = "not-a-valid-key-but-secret";
        let env = [("WECHAT_TOKEN", "token123"), ("WECHAT_AES_KEY", secret)];
        let err = Settings::resolve(FileSettings::default(), &env, None).expect_err("bad key");
        let msg = err.to_string();
        assert!(
            msg.starts_with("WECHAT_AES_KEY is not a valid EncodingAESKey"),
            "{msg}"
        );
        assert!(!msg.contains(secret), "{msg}");
        assert!(!format!("{err:?}").contains(secret));
    }

    #[test]
    fn debug_output_of_the_file_settings_hides_secrets() {
        let file = FileSettings::parse(
            "[wechat]\ntoken = \"sekritToken\"\naes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\n",
        )
        .expect("parse");
        let dbg = format!("{file:?}");
        assert!(
            !dbg.contains("sekritToken") && !dbg.contains("abcdefghij"),
            "{dbg}"
        );
        let s = Settings::resolve(file, &[("X", "y")], None).expect("resolve");
        let dbg = format!("{s:?}");
        assert!(
            !dbg.contains("sekritToken") && !dbg.contains("abcdefghij"),
            "{dbg}"
        );
    }

    #[test]
    fn out_of_range_numbers_and_unknown_zones_are_rejected() {
        for (name, value) in [
            ("WCA_RETENTION_DAYS", "0"),
            ("WCA_RETENTION_DAYS", "-3"),
            ("WCA_MAX_BODY_BYTES", "10"),
            ("WCA_TIMESTAMP_WINDOW_SECS", "soon"),
            ("WCA_TIMEZONE", "Mars/Olympus"),
        ] {
            let env = [("WECHAT_TOKEN", "token123"), (name, value)];
            assert!(
                Settings::resolve(FileSettings::default(), &env, None).is_err(),
                "{name}={value} accepted"
            );
        }
    }

    #[test]
    fn the_filter_merges_the_builtin_dictionary_with_configured_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deny = dir.path().join("deny.tsv");
        std::fs::write(&deny, "暗号\tcustom\tmask\n").expect("write");
        let file = FileSettings::parse(&format!(
            "[filter]\ndeny = [{:?}]\nfallback = \"稍等\"\n",
            deny.display().to_string()
        ))
        .expect("parse");
        let s = Settings::resolve(file, &[("WECHAT_TOKEN", "token123")], None).expect("resolve");
        let filter = s.filter.current();
        assert_eq!(
            filter.check("对个暗号").action(),
            Some(wca_filter::Action::Mask)
        );
        assert_eq!(
            filter.check("稳赚不赔").action(),
            Some(wca_filter::Action::Block)
        );
        assert_eq!(s.fallback, "稍等");

        let env = [
            ("WECHAT_TOKEN", "token123"),
            ("WCA_FILTER_BUILTIN", "false"),
        ];
        let s = Settings::resolve(FileSettings::default(), &env, None).expect("resolve");
        assert!(s.filter.current().check("稳赚不赔").hits.is_empty());
    }

    #[test]
    fn a_missing_dictionary_or_a_blocked_fallback_is_a_clear_error() {
        let env = [
            ("WECHAT_TOKEN", "token123"),
            ("WCA_FILTER_DENY", "/nonexistent/deny.tsv"),
        ];
        let err = Settings::resolve(FileSettings::default(), &env, None).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/deny.tsv"), "{err}");
        let env = [
            ("WECHAT_TOKEN", "token123"),
            ("WCA_FILTER_FALLBACK", "稳赚不赔哦"),
        ];
        let err = Settings::resolve(FileSettings::default(), &env, None).expect_err("blocked");
        assert!(err.to_string().contains("fallback"), "{err}");
    }

    #[test]
    fn classification_uses_the_embedded_models_unless_turned_off_or_pointed_elsewhere() {
        let s = Settings::resolve(
            FileSettings::default(),
            &[("WECHAT_TOKEN", "token123")],
            None,
        )
        .expect("resolve");
        let nlp = s.nlp.expect("classification is on by default");
        assert_eq!(nlp.intent_model().labels().len(), 12);
        let env = [("WECHAT_TOKEN", "token123"), ("WCA_NLP", "off")];
        let s = Settings::resolve(FileSettings::default(), &env, None).expect("resolve");
        assert!(s.nlp.is_none());
        let env = [
            ("WECHAT_TOKEN", "token123"),
            ("WCA_MODEL_DIR", "/nonexistent/models"),
        ];
        let err = Settings::resolve(FileSettings::default(), &env, None).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/models"), "{err}");
    }

    #[test]
    fn rules_in_the_file_replace_the_defaults() {
        let file = FileSettings::parse(
            "[reply]\nwelcome = \"hi there\"\n[[reply.rule]]\nmatch = \"exact\"\nkeywords = [\"ping\"]\nreply = \"pong\"\n",
        )
        .expect("parse");
        let s = Settings::resolve(file, &[("WECHAT_TOKEN", "token123")], None).expect("resolve");
        assert_eq!(s.rules.welcome(), Some("hi there"));
        assert_eq!(
            s.rules.answer("ping"),
            Some(wca_dialog::Answer::Text("pong"))
        );
        assert_eq!(s.rules.answer("你好"), None);
    }
}
