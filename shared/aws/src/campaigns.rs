//! The campaign items of the app's table: [`CampaignStore`] for
//! [`DynamoDbStore`].
//!
//! | item | `pk` | `sk` | `ttl` |
//! |---|---|---|---|
//! | a campaign | `campaign` | `c#{id}` | none: kept until deleted |
//! | an occurrence | `occ#{campaign_id}` | its scheduled time (below) | 400 days after it started |
//! | one recipient's delivery | `dlv#{occurrence_id}` | `{openid}` | 400 days after its `at` |
//! | its pointer in the user's partition | `user#{openid}` | `claim#{occurrence_id}` | as the delivery |
//! | when a triggered campaign last fired for a user | `user#{openid}` | `cool#{campaign_id}` | its cooldown after `fired_at` |
//!
//! Each item holds its record as JSON in one attribute (`campaign`,
//! `occurrence`, `delivery`); a campaign also holds its `version` as a
//! number, the condition of [`CampaignStore::replace`].
//!
//! - Every campaign shares the partition `campaign`, so listing them is
//!   one query, by id (there are tens of campaigns, not millions).
//! - An occurrence's sort key is its scheduled time as 16 hex digits of
//!   its sign-flipped bits, so strings sort as times do and a campaign's
//!   occurrences come back oldest first.
//! - Every delivery of one occurrence shares a partition, sorted by
//!   OpenID: the report is one query. A delivery is claimed with a put
//!   conditional on the item being new, so a recipient is claimed once.
//! - Occurrences and deliveries carry `ttl`, 400 days after the time they
//!   record (an occurrence's start, a delivery's claim or end), so
//!   DynamoDB deletes them some time after; campaigns carry none.
//!
//! Deliveries are keyed by occurrence, so that a report is one query; a
//! pointer in the recipient's partition `user#{openid}`, written once the
//! claim is won, lets a user's data export and erasure find them (see
//! `UserData` in the table's module). A claim whose pointer write failed
//! (a crash in between) is found only by its TTL.
//!
//! Every query follows `LastEvaluatedKey` to the end, a page of at most
//! [`QUERY_PAGE`] items at a time.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    operation::put_item::PutItemError,
    types::{AttributeValue, ReturnValuesOnConditionCheckFailure},
};
use serde::{Serialize, de::DeserializeOwned};
use wca_core::{
    PortError,
    campaign::{Campaign, CampaignStore, Delivery, MASS, Occurrence, Outcome},
};

use crate::{DynamoDbStore, unavailable};

type Item = HashMap<String, AttributeValue>;

/// The partition of every campaign.
const CAMPAIGNS: &str = "campaign";

/// How long occurrences and deliveries are kept: 400 days after the time
/// they record.
const KEPT_SECS: i64 = 400 * 86_400;

/// Items per query page, at most. DynamoDB also ends a page at 1 MB; the
/// item limit keeps pages small and makes the tests on the stand-in cross
/// page boundaries.
const QUERY_PAGE: i32 = 1000;

/// Attempts of a delivery claim that keeps finding a record which is gone
/// by the time it is read (released in between).
const CLAIM_ROUNDS: usize = 4;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn campaign_key(id: &str) -> (String, String) {
    (CAMPAIGNS.to_owned(), format!("c#{id}"))
}

/// A time as 16 hex digits of its sign-flipped bits: strings sort as
/// times do, negative times included.
fn time_key(at: i64) -> String {
    let order = (at as u64) ^ (1 << 63);
    format!("{order:016x}")
}

fn occurrence_key(campaign_id: &str, scheduled_at: i64) -> (String, String) {
    (format!("occ#{campaign_id}"), time_key(scheduled_at))
}

fn deliveries_partition(occurrence_id: &str) -> String {
    format!("dlv#{occurrence_id}")
}

/// The key of a delivery; an empty OpenID cannot be a sort key.
fn delivery_key(occurrence_id: &str, openid: &str) -> Result<(String, String), PortError> {
    if openid.is_empty() {
        return Err(PortError::Rejected(
            "a campaign delivery needs an OpenID".to_owned(),
        ));
    }
    Ok((deliveries_partition(occurrence_id), openid.to_owned()))
}

