//! Campaigns: messages we start on a schedule, to a tag, to every
//! follower or to a segment of our own profiles, with per-user variables.
//!
//! - A [`Campaign`] is data: its [`Schedule`] (5-field cron in its own
//!   IANA time zone, or one instant), [`Audience`], [`Channel`] and a
//!   content [`Template`]. It keeps its next fire time, so one tick a
//!   minute ([`Campaigns::tick`]) finds what is due.
//! - An [`Occurrence`] is one (campaign, scheduled time). It is claimed
//!   with a conditional write ([`CampaignStore::claim_occurrence`]), so two
//!   ticks or two instances never run it twice.
//! - Its audience is expanded page by page ([`Audiences`]) with a cursor
//!   kept in the occurrence, so a crash resumes where it stopped.
//! - Each recipient is a [`Delivery`], claimed before WeChat is called
//!   ([`Deliverer`]): a redelivered or restarted recipient is never sent
//!   the same occurrence twice.
//! - In one process ([`Runner`] without a queue) pages are delivered as
//!   they are read; in the AWS stack they are queued as
//!   [`DeliveryBatch`]es and a worker delivers them ([`BatchDeliverer`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::outbound::{
    ApiError, ContactWindows, Failure, OutboundScreen, RateLimit, Refusal, WeChatApi,
};
use crate::{Clock, CustomMessage, OpenId, Outbound, PortError, Profile, ProfileStore};

mod hooks;
mod queue;
mod trigger;

pub use hooks::AbortAfterSends;
pub use queue::{
    BATCH, BatchDeliverer, BatchOutcome, DeliveryBatch, DeliveryQueue, MAX_QUEUE_DELAY, MAX_WAITS,
    batches_of,
};
pub use trigger::{MessageTriggers, Triggers};

/// Why a campaign cannot be created or changed: shown to the admin as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignError {
    /// A field is missing or malformed.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field, as the admin API spells it.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The content holds words the sensitive-word filter blocks.
    #[error("the content is blocked by the sensitive-word filter: {}", words.join(", "))]
    Blocked {
        /// The dictionary entries hit.
        words: Vec<String>,
    },
    /// No campaign has this id.
    #[error("no campaign {0}")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreFailure),
}

/// A [`PortError`] that can be cloned into a [`CampaignError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreFailure(pub String);

impl From<PortError> for CampaignError {
    fn from(e: PortError) -> Self {
        CampaignError::Store(StoreFailure(e.to_string()))
    }
}

fn invalid(field: &'static str, problem: impl Into<String>) -> CampaignError {
    CampaignError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// When a campaign fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// A 5-field cron expression (minute hour day-of-month month
    /// day-of-week, Monday = 1, Sunday = 0 or 7) read on the wall clock of
    /// an IANA time zone.
    Cron {
        /// The expression, e.g. `0 9 * * 1`.
        cron: String,
        /// The zone, e.g. `Asia/Shanghai`.
        tz: String,
    },
    /// Once, at this instant (Unix seconds).
    Once {
        /// When.
        at: i64,
        /// The zone its quiet hours are read in (UTC when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tz: Option<String>,
    },
    /// On a user's message instead of a time (a coupon on a `promotion`
    /// question): its intent is one of `intents`, or its text holds one
    /// of `keywords` (case-insensitive). That user gets it at most once
    /// per `cooldown_secs`.
    Trigger {
        /// Intent labels (the taxonomy's, e.g. `promotion`).
        intents: Vec<String>,
        /// Words or phrases.
        keywords: Vec<String>,
        /// Seconds before the same user can get it again.
        cooldown_secs: i64,
    },
}

impl Schedule {
    /// Checks the expression and the zone.
    pub fn check(&self) -> Result<(), CampaignError> {
        match self {
            Schedule::Cron { cron, tz } => {
                parse_cron(cron)?;
                zone(tz)?;
            }
            Schedule::Trigger {
                intents,
                keywords,
                cooldown_secs,
            } => {
                if intents.is_empty() && keywords.is_empty() {
                    return Err(invalid(
                        "on_intent",
                        "a triggered campaign needs --on-intent or --on-keyword",
                    ));
                }
                if !(0..=366 * 86_400).contains(cooldown_secs) {
                    return Err(invalid("cooldown_days", "give 0 to 366 days"));
                }
            }
            Schedule::Once { tz, .. } => {
                if let Some(tz) = tz {
                    zone(tz)?;
                }
            }
        }
        Ok(())
    }

    /// Whether a message with `text` and `intent` fires this schedule
    /// (only a [`Schedule::Trigger`] does).
    pub fn fired_by(&self, text: &str, intent: Option<&str>) -> bool {
        let Schedule::Trigger {
            intents, keywords, ..
        } = self
        else {
            return false;
        };
        if intent.is_some_and(|i| intents.iter().any(|want| want == i)) {
            return true;
        }
        let text = text.to_lowercase();
        keywords.iter().any(|k| text.contains(&k.to_lowercase()))
    }

    /// The first fire time strictly after `t` (Unix seconds), `None` when
    /// there is none (a one-off in the past, an expression that never
    /// matches).
    ///
    /// A cron time that a daylight-saving change skips (02:30 on the
    /// night clocks jump from 02:00 to 03:00) fires once, right after the
    /// change; a time that happens twice (01:30 when clocks go back) fires
    /// once, at its first occurrence.
    pub fn next_after(&self, t: i64) -> Option<i64> {
        match self {
            Schedule::Once { at, .. } => (*at > t).then_some(*at),
            Schedule::Trigger { .. } => None,
            Schedule::Cron { cron, tz } => {
                let cron = parse_cron(cron).ok()?;
                let zone = zone(tz).ok()?;
                let start = jiff::Timestamp::from_second(t).ok()?.to_zoned(zone);
                let next = cron.find_next_occurrence(&start, false).ok()?;
                Some(next.timestamp().as_second())
            }
        }
    }

    /// The zone the schedule reads its wall clock in (UTC for a one-off).
    pub fn time_zone(&self) -> jiff::tz::TimeZone {
        match self {
            Schedule::Cron { tz, .. } => zone(tz).unwrap_or(jiff::tz::TimeZone::UTC),
            Schedule::Once { tz: Some(tz), .. } => zone(tz).unwrap_or(jiff::tz::TimeZone::UTC),
            Schedule::Once { tz: None, .. } | Schedule::Trigger { .. } => jiff::tz::TimeZone::UTC,
        }
    }
}

fn parse_cron(expr: &str) -> Result<croner::Cron, CampaignError> {
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(invalid(
            "cron",
            format!(
                "{expr:?} has {fields} fields; write 5: minute hour day-of-month month day-of-week (e.g. \"0 9 * * 1\")"
            ),
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| invalid("cron", format!("{expr:?}: {e}")))
}

fn zone(name: &str) -> Result<jiff::tz::TimeZone, CampaignError> {
    jiff::tz::TimeZone::get(name).map_err(|_| {
        invalid(
            "tz",
            format!("{name:?} is not an IANA time zone (e.g. Asia/Shanghai)"),
        )
    })
}

/// Who receives a campaign. Written as text: `tag:NAME`, `all`, or
/// `segment:EXPR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Audience {
    /// The followers WeChat has tagged `NAME` (through the tag API).
    Tag(String),
    /// Every follower.
    All,
    /// Our own profiles matching every condition (see [`Segment`]).
    Segment(Segment),
}

impl FromStr for Audience {
    type Err = CampaignError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "all" {
            return Ok(Audience::All);
        }
        if let Some(name) = s.strip_prefix("tag:") {
            let name = name.trim();
            if name.is_empty() {
                return Err(invalid("audience", "tag: needs a tag name, e.g. tag:VIP"));
            }
            return Ok(Audience::Tag(name.to_owned()));
        }
        if let Some(expr) = s.strip_prefix("segment:") {
            return Ok(Audience::Segment(expr.parse()?));
        }
        Err(invalid(
            "audience",
            format!("{s:?}: write tag:NAME, all, or segment:EXPR (e.g. segment:vip>=2,active<48h)"),
        ))
    }
}

impl TryFrom<String> for Audience {
    type Error = CampaignError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Audience> for String {
    fn from(a: Audience) -> String {
        a.to_string()
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Audience::Tag(name) => write!(f, "tag:{name}"),
            Audience::All => f.write_str("all"),
            Audience::Segment(s) => write!(f, "segment:{s}"),
        }
    }
}

/// One condition of a [`Segment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `vip>=N`, `vip=N`, `vip<=N`: the profile's membership level.
    Vip(Cmp, u8),
    /// `tag=NAME` / `tag!=NAME`: one of the profile's own tags.
    Tag {
        /// The tag.
        name: String,
        /// `true` for `tag!=`.
        negated: bool,
    },
    /// `active<Nh`: wrote to us within the last N hours (48 is WeChat's
    /// window for customer-service messages).
    ActiveWithin(i64),
}

/// A comparison of [`Condition::Vip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `>=`
    AtLeast,
    /// `=`
    Equal,
    /// `<=`
    AtMost,
}

/// Conditions on our own profiles, all of which must hold, written
/// comma-separated: `vip>=2,tag=复购,active<48h`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment(pub Vec<Condition>);

impl FromStr for Segment {
    type Err = CampaignError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut conditions = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                invalid(
                    "audience",
                    format!(
                        "segment condition {part:?}: write vip>=N, vip=N, vip<=N, tag=NAME, tag!=NAME or active<Nh"
                    ),
                )
            };
            let condition = if let Some(n) = part.strip_prefix("vip>=") {
                Condition::Vip(Cmp::AtLeast, n.trim().parse().map_err(|_| bad())?)
            } else if let Some(n) = part.strip_prefix("vip<=") {
                Condition::Vip(Cmp::AtMost, n.trim().parse().map_err(|_| bad())?)
            } else if let Some(n) = part.strip_prefix("vip=") {
                Condition::Vip(Cmp::Equal, n.trim().parse().map_err(|_| bad())?)
            } else if let Some(name) = part.strip_prefix("tag!=") {
                Condition::Tag {
                    name: name.trim().to_owned(),
                    negated: true,
                }
            } else if let Some(name) = part.strip_prefix("tag=") {
                Condition::Tag {
                    name: name.trim().to_owned(),
                    negated: false,
                }
            } else if let Some(h) = part.strip_prefix("active<") {
                let hours: i64 = h
                    .trim()
                    .strip_suffix('h')
                    .ok_or_else(bad)?
                    .parse()
                    .map_err(|_| bad())?;
                // Up to a year: longer is no recent activity.
                if !(1..=8784).contains(&hours) {
                    return Err(bad());
                }
                Condition::ActiveWithin(hours)
            } else {
                return Err(bad());
            };
            if matches!(&condition, Condition::Tag { name, .. } if name.is_empty()) {
                return Err(bad());
            }
            conditions.push(condition);
        }
        if conditions.is_empty() {
            return Err(invalid(
                "audience",
                "segment: needs at least one condition, e.g. segment:vip>=2",
            ));
        }
        Ok(Segment(conditions))
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|c| match c {
                Condition::Vip(Cmp::AtLeast, n) => format!("vip>={n}"),
                Condition::Vip(Cmp::Equal, n) => format!("vip={n}"),
                Condition::Vip(Cmp::AtMost, n) => format!("vip<={n}"),
                Condition::Tag {
                    name,
                    negated: false,
                } => format!("tag={name}"),
                Condition::Tag {
                    name,
                    negated: true,
                } => format!("tag!={name}"),
                Condition::ActiveWithin(h) => format!("active<{h}h"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Segment {
    /// Whether `profile` (last heard from at `last_interaction`) is in the
    /// segment at `now`.
    pub fn matches(&self, profile: &Profile, last_interaction: Option<i64>, now: i64) -> bool {
        self.0.iter().all(|c| match c {
            Condition::Vip(Cmp::AtLeast, n) => profile.vip_level >= *n,
            Condition::Vip(Cmp::Equal, n) => profile.vip_level == *n,
            Condition::Vip(Cmp::AtMost, n) => profile.vip_level <= *n,
            Condition::Tag { name, negated } => profile.tags.contains(name) != *negated,
            Condition::ActiveWithin(h) => {
                last_interaction.is_some_and(|at| now.saturating_sub(at) < h.saturating_mul(3600))
            }
        })
    }

    /// Whether any condition needs the user's last interaction.
    pub fn needs_activity(&self) -> bool {
        self.0
            .iter()
            .any(|c| matches!(c, Condition::ActiveWithin(_)))
    }
}

/// How a campaign reaches people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Customer-service messages, one per user: only users who wrote
    /// within 48 hours can get one; the others are skipped with a reason.
    Custom,
    /// Template messages: service notices with per-user fields. WeChat
    /// forbids marketing content in templates.
    Template,
    /// WeChat's mass send to a tag or to all: the same text for everyone,
    /// under WeChat's monthly quota.
    Mass,
    /// No message: the user gets the WeChat tag the text names (客户分层
    /// from what they write, for later `tag:` campaigns). Triggered
    /// campaigns only.
    Tag,
}

impl FromStr for Channel {
    type Err = CampaignError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "custom" => Ok(Channel::Custom),
            "template" => Ok(Channel::Template),
            "mass" => Ok(Channel::Mass),
            "tag" => Ok(Channel::Tag),
            other => Err(invalid(
                "channel",
                format!("{other:?}: write custom, template, mass or tag"),
            )),
        }
    }
}

