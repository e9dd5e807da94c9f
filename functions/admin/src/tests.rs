use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use wca_core::ManualClock;
use wca_core::campaign::Campaigns;
use wca_core::memory::MemoryCampaigns;

use super::*;

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789ab";

fn app() -> Router {
    build(false)
}

fn build(approval: bool) -> Router {
    let filter = wca_filter::Dictionary::new()
        .add_deny("deny.tsv", wca_filter::BUILTIN_DENY)
        .expect("dictionary")
        .build()
        .expect("filter");
    let admins = Admins::from_vars(|name| match name {
        "WCA_ADMIN_TOKENS" => Some(format!("alice={ALICE}, bob={BOB}")),
        _ => None,
    })
    .expect("admins");
    let mut campaigns = Campaigns::new(
        Arc::new(MemoryCampaigns::default()),
        // Friday 2026-11-27 12:00 UTC.
        Arc::new(ManualClock::new(1_795_780_800)),
        Some(Arc::new(filter)),
    );
    if approval {
        campaigns = campaigns.with_approval(wca_core::campaign::Approval {
            above: 1000,
            audiences: Arc::new(wca_core::campaign::Audiences {
                api: None,
                profiles: None,
                contacts: None,
                segment_page: 100,
            }),
        });
    }
    router(Arc::new(Admin {
        campaigns: Arc::new(campaigns),
        admins,
        wake: None,
    }))
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = if body.is_null() {
        Body::empty()
    } else {
        Body::from(body.to_string())
    };
    let resp = app
        .clone()
        .oneshot(req.body(body).expect("request"))
        .await
        .expect("answer");
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), 1 << 20).await.expect("body");
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

fn vip_monday() -> Value {
    json!({
        "name": "会员日",
        "cron": "0 9 * * 1",
        "tz": "Asia/Shanghai",
        "audience": "tag:VIP",
        "channel": "custom",
        "text": "{{name}}，本周会员日，全场9折",
        "defaults": {"name": "亲"}
    })
}

#[tokio::test]
async fn every_route_answers_401_without_a_valid_token_and_never_echoes_it() {
    let app = app();
    for (method, path) in [
        ("GET", "/admin/campaigns"),
        ("POST", "/admin/campaigns"),
        ("GET", "/admin/campaigns/c1"),
        ("POST", "/admin/campaigns/c1/pause"),
        ("POST", "/admin/campaigns/c1/resume"),
        ("POST", "/admin/campaigns/c1/run-now"),
        ("GET", "/admin/campaigns/c1/report"),
    ] {
        let (status, _) = call(&app, method, path, None, vip_monday()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token"
        );
        let wrong = "alice-token-0123456780";
        let (status, body) = call(&app, method, path, Some(wrong), vip_monday()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a wrong token"
        );
        assert!(!body.to_string().contains(wrong));
    }
}

