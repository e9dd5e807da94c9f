//! In-memory adapters of every port: for tests and for wiring examples.
//! They keep the same semantics as the durable adapters (the contract suites
//! run against them too), but lose everything when dropped.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::{
    Archived, ArchivedMessage, ArchivedReply, Begin, ConversationState, ConversationStore,
    Counters, Erased, Event, EventLog, EventSink, HeldConversation, IdempotencyStore,
    MessageArchive, OpenId, PortError, UserData, UserRecord, Versioned,
    outbound::{
        CachedToken, ContactWindow, ContactWindows, MessageQueue, Reserved, TokenStore,
        WindowRules, give_back_in, reserve_in, touch_in, undeliverable_in,
    },
    ports::message_event_ids,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another test thread must not cascade: the data is still
    // consistent because every critical section is a single map operation.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`MessageArchive`] in maps.
#[derive(Debug, Default)]
pub struct MemoryArchive(Mutex<Archive>);

#[derive(Debug, Default)]
struct Archive {
    messages: HashMap<String, ArchivedMessage>,
    replies: HashMap<String, ArchivedReply>,
}

impl MemoryArchive {
    /// How many messages are stored (expired ones included until purged).
    pub fn len(&self) -> usize {
        lock(&self.0).messages.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The reply archived for the message `key`, expired or not.
    pub fn reply(&self, key: &str) -> Option<ArchivedReply> {
        lock(&self.0).replies.get(key).cloned()
    }
}

#[async_trait]
impl MessageArchive for MemoryArchive {
    async fn put(&self, msg: &ArchivedMessage) -> Result<bool, PortError> {
        let mut archive = lock(&self.0);
        if archive.messages.contains_key(&msg.key) {
            return Ok(false);
        }
        archive.messages.insert(msg.key.clone(), msg.clone());
        Ok(true)
    }

    async fn put_reply(&self, reply: &ArchivedReply) -> Result<bool, PortError> {
        let mut archive = lock(&self.0);
        if archive.replies.contains_key(&reply.key) {
            return Ok(false);
        }
        archive.replies.insert(reply.key.clone(), reply.clone());
        Ok(true)
    }

