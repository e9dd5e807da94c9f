//! [`RedbStore`]: the durable ports of `wca serve` in one redb file.
//!
//! One store implements [`MessageArchive`], [`IdempotencyStore`],
//! [`Counters`], [`EventLog`] and [`ConversationStore`], each in its own
//! tables, with the same
//! semantics as the memory adapters in `wca_core::memory` (the contract
//! suites run against both).
//!
//! Every entry that can expire also has a row in an expiry index keyed by
//! `(expires_at, key)`, so a purge reads only what has expired instead of
//! decoding the whole archive. Each operation is a single redb transaction:
//! "first write wins", "all keys of an `add_once` or none" and
//! compare-and-set of a conversation hold under concurrent callers, because
//! redb serialises write transactions (and a file is open in one process at
//! a time).
//!
//! redb is a blocking library (file I/O and, on commit, `fsync`), so every
//! call runs on tokio's blocking pool via `spawn_blocking` rather than
//! stalling a runtime worker.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use wca_core::{
    Archived, ArchivedMessage, ArchivedReply, Begin, ConversationState, ConversationStore,
    Counters, Event, EventLog, IdempotencyStore, MessageArchive, OpenId, PortError, Versioned,
};

use crate::LocalError;

/// `(expires_at, key)` → nothing: the entries of one table in expiry order.
type ExpiryIndex = TableDefinition<'static, (i64, &'static str), ()>;

/// Message key → [`ArchivedMessage`] as JSON.
const ARCHIVE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("archive");
const ARCHIVE_EXPIRY: ExpiryIndex = TableDefinition::new("archive_expiry");
/// Key of the message answered → [`ArchivedReply`] as JSON.
const REPLIES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("replies");
const REPLY_EXPIRY: ExpiryIndex = TableDefinition::new("reply_expiry");
/// [`history_key`] → nothing: each user's messages and replies in time
/// order, pointing into [`ARCHIVE`] and [`REPLIES`].
const HISTORY: TableDefinition<'_, &str, ()> = TableDefinition::new("history");
const HISTORY_EXPIRY: ExpiryIndex = TableDefinition::new("history_expiry");
/// Idempotency key → [`Slot`] in its byte encoding.
const IDEMPOTENCY: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("idempotency");
const IDEMPOTENCY_EXPIRY: ExpiryIndex = TableDefinition::new("idempotency_expiry");
/// Counter name → value.
const COUNTERS: TableDefinition<'_, &str, u64> = TableDefinition::new("counters");
/// `add_once` id → when its marker may be forgotten.
const MARKERS: TableDefinition<'_, &str, i64> = TableDefinition::new("counter_markers");
const MARKER_EXPIRY: ExpiryIndex = TableDefinition::new("counter_marker_expiry");
/// Event id → [`Event`] as JSON.
const EVENTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("events");
const EVENT_EXPIRY: ExpiryIndex = TableDefinition::new("event_expiry");
/// OpenID → [`StoredConversation`] in its byte encoding.
const CONVERSATIONS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("conversations");
const CONVERSATION_EXPIRY: ExpiryIndex = TableDefinition::new("conversation_expiry");

/// The embedded store: every durable port of `wca serve` over one redb file.
///
/// Cloning is cheap (the database is shared), so one store can be handed to
/// the webhook, the analytics consumer and the retention sweeper.
#[derive(Debug, Clone)]
pub struct RedbStore {
    db: Arc<Database>,
}

/// What one [`RedbStore::purge`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Archived messages past their retention.
    pub messages: u64,
    /// Archived replies past their retention.
    pub replies: u64,
    /// Idempotency claims and results past their lease or ttl.
    pub idempotency_keys: u64,
    /// Counter once-markers past their expiry.
    pub counter_markers: u64,
    /// Event-log entries past their expiry.
    pub events: u64,
    /// Conversation states past their expiry. Their versions go with them:
    /// the user's next conversation starts again at version 0.
    pub conversations: u64,
}

impl Purged {
    /// Everything deleted, all kinds together.
    pub fn total(&self) -> u64 {
        self.messages
            + self.replies
            + self.idempotency_keys
            + self.counter_markers
            + self.events
            + self.conversations
    }
}

