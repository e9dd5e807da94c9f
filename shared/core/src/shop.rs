//! The shop's own systems, as the dialog sees them: orders
//! ([`OrderSystem`]), after-sales tickets ([`TicketSink`]) and customer
//! profiles ([`ProfileStore`]).
//!
//! A shop already has these systems; wca reaches them through these ports,
//! with adapters for JSONL files (the demo shop, tests), the shop's own
//! HTTP API, and DynamoDB (profiles and tickets). The types follow the demo shop's data
//! (`examples/demo-shop/README.md`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{OpenId, PortError};

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// 待付款
    PendingPayment,
    /// 已付款，待发货
    Paid,
    /// 已发货
    Shipped,
    /// 已签收
    Delivered,
    /// 退款中
    Refunding,
    /// 已退款
    Refunded,
    /// 已取消
    Cancelled,
    /// A status this version of wca does not know (a shop's own, such as
    /// `partially_shipped`): shown as 处理中, and a return is left to a
    /// person.
    #[serde(other)]
    Other,
}

impl OrderStatus {
    /// The status as customers are shown it.
    pub fn display_zh(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "待付款",
            OrderStatus::Paid => "已付款，待发货",
            OrderStatus::Shipped => "已发货",
            OrderStatus::Delivered => "已签收",
            OrderStatus::Refunding => "退款中",
            OrderStatus::Refunded => "已退款",
            OrderStatus::Cancelled => "已取消",
            OrderStatus::Other => "处理中",
        }
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The shop's SKU.
    pub sku: String,
    /// The product as the customer saw it.
    pub name: String,
    /// How many.
    pub qty: u32,
    /// Unit price in fen (6900 = 69.00 元).
    pub price_cents: u64,
}

/// An order, as the shop's order system reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// 13 digits in the demo shop: `2026`, `MMDD`, a 5-digit serial.
    pub order_id: String,
    /// The customer who placed it: its details are for them only.
    pub openid: OpenId,
    /// Where it stands.
    pub status: OrderStatus,
    /// What was ordered.
    pub items: Vec<OrderItem>,
    /// `顺丰`, `中通`, ...; `None` until shipped.
    pub courier: Option<String>,
    /// The courier's tracking number; `None` until shipped.
    pub tracking_no: Option<String>,
    /// ISO 8601 with offset.
    pub created_at: String,
    /// ISO 8601 with offset; `None` until shipped.
    pub shipped_at: Option<String>,
    /// ISO 8601 with offset; `None` until delivered.
    pub delivered_at: Option<String>,
    /// The city of the delivery address.
    pub address_city: String,
}

/// What the shop knows about a customer, for personal replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The customer.
    pub openid: OpenId,
    /// The name or nickname they gave the shop.
    pub name: String,
    /// Membership level, 0 (普通会员) to 3 (黑金).
    #[serde(default)]
    pub vip_level: u8,
    /// The operator's tags (`VIP`, `新客`, ...).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Their most recent order.
    #[serde(default)]
    pub last_order_id: Option<String>,
}

/// An after-sales ticket to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTicket {
    /// Who asked.
    pub openid: OpenId,
    /// The order it is about.
    pub order_id: String,
    /// What kind of request (`return`, `exchange`, ...).
    pub kind: String,
    /// The customer's reason, in their words.
    pub reason: String,
    /// When it was asked (Unix seconds).
    pub created_at: i64,
    /// The message that completed the request: creating a ticket twice for
    /// the same message (a retry) must return the same ticket.
    pub request_key: String,
}

/// A ticket that was opened: its id and the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The id the customer was told (`AS000001`).
    pub ticket_id: String,
    /// What was asked (its fields written beside `ticket_id`).
    #[serde(flatten)]
    pub request: NewTicket,
}

/// The shop's order system.
#[async_trait]
pub trait OrderSystem: Send + Sync {
    /// The order with this number, whoever placed it.
    async fn order(&self, order_id: &str) -> Result<Option<Order>, PortError>;
    /// The orders a customer placed, newest first.
    async fn orders_of(&self, openid: &OpenId) -> Result<Vec<Order>, PortError>;
}

/// Where after-sales tickets go.
#[async_trait]
pub trait TicketSink: Send + Sync {
    /// Opens a ticket and returns its id; the same `request_key` always
    /// returns the ticket it opened first.
    async fn create(&self, ticket: &NewTicket) -> Result<String, PortError>;
}

/// Customer profiles.
#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// The customer's profile, if the shop knows them.
    async fn profile(&self, openid: &OpenId) -> Result<Option<Profile>, PortError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_this_version_does_not_know_still_reads_as_an_order() {
        let status: OrderStatus = serde_json::from_str("\"partially_shipped\"").expect("reads");
        assert_eq!(status, OrderStatus::Other);
        assert_eq!(status.display_zh(), "处理中");
        let known: OrderStatus = serde_json::from_str("\"shipped\"").expect("reads");
        assert_eq!(known, OrderStatus::Shipped);
    }
}
