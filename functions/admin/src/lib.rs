//! The admin API: campaigns under `/admin/`, on the same port (`wca
//! serve`) or API (Lambda) as the webhook.
//!
//! Every route needs `Authorization: Bearer <token>`, one of the named
//! admin tokens ([`Admins`]), compared in constant time; without one it
//! answers 401. Bodies are JSON; errors are `{"error": "..."}`.
//!
//! | route | does |
//! |---|---|
//! | `POST /admin/campaigns` | creates a campaign from [`NewCampaign`] JSON: 201 `{"id", "campaign"}` |
//! | `GET /admin/campaigns` | lists them |
//! | `GET /admin/campaigns/{id}` | one campaign, with its audit trail |
//! | `POST /admin/campaigns/{id}/pause` | stops it firing |
//! | `POST /admin/campaigns/{id}/resume` | lets it fire again |
//! | `POST /admin/campaigns/{id}/approve` | a second admin approves it (双人复核) |
//! | `POST /admin/campaigns/{id}/run-now` | starts an occurrence now |
//! | `GET /admin/campaigns/{id}/report` | the report of every occurrence |

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use wca_core::campaign::{CampaignError, Campaigns, NewCampaign};

/// The named admin tokens. `WCA_ADMIN_TOKEN` is the admin named `admin`;
/// `WCA_ADMIN_TOKENS` adds named ones, `alice=TOKEN,bob=TOKEN`, so that
/// the audit trail says who did what.
#[derive(Clone, Default)]
pub struct Admins(Vec<(String, Vec<u8>)>);

impl std::fmt::Debug for Admins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_tuple("Admins").field(&names).finish()
    }
}

/// Shortest token accepted: a guessable token guards nothing.
pub const MIN_TOKEN_LEN: usize = 16;

impl Admins {
    /// Reads `WCA_ADMIN_TOKEN` and `WCA_ADMIN_TOKENS` through `var`. The
    /// error names the problem, never a token.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut admins = Admins::default();
        if let Some(token) = var("WCA_ADMIN_TOKEN").filter(|t| !t.trim().is_empty()) {
            admins.add("admin", token.trim())?;
        }
        if let Some(list) = var("WCA_ADMIN_TOKENS") {
            for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let (name, token) = entry.split_once('=').ok_or_else(|| {
                    "WCA_ADMIN_TOKENS is NAME=TOKEN pairs separated by commas".to_owned()
                })?;
                admins.add(name.trim(), token.trim())?;
            }
        }
        Ok(admins)
    }

    /// Adds admin `name` with `token`.
    pub fn add(&mut self, name: &str, token: &str) -> Result<(), String> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "admin name {name:?}: use letters, digits, '-', '_' or '.'"
            ));
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "the token of admin {name:?} is shorter than {MIN_TOKEN_LEN} characters"
            ));
        }
        if self.0.iter().any(|(n, _)| n == name) {
            return Err(format!("admin {name:?} is named twice"));
        }
        // One token, one person: the audit trail must not guess.
        if let Some((other, _)) = self
            .0
            .iter()
            .find(|(_, t)| bool::from(t.as_slice().ct_eq(token.as_bytes())))
        {
            return Err(format!("admins {other:?} and {name:?} have the same token"));
        }
        self.0.push((name.to_owned(), token.as_bytes().to_vec()));
        Ok(())
    }

    /// Whether any admin is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The admin whose token `given` is. Every token is compared, each in
    /// constant time, so the time taken tells nothing about which one
    /// nearly matched.
    pub fn who(&self, given: &[u8]) -> Option<&str> {
        let mut found = None;
        for (name, token) in &self.0 {
            if bool::from(token.as_slice().ct_eq(given)) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// What the admin routes work on.
pub struct Admin {
    /// The campaigns.
    pub campaigns: Arc<Campaigns>,
    /// Who may call.
    pub admins: Admins,
    /// Woken after `run-now` (and changes), so a local runner starts at
    /// once rather than at the next tick.
    pub wake: Option<Arc<tokio::sync::Notify>>,
}

/// The `/admin/` routes.
pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/admin/campaigns", post(create).get(list))
        .route("/admin/campaigns/{id}", get(show))
        .route("/admin/campaigns/{id}/pause", post(pause))
        .route("/admin/campaigns/{id}/resume", post(resume))
        .route("/admin/campaigns/{id}/approve", post(approve))
        .route("/admin/campaigns/{id}/run-now", post(run_now))
        .route("/admin/campaigns/{id}/report", get(report))
        .with_state(admin)
}

fn answer(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    answer(status, &json!({ "error": message }))
}

fn failed(e: &CampaignError) -> Response {
    let status = match e {
        CampaignError::Invalid { .. } | CampaignError::Blocked { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        CampaignError::NotFound(_) => StatusCode::NOT_FOUND,
        CampaignError::Store(_) => {
            tracing::error!(error = %e, "admin API: the store failed");
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    // The store's own words (an AWS error, a file path) stay in the log.
    let message = match e {
        CampaignError::Store(_) => "the campaign store is unavailable; try again".to_owned(),
        _ => e.to_string(),
    };
    let mut body = json!({ "error": message });
    if let CampaignError::Blocked { words } = e {
        body["blocked_words"] = json!(words);
    }
    if let CampaignError::Invalid { field, .. } = e {
        body["field"] = json!(field);
    }
    answer(status, &body)
}

/// The admin calling, or the 401 to answer.
fn caller(admin: &Admin, headers: &HeaderMap) -> Result<String, Box<Response>> {
    if admin.admins.is_empty() {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "the admin API has no tokens: set WCA_ADMIN_TOKEN",
        )));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .map(<[u8]>::trim_ascii);
    match given.and_then(|g| admin.admins.who(g)) {
        Some(name) => Ok(name.to_owned()),
        None => Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token (Authorization: Bearer <WCA_ADMIN_TOKEN>)",
        ))),
    }
}

