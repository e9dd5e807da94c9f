//! One DynamoDB table holds the archive, dedup keys, event log, counters
//! and conversations. Its key is a partition key `pk` and a sort key `sk`
//! (both strings), with TTL on `ttl`:
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | an inbound message | `user#{openid}` | `msg#{key}` |
//! | our reply to it | `user#{openid}` | `reply#{key}` |
//! | the user's conversation | `user#{openid}` | `conv` |
//! | their profile (`users = "dynamodb"`) | `user#{openid}` | `profile` |
//! | an after-sales ticket they opened | `user#{openid}` | `ticket#{request key}` |
//! | the ticket number sequence | `seq#tickets` | `-` |
//! | a dedup claim or result | `idem#{key}` | `-` |
//! | an event-log entry | `evt#{id}` | `-` |
//! | a counter, a once-marker | `ctr#{name}`, `once#{id}` | `-` |
//! | the user's window for messages we start | `user#{openid}` | `window` |
//! | the WeChat access token of an app | `token#{appid}` | `-` |
//!
//! Everything about one user is one item collection, so their history (and
//! later their data export or erasure) is one query. Messages and replies
//! also carry `hk`, `{time}#{key}#{m|r}`, the sort key of the local
//! secondary index `history`, which orders a user's entries by time; the
//! index is sparse, so conversations and the other items stay out of it.
//! An LSI caps one user's items at 10 GB, far above any chat.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    Client,
    types::{
        AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, KeySchemaElement, KeyType,
        KeysAndAttributes, LocalSecondaryIndex, Projection, ProjectionType, Put, ReturnValue,
        ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update, WriteRequest,
    },
};
use wca_core::{
    Archived, ArchivedMessage, ArchivedReply, Begin, ConversationState, ConversationStore,
    Counters, Erased, Event, EventLog, HeldConversation, IdempotencyStore, MessageArchive,
    NewTicket, OpenId, PortError, Profile, ProfileStore, Ticket, TicketSink, UserData, UserRecord,
    Versioned,
    outbound::reserve_in,
    {CachedToken, ContactWindow, ContactWindows, Reserved, TokenStore, WindowRules},
};

use crate::unavailable;

/// DynamoDB's limit on items in one transaction.
const MAX_TRANSACTION_ITEMS: usize = 100;

/// The local secondary index that orders a user's messages and replies.
const HISTORY_INDEX: &str = "history";

/// The sort key of items that are alone in their partition.
const ALONE: &str = "-";

/// The key of an item alone in its partition.
fn alone(pk: String) -> (String, String) {
    (pk, ALONE.to_owned())
}

/// The partition of everything about one user.
pub(crate) fn user(openid: &str) -> String {
    format!("user#{openid}")
}

/// The `hk` of a message (`m`) or reply (`r`): the time as 16 hex digits
/// of its sign-flipped bits, so that strings sort as times do.
fn history_key(at: i64, key: &str, side: char) -> String {
    let order = (at as u64) ^ (1 << 63);
    format!("{order:016x}#{key}#{side}")
}

/// The DynamoDB adapter of the storage ports.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    // Crate-visible for the campaign items in `campaigns.rs`.
    pub(crate) client: Client,
    pub(crate) table: String,
}

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &Item, name: &str) -> Result<String, PortError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(PortError::Corrupt(format!(
            "attribute {name} missing or not a string"
        ))),
    }
}

fn get_n(item: &Item, name: &str) -> Result<i64, PortError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| PortError::Corrupt(format!("attribute {name} is not an integer"))),
        _ => Err(PortError::Corrupt(format!(
            "attribute {name} missing or not a number"
        ))),
    }
}

/// The message of an archive item.
fn message_from(item: &Item, key: &str) -> Result<ArchivedMessage, PortError> {
    Ok(ArchivedMessage {
        key: key.to_owned(),
        openid: get_s(item, "openid")?,
        msg_type: get_s(item, "msg_type")?,
        create_time: get_n(item, "create_time")?,
        received_at: get_n(item, "received_at")?,
        raw_xml: get_s(item, "raw_xml")?,
        parsed: serde_json::from_str(&get_s(item, "parsed")?)
            .map_err(|e| PortError::Corrupt(format!("parsed fields: {e}")))?,
        expires_at: get_n(item, "expires_at")?,
    })
}

