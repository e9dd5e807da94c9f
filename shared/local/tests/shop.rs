//! The shop ports' adapters under one contract: the JSONL files, and the
//! HTTP adapter against a stand-in shop API (a real HTTP server on
//! 127.0.0.1 serving the demo shop's data).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use wca_core::{
    NewTicket, OpenId, Order, OrderSystem, PortError, Profile, ProfileStore, TicketSink, contract,
};
use wca_local::{HttpShop, JsonlOrders, JsonlProfiles, JsonlTickets};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo-shop");
const TOKEN: &str = "shop-s3cr3t-token";

fn demo_orders() -> Vec<Order> {
    let text = std::fs::read_to_string(Path::new(DEMO).join("orders.jsonl")).expect("orders");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("order"))
        .collect()
}

fn demo_profiles() -> Vec<Profile> {
    let text = std::fs::read_to_string(Path::new(DEMO).join("users.jsonl")).expect("users");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("profile"))
        .collect()
}

/// The stand-in shop: the demo data behind the API the adapter speaks.
#[derive(Clone)]
struct StandIn {
    orders: Arc<JsonlOrders>,
    profiles: Arc<JsonlProfiles>,
    tickets: Arc<JsonlTickets>,
}

type Answer = (StatusCode, String);

fn json<T: serde::Serialize>(value: Option<T>) -> Answer {
    match value {
        Some(v) => (StatusCode::OK, serde_json::to_string(&v).expect("json")),
        None => (StatusCode::NOT_FOUND, "{}".to_owned()),
    }
}

fn authorised(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}

