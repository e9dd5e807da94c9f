//! The responder of async replies on Lambda: the webhook queued a message
//! ([`super::AsyncReplies::queue`]); this decides its reply with the same
//! pipeline and sends it through the customer-service API.
//!
//! SQS delivers a message at least once, so both steps are claimed:
//! - `respond:{key}`: the decision, committed like the webhook's (the
//!   conversation moves once); a redelivery reads the reply it recorded;
//! - `sent:{key}`: the send. It is claimed before WeChat is called and
//!   completed after, so a redelivery never sends again. A claim left by a
//!   delivery that died mid-send is reported as interrupted, not sent
//!   again (whether WeChat got it is unknown): at most once, never twice.
//!   A send WeChat did not take (busy, the breaker open) gives its claim
//!   back, and the message comes back later.

use std::time::Duration;

use wca_core::{
    ApiError, ArchivedMessage, ArchivedReply, Begin, CustomMessage, Event, Failure, Outbound,
    Outgoing, PortError,
};
use wca_wechat::Inbound;

use super::{Webhook, processing_deadline, split_stored};

/// How long the records of a decision and of a send are kept: longer
/// than the queue keeps a message (WeChat's 48-hour window), so a late
/// redelivery never decides or sends again.
pub const RESPOND_RECORD_SECS: i64 = 72 * 3600;

/// When to try again after WeChat answered busy (its retries with
/// back-off already spent).
const BUSY_RETRY: Duration = Duration::from_secs(5);

/// When to try again after WeChat refused the account's setup (an IP not
/// on the whitelist, no permission, a wrong AppSecret): an operator must
/// act, and the reply waits for them rather than being lost.
const CONFIG_RETRY: Duration = Duration::from_secs(300);

/// What [`Webhook::respond`] did with a queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Responded {
    /// The reply went out through the customer-service API.
    Sent,
    /// An earlier delivery of the same message sent it already.
    AlreadySent,
    /// The message has no reply (an event with nothing to say).
    NoReply,
    /// Not sent, and trying again would not help; why.
    Dropped(String),
    /// Whether WeChat has it is unknown: an earlier delivery claimed the
    /// send and stopped before it knew the outcome, or WeChat's answer was
    /// lost. Not sent again, so that no one gets it twice.
    Interrupted,
}

/// Why a queued message must come back later; nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    /// A store failed.
    #[error("{stage}: {error}")]
    Store {
        /// Which step.
        stage: &'static str,
        /// What the store said.
        error: PortError,
    },
    /// Another delivery is deciding this message (or died doing so and
    /// its lease has not run out).
    #[error("another delivery is deciding this message")]
    Deciding,
    /// WeChat did not take it now (busy, over its limit, the breaker
    /// open, the account's setup refused); try again later.
    #[error("WeChat did not take the reply now: {0}")]
    NotNow(ApiError),
}

impl RespondError {
    /// When trying again is worth it: when the breaker lets a call
    /// through, a few seconds after WeChat was busy; `None` when unknown
    /// (a store failed, another delivery holds the decision).
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            RespondError::NotNow(ApiError::Refused(wca_core::Refusal::CircuitOpen {
                retry_in,
            })) => Some(*retry_in),
            RespondError::NotNow(e) if e.failure() == Failure::Config => Some(CONFIG_RETRY),
            RespondError::NotNow(_) => Some(BUSY_RETRY),
            _ => None,
        }
    }
}

fn store(stage: &'static str) -> impl FnOnce(PortError) -> RespondError {
    move |error| RespondError::Store { stage, error }
}