/// A message or reply item, told apart by its sort key.
fn archived_from(item: &Item) -> Result<Archived, PortError> {
    let sk = get_s(item, "sk")?;
    if let Some(key) = sk.strip_prefix("msg#") {
        return message_from(item, key).map(Archived::Message);
    }
    let Some(key) = sk.strip_prefix("reply#") else {
        return Err(PortError::Corrupt(format!(
            "item {sk} in the history index is neither a message nor a reply"
        )));
    };
    Ok(Archived::Reply(ArchivedReply {
        key: key.to_owned(),
        openid: get_s(item, "openid")?,
        sent_at: get_n(item, "sent_at")?,
        reply: serde_json::from_str(&get_s(item, "reply")?)
            .map_err(|e| PortError::Corrupt(format!("reply: {e}")))?,
        route: get_s(item, "route")?,
        expires_at: get_n(item, "expires_at")?,
    }))
}

impl DynamoDbStore {
    /// An adapter over `table` (created by the SAM stack, or by
    /// [`DynamoDbStore::create_table`] in tests and local set-ups).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// An adapter over `table` with the SDK configuration `config` (e.g.
    /// [`crate::stand_in_config`] in tests).
    pub fn with_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    /// An adapter over `table` with the SDK configuration of the
    /// environment (credentials, region, `AWS_ENDPOINT_URL`): for tools
    /// run by an operator, such as `wca user`.
    pub async fn from_env(table: impl Into<String>) -> Self {
        Self::new(Client::new(&crate::sdk_config(None).await), table)
    }

    /// Creates the table as the SAM stack does (on-demand, `pk` hash key,
    /// `sk` range key, the `history` index, TTL on `ttl`). For tests and
    /// the local stand-in.
    pub async fn create_table(&self) -> Result<(), PortError> {
        let fail = |e| unavailable("create_table", e);
        let string = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(fail)
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(fail)
        };
        let history = LocalSecondaryIndex::builder()
            .index_name(HISTORY_INDEX)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("hk", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(fail)?;
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string("pk")?)
            .attribute_definitions(string("sk")?)
            .attribute_definitions(string("hk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .local_secondary_indexes(history)
            .send()
            .await
            .map_err(|e| unavailable("create_table", e))?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build()
                    .map_err(|e| unavailable("update_time_to_live", e))?,
            )
            .send()
            .await
            .map_err(|e| unavailable("update_time_to_live", e))?;
        Ok(())
    }

    async fn get_item(&self, (pk, sk): (String, String)) -> Result<Option<Item>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("get_item", e))?;
        Ok(out.item)
    }

    /// A put that only succeeds when the key is new: `Ok(false)` when it exists.
    async fn put_new(&self, op: &str, item: Item) -> Result<bool, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(op, e)),
        }
    }
}

#[async_trait]
impl MessageArchive for DynamoDbStore {
    async fn put(&self, msg: &ArchivedMessage) -> Result<bool, PortError> {
        let mut item = Item::from([
            ("pk".to_owned(), s(user(&msg.openid))),
            ("sk".to_owned(), s(format!("msg#{}", msg.key))),
            ("openid".to_owned(), s(&msg.openid)),
            ("msg_type".to_owned(), s(&msg.msg_type)),
            ("create_time".to_owned(), n(msg.create_time)),
            ("received_at".to_owned(), n(msg.received_at)),
            ("raw_xml".to_owned(), s(&msg.raw_xml)),
            ("parsed".to_owned(), s(msg.parsed.to_string())),
            ("expires_at".to_owned(), n(msg.expires_at)),
            ("ttl".to_owned(), n(msg.expires_at)),
        ]);
        // A sender that is not a valid OpenID has no history.
        if OpenId::parse(&msg.openid).is_ok() {
            item.insert(
                "hk".to_owned(),
                s(history_key(msg.received_at, &msg.key, 'm')),
            );
        }
        self.put_new("archive put", item).await
    }

