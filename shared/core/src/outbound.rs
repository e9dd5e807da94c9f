//! Speaking first: the WeChat API port, its error model, and the guards
//! every outbound send passes before WeChat is called.
//!
//! - [`WeChatApi`] is the port: customer-service, template and mass
//!   messages, followers, tags, user info, remarks. `wca-wechat` has the HTTP adapter (with the
//!   shared access token), and `wca-fake-wechat` the stand-in.
//! - [`Failure`] sorts every error into what to do next: retry, refresh
//!   the token, give up on this recipient, or fix the configuration.
//! - [`Outbound`] sends through the port: it refuses locally what WeChat
//!   would refuse (outside the 48-hour window, over the message budget, a
//!   user WeChat already called unreachable), paces calls with a
//!   [`RateLimit`], stops calling during an outage with a [`Breaker`], and
//!   records every outcome as an event.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::{
    ArchivedMessage, ArchivedReply, Clock, ComplianceWord, Direction, Event, EventSink,
    MessageArchive, Outgoing, PortError,
};

/// A customer-service message (`message/custom/send`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msgtype", rename_all = "snake_case")]
pub enum CustomMessage {
    /// Plain text.
    Text {
        /// The text.
        content: String,
    },
    /// An image uploaded to WeChat before.
    Image {
        /// Its media id.
        media_id: String,
    },
    /// A link card (WeChat's `news` with one article).
    News {
        /// The card.
        article: Article,
    },
}

impl CustomMessage {
    /// The message kind as written in events and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            CustomMessage::Text { .. } => "text",
            CustomMessage::Image { .. } => "image",
            CustomMessage::News { .. } => "news",
        }
    }

    /// The text a compliance review reads: the text, or the card's title
    /// and description.
    pub fn text(&self) -> Option<String> {
        match self {
            CustomMessage::Text { content } => Some(content.clone()),
            CustomMessage::Image { .. } => None,
            CustomMessage::News { article } => {
                Some(format!("{}\n{}", article.title, article.description))
            }
        }
    }
}

/// A link card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Article {
    /// The headline.
    pub title: String,
    /// The line under it.
    pub description: String,
    /// Where a tap goes.
    pub url: String,
    /// The picture's URL.
    pub picurl: String,
}

/// A template message (`message/template/send`): a service notice with
/// per-field data. WeChat forbids marketing content in templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateMessage {
    /// The recipient.
    pub openid: String,
    /// The template's id in the account's template library.
    pub template_id: String,
    /// Where a tap goes, if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The value of each field of the template.
    pub data: BTreeMap<String, String>,
}

/// A user tag of the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// WeChat's id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// How many followers carry it.
    pub count: u64,
}

/// One page of the followers of a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagPage {
    /// The OpenIDs of this page.
    pub openids: Vec<String>,
    /// Where the next page starts; `None` on the last page.
    pub next_openid: Option<String>,
}

/// What WeChat says about a follower. There is no nickname: `user/info`
/// has not returned one since 2021-12, so names come from our own
/// profiles or a remark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The follower.
    pub openid: String,
    /// Still following.
    pub subscribed: bool,
    /// When they followed (Unix seconds), if they do.
    pub subscribe_time: Option<i64>,
    /// The remark the account set.
    pub remark: String,
    /// The tags they carry.
    pub tag_ids: Vec<u64>,
    /// Their UnionID, when the account is bound to an open platform.
    pub unionid: Option<String>,
}

/// What to do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// WeChat is busy, over its API limit, or unreachable: back off and
    /// try again (-1, 45009, network errors).
    Retry,
    /// The access token is invalid or expired: refresh it, then retry
    /// once (40001, 42001, 40014).
    RefreshToken,
    /// This recipient cannot get the message now, and retrying will not
    /// change that (45015 outside the window, 45047 over the budget,
    /// 43004 unsubscribed, 40003 bad OpenID).
    Recipient,
    /// The account is not set up for the call; nothing works until an
    /// operator acts (40164 IP not whitelisted, 48001 no permission,
    /// 40013 bad AppID, 40125 bad AppSecret) or the next month (45028 no
    /// mass-send quota left).
    Config,
    /// WeChat refused this message (too long, bad media id, ...): sending
    /// it again will fail again. 45065 (a mass send's `clientmsgid` seen
    /// within 24 hours) is one: that send already went.
    Rejected,
    /// The request went out but its answer was lost (a timeout, a broken
    /// connection, an unreadable answer): WeChat may have delivered the
    /// message. Not sent again, so that no one gets it twice.
    Unknown,
}

impl Failure {
    /// The outcome of a WeChat `errcode` (never 0).
    pub fn of_errcode(code: i64) -> Self {
        match code {
            -1 | 45009 | 45011 => Failure::Retry,
            40001 | 42001 | 40014 => Failure::RefreshToken,
            45015 | 45047 | 43004 | 40003 => Failure::Recipient,
            40164 | 48001 | 40013 | 40125 | 41004 | 61024 | 89503 | 45028 => Failure::Config,
            // A mass send's clientmsgid seen within 24 hours: it went.
            45065 => Failure::Rejected,
            _ => Failure::Rejected,
        }
    }

