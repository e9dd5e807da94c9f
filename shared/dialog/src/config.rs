//! The dialog's configuration: the `[dialog]` table of `wca.toml` (or a
//! file of its own), with shipped defaults ([`DEFAULT_DIALOG`]).
//!
//! ```toml
//! min_confidence = 0.6          # below: FAQ, then a clarifying question
//! flow_confidence = 0.9         # below (and the FAQ answers): the FAQ, not the flow
//! negative_score = -0.6         # sentiment at or below: a negative message
//! clarify = "抱歉，我没太明白……"
//! faq = ["faq.tsv"]             # relative to the config file
//! policy_time = "2026-11-20T10:00:00+08:00"  # pins "now" for date rules
//!
//! [handoff]
//! keywords = ["转人工", "人工客服"]
//! unanswered_turns = 2          # consecutive turns the bot could not answer
//! negative_turns = 2            # consecutive negative messages
//! backlog_limit = 5             # unresolved conversations before new ones go straight to people
//!
//! [intents]                     # intent label -> route
//! greeting = { reply = "{name}您好！", vip_reply = "尊敬的{vip}会员{name}，您好！", returning_reply = "欢迎回来！上次您问到「{last_question}」" }
//! human_agent = { handoff = true }
//! order_status = { flow = "order_lookup" }
//! payment = { faq = true }
//!
//! [[flow]]
//! name = "order_lookup"
//! action = "order_status"       # or "return_ticket"
//! [[flow.slot]]
//! name = "order_id"
//! kind = "order"                # the customer's own orders; or "text" with pattern / choices
//! prompt = "请问要查询哪个订单？"
//! invalid = "没有找到这个订单。"
//! retries = 2
//! ```
//!
//! Every mistake is an error that says where: TOML syntax and type errors
//! with their line, meaning errors with the key (`[intents.order_status]
//! names flow "x", which is not defined`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use crate::{DialogError, Faq, Rules, engine::Dialog, template};

/// The dialog shipped with wca, used when the configuration has none.
pub const DEFAULT_DIALOG: &str = include_str!("../default-dialog.toml");

/// The dialog configuration as written (the `[dialog]` table); turned into
/// a [`Dialog`] by [`Dialog::from_config`], which checks what TOML cannot.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialogConfig {
    min_confidence: Option<f32>,
    flow_confidence: Option<f32>,
    negative_score: Option<f32>,
    clarify: Option<String>,
    anonymous_name: Option<String>,
    vip_min_level: Option<u8>,
    cancel_words: Option<Vec<String>>,
    cancelled: Option<String>,
    flow_failed: Option<String>,
    idle_timeout_secs: Option<i64>,
    policy_time: Option<String>,
    return_window_days: Option<i64>,
    #[serde(default)]
    faq: Vec<String>,
    faq_threshold: Option<f32>,
    #[serde(default)]
    handoff: HandoffSpec,
    #[serde(default)]
    intents: BTreeMap<String, RouteSpec>,
    #[serde(default, rename = "flow")]
    flows: Vec<FlowSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HandoffSpec {
    keywords: Option<Vec<String>>,
    unanswered_turns: Option<u32>,
    negative_turns: Option<u32>,
    backlog_limit: Option<usize>,
    vip_kf_account: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    reply: Option<String>,
    vip_reply: Option<String>,
    returning_reply: Option<String>,
    flow: Option<String>,
    #[serde(default)]
    faq: bool,
    #[serde(default)]
    handoff: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowSpec {
    name: String,
    action: Action,
    #[serde(default, rename = "slot")]
    slots: Vec<SlotSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotSpec {
    name: String,
    #[serde(default)]
    kind: SlotKindSpec,
    prompt: String,
    invalid: Option<String>,
    retries: Option<u32>,
    pattern: Option<String>,
    #[serde(default)]
    choices: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SlotKindSpec {
    #[default]
    Text,
    Order,
}

/// The hand-over policy.
#[derive(Debug, Clone)]
pub(crate) struct Handoff {
    /// Lower-cased; a message containing one goes to a person.
    pub keywords: Vec<String>,
    pub unanswered_turns: u32,
    pub negative_turns: u32,
    pub backlog_limit: usize,
    pub vip_kf_account: Option<String>,
}

/// Where a confident intent leads.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    Reply {
        text: String,
        vip_text: Option<String>,
        /// For a customer starting a new conversation whose history holds
        /// a question the FAQ answered: may use `{last_question}`.
        returning_text: Option<String>,
    },
    Flow(String),
    Faq,
    Handoff,
}

/// What a flow does once its slots are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Action {
    /// Answer with the order's status, courier and tracking number.
    OrderStatus,
    /// Open a return ticket (checking the return window first).
    ReturnTicket,
}

