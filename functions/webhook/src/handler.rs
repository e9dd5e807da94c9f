//! The webhook's logic, free of any HTTP framework: a request's query and
//! body in, a status and body out. The Lambda function and `wca serve`
//! both mount it through [`crate::router`].
//!
//! Per POST: verify and open the request (signature, timestamp window, size,
//! decryption, XML), claim the message's dedup key, decide the reply
//! against the stored conversation, then write everything the message
//! produced in one [`MessageCommit`]: the archived message, the
//! conversation, the events, the sealed reply remembered for WeChat's
//! retries, and the reply archived beside the message. On redb that is one
//! transaction (a message is fully processed or not at all); elsewhere the
//! writes go one by one ([`SequentialCommit`]). Then answer. A retry of a
//! finished message gets the remembered bytes; a retry that races the
//! first delivery waits for it.
//!
//! WeChat hangs up after 5 s and retries twice, 5 s apart. A message is
//! therefore processed in a task of its own ([`Webhook::handle_post_detached`])
//! that finishes whatever happens to the connection, so a retry finds it
//! done; shutdown waits for those tasks ([`Webhook::drain`]). A claim's lease
//! (8 s by default) is shorter than WeChat's last retry, so a retry takes
//! over a delivery that died with its process. A retry never answers
//! `success` for a message it has not seen finished: WeChat would stop
//! retrying and the customer would get nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;
use wca_converse::{Message, Pipeline};
use wca_core::{
    ArchivedMessage, ArchivedReply, Begin, Clock, Committed, ConversationStore, Event, EventKind,
    EventSink, IdempotencyStore, MessageArchive, MessageCommit, MessageQueue, MessageWrites,
    OpenId, PortError, SequentialCommit, StagedConversations,
};
use wca_dialog::{Input, Shop};
use wca_wechat::{
    Inbound, InboundBody, WechatError,
    callback::{OpenedRequest, Query},
    reply::Reply,
    xml::Event as WxEvent,
};

use crate::settings::Settings;

mod respond;
pub use respond::{RESPOND_RECORD_SECS, RespondError, Responded};

/// What WeChat accepts as "received, no reply".
pub const SUCCESS: &str = "success";

/// An HTTP answer, framework-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    /// HTTP status.
    pub status: u16,
    /// `text/xml` for replies, `text/plain` otherwise.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl WebhookResponse {
    fn plain(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    fn from_stored(body: String) -> Self {
        if body == SUCCESS {
            Self::plain(200, body)
        } else {
            Self {
                status: 200,
                content_type: "application/xml; charset=utf-8",
                body,
            }
        }
    }

    fn internal() -> Self {
        Self::plain(500, "internal error")
    }
}

/// The messages being processed right now, so that shutdown can wait for
/// them.
#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// One message being processed; dropping it (the task ended, however)
/// counts it out.
struct Working(Arc<InFlight>);

