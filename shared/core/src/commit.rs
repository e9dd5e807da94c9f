//! Everything one message writes, committed together.
//!
//! The webhook decides a reply against [`StagedConversations`], which reads
//! through to the real store but only records the conversation it would
//! write. It then hands the whole outcome (the archived message, the
//! conversation, the events, the dedup record and the archived reply) to a
//! [`MessageCommit`] in one call:
//!
//! - a store with transactions (redb, in `wca serve`) applies it as one
//!   transaction: after a crash a message is either fully processed or not
//!   at all, and a message costs one durable write instead of several;
//! - [`SequentialCommit`] writes it through the separate ports one by one,
//!   each write idempotent, for stores that cannot do better (DynamoDB
//!   beside EventBridge in Lambda).
//!
//! A conversation that another message changed since it was read is a
//! [`Committed::Conflict`]: neither the conversation nor anything after it
//! is written (a transactional store writes nothing at all;
//! [`SequentialCommit`] has archived the message by then), and the caller
//! decides again.

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::{
    ArchivedMessage, ArchivedReply, ConversationState, ConversationStore, Event, EventSink,
    IdempotencyStore, MessageArchive, OpenId, PortError, Versioned,
};

/// A conversation as the dialog would store it: `state` becomes version
/// `expected + 1` if the stored version is still `expected`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationWrite {
    /// Whose conversation.
    pub openid: OpenId,
    /// The version the dialog read.
    pub expected: u64,
    /// What it decided.
    pub state: ConversationState,
    /// When the state may be forgotten.
    pub expires_at: i64,
}

/// Everything one message writes.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageWrites {
    /// The message as it arrived.
    pub message: ArchivedMessage,
    /// The conversations the dialog changed (at most the sender's).
    pub conversations: Vec<ConversationWrite>,
    /// What happened, to be counted or published.
    pub events: Vec<Event>,
    /// The dedup key the message was claimed under.
    pub dedup_key: String,
    /// What a retry of the message is answered with (see the webhook).
    pub result: String,
    /// How long the result is kept for retries.
    pub result_ttl_secs: i64,
    /// The reply, archived beside the message; `None` when there is none.
    pub reply: Option<ArchivedReply>,
    /// When the message was processed.
    pub now: i64,
    /// Async replies: the reply also goes into the outbox, to be sent
    /// through the customer-service API ([`crate::outbound::Outbox`]),
    /// in the same transaction as everything else.
    pub outbox: bool,
}

/// How a [`MessageCommit::commit`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Everything is written and durable.
    Done,
    /// A conversation changed since it was read: no conversation, event,
    /// result or reply was written (see [`SequentialCommit`] for the
    /// message itself).
    Conflict,
}

/// Writes everything one message produced.
#[async_trait]
pub trait MessageCommit: Send + Sync {
    /// Writes `writes`, or nothing when a conversation changed since it was
    /// read. A failure may leave part written only where the adapter says
    /// so ([`SequentialCommit`]); every part is idempotent, so the caller
    /// may run the message again.
    async fn commit(&self, writes: &MessageWrites) -> Result<Committed, PortError>;
}

/// [`MessageCommit`] through the separate ports, in the order that keeps a
/// failure part-way harmless: the message archived first (it is on record
/// even if nothing else is), then the conversation (a conflict stops here),
/// the events, the dedup record, and the reply's archive entry last (a
/// reply on record must be the one WeChat got). Each write is idempotent,
/// and the dedup record carries the reply entry, so a retry completes what
/// a failure left undone. Not atomic, but a failure part-way never moves a
/// conversation twice: the conversation records the message that took its
/// turn ([`crate::LastTurn`]), and a retry of that message is answered as
/// it was.
#[derive(Clone)]
pub struct SequentialCommit {
    /// Where messages and replies are archived.
    pub archive: Arc<dyn MessageArchive>,
    /// The conversation store.
    pub conversations: Arc<dyn ConversationStore>,
    /// Where events go.
    pub events: Arc<dyn EventSink>,
    /// The dedup records.
    pub dedup: Arc<dyn IdempotencyStore>,
}

#[async_trait]
impl MessageCommit for SequentialCommit {
    async fn commit(&self, writes: &MessageWrites) -> Result<Committed, PortError> {
        if writes.outbox && writes.reply.is_some() {
            return Err(PortError::Rejected(
                "async replies need a commit with an outbox (wca serve's redb store)".to_owned(),
            ));
        }
        self.archive.put(&writes.message).await?;
        for conversation in &writes.conversations {
            let stored = self
                .conversations
                .compare_and_set(
                    &conversation.openid,
                    conversation.expected,
                    &conversation.state,
                    conversation.expires_at,
                )
                .await?;
            if !stored {
                return Ok(Committed::Conflict);
            }
        }
        self.events.emit(&writes.events).await?;
        self.dedup
            .complete(
                &writes.dedup_key,
                &writes.result,
                writes.now,
                writes.result_ttl_secs,
            )
            .await?;
        if let Some(reply) = &writes.reply {
            // Failing here fails the delivery: WeChat retries, and the
            // retry archives the entry the dedup record holds before it
            // answers, so no reply reaches a customer off the record.
            self.archive.put_reply(reply).await?;
        }
        Ok(Committed::Done)
    }
}