#[derive(Debug, Clone)]
pub(crate) struct Flow {
    pub name: String,
    pub action: Action,
    pub slots: Vec<Slot>,
}

#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub name: String,
    pub kind: SlotKind,
    pub prompt: String,
    pub invalid: String,
    pub retries: u32,
}

#[derive(Debug, Clone)]
pub(crate) enum SlotKind {
    /// One of the customer's own orders, by number or by its place in the
    /// list the bot showed.
    Order,
    /// Free text, optionally matching a pattern or one of some choices.
    Text {
        pattern: Option<Regex>,
        choices: Vec<String>,
    },
}

impl PartialEq for SlotKind {
    fn eq(&self, other: &Self) -> bool {
        matches!((self, other), (SlotKind::Order, SlotKind::Order))
            || matches!(
                (self, other),
                (SlotKind::Text { .. }, SlotKind::Text { .. })
            )
    }
}

/// The 1-based line of byte offset `at` in `text` (for error messages).
pub fn line_of(text: &str, at: usize) -> usize {
    text.get(..at)
        .map_or(1, |head| head.matches('\n').count() + 1)
}

/// What a TOML error says, without the quoted source (messages name the
/// file and line themselves). The parser leaves some syntax errors, such as
/// a key with no value at the end of the file, without a message; those get
/// a generic one rather than none.
pub fn toml_reason(e: &toml::de::Error) -> String {
    match e.message().trim() {
        "" => "invalid TOML syntax".to_owned(),
        message => message.to_owned(),
    }
}

impl Dialog {
    /// The shipped dialog with the shipped keyword rules and no FAQ.
    pub fn defaults() -> Self {
        // The default file is part of the binary and covered by a test.
        Self::from_toml(DEFAULT_DIALOG, "default-dialog.toml", Path::new("."))
            .unwrap_or_else(|_| Self::bare())
    }

    /// No routes, no flows, no FAQ: only clarifying questions and the
    /// hand-over keywords.
    fn bare() -> Self {
        let rules = Rules::defaults();
        Dialog {
            welcome: rules.welcome().map(str::to_owned),
            rules,
            faq: None,
            min_confidence: 0.6,
            flow_confidence: 0.9,
            negative_score: -0.6,
            clarify: "抱歉，我没太明白，能换个说法吗？".to_owned(),
            anonymous_name: "亲".to_owned(),
            vip_min_level: 2,
            cancel_words: Vec::new(),
            cancelled: "好的，已取消。".to_owned(),
            flow_failed: "抱歉，没能帮您办好。".to_owned(),
            idle_timeout_secs: 1800,
            policy_time: None,
            return_window_days: 7,
            handoff: Handoff {
                keywords: vec!["转人工".to_owned()],
                unanswered_turns: 2,
                negative_turns: 2,
                backlog_limit: 5,
                vip_kf_account: None,
            },
            routes: HashMap::new(),
            flows: HashMap::new(),
        }
    }