/// The variables a [`Template`] may use, all from the user's profile.
pub const VARIABLES: [&str; 5] = ["openid", "name", "vip_level", "tags", "last_order_id"];

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

/// A content template: text with `{{variable}}` slots filled per user
/// (see [`VARIABLES`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl FromStr for Template {
    type Err = CampaignError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| invalid("text", "a {{ is never closed with }}"))?;
            let name = after[..close].trim();
            if !VARIABLES.contains(&name) {
                return Err(invalid(
                    "text",
                    format!(
                        "unknown variable {{{{{name}}}}}; the variables are {}",
                        VARIABLES.join(", ")
                    ),
                ));
            }
            pieces.push(Piece::Var(name.to_owned()));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        if pieces.is_empty() {
            return Err(invalid("text", "the content is empty"));
        }
        Ok(Template(pieces))
    }
}

impl Template {
    /// The variables used, each once, in order of first use.
    pub fn variables(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for piece in &self.0 {
            if let Piece::Var(v) = piece
                && !seen.contains(&v.as_str())
            {
                seen.push(v);
            }
        }
        seen
    }

    /// The literal text with every slot empty: what the filter checks at
    /// creation (values are checked per user, after rendering).
    pub fn literal(&self) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_str(),
                Piece::Var(_) => " ",
            })
            .collect()
    }

    /// The text for one user: each slot from `values`, else from
    /// `defaults`; `Err(variable)` names the first one with neither.
    pub fn render(
        &self,
        values: &BTreeMap<String, String>,
        defaults: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => {
                    let value = values
                        .get(v)
                        .filter(|x| !x.trim().is_empty())
                        .or_else(|| defaults.get(v))
                        .ok_or_else(|| v.clone())?;
                    out.push_str(value);
                }
            }
        }
        Ok(out)
    }
}

/// The variables of one user: `openid`, and what the profile holds.
pub fn variables_of(openid: &str, profile: Option<&Profile>) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    values.insert("openid".to_owned(), openid.to_owned());
    if let Some(p) = profile {
        values.insert("name".to_owned(), p.name.clone());
        values.insert("vip_level".to_owned(), p.vip_level.to_string());
        if !p.tags.is_empty() {
            values.insert("tags".to_owned(), p.tags.join("、"));
        }
        if let Some(order) = &p.last_order_id {
            values.insert("last_order_id".to_owned(), order.clone());
        }
    }
    values
}

/// Local hours in which nothing is sent: from `start` (inclusive) to
/// `end` (exclusive), wrapping midnight when `start > end` (22 to 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    /// First quiet hour, 0 to 23.
    pub start: u8,
    /// First hour after the quiet, 0 to 23.
    pub end: u8,
}

impl FromStr for QuietHours {
    type Err = CampaignError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            invalid(
                "quiet_hours",
                format!("{s:?}: write START-END in hours, e.g. 22-8"),
            )
        };
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let start: u8 = a.trim().parse().map_err(|_| bad())?;
        let end: u8 = b.trim().parse().map_err(|_| bad())?;
        if start > 23 || end > 23 || start == end {
            return Err(bad());
        }
        Ok(Self { start, end })
    }
}

impl QuietHours {
    /// Whether local hour `hour` is quiet.
    pub fn contains(self, hour: u8) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&hour)
        } else {
            hour >= self.start || hour < self.end
        }
    }
}

/// Where a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Fires when due.
    Active,
    /// Does not fire until resumed; a run in progress stops between pages.
    Paused,
    /// Nothing is left to fire (a one-off that ran, or past its end).
    Finished,
    /// Waits for a second admin's approval (双人复核): it goes to every
    /// follower, or to more users than the approval threshold.
    PendingApproval,
}

/// What an admin asks for: the fields of `wca campaign add`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// A name people recognise.
    pub name: String,
    /// A 5-field cron expression (with `tz`)...
    #[serde(default)]
    pub cron: Option<String>,
    /// ...in this IANA zone.
    #[serde(default)]
    pub tz: Option<String>,
    /// ...or one instant, RFC 3339 (`2026-12-01T09:00:00+08:00`).
    #[serde(default)]
    pub at: Option<String>,
    /// `tag:NAME`, `all` or `segment:EXPR`.
    pub audience: String,
    /// `custom`, `template` or `mass`.
    pub channel: String,
    /// The content, with `{{variables}}`.
    pub text: String,
    /// A value for a variable a user has none for; without one, such a
    /// user is skipped with the reason `missing:{variable}`.
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
    /// The template's id (channel `template`): the text fills its
    /// `content` field.
    #[serde(default)]
    pub template_id: Option<String>,
    /// Local hours without sends, `22-8`.
    #[serde(default)]
    pub quiet_hours: Option<String>,
    /// Messages a second, at most, for this campaign.
    #[serde(default)]
    pub rate_per_sec: Option<u32>,
    /// Not before this instant (RFC 3339).
    #[serde(default)]
    pub starts: Option<String>,
    /// Not after this instant (RFC 3339).
    #[serde(default)]
    pub ends: Option<String>,
    /// How late a missed occurrence (downtime) may still run, in seconds;
    /// later ones are recorded as missed. Default 3600.
    #[serde(default)]
    pub grace_secs: Option<i64>,
    /// Instead of a time: fired by a message of one of these intents,
    /// comma-separated (`promotion`).
    #[serde(default)]
    pub on_intent: Option<String>,
    /// ...or by a message holding one of these words, comma-separated
    /// (`优惠券,折扣`).
    #[serde(default)]
    pub on_keyword: Option<String>,
    /// A triggered campaign reaches one user at most once in this many
    /// days (default 7).
    #[serde(default)]
    pub cooldown_days: Option<u32>,
}

/// The non-empty, trimmed items of a comma-separated list.
fn list(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split([',', '，'])
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    /// `c` and 12 hex digits.
    pub id: String,
    /// A name people recognise.
    pub name: String,
    /// When it fires.
    pub schedule: Schedule,
    /// Who receives it.
    pub audience: Audience,
    /// How.
    pub channel: Channel,
    /// The content template (checked when created).
    pub text: String,
    /// Values for variables a user has none for.
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
    /// The template's id (channel `template`).
    #[serde(default)]
    pub template_id: Option<String>,
    /// Local hours without sends.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// Messages a second, at most.
    #[serde(default)]
    pub rate_per_sec: Option<u32>,
    /// Not before (Unix seconds).
    #[serde(default)]
    pub starts_at: Option<i64>,
    /// Not after (Unix seconds).
    #[serde(default)]
    pub ends_at: Option<i64>,
    /// How late a missed occurrence may still run.
    pub grace_secs: i64,
    /// Where it stands.
    pub status: Status,
    /// The next scheduled time (Unix seconds), `None` when none is left.
    pub next_fire: Option<i64>,
    /// When it was created.
    pub created_at: i64,
    /// Which admin created it.
    pub created_by: String,
    /// Bumped by every change (compare-and-set in the store).
    pub version: u64,
    /// Who did what to it, oldest first: the audit trail.
    #[serde(default)]
    pub audit: Vec<AuditEntry>,
    /// Why it needed a second admin's approval, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

/// One admin action on a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When (Unix seconds).
    pub at: i64,
    /// The admin's name.
    pub by: String,
    /// `created`, `paused`, `resumed`, `run_now`.
    pub action: String,
}

impl Campaign {
    /// Active again at `now` (resumed, approved): a next fire time that
    /// fell out of the grace period while it waited moves to the next time
    /// after now, and a campaign with none left is finished.
    fn reactivate(&mut self, now: i64) {
        self.status = Status::Active;
        if matches!(self.schedule, Schedule::Trigger { .. }) {
            return;
        }
        if self.next_fire.is_some_and(|t| t < now - self.grace_secs) {
            self.next_fire = self.fire_after(now);
        }
        if self.next_fire.is_none() {
            self.status = Status::Finished;
        }
    }

    /// The parsed content template (checked at creation).
    pub fn template(&self) -> Result<Template, CampaignError> {
        self.text.parse()
    }

    /// Whether `now` falls in the campaign's quiet hours, on its zone's
    /// clock.
    pub fn is_quiet(&self, now: i64) -> bool {
        let Some(quiet) = self.quiet_hours else {
            return false;
        };
        jiff::Timestamp::from_second(now)
            .map(|t| t.to_zoned(self.schedule.time_zone()).hour())
            .ok()
            .and_then(|h| u8::try_from(h).ok())
            .is_some_and(|h| quiet.contains(h))
    }

    /// The first fire time after `t` within the campaign's dates.
    pub fn fire_after(&self, t: i64) -> Option<i64> {
        let from = match self.starts_at {
            Some(s) if s > t => s - 1,
            _ => t,
        };
        self.schedule
            .next_after(from)
            .filter(|next| self.ends_at.is_none_or(|end| *next <= end))
    }
}

fn instant(field: &'static str, text: &str) -> Result<i64, CampaignError> {
    text.trim()
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|_| {
            invalid(
                field,
                format!("{text:?} is not an RFC 3339 instant (e.g. 2026-12-01T09:00:00+08:00)"),
            )
        })
}