    async fn put_reply(&self, reply: &ArchivedReply) -> Result<bool, PortError> {
        let body = serde_json::to_string(&reply.reply)
            .map_err(|e| PortError::Rejected(format!("reply not serialisable: {e}")))?;
        let mut item = Item::from([
            ("pk".to_owned(), s(user(&reply.openid))),
            ("sk".to_owned(), s(format!("reply#{}", reply.key))),
            ("openid".to_owned(), s(&reply.openid)),
            ("sent_at".to_owned(), n(reply.sent_at)),
            ("reply".to_owned(), s(body)),
            ("route".to_owned(), s(&reply.route)),
            ("expires_at".to_owned(), n(reply.expires_at)),
            ("ttl".to_owned(), n(reply.expires_at)),
        ]);
        if OpenId::parse(&reply.openid).is_ok() {
            item.insert(
                "hk".to_owned(),
                s(history_key(reply.sent_at, &reply.key, 'r')),
            );
        }
        self.put_new("archive put_reply", item).await
    }

    async fn get(
        &self,
        openid: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<ArchivedMessage>, PortError> {
        let item = self.get_item((user(openid), format!("msg#{key}"))).await?;
        // TTL deletion lags by up to days: hide what has expired.
        match item.map(|item| message_from(&item, key)).transpose()? {
            Some(msg) if msg.expires_at > now => Ok(Some(msg)),
            _ => Ok(None),
        }
    }

    async fn history(
        &self,
        openid: &OpenId,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Archived>, PortError> {
        let mut found = Vec::new();
        let mut start = None;
        while found.len() < limit {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(HISTORY_INDEX)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(user(openid.as_str())))
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(i32::try_from(limit - found.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("archive history", e))?;
            for item in page.items() {
                let entry = archived_from(item)?;
                let expires_at = match &entry {
                    Archived::Message(m) => m.expires_at,
                    Archived::Reply(r) => r.expires_at,
                };
                if expires_at > now {
                    found.push(entry);
                }
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        Ok(found)
    }

    async fn purge_expired(&self, _now: i64) -> Result<u64, PortError> {
        // DynamoDB's TTL deletes expired items itself.
        Ok(0)
    }
}

#[async_trait]
impl IdempotencyStore for DynamoDbStore {
    async fn begin(&self, key: &str, now: i64, lease_secs: i64) -> Result<Begin, PortError> {
        let until = now.saturating_add(lease_secs);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("idem#{key}")))
            .item("sk", s(ALONE))
            .item("st", s("claimed"))
            .item("until", n(until))
            .item("ttl", n(until.saturating_add(3600)))
            // Free, or a claim or result whose time is up.
            .condition_expression("attribute_not_exists(pk) OR #u <= :now")
            .expression_attribute_names("#u", "until")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Begin::Fresh),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                let item = self.get_item(alone(format!("idem#{key}"))).await?;
                match item {
                    Some(item) if get_s(&item, "st")? == "done" => {
                        Ok(Begin::Done(get_s(&item, "result")?))
                    }
                    _ => Ok(Begin::InFlight),
                }
            }
            Err(e) => Err(unavailable("idempotency begin", e)),
        }
    }

    async fn complete(
        &self,
        key: &str,
        result: &str,
        now: i64,
        ttl_secs: i64,
    ) -> Result<(), PortError> {
        let until = now.saturating_add(ttl_secs);
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("idem#{key}")))
            .item("sk", s(ALONE))
            .item("st", s("done"))
            .item("result", s(result))
            .item("until", n(until))
            .item("ttl", n(until))
            .send()
            .await
            .map_err(|e| unavailable("idempotency complete", e))?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), PortError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("idem#{key}")))
            .key("sk", s(ALONE))
            .condition_expression("st = :claimed")
            .expression_attribute_values(":claimed", s("claimed"))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already done (or gone): nothing to release.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable("idempotency release", e)),
        }
    }
}