impl RedbStore {
    /// Opens the store at `path`, creating the file and its parent
    /// directories if they do not exist.
    ///
    /// A redb file can be open only once at a time: a second `open` of the
    /// same file (from this process or another) fails with
    /// [`LocalError::Open`] until every clone of the first store is dropped.
    pub fn open(path: &Path) -> Result<Self, LocalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| LocalError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let new_file = !path.exists();
        let db = Database::create(path).map_err(|source| LocalError::Open {
            path: path.to_owned(),
            source,
        })?;
        // Every archived message is in this file: a new one is its owner's
        // only (an existing one keeps what its owner gave it).
        #[cfg(unix)]
        if new_file {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
                |source| LocalError::Private {
                    path: path.to_owned(),
                    source,
                },
            )?;
        }
        // Create every table up front so read transactions can always open
        // them (redb reports a missing table as an error, not as empty).
        let txn = db.begin_write()?;
        txn.open_table(ARCHIVE)?;
        txn.open_table(REPLIES)?;
        txn.open_table(HISTORY)?;
        txn.open_table(IDEMPOTENCY)?;
        txn.open_table(COUNTERS)?;
        txn.open_table(MARKERS)?;
        txn.open_table(EVENTS)?;
        txn.open_table(CONVERSATIONS)?;
        for index in [
            ARCHIVE_EXPIRY,
            REPLY_EXPIRY,
            HISTORY_EXPIRY,
            IDEMPOTENCY_EXPIRY,
            MARKER_EXPIRY,
            EVENT_EXPIRY,
            CONVERSATION_EXPIRY,
        ] {
            txn.open_table(index)?;
        }
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Deletes everything that expired at or before `now`: archived
    /// messages and replies, idempotency claims and results, counter once-markers,
    /// event-log entries and conversation states, in one transaction.
    /// Counter values are kept.
    pub async fn purge(&self, now: i64) -> Result<Purged, PortError> {
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let purged = Purged {
                messages: purge_expired(&txn, ARCHIVE_EXPIRY, ARCHIVE, now)?,
                replies: purge_expired(&txn, REPLY_EXPIRY, REPLIES, now)?,
                idempotency_keys: purge_expired(&txn, IDEMPOTENCY_EXPIRY, IDEMPOTENCY, now)?,
                counter_markers: purge_expired(&txn, MARKER_EXPIRY, MARKERS, now)?,
                events: purge_expired(&txn, EVENT_EXPIRY, EVENTS, now)?,
                conversations: purge_expired(&txn, CONVERSATION_EXPIRY, CONVERSATIONS, now)?,
            };
            purge_expired(&txn, HISTORY_EXPIRY, HISTORY, now)?;
            txn.commit()?;
            Ok(purged)
        })
        .await
    }

    /// How many messages are archived, expired ones included until purged.
    pub async fn stored_messages(&self) -> Result<u64, PortError> {
        self.blocking(|db| {
            let txn = db.begin_read()?;
            Ok(txn.open_table(ARCHIVE)?.len()?)
        })
        .await
    }

    /// [`archive_new`] on the blocking pool.
    async fn archive(
        &self,
        data: TableDefinition<'static, &'static str, &'static [u8]>,
        index: ExpiryIndex,
        key: &str,
        value: Vec<u8>,
        expires_at: i64,
        history: Option<String>,
    ) -> Result<bool, PortError> {
        let key = key.to_owned();
        self.blocking(move |db| {
            archive_new(
                db,
                data,
                index,
                &key,
                &value,
                expires_at,
                history.as_deref(),
            )
        })
        .await
    }

    /// Runs `op` on the blocking pool and maps its error onto the ports'.
    async fn blocking<T, F>(&self, op: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, LocalError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        match tokio::task::spawn_blocking(move || op(&db)).await {
            Ok(result) => result.map_err(PortError::from),
            Err(join) => Err(LocalError::Interrupted(join.to_string()).into()),
        }
    }
}

/// Deletes the rows of `data` whose index entry says they expired at or
/// before `now`, and those index entries; returns how many.
fn purge_expired<V: redb::Value + 'static>(
    txn: &WriteTransaction,
    index: ExpiryIndex,
    data: TableDefinition<'_, &str, V>,
    now: i64,
) -> Result<u64, LocalError> {
    let mut index = txn.open_table(index)?;
    let mut data = txn.open_table(data)?;
    let expired = {
        // Everything strictly before (now + 1, ""), i.e. expires_at <= now.
        let rows = match now.checked_add(1) {
            Some(next) => index.range::<(i64, &str)>(..(next, ""))?,
            None => index.range::<(i64, &str)>(..)?,
        };
        let mut expired = Vec::new();
        for row in rows {
            let (entry, _) = row?;
            let (at, key) = entry.value();
            expired.push((at, key.to_owned()));
        }
        expired
    };
    for (at, key) in &expired {
        index.remove((*at, key.as_str()))?;
        data.remove(key.as_str())?;
    }
    Ok(expired.len() as u64)
}

/// Stores `value` under `key` unless the key exists, indexing it under
/// `expires_at`. Returns `true` when this call stored it.
fn insert_new(
    db: &Database,
    data: TableDefinition<'_, &str, &[u8]>,
    index: ExpiryIndex,
    key: &str,
    value: &[u8],
    expires_at: i64,
) -> Result<bool, LocalError> {
    let txn = db.begin_write()?;
    let stored = insert_row(&txn, data, index, key, value, expires_at)?;
    commit_if(txn, stored)
}