fn to_json(what: &str, value: &impl Serialize) -> Result<String, PortError> {
    serde_json::to_string(value)
        .map_err(|e| PortError::Rejected(format!("{what} not serialisable: {e}")))
}

/// The record held as JSON in attribute `name`.
fn from_json<T: DeserializeOwned>(item: &Item, name: &str) -> Result<T, PortError> {
    let Some(AttributeValue::S(body)) = item.get(name) else {
        return Err(PortError::Corrupt(format!(
            "attribute {name} missing or not a string"
        )));
    };
    serde_json::from_str(body).map_err(|e| PortError::Corrupt(format!("{name}: {e}")))
}

fn sort_key(item: &Item) -> Result<&str, PortError> {
    match item.get("sk") {
        Some(AttributeValue::S(sk)) => Ok(sk),
        _ => Err(PortError::Corrupt(
            "attribute sk missing or not a string".to_owned(),
        )),
    }
}

/// A campaign item, checked against its key and its `version`.
fn campaign_from(item: &Item) -> Result<Campaign, PortError> {
    let campaign: Campaign = from_json(item, "campaign")?;
    if sort_key(item)? != campaign_key(&campaign.id).1 {
        return Err(PortError::Corrupt(format!(
            "the campaign stored under {} is {}",
            sort_key(item)?,
            campaign.id
        )));
    }
    let version = match item.get("version") {
        Some(AttributeValue::N(v)) => v.parse::<u64>().ok(),
        _ => None,
    };
    if version != Some(campaign.version) {
        return Err(PortError::Corrupt(format!(
            "campaign {}: attribute version disagrees with the record",
            campaign.id
        )));
    }
    Ok(campaign)
}

/// An occurrence item, checked against its key.
fn occurrence_from(item: &Item) -> Result<Occurrence, PortError> {
    let occurrence: Occurrence = from_json(item, "occurrence")?;
    if sort_key(item)? != time_key(occurrence.scheduled_at) {
        return Err(PortError::Corrupt(format!(
            "occurrence {} is stored under another time",
            occurrence.id()
        )));
    }
    Ok(occurrence)
}

/// A delivery item, checked against its key.
fn delivery_from(item: &Item) -> Result<Delivery, PortError> {
    let delivery: Delivery = from_json(item, "delivery")?;
    if sort_key(item)? != delivery.openid {
        return Err(PortError::Corrupt(
            "a campaign delivery is stored under another OpenID".to_owned(),
        ));
    }
    Ok(delivery)
}

fn is_condition_failure(e: &PutItemError) -> bool {
    e.is_conditional_check_failed_exception()
}

fn campaign_item(campaign: &Campaign) -> Result<Item, PortError> {
    let (pk, sk) = campaign_key(&campaign.id);
    Ok(Item::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(sk)),
        ("campaign".to_owned(), s(to_json("campaign", campaign)?)),
        ("version".to_owned(), n(campaign.version)),
    ]))
}

fn occurrence_item(occurrence: &Occurrence) -> Result<Item, PortError> {
    let (pk, sk) = occurrence_key(&occurrence.campaign_id, occurrence.scheduled_at);
    Ok(Item::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(sk)),
        (
            "occurrence".to_owned(),
            s(to_json("occurrence", occurrence)?),
        ),
        (
            "ttl".to_owned(),
            n(occurrence.started_at.saturating_add(KEPT_SECS)),
        ),
    ]))
}

/// The sort-key prefix of a delivery's pointer in its user's partition.
pub(crate) const CLAIM_POINTER: &str = "claim#";

/// The pointer to `occurrence_id`'s delivery to `openid`, kept as long.
fn pointer_item(occurrence_id: &str, openid: &str, at: i64) -> Item {
    Item::from([
        ("pk".to_owned(), s(crate::dynamodb::user(openid))),
        (
            "sk".to_owned(),
            s(format!("{CLAIM_POINTER}{occurrence_id}")),
        ),
        ("ttl".to_owned(), n(at.saturating_add(KEPT_SECS))),
    ])
}