impl NewCampaign {
    /// Checks every field and builds the campaign, created by `by` at
    /// `now` with id `id`. The content's literal text passes `screen`
    /// (a blocked word refuses the campaign, naming the words).
    pub fn build(
        self,
        id: String,
        by: &str,
        now: i64,
        screen: Option<&dyn OutboundScreen>,
    ) -> Result<Campaign, CampaignError> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(invalid("name", "give a name of 1 to 100 characters"));
        }
        let (intents, keywords) = (
            list(self.on_intent.as_deref()),
            list(self.on_keyword.as_deref()),
        );
        let triggered = !intents.is_empty() || !keywords.is_empty();
        let schedule = match (self.cron, self.tz, self.at) {
            (None, None, None) if triggered => Schedule::Trigger {
                intents,
                keywords,
                cooldown_secs: i64::from(self.cooldown_days.unwrap_or(7)) * 86_400,
            },
            _ if triggered => {
                return Err(invalid(
                    "on_intent",
                    "a triggered campaign fires on messages: give no --cron or --at",
                ));
            }
            (Some(cron), Some(tz), None) => Schedule::Cron { cron, tz },
            (Some(_), None, None) => {
                return Err(invalid(
                    "tz",
                    "a cron schedule needs its time zone, e.g. --tz Asia/Shanghai",
                ));
            }
            (None, tz, Some(at)) => Schedule::Once {
                at: instant("at", &at)?,
                tz,
            },
            (Some(_), _, Some(_)) => {
                return Err(invalid("at", "give --cron with --tz, or --at, not both"));
            }
            (None, _, None) => {
                return Err(invalid("cron", "give --cron with --tz, or --at"));
            }
        };
        schedule.check()?;
        let audience: Audience = self.audience.parse()?;
        let channel: Channel = self.channel.parse()?;
        let template: Template = self.text.parse()?;
        for var in self.defaults.keys() {
            if !VARIABLES.contains(&var.as_str()) {
                return Err(invalid(
                    "defaults",
                    format!(
                        "unknown variable {var:?}; the variables are {}",
                        VARIABLES.join(", ")
                    ),
                ));
            }
        }
        if triggered
            && (!matches!(channel, Channel::Custom | Channel::Tag) || audience != Audience::All)
        {
            return Err(invalid(
                "channel",
                "a triggered campaign answers the user who just wrote: use --channel custom (or tag) --audience all",
            ));
        }
        if channel == Channel::Tag {
            let name = template.literal();
            if !triggered {
                return Err(invalid(
                    "channel",
                    "channel tag tags the user who wrote: give --on-intent or --on-keyword",
                ));
            }
            if !template.variables().is_empty() || name.trim().is_empty() || name.len() > 30 {
                return Err(invalid(
                    "text",
                    "channel tag: the text is the WeChat tag's name, up to 30 bytes, without {{variables}}",
                ));
            }
        }
        match channel {
            Channel::Mass => {
                if matches!(audience, Audience::Segment(_)) {
                    return Err(invalid(
                        "channel",
                        "mass sends go to a WeChat tag or to all followers, not to a segment",
                    ));
                }
                if !template.variables().is_empty() {
                    return Err(invalid(
                        "text",
                        "a mass send is the same text for everyone: it cannot use {{variables}}",
                    ));
                }
            }
            Channel::Template if self.template_id.as_deref().is_none_or(str::is_empty) => {
                return Err(invalid(
                    "template_id",
                    "channel template needs the template's id",
                ));
            }
            _ => {}
        }
        if let Some(screen) = screen {
            let mut literal = template.literal();
            for value in self.defaults.values() {
                literal.push('\n');
                literal.push_str(value);
            }
            if let Some(verdict) = screen.screen(&literal)
                && verdict.action == "block"
            {
                let mut words: Vec<String> = verdict.hits.into_iter().map(|h| h.word).collect();
                words.dedup();
                return Err(CampaignError::Blocked { words });
            }
        }
        let quiet_hours: Option<QuietHours> =
            self.quiet_hours.as_deref().map(str::parse).transpose()?;
        // Quiet hours are read on the audience's clock, which must be
        // named, not guessed as UTC.
        if quiet_hours.is_some()
            && matches!(
                schedule,
                Schedule::Once { tz: None, .. } | Schedule::Trigger { .. }
            )
        {
            return Err(invalid(
                "quiet_hours",
                "quiet hours are read on a local clock: give --tz with --at (a triggered campaign has none)",
            ));
        }
        if self.rate_per_sec == Some(0) {
            return Err(invalid("rate_per_sec", "give at least 1 message a second"));
        }
        let starts_at = self
            .starts
            .as_deref()
            .map(|s| instant("starts", s))
            .transpose()?;
        let ends_at = self
            .ends
            .as_deref()
            .map(|s| instant("ends", s))
            .transpose()?;
        if let (Some(s), Some(e)) = (starts_at, ends_at)
            && e <= s
        {
            return Err(invalid("ends", "the end must be after the start"));
        }
        let grace_secs = self.grace_secs.unwrap_or(3600);
        if !(0..=7 * 86_400).contains(&grace_secs) {
            return Err(invalid("grace_secs", "give 0 to 604800 seconds"));
        }
        let mut campaign = Campaign {
            id,
            name,
            schedule,
            audience,
            channel,
            text: self.text,
            defaults: self.defaults,
            template_id: self.template_id.filter(|t| !t.is_empty()),
            quiet_hours,
            rate_per_sec: self.rate_per_sec,
            starts_at,
            ends_at,
            grace_secs,
            status: Status::Active,
            next_fire: None,
            created_at: now,
            created_by: by.to_owned(),
            version: 1,
            audit: vec![AuditEntry {
                at: now,
                by: by.to_owned(),
                action: "created".to_owned(),
            }],
            approval: None,
        };
        campaign.next_fire = match campaign.schedule {
            // A one-off a little in the past (a slow request) still runs.
            Schedule::Once { at, .. } if at > now - 60 => campaign.fire_after(at - 1),
            Schedule::Once { .. } => {
                return Err(invalid("at", "that instant has passed"));
            }
            Schedule::Cron { .. } => campaign.fire_after(now),
            // Fired by messages, not by the tick.
            Schedule::Trigger { .. } => return Ok(campaign),
        };
        if campaign.next_fire.is_none() {
            return Err(invalid(
                "cron",
                "the schedule never fires between the start and the end",
            ));
        }
        Ok(campaign)
    }
}

/// Where an occurrence stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OccurrenceState {
    /// Its audience is being expanded (and, locally, delivered).
    Running,
    /// Every recipient has been handed over for delivery.
    Expanded,
    /// Not run: the tick came later than the grace period allows.
    Missed,
    /// The audience could not be read (an unknown tag, the API refused).
    Failed,
}

/// One (campaign, scheduled time): the unit that runs exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Occurrence {
    /// The campaign.
    pub campaign_id: String,
    /// The time it was scheduled for (Unix seconds).
    pub scheduled_at: i64,
    /// When it was claimed.
    pub started_at: i64,
    /// Where it stands.
    pub state: OccurrenceState,
    /// Where the audience's next page starts (`None`: at the start, or
    /// expanded).
    pub cursor: Option<String>,
    /// Pages expanded so far.
    pub pages: u64,
    /// Recipients found so far.
    pub audience: u64,
    /// When the last recipient was handed over.
    pub expanded_at: Option<i64>,
    /// Why it failed or was missed.
    #[serde(default)]
    pub note: Option<String>,
}

impl Occurrence {
    /// The id deliveries are recorded under: `{campaign}@{scheduled_at}`.
    pub fn id(&self) -> String {
        occurrence_id(&self.campaign_id, self.scheduled_at)
    }

    /// A fresh occurrence of `campaign_id` at `scheduled_at`, claimed at
    /// `now`.
    pub fn start(campaign_id: &str, scheduled_at: i64, now: i64) -> Self {
        Self {
            campaign_id: campaign_id.to_owned(),
            scheduled_at,
            started_at: now,
            state: OccurrenceState::Running,
            cursor: None,
            pages: 0,
            audience: 0,
            expanded_at: None,
            note: None,
        }
    }
}

/// The id of occurrence (`campaign_id`, `scheduled_at`).
pub fn occurrence_id(campaign_id: &str, scheduled_at: i64) -> String {
    format!("{campaign_id}@{scheduled_at}")
}

/// What happened to one recipient of one occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outcome {
    /// Claimed, and WeChat is being called. Found after a crash, it means
    /// the send may or may not have happened: it is never sent again.
    Sending,
    /// WeChat accepted it.
    Sent,
    /// Not sent, for a reason that is the user's (outside the window,
    /// unsubscribed, a missing variable, blocked content).
    Skipped {
        /// `outside_window`, `missing:name`, `blocked`, ...
        reason: String,
    },
    /// WeChat refused it, or its answer was lost.
    Failed {
        /// WeChat's errcode as text, or `unknown` (answer lost),
        /// `interrupted` (the sender stopped mid-send).
        errcode: String,
    },
}

/// One recipient's record in an occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The recipient.
    pub openid: String,
    /// What happened.
    pub outcome: Outcome,
    /// When it was claimed or finished (Unix seconds).
    pub at: i64,
}

/// Campaigns, occurrences and per-recipient deliveries.
#[async_trait]
pub trait CampaignStore: Send + Sync {
    /// Stores a new campaign; `false` when its id is taken.
    async fn insert(&self, campaign: &Campaign) -> Result<bool, PortError>;
    /// Replaces the stored campaign when the stored version is
    /// `campaign.version - 1`; `false` when it changed meanwhile (or is
    /// gone).
    async fn replace(&self, campaign: &Campaign) -> Result<bool, PortError>;
    /// The campaign `id`.
    async fn get(&self, id: &str) -> Result<Option<Campaign>, PortError>;
    /// Every campaign, by id.
    async fn list(&self) -> Result<Vec<Campaign>, PortError>;
    /// Stores `occurrence` unless one with its (campaign, scheduled time)
    /// exists: `true` when this call claimed it.
    async fn claim_occurrence(&self, occurrence: &Occurrence) -> Result<bool, PortError>;
    /// Overwrites a claimed occurrence (progress).
    async fn save_occurrence(&self, occurrence: &Occurrence) -> Result<(), PortError>;
    /// The occurrence of `campaign_id` at `scheduled_at`.
    async fn occurrence(
        &self,
        campaign_id: &str,
        scheduled_at: i64,
    ) -> Result<Option<Occurrence>, PortError>;
    /// The occurrences of `campaign_id`, oldest first.
    async fn occurrences(&self, campaign_id: &str) -> Result<Vec<Occurrence>, PortError>;
    /// Claims the delivery of occurrence `occurrence_id` to `openid` by
    /// storing [`Outcome::Sending`] at `at`, unless a record exists:
    /// `None` when this call claimed it, else the existing record.
    async fn claim_delivery(
        &self,
        occurrence_id: &str,
        openid: &str,
        at: i64,
    ) -> Result<Option<Delivery>, PortError>;
    /// Records how a claimed delivery ended.
    async fn finish_delivery(
        &self,
        occurrence_id: &str,
        delivery: &Delivery,
    ) -> Result<(), PortError>;
    /// Removes a claim whose send certainly did not happen (WeChat busy),
    /// so that a retry can claim it again.
    async fn release_delivery(&self, occurrence_id: &str, openid: &str) -> Result<(), PortError>;
    /// Records that triggered campaign `campaign_id` fired for `openid` at
    /// `now`, unless it did so less than `cooldown_secs` before: `true`
    /// when this call recorded it. Of racing calls, one wins.
    async fn claim_cooldown(
        &self,
        campaign_id: &str,
        openid: &str,
        now: i64,
        cooldown_secs: i64,
    ) -> Result<bool, PortError>;
    /// Every delivery record of `occurrence_id`, by OpenID.
    async fn deliveries(&self, occurrence_id: &str) -> Result<Vec<Delivery>, PortError>;
}

/// The report of one occurrence: the contract of `wca campaign report`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OccurrenceReport {
    /// The scheduled time, RFC 3339 in UTC.
    pub scheduled_at: String,
    /// Where it stands (`running`, `expanded`, `missed`, `failed`).
    pub state: String,
    /// Recipients found.
    pub audience: u64,
    /// Messages WeChat accepted.
    pub sent: u64,
    /// Recipients not sent to, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Sends that failed, by errcode (`unknown`: the answer was lost;
    /// `interrupted`: the sender stopped mid-send).
    pub failed: BTreeMap<String, u64>,
    /// Recipients found but not finished yet (queued or being sent).
    pub pending: u64,
    /// From the claim to the last finished delivery, in seconds.
    pub duration_secs: Option<f64>,
    /// Why it failed or was missed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A campaign's report: every occurrence, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignReport {
    /// The campaign.
    pub id: String,
    /// Its occurrences.
    pub occurrences: Vec<OccurrenceReport>,
}