/// [`insert_new`] inside `txn`, which the caller commits.
fn insert_row(
    txn: &WriteTransaction,
    data: TableDefinition<'_, &str, &[u8]>,
    index: ExpiryIndex,
    key: &str,
    value: &[u8],
    expires_at: i64,
) -> Result<bool, LocalError> {
    let mut table = txn.open_table(data)?;
    if table.get(key)?.is_some() {
        return Ok(false);
    }
    table.insert(key, value)?;
    txn.open_table(index)?.insert((expires_at, key), ())?;
    Ok(true)
}

/// Commits `txn` when it stored something, aborts it otherwise; returns
/// `stored`.
fn commit_if(txn: WriteTransaction, stored: bool) -> Result<bool, LocalError> {
    if stored {
        txn.commit()?;
    } else {
        txn.abort()?;
    }
    Ok(stored)
}

/// The bytes stored under `key` in `data`, if any.
fn read_bytes(
    db: &Database,
    data: TableDefinition<'_, &str, &[u8]>,
    key: &str,
) -> Result<Option<Vec<u8>>, LocalError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(data)?;
    Ok(table.get(key)?.map(|value| value.value().to_vec()))
}

fn cannot_encode(err: serde_json::Error) -> PortError {
    PortError::Rejected(format!("cannot encode as JSON: {err}"))
}

/// Maps a JSON decoding failure of a row of `table` to [`LocalError::Corrupt`].
fn corrupt_row(table: &'static str) -> impl Fn(serde_json::Error) -> LocalError {
    move |err| LocalError::Corrupt(format!("{table}: {err}"))
}

/// Which side of a conversation a history row points to.
const SIDE_MESSAGE: char = 'm';
const SIDE_REPLY: char = 'r';

/// The [`HISTORY`] row of an entry: `openid TAB time TAB key TAB side`,
/// the time as 16 hex digits of its sign-flipped bits so that rows sort by
/// time as strings do. A valid OpenID holds no tab, so one user's rows are
/// exactly those between `openid TAB` and `openid LF`. `None` for a sender
/// that is not a valid OpenID: such a message has no history.
fn history_key(openid: &str, at: i64, key: &str, side: char) -> Option<String> {
    OpenId::parse(openid).ok()?;
    let order = (at as u64) ^ (1 << 63);
    Some(format!("{openid}\t{order:016x}\t{key}\t{side}"))
}

/// The message key and side of a [`HISTORY`] row.
fn parse_history_key(row: &str) -> Result<(&str, char), LocalError> {
    let corrupt = || LocalError::Corrupt(format!("history row {row:?}"));
    let (rest, side) = row.rsplit_once('\t').ok_or_else(corrupt)?;
    let mut fields = rest.splitn(3, '\t');
    let key = fields.nth(2).ok_or_else(corrupt)?;
    match side {
        "m" => Ok((key, SIDE_MESSAGE)),
        "r" => Ok((key, SIDE_REPLY)),
        _ => Err(corrupt()),
    }
}

/// Stores `value` under `key` in `data` unless the key exists, with its
/// history row, both indexed under `expires_at`, in one transaction.
fn archive_new(
    db: &Database,
    data: TableDefinition<'_, &str, &[u8]>,
    index: ExpiryIndex,
    key: &str,
    value: &[u8],
    expires_at: i64,
    history: Option<&str>,
) -> Result<bool, LocalError> {
    let txn = db.begin_write()?;
    let stored = insert_row(&txn, data, index, key, value, expires_at)?;
    if stored && let Some(row) = history {
        txn.open_table(HISTORY)?.insert(row, ())?;
        txn.open_table(HISTORY_EXPIRY)?
            .insert((expires_at, row), ())?;
    }
    commit_if(txn, stored)
}

#[async_trait]
impl MessageArchive for RedbStore {
    async fn put(&self, msg: &ArchivedMessage) -> Result<bool, PortError> {
        let json = serde_json::to_vec(msg).map_err(cannot_encode)?;
        let row = history_key(&msg.openid, msg.received_at, &msg.key, SIDE_MESSAGE);
        self.archive(ARCHIVE, ARCHIVE_EXPIRY, &msg.key, json, msg.expires_at, row)
            .await
    }

    async fn put_reply(&self, reply: &ArchivedReply) -> Result<bool, PortError> {
        let json = serde_json::to_vec(reply).map_err(cannot_encode)?;
        let row = history_key(&reply.openid, reply.sent_at, &reply.key, SIDE_REPLY);
        self.archive(
            REPLIES,
            REPLY_EXPIRY,
            &reply.key,
            json,
            reply.expires_at,
            row,
        )
        .await
    }

