//! HTTP adapter of the shop ports: a real shop's order, customer and
//! after-sales systems behind a small JSON API that the shop provides.
//!
//! | port call | request | answer |
//! |---|---|---|
//! | an order by number | `GET {base}/orders/{order_id}` | 200 with an [`Order`]; 404: no such order |
//! | a customer's orders | `GET {base}/customers/{openid}/orders` | 200 with `[Order]`, newest first |
//! | a customer's profile | `GET {base}/customers/{openid}` | 200 with a [`Profile`]; 404: unknown |
//! | open a ticket | `POST {base}/tickets` with a [`NewTicket`] and `Idempotency-Key: {request_key}` | 200 or 201 with `{"ticket_id": "..."}` |
//!
//! The JSON is exactly the serde form of those types (the demo shop's
//! files hold the same objects, one a line). Path segments are
//! percent-encoded. A shop that answers the same `request_key` twice must
//! return the first ticket: the port promises it and a retried WeChat
//! message relies on it.
//!
//! With a token, every request carries `Authorization: Bearer {token}`;
//! the token never appears in logs or errors. Every call has one deadline
//! (`timeout`, 1.5 s by default: the whole reply must fit in WeChat's 5 s),
//! covering the wait for a connection slot, the request and the body.
//! Anything but the answers above is [`PortError::Unavailable`] (a status,
//! a timeout, a refused connection) or [`PortError::Corrupt`] (a body that is
//! not the JSON promised), and the caller answers as for any failing store.
//!
//! The client (`ureq`, already used by `wca send`) is blocking, so calls run
//! on tokio's blocking pool. At most [`MAX_IN_FLIGHT`] run at once per
//! adapter: a slow shop then makes its own callers wait for a slot (within
//! their deadline) instead of taking every blocking thread from the
//! store.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::Semaphore;
use wca_core::{
    NewTicket, OpenId, Order, OrderSystem, PortError, Profile, ProfileStore, TicketSink,
};

use crate::LocalError;

/// How long a call may take when the configuration does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1500);

/// Calls to one shop API running at once, per adapter.
pub const MAX_IN_FLIGHT: usize = 32;

/// A shop API's base URL, client and credentials. Cloning shares them.
#[derive(Clone)]
pub struct HttpShop {
    base: String,
    agent: ureq::Agent,
    token: Option<Arc<str>>,
    timeout: Duration,
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for HttpShop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpShop")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What a shop answers when it opens a ticket.
#[derive(Deserialize)]
struct Opened {
    ticket_id: String,
}

/// Percent-encodes `segment` for one path segment: everything but ASCII
/// letters, digits and `-._~`.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// How a call went, before it is read as a port's answer.
struct Answered {
    status: u16,
    body: String,
}

impl HttpShop {
    /// An adapter for the API at `base` (`http://` or `https://`, no
    /// trailing slash needed).
    pub fn new(base: &str, timeout: Duration, token: Option<String>) -> Result<Self, LocalError> {
        let trimmed = base.trim_end_matches('/');
        let scheme_ok = trimmed.starts_with("http://") || trimmed.starts_with("https://");
        if !scheme_ok || trimmed.len() <= "https://".len() {
            return Err(LocalError::Config(format!(
                "shop API {base:?} is not an http:// or https:// URL"
            )));
        }
        if timeout.is_zero() {
            return Err(LocalError::Config(
                "shop API timeout must be more than 0 ms".to_owned(),
            ));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Ok(Self {
            base: trimmed.to_owned(),
            agent,
            token: token.filter(|t| !t.is_empty()).map(Arc::from),
            timeout,
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One call: `path` under the base, with a JSON `body` for a POST.
    async fn call(
        &self,
        what: &'static str,
        path: String,
        post: Option<(Vec<u8>, String)>,
    ) -> Result<Answered, PortError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let late = || {
            PortError::Unavailable(format!(
                "shop API {what}: no answer within {:?}",
                self.timeout
            ))
        };
        let permit = tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| late())?
            .map_err(|_| PortError::Unavailable(format!("shop API {what}: client closed")))?;
        let url = format!("{}{path}", self.base);
        let agent = self.agent.clone();
        let token = self.token.clone();
        let request = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let answer = match post {
                None => {
                    let mut req = agent.get(&url).header("Accept", "application/json");
                    if let Some(t) = &token {
                        req = req.header("Authorization", format!("Bearer {t}"));
                    }
                    req.call()
                }
                Some((body, key)) => {
                    let mut req = agent
                        .post(&url)
                        .header("Accept", "application/json")
                        .header("Content-Type", "application/json")
                        .header("Idempotency-Key", key);
                    if let Some(t) = &token {
                        req = req.header("Authorization", format!("Bearer {t}"));
                    }
                    req.send(&body[..])
                }
            };
            let mut response = answer?;
            let status = response.status().as_u16();
            let body = response.body_mut().read_to_string()?;
            Ok::<_, ureq::Error>(Answered { status, body })
        });
        match tokio::time::timeout_at(deadline, request).await {
            Err(_) => Err(late()),
            Ok(Err(join)) => Err(PortError::Unavailable(format!(
                "shop API {what}: call interrupted: {join}"
            ))),
            Ok(Ok(Err(ureq::Error::Timeout(_)))) => Err(late()),
            // ureq's errors name the host and the problem, never headers.
            Ok(Ok(Err(e))) => Err(PortError::Unavailable(format!("shop API {what}: {e}"))),
            Ok(Ok(Ok(answered))) => Ok(answered),
        }
    }