/// The key of the delivery the pointer with sort key `sk` in `openid`'s
/// partition stands for.
pub(crate) fn pointed_delivery(sk: &str, openid: &str) -> Option<(String, String)> {
    let occurrence_id = sk.strip_prefix(CLAIM_POINTER)?;
    Some((deliveries_partition(occurrence_id), openid.to_owned()))
}

/// A delivery item as the user's data export shows it: the
/// [`Delivery`] with its `occurrence` id added.
pub(crate) fn exported_delivery(item: &Item) -> Result<serde_json::Value, PortError> {
    let delivery = delivery_from(item)?;
    let occurrence = match item.get("pk") {
        Some(AttributeValue::S(pk)) => pk.strip_prefix("dlv#").unwrap_or(pk).to_owned(),
        _ => return Err(PortError::Corrupt("a delivery without its key".to_owned())),
    };
    let serde_json::Value::Object(mut fields) = serde_json::to_value(&delivery)
        .map_err(|e| PortError::Corrupt(format!("delivery: {e}")))?
    else {
        return Err(PortError::Corrupt(
            "a delivery is not a JSON object".to_owned(),
        ));
    };
    fields.insert("occurrence".into(), occurrence.into());
    Ok(serde_json::Value::Object(fields))
}

fn delivery_item(occurrence_id: &str, delivery: &Delivery) -> Result<Item, PortError> {
    let (pk, sk) = delivery_key(occurrence_id, &delivery.openid)?;
    Ok(Item::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(sk)),
        ("delivery".to_owned(), s(to_json("delivery", delivery)?)),
        ("ttl".to_owned(), n(delivery.at.saturating_add(KEPT_SECS))),
    ]))
}

impl DynamoDbStore {
    /// A put with a condition: `Ok(false)` when the condition failed.
    async fn put_if(
        &self,
        op: &str,
        item: Item,
        condition: &str,
        values: Option<Item>,
    ) -> Result<bool, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(is_condition_failure) => Ok(false),
            Err(e) => Err(unavailable(op, e)),
        }
    }

    async fn put_plain(&self, op: &str, item: Item) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable(op, e))?;
        Ok(())
    }

    async fn read(&self, op: &str, (pk, sk): (String, String)) -> Result<Option<Item>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(op, e))?;
        Ok(out.item)
    }

    /// Every item of partition `pk`, by sort key: one query, paged to the
    /// end.
    async fn whole_partition(&self, op: &str, pk: String) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk.clone()))
                .consistent_read(true)
                .limit(QUERY_PAGE)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable(op, e))?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
}

/// The items are described in this file's module documentation.
#[async_trait]
impl CampaignStore for DynamoDbStore {
    async fn insert(&self, campaign: &Campaign) -> Result<bool, PortError> {
        let item = campaign_item(campaign)?;
        self.put_if("campaign insert", item, "attribute_not_exists(pk)", None)
            .await
    }