#[tokio::test]
async fn a_created_campaign_fires_next_monday_at_nine_in_shanghai_and_records_who_made_it() {
    let app = app();
    let (status, created) = call(&app, "POST", "/admin/campaigns", Some(ALICE), vip_monday()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id");
    let (status, shown) = call(
        &app,
        "GET",
        &format!("/admin/campaigns/{id}"),
        Some(BOB),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Monday 2026-11-30 09:00 in Shanghai is 01:00 UTC.
    assert_eq!(shown["next_fire"], json!(1_796_000_400));
    assert_eq!(shown["created_by"], "alice");
    let (_, listed) = call(&app, "GET", "/admin/campaigns", Some(BOB), Value::Null).await;
    assert_eq!(listed["campaigns"][0]["id"], id);
}

#[tokio::test]
async fn a_campaign_with_a_blocked_word_is_refused_naming_the_word() {
    let app = app();
    let mut body = vip_monday();
    body["text"] = json!("{{name}}，新理财产品保本保息，年化8%");
    let (status, answer) = call(&app, "POST", "/admin/campaigns", Some(ALICE), body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["blocked_words"], json!(["保本保息"]));
    let (_, listed) = call(&app, "GET", "/admin/campaigns", Some(ALICE), Value::Null).await;
    assert_eq!(listed["campaigns"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn an_unknown_variable_or_a_bad_cron_is_refused_with_the_field_named() {
    let app = app();
    let mut body = vip_monday();
    body["text"] = json!("{{nickname}}，本周会员日");
    let (status, answer) = call(&app, "POST", "/admin/campaigns", Some(ALICE), body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer["field"], "text");
    assert!(
        answer["error"]
            .as_str()
            .expect("error")
            .contains("nickname")
    );
    let mut body = vip_monday();
    body["cron"] = json!("61 9 * * 1");
    let (status, answer) = call(&app, "POST", "/admin/campaigns", Some(ALICE), body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer["field"], "cron");
    let (status, _) = call(
        &app,
        "POST",
        "/admin/campaigns",
        Some(ALICE),
        json!({"name": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not a campaign at all");
}

#[tokio::test]
async fn pause_resume_and_run_now_are_recorded_in_the_audit_trail_by_name() {
    let app = app();
    let (_, created) = call(&app, "POST", "/admin/campaigns", Some(ALICE), vip_monday()).await;
    let id = created["id"].as_str().expect("id");
    let (status, paused) = call(
        &app,
        "POST",
        &format!("/admin/campaigns/{id}/pause"),
        Some(BOB),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(paused["status"], "paused");
    let (status, refused) = call(
        &app,
        "POST",
        &format!("/admin/campaigns/{id}/run-now"),
        Some(BOB),
        Value::Null,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a paused campaign does not run: {refused}"
    );
    let (_, resumed) = call(
        &app,
        "POST",
        &format!("/admin/campaigns/{id}/resume"),
        Some(ALICE),
        Value::Null,
    )
    .await;
    assert_eq!(resumed["status"], "active");
    let (status, run) = call(
        &app,
        "POST",
        &format!("/admin/campaigns/{id}/run-now"),
        Some(BOB),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(run["occurrence"], format!("{id}@1795780800"));
    let (_, shown) = call(
        &app,
        "GET",
        &format!("/admin/campaigns/{id}"),
        Some(ALICE),
        Value::Null,
    )
    .await;
    let trail: Vec<(String, String)> = shown["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .map(|e| {
            (
                e["by"].as_str().unwrap_or_default().to_owned(),
                e["action"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("alice", "created"),
        ("bob", "paused"),
        ("alice", "resumed"),
        ("bob", "run_now"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(trail, expected);
    let (status, report) = call(
        &app,
        "GET",
        &format!("/admin/campaigns/{id}/report"),
        Some(ALICE),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["id"], id);
    assert_eq!(report["occurrences"][0]["state"], "running");
    let (status, _) = call(
        &app,
        "GET",
        "/admin/campaigns/c-nope/report",
        Some(ALICE),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn short_tokens_and_malformed_lists_are_refused_without_showing_the_token() {
    let short = Admins::from_vars(|n| (n == "WCA_ADMIN_TOKEN").then(|| "abc123".to_owned()));
    let e = short.expect_err("too short");
    assert!(!e.contains("abc123"), "{e}");
    let bad = Admins::from_vars(|n| (n == "WCA_ADMIN_TOKENS").then(|| "alice".to_owned()));
    assert!(bad.is_err());
    let twice =
        Admins::from_vars(|n| (n == "WCA_ADMIN_TOKENS").then(|| format!("a={ALICE},a={BOB}")));
    assert!(twice.is_err());
    // One token under two names would leave the audit trail guessing.
    let shared =
        Admins::from_vars(|n| (n == "WCA_ADMIN_TOKENS").then(|| format!("a={ALICE},b={ALICE}")));
    let e = shared.expect_err("the same token twice");
    assert!(e.contains("same token") && !e.contains(ALICE), "{e}");
    let both = Admins::from_vars(|n| match n {
        "WCA_ADMIN_TOKEN" => Some(ALICE.to_owned()),
        "WCA_ADMIN_TOKENS" => Some(format!("bob={BOB}")),
        _ => None,
    })
    .expect("valid");
    assert_eq!(both.who(ALICE.as_bytes()), Some("admin"));
    assert_eq!(both.who(BOB.as_bytes()), Some("bob"));
    assert_eq!(
        both.who(b"bob-token-0123456789a"),
        None,
        "a prefix is not the token"
    );
}

#[tokio::test]
async fn a_campaign_to_every_follower_waits_for_a_second_admin_who_is_not_its_creator() {
    let app = build(true);
    let mut body = vip_monday();
    body["audience"] = json!("all");
    let (status, created) = call(&app, "POST", "/admin/campaigns", Some(ALICE), body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id");
    assert_eq!(created["campaign"]["status"], "pending_approval");
    assert!(
        created["campaign"]["approval"]
            .as_str()
            .is_some_and(|w| w.contains("every follower"))
    );
    let (status, refused) = call(
        &app,
        "POST",
        &format!("/admin/campaigns/{id}/run-now"),
        Some(ALICE),
        Value::Null,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "it cannot run yet: {refused}"
    );
    let (status, refused) = call(
        &app,
        "POST",
        &format!("/admin/campaigns/{id}/approve"),
        Some(ALICE),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused["field"], "approver",
        "the creator cannot approve: {refused}"
    );
    let (status, approved) = call(
        &app,
        "POST",
        &format!("/admin/campaigns/{id}/approve"),
        Some(BOB),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "active");
    let last = approved["audit"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (last["by"].as_str(), last["action"].as_str()),
        (Some("bob"), Some("approved"))
    );
    let (status, _) = call(
        &app,
        "POST",
        &format!("/admin/campaigns/{id}/approve"),
        Some(BOB),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "approved once");
}
