//! [`RedbStore`]: the durable ports of `wca serve` in one redb file.
//!
//! One store implements [`MessageArchive`], [`IdempotencyStore`],
//! [`Counters`], [`EventLog`] and [`ConversationStore`], each in its own
//! tables, with the same
//! semantics as the memory adapters in `wca_core::memory` (the contract
//! suites run against both).
//!
//! [`RedbCommit`] writes everything one message produced in one
//! transaction. Idempotency claims of work in progress are held in memory
//! (only one process can open the file); what is on disk is each result.
//!
//! Every entry that can expire also has a row in an expiry index keyed by
//! `(expires_at, key)`, so a purge reads only what has expired instead of
//! decoding the whole archive.
//!
//! **Group commit.** Every write goes to one writer thread, which applies
//! the writes waiting at that moment one after another inside a single
//! redb transaction and commits them with one `fsync`; each caller hears
//! back only once that commit is durable, so "acknowledged" still means
//! "on disk". Writes apply one at a time, in order, each seeing the ones
//! before it, so "first write wins", "all keys of an `add_once` or none"
//! and compare-and-set of a conversation hold exactly as with one
//! transaction each. A write that fails is taken out of the batch: the
//! others are applied again without it, each in its own transaction. A
//! batch in which nothing changed (duplicates, lost races) commits nothing.
//!
//! redb is a blocking library (file I/O and, on commit, `fsync`), so writes
//! run on the writer thread and reads of many rows (history, exports) on
//! tokio's blocking pool via `spawn_blocking`, never stalling a runtime
//! worker. A read of one key (a conversation, a dedup record) runs in
//! place: it costs microseconds from redb's cache, less than the hop to
//! the blocking pool and back.

use std::path::Path;
use std::sync::{Arc, mpsc};

use async_trait::async_trait;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use wca_core::{
    Archived, ArchivedMessage, ArchivedReply, BOARD_KEY, Begin, Committed, ConversationState,
    ConversationStore, ConversationWrite, Counters, Erased, Event, EventLog, HeldConversation,
    IdempotencyStore, MessageArchive, MessageCommit, MessageWrites, OpenId, PortError, UserData,
    UserRecord, Versioned, analytics::Count, ports::message_event_ids,
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
    writer: Arc<Writer>,
    /// Set once a write failed on I/O (a full disk, a failing device):
    /// redb refuses every later write until the file is reopened.
    broken: tokio::sync::watch::Receiver<Option<String>>,
    /// Idempotency claims of work in progress (see [`Claims`]).
    claims: Arc<Claims>,
}

/// Claims of work in progress, held in memory: only one process can have
/// the file open, so a claim need not be on disk to exclude anyone, and a
/// claim written to disk would only cost a `fsync` and outlive a crash
/// (keeping the retry of a dead delivery waiting for its lease). What is
/// durable is the result ([`Slot::Done`]), written with the work itself.
#[derive(Debug, Default)]
struct Claims(std::sync::Mutex<HeldClaims>);

#[derive(Debug, Default)]
struct HeldClaims {
    /// Key → until when it is claimed.
    until: std::collections::HashMap<String, i64>,
    /// The size at which expired claims are swept next.
    sweep_at: usize,
}

impl Claims {
    fn held(&self) -> std::sync::MutexGuard<'_, HeldClaims> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `key` until `until` unless a live claim holds it; `true`
    /// when this call claimed it.
    fn claim(&self, key: &str, now: i64, until: i64) -> bool {
        let mut held = self.held();
        if held.until.get(key).is_some_and(|&t| t > now) {
            return false;
        }
        if held.until.len() >= held.sweep_at {
            held.until.retain(|_, t| *t > now);
            held.sweep_at = (2 * held.until.len()).max(1024);
        }
        held.until.insert(key.to_owned(), until);
        true
    }

    /// Lets go of `key`; `true` when it was claimed.
    fn release(&self, key: &str) -> bool {
        self.held().until.remove(key).is_some()
    }
}

/// Most writes one transaction takes: bounds how long the first caller of
/// a batch waits behind the others.
const MAX_BATCH: usize = 1024;

/// A write waiting for the writer thread.
trait Write: Send {
    /// Applies the write inside the batch's transaction; `Ok(true)` when
    /// it changed something. May run again (alone) if another write of
    /// its batch fails, so it must not consume what it captured.
    fn apply(&mut self, txn: &WriteTransaction) -> Result<bool, LocalError>;
    /// Tells the caller how it ended, once the batch is durable or failed.
    fn finish(self: Box<Self>, outcome: Result<(), PortError>);
}

/// A [`Write`] that hands the caller a `T`.
struct Pending<T, F> {
    op: F,
    value: Option<T>,
    reply: tokio::sync::oneshot::Sender<Result<T, PortError>>,
}

impl<T, F> Write for Pending<T, F>
where
    T: Send,
    F: FnMut(&WriteTransaction) -> Result<(T, bool), LocalError> + Send,
{
    fn apply(&mut self, txn: &WriteTransaction) -> Result<bool, LocalError> {
        let (value, changed) = (self.op)(txn)?;
        self.value = Some(value);
        Ok(changed)
    }

    fn finish(self: Box<Self>, outcome: Result<(), PortError>) {
        let Pending { value, reply, .. } = *self;
        let result = outcome.and_then(|()| {
            value.ok_or_else(|| LocalError::Interrupted("write was never applied".into()).into())
        });
        // The caller may have gone (its request was dropped): the write
        // stands all the same.
        let _ = reply.send(result);
    }
}

