//! JSONL file adapters of the shop ports: the demo shop's `orders.jsonl`
//! and `users.jsonl`, and a tickets file that after-sales requests are
//! appended to.
//!
//! Orders and profiles are read once, when the adapter is built, and every
//! malformed line is an error naming the file and the line, so a bad demo
//! file stops `wca serve` at start-up instead of confusing a customer later.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wca_core::{
    NewTicket, OpenId, Order, OrderSystem, PortError, Profile, ProfileStore, Ticket, TicketSink,
};

use crate::LocalError;

/// Parses every non-blank line of `path` as a `T`.
fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, LocalError> {
    let text = std::fs::read_to_string(path).map_err(|source| LocalError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    parse_jsonl(&text, &path.display().to_string())
}

/// Parses JSONL text; `origin` names it in errors.
fn parse_jsonl<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
) -> Result<Vec<T>, LocalError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(line).map_err(|e| LocalError::BadLine {
            origin: origin.to_owned(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        out.push(value);
    }
    Ok(out)
}

/// [`OrderSystem`] over a JSONL file of [`Order`]s.
#[derive(Debug, Clone, Default)]
pub struct JsonlOrders {
    by_id: HashMap<String, Order>,
    /// Order ids per customer, newest first.
    by_openid: HashMap<OpenId, Vec<String>>,
}

impl JsonlOrders {
    /// Reads the file (`orders.jsonl` of the demo shop).
    pub fn load(path: &Path) -> Result<Self, LocalError> {
        Self::from_orders(read_jsonl(path)?)
    }

    /// Parses JSONL text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, LocalError> {
        Self::from_orders(parse_jsonl(text, origin)?)
    }

    fn from_orders(mut orders: Vec<Order>) -> Result<Self, LocalError> {
        // ISO 8601 strings with the same offset sort as their instants.
        orders.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        let mut by_id = HashMap::new();
        let mut by_openid: HashMap<OpenId, Vec<String>> = HashMap::new();
        for order in orders {
            by_openid
                .entry(order.openid.clone())
                .or_default()
                .push(order.order_id.clone());
            if let Some(dup) = by_id.insert(order.order_id.clone(), order) {
                return Err(LocalError::Corrupt(format!(
                    "order {} appears twice",
                    dup.order_id
                )));
            }
        }
        Ok(Self { by_id, by_openid })
    }
}

#[async_trait]
impl OrderSystem for JsonlOrders {
    async fn order(&self, order_id: &str) -> Result<Option<Order>, PortError> {
        Ok(self.by_id.get(order_id).cloned())
    }

    async fn orders_of(&self, openid: &OpenId) -> Result<Vec<Order>, PortError> {
        Ok(self
            .by_openid
            .get(openid)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id).cloned())
            .collect())
    }
}

/// [`ProfileStore`] over a JSONL file of [`Profile`]s.
#[derive(Debug, Clone, Default)]
pub struct JsonlProfiles {
    by_openid: HashMap<OpenId, Profile>,
}

impl JsonlProfiles {
    /// Reads the file (`users.jsonl` of the demo shop).
    pub fn load(path: &Path) -> Result<Self, LocalError> {
        Ok(Self::from_profiles(read_jsonl(path)?))
    }

    /// Parses JSONL text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, LocalError> {
        Ok(Self::from_profiles(parse_jsonl(text, origin)?))
    }

    /// Every profile, by OpenID.
    pub fn all(&self) -> Vec<Profile> {
        let mut all: Vec<Profile> = self.by_openid.values().cloned().collect();
        all.sort_by(|a, b| a.openid.as_str().cmp(b.openid.as_str()));
        all
    }

    fn from_profiles(profiles: Vec<Profile>) -> Self {
        Self {
            by_openid: profiles
                .into_iter()
                .map(|p| (p.openid.clone(), p))
                .collect(),
        }
    }
}

#[async_trait]
impl ProfileStore for JsonlProfiles {
    async fn profile(&self, openid: &OpenId) -> Result<Option<Profile>, PortError> {
        Ok(self.by_openid.get(openid).cloned())
    }
}