#[async_trait]
impl Counters for DynamoDbStore {
    async fn add_once_by(
        &self,
        once_id: &str,
        keys: &[String],
        by: u64,
        marker_expires_at: i64,
    ) -> Result<bool, PortError> {
        if keys.len() + 1 > MAX_TRANSACTION_ITEMS {
            return Err(PortError::Rejected(format!(
                "{} counters in one event; DynamoDB allows {} items per transaction",
                keys.len(),
                MAX_TRANSACTION_ITEMS - 1
            )));
        }
        let marker = Put::builder()
            .table_name(&self.table)
            .item("pk", s(format!("once#{once_id}")))
            .item("sk", s(ALONE))
            .item("ttl", n(marker_expires_at))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| unavailable("add_once", e))?;
        let mut items = vec![TransactWriteItem::builder().put(marker).build()];
        for key in keys {
            let update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(format!("ctr#{key}")))
                .key("sk", s(ALONE))
                .update_expression("ADD n :by")
                .expression_attribute_values(":by", AttributeValue::N(by.to_string()))
                .build()
                .map_err(|e| unavailable("add_once", e))?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let marker_exists = e
                    .as_service_error()
                    .and_then(|se| match se {
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => Some(c),
                        _ => None,
                    })
                    .and_then(|c| c.cancellation_reasons().first())
                    .and_then(|r| r.code())
                    .is_some_and(|code| code == "ConditionalCheckFailed");
                if marker_exists {
                    Ok(false)
                } else {
                    Err(unavailable("add_once", e))
                }
            }
        }
    }

    async fn get(&self, key: &str) -> Result<u64, PortError> {
        match self.get_item(alone(format!("ctr#{key}"))).await? {
            Some(item) => get_n(&item, "n").map(|v| v.max(0) as u64),
            None => Ok(0),
        }
    }
}

#[async_trait]
impl EventLog for DynamoDbStore {
    async fn record(&self, event: &Event, expires_at: i64) -> Result<bool, PortError> {
        let body = serde_json::to_string(event)
            .map_err(|e| PortError::Rejected(format!("event not serialisable: {e}")))?;
        let item = Item::from([
            ("pk".to_owned(), s(format!("evt#{}", event.id))),
            ("sk".to_owned(), s(ALONE)),
            ("event".to_owned(), s(body)),
            ("at".to_owned(), n(event.at)),
            ("ttl".to_owned(), n(expires_at)),
        ]);
        self.put_new("event log record", item).await
    }

    async fn get(&self, id: &str) -> Result<Option<Event>, PortError> {
        match self.get_item(alone(format!("evt#{id}"))).await? {
            Some(item) => serde_json::from_str(&get_s(&item, "event")?)
                .map(Some)
                .map_err(|e| PortError::Corrupt(format!("event: {e}"))),
            None => Ok(None),
        }
    }
}

fn conversation_key(openid: &OpenId) -> (String, String) {
    (user(openid.as_str()), "conv".to_owned())
}

/// A conversation item: `ver` (its version), `state` (JSON), `expires_at`,
/// and `ttl` so DynamoDB deletes it some time after it expires.
#[async_trait]
impl ConversationStore for DynamoDbStore {
    async fn get(&self, openid: &OpenId, now: i64) -> Result<Versioned, PortError> {
        let Some(item) = self.get_item(conversation_key(openid)).await? else {
            return Ok(Versioned::default());
        };
        let version = match item.get("ver") {
            Some(AttributeValue::N(v)) => v
                .parse::<u64>()
                .map_err(|_| PortError::Corrupt("attribute ver is not a version".to_owned()))?,
            _ => {
                return Err(PortError::Corrupt(
                    "attribute ver missing or not a number".to_owned(),
                ));
            }
        };
        // TTL deletion lags by up to days: an expired state reads as the
        // default (keeping its version) whatever it holds.
        if now >= get_n(&item, "expires_at")? {
            return Ok(Versioned {
                version,
                state: ConversationState::default(),
            });
        }
        let state = serde_json::from_str(&get_s(&item, "state")?)
            .map_err(|e| PortError::Corrupt(format!("conversation state: {e}")))?;
        Ok(Versioned { version, state })
    }

    async fn compare_and_set(
        &self,
        openid: &OpenId,
        expected: u64,
        state: &ConversationState,
        expires_at: i64,
    ) -> Result<bool, PortError> {
        let version = wca_core::conversation::next_version(expected)?;
        let body = serde_json::to_string(state).map_err(|e| {
            PortError::Rejected(format!("conversation state not serialisable: {e}"))
        })?;
        let (pk, sk) = conversation_key(openid);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk))
            .item("sk", s(sk))
            .item("ver", AttributeValue::N(version.to_string()))
            .item("state", s(body))
            .item("expires_at", n(expires_at))
            .item("ttl", n(expires_at));
        // The condition makes the put a compare-and-set: DynamoDB checks it
        // and writes atomically, per item.
        let put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("ver = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable("conversation compare_and_set", e)),
        }
    }
}