    /// The snake_case name, as written in events and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Retry => "retry",
            Failure::RefreshToken => "refresh_token",
            Failure::Recipient => "recipient",
            Failure::Config => "config",
            Failure::Rejected => "rejected",
            Failure::Unknown => "unknown",
        }
    }
}

/// Why [`Outbound`] did not call WeChat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The user has not written within the window (48 hours), or never.
    OutsideWindow {
        /// Their last message, if any is known.
        last_interaction: Option<i64>,
    },
    /// The budget of messages per user message is spent.
    OverBudget {
        /// How many were sent since their last message.
        sent: u32,
    },
    /// WeChat said this user cannot be reached (unsubscribed, outside its
    /// window); nothing is sent until they write again.
    Undeliverable {
        /// WeChat's errcode.
        code: i64,
    },
    /// WeChat has been failing; calls resume when the breaker lets a
    /// probe through.
    CircuitOpen {
        /// When the next probe may go.
        retry_in: Duration,
    },
    /// The access token was refreshed by force too often today (WeChat
    /// allows 20 a day).
    ForcedRefreshesSpent,
    /// The sensitive-word filter blocked the text.
    Blocked {
        /// The dictionary entries hit.
        words: Vec<String>,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::OutsideWindow {
                last_interaction: Some(at),
            } => write!(f, "outside the 48-hour window (last message at {at})"),
            Refusal::OutsideWindow { .. } => f.write_str("the user has never written"),
            Refusal::OverBudget { sent } => {
                write!(
                    f,
                    "over the budget: {sent} sent since the user's last message"
                )
            }
            Refusal::Undeliverable { code } => {
                write!(f, "WeChat called this user unreachable ({code})")
            }
            Refusal::CircuitOpen { retry_in } => write!(
                f,
                "WeChat is failing; the breaker is open for {} ms more",
                retry_in.as_millis()
            ),
            Refusal::ForcedRefreshesSpent => {
                f.write_str("the access token was refreshed by force too often today")
            }
            Refusal::Blocked { words } => write!(
                f,
                "blocked by the sensitive-word filter ({})",
                words.join(", ")
            ),
        }
    }
}

impl Refusal {
    /// The snake_case reason, as written in events and counters.
    pub fn as_str(&self) -> &'static str {
        match self {
            Refusal::OutsideWindow { .. } => "outside_window",
            Refusal::OverBudget { .. } => "over_budget",
            Refusal::Undeliverable { .. } => "undeliverable",
            Refusal::CircuitOpen { .. } => "circuit_open",
            Refusal::ForcedRefreshesSpent => "forced_refreshes_spent",
            Refusal::Blocked { .. } => "blocked",
        }
    }
}

/// An error from the WeChat API or from the guards in front of it. No
/// variant ever carries the AppSecret or the access token.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// WeChat answered with a non-zero `errcode`.
    #[error("WeChat error {code}: {message}")]
    WeChat {
        /// The errcode.
        code: i64,
        /// WeChat's errmsg.
        message: String,
    },
    /// WeChat could not be reached, or the call timed out.
    #[error("could not reach WeChat: {0}")]
    Network(String),
    /// WeChat's answer could not be read.
    #[error("unreadable answer from WeChat: {0}")]
    BadResponse(String),
    /// A message went out but its answer was lost, so whether WeChat
    /// delivered it is unknown ([`Failure::Unknown`]).
    #[error("WeChat's answer to a message was lost (it may have been delivered): {0}")]
    Unconfirmed(String),
    /// Not sent: a guard refused it before WeChat was called.
    #[error("not sent: {0}")]
    Refused(Refusal),
    /// The store of tokens or contact windows failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

impl ApiError {
    /// What to do about it.
    pub fn failure(&self) -> Failure {
        match self {
            ApiError::WeChat { code, .. } => Failure::of_errcode(*code),
            ApiError::Network(_) | ApiError::BadResponse(_) | ApiError::Store(_) => Failure::Retry,
            ApiError::Unconfirmed(_) => Failure::Unknown,
            ApiError::Refused(Refusal::CircuitOpen { .. }) => Failure::Retry,
            ApiError::Refused(Refusal::ForcedRefreshesSpent) => Failure::Config,
            ApiError::Refused(Refusal::Blocked { .. }) => Failure::Rejected,
            ApiError::Refused(_) => Failure::Recipient,
        }
    }

    /// WeChat's errcode, if WeChat answered (0 otherwise).
    pub fn code(&self) -> i64 {
        match self {
            ApiError::WeChat { code, .. } => *code,
            ApiError::Refused(Refusal::Undeliverable { code }) => *code,
            _ => 0,
        }
    }
}