    async fn get(
        &self,
        openid: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<ArchivedMessage>, PortError> {
        let key = key.to_owned();
        let openid = openid.to_owned();
        self.blocking(move |db| {
            let Some(bytes) = read_bytes(db, ARCHIVE, &key)? else {
                return Ok(None);
            };
            let msg: ArchivedMessage =
                serde_json::from_slice(&bytes).map_err(corrupt_row("archive"))?;
            Ok((msg.openid == openid && msg.expires_at > now).then_some(msg))
        })
        .await
    }

    async fn history(
        &self,
        openid: &OpenId,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Archived>, PortError> {
        let from = format!("{openid}\t");
        let to = format!("{openid}\n");
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let rows = txn.open_table(HISTORY)?;
            let messages = txn.open_table(ARCHIVE)?;
            let replies = txn.open_table(REPLIES)?;
            let mut found = Vec::new();
            for row in rows.range(from.as_str()..to.as_str())?.rev() {
                if found.len() >= limit {
                    break;
                }
                let (row, _) = row?;
                let (key, side) = parse_history_key(row.value())?;
                let entry = if side == SIDE_MESSAGE {
                    let Some(bytes) = messages.get(key)? else {
                        continue;
                    };
                    let msg: ArchivedMessage =
                        serde_json::from_slice(bytes.value()).map_err(corrupt_row("archive"))?;
                    (msg.expires_at > now).then_some(Archived::Message(msg))
                } else {
                    let Some(bytes) = replies.get(key)? else {
                        continue;
                    };
                    let reply: ArchivedReply =
                        serde_json::from_slice(bytes.value()).map_err(corrupt_row("replies"))?;
                    (reply.expires_at > now).then_some(Archived::Reply(reply))
                };
                found.extend(entry);
            }
            Ok(found)
        })
        .await
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, PortError> {
        let purged = self.purge(now).await?;
        Ok(purged.messages + purged.replies)
    }
}

/// An idempotency key's state, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// Somebody is working on it until `until`.
    Claimed { until: i64 },
    /// The work is done; `result` is replayed until `until`.
    Done { result: String, until: i64 },
}

impl Slot {
    const CLAIMED: u8 = b'C';
    const DONE: u8 = b'D';

    fn until(&self) -> i64 {
        match self {
            Slot::Claimed { until } | Slot::Done { until, .. } => *until,
        }
    }