/// Sums the deliveries of `occurrence`. A claim still `Sending` counts as
/// `interrupted` once `interrupted_after` has passed since it was made
/// (the sender died mid-send), else as pending.
pub fn report_of(
    occurrence: &Occurrence,
    deliveries: &[Delivery],
    now: i64,
    interrupted_after: i64,
) -> OccurrenceReport {
    let mut report = OccurrenceReport {
        scheduled_at: jiff::Timestamp::from_second(occurrence.scheduled_at)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        state: serde_json::to_value(occurrence.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        audience: occurrence.audience,
        note: occurrence.note.clone(),
        ..OccurrenceReport::default()
    };
    let mut last = None::<i64>;
    for d in deliveries {
        match &d.outcome {
            // One call for the whole audience.
            Outcome::Sent if d.openid == MASS => report.sent += occurrence.audience,
            Outcome::Sent => report.sent += 1,
            Outcome::Skipped { reason } => *report.skipped.entry(reason.clone()).or_default() += 1,
            Outcome::Failed { errcode } => *report.failed.entry(errcode.clone()).or_default() += 1,
            Outcome::Sending if now - d.at >= interrupted_after => {
                *report.failed.entry("interrupted".to_owned()).or_default() += 1;
            }
            Outcome::Sending => report.pending += 1,
        }
        if !matches!(d.outcome, Outcome::Sending) {
            last = Some(last.map_or(d.at, |l| l.max(d.at)));
        }
    }
    if !deliveries.iter().any(|d| d.openid == MASS) {
        let recorded = u64::try_from(deliveries.len()).unwrap_or(u64::MAX);
        report.pending += occurrence.audience.saturating_sub(recorded);
        // A triggered campaign's day gains recipients as users write.
        report.audience = report.audience.max(recorded);
    }
    #[allow(clippy::cast_precision_loss)]
    if let Some(last) = last {
        report.duration_secs = Some((last - occurrence.started_at).max(0) as f64);
    }
    report
}

/// The admin side: create, change and run campaigns, and the one-minute
/// tick that claims what is due.
pub struct Campaigns {
    store: Arc<dyn CampaignStore>,
    clock: Arc<dyn Clock>,
    screen: Option<Arc<dyn OutboundScreen>>,
    approval: Option<Approval>,
    /// Whether segments can be read here (a profile directory exists).
    segments: bool,
    /// A claim still `Sending` this long reads as `interrupted`.
    interrupted_after: i64,
}

/// When a campaign needs a second admin (双人复核).
pub struct Approval {
    /// More recipients than this need approval (every follower always
    /// does).
    pub above: u64,
    /// Counts an audience at creation (a tag's count from WeChat, a
    /// segment's matches); a count that cannot be made needs approval.
    pub audiences: Arc<Audiences>,
}

/// Most missed occurrences recorded by one tick for one campaign; the
/// schedule then jumps to the next time after the downtime.
const MISSED_PER_TICK: usize = 50;

impl Campaigns {
    /// Campaigns kept in `store`, their content screened by `screen`.
    pub fn new(
        store: Arc<dyn CampaignStore>,
        clock: Arc<dyn Clock>,
        screen: Option<Arc<dyn OutboundScreen>>,
    ) -> Self {
        Self {
            store,
            clock,
            screen,
            approval: None,
            segments: true,
            interrupted_after: INTERRUPTED_AFTER_SECS,
        }
    }

    /// Refuses segment audiences at creation when `readable` is false (no
    /// profile directory to read them from), instead of failing at run
    /// time.
    #[must_use]
    pub fn with_segments(mut self, readable: bool) -> Self {
        self.segments = readable;
        self
    }

    /// Reports a claim still `Sending` after `secs` as `interrupted` (the
    /// deliver workers' setting; default [`INTERRUPTED_AFTER_SECS`]).
    #[must_use]
    pub fn with_interrupted_after(mut self, secs: i64) -> Self {
        self.interrupted_after = secs.max(0);
        self
    }

    /// Campaigns to every follower, or to more than `approval.above`
    /// users, wait for a second admin's approval before they fire.
    pub fn with_approval(mut self, approval: Approval) -> Self {
        self.approval = Some(approval);
        self
    }

    /// Why `campaign` needs approval, or `None`.
    async fn needs_approval(&self, campaign: &Campaign) -> Option<String> {
        let approval = self.approval.as_ref()?;
        // One user at a time, the one who just wrote.
        if matches!(campaign.schedule, Schedule::Trigger { .. }) {
            return None;
        }
        if campaign.audience == Audience::All {
            return Some("it goes to every follower".to_owned());
        }
        match approval
            .audiences
            .estimate(&campaign.audience, self.clock.now())
            .await
        {
            Ok(n) if n > approval.above => Some(format!(
                "it goes to about {n} users, more than {}",
                approval.above
            )),
            Ok(_) => None,
            Err(e) => Some(format!("its audience could not be counted ({e})")),
        }
    }

    /// Approves campaign `id` as admin `by`, who must not be its creator.
    pub async fn approve(&self, id: &str, by: &str) -> Result<Campaign, CampaignError> {
        let now = self.clock.now();
        self.update(id, by, "approved", |c| {
            if c.status != Status::PendingApproval {
                return Err(invalid(
                    "status",
                    "the campaign is not waiting for approval",
                ));
            }
            if c.created_by == by {
                return Err(invalid(
                    "approver",
                    "a second admin must approve a campaign: its creator cannot",
                ));
            }
            c.reactivate(now);
            Ok(())
        })
        .await
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn CampaignStore> {
        &self.store
    }

    /// Checks and stores a new campaign created by admin `by`.
    pub async fn create(&self, new: NewCampaign, by: &str) -> Result<Campaign, CampaignError> {
        let now = self.clock.now();
        for _ in 0..5 {
            let mut campaign = new
                .clone()
                .build(new_id(now), by, now, self.screen.as_deref())?;
            if !self.segments && matches!(campaign.audience, Audience::Segment(_)) {
                return Err(invalid(
                    "audience",
                    "segments are read from the shop's users file, and this deployment has none: use tag:NAME or all",
                ));
            }
            if let Some(why) = self.needs_approval(&campaign).await {
                campaign.status = Status::PendingApproval;
                campaign.approval = Some(why);
            }
            if self.store.insert(&campaign).await? {
                return Ok(campaign);
            }
        }
        Err(CampaignError::Store(StoreFailure(
            "could not find a free campaign id".to_owned(),
        )))
    }

    /// The campaign `id`.
    pub async fn get(&self, id: &str) -> Result<Campaign, CampaignError> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| CampaignError::NotFound(id.to_owned()))
    }

    /// Changes campaign `id` with `change`, retrying when another writer
    /// got there first.
    async fn update(
        &self,
        id: &str,
        by: &str,
        action: &str,
        change: impl Fn(&mut Campaign) -> Result<(), CampaignError>,
    ) -> Result<Campaign, CampaignError> {
        for _ in 0..10 {
            let mut campaign = self.get(id).await?;
            change(&mut campaign)?;
            campaign.version += 1;
            campaign.audit.push(AuditEntry {
                at: self.clock.now(),
                by: by.to_owned(),
                action: action.to_owned(),
            });
            if self.store.replace(&campaign).await? {
                return Ok(campaign);
            }
        }
        Err(CampaignError::Store(StoreFailure(format!(
            "campaign {id} keeps changing; try again"
        ))))
    }

    /// Stops campaign `id` from firing (a run in progress stops between
    /// pages).
    pub async fn pause(&self, id: &str, by: &str) -> Result<Campaign, CampaignError> {
        self.update(id, by, "paused", |c| {
            if c.status == Status::Active {
                c.status = Status::Paused;
            }
            Ok(())
        })
        .await
    }

    /// Lets campaign `id` fire again. Occurrences that fell due while it
    /// was paused are not run: it fires next at its next time after now.
    pub async fn resume(&self, id: &str, by: &str) -> Result<Campaign, CampaignError> {
        let now = self.clock.now();
        self.update(id, by, "resumed", |c| {
            if c.status == Status::Paused {
                c.reactivate(now);
            }
            Ok(())
        })
        .await
    }

    /// Starts an occurrence of campaign `id` now, outside its schedule.
    pub async fn run_now(&self, id: &str, by: &str) -> Result<Occurrence, CampaignError> {
        let campaign = self
            .update(id, by, "run_now", |c| match c.status {
                Status::Paused => Err(invalid("status", "the campaign is paused; resume it first")),
                Status::PendingApproval => Err(invalid(
                    "status",
                    "the campaign waits for a second admin's approval",
                )),
                _ if matches!(c.schedule, Schedule::Trigger { .. }) => Err(invalid(
                    "schedule",
                    "a triggered campaign fires on users' messages, not on request",
                )),
                _ => Ok(()),
            })
            .await?;
        let mut now = self.clock.now();
        loop {
            let occurrence = Occurrence::start(&campaign.id, now, now);
            if self.store.claim_occurrence(&occurrence).await? {
                return Ok(occurrence);
            }
            // Two runs in the same second: the next second is its own.
            now += 1;
        }
    }

    /// One tick at `now`: claims every due occurrence (recording those
    /// later than their grace period as missed) and moves each campaign
    /// to its next time. Returns the occurrences this call claimed, to
    /// be run. Ticks may overlap or repeat: each occurrence is claimed
    /// once.
    pub async fn tick(&self, now: i64) -> Result<Vec<Occurrence>, PortError> {
        let mut started = Vec::new();
        for campaign in self.store.list().await? {
            if campaign.status != Status::Active {
                continue;
            }
            let Some(mut due) = campaign.next_fire else {
                continue;
            };
            if due > now {
                continue;
            }
            let mut missed = 0;
            let mut next = Some(due);
            while let Some(at) = next.filter(|at| *at <= now) {
                due = at;
                if now - at > campaign.grace_secs {
                    let mut occurrence = Occurrence::start(&campaign.id, at, now);
                    occurrence.state = OccurrenceState::Missed;
                    occurrence.note = Some(format!(
                        "the tick came {} s late, more than the grace period of {} s",
                        now - at,
                        campaign.grace_secs
                    ));
                    self.store.claim_occurrence(&occurrence).await?;
                    missed += 1;
                    next = if missed >= MISSED_PER_TICK {
                        campaign.fire_after(now - campaign.grace_secs - 1)
                    } else {
                        campaign.fire_after(at)
                    };
                } else {
                    let occurrence = Occurrence::start(&campaign.id, at, now);
                    if self.store.claim_occurrence(&occurrence).await? {
                        started.push(occurrence);
                    }
                    next = campaign.fire_after(at);
                }
            }
            let _ = due;
            let mut moved = campaign.clone();
            moved.next_fire = next;
            if next.is_none() {
                moved.status = Status::Finished;
            }
            moved.version += 1;
            // Another tick that moved it first moved it to the same place.
            self.store.replace(&moved).await?;
        }
        Ok(started)
    }

    /// Occurrences still running (claimed, audience not fully handed
    /// over): what a restarted runner resumes.
    pub async fn unfinished(&self) -> Result<Vec<(Campaign, Occurrence)>, PortError> {
        let mut open = Vec::new();
        for campaign in self.store.list().await? {
            for occurrence in self.store.occurrences(&campaign.id).await? {
                if occurrence.state == OccurrenceState::Running {
                    open.push((campaign.clone(), occurrence));
                }
            }
        }
        Ok(open)
    }

    /// Records every delivery still `Sending` that was claimed before
    /// `before` as failed with `interrupted`: for a process that owns its
    /// store alone (`wca serve`) and starts at `before`, such a claim was
    /// cut off by the last process's end. It is never sent again: WeChat
    /// may have it. Returns how many.
    pub async fn settle_interrupted(&self, before: i64) -> Result<u64, PortError> {
        let mut settled = 0;
        for campaign in self.store.list().await? {
            for occurrence in self.store.occurrences(&campaign.id).await? {
                let id = occurrence.id();
                for d in self.store.deliveries(&id).await? {
                    if d.outcome == Outcome::Sending && d.at < before {
                        let failed = Delivery {
                            outcome: Outcome::Failed {
                                errcode: "interrupted".to_owned(),
                            },
                            ..d
                        };
                        tracing::warn!(occurrence = %id, "a campaign send was cut off by the last stop; not sent again");
                        self.store.finish_delivery(&id, &failed).await?;
                        settled += 1;
                    }
                }
            }
        }
        Ok(settled)
    }

    /// The report of campaign `id`.
    pub async fn report(&self, id: &str) -> Result<CampaignReport, CampaignError> {
        let campaign = self.get(id).await?;
        let now = self.clock.now();
        let mut occurrences = Vec::new();
        for occurrence in self.store.occurrences(&campaign.id).await? {
            let deliveries = self.store.deliveries(&occurrence.id()).await?;
            occurrences.push(report_of(
                &occurrence,
                &deliveries,
                now,
                self.interrupted_after,
            ));
        }
        Ok(CampaignReport {
            id: campaign.id,
            occurrences,
        })
    }
}