#[async_trait]
impl wca_core::campaign::ProfileDirectory for JsonlProfiles {
    async fn profiles_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Profile>, PortError> {
        // A file of profiles is small enough to sort per page.
        let mut page: Vec<&Profile> = self
            .by_openid
            .values()
            .filter(|p| after.is_none_or(|a| p.openid.as_str() > a))
            .collect();
        page.sort_by(|a, b| a.openid.as_str().cmp(b.openid.as_str()));
        Ok(page.into_iter().take(limit).cloned().collect())
    }
}

/// One line of the tickets file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TicketLine {
    ticket_id: String,
    #[serde(flatten)]
    ticket: NewTicket,
}

/// [`TicketSink`] that appends each ticket as a JSON line to a file (and,
/// without a file, keeps them in memory). Ticket ids are `AS` and a
/// sequence number; a request key seen before returns its first ticket.
#[derive(Debug)]
pub struct JsonlTickets {
    path: Option<PathBuf>,
    state: Mutex<TicketBook>,
}

#[derive(Debug, Default)]
struct TicketBook {
    by_request: HashMap<String, String>,
    issued: Vec<TicketLine>,
    /// The number of the next ticket: one past the highest issued, so a
    /// number freed by an erased ticket is never handed out again.
    next: u64,
}

/// A line of the tickets file: a ticket, or what is left of one whose
/// customer had their data erased (its id only, so the number is never
/// handed out again).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum FileLine {
    Issued(TicketLine),
    Erased { ticket_id: String, erased: bool },
}

impl FileLine {
    fn ticket_id(&self) -> &str {
        match self {
            FileLine::Issued(line) => &line.ticket_id,
            FileLine::Erased { ticket_id, .. } => ticket_id,
        }
    }
}

/// The number of a ticket id `AS000042`, if it has one.
fn ticket_number(id: &str) -> Option<u64> {
    id.strip_prefix("AS")?.parse().ok()
}

impl JsonlTickets {
    /// Tickets kept in memory only.
    pub fn in_memory() -> Self {
        Self {
            path: None,
            state: Mutex::new(TicketBook {
                next: 1,
                ..TicketBook::default()
            }),
        }
    }

    /// Tickets appended to `path`, continuing the numbering of the tickets
    /// already there (the file is created when missing).
    pub fn open(path: &Path) -> Result<Self, LocalError> {
        let existing: Vec<FileLine> = if path.exists() {
            read_jsonl(path)?
        } else {
            Vec::new()
        };
        let mut book = TicketBook {
            next: 1,
            ..TicketBook::default()
        };
        for line in existing {
            let number = ticket_number(line.ticket_id()).unwrap_or(0);
            book.next = book.next.max(number.saturating_add(1));
            if let FileLine::Issued(line) = line {
                book.by_request
                    .insert(line.ticket.request_key.clone(), line.ticket_id.clone());
                book.issued.push(line);
            }
        }
        Ok(Self {
            path: Some(path.to_owned()),
            state: Mutex::new(book),
        })
    }

    /// The tickets opened so far, oldest first, as `(ticket id, ticket)`.
    pub fn tickets(&self) -> Vec<(String, NewTicket)> {
        let book = self.state.lock().unwrap_or_else(|p| p.into_inner());
        book.issued
            .iter()
            .map(|l| (l.ticket_id.clone(), l.ticket.clone()))
            .collect()
    }
}

#[async_trait]
impl TicketSink for JsonlTickets {
    async fn create(&self, ticket: &NewTicket) -> Result<String, PortError> {
        let mut book = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = book.by_request.get(&ticket.request_key) {
            return Ok(id.clone());
        }
        let ticket_id = format!("AS{:06}", book.next);
        let line = TicketLine {
            ticket_id: ticket_id.clone(),
            ticket: ticket.clone(),
        };
        if let Some(path) = &self.path {
            let mut json = serde_json::to_string(&line)
                .map_err(|e| PortError::Rejected(format!("ticket not serialisable: {e}")))?;
            json.push('\n');
            // Appended and flushed before the id is handed out: a ticket id
            // the customer was told always exists in the file.
            let mut file = std::fs::OpenOptions::new();
            file.create(true).append(true);
            // Tickets hold customers' words: their owner's only.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
            file.open(path)
                .and_then(|mut f| f.write_all(json.as_bytes()).and_then(|()| f.sync_data()))
                .map_err(|e| PortError::Unavailable(format!("tickets file: {}", e.kind())))?;
        }
        book.by_request
            .insert(ticket.request_key.clone(), ticket_id.clone());
        book.issued.push(line);
        book.next += 1;
        Ok(ticket_id)
    }
}