    async fn replace(&self, campaign: &Campaign) -> Result<bool, PortError> {
        let Some(previous) = campaign.version.checked_sub(1) else {
            return Ok(false);
        };
        let item = campaign_item(campaign)?;
        // Fails on a missing item too: `version` is not there to compare.
        self.put_if(
            "campaign replace",
            item,
            "version = :previous",
            Some(Item::from([(":previous".to_owned(), n(previous))])),
        )
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Campaign>, PortError> {
        self.read("campaign get", campaign_key(id))
            .await?
            .map(|item| campaign_from(&item))
            .transpose()
    }

    async fn list(&self) -> Result<Vec<Campaign>, PortError> {
        self.whole_partition("campaign list", CAMPAIGNS.to_owned())
            .await?
            .iter()
            .map(campaign_from)
            .collect()
    }

    async fn claim_occurrence(&self, occurrence: &Occurrence) -> Result<bool, PortError> {
        let item = occurrence_item(occurrence)?;
        self.put_if("occurrence claim", item, "attribute_not_exists(pk)", None)
            .await
    }

    async fn save_occurrence(&self, occurrence: &Occurrence) -> Result<(), PortError> {
        let item = occurrence_item(occurrence)?;
        self.put_plain("occurrence save", item).await
    }

    async fn occurrence(
        &self,
        campaign_id: &str,
        scheduled_at: i64,
    ) -> Result<Option<Occurrence>, PortError> {
        self.read("occurrence get", occurrence_key(campaign_id, scheduled_at))
            .await?
            .map(|item| occurrence_from(&item))
            .transpose()
    }

    async fn occurrences(&self, campaign_id: &str) -> Result<Vec<Occurrence>, PortError> {
        let (pk, _) = occurrence_key(campaign_id, 0);
        self.whole_partition("occurrence list", pk)
            .await?
            .iter()
            .map(occurrence_from)
            .collect()
    }

    async fn claim_delivery(
        &self,
        occurrence_id: &str,
        openid: &str,
        at: i64,
    ) -> Result<Option<Delivery>, PortError> {
        let claim = Delivery {
            openid: openid.to_owned(),
            outcome: Outcome::Sending,
            at,
        };
        let item = delivery_item(occurrence_id, &claim)?;
        for _ in 0..CLAIM_ROUNDS {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let existing = match result {
                Ok(_) => {
                    // A mass send's record names no user.
                    // The claim is won: a failed pointer must not leave it
                    // unused (it would read as interrupted). Without the
                    // pointer the record is found only by its TTL.
                    if openid != MASS
                        && let Err(e) = self
                            .put_plain("delivery pointer", pointer_item(occurrence_id, openid, at))
                            .await
                    {
                        tracing::warn!(occurrence_id, error = %e, "a delivery's pointer for data requests could not be written");
                    }
                    return Ok(None);
                }
                Err(e) => match e.into_service_error() {
                    PutItemError::ConditionalCheckFailedException(failed) => failed.item,
                    other => return Err(unavailable("delivery claim", other)),
                },
            };
            // The record the condition saw; read it when the answer does
            // not carry it.
            let existing = match existing {
                Some(item) if !item.is_empty() => Some(item),
                _ => {
                    self.read("delivery claim", delivery_key(occurrence_id, openid)?)
                        .await?
                }
            };
            // `None`: released since; claim again.
            if let Some(item) = existing {
                return delivery_from(&item).map(Some);
            }
        }
        Err(PortError::Unavailable(
            "delivery claim: the record kept changing".to_owned(),
        ))
    }

    async fn finish_delivery(
        &self,
        occurrence_id: &str,
        delivery: &Delivery,
    ) -> Result<(), PortError> {
        let item = delivery_item(occurrence_id, delivery)?;
        self.put_plain("delivery finish", item).await
    }

    async fn release_delivery(&self, occurrence_id: &str, openid: &str) -> Result<(), PortError> {
        let (pk, sk) = delivery_key(occurrence_id, openid)?;
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .send()
            .await
            .map_err(|e| unavailable("delivery release", e))?;
        if openid != MASS {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(crate::dynamodb::user(openid)))
                .key("sk", s(format!("{CLAIM_POINTER}{occurrence_id}")))
                .send()
                .await
                .map_err(|e| unavailable("delivery pointer release", e))?;
        }
        Ok(())
    }

    async fn claim_cooldown(
        &self,
        campaign_id: &str,
        openid: &str,
        now: i64,
        cooldown_secs: i64,
    ) -> Result<bool, PortError> {
        if openid.is_empty() {
            return Err(PortError::Rejected(
                "a campaign cooldown needs an OpenID".to_owned(),
            ));
        }
        // In the user's partition: their erasure takes it along.
        let item = Item::from([
            ("pk".to_owned(), s(crate::dynamodb::user(openid))),
            ("sk".to_owned(), s(format!("cool#{campaign_id}"))),
            ("fired_at".to_owned(), n(now)),
            (
                "ttl".to_owned(),
                n(now.saturating_add(cooldown_secs.max(0))),
            ),
        ]);
        self.put_if(
            "campaign cooldown",
            item,
            "attribute_not_exists(pk) OR fired_at <= :cutoff",
            Some(Item::from([(
                ":cutoff".to_owned(),
                n(now.saturating_sub(cooldown_secs)),
            )])),
        )
        .await
    }