/// The WeChat Official Account API, as far as wca calls it.
#[async_trait]
pub trait WeChatApi: Send + Sync {
    /// Sends a customer-service message to `openid`.
    async fn send_custom(&self, openid: &str, msg: &CustomMessage) -> Result<(), ApiError>;
    /// Sends a template message; returns WeChat's msgid.
    async fn send_template(&self, msg: &TemplateMessage) -> Result<u64, ApiError>;
    /// The account's tags.
    async fn tags(&self) -> Result<Vec<Tag>, ApiError>;
    /// A page of the followers carrying tag `tag_id`, from `next_openid`
    /// (the start when `None`).
    async fn tag_members(
        &self,
        tag_id: u64,
        next_openid: Option<&str>,
    ) -> Result<TagPage, ApiError>;
    /// What WeChat says about `openid`.
    async fn user_info(&self, openid: &str) -> Result<UserInfo, ApiError>;
    /// [`WeChatApi::user_info`] for up to 100 users in one call.
    async fn user_info_batch(&self, openids: &[String]) -> Result<Vec<UserInfo>, ApiError>;
    /// Sets the account's remark on `openid`.
    async fn set_remark(&self, openid: &str, remark: &str) -> Result<(), ApiError>;
    /// Puts tag `tag_id` on up to 50 users.
    async fn tag_users(&self, tag_id: u64, openids: &[String]) -> Result<(), ApiError>;
    /// A page of all the account's followers (`user/get`, up to 10,000 a
    /// page), from `next_openid` (the start when `None`); the last page
    /// has `next_openid: None`.
    async fn followers(&self, next_openid: Option<&str>) -> Result<TagPage, ApiError>;
    /// Mass-sends the text `content` (`message/mass/sendall`) to the
    /// followers carrying tag `tag_id`, or to all followers when `None`;
    /// returns WeChat's `msg_id`.
    ///
    /// WeChat refuses a `clientmsgid` it has seen in the last 24 hours
    /// with errcode 45065, so a retried mass send is never delivered
    /// twice: keep the same `clientmsgid` for every attempt of one send.
    /// A service account has 4 mass sends a month (a subscription account
    /// 1 a day); when they are spent WeChat answers 45028. A lost answer
    /// is [`ApiError::Unconfirmed`], as for any message.
    async fn mass_send_text(
        &self,
        tag_id: Option<u64>,
        content: &str,
        clientmsgid: &str,
    ) -> Result<u64, ApiError>;
}

/// An access token as cached in the store, shared by every instance.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedToken {
    /// The token.
    pub token: String,
    /// When WeChat said it expires (Unix seconds).
    pub expires_at: i64,
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where the access token is shared between instances (a DynamoDB item,
/// a redb row, memory in tests).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The token cached for `app_id`, expired or not.
    async fn get(&self, app_id: &str) -> Result<Option<CachedToken>, PortError>;
    /// Caches `token` for `app_id`, replacing what was there.
    async fn put(&self, app_id: &str, token: &CachedToken) -> Result<(), PortError>;
}

/// What the sensitive-word filter says about a text we are about to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screened {
    /// The strictest action of the hits: `block`, `mask` or `flag`.
    pub action: String,
    /// The text with the hits masked.
    pub masked: String,
    /// The hits.
    pub hits: Vec<ComplianceWord>,
}

/// The compliance screen of messages we start, as of passive replies:
/// `wca_filter::Filter` implements it.
pub trait OutboundScreen: Send + Sync {
    /// `None` when `text` is clean.
    fn screen(&self, text: &str) -> Option<Screened>;
}

/// What is known of a user's window for messages we start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactWindow {
    /// Their last message or event (Unix seconds).
    pub last_interaction: i64,
    /// Messages we sent since then.
    pub sent: u32,
    /// WeChat's errcode when it called the user unreachable since then.
    pub undeliverable: Option<i64>,
}

/// The limits WeChat puts on messages we start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRules {
    /// How long after a user's message we may write (48 hours).
    pub window_secs: i64,
    /// How many messages we may send per user message (5).
    pub budget: u32,
}

impl Default for WindowRules {
    fn default() -> Self {
        Self {
            window_secs: 48 * 3600,
            budget: 5,
        }
    }
}

/// The answer of [`ContactWindows::reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// One message of the budget is taken; [`ContactWindows::give_back`]
    /// returns it if the send fails.
    Granted {
        /// The window it was taken from (its `last_interaction`).
        window: i64,
    },
    /// Not sent; why.
    Refused(Refusal),
}

/// Each user's last interaction and what we sent since: the window and
/// budget [`Outbound`] checks before calling WeChat.
#[async_trait]
pub trait ContactWindows: Send + Sync {
    /// The user wrote (or clicked, or followed) at `at`: a new window with
    /// a full budget. An older `at` than the one recorded changes nothing.
    async fn touch(&self, openid: &str, at: i64) -> Result<(), PortError>;
    /// Takes one message of the budget, atomically, unless the window is
    /// closed at `now`, the budget is spent, or the user is unreachable.
    async fn reserve(
        &self,
        openid: &str,
        now: i64,
        rules: WindowRules,
    ) -> Result<Reserved, PortError>;
    /// Returns a message taken from window `window` that was not sent
    /// (nothing happens if the user has written since).
    async fn give_back(&self, openid: &str, window: i64) -> Result<(), PortError>;
    /// Records that WeChat called the user unreachable (`code`) in window
    /// `window`; sends are refused until they write again.
    async fn undeliverable(&self, openid: &str, window: i64, code: i64) -> Result<(), PortError>;
    /// What is recorded for `openid`.
    async fn get(&self, openid: &str) -> Result<Option<ContactWindow>, PortError>;
}

/// The rule every [`ContactWindows`] adapter applies in `touch`: the new
/// record, or `None` when `at` is not newer than what is recorded.
pub fn touch_in(window: Option<ContactWindow>, at: i64) -> Option<ContactWindow> {
    match window {
        // A late or repeated interaction changes nothing.
        Some(w) if w.last_interaction >= at => None,
        _ => Some(ContactWindow {
            last_interaction: at,
            sent: 0,
            undeliverable: None,
        }),
    }
}

