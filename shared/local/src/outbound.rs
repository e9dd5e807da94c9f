//! The outbound ports on redb: the shared access token and each user's
//! window and budget (see `wca_core::outbound`).

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use wca_core::outbound::{give_back_in, reserve_in, touch_in, undeliverable_in};
use wca_core::{
    ArchivedReply, CachedToken, ContactWindow, ContactWindows, Outbox, OutboxEntry, PortError,
    Reserved, TokenStore, WindowRules,
};

use crate::LocalError;
use crate::store::{RedbStore, read_bytes};

/// AppID → the cached access token, as JSON.
pub(crate) const TOKENS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("wechat_tokens");
/// OpenID → the user's [`ContactWindow`], as JSON.
pub(crate) const CONTACTS: TableDefinition<'_, &str, &[u8]> =
    TableDefinition::new("contact_windows");

/// Outbox entry id (`{time}#{message key}`, the time as 16 hex digits of
/// its sign-flipped bits, so ids sort as times do) → the reply as JSON,
/// with whether it is claimed.
pub(crate) const OUTBOX: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("outbox");

#[derive(serde::Serialize, serde::Deserialize)]
struct OutboxRow {
    claimed: bool,
    reply: ArchivedReply,
}

/// The id and row of a new outbox entry for `reply`.
pub(crate) fn outbox_row(reply: &ArchivedReply) -> Result<(String, Vec<u8>), PortError> {
    let order = (reply.sent_at as u64) ^ (1 << 63);
    let row = OutboxRow {
        claimed: false,
        reply: reply.clone(),
    };
    Ok((format!("{order:016x}#{}", reply.key), encode(&row)?))
}

fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, LocalError> {
    serde_json::from_slice(bytes).map_err(|e| LocalError::Corrupt(format!("{table}: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, LocalError> {
    serde_json::to_vec(value).map_err(|e| LocalError::Corrupt(format!("cannot encode: {e}")))
}

fn contact_in(txn: &WriteTransaction, openid: &str) -> Result<Option<ContactWindow>, LocalError> {
    let table = txn.open_table(CONTACTS)?;
    let found = table.get(openid)?;
    found
        .map(|v| decode("contact_windows", v.value()))
        .transpose()
}

fn put_contact(txn: &WriteTransaction, openid: &str, w: &ContactWindow) -> Result<(), LocalError> {
    txn.open_table(CONTACTS)?
        .insert(openid, encode(w)?.as_slice())?;
    Ok(())
}

impl RedbStore {
    /// Applies `rule` to `openid`'s window in one write.
    async fn update_contact(
        &self,
        openid: &str,
        rule: impl Fn(Option<ContactWindow>) -> Option<ContactWindow> + Send + 'static,
    ) -> Result<(), PortError> {
        let openid = openid.to_owned();
        self.write(move |txn| match rule(contact_in(txn, &openid)?) {
            Some(w) => put_contact(txn, &openid, &w).map(|()| ((), true)),
            None => Ok(((), false)),
        })
        .await
    }
}

#[async_trait]
impl TokenStore for RedbStore {
    async fn get(&self, app_id: &str) -> Result<Option<CachedToken>, PortError> {
        self.read_one(|db| {
            read_bytes(db, TOKENS, app_id)?
                .map(|b| decode("wechat_tokens", &b))
                .transpose()
        })
    }

    async fn put(&self, app_id: &str, token: &CachedToken) -> Result<(), PortError> {
        let app_id = app_id.to_owned();
        let bytes = encode(token)?;
        self.write(move |txn| {
            txn.open_table(TOKENS)?
                .insert(app_id.as_str(), bytes.as_slice())?;
            Ok(((), true))
        })
        .await
    }
}

#[async_trait]
impl ContactWindows for RedbStore {
    async fn touch(&self, openid: &str, at: i64) -> Result<(), PortError> {
        self.update_contact(openid, move |w| touch_in(w, at)).await
    }

    async fn reserve(
        &self,
        openid: &str,
        now: i64,
        rules: WindowRules,
    ) -> Result<Reserved, PortError> {
        let openid = openid.to_owned();
        self.write(move |txn| {
            let (answer, taken) = reserve_in(contact_in(txn, &openid)?, now, rules);
            let changed = taken.is_some();
            if let Some(w) = taken {
                put_contact(txn, &openid, &w)?;
            }
            Ok((answer, changed))
        })
        .await
    }

    async fn give_back(&self, openid: &str, window: i64) -> Result<(), PortError> {
        self.update_contact(openid, move |w| give_back_in(w, window))
            .await
    }

    async fn undeliverable(&self, openid: &str, window: i64, code: i64) -> Result<(), PortError> {
        self.update_contact(openid, move |w| undeliverable_in(w, window, code))
            .await
    }

    async fn get(&self, openid: &str) -> Result<Option<ContactWindow>, PortError> {
        self.read_one(|db| {
            read_bytes(db, CONTACTS, openid)?
                .map(|b| decode("contact_windows", &b))
                .transpose()
        })
    }
}

/// `openid`'s contact window and outbox entries (personal data on
/// request), the entries oldest first.
pub(crate) fn export_user_outbound(
    txn: &redb::ReadTransaction,
    openid: &str,
) -> Result<(Option<ContactWindow>, Vec<ArchivedReply>), LocalError> {
    let window = txn
        .open_table(CONTACTS)?
        .get(openid)?
        .map(|v| decode("contact_windows", v.value()))
        .transpose()?;
    let mut pending = Vec::new();
    for row in txn.open_table(OUTBOX)?.iter()? {
        let (_, value) = row?;
        let row: OutboxRow = decode("outbox", value.value())?;
        if row.reply.openid == openid {
            pending.push(row.reply);
        }
    }
    Ok((window, pending))
}

/// Removes `openid`'s contact window and outbox entries (personal data
/// on request); returns how many records went.
pub(crate) fn erase_user_outbound(txn: &WriteTransaction, openid: &str) -> Result<u64, LocalError> {
    let mut removed = u64::from(txn.open_table(CONTACTS)?.remove(openid)?.is_some());
    let mut outbox = txn.open_table(OUTBOX)?;
    let mut theirs = Vec::new();
    for row in outbox.iter()? {
        let (id, value) = row?;
        let row: OutboxRow = decode("outbox", value.value())?;
        if row.reply.openid == openid {
            theirs.push(id.value().to_owned());
        }
    }
    for id in theirs {
        outbox.remove(id.as_str())?;
        removed += 1;
    }
    Ok(removed)
}

impl RedbStore {
    /// Sets entry `id`'s claim from `from` to `to`; `false` when the entry
    /// is missing or its claim is not `from`.
    async fn set_claim(&self, id: &str, from: bool, to: bool) -> Result<bool, PortError> {
        let id = id.to_owned();
        self.write(move |txn| {
            let mut table = txn.open_table(OUTBOX)?;
            let row: Option<OutboxRow> = table
                .get(id.as_str())?
                .map(|v| decode("outbox", v.value()))
                .transpose()?;
            match row {
                Some(mut row) if row.claimed == from => {
                    row.claimed = to;
                    table.insert(id.as_str(), encode(&row)?.as_slice())?;
                    Ok((true, true))
                }
                _ => Ok((false, false)),
            }
        })
        .await
    }

    fn outbox_rows(&self, claimed: bool, limit: usize) -> Result<Vec<OutboxEntry>, PortError> {
        self.read_one(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(OUTBOX)?;
            let mut found = Vec::new();
            for row in table.iter()? {
                let (id, value) = row?;
                let row: OutboxRow = decode("outbox", value.value())?;
                if row.claimed == claimed {
                    found.push(OutboxEntry {
                        id: id.value().to_owned(),
                        reply: row.reply,
                    });
                    if found.len() == limit {
                        break;
                    }
                }
            }
            Ok(found)
        })
    }
}

#[async_trait]
impl Outbox for RedbStore {
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, PortError> {
        self.outbox_rows(false, limit)
    }

    async fn claim(&self, id: &str) -> Result<bool, PortError> {
        self.set_claim(id, false, true).await
    }

    async fn release(&self, id: &str) -> Result<(), PortError> {
        self.set_claim(id, true, false).await.map(drop)
    }

    async fn finish(&self, id: &str) -> Result<(), PortError> {
        let id = id.to_owned();
        self.write(move |txn| {
            let removed = txn.open_table(OUTBOX)?.remove(id.as_str())?.is_some();
            Ok(((), removed))
        })
        .await
    }

    async fn take_interrupted(&self) -> Result<Vec<OutboxEntry>, PortError> {
        let stuck = self.outbox_rows(true, usize::MAX)?;
        for entry in &stuck {
            self.finish(&entry.id).await?;
        }
        Ok(stuck)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn fresh() -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RedbStore::open(&dir.path().join("wca.redb")).expect("open");
        (dir, store)
    }

    #[tokio::test]
    async fn redb_keeps_the_token_store_contract() {
        let (_dir, store) = fresh();
        wca_core::contract::token_store(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redb_keeps_the_window_and_budget_contract() {
        let (_dir, store) = fresh();
        wca_core::contract::contact_windows(Arc::new(store)).await;
    }

    fn reply(key: &str, openid: &str, at: i64) -> ArchivedReply {
        ArchivedReply {
            key: key.into(),
            openid: openid.into(),
            sent_at: at,
            reply: wca_core::Outgoing::text("好的"),
            route: "rule".into(),
            expires_at: at + 3600,
        }
    }

    async fn put(store: &RedbStore, r: &ArchivedReply) {
        let (id, row) = outbox_row(r).expect("row");
        store
            .write(move |txn| {
                txn.open_table(OUTBOX)?
                    .insert(id.as_str(), row.as_slice())?;
                Ok(((), true))
            })
            .await
            .expect("insert");
    }

    #[tokio::test]
    async fn the_outbox_gives_entries_oldest_first_and_a_claimed_entry_only_once() {
        let (_dir, store) = fresh();
        put(&store, &reply("msg:2", "oA", 1_700_000_002)).await;
        put(&store, &reply("msg:1", "oA", 1_700_000_001)).await;
        let pending = store.pending(10).await.expect("pending");
        let keys: Vec<_> = pending.iter().map(|e| e.reply.key.as_str()).collect();
        assert_eq!(keys, ["msg:1", "msg:2"]);
        assert!(store.claim(&pending[0].id).await.expect("claim"));
        assert!(!store.claim(&pending[0].id).await.expect("claim"), "once");
        assert_eq!(store.pending(10).await.expect("pending").len(), 1);
        store.release(&pending[0].id).await.expect("release");
        assert_eq!(store.pending(10).await.expect("pending").len(), 2);
        store.finish(&pending[1].id).await.expect("finish");
        assert_eq!(store.pending(10).await.expect("pending").len(), 1);
    }

    #[tokio::test]
    async fn an_entry_claimed_by_a_process_that_died_is_reported_not_sent_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wca.redb");
        {
            let store = RedbStore::open(&path).expect("open");
            put(&store, &reply("msg:1", "oA", 1)).await;
            put(&store, &reply("msg:2", "oB", 2)).await;
            let first = store.pending(1).await.expect("pending").remove(0);
            assert!(store.claim(&first.id).await.expect("claim"));
        }
        let store = RedbStore::open(&path).expect("reopen");
        let stuck = store.take_interrupted().await.expect("interrupted");
        assert_eq!(stuck.len(), 1);
        assert_eq!(stuck[0].reply.key, "msg:1");
        let left = store.pending(10).await.expect("pending");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].reply.key, "msg:2");
    }

    #[tokio::test]
    async fn erasing_a_user_removes_their_window_and_unsent_replies_only() {
        use wca_core::UserData;
        let (_dir, store) = fresh();
        store.touch("oGone", 1).await.expect("touch");
        store.touch("oStays", 1).await.expect("touch");
        put(&store, &reply("msg:1", "oGone", 1)).await;
        put(&store, &reply("msg:2", "oStays", 2)).await;
        let gone = wca_core::OpenId::parse("oGone").expect("openid");
        let erased = store.erase(&gone).await.expect("erase");
        assert_eq!(erased.other, 2, "the window and one unsent reply");
        assert_eq!(
            ContactWindows::get(&store, "oGone").await.expect("get"),
            None
        );
        assert!(
            ContactWindows::get(&store, "oStays")
                .await
                .expect("get")
                .is_some()
        );
        let left = store.pending(10).await.expect("pending");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].reply.openid, "oStays");
    }

    #[tokio::test]
    async fn a_users_export_shows_their_window_and_unsent_replies_only() {
        use wca_core::UserData;
        let (_dir, store) = fresh();
        store.touch("oAsks", 7).await.expect("touch");
        store.touch("oOther", 8).await.expect("touch");
        put(&store, &reply("msg:1", "oAsks", 1)).await;
        put(&store, &reply("msg:2", "oOther", 2)).await;
        put(&store, &reply("msg:3", "oAsks", 3)).await;
        let asks = wca_core::OpenId::parse("oAsks").expect("openid");
        let record = store.export(&asks, 10).await.expect("export");
        assert_eq!(record.window.map(|w| w.last_interaction), Some(7));
        let keys: Vec<_> = record
            .pending_replies
            .iter()
            .map(|r| r.key.as_str())
            .collect();
        assert_eq!(keys, ["msg:1", "msg:3"], "theirs, oldest first");
        let nobody = wca_core::OpenId::parse("oNobody").expect("openid");
        let empty = store.export(&nobody, 10).await.expect("export");
        assert_eq!((empty.window, empty.pending_replies.len()), (None, 0));
    }

    #[tokio::test]
    async fn a_cached_token_survives_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wca.redb");
        let token = CachedToken {
            token: "T1".into(),
            expires_at: 42,
        };
        {
            let store = RedbStore::open(&path).expect("open");
            TokenStore::put(&store, "wx1", &token).await.expect("put");
        }
        let store = RedbStore::open(&path).expect("reopen");
        assert_eq!(
            TokenStore::get(&store, "wx1").await.expect("get"),
            Some(token)
        );
    }
}