    async fn deliveries(&self, occurrence_id: &str) -> Result<Vec<Delivery>, PortError> {
        self.whole_partition("delivery list", deliveries_partition(occurrence_id))
            .await?
            .iter()
            .map(delivery_from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use wca_core::campaign::{CampaignStore, Delivery, Occurrence, Outcome};

    use crate::{DynamoDbStore, stand_in_config, unique_name};

    fn endpoint() -> String {
        crate::stand_in_endpoint().expect(
            "WCA_MOTO_ENDPOINT is not set: run the tests with infra/test.sh, which starts moto_server",
        )
    }

    async fn store() -> DynamoDbStore {
        let config = stand_in_config(&endpoint()).await;
        let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&config), unique_name("wca"));
        store.create_table().await.expect("create table");
        store
    }

    #[tokio::test]
    async fn dynamodb_campaigns_keep_the_campaign_store_contract() {
        wca_core::contract::campaign_store(&store().await).await;
    }

    #[tokio::test]
    async fn a_users_export_and_erasure_find_their_deliveries_through_pointers() {
        wca_core::contract::campaign_user_data(&store().await).await;
    }

    // Several worker threads, so the claims really race to the stand-in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn deliveries_of_a_large_occurrence_come_back_complete_across_pages() {
        const RECIPIENTS: usize = 2_500;
        const WORKERS: usize = 16;
        let store = Arc::new(store().await);
        let occurrence = Occurrence::start("c0000000000b1", 1_800_000_000, 1_800_000_000).id();
        let mut workers = Vec::new();
        for w in 0..WORKERS {
            let (store, occurrence) = (Arc::clone(&store), occurrence.clone());
            workers.push(tokio::spawn(async move {
                for i in (w..RECIPIENTS).step_by(WORKERS) {
                    let openid = format!("oUser-{i:05}");
                    let at = 1_800_000_000 + i64::try_from(i).expect("small");
                    let claimed = store.claim_delivery(&occurrence, &openid, at).await;
                    assert_eq!(claimed.expect("claim"), None, "{openid} is new");
                    let sent = Delivery {
                        openid,
                        outcome: Outcome::Sent,
                        at: at + 1,
                    };
                    store
                        .finish_delivery(&occurrence, &sent)
                        .await
                        .expect("finish");
                }
            }));
        }
        for w in workers {
            w.await.expect("worker");
        }
        // Another occurrence's records stay out.
        let other = Occurrence::start("c0000000000b1", 1_800_000_600, 1_800_000_600).id();
        assert_eq!(
            store
                .claim_delivery(&other, "oUser-00000", 1_800_000_600)
                .await
                .expect("claim"),
            None
        );

        let deliveries = store.deliveries(&occurrence).await.expect("deliveries");
        assert_eq!(deliveries.len(), RECIPIENTS, "every record, each once");
        let ids: Vec<&str> = deliveries.iter().map(|d| d.openid.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted, "by OpenID");
        assert_eq!(
            ids.iter().collect::<BTreeSet<_>>().len(),
            RECIPIENTS,
            "no record twice"
        );
        assert!(deliveries.iter().all(|d| d.outcome == Outcome::Sent));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn only_one_of_many_concurrent_claims_of_an_occurrence_wins() {
        let store = Arc::new(store().await);
        let mut claims = Vec::new();
        for i in 0..20 {
            let store = Arc::clone(&store);
            claims.push(tokio::spawn(async move {
                let occurrence =
                    Occurrence::start("c0000000000c1", 1_800_000_000, 1_800_000_000 + i);
                store.claim_occurrence(&occurrence).await
            }));
        }
        let mut won = 0;
        for c in claims {
            if c.await.expect("join").expect("claim") {
                won += 1;
            }
        }
        assert_eq!(won, 1, "one claim wins");
        let stored = store
            .occurrences("c0000000000c1")
            .await
            .expect("occurrences");
        assert_eq!(stored.len(), 1);
    }
}
