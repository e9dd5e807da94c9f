//! Domain types, events and ports of wca, with in-memory adapters.
//!
//! This crate is the inside of the hexagon: it knows nothing of AWS, HTTP,
//! WeChat's wire format or tract. The functions and `wca serve` talk to
//! storage and queues only through the ports here ([`MessageArchive`],
//! [`IdempotencyStore`], [`Counters`], [`EventSink`], [`Clock`]), so the same
//! handler runs on DynamoDB + SQS in Lambda, on redb on a laptop, and on the
//! memory adapters in tests.
//!
//! ```
//! use wca_core::{analytics, Event, EventKind, memory::MemoryCounters, Counters};
//!
//! # tokio_test_block_on(async {
//! let counters = MemoryCounters::default();
//! let event = Event::message_received("msg:1", "o-user", "text", 1_700_000_000, None);
//! let tz = jiff::tz::TimeZone::UTC;
//! assert!(analytics::apply(&counters, &event, &tz).await.unwrap());
//! // Delivered again (an SQS retry): counted once.
//! assert!(!analytics::apply(&counters, &event, &tz).await.unwrap());
//! assert_eq!(counters.get("msgs:day:2023-11-14").await.unwrap(), 1);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

pub mod analytics;
pub mod campaign;
pub mod clock;
pub mod commit;
pub mod contract;
pub mod conversation;
pub mod event;
pub mod faults;
pub mod memory;
pub mod outbound;
pub mod ports;
pub mod shop;

pub use clock::{Clock, ManualClock, SystemClock};
pub use commit::{
    Committed, ConversationWrite, MessageCommit, MessageWrites, SequentialCommit,
    StagedConversations,
};
pub use conversation::{
    BOARD_KEY, ConversationState, ConversationStore, FlowState, IdError, LastTurn, OpenId,
    Outgoing, Versioned,
};
pub use event::{ComplianceWord, Direction, Event, EventKind, HandoffReason, Understanding};
pub use outbound::{
    ApiError, CachedToken, ContactWindow, ContactWindows, CustomMessage, Failure, MessageQueue,
    Outbound, OutboundScreen, Outbox, OutboxEntry, Refusal, Reserved, TokenStore, WeChatApi,
    WindowRules,
};
pub use ports::{
    Archived, ArchivedMessage, ArchivedReply, Begin, Counters, Erased, EventLog, EventSink,
    HeldConversation, IdempotencyStore, MessageArchive, PortError, UserData, UserRecord,
};
pub use shop::{
    NewTicket, Order, OrderItem, OrderStatus, OrderSystem, Profile, ProfileStore, Ticket,
    TicketSink,
};