/// A [`ConversationStore`] for one message: reads go to the real store,
/// and a compare-and-set is recorded instead of written, to be checked and
/// written by [`MessageCommit::commit`]. Keys that `pass_through` accepts
/// (the board of unresolved conversations, which every message may touch
/// and which is advisory) are written at once.
pub struct StagedConversations {
    inner: Arc<dyn ConversationStore>,
    pass_through: fn(&OpenId) -> bool,
    staged: Mutex<Vec<ConversationWrite>>,
}

impl StagedConversations {
    /// Stages over `inner`, passing through the keys `pass_through` accepts.
    pub fn new(inner: Arc<dyn ConversationStore>, pass_through: fn(&OpenId) -> bool) -> Self {
        Self {
            inner,
            pass_through,
            staged: Mutex::default(),
        }
    }

    /// The staged writes, leaving none.
    pub fn take(&self) -> Vec<ConversationWrite> {
        std::mem::take(&mut *self.staged())
    }

    fn staged(&self) -> MutexGuard<'_, Vec<ConversationWrite>> {
        self.staged.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ConversationStore for StagedConversations {
    async fn get(&self, openid: &OpenId, now: i64) -> Result<Versioned, PortError> {
        let staged = self
            .staged()
            .iter()
            .find(|w| &w.openid == openid)
            .map(|w| Versioned {
                version: w.expected + 1,
                state: if now < w.expires_at {
                    w.state.clone()
                } else {
                    ConversationState::default()
                },
            });
        match staged {
            Some(versioned) => Ok(versioned),
            None => self.inner.get(openid, now).await,
        }
    }

    async fn compare_and_set(
        &self,
        openid: &OpenId,
        expected: u64,
        state: &ConversationState,
        expires_at: i64,
    ) -> Result<bool, PortError> {
        if (self.pass_through)(openid) {
            return self
                .inner
                .compare_and_set(openid, expected, state, expires_at)
                .await;
        }
        crate::conversation::next_version(expected)?;
        let mut staged = self.staged();
        match staged.iter_mut().find(|w| &w.openid == openid) {
            // A second write over the staged one keeps the version first
            // read: the commit checks that one.
            Some(write) if expected == write.expected + 1 => {
                write.state = state.clone();
                write.expires_at = expires_at;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => {
                staged.push(ConversationWrite {
                    openid: openid.clone(),
                    expected,
                    state: state.clone(),
                    expires_at,
                });
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{
        MemoryArchive, MemoryConversationStore, MemoryEventSink, MemoryIdempotency,
    };
    use crate::{Begin, Outgoing};

    fn user() -> OpenId {
        OpenId::parse("o-user").expect("openid")
    }

    fn turns(n: u64) -> ConversationState {
        ConversationState {
            turns: n,
            ..ConversationState::default()
        }
    }

    struct Stores {
        archive: Arc<MemoryArchive>,
        conversations: Arc<MemoryConversationStore>,
        events: Arc<MemoryEventSink>,
        dedup: Arc<MemoryIdempotency>,
    }

    impl Stores {
        fn new() -> Self {
            Self {
                archive: Arc::default(),
                conversations: Arc::default(),
                events: Arc::default(),
                dedup: Arc::default(),
            }
        }

        /// Claims `key` as the webhook does, then commits its writes.
        async fn claim_and_commit(&self, key: &str, expected: u64) -> Committed {
            let now = 1_700_000_000;
            assert_eq!(
                self.dedup.begin(key, now, 30).await.expect("begin"),
                Begin::Fresh
            );
            self.sequential()
                .commit(&writes(key, expected))
                .await
                .expect("commit")
        }

        async fn history(&self, now: i64) -> Vec<crate::Archived> {
            self.archive
                .history(&user(), 10, now)
                .await
                .expect("history")
        }

        fn sequential(&self) -> SequentialCommit {
            SequentialCommit {
                archive: self.archive.clone(),
                conversations: self.conversations.clone(),
                events: self.events.clone(),
                dedup: self.dedup.clone(),
            }
        }
    }

    fn writes(key: &str, expected: u64) -> MessageWrites {
        let now = 1_700_000_000;
        MessageWrites {
            message: ArchivedMessage {
                key: key.to_owned(),
                openid: "o-user".to_owned(),
                msg_type: "text".to_owned(),
                create_time: now,
                received_at: now,
                raw_xml: "<xml/>".to_owned(),
                parsed: serde_json::json!({"type": "text", "content": "在吗"}),
                expires_at: now + 3600,
            },
            conversations: vec![ConversationWrite {
                openid: user(),
                expected,
                state: turns(expected + 1),
                expires_at: now + 3600,
            }],
            events: vec![Event::message_received(key, "o-user", "text", now, None)],
            dedup_key: key.to_owned(),
            result: "<xml>在的</xml>".to_owned(),
            result_ttl_secs: 600,
            reply: Some(ArchivedReply {
                key: key.to_owned(),
                openid: "o-user".to_owned(),
                sent_at: now,
                reply: Outgoing::text("在的"),
                route: "rule".to_owned(),
                expires_at: now + 3600,
            }),
            now,
            outbox: false,
        }
    }

    #[tokio::test]
    async fn a_staged_write_is_read_back_by_the_message_but_not_stored() {
        let inner = Arc::new(MemoryConversationStore::default());
        assert!(
            inner
                .compare_and_set(&user(), 0, &turns(1), i64::MAX)
                .await
                .expect("cas")
        );
        let staged = StagedConversations::new(inner.clone(), OpenId::is_board);
        let read = staged.get(&user(), 0).await.expect("get");
        assert_eq!((read.version, read.state.turns), (1, 1), "reads go through");
        assert!(
            staged
                .compare_and_set(&user(), 1, &turns(2), i64::MAX)
                .await
                .expect("cas")
        );
        let again = staged.get(&user(), 0).await.expect("get");
        assert_eq!(
            (again.version, again.state.turns),
            (2, 2),
            "the message sees its own write"
        );
        assert!(
            staged
                .compare_and_set(&user(), 2, &turns(3), i64::MAX)
                .await
                .expect("cas"),
            "a second write over the staged one"
        );
        assert!(
            !staged
                .compare_and_set(&user(), 1, &turns(9), i64::MAX)
                .await
                .expect("cas"),
            "a write from a stale read is refused, as the store would"
        );
        assert_eq!(
            inner.get(&user(), 0).await.expect("get").state.turns,
            1,
            "nothing stored yet"
        );
        let taken = staged.take();
        assert_eq!(taken.len(), 1);
        assert_eq!(
            (taken[0].expected, taken[0].state.turns),
            (1, 3),
            "one write, checked against the version first read"
        );
    }

    #[tokio::test]
    async fn the_board_is_written_at_once_not_staged() {
        let inner = Arc::new(MemoryConversationStore::default());
        let staged = StagedConversations::new(inner.clone(), OpenId::is_board);
        assert!(
            staged
                .compare_and_set(&OpenId::board(), 0, &turns(1), i64::MAX)
                .await
                .expect("cas")
        );
        assert_eq!(
            inner.get(&OpenId::board(), 0).await.expect("get").version,
            1
        );
        assert!(staged.take().is_empty());
    }

    #[tokio::test]
    async fn a_sequential_commit_writes_every_part() {
        let stores = Stores::new();
        let now = 1_700_000_000;
        assert_eq!(stores.claim_and_commit("msg:1", 0).await, Committed::Done);
        let history = stores.history(now).await;
        assert_eq!(history.len(), 2, "message and reply: {history:?}");
        assert_eq!(
            stores
                .conversations
                .get(&user(), now)
                .await
                .expect("get")
                .version,
            1
        );
        assert_eq!(stores.events.take().len(), 1);
        assert_eq!(
            stores.dedup.begin("msg:1", now, 30).await.expect("begin"),
            Begin::Done("<xml>在的</xml>".to_owned())
        );
    }

    #[tokio::test]
    async fn a_sequential_commit_stops_at_a_moved_conversation_with_only_the_message_on_record() {
        let stores = Stores::new();
        let now = 1_700_000_000;
        assert!(
            stores
                .conversations
                .compare_and_set(&user(), 0, &turns(5), i64::MAX)
                .await
                .expect("cas")
        );
        assert_eq!(
            stores.claim_and_commit("msg:1", 0).await,
            Committed::Conflict
        );
        let history = stores.history(now).await;
        assert_eq!(
            history.len(),
            1,
            "the message is on record, no reply: {history:?}"
        );
        assert_eq!(
            stores
                .conversations
                .get(&user(), now)
                .await
                .expect("get")
                .state
                .turns,
            5
        );
        assert!(stores.events.take().is_empty(), "no event emitted");
        assert_eq!(
            stores.dedup.begin("msg:1", now, 30).await.expect("begin"),
            Begin::InFlight,
            "no result recorded; the claim stays with its owner"
        );
    }
}