impl InFlight {
    fn enter(self: &Arc<Self>) -> Working {
        self.count.fetch_add(1, Ordering::SeqCst);
        Working(Arc::clone(self))
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// How many times a message is decided again when its conversation
/// changed between reading and committing (another message of the same
/// user got there first).
const COMMIT_ATTEMPTS: u32 = 5;

/// One lock per user with a message in progress, so that one message of a
/// user at a time takes its turn. A lock lives as long as a message holds
/// or waits for it; the map drops the dead entries as it grows.
#[derive(Default)]
struct Turns {
    locks: std::sync::Mutex<TurnLocks>,
}

#[derive(Default)]
struct TurnLocks {
    by_user: std::collections::HashMap<String, std::sync::Weak<tokio::sync::Mutex<()>>>,
    /// The size at which dead entries are swept next.
    sweep_at: usize,
}

impl Turns {
    async fn lock(&self, openid: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            let live = locks.by_user.get(openid).and_then(std::sync::Weak::upgrade);
            match live {
                Some(lock) => lock,
                None => {
                    if locks.by_user.len() >= locks.sweep_at {
                        locks.by_user.retain(|_, lock| lock.strong_count() > 0);
                        locks.sweep_at = (2 * locks.by_user.len()).max(1024);
                    }
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks
                        .by_user
                        .insert(openid.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

/// How long refused requests are tallied before their counts are emitted.
pub const REFUSAL_WINDOW_SECS: i64 = 60;

/// Refused requests, tallied in memory: junk traffic (scanners, a wrong
/// token, replays) costs one event per reason per window instead of an
/// event, a queue message and an event-log item per request.
struct Refusals {
    /// Tells this process' tallies apart from other instances'.
    instance: u64,
    /// When the open window started (`i64::MAX`: nothing tallied), read
    /// without the lock by every request to see whether one is due.
    started: AtomicI64,
    counts: std::sync::Mutex<BTreeMap<&'static str, u64>>,
}

impl Default for Refusals {
    fn default() -> Self {
        Self {
            instance: rand::rng().random(),
            started: AtomicI64::new(i64::MAX),
            counts: std::sync::Mutex::default(),
        }
    }
}

impl Refusals {
    fn counts(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, u64>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tallies one refusal; `true` when it is the first of its reason in
    /// the window (the one worth a log line).
    fn add(&self, reason: &'static str, now: i64) -> bool {
        let mut counts = self.counts();
        if counts.is_empty() {
            self.started.store(now, Ordering::SeqCst);
        }
        let count = counts.entry(reason).or_default();
        *count += 1;
        *count == 1
    }

    /// Whether the open window has run its course at `now`.
    fn due(&self, now: i64) -> bool {
        now.saturating_sub(self.started.load(Ordering::Relaxed)) >= REFUSAL_WINDOW_SECS
    }

    /// Closes the window: one event per reason, with its count.
    fn take(&self, now: i64) -> Vec<Event> {
        let mut counts = self.counts();
        let started = self.started.swap(i64::MAX, Ordering::SeqCst);
        let unique = format!("{started}-{:016x}", self.instance);
        std::mem::take(&mut *counts)
            .into_iter()
            .map(|(reason, count)| Event::requests_rejected(reason, count, &unique, now))
            .collect()
    }
}

/// The ports the webhook writes to.
#[derive(Clone)]
pub struct Ports {
    /// Raw + parsed inbound messages, and our replies.
    pub archive: Arc<dyn MessageArchive>,
    /// Dedup of WeChat's retries, with the reply remembered.
    pub dedup: Arc<dyn IdempotencyStore>,
    /// `MessageReceived` / `ReplySent` / `RequestRejected`.
    pub events: Arc<dyn EventSink>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// Each user's conversation state.
    pub conversations: Arc<dyn ConversationStore>,
    /// The shop's order, ticket and profile systems (any may be absent).
    pub shop: Shop,
    /// Writes everything a message produced at once; `None`: one write
    /// after another through the ports above ([`SequentialCommit`]).
    pub commit: Option<Arc<dyn MessageCommit>>,
}

/// How a decided reply goes out.
#[derive(Clone, Copy)]
enum ReplyBy<'a> {
    /// Sealed into the answer to this request.
    Passive(&'a OpenedRequest),
    /// Passive, unless it was decided more than the limit after the
    /// request arrived: then WeChat gets `success` and the reply goes into
    /// the outbox (WeChat stops waiting after 5 s).
    PassiveUnlessLate(&'a OpenedRequest, std::time::Instant, Duration),
    /// Into the outbox; WeChat gets `success`.
    Outbox,
    /// Only recorded, kept this many seconds (the responder sends it
    /// itself); `success`.
    Recorded(i64),
}

/// Async replies (`WCA_REPLY_MODE=async`): WeChat gets `success` at once,
/// and the reply goes into the outbox, written with the message, for a
/// sender to deliver through the customer-service API.
pub struct AsyncReplies {
    /// Each user's window for messages we start: every message opens one.
    pub contacts: Arc<dyn wca_core::ContactWindows>,
    /// Woken after each commit that put a reply in the outbox.
    pub wake: Arc<tokio::sync::Notify>,
    /// Where messages go for a responder to answer (Lambda: SQS FIFO);
    /// `None`: the webhook decides, and the reply goes into the outbox of
    /// its commit (`wca serve`).
    pub queue: Option<Arc<dyn MessageQueue>>,
    /// `None`: every reply goes through the outbox. `Some(limit)`: replies
    /// are passive, except one decided more than `limit` after its request
    /// arrived (a slow order lookup), which WeChat would no longer take:
    /// it goes through the outbox. Ignored with a `queue`.
    pub late_after: Option<Duration>,
}

/// The webhook: settings plus ports.
#[derive(Clone)]
pub struct Webhook {
    settings: Arc<Settings>,
    ports: Ports,
    pipeline: Pipeline,
    commit: Arc<dyn MessageCommit>,
    turns: Arc<Turns>,
    in_flight: Arc<InFlight>,
    refusals: Arc<Refusals>,
    async_replies: Option<Arc<AsyncReplies>>,
    triggers: Option<Arc<dyn wca_core::campaign::MessageTriggers>>,
}

impl Webhook {
    /// A webhook over these ports.
    pub fn new(settings: Settings, mut ports: Ports) -> Self {
        // Replies that recall a customer's earlier questions read the
        // archive this webhook writes.
        if ports.shop.history.is_none() {
            ports.shop.history = Some(ports.archive.clone());
        }
        let pipeline = Pipeline::new(
            settings.dialog.clone(),
            settings.filter.clone(),
            settings.fallback.clone(),
            settings.nlp.clone(),
            ports.shop.clone(),
            ports.conversations.clone(),
        );
        let commit = ports.commit.clone().unwrap_or_else(|| {
            Arc::new(SequentialCommit {
                archive: ports.archive.clone(),
                conversations: ports.conversations.clone(),
                events: ports.events.clone(),
                dedup: ports.dedup.clone(),
            })
        });
        Self {
            settings: Arc::new(settings),
            ports,
            pipeline,
            commit,
            turns: Arc::default(),
            in_flight: Arc::default(),
            refusals: Arc::default(),
            async_replies: None,
            triggers: None,
        }
    }

    /// Reports each text it handled to `triggers` (triggered campaigns),
    /// once it is committed.
    pub fn with_triggers(mut self, triggers: Arc<dyn wca_core::campaign::MessageTriggers>) -> Self {
        self.triggers = Some(triggers);
        self
    }

    /// Answers `success` and leaves each reply in the outbox instead of
    /// replying passively. The commit must write the outbox (`wca
    /// serve`'s redb commit does).
    pub fn with_async_replies(mut self, replies: AsyncReplies) -> Self {
        self.async_replies = Some(Arc::new(replies));
        self
    }

    /// POST, processed in a task of its own that runs to the end even when
    /// the caller stops waiting (WeChat hangs up after 5 s; a dropped
    /// request would leave the message claimed and unanswered until its
    /// lease ran out). What the HTTP routes call.
    pub async fn handle_post_detached<B>(&self, query: Query, body: B) -> WebhookResponse
    where
        B: AsRef<[u8]> + Send + 'static,
    {
        let hook = self.clone();
        let working = self.in_flight.enter();
        let task = tokio::spawn(async move {
            let _working = working;
            hook.handle_post(&query, body.as_ref()).await
        });
        match task.await {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(error = %e, "message task failed; WeChat will retry");
                WebhookResponse::internal()
            }
        }
    }

    /// Messages being processed right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.count.load(Ordering::SeqCst)
    }

    /// Waits until no message is being processed, at most `within`;
    /// `true` when none is left. Shutdown calls it after it stops
    /// accepting requests.
    pub async fn drain(&self, within: Duration) -> bool {
        let idle = async {
            loop {
                let notified = self.in_flight.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.in_flight() == 0 {
                    return;
                }
                notified.await;
            }
        };
        let drained = tokio::time::timeout(within, idle).await.is_ok();
        // Refusals still tallied are emitted now rather than lost.
        self.flush_refusals(self.ports.clock.now()).await;
        drained
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// GET: WeChat's URL verification. Echoes `echostr` when signed.
    pub async fn handle_get(&self, query: &Query) -> WebhookResponse {
        let now = self.ports.clock.now();
        match self.settings.callback.verify_url(query, now) {
            Ok(echo) => WebhookResponse::plain(200, echo),
            Err(e) => self.reject(&e, now).await,
        }
    }

    /// POST: a message or event from WeChat.
    pub async fn handle_post(&self, query: &Query, body: &[u8]) -> WebhookResponse {
        let now = self.ports.clock.now();
        let opened = match self.settings.callback.open_request(query, body, now) {
            Ok(opened) => opened,
            Err(e) => return self.reject(&e, now).await,
        };
        self.flush_refusals_if_due(now).await;
        let key = opened.inbound.dedup_key();
        let started = std::time::Instant::now();
        loop {
            let now = self.ports.clock.now();
            match self
                .ports
                .dedup
                .begin(&key, now, self.settings.lease_secs)
                .await
            {
                Ok(Begin::Fresh) => break,
                Ok(Begin::Done(stored)) => {
                    tracing::info!(msg_key = %key, "retry answered with the first reply");
                    let (body, reply) = split_stored(&stored);
                    // The first delivery may have died between recording
                    // its answer and archiving its reply: archive it now
                    // (the archive keeps the first copy, so this is a no-op
                    // when it is already there).
                    if let Some(reply) = reply
                        && let Err(e) = self.ports.archive.put_reply(&reply).await
                    {
                        // Not answered until it is on record: WeChat
                        // retries, and the next retry tries again.
                        return self.failed(&key, "archive", &e);
                    }
                    return WebhookResponse::from_stored(body.to_owned());
                }
                Ok(Begin::InFlight) if started.elapsed() < self.settings.inflight_wait => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Begin::InFlight) => {
                    // Not `success`: WeChat would stop retrying, and the
                    // reply would never reach the customer.
                    tracing::warn!(msg_key = %key, "first delivery still running; asking WeChat to retry");
                    return WebhookResponse::plain(503, "still processing; retry");
                }
                Err(e) => return self.failed(&key, "dedup", &e),
            }
        }
        let inbound = &opened.inbound;
        let now = self.ports.clock.now();
        let message = ArchivedMessage {
            key: key.clone(),
            openid: inbound.from_user_name.clone(),
            msg_type: inbound.kind_label(),
            create_time: inbound.create_time,
            received_at: now,
            raw_xml: inbound.raw_xml.clone(),
            parsed: serde_json::to_value(&inbound.body).unwrap_or(serde_json::Value::Null),
            expires_at: now.saturating_add(self.settings.retention_secs),
        };
        // A delivery gives up before its claim's lease runs out, so a retry
        // that takes the message over never runs beside it.
        let deadline = processing_deadline(self.settings.lease_secs);
        let processed = tokio::time::timeout(deadline, self.process(&opened, &message, started))
            .await
            .unwrap_or_else(|_| {
                Err((
                    "deadline",
                    PortError::Unavailable(format!(
                        "not done within {} ms, before the claim's lease ends",
                        deadline.as_millis()
                    )),
                ))
            });
        match processed {
            Ok(response) => response,
            Err((stage, e)) => {
                // The claim first, while its lease still runs: a retry may
                // take the message over from now on.
                if let Err(release) = self.ports.dedup.release(&key).await {
                    tracing::error!(msg_key = %key, error = %release, "could not release claim");
                }
                // Unanswered, but on record: WeChat will retry, and if no
                // retry gets through, the message is still in the archive.
                if let Err(e) = self.ports.archive.put(&message).await {
                    tracing::error!(msg_key = %key, error = %e, "unhandled message not archived");
                }
                self.failed(&key, stage, &e)
            }
        }
    }

    async fn process(
        &self,
        opened: &OpenedRequest,
        message: &ArchivedMessage,
        arrived: std::time::Instant,
    ) -> Result<WebhookResponse, (&'static str, PortError)> {
        let inbound = &opened.inbound;
        let now = message.received_at;
        let key = message.key.as_str();
        let Some(replies) = &self.async_replies else {
            let (body, _) = self
                .decide_and_commit(inbound, message, key, ReplyBy::Passive(opened))
                .await?;
            return Ok(WebhookResponse::from_stored(body));
        };
        // Every message opens the user's window for messages we start.
        replies
            .contacts
            .touch(&inbound.from_user_name, now)
            .await
            .map_err(|e| ("window", e))?;
        if let Some(queue) = &replies.queue {
            return self.enqueue(queue.as_ref(), message).await;
        }
        let by = match replies.late_after {
            Some(limit) => ReplyBy::PassiveUnlessLate(opened, arrived, limit),
            None => ReplyBy::Outbox,
        };
        let (body, _) = self.decide_and_commit(inbound, message, key, by).await?;
        replies.wake.notify_one();
        Ok(WebhookResponse::from_stored(body))
    }

    /// Async replies through a queue (Lambda): the message is archived and
    /// queued for the responder, then `success` is recorded for WeChat's
    /// retries. A failure before the record makes WeChat retry, and the
    /// queue drops the second copy of a key.
    async fn enqueue(
        &self,
        queue: &dyn MessageQueue,
        message: &ArchivedMessage,
    ) -> Result<WebhookResponse, (&'static str, PortError)> {
        self.ports
            .archive
            .put(message)
            .await
            .map_err(|e| ("archive", e))?;
        queue.enqueue(message).await.map_err(|e| ("queue", e))?;
        self.ports
            .dedup
            .complete(
                &message.key,
                SUCCESS,
                message.received_at,
                self.settings.dedup_ttl_secs,
            )
            .await
            .map_err(|e| ("dedup", e))?;
        tracing::info!(msg_key = %message.key, kind = %message.msg_type, "message queued for the responder");
        Ok(WebhookResponse::from_stored(SUCCESS.to_owned()))
    }

    /// Runs the pipeline on `inbound` and commits what it produced, the
    /// result recorded under `dedup_key`, the reply going out `by`.
    /// Returns the body WeChat gets and the reply.
    async fn decide_and_commit(
        &self,
        inbound: &Inbound,
        message: &ArchivedMessage,
        dedup_key: &str,
        by: ReplyBy<'_>,
    ) -> Result<(String, Option<ArchivedReply>), (&'static str, PortError)> {
        let now = message.received_at;
        let key = message.key.as_str();
        let input = match (&inbound.body, inbound.text()) {
            (_, Some(text)) => Input::Text(text),
            (InboundBody::Event(WxEvent::Subscribe { .. }), None) => Input::Subscribe,
            _ => Input::Other,
        };
        let turn = Message {
            msg_key: key,
            openid: &inbound.from_user_name,
            msg_type: &message.msg_type,
            create_time: inbound.create_time,
            input,
        };
        // One message of a user at a time in this process: the second
        // decides on the conversation the first left, instead of both
        // deciding on the same one and all but one starting over.
        let _turn = self.turns.lock(&inbound.from_user_name).await;
        for attempt in 0..COMMIT_ATTEMPTS {
            if attempt > 0 {
                let jitter = rand::rng().random_range(0..=25u64 << attempt);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            // The dialog reads the stored conversation but only stages
            // what it would write: the commit below writes it with
            // everything else the message produced.
            let staged = Arc::new(StagedConversations::new(
                self.ports.conversations.clone(),
                OpenId::is_board,
            ));
            let outcome = self
                .pipeline
                .with_conversations(staged.clone())
                .handle(&turn, now)
                .await
                .map_err(|e| ("dialog", e))?;
            let (seal, outbox) = match by {
                ReplyBy::Passive(opened) => (Some(opened), false),
                ReplyBy::PassiveUnlessLate(opened, arrived, limit) => {
                    if arrived.elapsed() > limit {
                        tracing::info!(msg_key = %key, after_ms = arrived.elapsed().as_millis(), "reply decided too late for a passive answer; it goes through the customer-service API");
                        (None, true)
                    } else {
                        (Some(opened), false)
                    }
                }
                ReplyBy::Outbox => (None, true),
                ReplyBy::Recorded(_) => (None, false),
            };
            let body = match (outcome.reply.as_ref().map(Reply::from), seal) {
                (Some(reply), Some(opened)) => {
                    let xml = reply.to_xml(&inbound.from_user_name, &inbound.to_user_name, now);
                    self.settings.callback.seal_reply(opened, &xml, now)
                }
                _ => SUCCESS.to_owned(),
            };
            let reply = outcome.reply.as_ref().map(|sent| ArchivedReply {
                key: key.to_owned(),
                openid: inbound.from_user_name.clone(),
                sent_at: now,
                reply: sent.clone(),
                route: outcome.route.clone(),
                expires_at: now.saturating_add(self.settings.retention_secs),
            });
            let intent = outcome.events.iter().find_map(|e| match &e.kind {
                EventKind::MessageReceived { intent, .. } => intent.clone(),
                _ => None,
            });
            let writes = MessageWrites {
                message: message.clone(),
                conversations: staged.take(),
                events: outcome.events,
                dedup_key: dedup_key.to_owned(),
                // The dedup record carries the reply's archive entry too,
                // so a retry can archive it if this process dies before
                // the reply is archived.
                result: stored_result(&body, reply.as_ref()),
                result_ttl_secs: match by {
                    ReplyBy::Recorded(ttl) => ttl,
                    _ => self.settings.dedup_ttl_secs,
                },
                reply: reply.clone(),
                now,
                outbox,
            };
            match self.commit.commit(&writes).await {
                Ok(Committed::Done) => {
                    tracing::info!(msg_key = %key, kind = %message.msg_type, route = %outcome.route, "message handled");
                    if let (Some(triggers), Input::Text(text)) = (&self.triggers, &turn.input) {
                        triggers
                            .on_message(&inbound.from_user_name, text, intent.as_deref(), now)
                            .await;
                    }
                    return Ok((body, reply));
                }
                Ok(Committed::Conflict) => {
                    tracing::debug!(msg_key = %key, "conversation changed meanwhile; deciding again");
                }
                Err(e) => return Err(("commit", e)),
            }
        }
        Err((
            "commit",
            PortError::Unavailable(format!(
                "the conversation kept changing under {COMMIT_ATTEMPTS} attempts"
            )),
        ))
    }

    async fn reject(&self, error: &WechatError, now: i64) -> WebhookResponse {
        let reason = error.reason();
        if self.refusals.add(reason, now) {
            tracing::warn!(
                reason,
                "request rejected (more of this reason in the next minute are only counted)"
            );
        } else {
            tracing::debug!(reason, "request rejected");
        }
        self.flush_refusals_if_due(now).await;
        WebhookResponse::plain(error.status(), error.to_string())
    }

    /// Emits the tallied refusals once their window has run its course.
    /// Every request checks (one atomic read); a quiet webhook emits them
    /// with its next request or at shutdown ([`Webhook::drain`]).
    async fn flush_refusals_if_due(&self, now: i64) {
        if self.refusals.due(now) {
            self.flush_refusals(now).await;
        }
    }

    async fn flush_refusals(&self, now: i64) {
        let events = self.refusals.take(now);
        if events.is_empty() {
            return;
        }
        let total: u64 = events
            .iter()
            .map(|e| match e.kind {
                EventKind::RequestRejected { count, .. } => count,
                _ => 0,
            })
            .sum();
        tracing::info!(total, "requests refused in the last window");
        // Counting refusals is best effort: the requests were refused
        // either way.
        if let Err(e) = self.ports.events.emit(&events).await {
            tracing::warn!(error = %e, total, "could not record the refused requests");
        }
    }

    fn failed(&self, key: &str, stage: &str, error: &PortError) -> WebhookResponse {
        tracing::error!(msg_key = %key, stage, error = %error, "message not handled; WeChat will retry");
        WebhookResponse::internal()
    }
}

/// How long a delivery may work on a message: two seconds less than the
/// claim's lease (at least one second), so that it has let go before a
/// retry can take the message over, however late in its first second the
/// claim was taken (leases end on whole seconds). A write already handed
/// to the store may still land after that; a retry then finds the turn
/// taken ([`wca_core::LastTurn`]) and answers as recorded.
fn processing_deadline(lease_secs: i64) -> Duration {
    Duration::from_secs(lease_secs.saturating_sub(2).max(1).unsigned_abs())
}

/// What the dedup record keeps of an answer: the body WeChat gets, then,
/// when there is a reply, a NUL and the reply's archive entry as JSON. XML
/// never holds a NUL, so the split is unambiguous.
fn stored_result(body: &str, reply: Option<&ArchivedReply>) -> String {
    match reply.and_then(|r| serde_json::to_string(r).ok()) {
        Some(json) => format!("{body}\0{json}"),
        None => body.to_owned(),
    }
}

/// The body and reply entry of a [`stored_result`]. A record written
/// before replies were kept in it, or an entry that no longer decodes,
/// gives the body alone.
fn split_stored(stored: &str) -> (&str, Option<ArchivedReply>) {
    match stored.split_once('\0') {
        Some((body, json)) => (body, serde_json::from_str(json).ok()),
        None => (stored, None),
    }
}