/// The rule of `give_back`: the new record, or `None` for no change.
pub fn give_back_in(window: Option<ContactWindow>, taken_from: i64) -> Option<ContactWindow> {
    window
        .filter(|w| w.last_interaction == taken_from && w.sent > 0)
        .map(|w| ContactWindow {
            sent: w.sent - 1,
            ..w
        })
}

/// The rule of `undeliverable`: the new record, or `None` for no change.
pub fn undeliverable_in(
    window: Option<ContactWindow>,
    taken_from: i64,
    code: i64,
) -> Option<ContactWindow> {
    window
        .filter(|w| w.last_interaction == taken_from)
        .map(|w| ContactWindow {
            undeliverable: Some(code),
            ..w
        })
}

/// The rule every [`ContactWindows`] adapter applies in `reserve`.
pub fn reserve_in(
    window: Option<ContactWindow>,
    now: i64,
    rules: WindowRules,
) -> (Reserved, Option<ContactWindow>) {
    let Some(w) = window else {
        return (
            Reserved::Refused(Refusal::OutsideWindow {
                last_interaction: None,
            }),
            None,
        );
    };
    if let Some(code) = w.undeliverable {
        return (Reserved::Refused(Refusal::Undeliverable { code }), None);
    }
    if now.saturating_sub(w.last_interaction) >= rules.window_secs {
        return (
            Reserved::Refused(Refusal::OutsideWindow {
                last_interaction: Some(w.last_interaction),
            }),
            None,
        );
    }
    if w.sent >= rules.budget {
        return (
            Reserved::Refused(Refusal::OverBudget { sent: w.sent }),
            None,
        );
    }
    let taken = ContactWindow {
        sent: w.sent + 1,
        ..w
    };
    (
        Reserved::Granted {
            window: w.last_interaction,
        },
        Some(taken),
    )
}

/// A pace for calls: `per_sec` on average, with bursts of up to `burst`
/// (the generic cell rate algorithm). Callers wait the delay it gives.
#[derive(Debug)]
pub struct RateLimit {
    interval: Duration,
    tolerance: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimit {
    /// At most `per_sec` calls a second on average (at least 1), bursts of
    /// `burst` (at least 1).
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let interval = Duration::from_secs(1) / per_sec.max(1);
        Self {
            interval,
            tolerance: interval * (burst.max(1) - 1),
            next: Mutex::new(None),
        }
    }

    /// Takes a slot and says how long to wait before using it.
    pub fn delay(&self, now: Instant) -> Duration {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let tat = next.map_or(now, |t| t.max(now));
        let allowed_at = tat.checked_sub(self.tolerance).unwrap_or(now);
        *next = Some(tat + self.interval);
        allowed_at.saturating_duration_since(now)
    }
}

/// How the [`Breaker`] decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Opens after this many failures in a row.
    pub consecutive_failures: u32,
    /// Or when this share of calls in `window` failed...
    pub error_rate: f64,
    /// ...counting only windows with at least this many calls.
    pub min_calls: u32,
    /// The span the error rate is measured over.
    pub window: Duration,
    /// How long it stays open before letting one probe through.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            error_rate: 0.5,
            min_calls: 20,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
        }
    }
}

/// The state of a [`Breaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused.
    Open,
    /// One probe is allowed; its result closes or reopens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// The snake_case name, as written in events, logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// A circuit breaker: a WeChat outage becomes a pause, not a retry storm.