/// A claim older than this that is still `Sending` was cut off by a crash.
pub const INTERRUPTED_AFTER_SECS: i64 = 120;

fn new_id(now: i64) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now);
    format!("c{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// One page of an audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Recipients on this page.
    pub openids: Vec<String>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

/// Why an audience could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    /// The audience names something that does not exist (an unknown
    /// tag), or needs a source that is not configured: retrying will not
    /// help.
    #[error("{0}")]
    Unusable(String),
    /// WeChat or the store failed; a later try may work.
    #[error("{0}")]
    Unavailable(String),
}

impl From<ApiError> for AudienceError {
    fn from(e: ApiError) -> Self {
        match e.failure() {
            Failure::Retry | Failure::RefreshToken | Failure::Unknown => {
                AudienceError::Unavailable(e.to_string())
            }
            _ => AudienceError::Unusable(e.to_string()),
        }
    }
}

impl From<PortError> for AudienceError {
    fn from(e: PortError) -> Self {
        AudienceError::Unavailable(e.to_string())
    }
}

/// Our own profiles, listed page by page (a segment's source).
#[async_trait]
pub trait ProfileDirectory: Send + Sync {
    /// Up to `limit` profiles after OpenID `after` (from the start when
    /// `None`), in OpenID order.
    async fn profiles_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Profile>, PortError>;
}

/// Reads audiences page by page: tags and all followers from WeChat,
/// segments from our own profiles.
pub struct Audiences {
    /// The WeChat API (tags, followers).
    pub api: Option<Arc<dyn WeChatApi>>,
    /// Our profiles (segments).
    pub profiles: Option<Arc<dyn ProfileDirectory>>,
    /// Last interactions (`active<Nh`).
    pub contacts: Option<Arc<dyn ContactWindows>>,
    /// Profiles read per segment page.
    pub segment_page: usize,
}

impl Audiences {
    /// How many users `audience` holds now: a tag's count from WeChat, a
    /// segment's matches (read through), every follower's count is not
    /// asked (they always need approval).
    pub async fn estimate(&self, audience: &Audience, now: i64) -> Result<u64, AudienceError> {
        match audience {
            Audience::Tag(name) => {
                let api = self.api.as_ref().ok_or_else(|| {
                    AudienceError::Unusable("the WeChat API is not configured".to_owned())
                })?;
                let tags = api.tags().await?;
                Ok(tags.iter().find(|t| t.name == *name).map_or(0, |t| t.count))
            }
            Audience::All => Err(AudienceError::Unusable(
                "every follower is not counted".to_owned(),
            )),
            Audience::Segment(_) => {
                let mut n = 0u64;
                let mut cursor: Option<String> = None;
                loop {
                    let page = self.page(audience, cursor.as_deref(), now).await?;
                    n += u64::try_from(page.openids.len()).unwrap_or(u64::MAX);
                    match page.next {
                        Some(next) => cursor = Some(next),
                        None => return Ok(n),
                    }
                }
            }
        }
    }

    /// The page of `audience` that starts at `cursor`.
    pub async fn page(
        &self,
        audience: &Audience,
        cursor: Option<&str>,
        now: i64,
    ) -> Result<Page, AudienceError> {
        let api = || {
            self.api.as_ref().ok_or_else(|| {
                AudienceError::Unusable(
                    "tags and all followers are read from the WeChat API: set WECHAT_APP_SECRET"
                        .to_owned(),
                )
            })
        };
        match audience {
            Audience::Tag(name) => {
                let api = api()?;
                let tag = api
                    .tags()
                    .await?
                    .into_iter()
                    .find(|t| t.name == *name)
                    .ok_or_else(|| {
                        AudienceError::Unusable(format!("WeChat has no tag named {name:?}"))
                    })?;
                let page = api.tag_members(tag.id, cursor).await?;
                Ok(Page {
                    openids: page.openids,
                    next: page.next_openid,
                })
            }
            Audience::All => {
                let page = api()?.followers(cursor).await?;
                Ok(Page {
                    openids: page.openids,
                    next: page.next_openid,
                })
            }
            Audience::Segment(segment) => {
                let profiles = self.profiles.as_ref().ok_or_else(|| {
                    AudienceError::Unusable(
                        "segments are read from the shop's profiles, and none are configured"
                            .to_owned(),
                    )
                })?;
                let limit = self.segment_page.max(1);
                let batch = profiles.profiles_after(cursor, limit).await?;
                let next = (batch.len() == limit)
                    .then(|| batch.last().map(|p| p.openid.as_str().to_owned()))
                    .flatten();
                let mut openids = Vec::new();
                for profile in &batch {
                    let last = match (segment.needs_activity(), &self.contacts) {
                        (true, Some(contacts)) => contacts
                            .get(profile.openid.as_str())
                            .await?
                            .map(|w| w.last_interaction),
                        _ => None,
                    };
                    if segment.matches(profile, last, now) {
                        openids.push(profile.openid.as_str().to_owned());
                    }
                }
                Ok(Page { openids, next })
            }
        }
    }
}

/// What [`Deliverer::deliver`] did with one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Finished now with this outcome.
    Done(Outcome),
    /// A record existed (a redelivery or a restart): nothing was sent.
    AlreadyRecorded(Delivery),
}

/// Why a recipient could not be handled now; the claim was given back
/// (nothing was sent) and a later try may work.
#[derive(Debug, thiserror::Error)]
#[error("not sent now ({why}); try again in {} s", retry_in.as_secs())]
pub struct NotNow {
    /// What stopped it.
    pub why: String,
    /// When to try again.
    pub retry_in: Duration,
}