    /// Parses a dialog file; `origin` names it in errors and FAQ paths are
    /// relative to `base`.
    pub fn from_toml(text: &str, origin: &str, base: &Path) -> Result<Self, DialogError> {
        let config: DialogConfig = toml::from_str(text).map_err(|e| DialogError::Config {
            origin: origin.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)),
            reason: toml_reason(&e),
        })?;
        Self::from_config(config, origin, base)
    }

    /// Builds the dialog from its configuration (the `[dialog]` table of a
    /// larger file, already parsed). `origin` names the file in errors; FAQ
    /// paths are relative to `base`. The keyword rules start as the shipped
    /// ones; see [`Dialog::with_rules`].
    pub fn from_config(spec: DialogConfig, origin: &str, base: &Path) -> Result<Self, DialogError> {
        let bad = |reason: String| DialogError::Config {
            origin: origin.to_owned(),
            line: None,
            reason,
        };
        let mut dialog = Self::bare();
        let text =
            |key: &str, value: Option<String>, default: &str| -> Result<String, DialogError> {
                let value = value.unwrap_or_else(|| default.to_owned());
                template::check(&value).map_err(|e| bad(format!("{key} {e}")))?;
                Ok(value)
            };
        dialog.min_confidence = spec.min_confidence.unwrap_or(dialog.min_confidence);
        if !(0.0..=1.0).contains(&dialog.min_confidence) {
            return Err(bad("min_confidence must be between 0 and 1".to_owned()));
        }
        dialog.flow_confidence = spec.flow_confidence.unwrap_or(dialog.flow_confidence);
        if !(0.0..=1.0).contains(&dialog.flow_confidence) {
            return Err(bad("flow_confidence must be between 0 and 1".to_owned()));
        }
        dialog.negative_score = spec.negative_score.unwrap_or(dialog.negative_score);
        dialog.clarify = text("clarify", spec.clarify, &dialog.clarify)?;
        dialog.anonymous_name = spec.anonymous_name.unwrap_or(dialog.anonymous_name);
        dialog.vip_min_level = spec.vip_min_level.unwrap_or(dialog.vip_min_level);
        dialog.cancel_words = spec
            .cancel_words
            .unwrap_or_else(|| ["算了", "不用了", "取消"].map(str::to_owned).to_vec());
        dialog.cancelled = text("cancelled", spec.cancelled, &dialog.cancelled)?;
        dialog.flow_failed = text("flow_failed", spec.flow_failed, &dialog.flow_failed)?;
        dialog.idle_timeout_secs = spec.idle_timeout_secs.unwrap_or(dialog.idle_timeout_secs);
        if dialog.idle_timeout_secs < 1 {
            return Err(bad("idle_timeout_secs must be at least 1".to_owned()));
        }
        if dialog.cancel_words.iter().any(|w| w.trim().is_empty()) {
            return Err(bad(
                "cancel_words holds an empty word, which would cancel every answer".to_owned(),
            ));
        }
        dialog.return_window_days = spec.return_window_days.unwrap_or(dialog.return_window_days);
        if let Some(t) = spec.policy_time {
            let ts: jiff::Timestamp = t.parse().map_err(|_| {
                bad(format!(
                    "policy_time {t:?} is not an RFC 3339 time with an offset"
                ))
            })?;
            dialog.policy_time = Some(ts.as_second());
        }
        let h = spec.handoff;
        dialog.handoff = Handoff {
            keywords: h
                .keywords
                .unwrap_or(dialog.handoff.keywords)
                .iter()
                .map(|k| k.trim().to_lowercase())
                .filter(|k| !k.is_empty())
                .collect(),
            unanswered_turns: h
                .unanswered_turns
                .unwrap_or(dialog.handoff.unanswered_turns),
            negative_turns: h.negative_turns.unwrap_or(dialog.handoff.negative_turns),
            backlog_limit: h.backlog_limit.unwrap_or(dialog.handoff.backlog_limit),
            vip_kf_account: h.vip_kf_account.filter(|a| !a.is_empty()),
        };
        for f in spec.flows {
            let flow = build_flow(f).map_err(bad)?;
            let name = flow.name.clone();
            if dialog.flows.insert(name.clone(), flow).is_some() {
                return Err(bad(format!("two flows are named {name:?}")));
            }
        }
        for (label, r) in spec.intents {
            let key = format!("[intents.{label}]");
            let route = match (r.reply, r.flow, r.faq, r.handoff) {
                (Some(t), None, false, false) => {
                    template::check(&t).map_err(|e| bad(format!("{key} reply {e}")))?;
                    if let Some(v) = &r.vip_reply {
                        template::check(v).map_err(|e| bad(format!("{key} vip_reply {e}")))?;
                    }
                    if let Some(v) = &r.returning_reply {
                        template::check_returning(v)
                            .map_err(|e| bad(format!("{key} returning_reply {e}")))?;
                    }
                    Route::Reply {
                        text: t,
                        vip_text: r.vip_reply,
                        returning_text: r.returning_reply,
                    }
                }
                (None, Some(name), false, false) => {
                    if !dialog.flows.contains_key(&name) {
                        return Err(bad(format!(
                            "{key} names flow {name:?}, which is not defined"
                        )));
                    }
                    Route::Flow(name)
                }
                (None, None, true, false) => Route::Faq,
                (None, None, false, true) => Route::Handoff,
                _ => {
                    return Err(bad(format!(
                        "{key} needs exactly one of reply, flow, faq = true, handoff = true"
                    )));
                }
            };
            dialog.routes.insert(label, route);
        }
        if !spec.faq.is_empty() {
            let paths: Vec<std::path::PathBuf> = spec.faq.iter().map(|p| base.join(p)).collect();
            let mut faq = Faq::load_all(&paths).map_err(|e| DialogError::Faq(e.to_string()))?;
            if let Some(t) = spec.faq_threshold {
                faq = faq.with_threshold(t);
            }
            dialog.faq = Some(faq);
        }
        Ok(dialog)
    }

    /// The `[dialog]` and `[reply]` tables of a config file such as
    /// `examples/demo-shop/wca.toml` (other tables are ignored; the shipped
    /// dialog and rules for a missing one), FAQ paths relative to the file.
    pub fn load_section(path: &Path) -> Result<Self, DialogError> {
        #[derive(Deserialize)]
        struct File {
            dialog: Option<DialogConfig>,
            reply: Option<toml::Table>,
        }
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| DialogError::Config {
            origin: origin.clone(),
            line: None,
            reason: format!("cannot read: {}", e.kind()),
        })?;
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| DialogError::Config {
            origin: origin.clone(),
            line: e.span().map(|s| line_of(&text, s.start)),
            reason: toml_reason(&e),
        })?;
        table.retain(|k, _| k == "dialog" || k == "reply");
        let file: File = table
            .try_into()
            .map_err(|e: toml::de::Error| DialogError::Config {
                origin: origin.clone(),
                line: None,
                reason: toml_reason(&e),
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let dialog = match file.dialog {
            Some(config) => Self::from_config(config, &origin, base)?,
            None => Self::defaults(),
        };
        Ok(match file.reply {
            Some(table) => dialog.with_rules(Rules::from_table(table)?),
            None => dialog,
        })
    }

    /// Replaces the keyword rules (the `[reply]` section) and takes the
    /// welcome message from them.
    pub fn with_rules(mut self, rules: Rules) -> Self {
        self.welcome = rules.welcome().map(str::to_owned);
        self.rules = rules;
        self
    }
}