/// Only [`Failure::Retry`] outcomes count as failures; a user who cannot
/// be reached says nothing about WeChat's health.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: BreakerState,
    open_until: Instant,
    probing: bool,
    in_a_row: u32,
    window_start: Instant,
    calls: u32,
    failures: u32,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig, now: Instant) -> Self {
        Self {
            config,
            state: BreakerState::Closed,
            open_until: now,
            probing: false,
            in_a_row: 0,
            window_start: now,
            calls: 0,
            failures: 0,
        }
    }

    /// Its state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// May a call go now? `Err` says how long until one may. The second
    /// value is a state change to record.
    pub fn allow(&mut self, now: Instant) -> (Result<(), Duration>, Option<BreakerState>) {
        match self.state {
            BreakerState::Closed => (Ok(()), None),
            BreakerState::Open if now >= self.open_until => {
                self.state = BreakerState::HalfOpen;
                self.probing = true;
                self.open_until = now + self.config.open_for;
                (Ok(()), Some(BreakerState::HalfOpen))
            }
            BreakerState::Open => (Err(self.open_until - now), None),
            // A probe whose result never came (its caller gave up) does not
            // hold the breaker half-open for ever: after `open_for`, another.
            BreakerState::HalfOpen if !self.probing || now >= self.open_until => {
                self.probing = true;
                self.open_until = now + self.config.open_for;
                (Ok(()), None)
            }
            BreakerState::HalfOpen => (Err(self.config.open_for / 10), None),
        }
    }

    /// Records a call's result (`healthy` unless it failed with
    /// [`Failure::Retry`]); returns a state change to record.
    pub fn record(&mut self, now: Instant, healthy: bool) -> Option<BreakerState> {
        if now.duration_since(self.window_start) >= self.config.window {
            self.window_start = now;
            self.calls = 0;
            self.failures = 0;
        }
        self.calls += 1;
        if healthy {
            self.in_a_row = 0;
        } else {
            self.in_a_row += 1;
            self.failures += 1;
        }
        match self.state {
            BreakerState::HalfOpen => {
                self.probing = false;
                if healthy {
                    self.close(now)
                } else {
                    self.open(now)
                }
            }
            BreakerState::Closed if !healthy => {
                let rate_tripped = self.calls >= self.config.min_calls
                    && f64::from(self.failures) >= self.config.error_rate * f64::from(self.calls);
                if self.in_a_row >= self.config.consecutive_failures || rate_tripped {
                    self.open(now)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn open(&mut self, now: Instant) -> Option<BreakerState> {
        self.state = BreakerState::Open;
        self.open_until = now + self.config.open_for;
        Some(BreakerState::Open)
    }

    fn close(&mut self, now: Instant) -> Option<BreakerState> {
        self.state = BreakerState::Closed;
        self.in_a_row = 0;
        self.window_start = now;
        self.calls = 0;
        self.failures = 0;
        Some(BreakerState::Closed)
    }
}

/// How [`Outbound`] behaves.
#[derive(Debug, Clone, Copy)]
pub struct OutboundPolicy {
    /// WeChat's window and budget.
    pub rules: WindowRules,
    /// Calls a second to WeChat, at most (WeChat's limits are per app).
    pub per_sec: u32,
    /// Tries per message when WeChat is busy.
    pub attempts: u32,
    /// The first back-off; it doubles with each try.
    pub backoff: Duration,
    /// The breaker.
    pub breaker: BreakerConfig,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self {
            rules: WindowRules::default(),
            per_sec: 400,
            attempts: 3,
            backoff: Duration::from_millis(200),
            breaker: BreakerConfig::default(),
        }
    }
}

/// Sends messages we start, through a [`WeChatApi`], behind the guards:
/// window and budget, rate limit, breaker, retries with back-off. Every
/// outcome is an event (`OutboundSent`, `OutboundFailed`,
/// `BreakerChanged`), so each has its counter.
pub struct Outbound {
    api: Arc<dyn WeChatApi>,
    contacts: Arc<dyn ContactWindows>,
    events: Arc<dyn EventSink>,
    clock: Arc<dyn Clock>,
    policy: OutboundPolicy,
    limit: RateLimit,
    breaker: Mutex<Breaker>,
    screen: Option<Arc<dyn OutboundScreen>>,
    archive: Option<(Arc<dyn MessageArchive>, i64)>,
}

impl Outbound {
    /// A sender over `api`, checking windows in `contacts` and publishing
    /// outcomes to `events`.
    pub fn new(
        api: Arc<dyn WeChatApi>,
        contacts: Arc<dyn ContactWindows>,
        events: Arc<dyn EventSink>,
        clock: Arc<dyn Clock>,
        policy: OutboundPolicy,
    ) -> Self {
        Self {
            api,
            contacts,
            events,
            clock,
            limit: RateLimit::new(policy.per_sec, policy.per_sec.div_ceil(10)),
            breaker: Mutex::new(Breaker::new(policy.breaker, Instant::now())),
            policy,
            screen: None,
            archive: None,
        }
    }

    /// Screens every text with `screen` before sending: a blocked text is
    /// not sent, a masked one goes out masked, and each hit is a
    /// `ComplianceHit` event (direction outbound), as for passive replies.
    pub fn with_screen(mut self, screen: Arc<dyn OutboundScreen>) -> Self {
        self.screen = Some(screen);
        self
    }

    /// Archives every message sent in `archive` (key: the send's
    /// reference), kept `retention_secs`, so that a user's history holds
    /// what we started too.
    pub fn with_archive(mut self, archive: Arc<dyn MessageArchive>, retention_secs: i64) -> Self {
        self.archive = Some((archive, retention_secs));
        self
    }

    /// The screen's verdict on `msg`: the message to send, or why not.
    async fn screened(
        &self,
        openid: &str,
        msg: &CustomMessage,
        reference: &str,
    ) -> Result<CustomMessage, ApiError> {
        let (Some(screen), Some(text)) = (&self.screen, msg.text()) else {
            return Ok(msg.clone());
        };
        let Some(verdict) = screen.screen(&text) else {
            return Ok(msg.clone());
        };
        let (outcome, send) = match (verdict.action.as_str(), msg) {
            ("mask", CustomMessage::Text { .. }) => (
                "masked",
                Some(CustomMessage::Text {
                    content: verdict.masked.clone(),
                }),
            ),
            // A card's title cannot be masked in place: held back.
            ("block" | "mask", _) => ("blocked", None),
            _ => ("flagged", Some(msg.clone())),
        };
        let words: Vec<String> = verdict.hits.iter().map(|h| h.word.clone()).collect();
        let event = Event::compliance_hit(
            reference,
            openid,
            Direction::Outbound,
            &verdict.action,
            outcome,
            verdict.hits,
            self.clock.now(),
        );
        self.publish(event).await;
        send.ok_or(ApiError::Refused(Refusal::Blocked { words }))
    }

    /// The breaker's state.
    pub fn breaker_state(&self) -> BreakerState {
        self.lock_breaker().state()
    }

    /// Sends `msg` to `openid` as a customer-service message. `reference`
    /// names why (the message key it answers, `campaign:...`): it makes
    /// the event ids unique and tells an auditor where a message came from.
    ///
    /// `Err(ApiError::Refused(Refusal::CircuitOpen))` and other
    /// [`Failure::Retry`] errors mean "not sent, try later"; anything else
    /// will not succeed by trying again.
    pub async fn send_custom(
        &self,
        openid: &str,
        msg: &CustomMessage,
        reference: &str,
    ) -> Result<(), ApiError> {
        let msg = match self.screened(openid, msg, reference).await {
            Ok(msg) => msg,
            Err(error) => {
                self.record_failure(openid, msg.kind(), reference, &error)
                    .await;
                return Err(error);
            }
        };
        let msg = &msg;
        if let Err(retry_in) = self.peek_breaker() {
            return Err(ApiError::Refused(Refusal::CircuitOpen { retry_in }));
        }
        let now = self.clock.now();
        let window = match self
            .contacts
            .reserve(openid, now, self.policy.rules)
            .await?
        {
            Reserved::Granted { window } => window,
            Reserved::Refused(refusal) => {
                let error = ApiError::Refused(refusal);
                self.record_failure(openid, msg.kind(), reference, &error)
                    .await;
                return Err(error);
            }
        };
        let result = self.call_with_retries(openid, msg).await;
        match &result {
            Ok(()) => {
                let now = self.clock.now();
                if let Some((archive, retention_secs)) = &self.archive {
                    let entry = ArchivedReply {
                        key: reference.to_owned(),
                        openid: openid.to_owned(),
                        sent_at: now,
                        reply: Outgoing::text(
                            msg.text().unwrap_or_else(|| format!("[{}]", msg.kind())),
                        ),
                        route: format!("outbound:{}", msg.kind()),
                        expires_at: now.saturating_add(*retention_secs),
                    };
                    // Sent is sent: a failed archive write must not make
                    // the caller send it again.
                    if let Err(e) = archive.put_reply(&entry).await {
                        tracing::error!(reference, error = %e, "a sent message could not be archived");
                    }
                }
                let event = Event::outbound_sent(reference, openid, msg.kind(), now);
                self.publish(event).await;
            }
            Err(error) => {
                // A store that fails here must not hide WeChat's answer:
                // the caller acts on that (retry or give up).
                let recorded = match error.code() {
                    // 45047: WeChat counted more than we did; its budget
                    // is spent until the user writes again.
                    45015 | 43004 | 40003 | 45047 => {
                        self.contacts
                            .undeliverable(openid, window, error.code())
                            .await
                    }
                    // It may have been delivered: spent, to be safe.
                    _ if error.failure() == Failure::Unknown => Ok(()),
                    _ => self.contacts.give_back(openid, window).await,
                };
                if let Err(e) = recorded {
                    tracing::warn!(error = %e, "could not record an outbound failure in the window store");
                }
                self.record_failure(openid, msg.kind(), reference, error)
                    .await;
            }
        }
        result
    }

    async fn call_with_retries(&self, openid: &str, msg: &CustomMessage) -> Result<(), ApiError> {
        let mut backoff = self.policy.backoff;
        let mut attempt = 1;
        loop {
            self.take_slot().await?;
            let result = self.api.send_custom(openid, msg).await;
            // A lost answer is as much a sign of an outage as a busy one.
            let healthy = result
                .as_ref()
                .err()
                .is_none_or(|e| !matches!(e.failure(), Failure::Retry | Failure::Unknown));
            self.record_breaker(healthy).await;
            match result {
                Err(e) if e.failure() == Failure::Retry && attempt < self.policy.attempts => {
                    attempt += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
                other => return other,
            }
        }
    }

    /// Waits for the rate limit, then asks the breaker for the call.
    async fn take_slot(&self) -> Result<(), ApiError> {
        let wait = self.limit.delay(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let (allowed, change) = self.lock_breaker().allow(Instant::now());
        if let Some(state) = change {
            self.breaker_changed(state).await;
        }
        allowed.map_err(|retry_in| ApiError::Refused(Refusal::CircuitOpen { retry_in }))
    }

    fn peek_breaker(&self) -> Result<(), Duration> {
        let breaker = self.lock_breaker();
        match breaker.state() {
            BreakerState::Open if Instant::now() < breaker.open_until => {
                Err(breaker.open_until - Instant::now())
            }
            _ => Ok(()),
        }
    }

    async fn record_breaker(&self, healthy: bool) {
        let change = self.lock_breaker().record(Instant::now(), healthy);
        if let Some(state) = change {
            self.breaker_changed(state).await;
        }
    }

    async fn breaker_changed(&self, state: BreakerState) {
        tracing::warn!(breaker = state.as_str(), "WeChat API breaker changed state");
        let event =
            Event::breaker_changed(state, self.clock.now(), &std::process::id().to_string());
        self.publish(event).await;
    }

    async fn record_failure(&self, openid: &str, kind: &str, reference: &str, error: &ApiError) {
        let reason = match error {
            ApiError::Refused(r) => r.as_str(),
            _ => error.failure().as_str(),
        };
        let event = Event::outbound_failed(
            reference,
            openid,
            kind,
            error.failure(),
            reason,
            error.code(),
            self.clock.now(),
        );
        self.publish(event).await;
    }

    async fn publish(&self, event: Event) {
        // The send already happened (or did not): an event that cannot be
        // published must not turn it into an error and a second send.
        let _ = self.events.emit(std::slice::from_ref(&event)).await;
    }

    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A reply waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Its place: entries are sent in the order of their ids.
    pub id: String,
    /// The reply, as archived.
    pub reply: ArchivedReply,
}

/// Replies of async mode waiting to go out through the customer-service
/// API. A reply is written here in the same transaction as the message it
/// answers; it is claimed before it is sent, so that a reply is never
/// sent twice (a process that dies while sending leaves it claimed, and
/// it is reported as interrupted, not sent again).
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Up to `limit` unclaimed entries, oldest first.
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, PortError>;
    /// Claims entry `id` before sending it; `false` when it is not there
    /// or already claimed.
    async fn claim(&self, id: &str) -> Result<bool, PortError>;
    /// Puts a claimed entry back: it was certainly not sent.
    async fn release(&self, id: &str) -> Result<(), PortError>;
    /// Removes entry `id`: sent, or given up.
    async fn finish(&self, id: &str) -> Result<(), PortError>;
    /// At start: removes and returns the entries a previous process
    /// claimed and never finished (whether WeChat got them is unknown).
    async fn take_interrupted(&self) -> Result<Vec<OutboxEntry>, PortError>;
}

/// Messages waiting for a responder (async replies on Lambda): the
/// webhook archives a message, queues it and answers `success`; the
/// responder decides the reply and sends it through the customer-service
/// API. Each user's messages come out in the order they went in, and a
/// message queued twice (a retry of WeChat's) comes out once.
#[async_trait]
pub trait MessageQueue: Send + Sync {
    /// Queues `message` behind the earlier messages of its sender.
    async fn enqueue(&self, message: &ArchivedMessage) -> Result<(), PortError>;
}

/// What one [`send_outbox`] round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxRound {
    /// Sent.
    pub sent: usize,
    /// Given up for good (refused, a reply the API cannot carry, or one
    /// whose answer was lost and may have been delivered).
    pub dropped: usize,
    /// Left for a later round (WeChat busy, breaker open, the account's
    /// setup refused).
    pub waiting: usize,
}

/// Sends what the outbox holds, oldest first, through `outbound`: each
/// entry is claimed, sent, then finished; one the API could not take now
/// goes back, and so do the later entries of the same user, so each
/// user's replies keep their order.
pub async fn send_outbox(
    outbox: &dyn Outbox,
    outbound: &Outbound,
    limit: usize,
) -> Result<OutboxRound, PortError> {
    let mut round = OutboxRound::default();
    let mut held: std::collections::HashSet<String> = std::collections::HashSet::new();
    for entry in outbox.pending(limit).await? {
        let openid = entry.reply.openid.clone();
        if held.contains(&openid) {
            round.waiting += 1;
            continue;
        }
        if !outbox.claim(&entry.id).await? {
            continue;
        }
        let content = match &entry.reply.reply {
            Outgoing::Text { content } => content.clone(),
            // A hand-over exists only as a passive reply.
            Outgoing::TransferToAgent { .. } => {
                tracing::info!(msg_key = %entry.reply.key, "a hand-over has no customer-service message; not sent");
                outbox.finish(&entry.id).await?;
                round.dropped += 1;
                continue;
            }
        };
        let msg = CustomMessage::Text { content };
        match outbound.send_custom(&openid, &msg, &entry.reply.key).await {
            Ok(()) => {
                outbox.finish(&entry.id).await?;
                round.sent += 1;
            }
            // Not delivered, and worth trying again: WeChat busy, the
            // breaker open, or the account's setup refused (it waits for
            // an operator rather than being lost).
            Err(e) if matches!(e.failure(), Failure::Retry | Failure::Config) => {
                if e.failure() == Failure::Config {
                    tracing::error!(msg_key = %entry.reply.key, error = %e, "WeChat refused the account's setup; the reply waits in the outbox");
                }
                outbox.release(&entry.id).await?;
                held.insert(openid);
                round.waiting += 1;
            }
            Err(e) if e.failure() == Failure::Unknown => {
                tracing::warn!(msg_key = %entry.reply.key, error = %e, "WeChat's answer was lost; the reply may have been delivered and is not sent again");
                outbox.finish(&entry.id).await?;
                round.dropped += 1;
            }
            Err(e) => {
                tracing::warn!(msg_key = %entry.reply.key, error = %e, "async reply not sent");
                outbox.finish(&entry.id).await?;
                round.dropped += 1;
            }
        }
    }
    Ok(round)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcodes_map_to_the_four_outcomes_of_the_issue_and_unknown_codes_are_not_retried() {
        for code in [-1, 45009] {
            assert_eq!(Failure::of_errcode(code), Failure::Retry, "{code}");
        }
        for code in [40001, 42001, 40014] {
            assert_eq!(Failure::of_errcode(code), Failure::RefreshToken, "{code}");
        }
        for code in [45015, 45047, 43004, 40003] {
            assert_eq!(Failure::of_errcode(code), Failure::Recipient, "{code}");
        }
        for code in [40164, 48001, 45028] {
            assert_eq!(Failure::of_errcode(code), Failure::Config, "{code}");
        }
        for code in [45002, 45065] {
            assert_eq!(Failure::of_errcode(code), Failure::Rejected, "{code}");
        }
        assert_eq!(
            ApiError::Network("reset".into()).failure(),
            Failure::Retry,
            "a network error is retried"
        );
    }

    #[test]
    fn a_rate_limit_lets_a_burst_through_then_spaces_calls_evenly() {
        let limit = RateLimit::new(10, 3);
        let t0 = Instant::now();
        let waits: Vec<_> = (0..6).map(|_| limit.delay(t0)).collect();
        assert_eq!(
            &waits[..3],
            &[Duration::ZERO; 3],
            "a burst of 3 goes at once"
        );
        assert_eq!(waits[3], Duration::from_millis(100));
        assert_eq!(waits[4], Duration::from_millis(200));
        assert_eq!(waits[5], Duration::from_millis(300));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(limit.delay(later), Duration::ZERO, "an idle limit refills");
    }

    fn quick() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            error_rate: 0.5,
            min_calls: 10,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
        }
    }

    #[test]
    fn a_breaker_opens_after_failures_in_a_row_then_probes_once_and_closes_on_success() {
        let t0 = Instant::now();
        let mut b = Breaker::new(quick(), t0);
        assert_eq!(b.record(t0, false), None);
        assert_eq!(b.record(t0, false), None);
        assert_eq!(b.record(t0, false), Some(BreakerState::Open));
        let (allowed, _) = b.allow(t0 + Duration::from_secs(1));
        assert_eq!(allowed, Err(Duration::from_secs(4)), "open: calls wait");

        let probe_at = t0 + Duration::from_secs(5);
        assert_eq!(
            b.allow(probe_at),
            (Ok(()), Some(BreakerState::HalfOpen)),
            "after open_for one probe goes"
        );
        assert!(b.allow(probe_at).0.is_err(), "only one probe at a time");
        assert_eq!(b.record(probe_at, true), Some(BreakerState::Closed));
        assert_eq!(b.allow(probe_at).0, Ok(()));
    }

    #[test]
    fn a_failed_probe_reopens_the_breaker_for_another_period() {
        let t0 = Instant::now();
        let mut b = Breaker::new(quick(), t0);
        for _ in 0..3 {
            b.record(t0, false);
        }
        let probe_at = t0 + Duration::from_secs(5);
        assert!(b.allow(probe_at).0.is_ok());
        assert_eq!(b.record(probe_at, false), Some(BreakerState::Open));
        assert_eq!(
            b.allow(probe_at + Duration::from_secs(1)).0,
            Err(Duration::from_secs(4))
        );
    }

    #[test]
    fn a_breaker_opens_on_a_high_error_rate_even_without_failures_in_a_row() {
        let t0 = Instant::now();
        let mut b = Breaker::new(quick(), t0);
        let mut opened = None;
        for i in 0..10 {
            let change = b.record(t0, i % 2 == 0);
            if change.is_some() {
                opened = Some((i, change));
            }
        }
        assert_eq!(
            opened,
            Some((9, Some(BreakerState::Open))),
            "half of 10 calls failed, never two in a row"
        );
    }

    #[test]
    fn a_probe_that_never_reports_does_not_hold_the_breaker_half_open_for_ever() {
        let t0 = Instant::now();
        let mut b = Breaker::new(quick(), t0);
        for _ in 0..3 {
            b.record(t0, false);
        }
        let probe_at = t0 + Duration::from_secs(5);
        assert!(b.allow(probe_at).0.is_ok(), "the probe goes, and is lost");
        assert!(b.allow(probe_at + Duration::from_secs(1)).0.is_err());
        assert_eq!(
            b.allow(probe_at + Duration::from_secs(5)).0,
            Ok(()),
            "another probe after open_for"
        );
    }

    #[test]
    fn a_recipient_error_is_not_an_outage() {
        let t0 = Instant::now();
        let mut b = Breaker::new(quick(), t0);
        for _ in 0..50 {
            assert_eq!(b.record(t0, true), None);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn the_window_rules_refuse_what_wechat_would_refuse() {
        let rules = WindowRules::default();
        let w = |sent, undeliverable| {
            Some(ContactWindow {
                last_interaction: 1_000,
                sent,
                undeliverable,
            })
        };
        assert!(matches!(
            reserve_in(w(0, None), 1_000 + 48 * 3600 - 1, rules).0,
            Reserved::Granted { window: 1_000 }
        ));
        assert!(matches!(
            reserve_in(w(0, None), 1_000 + 48 * 3600, rules).0,
            Reserved::Refused(Refusal::OutsideWindow { .. })
        ));
        assert_eq!(
            reserve_in(w(5, None), 1_001, rules).0,
            Reserved::Refused(Refusal::OverBudget { sent: 5 }),
            "the sixth message after one user message is refused"
        );
        assert_eq!(
            reserve_in(w(0, Some(45015)), 1_001, rules).0,
            Reserved::Refused(Refusal::Undeliverable { code: 45015 })
        );
    }

    #[test]
    fn a_cached_token_never_shows_in_debug_output() {
        let t = CachedToken {
            token: "SECRET_ACCESS_TOKEN".into(),
            expires_at: 1,
        };
        assert!(!format!("{t:?}").contains("SECRET"));
    }
}
