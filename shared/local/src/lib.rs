//! Embedded adapters for `wca serve`: the whole bot on a laptop, with no
//! cloud account.
//!
//! In Lambda the ports of `wca_core` are backed by DynamoDB and SQS. Here
//! they are backed by one [redb](https://docs.rs/redb) file and a tokio
//! channel:
//!
//! - [`RedbStore`] implements [`MessageArchive`](wca_core::MessageArchive),
//!   [`IdempotencyStore`](wca_core::IdempotencyStore),
//!   [`Counters`](wca_core::Counters), [`EventLog`](wca_core::EventLog),
//!   [`ConversationStore`](wca_core::ConversationStore) and
//!   [`CampaignStore`](wca_core::campaign::CampaignStore),
//!   with the same semantics as the memory adapters (the `wca_core::contract`
//!   suites run against it);
//! - [`event_channel`] gives an [`EventSink`](wca_core::EventSink) and the
//!   receiving end of a bounded queue, which [`spawn_analytics`] drains into
//!   counters;
//! - [`spawn_retention`] deletes expired data on a timer;
//! - [`JsonlOrders`], [`JsonlProfiles`] and [`JsonlTickets`] are the shop
//!   ports over JSONL files (the demo shop's data), and [`HttpShop`] the
//!   same ports over a shop's own JSON API.
//!
//! ```
//! use std::sync::Arc;
//! use wca_core::{Counters, Event, EventSink};
//! use wca_local::{RedbStore, event_channel, spawn_analytics};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let unique = format!("wca-local-doc-{}-{:?}", std::process::id(), std::time::SystemTime::now());
//! let dir = std::env::temp_dir().join(unique.replace([' ', ':', '{', '}', ','], "_"));
//! let store = RedbStore::open(&dir.join("wca.redb"))?;
//!
//! let (sink, rx) = event_channel(64);
//! let consumer = spawn_analytics(rx, Arc::new(store.clone()), jiff::tz::TimeZone::UTC);
//! let event = Event::message_received("msg:1", "o-user", "text", 1_700_000_000, None);
//! sink.emit(std::slice::from_ref(&event)).await?;
//! sink.emit(&[event]).await?; // delivered twice, counted once
//! drop(sink); // the consumer drains the queue and stops
//! consumer.await?;
//!
//! assert_eq!(store.get("msgs:day:2023-11-14").await?, 1);
//! # drop(store);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

mod analytics;
mod campaigns;
mod channel;
mod error;
mod outbound;
mod retention;
mod shop_files;
mod shop_http;
mod store;

pub use analytics::{CountingSink, spawn_analytics};
pub use channel::{ChannelEventSink, event_channel};
pub use error::LocalError;
pub use retention::spawn_retention;
pub use shop_files::{JsonlOrders, JsonlProfiles, JsonlTickets};
pub use shop_http::{DEFAULT_TIMEOUT as DEFAULT_SHOP_TIMEOUT, HttpShop, MAX_IN_FLIGHT};
pub use store::{Purged, RedbCommit, RedbStore};