macro_rules! who {
    ($admin:expr, $headers:expr) => {
        match caller(&$admin, &$headers) {
            Ok(name) => name,
            Err(response) => return *response,
        }
    };
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

async fn create(State(admin): State<Arc<Admin>>, headers: HeaderMap, body: Bytes) -> Response {
    let by = who!(admin, headers);
    let new: NewCampaign = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the body is not a campaign: {e}"),
            );
        }
    };
    match admin.campaigns.create(new, &by).await {
        Ok(campaign) => {
            tracing::info!(campaign = %campaign.id, by, "campaign created");
            answer(
                StatusCode::CREATED,
                &json!({ "id": campaign.id, "campaign": to_json(&campaign) }),
            )
        }
        Err(e) => failed(&e),
    }
}

async fn list(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    let _ = who!(admin, headers);
    match admin.campaigns.store().list().await {
        Ok(all) => answer(StatusCode::OK, &json!({ "campaigns": to_json(&all) })),
        Err(e) => failed(&e.into()),
    }
}

async fn show(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let _ = who!(admin, headers);
    match admin.campaigns.get(&id).await {
        Ok(c) => answer(StatusCode::OK, &to_json(&c)),
        Err(e) => failed(&e),
    }
}

async fn pause(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let by = who!(admin, headers);
    match admin.campaigns.pause(&id, &by).await {
        Ok(c) => answer(StatusCode::OK, &to_json(&c)),
        Err(e) => failed(&e),
    }
}

async fn resume(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let by = who!(admin, headers);
    match admin.campaigns.resume(&id, &by).await {
        Ok(c) => {
            if let Some(wake) = &admin.wake {
                wake.notify_one();
            }
            answer(StatusCode::OK, &to_json(&c))
        }
        Err(e) => failed(&e),
    }
}

async fn approve(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let by = who!(admin, headers);
    match admin.campaigns.approve(&id, &by).await {
        Ok(c) => {
            tracing::info!(campaign = %id, by, "campaign approved");
            answer(StatusCode::OK, &to_json(&c))
        }
        Err(e) => failed(&e),
    }
}

async fn run_now(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let by = who!(admin, headers);
    match admin.campaigns.run_now(&id, &by).await {
        Ok(occurrence) => {
            if let Some(wake) = &admin.wake {
                wake.notify_one();
            }
            answer(
                StatusCode::ACCEPTED,
                &json!({ "id": id, "occurrence": occurrence.id(), "scheduled_at": occurrence.scheduled_at }),
            )
        }
        Err(e) => failed(&e),
    }
}

async fn report(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let _ = who!(admin, headers);
    match admin.campaigns.report(&id).await {
        Ok(r) => answer(StatusCode::OK, &to_json(&r)),
        Err(e) => failed(&e),
    }
}

#[cfg(test)]
mod tests;
