//! The outbound ports on redb: the shared access token and each user's
//! window and budget (see `wca_core::outbound`).

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use wca_core::outbound::{give_back_in, reserve_in, touch_in, undeliverable_in};
use wca_core::{
    CachedToken, ContactWindow, ContactWindows, PortError, Reserved, TokenStore, WindowRules,
};

use crate::LocalError;
use crate::store::{RedbStore, read_bytes};

/// AppID → the cached access token, as JSON.
pub(crate) const TOKENS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("wechat_tokens");
/// OpenID → the user's [`ContactWindow`], as JSON.
pub(crate) const CONTACTS: TableDefinition<'_, &str, &[u8]> =
    TableDefinition::new("contact_windows");

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