/// The tickets' sequence counter (`AS000001`, `AS000002`, ...).
const TICKET_SEQUENCE: &str = "seq#tickets";

impl DynamoDbStore {
    /// Stores `profile` in its customer's partition (sort key `profile`),
    /// replacing any earlier one: how profiles are imported for
    /// `users = "dynamodb"`.
    pub async fn put_profile(&self, profile: &Profile) -> Result<(), PortError> {
        let body = serde_json::to_string(profile)
            .map_err(|e| PortError::Rejected(format!("profile not serialisable: {e}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(user(profile.openid.as_str())))
            .item("sk", s("profile"))
            .item("profile", s(body))
            .send()
            .await
            .map_err(|e| unavailable("put_profile", e))?;
        Ok(())
    }

    /// The ticket id already opened for `ticket`'s request, if any.
    async fn ticket_of(&self, ticket: &NewTicket) -> Result<Option<String>, PortError> {
        let key = (
            user(ticket.openid.as_str()),
            format!("ticket#{}", ticket.request_key),
        );
        match self.get_item(key).await? {
            Some(item) => get_s(&item, "ticket_id").map(Some),
            None => Ok(None),
        }
    }
}

/// A profile item: `profile`, the [`Profile`] as JSON.
#[async_trait]
impl ProfileStore for DynamoDbStore {
    async fn profile(&self, openid: &OpenId) -> Result<Option<Profile>, PortError> {
        let Some(item) = self
            .get_item((user(openid.as_str()), "profile".to_owned()))
            .await?
        else {
            return Ok(None);
        };
        let profile: Profile = serde_json::from_str(&get_s(&item, "profile")?)
            .map_err(|e| PortError::Corrupt(format!("profile: {e}")))?;
        if &profile.openid != openid {
            return Err(PortError::Corrupt(format!(
                "the profile stored for {openid} is another customer's"
            )));
        }
        Ok(Some(profile))
    }
}

/// A ticket item, in its customer's partition under
/// `ticket#{request_key}`: `ticket_id` and the request as JSON. Ids come
/// from one atomic counter; a request that raced another for the same key
/// gives its number up and returns the winner's ticket.
#[async_trait]
impl TicketSink for DynamoDbStore {
    async fn create(&self, ticket: &NewTicket) -> Result<String, PortError> {
        if let Some(id) = self.ticket_of(ticket).await? {
            return Ok(id);
        }
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(TICKET_SEQUENCE))
            .key("sk", s(ALONE))
            .update_expression("ADD n :one")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| unavailable("ticket sequence", e))?;
        let number = counted
            .attributes
            .as_ref()
            .ok_or_else(|| PortError::Corrupt("ticket sequence returned nothing".to_owned()))
            .and_then(|item| get_n(item, "n"))?;
        let id = format!("AS{number:06}");
        let body = serde_json::to_string(ticket)
            .map_err(|e| PortError::Rejected(format!("ticket not serialisable: {e}")))?;
        let item = Item::from([
            ("pk".to_owned(), s(user(ticket.openid.as_str()))),
            ("sk".to_owned(), s(format!("ticket#{}", ticket.request_key))),
            ("ticket_id".to_owned(), s(&id)),
            ("ticket".to_owned(), s(body)),
            ("created_at".to_owned(), n(ticket.created_at)),
        ]);
        if self.put_new("ticket create", item).await? {
            return Ok(id);
        }
        self.ticket_of(ticket).await?.ok_or_else(|| {
            PortError::Unavailable("a ticket for this request vanished while opening".to_owned())
        })
    }
}

/// DynamoDB's limit on keys in one `BatchGetItem`.
const MAX_BATCH_GET: usize = 100;

/// DynamoDB's limit on requests in one `BatchWriteItem`.
const MAX_BATCH_WRITE: usize = 25;

/// Rounds of retrying what a batch call left unprocessed (throttling)
/// before giving up.
const BATCH_ROUNDS: u32 = 8;

fn key_of(pk: String, sk: String) -> Item {
    Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// The items keyed by a user's message `keys` outside their partition: the
/// dedup records, and the event-log entries and once-markers of the events
/// about those messages.
fn keyed_by_messages(keys: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in keys {
        for dedup in wca_core::ports::message_dedup_keys(key) {
            out.push(alone(format!("idem#{dedup}")));
        }
        for id in wca_core::ports::message_event_ids(key) {
            out.push(alone(format!("evt#{id}")));
            out.push(alone(format!("once#{id}")));
        }
    }
    out
}

impl DynamoDbStore {
    /// Every item of the partition `user#{openid}`: one query, paged.
    async fn partition(&self, openid: &OpenId) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(user(openid.as_str())))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("user data query", e))?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(items),
            }
        }
    }

    /// The items stored under `keys` (those that exist), with every
    /// attribute: `BatchGetItem` in chunks, retrying unprocessed keys.
    async fn batch_get(&self, keys: Vec<(String, String)>) -> Result<Vec<Item>, PortError> {
        let mut found = Vec::new();
        for chunk in keys.chunks(MAX_BATCH_GET) {
            let mut pending: Vec<Item> = chunk
                .iter()
                .map(|(pk, sk)| key_of(pk.clone(), sk.clone()))
                .collect();
            for round in 0..BATCH_ROUNDS {
                if pending.is_empty() {
                    break;
                }
                if round > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(50 << round)).await;
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| unavailable("batch get", e))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| unavailable("batch get", e))?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(&self.table).unwrap_or_default());
                }
                if let Some(mut left) = out.unprocessed_keys {
                    pending = left.remove(&self.table).map(|k| k.keys).unwrap_or_default();
                }
            }
            if !pending.is_empty() {
                return Err(PortError::Unavailable(
                    "batch get: keys left unprocessed (throttled); try again".to_owned(),
                ));
            }
        }
        Ok(found)
    }

    /// Deletes the items under `keys`: `BatchWriteItem` in chunks of 25,
    /// retrying unprocessed requests.
    async fn batch_delete(&self, keys: Vec<(String, String)>) -> Result<(), PortError> {
        for chunk in keys.chunks(MAX_BATCH_WRITE) {
            let mut pending = Vec::new();
            for (pk, sk) in chunk {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key_of(pk.clone(), sk.clone())))
                    .build()
                    .map_err(|e| unavailable("batch delete", e))?;
                pending.push(WriteRequest::builder().delete_request(delete).build());
            }
            for round in 0..BATCH_ROUNDS {
                if pending.is_empty() {
                    break;
                }
                if round > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(50 << round)).await;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| unavailable("batch delete", e))?;
                if let Some(mut left) = out.unprocessed_items {
                    pending = left.remove(&self.table).unwrap_or_default();
                }
            }
            if !pending.is_empty() {
                return Err(PortError::Unavailable(
                    "batch delete: items left unprocessed (throttled); try again".to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// The board of unresolved conversations as stored: version, expiry,
    /// state.
    async fn board(&self) -> Result<Option<(u64, i64, ConversationState)>, PortError> {
        let Some(item) = self.get_item(conversation_key(&OpenId::board())).await? else {
            return Ok(None);
        };
        let held = held_conversation(&item)?;
        Ok(Some((held.version, held.expires_at, held.state)))
    }
}

/// A conversation item as held, whether expired or not.
fn held_conversation(item: &Item) -> Result<HeldConversation, PortError> {
    let version = get_n(item, "ver")?;
    Ok(HeldConversation {
        version: u64::try_from(version)
            .map_err(|_| PortError::Corrupt("attribute ver is not a version".to_owned()))?,
        expires_at: get_n(item, "expires_at")?,
        state: serde_json::from_str(&get_s(item, "state")?)
            .map_err(|e| PortError::Corrupt(format!("conversation state: {e}")))?,
    })
}

/// Everything about a user is in their partition `user#{openid}` (one
/// query), except the items keyed by their messages' keys (dedup records,
/// events, once-markers), found from the archived messages.
#[async_trait]
impl UserData for DynamoDbStore {
    async fn export(&self, openid: &OpenId, now: i64) -> Result<UserRecord, PortError> {
        let mut record = UserRecord::empty(openid, now);
        let mut deliveries = Vec::new();
        for item in self.partition(openid).await? {
            let sk = get_s(&item, "sk")?;
            if sk.starts_with("msg#") || sk.starts_with("reply#") {
                match archived_from(&item)? {
                    Archived::Message(m) => record.messages.push(m),
                    Archived::Reply(r) => record.replies.push(r),
                }
            } else if sk == "conv" {
                record.conversation = Some(held_conversation(&item)?);
            } else if sk == "window" {
                record.window = Some(window_from(&item)?);
            } else if sk == "profile" {
                record.profile = Some(
                    serde_json::from_str(&get_s(&item, "profile")?)
                        .map_err(|e| PortError::Corrupt(format!("profile: {e}")))?,
                );
            } else if sk.starts_with("ticket#") {
                record.tickets.push(Ticket {
                    ticket_id: get_s(&item, "ticket_id")?,
                    request: serde_json::from_str(&get_s(&item, "ticket")?)
                        .map_err(|e| PortError::Corrupt(format!("ticket: {e}")))?,
                });
            } else if let Some(key) = crate::campaigns::pointed_delivery(&sk, openid.as_str()) {
                deliveries.push(key);
            }
        }
        for item in self.batch_get(deliveries).await? {
            record
                .campaign_claims
                .push(crate::campaigns::exported_delivery(&item)?);
        }
        if let Some((_, _, board)) = self.board().await? {
            record.unresolved_since = board.unresolved.get(openid.as_str()).copied();
        }
        let events = self
            .batch_get(
                record
                    .message_keys()
                    .iter()
                    .flat_map(|key| wca_core::ports::message_event_ids(key))
                    .map(|id| alone(format!("evt#{id}")))
                    .collect(),
            )
            .await?;
        for item in events {
            record.events.push(
                serde_json::from_str(&get_s(&item, "event")?)
                    .map_err(|e| PortError::Corrupt(format!("event: {e}")))?,
            );
        }
        record.sort();
        Ok(record)
    }

    async fn erase(&self, openid: &OpenId) -> Result<Erased, PortError> {
        let mut erased = Erased::default();
        let items = self.partition(openid).await?;
        let mut keys = Vec::new();
        let mut doomed = Vec::new();
        for item in &items {
            let sk = get_s(item, "sk")?;
            if let Some(key) = sk.strip_prefix("msg#") {
                erased.messages += 1;
                keys.push(key.to_owned());
            } else if let Some(key) = sk.strip_prefix("reply#") {
                erased.replies += 1;
                keys.push(key.to_owned());
            } else if sk == "conv" {
                erased.conversation += 1;
            } else if sk == "profile" {
                erased.profile += 1;
            } else if sk.starts_with("ticket#") {
                erased.tickets += 1;
            } else if let Some(key) = crate::campaigns::pointed_delivery(&sk, openid.as_str()) {
                // The delivery, then (below) its pointer.
                erased.campaign_claims += 1;
                doomed.push(key);
            } else {
                erased.other += 1;
            }
            doomed.push((user(openid.as_str()), sk));
        }
        keys.sort();
        keys.dedup();
        // What hangs off the messages goes first: if this fails part-way,
        // the archive still names the keys for the next attempt.
        let outside = self.batch_get(keyed_by_messages(&keys)).await?;
        let mut outside_keys = Vec::new();
        for item in &outside {
            let pk = get_s(item, "pk")?;
            if pk.starts_with("idem#") {
                erased.dedup_records += 1;
            } else if pk.starts_with("evt#") {
                erased.events += 1;
            } else {
                erased.counter_markers += 1;
            }
            outside_keys.push((pk, get_s(item, "sk")?));
        }
        self.batch_delete(outside_keys).await?;
        self.batch_delete(doomed).await?;

        for _ in 0..BATCH_ROUNDS {
            let Some((version, expires_at, mut board)) = self.board().await? else {
                break;
            };
            if board.unresolved.remove(openid.as_str()).is_none() {
                break;
            }
            // A new version, so a writer that read the board before the
            // erasure cannot write the user back onto it.
            if self
                .compare_and_set(&OpenId::board(), version, &board, expires_at)
                .await?
            {
                erased.unresolved_board = 1;
                break;
            }
        }
        Ok(erased)
    }
}
/// The token item: `token` and `expires_at`.
#[async_trait]
impl TokenStore for DynamoDbStore {
    async fn get(&self, app_id: &str) -> Result<Option<CachedToken>, PortError> {
        match self.get_item(alone(format!("token#{app_id}"))).await? {
            Some(item) => Ok(Some(CachedToken {
                token: get_s(&item, "token")?,
                expires_at: get_n(&item, "expires_at")?,
            })),
            None => Ok(None),
        }
    }

    async fn put(&self, app_id: &str, token: &CachedToken) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("token#{app_id}")))
            .item("sk", s(ALONE))
            .item("token", s(token.token.clone()))
            .item("expires_at", n(token.expires_at))
            .item("ttl", n(token.expires_at + 86_400))
            .send()
            .await
            .map_err(|e| unavailable("token put", e))?;
        Ok(())
    }
}