/// The writer thread and the way to it. Dropping the last store closes
/// the queue and waits for the thread, so the file is closed (and may be
/// opened again) once `drop` returns.
#[derive(Debug)]
struct Writer {
    jobs: Option<mpsc::Sender<Box<dyn Write>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(
        db: Arc<Database>,
        broken: tokio::sync::watch::Sender<Option<String>>,
    ) -> Result<Self, LocalError> {
        let (jobs, queue) = mpsc::channel::<Box<dyn Write>>();
        let thread = std::thread::Builder::new()
            .name("wca-redb-writer".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    if let Some(why) = commit_batch(&db, batch) {
                        broken.send_if_modified(|state| {
                            let first = state.is_none();
                            if first {
                                *state = Some(why);
                            }
                            first
                        });
                    }
                }
            })
            .map_err(|e| LocalError::Interrupted(format!("starting the writer thread: {e}")))?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Applies `batch` in one transaction and commits it (or, if nothing
/// changed, aborts it: no `fsync` for a batch of duplicates). A write that
/// fails is answered with its error and the rest run again, one
/// transaction each, so one bad write never fails its neighbours.
///
/// Returns why the store can write no more, when a failure was an I/O
/// error: redb then refuses every write until the file is reopened.
fn commit_batch(db: &Database, mut batch: Vec<Box<dyn Write>>) -> Option<String> {
    let txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            let err = LocalError::from(e);
            let broken = io_failure(&err);
            fail_all(batch, &err);
            return broken;
        }
    };
    let mut changed = false;
    for (n, job) in batch.iter_mut().enumerate() {
        match job.apply(&txn) {
            Ok(wrote) => changed |= wrote,
            Err(e) => {
                let _ = txn.abort();
                let failed = batch.remove(n);
                let mut broken = io_failure(&e);
                failed.finish(Err(e.into()));
                for job in batch {
                    broken = broken.or(commit_batch(db, vec![job]));
                }
                return broken;
            }
        }
    }
    let ended = if changed {
        txn.commit()
    } else {
        txn.abort().map_err(Into::into)
    };
    match ended {
        Ok(()) => {
            batch.into_iter().for_each(|job| job.finish(Ok(())));
            None
        }
        Err(e) => {
            let err = LocalError::from(e);
            fail_all(batch, &err);
            io_failure(&err)
        }
    }
}

/// Why the store can write no more, if `err` is an I/O failure.
fn io_failure(err: &LocalError) -> Option<String> {
    match err {
        LocalError::Storage(inner) => match **inner {
            redb::Error::Io(_) | redb::Error::PreviousIo => Some(err.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// Answers every write of a batch that could not be committed.
fn fail_all(batch: Vec<Box<dyn Write>>, err: &LocalError) {
    for job in batch {
        job.finish(Err(same_error(err)));
    }
}

/// A port error like the one `err` maps to, for each write of a failed
/// batch (the error itself can be handed out once only).
fn same_error(err: &LocalError) -> PortError {
    match err {
        LocalError::Storage(inner) if matches!(**inner, redb::Error::Corrupted(_)) => {
            PortError::Corrupt(err.to_string())
        }
        _ => PortError::Unavailable(err.to_string()),
    }
}

/// What one [`RedbStore::purge`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Archived messages past their retention.
    pub messages: u64,
    /// Archived replies past their retention.
    pub replies: u64,
    /// Idempotency results past their ttl (and claims left on disk by
    /// versions of wca that wrote them).
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
        let mut db = open_checked(path)?;
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
        // Every page is read and its checksum verified once at start, so a
        // damaged file is refused now rather than failing reads later.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| db.check_integrity())) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(damaged(path, e.to_string())),
            Err(panic) => return Err(damaged(path, panic_message(&panic))),
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
        txn.open_table(crate::outbound::TOKENS)?;
        txn.open_table(crate::outbound::CONTACTS)?;
        txn.open_table(crate::outbound::OUTBOX)?;
        txn.open_table(crate::campaigns::CAMPAIGNS)?;
        txn.open_table(crate::campaigns::OCCURRENCES)?;
        txn.open_table(crate::campaigns::DELIVERIES)?;
        txn.open_table(crate::campaigns::COOLDOWNS)?;
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
        let db = Arc::new(db);
        let (broken_tx, broken) = tokio::sync::watch::channel(None);
        let writer = Arc::new(Writer::start(Arc::clone(&db), broken_tx)?);
        Ok(Self {
            db,
            writer,
            broken,
            claims: Arc::default(),
        })
    }

    /// Deletes everything that expired at or before `now`: archived
    /// messages and replies, idempotency results, counter once-markers,
    /// event-log entries and conversation states, in one transaction.
    /// Counter values are kept.
    pub async fn purge(&self, now: i64) -> Result<Purged, PortError> {
        self.write(move |txn| {
            let purged = Purged {
                messages: purge_expired(txn, ARCHIVE_EXPIRY, ARCHIVE, now)?,
                replies: purge_expired(txn, REPLY_EXPIRY, REPLIES, now)?,
                idempotency_keys: purge_expired(txn, IDEMPOTENCY_EXPIRY, IDEMPOTENCY, now)?,
                counter_markers: purge_expired(txn, MARKER_EXPIRY, MARKERS, now)?,
                events: purge_expired(txn, EVENT_EXPIRY, EVENTS, now)?,
                conversations: purge_expired(txn, CONVERSATION_EXPIRY, CONVERSATIONS, now)?,
            };
            let rows = purge_expired(txn, HISTORY_EXPIRY, HISTORY, now)?;
            Ok((purged, purged.total() + rows > 0))
        })
        .await
    }

    /// Resolves once a write has failed on I/O (a full disk, a failing
    /// device), with the error. redb then refuses every later write until
    /// the file is reopened, so the process should stop and be restarted
    /// (by its supervisor, or by hand) rather than answer errors forever.
    /// Never resolves while writes succeed.
    pub async fn broken(&self) -> String {
        let mut watch = self.broken.clone();
        let why = match watch.wait_for(Option::is_some).await {
            Ok(state) => state.clone(),
            // The writer is gone: the store is being dropped.
            Err(_) => None,
        };
        match why {
            Some(why) => why,
            None => std::future::pending().await,
        }
    }

    /// How many messages are archived, expired ones included until purged.
    pub async fn stored_messages(&self) -> Result<u64, PortError> {
        self.blocking(|db| {
            let txn = db.begin_read()?;
            Ok(txn.open_table(ARCHIVE)?.len()?)
        })
        .await
    }

    /// [`archive_new`] through the writer.
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
        self.write(move |txn| {
            let stored = archive_new(
                txn,
                data,
                index,
                &key,
                &value,
                expires_at,
                history.as_deref(),
            )?;
            Ok((stored, stored))
        })
        .await
    }

    /// Runs `op` in the writer's next batch and waits until that batch is
    /// durable. `op` gives its result and whether it changed anything.
    pub(crate) async fn write<T, F>(&self, op: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<(T, bool), LocalError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Box::new(Pending {
            op,
            value: None,
            reply,
        });
        let stopped = || LocalError::Interrupted("the store's writer has stopped".into());
        let jobs = self.writer.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `op`, a read of one key, in place (see the module's notes) and
    /// maps its error onto the ports'.
    pub(crate) fn read_one<T>(
        &self,
        op: impl FnOnce(&Database) -> Result<T, LocalError>,
    ) -> Result<T, PortError> {
        op(&self.db).map_err(PortError::from)
    }

    /// Runs `op` on the blocking pool and maps its error onto the ports'.
    pub(crate) async fn blocking<T, F>(&self, op: F) -> Result<T, PortError>
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

/// Opens (or creates) the redb file at `path`, telling a damaged file
/// apart from one that is merely busy or unreadable: an empty file, one
/// that is not a redb file, one cut short, or one redb stops on (redb
/// panics on some damaged pages) is [`LocalError::Damaged`], naming the
/// file. An empty file is never taken for a new store: data that was there
/// would be lost without a word.
fn open_checked(path: &Path) -> Result<Database, LocalError> {
    /// The first bytes of every redb file.
    const MAGIC: &[u8] = b"redb\x1a\x0a\xa9\x0d\x0a";
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.len() == 0 {
            return Err(damaged(
                path,
                "the file is empty (0 bytes), and a store file never is".into(),
            ));
        }
        let mut head = [0u8; MAGIC.len()];
        let read = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
        if read.is_err() || head != MAGIC {
            return Err(damaged(path, "it does not start like a redb file".into()));
        }
    }
    match std::panic::catch_unwind(|| Database::create(path)) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(why)))) => {
            Err(damaged(path, why))
        }
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(io))))
            if io.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Err(damaged(path, "the file is cut short".into()))
        }
        Ok(Err(source)) => Err(LocalError::Open {
            path: path.to_owned(),
            source,
        }),
        Err(panic) => Err(damaged(path, panic_message(&panic))),
    }
}