fn build_flow(f: FlowSpec) -> Result<Flow, String> {
    let key = format!("[[flow]] {:?}", f.name);
    if f.slots.is_empty() {
        return Err(format!("{key} has no slots"));
    }
    let mut slots: Vec<Slot> = Vec::new();
    for s in f.slots {
        let skey = format!("{key} slot {:?}", s.name);
        if slots.iter().any(|other| other.name == s.name) {
            return Err(format!("{skey} appears twice"));
        }
        template::check(&s.prompt).map_err(|e| format!("{skey} prompt {e}"))?;
        let kind = match s.kind {
            SlotKindSpec::Order => {
                if s.pattern.is_some() || !s.choices.is_empty() {
                    return Err(format!("{skey}: an order slot takes no pattern or choices"));
                }
                SlotKind::Order
            }
            SlotKindSpec::Text => SlotKind::Text {
                pattern: match s.pattern {
                    Some(p) => Some(Regex::new(&p).map_err(|e| format!("{skey} pattern: {e}"))?),
                    None => None,
                },
                choices: s.choices,
            },
        };
        slots.push(Slot {
            name: s.name,
            kind,
            prompt: s.prompt,
            invalid: s.invalid.unwrap_or_else(|| "没能识别您的回答。".to_owned()),
            retries: s.retries.unwrap_or(2),
        });
    }
    let needs_order = matches!(f.action, Action::OrderStatus | Action::ReturnTicket);
    if needs_order
        && !slots
            .iter()
            .any(|s| s.kind == SlotKind::Order && s.name == "order_id")
    {
        return Err(format!(
            "{key}: action needs an order slot named \"order_id\""
        ));
    }
    Ok(Flow {
        name: f.name,
        action: f.action,
        slots,
    })
}