    /// One tag byte, the expiry as 8 big-endian bytes, then (for a result)
    /// the result's UTF-8.
    fn encode(&self) -> Vec<u8> {
        match self {
            Slot::Claimed { until } => {
                let mut out = vec![Self::CLAIMED];
                out.extend_from_slice(&until.to_be_bytes());
                out
            }
            Slot::Done { result, until } => {
                let mut out = Vec::with_capacity(9 + result.len());
                out.push(Self::DONE);
                out.extend_from_slice(&until.to_be_bytes());
                out.extend_from_slice(result.as_bytes());
                out
            }
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, LocalError> {
        let corrupt = |why: &str| LocalError::Corrupt(format!("idempotency slot: {why}"));
        let (&tag, rest) = bytes.split_first().ok_or_else(|| corrupt("empty"))?;
        let (until, rest) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| corrupt("too short"))?;
        let until = i64::from_be_bytes(*until);
        match tag {
            Self::CLAIMED if rest.is_empty() => Ok(Slot::Claimed { until }),
            Self::DONE => {
                let result =
                    std::str::from_utf8(rest).map_err(|_| corrupt("result is not UTF-8"))?;
                Ok(Slot::Done {
                    result: result.to_owned(),
                    until,
                })
            }
            _ => Err(corrupt("unknown tag")),
        }
    }
}

/// The slot stored under `key`, if any.
fn read_slot(slots: &redb::Table<'_, &str, &[u8]>, key: &str) -> Result<Option<Slot>, LocalError> {
    slots
        .get(key)?
        .map(|bytes| Slot::decode(bytes.value()))
        .transpose()
}

/// Puts `slot` under `key` in place of `previous`, keeping the expiry index
/// in step.
fn write_slot(
    txn: &WriteTransaction,
    slots: &mut redb::Table<'_, &str, &[u8]>,
    key: &str,
    previous: Option<&Slot>,
    slot: &Slot,
) -> Result<(), LocalError> {
    let mut index = txn.open_table(IDEMPOTENCY_EXPIRY)?;
    if let Some(previous) = previous {
        index.remove((previous.until(), key))?;
    }
    slots.insert(key, slot.encode().as_slice())?;
    index.insert((slot.until(), key), ())?;
    Ok(())
}

#[async_trait]
impl IdempotencyStore for RedbStore {
    async fn begin(&self, key: &str, now: i64, lease_secs: i64) -> Result<Begin, PortError> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let seen = {
                let mut slots = txn.open_table(IDEMPOTENCY)?;
                match read_slot(&slots, &key)? {
                    Some(Slot::Done { result, until }) if until > now => Some(Begin::Done(result)),
                    Some(Slot::Claimed { until }) if until > now => Some(Begin::InFlight),
                    // Absent, or a lease or result that ran out: take it.
                    previous => {
                        let claim = Slot::Claimed {
                            until: now.saturating_add(lease_secs),
                        };
                        write_slot(&txn, &mut slots, &key, previous.as_ref(), &claim)?;
                        None
                    }
                }
            };
            match seen {
                Some(state) => {
                    txn.abort()?;
                    Ok(state)
                }
                None => {
                    txn.commit()?;
                    Ok(Begin::Fresh)
                }
            }
        })
        .await
    }

    async fn complete(
        &self,
        key: &str,
        result: &str,
        now: i64,
        ttl_secs: i64,
    ) -> Result<(), PortError> {
        let key = key.to_owned();
        let done = Slot::Done {
            result: result.to_owned(),
            until: now.saturating_add(ttl_secs),
        };
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut slots = txn.open_table(IDEMPOTENCY)?;
                let previous = read_slot(&slots, &key)?;
                write_slot(&txn, &mut slots, &key, previous.as_ref(), &done)?;
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn release(&self, key: &str) -> Result<(), PortError> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let released = {
                let mut slots = txn.open_table(IDEMPOTENCY)?;
                // Only an in-flight claim is released: completed work stays
                // done, whatever a late failure handler asks.
                match read_slot(&slots, &key)? {
                    Some(Slot::Claimed { until }) => {
                        slots.remove(key.as_str())?;
                        txn.open_table(IDEMPOTENCY_EXPIRY)?
                            .remove((until, key.as_str()))?;
                        true
                    }
                    _ => false,
                }
            };
            if released {
                txn.commit()?;
            } else {
                txn.abort()?;
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Counters for RedbStore {
    async fn add_once(
        &self,
        once_id: &str,
        keys: &[String],
        marker_expires_at: i64,
    ) -> Result<bool, PortError> {
        let once_id = once_id.to_owned();
        let keys = keys.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let applied = {
                let mut markers = txn.open_table(MARKERS)?;
                if markers.get(once_id.as_str())?.is_some() {
                    false
                } else {
                    markers.insert(once_id.as_str(), marker_expires_at)?;
                    txn.open_table(MARKER_EXPIRY)?
                        .insert((marker_expires_at, once_id.as_str()), ())?;
                    let mut counters = txn.open_table(COUNTERS)?;
                    for key in &keys {
                        let value = counters.get(key.as_str())?.map_or(0, |v| v.value());
                        counters.insert(key.as_str(), value.saturating_add(1))?;
                    }
                    true
                }
            };
            // The marker and every increment commit together or not at all.
            commit_if(txn, applied)
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<u64, PortError> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(COUNTERS)?;
            Ok(table.get(key.as_str())?.map_or(0, |v| v.value()))
        })
        .await
    }
}

#[async_trait]
impl EventLog for RedbStore {
    async fn record(&self, event: &Event, expires_at: i64) -> Result<bool, PortError> {
        let json = serde_json::to_vec(event).map_err(cannot_encode)?;
        let id = event.id.clone();
        self.blocking(move |db| insert_new(db, EVENTS, EVENT_EXPIRY, &id, &json, expires_at))
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<Event>, PortError> {
        let id = id.to_owned();
        self.blocking(move |db| {
            read_bytes(db, EVENTS, &id)?
                .map(|bytes| serde_json::from_slice(&bytes).map_err(corrupt_row("events")))
                .transpose()
        })
        .await
    }
}

/// One user's conversation, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredConversation {
    version: u64,
    expires_at: i64,
    state: ConversationState,
}

impl StoredConversation {
    /// The version as 8 big-endian bytes, the expiry as 8 more, then the
    /// state as JSON.
    fn encode(&self) -> Result<Vec<u8>, PortError> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        serde_json::to_writer(&mut out, &self.state).map_err(cannot_encode)?;
        Ok(out)
    }

    /// The version and expiry only: what compare-and-set needs, readable
    /// even when the state's JSON is not.
    fn decode_header(bytes: &[u8]) -> Result<(u64, i64, &[u8]), LocalError> {
        let corrupt = || LocalError::Corrupt("conversations: row shorter than its header".into());
        let (version, rest) = bytes.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let (expires_at, json) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
        Ok((
            u64::from_be_bytes(*version),
            i64::from_be_bytes(*expires_at),
            json,
        ))
    }

    fn decode(bytes: &[u8]) -> Result<Self, LocalError> {
        let (version, expires_at, json) = Self::decode_header(bytes)?;
        Ok(Self {
            version,
            expires_at,
            state: serde_json::from_slice(json).map_err(corrupt_row("conversations"))?,
        })
    }
}