impl JsonlTickets {
    /// The tickets of `openid` in the file at `path` (none when it does
    /// not exist), oldest first.
    pub fn tickets_of(path: &Path, openid: &OpenId) -> Result<Vec<Ticket>, LocalError> {
        if !path.exists() {
            return Ok(Vec::new());
        }
        let lines: Vec<FileLine> = read_jsonl(path)?;
        Ok(lines
            .into_iter()
            .filter_map(|line| match line {
                FileLine::Issued(line) => Some(line),
                FileLine::Erased { .. } => None,
            })
            .filter(|l| &l.ticket.openid == openid)
            .map(|l| Ticket {
                ticket_id: l.ticket_id,
                request: l.ticket,
            })
            .collect())
    }

    /// Removes the tickets of `openid` from the file at `path`, keeping
    /// every other line as it was; returns how many. Each leaves its id
    /// behind (`{"ticket_id": "AS000042", "erased": true}`), so its number
    /// is not given to another ticket. The file is replaced
    /// whole (written beside it, synced, renamed over it), so a crash
    /// leaves the old file or the new one, never half of one. Nothing may
    /// be appending to it meanwhile: stop `wca serve` first.
    pub fn erase_user(path: &Path, openid: &OpenId) -> Result<u64, LocalError> {
        if !path.exists() {
            return Ok(0);
        }
        let read = |source| LocalError::ReadFile {
            path: path.to_owned(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(read)?;
        let mut kept = String::with_capacity(text.len());
        let mut erased = 0;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed: FileLine = serde_json::from_str(line).map_err(|e| LocalError::BadLine {
                origin: path.display().to_string(),
                line: i + 1,
                reason: e.to_string(),
            })?;
            match parsed {
                FileLine::Issued(issued) if &issued.ticket.openid == openid => {
                    let gone = FileLine::Erased {
                        ticket_id: issued.ticket_id,
                        erased: true,
                    };
                    let json = serde_json::to_string(&gone)
                        .map_err(|e| LocalError::Corrupt(format!("tickets: {e}")))?;
                    kept.push_str(&json);
                    erased += 1;
                }
                _ => kept.push_str(line),
            }
            kept.push('\n');
        }
        if erased == 0 {
            return Ok(0);
        }
        let temp = path.with_extension("jsonl.erasing");
        let mut file = std::fs::OpenOptions::new();
        file.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
        file.open(&temp)
            .and_then(|mut f| f.write_all(kept.as_bytes()).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&temp, path))
            .map_err(read)?;
        Ok(erased)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDERS: &str = r#"{"order_id": "2026111500001", "openid": "o_a", "status": "shipped", "items": [{"sku": "S", "name": "围巾", "qty": 1, "price_cents": 5900}], "courier": "中通", "tracking_no": "75300000000001", "created_at": "2026-11-15T10:00:00+08:00", "shipped_at": "2026-11-16T10:00:00+08:00", "delivered_at": null, "address_city": "杭州"}
{"order_id": "2026111800002", "openid": "o_a", "status": "paid", "items": [], "courier": null, "tracking_no": null, "created_at": "2026-11-18T10:00:00+08:00", "shipped_at": null, "delivered_at": null, "address_city": "杭州"}
"#;

    fn openid(s: &str) -> OpenId {
        OpenId::parse(s).expect("valid openid")
    }

    #[tokio::test]
    async fn orders_are_found_by_number_and_listed_newest_first_per_customer() {
        let orders = JsonlOrders::parse(ORDERS, "orders.jsonl").expect("parse");
        let mine = orders.orders_of(&openid("o_a")).await.expect("list");
        let ids: Vec<&str> = mine.iter().map(|o| o.order_id.as_str()).collect();
        assert_eq!(ids, ["2026111800002", "2026111500001"]);
        assert!(
            orders
                .orders_of(&openid("o_b"))
                .await
                .expect("list")
                .is_empty()
        );
        let one = orders.order("2026111500001").await.expect("get");
        assert_eq!(one.and_then(|o| o.courier).as_deref(), Some("中通"));
    }

    #[test]
    fn a_bad_line_is_reported_with_its_file_and_line() {
        let text = format!("{ORDERS}{{\"order_id\": 5}}\n");
        let err = JsonlOrders::parse(&text, "orders.jsonl").expect_err("bad line");
        assert!(err.to_string().starts_with("orders.jsonl:3: "), "{err}");
        let err = JsonlProfiles::parse("{\"openid\": \"bad id\", \"name\": \"x\"}", "users.jsonl")
            .expect_err("bad openid");
        assert!(err.to_string().starts_with("users.jsonl:1: "), "{err}");
    }

    #[tokio::test]
    async fn tickets_are_numbered_kept_across_reopening_and_created_once_per_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tickets.jsonl");
        let ticket = |key: &str| NewTicket {
            openid: openid("o_a"),
            order_id: "2026111500001".into(),
            kind: "return".into(),
            reason: "尺码不合适".into(),
            created_at: 1_763_600_000,
            request_key: key.into(),
        };
        let sink = JsonlTickets::open(&path).expect("open");
        let first = sink.create(&ticket("msg:1")).await.expect("create");
        assert_eq!(
            sink.create(&ticket("msg:1")).await.expect("again"),
            first,
            "a retry of the same request gets the same ticket"
        );
        drop(sink);
        let sink = JsonlTickets::open(&path).expect("reopen");
        assert_eq!(sink.create(&ticket("msg:1")).await.expect("again"), first);
        let second = sink.create(&ticket("msg:2")).await.expect("create");
        assert_ne!(second, first);
        assert_eq!(sink.tickets().len(), 2);
        let lines = std::fs::read_to_string(&path).expect("read");
        assert_eq!(lines.lines().count(), 2, "{lines}");
    }