fn window_key(openid: &str) -> (String, String) {
    (user(openid), "window".to_owned())
}

fn window_from(item: &Item) -> Result<ContactWindow, PortError> {
    Ok(ContactWindow {
        last_interaction: get_n(item, "last")?,
        sent: u32::try_from(get_n(item, "sent")?)
            .map_err(|_| PortError::Corrupt("attribute sent out of range".to_owned()))?,
        undeliverable: match item.get("undeliverable") {
            Some(_) => Some(get_n(item, "undeliverable")?),
            None => None,
        },
    })
}

impl DynamoDbStore {
    /// A conditional update of a window item: `Ok(false)` when the
    /// condition did not hold.
    async fn update_window(
        &self,
        op: &str,
        openid: &str,
        update: &str,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<bool, PortError> {
        let (pk, sk) = window_key(openid);
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#last", "last");
        for (name, value) in values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(op, e)),
        }
    }
}

/// The window item: `last`, `sent`, and `undeliverable` once WeChat
/// called the user unreachable. Each change is one conditional update, so
/// concurrent senders share the budget exactly.
#[async_trait]
impl ContactWindows for DynamoDbStore {
    async fn touch(&self, openid: &str, at: i64) -> Result<(), PortError> {
        self.update_window(
            "window touch",
            openid,
            "SET #last = :at, sent = :zero REMOVE undeliverable",
            "attribute_not_exists(pk) OR #last < :at",
            &[(":at", n(at)), (":zero", n(0))],
        )
        .await
        .map(drop)
    }

