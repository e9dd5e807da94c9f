//! The WeChat webhook: `GET /wechat` answers WeChat's URL verification,
//! `POST /wechat` receives every message and event.
//!
//! The logic is in [`handler::Webhook`] (no HTTP types), the HTTP mapping in
//! [`router`]. The Lambda binary (`src/main.rs`) runs the router under
//! `lambda_http`; `wca serve` mounts the same router on a local port.
//!
//! ```
//! use std::sync::Arc;
//! use wca_core::{SystemClock, memory::*};
//! use wca_webhook::{Ports, Webhook, router, settings::{FileSettings, Settings}};
//!
//! let settings = Settings::resolve(FileSettings::default(), &[("WECHAT_TOKEN", "myToken1")], None)
//!     .expect("settings");
//! let ports = Ports {
//!     archive: Arc::new(MemoryArchive::default()),
//!     dedup: Arc::new(MemoryIdempotency::default()),
//!     events: Arc::new(MemoryEventSink::default()),
//!     clock: Arc::new(SystemClock),
//!     conversations: Arc::new(MemoryConversationStore::default()),
//!     shop: wca_dialog::Shop::default(),
//!     commit: None,
//! };
//! let app: axum::Router = router(Webhook::new(settings, ports));
//! ```

pub mod handler;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod settings;
pub mod shop;

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
pub use handler::{
    AsyncReplies, Ports, REFUSAL_WINDOW_SECS, RespondError, Responded, Webhook, WebhookResponse,
};
use wca_wechat::callback::Query as WxQuery;

/// The path WeChat is pointed at.
pub const PATH: &str = "/wechat";

impl IntoResponse for WebhookResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            [(header::CONTENT_TYPE, self.content_type)],
            self.body,
        )
            .into_response()
    }
}

async fn get_wechat(State(hook): State<Webhook>, Query(q): Query<WxQuery>) -> WebhookResponse {
    hook.handle_get(&q).await
}

async fn post_wechat(
    State(hook): State<Webhook>,
    Query(q): Query<WxQuery>,
    body: Bytes,
) -> WebhookResponse {
    hook.handle_post_detached(q, body).await
}

/// The HTTP routes: `GET|POST /wechat`. Bodies over the configured limit
/// are refused with 413 before they are read in full.
pub fn router(hook: Webhook) -> Router {
    let limit = hook.settings().callback.max_body_bytes;
    Router::new()
        .route(PATH, get(get_wechat).post(post_wechat))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(hook)
}