#[async_trait]
impl ConversationStore for RedbStore {
    async fn get(&self, openid: &OpenId, now: i64) -> Result<Versioned, PortError> {
        let key = openid.as_str().to_owned();
        self.blocking(move |db| {
            let Some(bytes) = read_bytes(db, CONVERSATIONS, &key)? else {
                return Ok(Versioned::default());
            };
            let (version, expires_at, _) = StoredConversation::decode_header(&bytes)?;
            // An expired state is not decoded: it reads as the default
            // whatever it holds, and the next write replaces it.
            if now >= expires_at {
                return Ok(Versioned {
                    version,
                    state: ConversationState::default(),
                });
            }
            let stored = StoredConversation::decode(&bytes)?;
            Ok(Versioned {
                version: stored.version,
                state: stored.state,
            })
        })
        .await
    }

    async fn compare_and_set(
        &self,
        openid: &OpenId,
        expected: u64,
        state: &ConversationState,
        expires_at: i64,
    ) -> Result<bool, PortError> {
        let version = wca_core::conversation::next_version(expected)?;
        let row = StoredConversation {
            version,
            expires_at,
            state: state.clone(),
        }
        .encode()?;
        let key = openid.as_str().to_owned();
        self.blocking(move |db| {
            // Read, compare and write in one write transaction: redb runs
            // one at a time, so no other writer can slip in between.
            let txn = db.begin_write()?;
            let stored = {
                let mut rows = txn.open_table(CONVERSATIONS)?;
                let previous = rows
                    .get(key.as_str())?
                    .map(|bytes| {
                        StoredConversation::decode_header(bytes.value())
                            .map(|(version, expires_at, _)| (version, expires_at))
                    })
                    .transpose()?;
                if previous.map_or(0, |(version, _)| version) == expected {
                    let mut index = txn.open_table(CONVERSATION_EXPIRY)?;
                    if let Some((_, previous_expiry)) = previous {
                        index.remove((previous_expiry, key.as_str()))?;
                    }
                    rows.insert(key.as_str(), row.as_slice())?;
                    index.insert((expires_at, key.as_str()), ())?;
                    true
                } else {
                    false
                }
            };
            commit_if(txn, stored)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wca_core::contract;

    fn fresh() -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RedbStore::open(&dir.path().join("wca.redb")).expect("open store");
        (dir, store)
    }

    fn message(key: &str, expires_at: i64) -> ArchivedMessage {
        ArchivedMessage {
            key: key.to_owned(),
            openid: "o-user".to_owned(),
            msg_type: "text".to_owned(),
            create_time: 1_700_000_000,
            received_at: 1_700_000_001,
            raw_xml: "<xml/>".to_owned(),
            parsed: serde_json::json!({"kind": "text"}),
            expires_at,
        }
    }

    #[tokio::test]
    async fn redb_store_keeps_the_archive_contract() {
        let (_dir, store) = fresh();
        contract::archive(&store).await;
    }

    #[tokio::test]
    async fn redb_store_keeps_both_sides_in_each_users_history() {
        let (_dir, store) = fresh();
        contract::archive_history(&store).await;
    }

    #[tokio::test]
    async fn redb_store_keeps_the_idempotency_contract() {
        let (_dir, store) = fresh();
        contract::idempotency(&store).await;
    }

    #[tokio::test]
    async fn redb_store_keeps_the_counters_contract() {
        let (_dir, store) = fresh();
        contract::counters(&store).await;
    }

    #[tokio::test]
    async fn redb_store_keeps_the_event_log_contract() {
        let (_dir, store) = fresh();
        contract::event_log(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redb_store_keeps_the_conversation_store_contract() {
        let (_dir, store) = fresh();
        contract::conversation_store(Arc::new(store)).await;
    }

    fn openid(s: &str) -> OpenId {
        OpenId::parse(s).expect("valid OpenID")
    }

    /// Writes `bytes` as `key`'s conversation row, bypassing the encoding.
    fn put_raw_conversation(store: &RedbStore, key: &str, bytes: &[u8]) {
        let txn = store.db.begin_write().expect("begin");
        txn.open_table(CONVERSATIONS)
            .expect("table")
            .insert(key, bytes)
            .expect("insert");
        txn.commit().expect("commit");
    }

    #[tokio::test]
    async fn a_corrupt_conversation_row_reads_as_corrupt() {
        let (_dir, store) = fresh();
        let now: i64 = 1_700_000_000;
        let mut bad_json = 3u64.to_be_bytes().to_vec();
        bad_json.extend_from_slice(&(now + 600).to_be_bytes());
        bad_json.extend_from_slice(b"{\"turns\": \"many\"");
        for (key, bytes) in [
            ("o-empty", &b""[..]),
            ("o-short", &b"\0\0\0\0\0\0\0\x01\0\0"[..]),
            ("o-bad-json", &bad_json[..]),
        ] {
            put_raw_conversation(&store, key, bytes);
            let got = ConversationStore::get(&store, &openid(key), now).await;
            assert!(matches!(got, Err(PortError::Corrupt(_))), "{key}: {got:?}");
        }
        let got = store
            .compare_and_set(&openid("o-short"), 0, &ConversationState::default(), now)
            .await;
        assert!(
            matches!(got, Err(PortError::Corrupt(_))),
            "a write over a row whose version cannot be read is refused: {got:?}"
        );
    }

    #[test]
    fn conversation_rows_round_trip() {
        let stored = StoredConversation {
            version: u64::MAX - 1,
            expires_at: -7,
            state: ConversationState {
                handed_off_at: Some(1_700_000_000),
                turns: 42,
                ..ConversationState::default()
            },
        };
        let bytes = stored.encode().expect("encode");
        assert_eq!(StoredConversation::decode(&bytes).expect("decode"), stored);
    }

    #[tokio::test]
    async fn a_conversation_survives_closing_and_reopening_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wca.redb");
        let user = openid("o-user");
        let state = ConversationState {
            turns: 5,
            ..ConversationState::default()
        };
        {
            let store = RedbStore::open(&path).expect("open");
            assert!(
                store
                    .compare_and_set(&user, 0, &state, 2_000_000_000)
                    .await
                    .expect("compare_and_set")
            );
        }
        let store = RedbStore::open(&path).expect("reopen");
        assert_eq!(
            ConversationStore::get(&store, &user, 1_700_000_000)
                .await
                .expect("get"),
            Versioned { version: 1, state }
        );
    }

    #[tokio::test]
    async fn data_survives_closing_and_reopening_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wca.redb");
        let msg = message("msg:1", 2_000_000_000);
        let event = Event::reply_sent("msg:1", "o-user", "text", 1_700_000_000);
        {
            let store = RedbStore::open(&path).expect("open");
            assert!(store.put(&msg).await.expect("put"));
            let keys = ["msgs:day:2023-11-14".to_owned()];
            assert!(
                store
                    .add_once("e1", &keys, 2_000_000_000)
                    .await
                    .expect("add")
            );
            store
                .complete("k1", "<xml>ok</xml>", 1_700_000_000, 600)
                .await
                .expect("complete");
            assert!(store.record(&event, 2_000_000_000).await.expect("record"));
        }

        let store = RedbStore::open(&path).expect("reopen");
        assert_eq!(
            MessageArchive::get(&store, "o-user", "msg:1", 1_700_000_000)
                .await
                .expect("get"),
            Some(msg)
        );
        assert_eq!(
            Counters::get(&store, "msgs:day:2023-11-14")
                .await
                .expect("get"),
            1
        );
        let keys = ["msgs:day:2023-11-14".to_owned()];
        assert!(
            !store
                .add_once("e1", &keys, 2_000_000_000)
                .await
                .expect("add"),
            "the once-marker survives too, so a redelivery is still ignored"
        );
        assert_eq!(
            store.begin("k1", 1_700_000_001, 30).await.expect("begin"),
            Begin::Done("<xml>ok</xml>".to_owned())
        );
        assert_eq!(
            EventLog::get(&store, &event.id).await.expect("get"),
            Some(event)
        );
    }

    #[test]
    fn opening_creates_missing_parent_directories() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a").join("b").join("wca.redb");
        RedbStore::open(&path).expect("open in a new directory");
        assert!(path.is_file());
    }

    #[test]
    fn opening_a_file_that_is_already_open_is_an_error_not_a_panic() {
        let (dir, _store) = fresh();
        let second = RedbStore::open(&dir.path().join("wca.redb"));
        assert!(matches!(second, Err(LocalError::Open { .. })), "{second:?}");
    }

    #[tokio::test]
    async fn purge_deletes_every_kind_of_expired_entry_and_keeps_the_rest() {
        let (_dir, store) = fresh();
        let now = 1_700_000_000;
        assert!(store.put(&message("msg:old", now)).await.expect("put"));
        assert!(store.put(&message("msg:new", now + 1)).await.expect("put"));
        assert_eq!(
            store.begin("claim:old", now - 60, 30).await.expect("begin"),
            Begin::Fresh
        );
        assert_eq!(
            store.begin("claim:new", now, 30).await.expect("begin"),
            Begin::Fresh
        );
        store
            .complete("done:old", "r", now - 700, 600)
            .await
            .expect("complete");
        let keys = ["c".to_owned()];
        assert!(
            store
                .add_once("marker:old", &keys, now - 1)
                .await
                .expect("add")
        );
        assert!(
            store
                .add_once("marker:new", &keys, now + 1)
                .await
                .expect("add")
        );
        for (key, expires_at) in [("msg:old", now), ("msg:new", now + 1)] {
            let reply = ArchivedReply {
                key: key.to_owned(),
                openid: "o-user".to_owned(),
                sent_at: 0,
                reply: wca_core::Outgoing::text("好的"),
                route: "rule".to_owned(),
                expires_at,
            };
            assert!(store.put_reply(&reply).await.expect("put reply"));
        }
        let old_event = Event::request_rejected("bad_signature", "r-1", now);
        let new_event = Event::request_rejected("bad_signature", "r-2", now);
        assert!(store.record(&old_event, now).await.expect("record"));
        assert!(store.record(&new_event, now + 1).await.expect("record"));
        let (old_user, new_user) = (openid("o-old"), openid("o-new"));
        let state = ConversationState {
            turns: 1,
            ..ConversationState::default()
        };
        assert!(
            store
                .compare_and_set(&old_user, 0, &state, now - 10)
                .await
                .expect("compare_and_set")
        );
        // Rewritten with a later expiry: the old index row must go too.
        assert!(
            store
                .compare_and_set(&old_user, 1, &state, now)
                .await
                .expect("compare_and_set")
        );
        assert!(
            store
                .compare_and_set(&new_user, 0, &state, now - 10)
                .await
                .expect("compare_and_set")
        );
        assert!(
            store
                .compare_and_set(&new_user, 1, &state, now + 1)
                .await
                .expect("compare_and_set")
        );

        let purged = store.purge(now).await.expect("purge");
        assert_eq!(
            purged,
            Purged {
                messages: 1,
                replies: 1,
                idempotency_keys: 2,
                counter_markers: 1,
                events: 1,
                conversations: 1,
            }
        );
        assert_eq!(purged.total(), 7);
        assert_eq!(
            ConversationStore::get(&store, &old_user, now)
                .await
                .expect("get"),
            Versioned::default(),
            "a purged conversation is forgotten, version and all"
        );
        assert_eq!(
            ConversationStore::get(&store, &new_user, now)
                .await
                .expect("get"),
            Versioned { version: 2, state },
            "a conversation whose rewrite moved its expiry survives the purge"
        );
        assert_eq!(store.stored_messages().await.expect("count"), 1);
        assert!(
            MessageArchive::get(&store, "o-user", "msg:new", now)
                .await
                .expect("get")
                .is_some()
        );
        assert_eq!(
            store.begin("claim:new", now, 30).await.expect("begin"),
            Begin::InFlight,
            "a live claim survives the purge"
        );
        assert_eq!(
            Counters::get(&store, "c").await.expect("get"),
            2,
            "counter values are kept"
        );
        assert!(
            store
                .add_once("marker:old", &keys, now + 100)
                .await
                .expect("add"),
            "a purged marker is forgotten"
        );
        assert!(
            !store
                .add_once("marker:new", &keys, now + 100)
                .await
                .expect("add")
        );
        assert_eq!(
            EventLog::get(&store, &old_event.id).await.expect("get"),
            None
        );
        assert_eq!(
            EventLog::get(&store, &new_event.id).await.expect("get"),
            Some(new_event)
        );
        assert_eq!(
            store.purge(now).await.expect("purge again"),
            Purged::default(),
            "a second purge at the same time finds nothing"
        );
    }

    #[tokio::test]
    async fn a_completed_key_is_purged_by_its_result_ttl_not_its_claim_lease() {
        let (_dir, store) = fresh();
        let now = 1_700_000_000;
        assert_eq!(
            store.begin("k", now, 30).await.expect("begin"),
            Begin::Fresh
        );
        store
            .complete("k", "r", now + 1, 600)
            .await
            .expect("complete");
        assert_eq!(
            store
                .purge(now + 100)
                .await
                .expect("purge")
                .idempotency_keys,
            0
        );
        assert_eq!(
            store.begin("k", now + 100, 30).await.expect("begin"),
            Begin::Done("r".to_owned())
        );
        assert_eq!(
            store
                .purge(now + 601)
                .await
                .expect("purge")
                .idempotency_keys,
            1
        );
    }

    #[test]
    fn idempotency_slots_round_trip_and_garbage_is_reported_as_corrupt() {
        for slot in [
            Slot::Claimed { until: -5 },
            Slot::Done {
                result: "<xml>答复</xml>".to_owned(),
                until: i64::MAX,
            },
            Slot::Done {
                result: String::new(),
                until: 0,
            },
        ] {
            assert_eq!(Slot::decode(&slot.encode()).expect("decode"), slot);
        }
        for garbage in [
            &b""[..],
            b"C1234",
            b"X12345678",
            b"C12345678extra",
            b"D12345678\xff",
        ] {
            assert!(
                matches!(Slot::decode(garbage), Err(LocalError::Corrupt(_))),
                "{garbage:?}"
            );
        }
    }
}