    async fn reserve(
        &self,
        openid: &str,
        now: i64,
        rules: WindowRules,
    ) -> Result<Reserved, PortError> {
        // A few rounds: a refusal is explained from a read, and a read that
        // says "granted" means the window changed in between.
        for _ in 0..4 {
            let (pk, sk) = window_key(openid);
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .update_expression("SET sent = sent + :one")
                .condition_expression(
                    "attribute_exists(pk) AND attribute_not_exists(undeliverable) \
                     AND #last > :closed AND sent < :budget",
                )
                .expression_attribute_names("#last", "last")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":closed", n(now.saturating_sub(rules.window_secs)))
                .expression_attribute_values(":budget", n(i64::from(rules.budget)))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match result {
                Ok(out) => {
                    let item = out.attributes.unwrap_or_default();
                    return Ok(Reserved::Granted {
                        window: get_n(&item, "last")?,
                    });
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
                {
                    let current = ContactWindows::get(self, openid).await?;
                    if let (Reserved::Refused(why), _) = reserve_in(current, now, rules) {
                        return Ok(Reserved::Refused(why));
                    }
                }
                Err(e) => return Err(unavailable("window reserve", e)),
            }
        }
        Err(PortError::Unavailable(
            "window reserve: the window kept changing".to_owned(),
        ))
    }

    async fn give_back(&self, openid: &str, window: i64) -> Result<(), PortError> {
        self.update_window(
            "window give back",
            openid,
            "SET sent = sent - :one",
            "#last = :window AND sent > :zero",
            &[(":one", n(1)), (":window", n(window)), (":zero", n(0))],
        )
        .await
        .map(drop)
    }

    async fn undeliverable(&self, openid: &str, window: i64, code: i64) -> Result<(), PortError> {
        self.update_window(
            "window undeliverable",
            openid,
            "SET undeliverable = :code",
            "#last = :window",
            &[(":code", n(code)), (":window", n(window))],
        )
        .await
        .map(drop)
    }

    async fn get(&self, openid: &str) -> Result<Option<ContactWindow>, PortError> {
        self.get_item(window_key(openid))
            .await?
            .map(|item| window_from(&item))
            .transpose()
    }
}