/// Renders, screens and sends one recipient's message, exactly once per
/// occurrence: the delivery is claimed before WeChat is called.
pub struct Deliverer {
    /// Campaigns and their deliveries.
    pub store: Arc<dyn CampaignStore>,
    /// Customer-service sends (window, budget, rate limit, breaker);
    /// `None` when the WeChat API is not configured (sends wait).
    pub outbound: Option<Arc<Outbound>>,
    /// Template sends.
    pub api: Option<Arc<dyn WeChatApi>>,
    /// Variables come from these profiles.
    pub profiles: Option<Arc<dyn ProfileStore>>,
    /// The sensitive-word filter, applied after rendering.
    pub screen: Option<Arc<dyn OutboundScreen>>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// Deliveries running at once, each ending with its recipient.
pub(crate) type Deliveries = tokio::task::JoinSet<(String, Result<Delivered, NotNow>)>;

impl Deliverer {
    /// Starts delivering to `openid` on `tasks` once `limit` allows it and
    /// one of `permits` is free (the permit is held until it ends).
    pub(crate) async fn spawn_paced(
        self: &Arc<Self>,
        tasks: &mut Deliveries,
        limit: Option<&RateLimit>,
        permits: &Arc<tokio::sync::Semaphore>,
        campaign: &Arc<Campaign>,
        occurrence_id: &str,
        openid: String,
    ) -> Result<(), PortError> {
        if let Some(limit) = limit {
            let wait = limit.delay(tokio::time::Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| PortError::Unavailable(e.to_string()))?;
        let (deliverer, campaign, occurrence_id) =
            (self.clone(), campaign.clone(), occurrence_id.to_owned());
        tasks.spawn(async move {
            let result = deliverer.deliver(&campaign, &occurrence_id, &openid).await;
            drop(permit);
            (openid, result)
        });
        Ok(())
    }

    /// Delivers occurrence `occurrence_id` of `campaign` to `openid`.
    pub async fn deliver(
        &self,
        campaign: &Campaign,
        occurrence_id: &str,
        openid: &str,
    ) -> Result<Delivered, NotNow> {
        let store_down = |e: PortError| NotNow {
            why: e.to_string(),
            retry_in: Duration::from_secs(5),
        };
        let now = self.clock.now();
        if let Some(existing) = self
            .store
            .claim_delivery(occurrence_id, openid, now)
            .await
            .map_err(store_down)?
        {
            return Ok(Delivered::AlreadyRecorded(existing));
        }
        match self.attempt(campaign, occurrence_id, openid).await {
            Ok(outcome) => {
                let delivery = Delivery {
                    openid: openid.to_owned(),
                    outcome: outcome.clone(),
                    at: self.clock.now(),
                };
                // Sent is sent: if this write fails the claim stays
                // `Sending`, which is never sent again either.
                if let Err(e) = self.store.finish_delivery(occurrence_id, &delivery).await {
                    tracing::error!(occurrence_id, error = %e, "a campaign delivery's outcome could not be recorded");
                }
                Ok(Delivered::Done(outcome))
            }
            Err(not_now) => {
                self.store
                    .release_delivery(occurrence_id, openid)
                    .await
                    .map_err(store_down)?;
                Err(not_now)
            }
        }
    }

    async fn attempt(
        &self,
        campaign: &Campaign,
        occurrence_id: &str,
        openid: &str,
    ) -> Result<Outcome, NotNow> {
        let skipped = |reason: String| Ok(Outcome::Skipped { reason });
        let template = match campaign.template() {
            Ok(t) => t,
            Err(e) => return skipped(format!("bad_template: {e}")),
        };
        // The OpenID is known without a lookup.
        let needs_profile = template.variables().iter().any(|v| *v != "openid");
        let profile = match (&self.profiles, OpenId::parse(openid)) {
            (Some(profiles), Ok(id)) if needs_profile => {
                profiles.profile(&id).await.map_err(|e| NotNow {
                    why: e.to_string(),
                    retry_in: Duration::from_secs(5),
                })?
            }
            _ => None,
        };
        let values = variables_of(openid, profile.as_ref());
        let text = match template.render(&values, &campaign.defaults) {
            Ok(t) => t,
            Err(var) => return skipped(format!("missing:{var}")),
        };
        let reference = format!("campaign:{occurrence_id}");
        let result = match campaign.channel {
            Channel::Custom => {
                let Some(outbound) = &self.outbound else {
                    return Err(NotNow {
                        why: "customer-service messages need the WeChat API (WECHAT_APP_SECRET)"
                            .to_owned(),
                        retry_in: Duration::from_secs(300),
                    });
                };
                outbound
                    .send_custom(openid, &CustomMessage::Text { content: text }, &reference)
                    .await
            }
            Channel::Template => {
                if let Some(screen) = &self.screen
                    && let Some(verdict) = screen.screen(&text)
                    && verdict.action != "flag"
                {
                    // A template's fields cannot be masked in place.
                    return skipped("blocked".to_owned());
                }
                let Some(api) = &self.api else {
                    return Err(NotNow {
                        why: "template messages need the WeChat API (WECHAT_APP_SECRET)".to_owned(),
                        retry_in: Duration::from_secs(300),
                    });
                };
                let msg = crate::outbound::TemplateMessage {
                    openid: openid.to_owned(),
                    template_id: campaign.template_id.clone().unwrap_or_default(),
                    url: None,
                    data: BTreeMap::from([("content".to_owned(), text)]),
                };
                api.send_template(&msg).await.map(|_| ())
            }
            Channel::Mass => return skipped("mass_send_is_per_tag".to_owned()),
            Channel::Tag => {
                let Some(api) = &self.api else {
                    return Err(NotNow {
                        why: "tagging needs the WeChat API (WECHAT_APP_SECRET)".to_owned(),
                        retry_in: Duration::from_secs(300),
                    });
                };
                let name = text.trim();
                match api.tags().await {
                    Ok(tags) => match tags.into_iter().find(|t| t.name == name) {
                        Some(tag) => api.tag_users(tag.id, &[openid.to_owned()]).await,
                        // Tags are made in the WeChat console (or by
                        // WeChat's API), not by a campaign.
                        None => return skipped(format!("no_such_tag:{name}")),
                    },
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(()) => Ok(Outcome::Sent),
            Err(e) => match e.failure() {
                Failure::Retry | Failure::Config | Failure::RefreshToken => Err(NotNow {
                    retry_in: match &e {
                        ApiError::Refused(Refusal::CircuitOpen { retry_in }) => *retry_in,
                        _ if e.failure() == Failure::Config => Duration::from_secs(300),
                        _ => Duration::from_secs(5),
                    },
                    why: e.to_string(),
                }),
                Failure::Recipient => match &e {
                    ApiError::Refused(r) => skipped(r.as_str().to_owned()),
                    _ => skipped(format!("errcode:{}", e.code())),
                },
                Failure::Rejected => match &e {
                    ApiError::Refused(r) => skipped(r.as_str().to_owned()),
                    _ => Ok(Outcome::Failed {
                        errcode: e.code().to_string(),
                    }),
                },
                Failure::Unknown => Ok(Outcome::Failed {
                    errcode: "unknown".to_owned(),
                }),
            },
        }
    }
}

/// How a [`Runner::run`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Every recipient was handled (or the occurrence is not running).
    Finished,
    /// The campaign was paused: the run stopped between pages.
    Paused,
    /// Quiet hours began: the run waits for them to end.
    Quiet,
    /// The audience source is unavailable for now; a later pass resumes.
    Waiting(String),
    /// The runner was asked to stop.
    Stopped,
}

/// Runs occurrences: expands the audience page by page and hands each
/// page over before moving the cursor past it, so a restart resumes at the
/// first page not fully handed over (recipients of that page already
/// recorded are not sent again). In one process (`wca serve`) a page is
/// delivered right here; with a [`queue`](Runner::queue) (the AWS stack)
/// it is queued in batches for the `deliver` function.
pub struct Runner {
    /// Campaign data.
    pub store: Arc<dyn CampaignStore>,
    /// Audience pages.
    pub audiences: Arc<Audiences>,
    /// Sends (and the clock).
    pub deliverer: Arc<Deliverer>,
    /// Where pages go when delivery happens elsewhere.
    pub queue: Option<Arc<dyn DeliveryQueue>>,
    /// Recipients in flight at once.
    pub concurrency: usize,
    /// Set to stop between sends.
    pub stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Runner {
    fn stopping(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs `occurrence` of campaign `campaign_id` until it is expanded
    /// and delivered, paused, quiet, or stopped.
    pub async fn run(&self, campaign_id: &str, scheduled_at: i64) -> Result<RunEnd, PortError> {
        let clock = self.deliverer.clock.clone();
        loop {
            let Some(campaign) = self.store.get(campaign_id).await? else {
                return Ok(RunEnd::Finished);
            };
            let Some(mut occurrence) = self.store.occurrence(campaign_id, scheduled_at).await?
            else {
                return Ok(RunEnd::Finished);
            };
            if occurrence.state != OccurrenceState::Running {
                return Ok(RunEnd::Finished);
            }
            if self.stopping() {
                return Ok(RunEnd::Stopped);
            }
            if matches!(campaign.status, Status::Paused | Status::PendingApproval) {
                return Ok(RunEnd::Paused);
            }
            let now = clock.now();
            if campaign.is_quiet(now) {
                return Ok(RunEnd::Quiet);
            }
            if campaign.channel == Channel::Mass {
                return self.mass_send(&campaign, occurrence).await;
            }
            let page = match self
                .audiences
                .page(&campaign.audience, occurrence.cursor.as_deref(), now)
                .await
            {
                Ok(page) => page,
                Err(AudienceError::Unavailable(why)) => return Ok(RunEnd::Waiting(why)),
                Err(AudienceError::Unusable(why)) => {
                    occurrence.state = OccurrenceState::Failed;
                    occurrence.note = Some(why);
                    self.store.save_occurrence(&occurrence).await?;
                    return Ok(RunEnd::Finished);
                }
            };
            // Saved once the page is done: a page read again after a stop
            // is not counted twice.
            let mut progress = occurrence.clone();
            progress.audience += u64::try_from(page.openids.len()).unwrap_or(u64::MAX);
            progress.pages += 1;
            let delivered = match &self.queue {
                Some(queue) => {
                    let batches = batches_of(&campaign.id, scheduled_at, page.openids);
                    queue.enqueue(&batches, Duration::ZERO).await?;
                    None
                }
                None => {
                    self.deliver_page(&campaign, &occurrence.id(), page.openids)
                        .await?
                }
            };
            if let Some(end) = delivered {
                return Ok(end);
            }
            progress.cursor = page.next.clone();
            if page.next.is_none() {
                progress.state = OccurrenceState::Expanded;
                progress.expanded_at = Some(clock.now());
            }
            self.store.save_occurrence(&progress).await?;
        }
    }

    /// Delivers one page; `Some(end)` when the run must stop before the
    /// page is done.
    async fn deliver_page(
        &self,
        campaign: &Campaign,
        occurrence_id: &str,
        mut openids: Vec<String>,
    ) -> Result<Option<RunEnd>, PortError> {
        let limit = campaign.rate_per_sec.map(|r| RateLimit::new(r, 1));
        let permits = Arc::new(tokio::sync::Semaphore::new(self.concurrency.max(1)));
        let campaign = Arc::new(campaign.clone());
        while !openids.is_empty() {
            let mut tasks = tokio::task::JoinSet::new();
            for openid in std::mem::take(&mut openids) {
                if self.stopping() {
                    break;
                }
                self.deliverer
                    .spawn_paced(
                        &mut tasks,
                        limit.as_ref(),
                        &permits,
                        &campaign,
                        occurrence_id,
                        openid,
                    )
                    .await?;
            }
            let mut wait = Duration::ZERO;
            let mut why = None;
            while let Some(joined) = tasks.join_next().await {
                let Ok((openid, result)) = joined else {
                    continue;
                };
                if let Err(not_now) = result {
                    wait = wait.max(not_now.retry_in);
                    why = Some(not_now.why);
                    openids.push(openid);
                }
            }
            if let Some(why) = why {
                tracing::info!(
                    occurrence_id,
                    waiting = openids.len(),
                    why,
                    "campaign recipients wait"
                );
            }
            if self.stopping() {
                return Ok(Some(RunEnd::Stopped));
            }
            if !openids.is_empty() {
                tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
                match self.store.get(&campaign.id).await? {
                    Some(c) if c.status == Status::Paused => return Ok(Some(RunEnd::Paused)),
                    _ => {}
                }
            }
        }
        Ok(None)
    }

    /// A mass send: one call for the whole tag (or all followers), with
    /// the occurrence's id as WeChat's `clientmsgid`, so a retried call is
    /// refused by WeChat rather than delivered twice.
    async fn mass_send(
        &self,
        campaign: &Campaign,
        mut occurrence: Occurrence,
    ) -> Result<RunEnd, PortError> {
        let Some(api) = &self.audiences.api else {
            occurrence.state = OccurrenceState::Failed;
            occurrence.note = Some("mass sends need the WeChat API: set WECHAT_APP_SECRET".into());
            self.store.save_occurrence(&occurrence).await?;
            return Ok(RunEnd::Finished);
        };
        let (tag_id, audience) = match &campaign.audience {
            Audience::Tag(name) => match api.tags().await {
                Ok(tags) => match tags.into_iter().find(|t| t.name == *name) {
                    Some(tag) => (Some(tag.id), tag.count),
                    None => {
                        occurrence.state = OccurrenceState::Failed;
                        occurrence.note = Some(format!("WeChat has no tag named {name:?}"));
                        self.store.save_occurrence(&occurrence).await?;
                        return Ok(RunEnd::Finished);
                    }
                },
                Err(e) => return Ok(RunEnd::Waiting(e.to_string())),
            },
            _ => (None, 0),
        };
        let id = occurrence.id();
        let clock = &self.deliverer.clock;
        if let Some(existing) = self.store.claim_delivery(&id, MASS, clock.now()).await? {
            tracing::warn!(occurrence_id = %id, outcome = ?existing.outcome, "a mass send was already made for this occurrence; not sent again");
        } else {
            let text = campaign.template().map(|t| t.literal()).unwrap_or_default();
            let outcome = match api.mass_send_text(tag_id, &text, &id).await {
                Ok(_) => Outcome::Sent,
                // WeChat has this clientmsgid from an earlier attempt
                // whose answer we lost: that attempt went out.
                Err(e) if e.code() == 45065 => Outcome::Sent,
                Err(e) if matches!(e.failure(), Failure::Retry | Failure::RefreshToken) => {
                    self.store.release_delivery(&id, MASS).await?;
                    return Ok(RunEnd::Waiting(e.to_string()));
                }
                Err(e) if e.failure() == Failure::Unknown => Outcome::Failed {
                    errcode: "unknown".to_owned(),
                },
                Err(e) => Outcome::Failed {
                    errcode: e.code().to_string(),
                },
            };
            let delivery = Delivery {
                openid: MASS.to_owned(),
                outcome,
                at: clock.now(),
            };
            self.store.finish_delivery(&id, &delivery).await?;
        }
        occurrence.audience = audience;
        occurrence.pages = 1;
        occurrence.state = OccurrenceState::Expanded;
        occurrence.expanded_at = Some(clock.now());
        self.store.save_occurrence(&occurrence).await?;
        Ok(RunEnd::Finished)
    }
}

/// The delivery record of a mass send (one for the whole occurrence).
pub const MASS: &str = "*mass*";

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>()
            .expect("instant")
            .as_second()
    }

    fn cron(expr: &str, tz: &str) -> Schedule {
        Schedule::Cron {
            cron: expr.to_owned(),
            tz: tz.to_owned(),
        }
    }

    #[test]
    fn monday_nine_in_shanghai_is_monday_one_in_utc() {
        let schedule = cron("0 9 * * 1", "Asia/Shanghai");
        // 2026-11-27 is a Friday.
        let next = schedule.next_after(at("2026-11-27T12:00:00Z"));
        assert_eq!(next, Some(at("2026-11-30T01:00:00Z")));
        let after = schedule.next_after(at("2026-11-30T01:00:00Z"));
        assert_eq!(after, Some(at("2026-12-07T01:00:00Z")), "weekly, not twice");
    }

    #[test]
    fn nine_in_new_york_follows_daylight_saving_both_ways() {
        let schedule = cron("0 9 * * *", "America/New_York");
        // EST (UTC-5) until 2026-03-08 02:00, then EDT (UTC-4).
        let mut t = at("2026-03-06T12:00:00Z");
        let mut fired = Vec::new();
        for _ in 0..4 {
            t = schedule.next_after(t).expect("fires");
            fired.push(t);
        }
        assert_eq!(
            fired,
            vec![
                at("2026-03-06T14:00:00Z"),
                at("2026-03-07T14:00:00Z"),
                at("2026-03-08T13:00:00Z"),
                at("2026-03-09T13:00:00Z"),
            ]
        );
        // Back to EST on 2026-11-01 02:00.
        let mut t = at("2026-10-30T12:00:00Z");
        let mut fired = Vec::new();
        for _ in 0..4 {
            t = schedule.next_after(t).expect("fires");
            fired.push(t);
        }
        assert_eq!(
            fired,
            vec![
                at("2026-10-30T13:00:00Z"),
                at("2026-10-31T13:00:00Z"),
                at("2026-11-01T14:00:00Z"),
                at("2026-11-02T14:00:00Z"),
            ]
        );
    }

    #[test]
    fn a_time_the_clocks_skip_fires_once_after_the_change_and_a_repeated_time_fires_once() {
        // 02:30 does not exist in New York on 2026-03-08.
        let skipped = cron("30 2 * * *", "America/New_York");
        let t = skipped
            .next_after(at("2026-03-07T12:00:00Z"))
            .expect("fires");
        let t2 = skipped.next_after(t).expect("fires");
        assert_eq!(
            t,
            at("2026-03-08T07:00:00Z"),
            "03:00 EDT, right after the jump"
        );
        assert_eq!(t2, at("2026-03-09T06:30:00Z"));
        // 01:30 happens twice on 2026-11-01: fired once, the first time.
        let repeated = cron("30 1 * * *", "America/New_York");
        let t = repeated
            .next_after(at("2026-10-31T12:00:00Z"))
            .expect("fires");
        let t2 = repeated.next_after(t).expect("fires");
        assert_eq!(t, at("2026-11-01T05:30:00Z"), "01:30 EDT");
        assert_eq!(t2, at("2026-11-02T06:30:00Z"), "not again at 01:30 EST");
    }

    #[test]
    fn a_cron_with_seconds_or_a_made_up_zone_is_refused_with_the_field_named() {
        let e = cron("0 0 9 * * 1", "Asia/Shanghai")
            .check()
            .expect_err("refused");
        assert!(
            matches!(e, CampaignError::Invalid { field: "cron", .. }),
            "{e}"
        );
        let e = cron("0 9 * * 1", "Asia/Beijing")
            .check()
            .expect_err("refused");
        assert!(
            matches!(e, CampaignError::Invalid { field: "tz", .. }),
            "{e}"
        );
        assert!(e.to_string().contains("Asia/Beijing"));
    }

    #[test]
    fn a_template_fills_profile_values_then_defaults_and_names_what_is_missing() {
        let t: Template = "{{name}}，您好！VIP{{vip_level}} 会员日"
            .parse()
            .expect("parses");
        assert_eq!(t.variables(), vec!["name", "vip_level"]);
        let mut values = BTreeMap::new();
        values.insert("name".to_owned(), "陈静".to_owned());
        values.insert("vip_level".to_owned(), "3".to_owned());
        assert_eq!(
            t.render(&values, &BTreeMap::new()),
            Ok("陈静，您好！VIP3 会员日".to_owned())
        );
        values.remove("name");
        assert_eq!(t.render(&values, &BTreeMap::new()), Err("name".to_owned()));
        let defaults = BTreeMap::from([("name".to_owned(), "亲".to_owned())]);
        assert_eq!(
            t.render(&values, &defaults),
            Ok("亲，您好！VIP3 会员日".to_owned())
        );
    }

    #[test]
    fn an_unknown_or_unclosed_variable_is_refused_at_parse() {
        let e = "{{nickname}} 你好"
            .parse::<Template>()
            .expect_err("refused");
        assert!(e.to_string().contains("nickname"), "{e}");
        assert!(
            e.to_string().contains("last_order_id"),
            "lists the known ones: {e}"
        );
        assert!("{{name 你好".parse::<Template>().is_err());
    }

    #[test]
    fn audiences_read_and_print_the_same_text() {
        for text in [
            "tag:VIP",
            "all",
            "segment:vip>=2,tag=复购,active<48h",
            "segment:tag!=新客",
        ] {
            let a: Audience = text.parse().expect(text);
            assert_eq!(a.to_string(), text);
        }
        for bad in [
            "tag:",
            "vip",
            "segment:",
            "segment:vip>=x",
            "segment:active<48",
        ] {
            assert!(bad.parse::<Audience>().is_err(), "{bad} is refused");
        }
    }

    #[test]
    fn a_segment_matches_level_tags_and_recent_activity() {
        let seg: Segment = "vip>=2,tag!=新客,active<48h".parse().expect("parses");
        let profile = Profile {
            openid: OpenId::parse("o_demo_user04").expect("id"),
            name: "李思远".to_owned(),
            vip_level: 2,
            tags: vec!["VIP".to_owned()],
            last_order_id: None,
        };
        let now = 1_800_000_000;
        assert!(seg.matches(&profile, Some(now - 3600), now));
        assert!(
            !seg.matches(&profile, Some(now - 49 * 3600), now),
            "too long ago"
        );
        assert!(!seg.matches(&profile, None, now), "never wrote");
        let mut newcomer = profile.clone();
        newcomer.tags.push("新客".to_owned());
        assert!(!seg.matches(&newcomer, Some(now), now));
        let mut low = profile;
        low.vip_level = 1;
        assert!(!seg.matches(&low, Some(now), now));
    }

    #[test]
    fn quiet_hours_wrap_midnight() {
        let q: QuietHours = "22-8".parse().expect("parses");
        assert!(q.contains(23) && q.contains(0) && q.contains(7));
        assert!(!q.contains(8) && !q.contains(21));
        let day: QuietHours = "12-14".parse().expect("parses");
        assert!(day.contains(12) && !day.contains(14));
        assert!("8-8".parse::<QuietHours>().is_err());
    }

    fn new(audience: &str, channel: &str, text: &str) -> NewCampaign {
        NewCampaign {
            name: "会员日".to_owned(),
            cron: Some("0 9 * * 1".to_owned()),
            tz: Some("Asia/Shanghai".to_owned()),
            audience: audience.to_owned(),
            channel: channel.to_owned(),
            text: text.to_owned(),
            ..NewCampaign::default()
        }
    }

    #[test]
    fn a_new_campaign_gets_its_first_fire_time_in_its_own_zone() {
        let now = at("2026-11-27T12:00:00Z");
        let c = new("tag:VIP", "custom", "{{name}}，本周会员日")
            .build("c1".to_owned(), "alice", now, None)
            .expect("valid");
        assert_eq!(c.next_fire, Some(at("2026-11-30T01:00:00Z")));
        assert_eq!(c.status, Status::Active);
        assert_eq!(c.created_by, "alice");
    }

    #[test]
    fn a_mass_send_with_variables_or_to_a_segment_is_refused() {
        let now = at("2026-11-27T12:00:00Z");
        let e = new("tag:VIP", "mass", "{{name}} 你好")
            .build("c1".to_owned(), "a", now, None)
            .expect_err("refused");
        assert!(e.to_string().contains("same text for everyone"), "{e}");
        let e = new("segment:vip>=1", "mass", "你好")
            .build("c1".to_owned(), "a", now, None)
            .expect_err("refused");
        assert!(matches!(
            e,
            CampaignError::Invalid {
                field: "channel",
                ..
            }
        ));
    }

    #[test]
    fn a_one_off_in_the_past_or_a_cron_without_a_zone_is_refused() {
        let now = at("2026-11-27T12:00:00Z");
        let mut past = new("all", "custom", "hi");
        past.cron = None;
        past.tz = None;
        past.at = Some("2026-11-01T09:00:00+08:00".to_owned());
        let e = past
            .build("c".to_owned(), "a", now, None)
            .expect_err("refused");
        assert!(
            matches!(e, CampaignError::Invalid { field: "at", .. }),
            "{e}"
        );
        let mut no_zone = new("all", "custom", "hi");
        no_zone.tz = None;
        let e = no_zone
            .build("c".to_owned(), "a", now, None)
            .expect_err("refused");
        assert!(
            matches!(e, CampaignError::Invalid { field: "tz", .. }),
            "{e}"
        );
    }

    #[test]
    fn the_report_sums_outcomes_and_counts_stale_claims_as_interrupted() {
        let mut occ = Occurrence::start("c1", 1000, 1000);
        occ.audience = 6;
        let d = |openid: &str, outcome: Outcome, at: i64| Delivery {
            openid: openid.to_owned(),
            outcome,
            at,
        };
        let deliveries = vec![
            d("o1", Outcome::Sent, 1010),
            d("o2", Outcome::Sent, 1020),
            d(
                "o3",
                Outcome::Skipped {
                    reason: "outside_window".to_owned(),
                },
                1005,
            ),
            d(
                "o4",
                Outcome::Failed {
                    errcode: "43004".to_owned(),
                },
                1006,
            ),
            d("o5", Outcome::Sending, 1001),
        ];
        let r = report_of(&occ, &deliveries, 1050, 120);
        assert_eq!(
            (r.sent, r.pending),
            (2, 2),
            "o5 in flight, o6 not yet handled"
        );
        assert_eq!(r.skipped.get("outside_window"), Some(&1));
        assert_eq!(r.failed.get("43004"), Some(&1));
        assert_eq!(r.duration_secs, Some(20.0));
        let later = report_of(&occ, &deliveries, 2000, 120);
        assert_eq!(later.failed.get("interrupted"), Some(&1));
        assert_eq!(later.pending, 1);
        assert_eq!(later.scheduled_at, "1970-01-01T00:16:40Z");
    }

    fn campaigns_at(now: i64) -> (Campaigns, Arc<crate::ManualClock>) {
        let clock = Arc::new(crate::ManualClock::new(now));
        let store = Arc::new(crate::memory::MemoryCampaigns::default());
        (Campaigns::new(store, clock.clone(), None), clock)
    }

    #[tokio::test]
    async fn ticking_every_minute_for_a_week_fires_monday_nine_in_shanghai_once_at_one_utc() {
        let start = at("2026-11-27T12:00:30Z");
        let (campaigns, clock) = campaigns_at(start);
        let c = campaigns
            .create(new("tag:VIP", "custom", "{{name}}，本周会员日"), "alice")
            .await
            .expect("created");
        let mut fired = Vec::new();
        for minute in 0..7 * 24 * 60 {
            let now = start + minute * 60;
            clock.set(now);
            // Two overlapping ticks each minute (two instances).
            for _ in 0..2 {
                for occ in campaigns.tick(now).await.expect("tick") {
                    fired.push((occ.scheduled_at, now));
                }
            }
        }
        assert_eq!(
            fired,
            vec![(at("2026-11-30T01:00:00Z"), at("2026-11-30T01:00:30Z"))],
            "once, at the first tick after Monday 01:00 UTC"
        );
        let stored = campaigns.get(&c.id).await.expect("campaign");
        assert_eq!(stored.next_fire, Some(at("2026-12-07T01:00:00Z")));
    }

    #[tokio::test]
    async fn a_tick_after_downtime_runs_within_grace_and_records_older_times_as_missed() {
        let start = at("2026-11-27T12:00:00Z");
        let (campaigns, _clock) = campaigns_at(start);
        let mut hourly = new("all", "custom", "整点提醒");
        hourly.cron = Some("0 * * * *".to_owned());
        hourly.grace_secs = Some(1800);
        let c = campaigns.create(hourly, "alice").await.expect("created");
        // Down from 12:00 until 15:10: 13:00, 14:00 are too late, 15:00 is not.
        let started = campaigns
            .tick(at("2026-11-27T15:10:00Z"))
            .await
            .expect("tick");
        let times: Vec<i64> = started.iter().map(|o| o.scheduled_at).collect();
        assert_eq!(times, vec![at("2026-11-27T15:00:00Z")]);
        let all = campaigns
            .store()
            .occurrences(&c.id)
            .await
            .expect("occurrences");
        let states: Vec<(i64, OccurrenceState)> =
            all.iter().map(|o| (o.scheduled_at, o.state)).collect();
        assert_eq!(
            states,
            vec![
                (at("2026-11-27T13:00:00Z"), OccurrenceState::Missed),
                (at("2026-11-27T14:00:00Z"), OccurrenceState::Missed),
                (at("2026-11-27T15:00:00Z"), OccurrenceState::Running),
            ]
        );
        let report = campaigns.report(&c.id).await.expect("report");
        assert!(
            report.occurrences[0]
                .note
                .as_deref()
                .is_some_and(|n| n.contains("late"))
        );
    }

    #[tokio::test]
    async fn a_paused_campaign_does_not_fire_and_resumes_at_its_next_time() {
        let start = at("2026-11-27T12:00:00Z");
        let (campaigns, clock) = campaigns_at(start);
        let mut hourly = new("all", "custom", "整点提醒");
        hourly.cron = Some("0 * * * *".to_owned());
        let c = campaigns.create(hourly, "alice").await.expect("created");
        campaigns.pause(&c.id, "bob").await.expect("paused");
        let later = at("2026-11-27T18:30:00Z");
        clock.set(later);
        assert!(campaigns.tick(later).await.expect("tick").is_empty());
        let resumed = campaigns.resume(&c.id, "bob").await.expect("resumed");
        assert_eq!(resumed.next_fire, Some(at("2026-11-27T19:00:00Z")));
        assert!(
            campaigns
                .store()
                .occurrences(&c.id)
                .await
                .expect("occ")
                .is_empty()
        );
    }

    fn triggered(on_intent: Option<&str>, on_keyword: Option<&str>) -> NewCampaign {
        NewCampaign {
            name: "问券送券".to_owned(),
            audience: "all".to_owned(),
            channel: "custom".to_owned(),
            text: "{{name}}，送您一张优惠券".to_owned(),
            on_intent: on_intent.map(str::to_owned),
            on_keyword: on_keyword.map(str::to_owned),
            ..NewCampaign::default()
        }
    }

    #[test]
    fn a_triggered_campaign_fires_on_its_intent_or_a_keyword_in_any_case_and_never_on_the_clock() {
        let now = at("2026-11-27T12:00:00Z");
        let c = triggered(Some("promotion"), Some("优惠券, Coupon，折扣"))
            .build("c1".to_owned(), "alice", now, None)
            .expect("built");
        assert_eq!(
            c.schedule,
            Schedule::Trigger {
                intents: vec!["promotion".to_owned()],
                keywords: vec!["优惠券".to_owned(), "Coupon".to_owned(), "折扣".to_owned()],
                cooldown_secs: 7 * 86_400,
            }
        );
        assert_eq!((c.status, c.next_fire), (Status::Active, None));
        assert!(c.schedule.fired_by("随便问问", Some("promotion")));
        assert!(c.schedule.fired_by("有优惠券吗", Some("product_inquiry")));
        assert!(c.schedule.fired_by("any COUPON today?", None));
        assert!(!c.schedule.fired_by("我的快递到哪了", Some("logistics")));
    }

    #[test]
    fn a_triggered_campaign_with_a_time_another_channel_or_audience_or_a_long_cooldown_is_refused()
    {
        let now = at("2026-11-27T12:00:00Z");
        let build = |n: NewCampaign| n.build("c1".to_owned(), "alice", now, None);
        let with_cron = NewCampaign {
            cron: Some("0 9 * * 1".to_owned()),
            tz: Some("Asia/Shanghai".to_owned()),
            ..triggered(None, Some("优惠券"))
        };
        assert!(matches!(
            build(with_cron),
            Err(CampaignError::Invalid {
                field: "on_intent",
                ..
            })
        ));
        let template = NewCampaign {
            channel: "template".to_owned(),
            template_id: Some("TPL".to_owned()),
            ..triggered(None, Some("优惠券"))
        };
        assert!(matches!(
            build(template),
            Err(CampaignError::Invalid {
                field: "channel",
                ..
            })
        ));
        let to_tag = NewCampaign {
            audience: "tag:VIP".to_owned(),
            ..triggered(None, Some("优惠券"))
        };
        assert!(matches!(
            build(to_tag),
            Err(CampaignError::Invalid {
                field: "channel",
                ..
            })
        ));
        let long = NewCampaign {
            cooldown_days: Some(400),
            ..triggered(Some("promotion"), None)
        };
        assert!(matches!(
            build(long),
            Err(CampaignError::Invalid {
                field: "cooldown_days",
                ..
            })
        ));
        assert!(
            build(triggered(Some(" , "), None)).is_err(),
            "an empty list is no trigger: it needs a time then"
        );
        let tagger = NewCampaign {
            channel: "tag".to_owned(),
            text: "意向客户".to_owned(),
            ..triggered(None, Some("优惠券"))
        };
        assert!(build(tagger.clone()).is_ok(), "a trigger may tag");
        let scheduled_tag = NewCampaign {
            on_keyword: None,
            cron: Some("0 9 * * 1".to_owned()),
            tz: Some("Asia/Shanghai".to_owned()),
            ..tagger.clone()
        };
        assert!(matches!(
            build(scheduled_tag),
            Err(CampaignError::Invalid {
                field: "channel",
                ..
            })
        ));
        let templated_tag = NewCampaign {
            text: "{{name}}".to_owned(),
            ..tagger
        };
        assert!(matches!(
            build(templated_tag),
            Err(CampaignError::Invalid { field: "text", .. })
        ));
    }

    #[tokio::test]
    async fn a_message_fires_each_matching_active_trigger_once_per_user_per_cooldown() {
        let now = at("2026-11-27T12:00:00Z");
        let (campaigns, _clock) = campaigns_at(now);
        let coupon = campaigns
            .create(triggered(Some("promotion"), Some("优惠券")), "alice")
            .await
            .expect("created");
        let paused = campaigns
            .create(triggered(None, Some("优惠券")), "alice")
            .await
            .expect("created");
        campaigns.pause(&paused.id, "alice").await.expect("paused");
        let triggers = Triggers::new(campaigns.store().clone(), Duration::ZERO);

        let fired = triggers
            .fired("oAsker", "有优惠券吗", None, now)
            .await
            .expect("fired");
        let day = at("2026-11-27T00:00:00Z");
        assert_eq!(
            fired,
            vec![DeliveryBatch {
                campaign_id: coupon.id.clone(),
                scheduled_at: day,
                openids: vec!["oAsker".to_owned()],
                waits: 0,
            }],
            "the paused one does not fire"
        );
        let again = triggers
            .fired("oAsker", "优惠券呢", Some("promotion"), now + 3600)
            .await
            .expect("fired");
        assert!(again.is_empty(), "inside the cooldown");
        let other = triggers
            .fired("oOther", "双十一满减", Some("promotion"), now + 60)
            .await
            .expect("fired");
        assert_eq!(other.len(), 1, "by intent, another user");
        let later = triggers
            .fired("oAsker", "优惠券呢", None, now + 7 * 86_400)
            .await
            .expect("fired");
        assert_eq!(later.len(), 1, "a week later it fires again");
        let occurrence = campaigns
            .store()
            .occurrence(&coupon.id, day)
            .await
            .expect("read")
            .expect("the day's occurrence");
        assert_eq!(occurrence.state, OccurrenceState::Expanded);
        assert!(
            matches!(
                campaigns.run_now(&coupon.id, "alice").await,
                Err(CampaignError::Invalid {
                    field: "schedule",
                    ..
                })
            ),
            "a trigger is not run on request"
        );
    }

    #[test]
    fn a_one_offs_quiet_hours_are_read_in_its_zone_and_refused_without_one() {
        let now = at("2026-11-27T00:00:00Z");
        let one_off = |tz: Option<&str>| NewCampaign {
            cron: None,
            tz: tz.map(str::to_owned),
            at: Some("2026-11-28T09:00:00+08:00".to_owned()),
            quiet_hours: Some("22-8".to_owned()),
            ..new("tag:VIP", "custom", "{{name}}，早上好")
        };
        let beijing = one_off(Some("Asia/Shanghai"))
            .build("c1".to_owned(), "alice", now, None)
            .expect("built");
        // 15:00 UTC is 23:00 in Beijing: quiet. 02:00 UTC is 10:00: not.
        assert!(beijing.is_quiet(at("2026-11-28T15:00:00Z")));
        assert!(!beijing.is_quiet(at("2026-11-28T02:00:00Z")));
        assert!(matches!(
            one_off(None).build("c2".to_owned(), "alice", now, None),
            Err(CampaignError::Invalid {
                field: "quiet_hours",
                ..
            })
        ));
        assert!(
            "segment:active<9999999999999999h"
                .parse::<Audience>()
                .is_err(),
            "an activity window beyond a year is refused, not overflowed"
        );
    }

    #[tokio::test]
    async fn without_a_profile_directory_a_segment_is_refused_when_created() {
        let (campaigns, _clock) = campaigns_at(at("2026-11-27T12:00:00Z"));
        let campaigns = campaigns.with_segments(false);
        let refused = campaigns
            .create(new("segment:vip>=2", "custom", "{{name}}"), "alice")
            .await;
        assert!(
            matches!(
                refused,
                Err(CampaignError::Invalid {
                    field: "audience",
                    ..
                })
            ),
            "{refused:?}"
        );
        assert!(campaigns.store().list().await.expect("list").is_empty());
        campaigns
            .create(new("tag:VIP", "custom", "{{name}}"), "alice")
            .await
            .expect("a tag is fine");
    }

    struct Profiles(Vec<Profile>);

    #[async_trait]
    impl ProfileDirectory for Profiles {
        async fn profiles_after(
            &self,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<Profile>, PortError> {
            Ok(self
                .0
                .iter()
                .filter(|p| after.is_none_or(|a| p.openid.as_str() > a))
                .take(limit)
                .cloned()
                .collect())
        }
    }

    #[tokio::test]
    async fn a_segment_larger_than_the_threshold_waits_for_approval_and_a_smaller_one_does_not() {
        let profiles: Vec<Profile> = (0..25)
            .map(|i| Profile {
                openid: OpenId::parse(&format!("oSeg{i:03}")).expect("id"),
                name: format!("用户{i}"),
                vip_level: u8::try_from(i % 4).unwrap_or(0),
                tags: Vec::new(),
                last_order_id: None,
            })
            .collect();
        let audiences = Arc::new(Audiences {
            api: None,
            profiles: Some(Arc::new(Profiles(profiles))),
            contacts: None,
            segment_page: 4,
        });
        let (campaigns, _clock) = campaigns_at(at("2026-11-27T12:00:00Z"));
        let campaigns = campaigns.with_approval(Approval {
            above: 10,
            audiences,
        });
        // vip>=1: 18 of 25, read over 7 pages.
        let big = campaigns
            .create(new("segment:vip>=1", "custom", "{{name}}"), "alice")
            .await
            .expect("created");
        assert_eq!(big.status, Status::PendingApproval);
        assert!(
            big.approval.as_deref().is_some_and(|w| w.contains("18")),
            "{:?}",
            big.approval
        );
        // vip=3: 6 of 25.
        let small = campaigns
            .create(new("segment:vip=3", "custom", "{{name}}"), "alice")
            .await
            .expect("created");
        assert_eq!(small.status, Status::Active);
        let due = at("2026-11-30T01:00:00Z");
        let started: Vec<String> = campaigns
            .tick(due)
            .await
            .expect("tick")
            .into_iter()
            .map(|o| o.campaign_id)
            .collect();
        assert_eq!(
            started,
            vec![small.id.clone()],
            "the unapproved one does not fire"
        );
        let approved = campaigns.approve(&big.id, "bob").await.expect("approved");
        assert_eq!(approved.status, Status::Active);
    }
}