async fn order(
    State(s): State<StandIn>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Answer {
    if !authorised(&headers) {
        return (StatusCode::UNAUTHORIZED, String::new());
    }
    json(s.orders.order(&id).await.expect("order"))
}

/// The customer a `/customers/{openid}` call is about, once authorised.
fn customer(headers: &HeaderMap, openid: &str) -> Result<OpenId, Answer> {
    if !authorised(headers) {
        return Err((StatusCode::UNAUTHORIZED, String::new()));
    }
    OpenId::parse(openid).map_err(|_| (StatusCode::BAD_REQUEST, String::new()))
}

async fn orders_of(
    State(s): State<StandIn>,
    headers: HeaderMap,
    UrlPath(openid): UrlPath<String>,
) -> Answer {
    match customer(&headers, &openid) {
        Ok(openid) => json(Some(s.orders.orders_of(&openid).await.expect("orders"))),
        Err(refused) => refused,
    }
}

async fn profile(
    State(s): State<StandIn>,
    headers: HeaderMap,
    UrlPath(openid): UrlPath<String>,
) -> Answer {
    match customer(&headers, &openid) {
        Ok(openid) => json(s.profiles.profile(&openid).await.expect("profile")),
        Err(refused) => refused,
    }
}

async fn ticket(State(s): State<StandIn>, headers: HeaderMap, body: String) -> Answer {
    if !authorised(&headers) {
        return (StatusCode::UNAUTHORIZED, String::new());
    }
    let Ok(ticket) = serde_json::from_str::<NewTicket>(&body) else {
        return (StatusCode::BAD_REQUEST, String::new());
    };
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    if key != Some(ticket.request_key.as_str()) {
        return (StatusCode::BAD_REQUEST, "Idempotency-Key".to_owned());
    }
    let id = s.tickets.create(&ticket).await.expect("create");
    (
        StatusCode::CREATED,
        serde_json::json!({ "ticket_id": id }).to_string(),
    )
}

/// Every order to every customer: a broken shop API.
async fn leaky(State(s): State<StandIn>) -> Answer {
    let mut all = Vec::new();
    for order in demo_orders() {
        all.extend(s.orders.order(&order.order_id).await.expect("order"));
    }
    json(Some(all))
}

/// Starts the stand-in on a free port; returns its base URL.
async fn stand_in() -> String {
    let state = StandIn {
        orders: Arc::new(JsonlOrders::load(&Path::new(DEMO).join("orders.jsonl")).expect("orders")),
        profiles: Arc::new(
            JsonlProfiles::load(&Path::new(DEMO).join("users.jsonl")).expect("users"),
        ),
        tickets: Arc::new(JsonlTickets::in_memory()),
    };
    let api = Router::new()
        .route("/orders/{id}", get(order))
        .route("/customers/{openid}/orders", get(orders_of))
        .route("/customers/{openid}", get(profile))
        .route("/tickets", post(ticket));
    let app = Router::new()
        .nest("/api", api)
        .route("/leaky/customers/{openid}/orders", get(leaky))
        .route(
            "/garbled/orders/{id}",
            get(|| async { (StatusCode::OK, "<html>not json</html>".to_owned()) }),
        )
        .route(
            "/down/orders/{id}",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, String::new()) }),
        )
        .route(
            "/slow/orders/{id}",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                (StatusCode::OK, "null".to_owned())
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn client(base: &str, timeout_ms: u64, token: Option<&str>) -> HttpShop {
    HttpShop::new(
        base,
        Duration::from_millis(timeout_ms),
        token.map(str::to_owned),
    )
    .expect("valid base")
}

#[tokio::test]
async fn jsonl_orders_keep_the_order_system_contract() {
    let orders = JsonlOrders::load(&Path::new(DEMO).join("orders.jsonl")).expect("orders");
    contract::order_system(&orders, &demo_orders()).await;
}

#[tokio::test]
async fn jsonl_profiles_keep_the_profile_contract() {
    let profiles = JsonlProfiles::load(&Path::new(DEMO).join("users.jsonl")).expect("users");
    contract::profile_store(&profiles, &demo_profiles()).await;
}

#[tokio::test]
async fn jsonl_tickets_keep_the_ticket_contract() {
    contract::ticket_sink(Arc::new(JsonlTickets::in_memory())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_adapter_keeps_the_order_profile_and_ticket_contracts() {
    let base = stand_in().await;
    let shop = client(&format!("{base}/api"), 3000, Some(TOKEN));
    contract::order_system(&shop, &demo_orders()).await;
    contract::profile_store(&shop, &demo_profiles()).await;
    contract::ticket_sink(Arc::new(shop)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_unavailable_and_the_token_is_not_in_the_error() {
    let base = stand_in().await;
    let shop = client(&format!("{base}/api"), 3000, Some("wrong-token-xyz"));
    let err = shop.order("2026111305517").await.expect_err("refused");
    assert!(matches!(err, PortError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("HTTP 401"), "{err}");
    assert!(!err.to_string().contains("wrong-token-xyz"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_that_answers_another_customers_order_is_refused_as_corrupt() {
    let base = stand_in().await;
    let shop = client(&format!("{base}/leaky"), 3000, None);
    let me = OpenId::parse("o_demo_user01").expect("openid");
    let err = shop.orders_of(&me).await.expect_err("leak refused");
    assert!(matches!(err, PortError::Corrupt(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_bodies_are_corrupt_and_errors_and_silence_are_unavailable() {
    let base = stand_in().await;
    let err = client(&format!("{base}/garbled"), 3000, None)
        .order("1")
        .await
        .expect_err("garbled");
    assert!(matches!(err, PortError::Corrupt(_)), "{err}");
    let err = client(&format!("{base}/down"), 3000, None)
        .order("1")
        .await
        .expect_err("down");
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    let err = client(&format!("{base}/slow"), 200, None)
        .order("1")
        .await
        .expect_err("slow");
    assert!(matches!(err, PortError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("no answer within"), "{err}");
    // Nothing listens on port 9 (discard) here.
    let err = client("http://127.0.0.1:9", 3000, None)
        .order("1")
        .await
        .expect_err("refused");
    assert!(matches!(err, PortError::Unavailable(_)), "{err}");
}