impl Webhook {
    /// Answers a message the webhook queued: decides the reply (once, see
    /// the module's notes) and sends it through `outbound`. `Err` means
    /// "not sent, bring it back later"; every `Ok` is final.
    pub async fn respond(
        &self,
        message: &ArchivedMessage,
        outbound: &Outbound,
    ) -> Result<Responded, RespondError> {
        let Some(reply) = self.decided(message).await? else {
            return Ok(Responded::NoReply);
        };
        let content = match &reply.reply {
            Outgoing::Text { content } => content.clone(),
            // A hand-over exists only as a passive reply.
            Outgoing::TransferToAgent { .. } => {
                tracing::info!(msg_key = %message.key, "a hand-over has no customer-service message; not sent");
                return Ok(Responded::Dropped(
                    "a hand-over is a passive reply only".into(),
                ));
            }
        };
        let claim = format!("sent:{}", message.key);
        let now = self.ports.clock.now();
        match self
            .ports
            .dedup
            .begin(&claim, now, RESPOND_RECORD_SECS)
            .await
            .map_err(store("send claim"))?
        {
            Begin::Fresh => {}
            Begin::Done(outcome) if outcome == "sent" => return Ok(Responded::AlreadySent),
            Begin::Done(outcome) if outcome == "unknown" => return Ok(Responded::Interrupted),
            Begin::Done(outcome) => {
                return Ok(Responded::Dropped(format!("given up before: {outcome}")));
            }
            Begin::InFlight => {
                tracing::warn!(msg_key = %message.key, "an earlier delivery stopped while sending this reply; not sent again");
                let event = Event::outbound_failed(
                    &message.key,
                    &reply.openid,
                    "text",
                    Failure::Retry,
                    "interrupted",
                    0,
                    now,
                );
                let _ = self.ports.events.emit(&[event]).await;
                return Ok(Responded::Interrupted);
            }
        }
        let msg = CustomMessage::Text { content };
        match outbound
            .send_custom(&reply.openid, &msg, &message.key)
            .await
        {
            Ok(()) => {
                self.finish_send(&claim, "sent").await;
                Ok(Responded::Sent)
            }
            // Certainly not delivered (WeChat said so, or was not reached):
            // the claim goes back for the retry.
            Err(e) if matches!(e.failure(), Failure::Retry | Failure::Config) => {
                if e.failure() == Failure::Config {
                    tracing::error!(msg_key = %message.key, error = %e, "WeChat refused the account's setup; the reply waits on the queue until an operator fixes it");
                }
                if let Err(release) = self.ports.dedup.release(&claim).await {
                    tracing::error!(msg_key = %message.key, error = %release, "could not give back a send claim; the retry will report it interrupted");
                }
                Err(RespondError::NotNow(e))
            }
            Err(e) if e.failure() == Failure::Unknown => {
                tracing::warn!(msg_key = %message.key, error = %e, "WeChat's answer was lost; the reply may have been delivered and is not sent again");
                self.finish_send(&claim, "unknown").await;
                Ok(Responded::Interrupted)
            }
            Err(e) => {
                tracing::warn!(msg_key = %message.key, error = %e, "async reply not sent");
                self.finish_send(&claim, &format!("{}:{}", e.failure().as_str(), e.code()))
                    .await;
                Ok(Responded::Dropped(e.to_string()))
            }
        }
    }

    /// Records a send's outcome under its claim. A failure here leaves the
    /// claim in flight: a redelivery then reports it interrupted rather
    /// than send it twice.
    async fn finish_send(&self, claim: &str, outcome: &str) {
        let now = self.ports.clock.now();
        if let Err(e) = self
            .ports
            .dedup
            .complete(claim, outcome, now, RESPOND_RECORD_SECS)
            .await
        {
            tracing::error!(claim, error = %e, "could not record a send's outcome");
        }
    }

    /// The reply to `message`: decided now and committed, or read back
    /// from the decision an earlier delivery recorded.
    async fn decided(
        &self,
        message: &ArchivedMessage,
    ) -> Result<Option<ArchivedReply>, RespondError> {
        let decision = format!("respond:{}", message.key);
        let now = self.ports.clock.now();
        match self
            .ports
            .dedup
            .begin(&decision, now, self.settings.lease_secs)
            .await
            .map_err(store("decision claim"))?
        {
            Begin::Fresh => {}
            Begin::Done(stored) => {
                let (_, reply) = split_stored(&stored);
                if let Some(reply) = &reply {
                    // The first delivery may have stopped before archiving
                    // it; the archive keeps the first copy.
                    self.ports
                        .archive
                        .put_reply(reply)
                        .await
                        .map_err(store("archive"))?;
                }
                return Ok(reply);
            }
            Begin::InFlight => return Err(RespondError::Deciding),
        }
        let inbound = match Inbound::parse(&message.raw_xml) {
            Ok(inbound) => inbound,
            Err(e) => {
                // The webhook read it, so this does not happen; if it
                // does, trying again will not help. It is archived.
                tracing::error!(msg_key = %message.key, error = %e, "a queued message cannot be read; not answered");
                let _ = self.ports.dedup.release(&decision).await;
                return Ok(None);
            }
        };
        let deadline = processing_deadline(self.settings.lease_secs);
        let decided = tokio::time::timeout(
            deadline,
            self.decide_and_commit(
                &inbound,
                message,
                &decision,
                super::ReplyBy::Recorded(RESPOND_RECORD_SECS),
            ),
        )
        .await
        .unwrap_or_else(|_| {
            Err((
                "deadline",
                PortError::Unavailable(format!("not decided within {} ms", deadline.as_millis())),
            ))
        });
        match decided {
            Ok((_, reply)) => Ok(reply),
            Err((stage, error)) => {
                if let Err(e) = self.ports.dedup.release(&decision).await {
                    tracing::error!(msg_key = %message.key, error = %e, "could not release a decision claim");
                }
                Err(RespondError::Store { stage, error })
            }
        }
    }
}