fn damaged(path: &Path, why: String) -> LocalError {
    LocalError::Damaged {
        path: path.to_owned(),
        why,
    }
}

/// What a caught panic said, for the error that replaces it.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let said = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    format!("redb could not read it ({said})")
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

/// Stores `value` under `key` in `txn` unless the key exists, indexing it
/// under `expires_at`. Returns `true` when this call stored it.
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

/// The bytes stored under `key` in `data`, if any.
pub(crate) fn read_bytes(
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
/// history row, both indexed under `expires_at`, in `txn`.
fn archive_new(
    txn: &WriteTransaction,
    data: TableDefinition<'_, &str, &[u8]>,
    index: ExpiryIndex,
    key: &str,
    value: &[u8],
    expires_at: i64,
    history: Option<&str>,
) -> Result<bool, LocalError> {
    let stored = insert_row(txn, data, index, key, value, expires_at)?;
    if stored && let Some(row) = history {
        txn.open_table(HISTORY)?.insert(row, ())?;
        txn.open_table(HISTORY_EXPIRY)?
            .insert((expires_at, row), ())?;
    }
    Ok(stored)
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
        self.read_one(|db| {
            let Some(bytes) = read_bytes(db, ARCHIVE, key)? else {
                return Ok(None);
            };
            let msg: ArchivedMessage =
                serde_json::from_slice(&bytes).map_err(corrupt_row("archive"))?;
            Ok((msg.openid == openid && msg.expires_at > now).then_some(msg))
        })
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
fn read_slot(
    slots: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Slot>, LocalError> {
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

/// Records `done` under `key` in `txn`, in place of whatever was there.
fn complete_in(txn: &WriteTransaction, key: &str, done: &Slot) -> Result<(), LocalError> {
    let mut slots = txn.open_table(IDEMPOTENCY)?;
    let previous = read_slot(&slots, key)?;
    write_slot(txn, &mut slots, key, previous.as_ref(), done)
}

#[async_trait]
impl IdempotencyStore for RedbStore {
    /// The claim is taken in memory first, then the file is read for a
    /// result: a delivery that completes meanwhile writes its result before
    /// it lets go of its claim, so one of the two always sees the other.
    /// The read is one key, done in place: cheaper than the hop to the
    /// blocking pool.
    async fn begin(&self, key: &str, now: i64, lease_secs: i64) -> Result<Begin, PortError> {
        if !self.claims.claim(key, now, now.saturating_add(lease_secs)) {
            return Ok(Begin::InFlight);
        }
        let slot = self.read_one(|db| {
            let txn = db.begin_read()?;
            read_slot(&txn.open_table(IDEMPOTENCY)?, key)
        });
        let begun = match slot {
            Err(e) => Err(e),
            Ok(Some(Slot::Done { result, until })) if until > now => Ok(Begin::Done(result)),
            // A claim on disk, from a version of wca that wrote them.
            Ok(Some(Slot::Claimed { until })) if until > now => Ok(Begin::InFlight),
            // Absent, or a result that ran out: the claim stands.
            Ok(_) => return Ok(Begin::Fresh),
        };
        self.claims.release(key);
        begun
    }

    async fn complete(
        &self,
        key: &str,
        result: &str,
        now: i64,
        ttl_secs: i64,
    ) -> Result<(), PortError> {
        let owned = key.to_owned();
        let done = Slot::Done {
            result: result.to_owned(),
            until: now.saturating_add(ttl_secs),
        };
        self.write(move |txn| {
            complete_in(txn, &owned, &done)?;
            Ok(((), true))
        })
        .await?;
        // Only once the result is durable, so that a `begin` finding no
        // claim finds the result.
        self.claims.release(key);
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), PortError> {
        // Completed work stays done whatever a late failure handler asks:
        // the result on disk is not touched.
        self.claims.release(key);
        Ok(())
    }
}

/// Applies `count` in `txn` unless its id was counted; `true` when it
/// counted. The marker and every increment are in one transaction: they
/// commit together or not at all.
fn count_in(txn: &WriteTransaction, count: &Count) -> Result<bool, LocalError> {
    let mut markers = txn.open_table(MARKERS)?;
    if markers.get(count.once_id.as_str())?.is_some() {
        return Ok(false);
    }
    markers.insert(count.once_id.as_str(), count.marker_expires_at)?;
    txn.open_table(MARKER_EXPIRY)?
        .insert((count.marker_expires_at, count.once_id.as_str()), ())?;
    let mut counters = txn.open_table(COUNTERS)?;
    for key in &count.keys {
        let value = counters.get(key.as_str())?.map_or(0, |v| v.value());
        counters.insert(key.as_str(), value.saturating_add(count.by))?;
    }
    Ok(true)
}

#[async_trait]
impl Counters for RedbStore {
    async fn add_once_by(
        &self,
        once_id: &str,
        keys: &[String],
        by: u64,
        marker_expires_at: i64,
    ) -> Result<bool, PortError> {
        let count = Count {
            once_id: once_id.to_owned(),
            keys: keys.to_vec(),
            by,
            marker_expires_at,
        };
        self.write(move |txn| {
            let counted = count_in(txn, &count)?;
            Ok((counted, counted))
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
        self.write(move |txn| {
            let stored = insert_row(txn, EVENTS, EVENT_EXPIRY, &id, &json, expires_at)?;
            Ok((stored, stored))
        })
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

/// A conversation compare-and-set, encoded for the writer.
struct EncodedConversation {
    key: String,
    expected: u64,
    /// The [`StoredConversation`] encoding of the new state.
    row: Vec<u8>,
    expires_at: i64,
}

impl EncodedConversation {
    fn new(write: &ConversationWrite) -> Result<Self, PortError> {
        let row = StoredConversation {
            version: wca_core::conversation::next_version(write.expected)?,
            expires_at: write.expires_at,
            state: write.state.clone(),
        }
        .encode()?;
        Ok(Self {
            key: write.openid.as_str().to_owned(),
            expected: write.expected,
            row,
            expires_at: write.expires_at,
        })
    }

    /// Whether the stored version is still the expected one: `None` when it
    /// is not, else the stored row's expiry (`None` inside: no row).
    fn check(&self, txn: &WriteTransaction) -> Result<Option<Option<i64>>, LocalError> {
        let rows = txn.open_table(CONVERSATIONS)?;
        let previous = rows
            .get(self.key.as_str())?
            .map(|bytes| {
                StoredConversation::decode_header(bytes.value())
                    .map(|(version, expires_at, _)| (version, expires_at))
            })
            .transpose()?;
        Ok(
            (previous.map_or(0, |(version, _)| version) == self.expected)
                .then_some(previous.map(|(_, expires_at)| expires_at)),
        )
    }

    /// Writes the row, replacing the one that expired at `previous_expiry`.
    fn put(&self, txn: &WriteTransaction, previous_expiry: Option<i64>) -> Result<(), LocalError> {
        let mut index = txn.open_table(CONVERSATION_EXPIRY)?;
        if let Some(previous_expiry) = previous_expiry {
            index.remove((previous_expiry, self.key.as_str()))?;
        }
        txn.open_table(CONVERSATIONS)?
            .insert(self.key.as_str(), self.row.as_slice())?;
        index.insert((self.expires_at, self.key.as_str()), ())?;
        Ok(())
    }
}

#[async_trait]
impl ConversationStore for RedbStore {
    async fn get(&self, openid: &OpenId, now: i64) -> Result<Versioned, PortError> {
        let key = openid.as_str();
        self.read_one(|db| {
            let Some(bytes) = read_bytes(db, CONVERSATIONS, key)? else {
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
    }

    async fn compare_and_set(
        &self,
        openid: &OpenId,
        expected: u64,
        state: &ConversationState,
        expires_at: i64,
    ) -> Result<bool, PortError> {
        let write = EncodedConversation::new(&ConversationWrite {
            openid: openid.clone(),
            expected,
            state: state.clone(),
            expires_at,
        })?;
        self.write(move |txn| {
            // Read, compare and write in one write: the writer applies one
            // at a time, so no other write can slip in between.
            let Some(previous_expiry) = write.check(txn)? else {
                return Ok((false, false));
            };
            write.put(txn, previous_expiry)?;
            Ok((true, true))
        })
        .await
    }
}

/// [`MessageCommit`] on a [`RedbStore`]: everything one message produced
/// in one write of the writer thread, so one transaction. After a crash a
/// message is either fully processed (archived, its conversation advanced,
/// its events counted, its answer kept for retries, its reply archived) or
/// not at all; and it costs one place in a group commit instead of one per
/// write. Events are counted as [`crate::CountingSink`] counts them, with
/// days and hours local to the time zone given.
#[derive(Clone)]
pub struct RedbCommit {
    store: RedbStore,
    tz: jiff::tz::TimeZone,
}

impl RedbStore {
    /// Commits messages to this store, counting their events with days and
    /// hours local to `tz`.
    pub fn message_commit(&self, tz: jiff::tz::TimeZone) -> RedbCommit {
        RedbCommit {
            store: self.clone(),
            tz,
        }
    }
}

/// An archive entry encoded for the writer: `(key, JSON, expires_at, history row)`.
type EncodedEntry = (String, Vec<u8>, i64, Option<String>);

#[async_trait]
impl MessageCommit for RedbCommit {
    async fn commit(&self, writes: &MessageWrites) -> Result<Committed, PortError> {
        let message = &writes.message;
        let message: EncodedEntry = (
            message.key.clone(),
            serde_json::to_vec(message).map_err(cannot_encode)?,
            message.expires_at,
            history_key(
                &message.openid,
                message.received_at,
                &message.key,
                SIDE_MESSAGE,
            ),
        );
        let reply: Option<EncodedEntry> = match &writes.reply {
            Some(r) => Some((
                r.key.clone(),
                serde_json::to_vec(r).map_err(cannot_encode)?,
                r.expires_at,
                history_key(&r.openid, r.sent_at, &r.key, SIDE_REPLY),
            )),
            None => None,
        };
        let conversations = writes
            .conversations
            .iter()
            .map(EncodedConversation::new)
            .collect::<Result<Vec<_>, _>>()?;
        let counts: Vec<Count> = writes
            .events
            .iter()
            .map(|event| Count::of(event, &self.tz))
            .collect();
        let key = writes.dedup_key.clone();
        let done = Slot::Done {
            result: writes.result.clone(),
            until: writes.now.saturating_add(writes.result_ttl_secs),
        };
        let outbox = match (&writes.reply, writes.outbox) {
            (Some(r), true) => Some(crate::outbound::outbox_row(r)?),
            _ => None,
        };
        let committed = self
            .store
            .write(move |txn| {
                // Every check before any write: a conflict must leave the
                // batch's transaction as it found it.
                let mut previous = Vec::with_capacity(conversations.len());
                for conversation in &conversations {
                    match conversation.check(txn)? {
                        Some(expiry) => previous.push(expiry),
                        None => return Ok((Committed::Conflict, false)),
                    }
                }
                let (key_m, json, expires_at, row) = &message;
                archive_new(
                    txn,
                    ARCHIVE,
                    ARCHIVE_EXPIRY,
                    key_m,
                    json,
                    *expires_at,
                    row.as_deref(),
                )?;
                for (conversation, expiry) in conversations.iter().zip(previous) {
                    conversation.put(txn, expiry)?;
                }
                for count in &counts {
                    count_in(txn, count)?;
                }
                complete_in(txn, &key, &done)?;
                if let Some((key_r, json, expires_at, row)) = &reply {
                    archive_new(
                        txn,
                        REPLIES,
                        REPLY_EXPIRY,
                        key_r,
                        json,
                        *expires_at,
                        row.as_deref(),
                    )?;
                }
                if let Some((id, row)) = &outbox {
                    txn.open_table(crate::outbound::OUTBOX)?
                        .insert(id.as_str(), row.as_slice())?;
                }
                Ok((Committed::Done, true))
            })
            .await?;
        if committed == Committed::Done {
            self.store.claims.release(&writes.dedup_key);
        }
        Ok(committed)
    }
}

/// One user's [`HISTORY`] rows, oldest first: `(row, message key, side)`.
fn user_rows(
    history: &impl ReadableTable<&'static str, ()>,
    openid: &str,
) -> Result<Vec<(String, String, char)>, LocalError> {
    let (from, to) = (format!("{openid}\t"), format!("{openid}\n"));
    let mut found = Vec::new();
    for row in history.range(from.as_str()..to.as_str())? {
        let (row, _) = row?;
        let row = row.value();
        let (key, side) = parse_history_key(row)?;
        found.push((row.to_owned(), key.to_owned(), side));
    }
    Ok(found)
}

/// Removes the index row of `key`: the one at `at` when known, else every
/// row naming `key` (found by reading the whole index: only for rows whose
/// expiry cannot be decoded).
fn drop_index_row(
    txn: &WriteTransaction,
    index: ExpiryIndex,
    key: &str,
    at: Option<i64>,
) -> Result<(), LocalError> {
    let mut index = txn.open_table(index)?;
    if let Some(at) = at {
        index.remove((at, key))?;
        return Ok(());
    }
    let mut stale = Vec::new();
    for row in index.iter()? {
        let (entry, _) = row?;
        let (at, named) = entry.value();
        if named == key {
            stale.push(at);
        }
    }
    for at in stale {
        index.remove((at, key))?;
    }
    Ok(())
}

/// Removes the JSON row `key` of `data` and its expiry row; `None` when
/// there was none.
fn drop_json_row(
    txn: &WriteTransaction,
    data: TableDefinition<'_, &str, &[u8]>,
    index: ExpiryIndex,
    key: &str,
) -> Result<Option<Option<i64>>, LocalError> {
    let expires_at = {
        let mut table = txn.open_table(data)?;
        let Some(bytes) = table.remove(key)? else {
            return Ok(None);
        };
        // Only the expiry is needed: a row that no longer decodes goes too.
        serde_json::from_slice::<serde_json::Value>(bytes.value())
            .ok()
            .and_then(|v| v.get("expires_at")?.as_i64())
    };
    drop_index_row(txn, index, key, expires_at)?;
    Ok(Some(expires_at))
}

/// Everything [`RedbStore`] holds about `openid` (see [`UserData::erase`]),
/// removed in `txn`. The second value is whether anything changed.
fn erase_user(
    txn: &WriteTransaction,
    openid: &OpenId,
) -> Result<((Erased, Vec<String>), bool), LocalError> {
    let mut erased = Erased::default();
    let mut changed = false;
    let rows = user_rows(&txn.open_table(HISTORY)?, openid.as_str())?;
    let mut keys = std::collections::BTreeSet::new();
    for (row, key, side) in rows {
        let (data, index) = if side == SIDE_MESSAGE {
            (ARCHIVE, ARCHIVE_EXPIRY)
        } else {
            (REPLIES, REPLY_EXPIRY)
        };
        let expires_at = drop_json_row(txn, data, index, &key)?;
        match (&expires_at, side) {
            (None, _) => {}
            (Some(_), SIDE_MESSAGE) => erased.messages += 1,
            (Some(_), _) => erased.replies += 1,
        }
        txn.open_table(HISTORY)?.remove(row.as_str())?;
        drop_index_row(txn, HISTORY_EXPIRY, &row, expires_at.flatten())?;
        changed = true;
        keys.insert(key);
    }

    // The window for messages we start, and replies still to be sent.
    // (counted as "other", as DynamoDB counts the window item).
    let outbound = crate::outbound::erase_user_outbound(txn, openid.as_str())?;
    erased.other += outbound;
    changed |= outbound > 0;

    // Campaign delivery records: who was sent (or skipped for) what.
    erased.campaign_claims = crate::campaigns::erase_user_deliveries(txn, openid.as_str())?;
    changed |= erased.campaign_claims > 0;

    let conversation = txn
        .open_table(CONVERSATIONS)?
        .remove(openid.as_str())?
        .map(|bytes| {
            StoredConversation::decode_header(bytes.value())
                .ok()
                .map(|(_, at, _)| at)
        });
    if let Some(expires_at) = conversation {
        drop_index_row(txn, CONVERSATION_EXPIRY, openid.as_str(), expires_at)?;
        erased.conversation = 1;
    }
    {
        let mut rows = txn.open_table(CONVERSATIONS)?;
        let board = rows
            .get(BOARD_KEY)?
            .map(|bytes| StoredConversation::decode(bytes.value()))
            .transpose()?;
        if let Some(mut board) = board
            && board.state.unresolved.remove(openid.as_str()).is_some()
        {
            // A new version, so a writer that read the board before the
            // erasure cannot write the user back onto it. Same expiry: the
            // index row stands.
            board.version = wca_core::conversation::next_version(board.version)
                .map_err(|e| LocalError::Corrupt(e.to_string()))?;
            let bytes = board
                .encode()
                .map_err(|e| LocalError::Corrupt(e.to_string()))?;
            rows.insert(BOARD_KEY, bytes.as_slice())?;
            erased.unresolved_board = 1;
        }
    }

    let mut events = Vec::new();
    for key in &keys {
        for dedup in wca_core::ports::message_dedup_keys(key) {
            let slot = txn
                .open_table(IDEMPOTENCY)?
                .remove(dedup.as_str())?
                .map(|bytes| Slot::decode(bytes.value()).ok().map(|slot| slot.until()));
            if let Some(until) = slot {
                drop_index_row(txn, IDEMPOTENCY_EXPIRY, &dedup, until)?;
                erased.dedup_records += 1;
            }
        }
        for id in message_event_ids(key) {
            if txn.open_table(EVENTS)?.remove(id.as_str())?.is_some() {
                events.push(id.clone());
            }
            let marker = txn
                .open_table(MARKERS)?
                .remove(id.as_str())?
                .map(|at| at.value());
            if let Some(at) = marker {
                drop_index_row(txn, MARKER_EXPIRY, &id, Some(at))?;
                erased.counter_markers += 1;
            }
        }
    }
    if !events.is_empty() {
        // An event row does not hold its expiry: its index rows are found
        // in one pass over the index.
        let removed: std::collections::HashSet<&str> = events.iter().map(String::as_str).collect();
        let mut index = txn.open_table(EVENT_EXPIRY)?;
        let mut stale = Vec::new();
        for row in index.iter()? {
            let (entry, _) = row?;
            let (at, id) = entry.value();
            if removed.contains(id) {
                stale.push((at, id.to_owned()));
            }
        }
        for (at, id) in &stale {
            index.remove((*at, id.as_str()))?;
        }
        erased.events = events.len() as u64;
    }
    let changed = changed || erased.total() > 0;
    Ok(((erased, keys.into_iter().collect()), changed))
}

/// Profiles and tickets are not in this store: `wca serve` reads profiles
/// from the shop and appends tickets to a file. Campaign claims are the
/// user's delivery records of campaign occurrences.
#[async_trait]
impl UserData for RedbStore {
    async fn export(&self, openid: &OpenId, now: i64) -> Result<UserRecord, PortError> {
        let openid = openid.clone();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let mut record = UserRecord::empty(&openid, now);
            let rows = user_rows(&txn.open_table(HISTORY)?, openid.as_str())?;
            let messages = txn.open_table(ARCHIVE)?;
            let replies = txn.open_table(REPLIES)?;
            for (_, key, side) in rows {
                if side == SIDE_MESSAGE {
                    if let Some(bytes) = messages.get(key.as_str())? {
                        record.messages.push(
                            serde_json::from_slice(bytes.value())
                                .map_err(corrupt_row("archive"))?,
                        );
                    }
                } else if let Some(bytes) = replies.get(key.as_str())? {
                    record.replies.push(
                        serde_json::from_slice(bytes.value()).map_err(corrupt_row("replies"))?,
                    );
                }
            }
            let conversations = txn.open_table(CONVERSATIONS)?;
            if let Some(bytes) = conversations.get(openid.as_str())? {
                let stored = StoredConversation::decode(bytes.value())?;
                record.conversation = Some(HeldConversation {
                    version: stored.version,
                    expires_at: stored.expires_at,
                    state: stored.state,
                });
            }
            if let Some(bytes) = conversations.get(BOARD_KEY)? {
                let board = StoredConversation::decode(bytes.value())?;
                record.unresolved_since = board.state.unresolved.get(openid.as_str()).copied();
            }
            (record.window, record.pending_replies) =
                crate::outbound::export_user_outbound(&txn, openid.as_str())?;
            record.campaign_claims =
                crate::campaigns::export_user_deliveries(&txn, openid.as_str())?;
            let events = txn.open_table(EVENTS)?;
            for key in record.message_keys() {
                for id in message_event_ids(&key) {
                    if let Some(bytes) = events.get(id.as_str())? {
                        record.events.push(
                            serde_json::from_slice(bytes.value()).map_err(corrupt_row("events"))?,
                        );
                    }
                }
            }
            record.sort();
            Ok(record)
        })
        .await
    }

    async fn erase(&self, openid: &OpenId) -> Result<Erased, PortError> {
        let openid = openid.clone();
        // One write: all of it is erased, or (on failure) none of it.
        let (mut erased, keys) = self.write(move |txn| erase_user(txn, &openid)).await?;
        // Claims of the user's messages in progress are held in memory.
        for key in keys {
            if self.claims.release(&key) {
                erased.dedup_records += 1;
            }
        }
        Ok(erased)
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

    #[tokio::test]
    async fn redb_store_exports_and_erases_exactly_one_users_data() {
        let (_dir, store) = fresh();
        contract::user_data(&store, &store, &store, &store, &store).await;
    }

    #[tokio::test]
    async fn an_erasure_leaves_no_index_or_marker_rows_behind_for_a_purge_to_find() {
        let (_dir, store) = fresh();
        let now = 1_700_000_000;
        let user = openid("o-user");
        let msg = message("msg:1", now + 10);
        assert!(store.put(&msg).await.expect("put"));
        let reply = ArchivedReply {
            key: "msg:1".to_owned(),
            openid: "o-user".to_owned(),
            sent_at: now,
            reply: wca_core::Outgoing::text("好的"),
            route: "rule".to_owned(),
            expires_at: now + 10,
        };
        assert!(store.put_reply(&reply).await.expect("put reply"));
        store
            .complete("msg:1", "r", now, 5)
            .await
            .expect("complete");
        let event = Event::message_received("msg:1", "o-user", "text", now, None);
        assert!(store.record(&event, now + 10).await.expect("record"));
        let keys = ["msgs:total".to_owned()];
        assert!(
            store
                .add_once(&event.id, &keys, now + 10)
                .await
                .expect("add")
        );
        let state = ConversationState::default();
        assert!(
            store
                .compare_and_set(&user, 0, &state, now + 10)
                .await
                .expect("compare_and_set")
        );

        let erased = store.erase(&user).await.expect("erase");
        assert_eq!(erased.total(), 6, "{erased:?}");
        assert_eq!(
            store.purge(i64::MAX).await.expect("purge"),
            Purged::default(),
            "nothing was left for retention to delete"
        );
        assert_eq!(
            Counters::get(&store, "msgs:total").await.expect("get"),
            1,
            "counters are aggregates and stay"
        );
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_share_commits_and_every_acknowledged_write_is_on_disk() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wca.redb");
        let store = RedbStore::open(&path).expect("open");
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..400 {
            let store = store.clone();
            tasks.spawn(async move {
                // Every message twice at once: exactly one of each pair
                // stores it, batched or not.
                let msg = message(&format!("msg:{n}"), i64::MAX);
                let (a, b) = tokio::join!(store.put(&msg), store.put(&msg));
                u8::from(a.expect("put")) + u8::from(b.expect("put"))
            });
        }
        while let Some(stored) = tasks.join_next().await {
            assert_eq!(stored.expect("task"), 1, "one of two identical puts stores");
        }
        drop(store);
        let reopened = RedbStore::open(&path).expect("reopen");
        assert_eq!(reopened.stored_messages().await.expect("count"), 400);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_failing_write_fails_alone_and_the_writes_beside_it_still_commit() {
        let (_dir, store) = fresh();
        let failing = store.write(|txn| {
            txn.open_table(COUNTERS)?.insert("half-done", 1)?;
            Err::<((), bool), _>(LocalError::Corrupt("this write breaks halfway".into()))
        });
        let msg = message("msg:a", i64::MAX);
        let keys = ["counter".to_owned()];
        let a = store.put(&msg);
        let b = store.add_once("once:1", &keys, i64::MAX);
        let (failing, a, b) = tokio::join!(failing, a, b);
        assert!(
            matches!(failing, Err(PortError::Corrupt(ref why)) if why.contains("halfway")),
            "{failing:?}"
        );
        assert!(a.expect("put"), "the message beside it is stored");
        assert!(b.expect("add_once"), "the increment beside it is applied");
        assert_eq!(Counters::get(&store, "counter").await.expect("get"), 1);
        assert_eq!(
            Counters::get(&store, "half-done").await.expect("get"),
            0,
            "nothing of the failed write is kept"
        );
        assert_eq!(store.stored_messages().await.expect("count"), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_io_failure_of_a_write_marks_the_store_broken_and_says_why() {
        let (_dir, store) = fresh();
        let watching = store.clone();
        let broken = tokio::spawn(async move { watching.broken().await });
        // A write failing on a logic error does not break the store.
        let _ = store
            .write(|_| Err::<((), bool), _>(LocalError::Corrupt("bad row".into())))
            .await;
        assert!(store.put(&message("msg:1", i64::MAX)).await.expect("put"));
        assert!(!broken.is_finished(), "a bad row is not an I/O failure");
        // One failing on I/O (what a full disk gives) does.
        let failed = store
            .write(|_| {
                Err::<((), bool), _>(LocalError::from(redb::Error::Io(std::io::Error::other(
                    "No space left on device",
                ))))
            })
            .await;
        assert!(
            matches!(failed, Err(PortError::Unavailable(_))),
            "{failed:?}"
        );
        let why = tokio::time::timeout(std::time::Duration::from_secs(10), broken)
            .await
            .expect("broken resolves")
            .expect("task");
        assert!(why.contains("No space left on device"), "{why}");
    }

    /// What a message about `key` from `o-user` writes, expecting the
    /// user's conversation at `expected`.
    fn writes(key: &str, expected: u64) -> MessageWrites {
        let now = 1_700_000_001;
        let user = openid("o-user");
        MessageWrites {
            message: message(key, 2_000_000_000),
            conversations: vec![ConversationWrite {
                openid: user,
                expected,
                state: ConversationState {
                    turns: expected + 1,
                    ..ConversationState::default()
                },
                expires_at: 2_000_000_000,
            }],
            events: vec![
                Event::message_received(key, "o-user", "text", now, None),
                Event::reply_sent(key, "o-user", "text", now),
            ],
            dedup_key: key.to_owned(),
            result: "<xml>答复</xml>".to_owned(),
            result_ttl_secs: 600,
            reply: Some(ArchivedReply {
                key: key.to_owned(),
                openid: "o-user".to_owned(),
                sent_at: now,
                reply: wca_core::Outgoing::text("好的"),
                route: "rule".to_owned(),
                expires_at: 2_000_000_000,
            }),
            now,
            outbox: false,
        }
    }

    #[tokio::test]
    async fn a_message_commit_writes_message_conversation_counts_result_and_reply_together() {
        let (_dir, store) = fresh();
        let commit = store.message_commit(jiff::tz::TimeZone::UTC);
        let now = 1_700_000_001;
        assert_eq!(
            store.begin("msg:1", now, 30).await.expect("begin"),
            Begin::Fresh
        );
        assert_eq!(
            commit.commit(&writes("msg:1", 0)).await.expect("commit"),
            Committed::Done
        );
        assert!(
            MessageArchive::get(&store, "o-user", "msg:1", now)
                .await
                .expect("get")
                .is_some()
        );
        let history = store
            .history(&openid("o-user"), 10, now)
            .await
            .expect("history");
        assert_eq!(history.len(), 2, "the message and its reply: {history:?}");
        let conversation = ConversationStore::get(&store, &openid("o-user"), now)
            .await
            .expect("conversation");
        assert_eq!((conversation.version, conversation.state.turns), (1, 1));
        assert_eq!(
            Counters::get(&store, "msgs:day:2023-11-14")
                .await
                .expect("count"),
            1
        );
        assert_eq!(
            Counters::get(&store, "replies:day:2023-11-14")
                .await
                .expect("count"),
            1
        );
        assert_eq!(
            store.begin("msg:1", now + 1, 30).await.expect("begin"),
            Begin::Done("<xml>答复</xml>".to_owned()),
            "the claim is let go once the result is durable, and a retry gets the result"
        );
    }

    #[tokio::test]
    async fn a_message_commit_whose_conversation_moved_on_writes_nothing_at_all() {
        let (_dir, store) = fresh();
        let commit = store.message_commit(jiff::tz::TimeZone::UTC);
        let now = 1_700_000_001;
        assert_eq!(
            commit.commit(&writes("msg:1", 0)).await.expect("commit"),
            Committed::Done
        );
        assert_eq!(
            store.begin("msg:2", now, 30).await.expect("begin"),
            Begin::Fresh
        );
        assert_eq!(
            commit.commit(&writes("msg:2", 0)).await.expect("commit"),
            Committed::Conflict,
            "the conversation is at version 1, not 0"
        );
        assert_eq!(
            MessageArchive::get(&store, "o-user", "msg:2", now)
                .await
                .expect("get"),
            None
        );
        assert_eq!(store.stored_messages().await.expect("count"), 1);
        assert_eq!(
            Counters::get(&store, "msgs:day:2023-11-14")
                .await
                .expect("count"),
            1,
            "the conflicting message's events are not counted"
        );
        assert_eq!(
            store.begin("msg:2", now, 30).await.expect("begin"),
            Begin::InFlight,
            "no result is recorded, and the claim stays with its owner"
        );
        assert_eq!(
            commit.commit(&writes("msg:2", 1)).await.expect("commit"),
            Committed::Done,
            "decided again on the version now stored, it commits"
        );
    }

    #[tokio::test]
    async fn a_claim_is_not_on_disk_so_after_a_restart_a_retry_takes_over_at_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wca.redb");
        let now = 1_700_000_000;
        {
            let store = RedbStore::open(&path).expect("open");
            assert_eq!(
                store.begin("msg:1", now, 30).await.expect("begin"),
                Begin::Fresh
            );
            assert_eq!(
                store.begin("msg:1", now, 30).await.expect("begin"),
                Begin::InFlight
            );
        }
        let store = RedbStore::open(&path).expect("reopen");
        assert_eq!(
            store.begin("msg:1", now + 1, 30).await.expect("begin"),
            Begin::Fresh,
            "the process that claimed it is gone: nobody is working on it"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_delivery_racing_one_that_completes_either_waits_or_gets_the_result_never_a_second_claim()
     {
        let (_dir, store) = fresh();
        let now = 1_700_000_000;
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..200 {
            for _ in 0..2 {
                let store = store.clone();
                tasks.spawn(async move {
                    let key = format!("msg:{n}");
                    loop {
                        match store.begin(&key, now, 30).await.expect("begin") {
                            Begin::Fresh => {
                                store
                                    .complete(&key, "done", now, 600)
                                    .await
                                    .expect("complete");
                                return (n, true);
                            }
                            Begin::Done(result) => {
                                assert_eq!(result, "done");
                                return (n, false);
                            }
                            Begin::InFlight => tokio::task::yield_now().await,
                        }
                    }
                });
            }
        }
        let mut claimed = [0u32; 200];
        while let Some(joined) = tasks.join_next().await {
            let (n, fresh) = joined.expect("task");
            claimed[n] += u32::from(fresh);
        }
        assert!(
            claimed.iter().all(|&c| c == 1),
            "each key is claimed exactly once: {claimed:?}"
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

    /// A store file holding a few hundred messages, closed.
    fn filled_file() -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wca.redb");
        let store = RedbStore::open(&path).expect("open");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            for n in 0..300 {
                store
                    .put(&message(&format!("msg:{n}"), i64::MAX))
                    .await
                    .expect("put");
            }
        });
        drop(store);
        let bytes = std::fs::read(&path).expect("read");
        (dir, path, bytes)
    }

    fn assert_refused_as_damaged(path: &std::path::Path, damaged: &[u8], what: &str) {
        std::fs::write(path, damaged).expect("write the damaged file");
        let opened = std::panic::catch_unwind(|| RedbStore::open(path));
        let err = match opened {
            Ok(Err(err)) => err,
            Ok(Ok(_)) => panic!("{what}: a damaged store was opened"),
            Err(_) => panic!("{what}: opening a damaged store panicked"),
        };
        let shown = err.to_string();
        assert!(matches!(err, LocalError::Damaged { .. }), "{what}: {shown}");
        assert!(shown.contains("corrupt"), "{what}: {shown}");
        assert!(
            shown.contains(&path.display().to_string()),
            "{what}: {shown}"
        );
        assert!(
            std::fs::read(path).expect("read") == damaged,
            "{what}: the damaged file is left as it was, for a person to look at"
        );
    }

    #[test]
    fn an_empty_store_file_is_refused_as_corrupt_not_started_afresh() {
        let (_dir, path, _) = filled_file();
        assert_refused_as_damaged(&path, &[], "empty");
    }

    #[test]
    fn a_store_file_cut_in_half_is_refused_as_corrupt_not_a_panic() {
        let (_dir, path, bytes) = filled_file();
        assert_refused_as_damaged(&path, &bytes[..bytes.len() / 2], "half");
        assert_refused_as_damaged(&path, &bytes[..100], "100 bytes");
    }

    #[test]
    fn a_store_file_with_garbled_pages_is_refused_as_corrupt_not_a_panic() {
        let (_dir, path, bytes) = filled_file();
        let mut garbled = bytes.clone();
        for i in (4096..garbled.len()).step_by(7) {
            garbled[i] ^= 0x5a;
        }
        assert_refused_as_damaged(&path, &garbled, "garbled");
    }

    #[test]
    fn a_store_with_one_damaged_page_is_refused_or_still_reads_back_every_message() {
        let (_dir, path, bytes) = filled_file();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        // Pages redb has not allocated may be damaged harmlessly; a page in
        // use must be caught at open, never read back wrong or panic.
        let mut refused = 0;
        for page in (1..bytes.len() / 4096).step_by(37) {
            let mut damaged = bytes.clone();
            for b in &mut damaged[page * 4096..(page + 1) * 4096] {
                *b = !*b;
            }
            std::fs::write(&path, &damaged).expect("write");
            let opened = std::panic::catch_unwind(|| RedbStore::open(&path));
            match opened {
                Err(_) => panic!("page {page}: opening panicked"),
                Ok(Err(err)) => {
                    assert!(
                        matches!(err, LocalError::Damaged { .. }),
                        "page {page}: {err}"
                    );
                    refused += 1;
                }
                Ok(Ok(store)) => runtime.block_on(async {
                    for n in 0..300 {
                        let key = format!("msg:{n}");
                        let got = MessageArchive::get(&store, "o-user", &key, 0).await;
                        assert!(
                            matches!(&got, Ok(Some(m)) if m.key == key),
                            "page {page}: {key} reads back as {got:?}"
                        );
                    }
                }),
            }
        }
        eprintln!("{refused} damaged pages refused at open; the others were unused");
    }

    #[test]
    fn a_file_that_is_not_a_store_is_refused_as_corrupt() {
        let (_dir, path, _) = filled_file();
        assert_refused_as_damaged(&path, b"{\"not\": \"a redb file\"}\n", "json");
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
        let old_event = Event::requests_rejected("bad_signature", 1, "r-1", now);
        let new_event = Event::requests_rejected("bad_signature", 1, "r-2", now);
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
                // The expired result; claims are held in memory, never on disk.
                idempotency_keys: 1,
                counter_markers: 1,
                events: 1,
                conversations: 1,
            }
        );
        assert_eq!(purged.total(), 6);
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