    #[tokio::test]
    async fn erasing_a_users_tickets_keeps_the_others_and_never_reuses_a_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tickets.jsonl");
        let ticket = |who: &str, key: &str| NewTicket {
            openid: openid(who),
            order_id: "2026111500001".into(),
            kind: "return".into(),
            reason: "尺码不合适".into(),
            created_at: 1_763_600_000,
            request_key: key.into(),
        };
        let sink = JsonlTickets::open(&path).expect("open");
        sink.create(&ticket("o_b", "msg:1")).await.expect("create");
        sink.create(&ticket("o_a", "msg:2")).await.expect("create");
        let kept = sink.create(&ticket("o_b", "msg:3")).await.expect("create");
        let gone = sink.create(&ticket("o_a", "msg:4")).await.expect("create");
        drop(sink);

        let theirs = JsonlTickets::tickets_of(&path, &openid("o_a")).expect("read");
        assert_eq!(theirs.len(), 2);
        assert_eq!(theirs[1].ticket_id, gone);
        assert_eq!(
            JsonlTickets::erase_user(&path, &openid("o_a")).expect("erase"),
            2
        );
        assert_eq!(
            JsonlTickets::erase_user(&path, &openid("o_a")).expect("again"),
            0
        );
        assert!(
            JsonlTickets::tickets_of(&path, &openid("o_a"))
                .expect("read")
                .is_empty()
        );
        let others = JsonlTickets::tickets_of(&path, &openid("o_b")).expect("read");
        assert_eq!(others.len(), 2);
        assert_eq!(others[1].ticket_id, kept);

        let sink = JsonlTickets::open(&path).expect("reopen");
        let next = sink.create(&ticket("o_c", "msg:5")).await.expect("create");
        assert_eq!(
            next, "AS000005",
            "the erased ticket's number is not handed out again"
        );
    }
}
