//! The campaign port on redb: campaigns, their occurrences and each
//! recipient's delivery record (see `wca_core::campaign`).
//!
//! Occurrences and deliveries have tuple keys, so the rows of one campaign
//! (or one occurrence) are one range of the table, and an occurrence id
//! such as `c1@100` never takes in the rows of `c1@1000` as a string
//! prefix would.

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use wca_core::PortError;
use wca_core::campaign::{Campaign, CampaignStore, Delivery, Occurrence, Outcome};

use crate::LocalError;
use crate::store::{RedbStore, read_bytes};

/// Campaign id → [`Campaign`] as JSON.
pub(crate) const CAMPAIGNS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("campaigns");
/// `(campaign id, scheduled time)` → [`Occurrence`] as JSON: a campaign's
/// occurrences in time order.
pub(crate) const OCCURRENCES: TableDefinition<'_, (&str, i64), &[u8]> =
    TableDefinition::new("campaign_occurrences");
/// `(occurrence id, OpenID)` → [`Delivery`] as JSON: an occurrence's
/// records by OpenID.
pub(crate) const DELIVERIES: TableDefinition<'_, (&str, &str), &[u8]> =
    TableDefinition::new("campaign_deliveries");
/// `(campaign id, OpenID)` → when a triggered campaign last fired for
/// the user (Unix seconds).
pub(crate) const COOLDOWNS: TableDefinition<'_, (&str, &str), i64> =
    TableDefinition::new("campaign_cooldowns");

fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, LocalError> {
    serde_json::from_slice(bytes).map_err(|e| LocalError::Corrupt(format!("{table}: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, PortError> {
    serde_json::to_vec(value)
        .map_err(|e| PortError::Rejected(format!("cannot encode as JSON: {e}")))
}

/// Stores `bytes` under `key` in `table` unless the key exists; `true`
/// when this call stored it.
fn insert_new<K: redb::Key + 'static>(
    txn: &WriteTransaction,
    table: TableDefinition<'_, K, &[u8]>,
    key: K::SelfType<'_>,
    bytes: &[u8],
) -> Result<bool, LocalError> {
    let mut table = txn.open_table(table)?;
    if table.get(&key)?.is_some() {
        return Ok(false);
    }
    table.insert(key, bytes)?;
    Ok(true)
}

#[async_trait]
impl CampaignStore for RedbStore {
    async fn insert(&self, campaign: &Campaign) -> Result<bool, PortError> {
        let id = campaign.id.clone();
        let bytes = encode(campaign)?;
        self.write(move |txn| {
            let stored = insert_new(txn, CAMPAIGNS, id.as_str(), &bytes)?;
            Ok((stored, stored))
        })
        .await
    }

    async fn replace(&self, campaign: &Campaign) -> Result<bool, PortError> {
        let id = campaign.id.clone();
        let version = campaign.version;
        let bytes = encode(campaign)?;
        self.write(move |txn| {
            let mut table = txn.open_table(CAMPAIGNS)?;
            let stored: Option<Campaign> = table
                .get(id.as_str())?
                .map(|v| decode("campaigns", v.value()))
                .transpose()?;
            match stored {
                Some(s) if s.version.checked_add(1) == Some(version) => {
                    table.insert(id.as_str(), bytes.as_slice())?;
                    Ok((true, true))
                }
                _ => Ok((false, false)),
            }
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Campaign>, PortError> {
        self.read_one(|db| {
            read_bytes(db, CAMPAIGNS, id)?
                .map(|b| decode("campaigns", &b))
                .transpose()
        })
    }

    async fn list(&self) -> Result<Vec<Campaign>, PortError> {
        self.blocking(|db| {
            let txn = db.begin_read()?;
            let mut found = Vec::new();
            for row in txn.open_table(CAMPAIGNS)?.iter()? {
                let (_, value) = row?;
                found.push(decode("campaigns", value.value())?);
            }
            Ok(found)
        })
        .await
    }

    async fn claim_occurrence(&self, occurrence: &Occurrence) -> Result<bool, PortError> {
        let campaign_id = occurrence.campaign_id.clone();
        let at = occurrence.scheduled_at;
        let bytes = encode(occurrence)?;
        self.write(move |txn| {
            let stored = insert_new(txn, OCCURRENCES, (campaign_id.as_str(), at), &bytes)?;
            Ok((stored, stored))
        })
        .await
    }

    async fn save_occurrence(&self, occurrence: &Occurrence) -> Result<(), PortError> {
        let campaign_id = occurrence.campaign_id.clone();
        let at = occurrence.scheduled_at;
        let bytes = encode(occurrence)?;
        self.write(move |txn| {
            txn.open_table(OCCURRENCES)?
                .insert((campaign_id.as_str(), at), bytes.as_slice())?;
            Ok(((), true))
        })
        .await
    }

    async fn occurrence(
        &self,
        campaign_id: &str,
        scheduled_at: i64,
    ) -> Result<Option<Occurrence>, PortError> {
        self.read_one(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(OCCURRENCES)?;
            let found = table.get((campaign_id, scheduled_at))?;
            found
                .map(|v| decode("campaign_occurrences", v.value()))
                .transpose()
        })
    }

    async fn occurrences(&self, campaign_id: &str) -> Result<Vec<Occurrence>, PortError> {
        let campaign_id = campaign_id.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(OCCURRENCES)?;
            let id = campaign_id.as_str();
            let mut found = Vec::new();
            for row in table.range((id, i64::MIN)..=(id, i64::MAX))? {
                let (_, value) = row?;
                found.push(decode("campaign_occurrences", value.value())?);
            }
            Ok(found)
        })
        .await
    }

    async fn claim_delivery(
        &self,
        occurrence_id: &str,
        openid: &str,
        at: i64,
    ) -> Result<Option<Delivery>, PortError> {
        let occurrence_id = occurrence_id.to_owned();
        let claim = Delivery {
            openid: openid.to_owned(),
            outcome: Outcome::Sending,
            at,
        };
        let bytes = encode(&claim)?;
        self.write(move |txn| {
            let key = (occurrence_id.as_str(), claim.openid.as_str());
            let mut table = txn.open_table(DELIVERIES)?;
            let existing: Option<Delivery> = table
                .get(key)?
                .map(|v| decode("campaign_deliveries", v.value()))
                .transpose()?;
            if existing.is_some() {
                return Ok((existing, false));
            }
            table.insert(key, bytes.as_slice())?;
            Ok((None, true))
        })
        .await
    }

    async fn finish_delivery(
        &self,
        occurrence_id: &str,
        delivery: &Delivery,
    ) -> Result<(), PortError> {
        let occurrence_id = occurrence_id.to_owned();
        let openid = delivery.openid.clone();
        let bytes = encode(delivery)?;
        self.write(move |txn| {
            txn.open_table(DELIVERIES)?
                .insert((occurrence_id.as_str(), openid.as_str()), bytes.as_slice())?;
            Ok(((), true))
        })
        .await
    }

    async fn release_delivery(&self, occurrence_id: &str, openid: &str) -> Result<(), PortError> {
        let occurrence_id = occurrence_id.to_owned();
        let openid = openid.to_owned();
        self.write(move |txn| {
            let removed = txn
                .open_table(DELIVERIES)?
                .remove((occurrence_id.as_str(), openid.as_str()))?
                .is_some();
            Ok(((), removed))
        })
        .await
    }

    async fn claim_cooldown(
        &self,
        campaign_id: &str,
        openid: &str,
        now: i64,
        cooldown_secs: i64,
    ) -> Result<bool, PortError> {
        let (campaign_id, openid) = (campaign_id.to_owned(), openid.to_owned());
        self.write(move |txn| {
            let mut table = txn.open_table(COOLDOWNS)?;
            let key = (campaign_id.as_str(), openid.as_str());
            let last = table.get(key)?.map(|v| v.value());
            if last.is_some_and(|last| now - last < cooldown_secs) {
                return Ok((false, false));
            }
            table.insert(key, now)?;
            Ok((true, true))
        })
        .await
    }

    async fn deliveries(&self, occurrence_id: &str) -> Result<Vec<Delivery>, PortError> {
        let occurrence_id = occurrence_id.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(DELIVERIES)?;
            let id = occurrence_id.as_str();
            let mut found = Vec::new();
            // From the occurrence's first OpenID ("" sorts before any) to
            // the first row of another occurrence.
            for row in table.range((id, "")..)? {
                let (key, value) = row?;
                if key.value().0 != id {
                    break;
                }
                found.push(decode("campaign_deliveries", value.value())?);
            }
            Ok(found)
        })
        .await
    }
}