    /// Reads a 200 answer as `T`, a 404 as `None` when `absent_ok`.
    fn read<T: serde::de::DeserializeOwned>(
        what: &'static str,
        answered: Answered,
        absent_ok: bool,
    ) -> Result<Option<T>, PortError> {
        match answered.status {
            200 | 201 => serde_json::from_str(&answered.body)
                .map(Some)
                .map_err(|e| PortError::Corrupt(format!("shop API {what}: {e}"))),
            404 if absent_ok => Ok(None),
            status => Err(PortError::Unavailable(format!(
                "shop API {what}: HTTP {status}"
            ))),
        }
    }
}

#[async_trait]
impl OrderSystem for HttpShop {
    async fn order(&self, order_id: &str) -> Result<Option<Order>, PortError> {
        let what = "order";
        let answered = self
            .call(what, format!("/orders/{}", encode_segment(order_id)), None)
            .await?;
        let order: Option<Order> = Self::read(what, answered, true)?;
        match order {
            Some(o) if o.order_id != order_id => Err(PortError::Corrupt(format!(
                "shop API order: asked for {order_id}, answered {}",
                o.order_id
            ))),
            found => Ok(found),
        }
    }

    async fn orders_of(&self, openid: &OpenId) -> Result<Vec<Order>, PortError> {
        let what = "orders of a customer";
        let path = format!("/customers/{}/orders", encode_segment(openid.as_str()));
        let answered = self.call(what, path, None).await?;
        let orders: Vec<Order> = Self::read(what, answered, true)?.unwrap_or_default();
        // Another customer's order must never reach this one's replies.
        if orders.iter().any(|o| &o.openid != openid) {
            return Err(PortError::Corrupt(format!(
                "shop API {what}: the answer holds another customer's order"
            )));
        }
        Ok(orders)
    }
}

#[async_trait]
impl ProfileStore for HttpShop {
    async fn profile(&self, openid: &OpenId) -> Result<Option<Profile>, PortError> {
        let what = "profile";
        let path = format!("/customers/{}", encode_segment(openid.as_str()));
        let answered = self.call(what, path, None).await?;
        let profile: Option<Profile> = Self::read(what, answered, true)?;
        match profile {
            Some(p) if &p.openid != openid => Err(PortError::Corrupt(
                "shop API profile: the answer is another customer's".to_owned(),
            )),
            found => Ok(found),
        }
    }
}

#[async_trait]
impl TicketSink for HttpShop {
    async fn create(&self, ticket: &NewTicket) -> Result<String, PortError> {
        let what = "open a ticket";
        let body = serde_json::to_vec(ticket)
            .map_err(|e| PortError::Rejected(format!("ticket not serialisable: {e}")))?;
        let post = Some((body, ticket.request_key.clone()));
        let answered = self.call(what, "/tickets".to_owned(), post).await?;
        let opened: Option<Opened> = Self::read(what, answered, false)?;
        match opened {
            Some(o) if !o.ticket_id.trim().is_empty() => Ok(o.ticket_id),
            _ => Err(PortError::Corrupt(format!(
                "shop API {what}: empty ticket_id"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_segment("2026111305517"), "2026111305517");
        assert_eq!(encode_segment("o_a-b.c~d"), "o_a-b.c~d");
        assert_eq!(encode_segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(encode_segment("订"), "%E8%AE%A2");
    }

    #[test]
    fn a_base_that_is_not_an_http_url_or_a_zero_timeout_is_a_clear_error() {
        for bad in ["shop.example.com", "ftp://x", "https://", ""] {
            let err = HttpShop::new(bad, DEFAULT_TIMEOUT, None).expect_err(bad);
            assert!(err.to_string().contains("not an http"), "{err}");
        }
        let err = HttpShop::new("http://127.0.0.1:1", Duration::ZERO, None).expect_err("zero");
        assert!(err.to_string().contains("timeout"), "{err}");
    }

    #[test]
    fn the_token_is_not_in_the_debug_form() {
        let shop = HttpShop::new(
            "https://shop.example.com/wca/",
            DEFAULT_TIMEOUT,
            Some("s3cr3t".into()),
        )
        .expect("valid");
        let shown = format!("{shop:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert_eq!(shop.base(), "https://shop.example.com/wca");
    }
}