    async fn get(
        &self,
        openid: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<ArchivedMessage>, PortError> {
        Ok(lock(&self.0)
            .messages
            .get(key)
            .filter(|m| m.openid == openid && m.expires_at > now)
            .cloned())
    }

    async fn history(
        &self,
        openid: &OpenId,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Archived>, PortError> {
        let archive = lock(&self.0);
        let messages = archive
            .messages
            .values()
            .filter(|m| m.openid == openid.as_str() && m.expires_at > now)
            .cloned()
            .map(Archived::Message);
        let replies = archive
            .replies
            .values()
            .filter(|r| r.openid == openid.as_str() && r.expires_at > now)
            .cloned()
            .map(Archived::Reply);
        let mut all: Vec<Archived> = messages.chain(replies).collect();
        all.sort_by(|a, b| b.sort_key().cmp(&a.sort_key()));
        all.truncate(limit);
        Ok(all)
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, PortError> {
        let mut archive = lock(&self.0);
        let before = archive.messages.len() + archive.replies.len();
        archive.messages.retain(|_, m| m.expires_at > now);
        archive.replies.retain(|_, r| r.expires_at > now);
        Ok((before - archive.messages.len() - archive.replies.len()) as u64)
    }
}

#[derive(Debug, Clone)]
enum Slot {
    Claimed { until: i64 },
    Done { result: String, until: i64 },
}

/// [`IdempotencyStore`] in a map.
#[derive(Debug, Default)]
pub struct MemoryIdempotency(Mutex<HashMap<String, Slot>>);

#[async_trait]
impl IdempotencyStore for MemoryIdempotency {
    async fn begin(&self, key: &str, now: i64, lease_secs: i64) -> Result<Begin, PortError> {
        let mut map = lock(&self.0);
        match map.get(key) {
            Some(Slot::Done { result, until }) if *until > now => Ok(Begin::Done(result.clone())),
            Some(Slot::Claimed { until }) if *until > now => Ok(Begin::InFlight),
            _ => {
                map.insert(
                    key.to_owned(),
                    Slot::Claimed {
                        until: now + lease_secs,
                    },
                );
                Ok(Begin::Fresh)
            }
        }
    }

    async fn complete(
        &self,
        key: &str,
        result: &str,
        now: i64,
        ttl_secs: i64,
    ) -> Result<(), PortError> {
        lock(&self.0).insert(
            key.to_owned(),
            Slot::Done {
                result: result.to_owned(),
                until: now + ttl_secs,
            },
        );
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), PortError> {
        let mut map = lock(&self.0);
        if matches!(map.get(key), Some(Slot::Claimed { .. })) {
            map.remove(key);
        }
        Ok(())
    }
}

/// [`Counters`] in a map.
#[derive(Debug, Default)]
pub struct MemoryCounters {
    inner: Mutex<(HashMap<String, u64>, HashSet<String>)>,
}

#[async_trait]
impl Counters for MemoryCounters {
    async fn add_once_by(
        &self,
        once_id: &str,
        keys: &[String],
        by: u64,
        _marker_expires_at: i64,
    ) -> Result<bool, PortError> {
        let mut guard = lock(&self.inner);
        let (values, seen) = &mut *guard;
        if !seen.insert(once_id.to_owned()) {
            return Ok(false);
        }
        for key in keys {
            let value = values.entry(key.clone()).or_default();
            *value = value.saturating_add(by);
        }
        Ok(true)
    }

    async fn get(&self, key: &str) -> Result<u64, PortError> {
        Ok(lock(&self.inner).0.get(key).copied().unwrap_or(0))
    }
}

/// [`EventSink`] that keeps what it was given, for tests to inspect.
#[derive(Debug, Default)]
pub struct MemoryEventSink(Mutex<Vec<Event>>);

impl MemoryEventSink {
    /// Removes and returns everything emitted so far.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *lock(&self.0))
    }
}

#[async_trait]
impl EventSink for MemoryEventSink {
    async fn emit(&self, events: &[Event]) -> Result<(), PortError> {
        lock(&self.0).extend_from_slice(events);
        Ok(())
    }
}

/// [`EventLog`] in a map.
#[derive(Debug, Default)]
pub struct MemoryEventLog(Mutex<HashMap<String, Event>>);

#[async_trait]
impl EventLog for MemoryEventLog {
    async fn record(&self, event: &Event, _expires_at: i64) -> Result<bool, PortError> {
        let mut map = lock(&self.0);
        if map.contains_key(&event.id) {
            return Ok(false);
        }
        map.insert(event.id.clone(), event.clone());
        Ok(true)
    }

    async fn get(&self, id: &str) -> Result<Option<Event>, PortError> {
        Ok(lock(&self.0).get(id).cloned())
    }
}

/// One user's conversation as the memory store keeps it.
#[derive(Debug, Clone)]
struct StoredConversation {
    version: u64,
    state: ConversationState,
    expires_at: i64,
}

/// [`ConversationStore`] in a map. Expired conversations stay in the map
/// (reading as the default state, with their version) until dropped.
#[derive(Debug, Default)]
pub struct MemoryConversationStore(Mutex<HashMap<OpenId, StoredConversation>>);

#[async_trait]
impl ConversationStore for MemoryConversationStore {
    async fn get(&self, openid: &OpenId, now: i64) -> Result<Versioned, PortError> {
        Ok(match lock(&self.0).get(openid) {
            None => Versioned::default(),
            Some(stored) if now >= stored.expires_at => Versioned {
                version: stored.version,
                state: ConversationState::default(),
            },
            Some(stored) => Versioned {
                version: stored.version,
                state: stored.state.clone(),
            },
        })
    }

    async fn compare_and_set(
        &self,
        openid: &OpenId,
        expected: u64,
        state: &ConversationState,
        expires_at: i64,
    ) -> Result<bool, PortError> {
        let version = crate::conversation::next_version(expected)?;
        // Compare and set under one lock: that is what makes it atomic.
        let mut map = lock(&self.0);
        let stored = map.get(openid).map_or(0, |c| c.version);
        if stored != expected {
            return Ok(false);
        }
        map.insert(
            openid.clone(),
            StoredConversation {
                version,
                state: state.clone(),
                expires_at,
            },
        );
        Ok(true)
    }
}

/// [`UserData`] over the memory adapters of the other ports, shared with
/// whoever writes through them (`Arc`s: hand a clone of each to the code
/// under test). It holds no profiles, tickets or campaign claims.
#[derive(Debug, Default, Clone)]
pub struct MemoryUserData {
    /// The archive it reads and erases.
    pub archive: Arc<MemoryArchive>,
    /// The conversations, the board of unresolved ones included.
    pub conversations: Arc<MemoryConversationStore>,
    /// The dedup records.
    pub dedup: Arc<MemoryIdempotency>,
    /// The event log.
    pub events: Arc<MemoryEventLog>,
    /// The counters, whose once-markers of the user's events are erased.
    pub counters: Arc<MemoryCounters>,
}

#[async_trait]
impl UserData for MemoryUserData {
    async fn export(&self, openid: &OpenId, now: i64) -> Result<UserRecord, PortError> {
        let mut record = UserRecord::empty(openid, now);
        {
            let archive = lock(&self.archive.0);
            record.messages = archive
                .messages
                .values()
                .filter(|m| m.openid == openid.as_str())
                .cloned()
                .collect();
            record.replies = archive
                .replies
                .values()
                .filter(|r| r.openid == openid.as_str())
                .cloned()
                .collect();
        }
        {
            let conversations = lock(&self.conversations.0);
            record.conversation = conversations.get(openid).map(|c| HeldConversation {
                version: c.version,
                expires_at: c.expires_at,
                state: c.state.clone(),
            });
            record.unresolved_since = conversations
                .get(&OpenId::board())
                .and_then(|b| b.state.unresolved.get(openid.as_str()).copied());
        }
        let events = lock(&self.events.0);
        record.events = record
            .message_keys()
            .iter()
            .flat_map(|key| message_event_ids(key))
            .filter_map(|id| events.get(&id).cloned())
            .collect();
        drop(events);
        record.sort();
        Ok(record)
    }

    async fn erase(&self, openid: &OpenId) -> Result<Erased, PortError> {
        let mut erased = Erased::default();
        let keys = {
            let mut archive = lock(&self.archive.0);
            let mine = |who: &str| who == openid.as_str();
            let mut keys: HashSet<String> = HashSet::new();
            archive.messages.retain(|key, m| {
                let keep = !mine(&m.openid);
                if !keep {
                    keys.insert(key.clone());
                    erased.messages += 1;
                }
                keep
            });
            archive.replies.retain(|key, r| {
                let keep = !mine(&r.openid);
                if !keep {
                    keys.insert(key.clone());
                    erased.replies += 1;
                }
                keep
            });
            keys
        };
        {
            let mut conversations = lock(&self.conversations.0);
            if conversations.remove(openid).is_some() {
                erased.conversation = 1;
            }
            if let Some(board) = conversations.get_mut(&OpenId::board())
                && board.state.unresolved.remove(openid.as_str()).is_some()
            {
                // A new version, so a writer that read the board before
                // the erasure cannot write the user back.
                board.version = crate::conversation::next_version(board.version)?;
                erased.unresolved_board = 1;
            }
        }
        let ids: Vec<String> = keys.iter().flat_map(|k| message_event_ids(k)).collect();
        {
            let mut dedup = lock(&self.dedup.0);
            erased.dedup_records = keys
                .iter()
                .flat_map(|k| crate::ports::message_dedup_keys(k))
                .filter(|k| dedup.remove(k).is_some())
                .count() as u64;
        }
        {
            let mut events = lock(&self.events.0);
            erased.events = ids.iter().filter(|id| events.remove(*id).is_some()).count() as u64;
        }
        {
            let mut counters = lock(&self.counters.inner);
            erased.counter_markers = ids.iter().filter(|id| counters.1.remove(*id)).count() as u64;
        }
        Ok(erased)
    }
}

#[cfg(test)]
mod contract_tests {
    use super::*;
    use crate::contract;

    #[tokio::test]
    async fn memory_campaigns_keep_the_campaign_store_contract() {
        contract::campaign_store(&MemoryCampaigns::default()).await;
    }

    #[tokio::test]
    async fn memory_archive_keeps_the_archive_contract() {
        contract::archive(&MemoryArchive::default()).await;
    }

    #[tokio::test]
    async fn memory_archive_keeps_both_sides_in_each_users_history() {
        contract::archive_history(&MemoryArchive::default()).await;
    }

    #[tokio::test]
    async fn memory_idempotency_keeps_the_idempotency_contract() {
        contract::idempotency(&MemoryIdempotency::default()).await;
    }

    #[tokio::test]
    async fn memory_counters_keep_the_counters_contract() {
        contract::counters(&MemoryCounters::default()).await;
    }

    #[tokio::test]
    async fn memory_token_store_keeps_the_token_store_contract() {
        contract::token_store(&MemoryTokenStore::default()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_contact_windows_keep_the_window_and_budget_contract() {
        contract::contact_windows(std::sync::Arc::new(MemoryContactWindows::default())).await;
    }

    #[tokio::test]
    async fn memory_event_log_keeps_the_event_log_contract() {
        contract::event_log(&MemoryEventLog::default()).await;
    }

    // Several worker threads, so the contract's concurrent writers really
    // run at the same time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_conversation_store_keeps_the_conversation_store_contract() {
        contract::conversation_store(std::sync::Arc::new(MemoryConversationStore::default())).await;
    }

    #[tokio::test]
    async fn memory_user_data_exports_and_erases_exactly_one_users_data() {
        let store = MemoryUserData::default();
        contract::user_data(
            &store,
            &*store.archive,
            &*store.conversations,
            &*store.dedup,
            &*store.events,
        )
        .await;
    }

    #[tokio::test]
    async fn memory_event_sink_keeps_the_event_sink_contract() {
        let sink = MemoryEventSink::default();
        contract::event_sink(&sink, || async { sink.take() }).await;
    }
}

/// [`TokenStore`] in a map.
#[derive(Debug, Default)]
pub struct MemoryTokenStore(Mutex<HashMap<String, CachedToken>>);

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn get(&self, app_id: &str) -> Result<Option<CachedToken>, PortError> {
        Ok(lock(&self.0).get(app_id).cloned())
    }

    async fn put(&self, app_id: &str, token: &CachedToken) -> Result<(), PortError> {
        lock(&self.0).insert(app_id.to_owned(), token.clone());
        Ok(())
    }
}

/// [`ContactWindows`] in a map.
#[derive(Debug, Default)]
pub struct MemoryContactWindows(Mutex<HashMap<String, ContactWindow>>);

impl MemoryContactWindows {
    fn update(
        &self,
        openid: &str,
        rule: impl FnOnce(Option<ContactWindow>) -> Option<ContactWindow>,
    ) {
        let mut map = lock(&self.0);
        if let Some(w) = rule(map.get(openid).copied()) {
            map.insert(openid.to_owned(), w);
        }
    }
}

#[async_trait]
impl ContactWindows for MemoryContactWindows {
    async fn touch(&self, openid: &str, at: i64) -> Result<(), PortError> {
        self.update(openid, |w| touch_in(w, at));
        Ok(())
    }

    async fn reserve(
        &self,
        openid: &str,
        now: i64,
        rules: WindowRules,
    ) -> Result<Reserved, PortError> {
        let mut map = lock(&self.0);
        let (answer, taken) = reserve_in(map.get(openid).copied(), now, rules);
        if let Some(w) = taken {
            map.insert(openid.to_owned(), w);
        }
        Ok(answer)
    }

    async fn give_back(&self, openid: &str, window: i64) -> Result<(), PortError> {
        self.update(openid, |w| give_back_in(w, window));
        Ok(())
    }

    async fn undeliverable(&self, openid: &str, window: i64, code: i64) -> Result<(), PortError> {
        self.update(openid, |w| undeliverable_in(w, window, code));
        Ok(())
    }

    async fn get(&self, openid: &str) -> Result<Option<ContactWindow>, PortError> {
        Ok(lock(&self.0).get(openid).copied())
    }
}

/// [`MessageQueue`] in a list: one queue for every sender, in order, a
/// key queued again while it waits is dropped (SQS FIFO drops it for five
/// minutes).
#[derive(Debug, Default)]
pub struct MemoryMessageQueue(Mutex<Vec<ArchivedMessage>>);

impl MemoryMessageQueue {
    /// Takes every waiting message, oldest first.
    pub fn take(&self) -> Vec<ArchivedMessage> {
        std::mem::take(&mut *lock(&self.0))
    }
}

#[async_trait]
impl MessageQueue for MemoryMessageQueue {
    async fn enqueue(&self, message: &ArchivedMessage) -> Result<(), PortError> {
        let mut queue = lock(&self.0);
        if !queue.iter().any(|m| m.key == message.key) {
            queue.push(message.clone());
        }
        Ok(())
    }
}

/// [`crate::campaign::CampaignStore`] in maps.
#[derive(Debug, Default)]
pub struct MemoryCampaigns(Mutex<CampaignMaps>);

#[derive(Debug, Default)]
struct CampaignMaps {
    campaigns: std::collections::BTreeMap<String, crate::campaign::Campaign>,
    occurrences: std::collections::BTreeMap<(String, i64), crate::campaign::Occurrence>,
    deliveries: std::collections::BTreeMap<(String, String), crate::campaign::Delivery>,
    cooldowns: std::collections::BTreeMap<(String, String), i64>,
}

#[async_trait]
impl crate::campaign::CampaignStore for MemoryCampaigns {
    async fn insert(&self, campaign: &crate::campaign::Campaign) -> Result<bool, PortError> {
        let mut m = lock(&self.0);
        if m.campaigns.contains_key(&campaign.id) {
            return Ok(false);
        }
        m.campaigns.insert(campaign.id.clone(), campaign.clone());
        Ok(true)
    }

    async fn replace(&self, campaign: &crate::campaign::Campaign) -> Result<bool, PortError> {
        let mut m = lock(&self.0);
        match m.campaigns.get(&campaign.id) {
            Some(stored) if stored.version + 1 == campaign.version => {
                m.campaigns.insert(campaign.id.clone(), campaign.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<crate::campaign::Campaign>, PortError> {
        Ok(lock(&self.0).campaigns.get(id).cloned())
    }

    async fn list(&self) -> Result<Vec<crate::campaign::Campaign>, PortError> {
        Ok(lock(&self.0).campaigns.values().cloned().collect())
    }

    async fn claim_occurrence(
        &self,
        occurrence: &crate::campaign::Occurrence,
    ) -> Result<bool, PortError> {
        let key = (occurrence.campaign_id.clone(), occurrence.scheduled_at);
        let mut m = lock(&self.0);
        if m.occurrences.contains_key(&key) {
            return Ok(false);
        }
        m.occurrences.insert(key, occurrence.clone());
        Ok(true)
    }

    async fn save_occurrence(
        &self,
        occurrence: &crate::campaign::Occurrence,
    ) -> Result<(), PortError> {
        let key = (occurrence.campaign_id.clone(), occurrence.scheduled_at);
        lock(&self.0).occurrences.insert(key, occurrence.clone());
        Ok(())
    }

    async fn occurrence(
        &self,
        campaign_id: &str,
        scheduled_at: i64,
    ) -> Result<Option<crate::campaign::Occurrence>, PortError> {
        Ok(lock(&self.0)
            .occurrences
            .get(&(campaign_id.to_owned(), scheduled_at))
            .cloned())
    }

    async fn occurrences(
        &self,
        campaign_id: &str,
    ) -> Result<Vec<crate::campaign::Occurrence>, PortError> {
        Ok(lock(&self.0)
            .occurrences
            .range((campaign_id.to_owned(), i64::MIN)..=(campaign_id.to_owned(), i64::MAX))
            .map(|(_, o)| o.clone())
            .collect())
    }

    async fn claim_delivery(
        &self,
        occurrence_id: &str,
        openid: &str,
        at: i64,
    ) -> Result<Option<crate::campaign::Delivery>, PortError> {
        let key = (occurrence_id.to_owned(), openid.to_owned());
        let mut m = lock(&self.0);
        if let Some(existing) = m.deliveries.get(&key) {
            return Ok(Some(existing.clone()));
        }
        m.deliveries.insert(
            key,
            crate::campaign::Delivery {
                openid: openid.to_owned(),
                outcome: crate::campaign::Outcome::Sending,
                at,
            },
        );
        Ok(None)
    }

    async fn finish_delivery(
        &self,
        occurrence_id: &str,
        delivery: &crate::campaign::Delivery,
    ) -> Result<(), PortError> {
        let key = (occurrence_id.to_owned(), delivery.openid.clone());
        lock(&self.0).deliveries.insert(key, delivery.clone());
        Ok(())
    }

    async fn release_delivery(&self, occurrence_id: &str, openid: &str) -> Result<(), PortError> {
        lock(&self.0)
            .deliveries
            .remove(&(occurrence_id.to_owned(), openid.to_owned()));
        Ok(())
    }

    async fn claim_cooldown(
        &self,
        campaign_id: &str,
        openid: &str,
        now: i64,
        cooldown_secs: i64,
    ) -> Result<bool, PortError> {
        let mut m = lock(&self.0);
        let last = m
            .cooldowns
            .entry((campaign_id.to_owned(), openid.to_owned()))
            .or_insert(i64::MIN);
        if *last != i64::MIN && now - *last < cooldown_secs {
            return Ok(false);
        }
        *last = now;
        Ok(true)
    }

    async fn deliveries(
        &self,
        occurrence_id: &str,
    ) -> Result<Vec<crate::campaign::Delivery>, PortError> {
        Ok(lock(&self.0)
            .deliveries
            .range((occurrence_id.to_owned(), String::new())..)
            .take_while(|((occ, _), _)| occ == occurrence_id)
            .map(|(_, d)| d.clone())
            .collect())
    }
}