/// `openid`'s delivery records (personal data on request), by occurrence,
/// each as the [`Delivery`] with its `occurrence` id added.
///
/// The table is keyed by occurrence, so this reads all of it: acceptable
/// for one local store, and only on request.
pub(crate) fn export_user_deliveries(
    txn: &redb::ReadTransaction,
    openid: &str,
) -> Result<Vec<serde_json::Value>, LocalError> {
    let mut found = Vec::new();
    for row in txn.open_table(DELIVERIES)?.iter()? {
        let (key, value) = row?;
        let (occurrence, whose) = key.value();
        if whose != openid {
            continue;
        }
        let delivery: Delivery = decode("campaign_deliveries", value.value())?;
        let json = serde_json::to_value(&delivery)
            .map_err(|e| LocalError::Corrupt(format!("campaign_deliveries: {e}")))?;
        let serde_json::Value::Object(mut fields) = json else {
            return Err(LocalError::Corrupt(
                "campaign_deliveries: a delivery is not a JSON object".into(),
            ));
        };
        fields.insert("occurrence".into(), occurrence.into());
        found.push(serde_json::Value::Object(fields));
    }
    Ok(found)
}

/// Removes `openid`'s delivery records (personal data on request);
/// returns how many went. Like [`export_user_deliveries`], a full scan of
/// the table. Rows are matched on their key, so even a record that no
/// longer decodes is removed.
pub(crate) fn erase_user_deliveries(
    txn: &WriteTransaction,
    openid: &str,
) -> Result<u64, LocalError> {
    let mut table = txn.open_table(DELIVERIES)?;
    let mut theirs = Vec::new();
    for row in table.iter()? {
        let (key, _) = row?;
        let (occurrence, whose) = key.value();
        if whose == openid {
            theirs.push(occurrence.to_owned());
        }
    }
    for occurrence in &theirs {
        table.remove((occurrence.as_str(), openid))?;
    }
    // When triggered campaigns last fired for them.
    let mut cooldowns = txn.open_table(COOLDOWNS)?;
    let mut fired = Vec::new();
    for row in cooldowns.iter()? {
        let (key, _) = row?;
        let (campaign, whose) = key.value();
        if whose == openid {
            fired.push(campaign.to_owned());
        }
    }
    for campaign in &fired {
        cooldowns.remove((campaign.as_str(), openid))?;
    }
    Ok((theirs.len() + fired.len()) as u64)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use wca_core::campaign::{NewCampaign, OccurrenceState};

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn fresh() -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RedbStore::open(&dir.path().join("wca.redb")).expect("open");
        (dir, store)
    }

    fn campaign(id: &str) -> Campaign {
        NewCampaign {
            name: "会员日".to_owned(),
            cron: Some("0 9 * * 1".to_owned()),
            tz: Some("Asia/Shanghai".to_owned()),
            audience: "all".to_owned(),
            channel: "custom".to_owned(),
            text: "{{name}}，本周会员日".to_owned(),
            defaults: BTreeMap::from([("name".to_owned(), "亲".to_owned())]),
            ..NewCampaign::default()
        }
        .build(id.to_owned(), "alice", NOW, None)
        .expect("valid campaign")
    }

    fn sent(openid: &str, at: i64) -> Delivery {
        Delivery {
            openid: openid.to_owned(),
            outcome: Outcome::Sent,
            at,
        }
    }

    #[tokio::test]
    async fn redb_campaigns_keep_the_campaign_store_contract() {
        let (_dir, store) = fresh();
        wca_core::contract::campaign_store(&store).await;
    }

    #[tokio::test]
    async fn occurrence_ids_that_share_a_prefix_keep_their_own_deliveries() {
        let (_dir, store) = fresh();
        for occ in ["c1@100", "c1@1000", "c1@10"] {
            assert_eq!(
                store
                    .claim_delivery(occ, "oUser", NOW)
                    .await
                    .expect("claim"),
                None
            );
        }
        assert_eq!(store.deliveries("c1@100").await.expect("read").len(), 1);
        let mut later = Occurrence::start("c1", 1000, NOW);
        assert!(store.claim_occurrence(&later).await.expect("claim"));
        later.scheduled_at = 100;
        assert!(store.claim_occurrence(&later).await.expect("claim"));
        let c10 = Occurrence::start("c10", 50, NOW);
        assert!(store.claim_occurrence(&c10).await.expect("claim"));
        let times: Vec<i64> = store
            .occurrences("c1")
            .await
            .expect("occurrences")
            .iter()
            .map(|o| o.scheduled_at)
            .collect();
        assert_eq!(times, [100, 1000], "by time, not as text; c10 apart");
    }

    #[tokio::test]
    async fn campaigns_occurrences_and_deliveries_survive_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wca.redb");
        let c = campaign("c0000000000b1");
        let mut occ = Occurrence::start(&c.id, NOW + 600, NOW + 601);
        {
            let store = RedbStore::open(&path).expect("open");
            assert!(store.insert(&c).await.expect("insert"));
            assert!(store.claim_occurrence(&occ).await.expect("claim"));
            occ.state = OccurrenceState::Expanded;
            occ.audience = 1;
            store.save_occurrence(&occ).await.expect("save");
            assert_eq!(
                store
                    .claim_delivery(&occ.id(), "oUser-1", NOW + 602)
                    .await
                    .expect("claim"),
                None
            );
            store
                .finish_delivery(&occ.id(), &sent("oUser-1", NOW + 603))
                .await
                .expect("finish");
        }
        let store = RedbStore::open(&path).expect("reopen");
        assert_eq!(store.get(&c.id).await.expect("get"), Some(c.clone()));
        assert_eq!(
            store
                .occurrence(&c.id, NOW + 600)
                .await
                .expect("occurrence"),
            Some(occ.clone())
        );
        assert_eq!(
            store.deliveries(&occ.id()).await.expect("deliveries"),
            vec![sent("oUser-1", NOW + 603)]
        );
        assert_eq!(
            store
                .claim_delivery(&occ.id(), "oUser-1", NOW + 700)
                .await
                .expect("claim after restart"),
            Some(sent("oUser-1", NOW + 603)),
            "a recipient sent before the restart is not claimed again"
        );
    }

    #[tokio::test]
    async fn erasing_a_user_removes_their_campaign_deliveries_and_export_shows_them() {
        let (_dir, store) = fresh();
        wca_core::contract::campaign_user_data(&store).await;
    }

    #[tokio::test]
    async fn a_record_that_does_not_decode_is_reported_corrupt() {
        let (_dir, store) = fresh();
        store
            .write(|txn| {
                txn.open_table(CAMPAIGNS)?
                    .insert("c-bad", b"{not json".as_slice())?;
                Ok(((), true))
            })
            .await
            .expect("write");
        assert!(matches!(
            store.get("c-bad").await,
            Err(PortError::Corrupt(_))
        ));
        assert!(matches!(store.list().await, Err(PortError::Corrupt(_))));
    }
}
