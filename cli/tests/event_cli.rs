//! `wca event`: the sample Lambda events it prints open with the token,
//! are stamped now and have the fields of the checked-in samples.

use std::collections::BTreeSet;
use std::process::{Command, Output};

use serde_json::Value;
use wca_wechat::callback::{CallbackConfig, Query};
use wca_wechat::{AesKey, InboundBody, Token};

const TOKEN: &str = "eventCliToken42";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// Runs `wca event ARGS` with exactly the secrets in `env` (none of the
/// caller's, no development token).
fn wca_event(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wca"));
    cmd.arg("event")
        .args(args)
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("WECHAT_TOKEN")
        .env_remove("WECHAT_AES_KEY")
        .env_remove("WECHAT_APP_ID");
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.output().expect("run wca event")
}

/// The printed event, which must be one JSON document.
fn event(args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = wca_event(args, env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the event is JSON")
}

fn now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    i64::try_from(secs).expect("fits")
}

/// The query the webhook reads, from the event's `queryStringParameters`,
/// after checking that `rawQueryString` says the same.
fn query_of(event: &Value) -> Query {
    let params = event["queryStringParameters"]
        .as_object()
        .expect("queryStringParameters");
    let pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_owned()))
        .collect();
    let raw = event["rawQueryString"].as_str().expect("rawQueryString");
    let raw_pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        Query::from_pairs(&raw_pairs),
        Query::from_pairs(&pairs),
        "rawQueryString and queryStringParameters agree"
    );
    Query::from_pairs(&pairs)
}

/// The webhook's side, as the Lambda function is configured for these
/// events: a one-minute window, so the timestamp must be within a minute.
fn webhook(token: &str, aes_key: Option<&str>) -> CallbackConfig {
    CallbackConfig {
        token: Token::new(token).expect("token"),
        app_id: wca_webhook::settings::DEV_APP_ID.to_owned(),
        aes_key: aes_key.map(|k| AesKey::parse(k).expect("key")),
        max_body_bytes: 64 * 1024,
        timestamp_window_secs: Some(60),
    }
}

fn text_of(body: &InboundBody) -> &str {
    match body {
        InboundBody::Message(wca_wechat::xml::Message::Text { content, .. }) => content,
        other => panic!("not a text message: {other:?}"),
    }
}

#[test]
fn the_webhook_post_event_verifies_with_the_token_and_is_stamped_now() {
    let ev = event(
        &[
            "webhook-post",
            "--text",
            "你好，在吗",
            "--from",
            "oEventCliUser0000000000001",
            "--msg-id",
            "24000000000000042",
        ],
        &[("WECHAT_TOKEN", TOKEN)],
    );
    assert_eq!(ev["routeKey"], "POST /wechat");
    assert_eq!(ev["requestContext"]["http"]["method"], "POST");
    let query = query_of(&ev);
    let ts: i64 = query
        .timestamp
        .as_deref()
        .and_then(|t| t.parse().ok())
        .expect("numeric timestamp");
    assert!((ts - now()).abs() <= 60, "timestamp {ts} is not now");
    let epoch_ms = ev["requestContext"]["timeEpoch"]
        .as_i64()
        .expect("timeEpoch");
    assert_eq!(epoch_ms / 1000, ts, "one moment throughout");

    let body = ev["body"].as_str().expect("body");
    let opened = webhook(TOKEN, None)
        .open_request(&query, body.as_bytes(), now())
        .expect("the signature verifies with the token");
    assert!(!opened.encrypted);
    assert_eq!(text_of(&opened.inbound.body), "你好，在吗");
    assert_eq!(opened.inbound.from_user_name, "oEventCliUser0000000000001");
    assert_eq!(opened.inbound.create_time, ts);
    assert_eq!(opened.inbound.msg_id.as_deref(), Some("24000000000000042"));

    let other = webhook("someOtherToken", None).open_request(&query, body.as_bytes(), now());
    assert!(other.is_err(), "another token must not verify it");
}

#[test]
fn in_safe_mode_the_webhook_post_event_is_encrypted_and_opens_with_the_key() {
    let ev = event(
        &["webhook-post", "--text", "查一下我的订单"],
        &[("WECHAT_TOKEN", TOKEN), ("WECHAT_AES_KEY", AES_KEY)],
    );
    let body = ev["body"].as_str().expect("body");
    assert!(
        !body.contains("查一下我的订单"),
        "the text is encrypted: {body}"
    );
    let query = query_of(&ev);
    assert_eq!(query.encrypt_type.as_deref(), Some("aes"));
    assert!(query.msg_signature.is_some(), "{ev}");
    let opened = webhook(TOKEN, Some(AES_KEY))
        .open_request(&query, body.as_bytes(), now())
        .expect("msg_signature verifies and the message decrypts");
    assert!(opened.encrypted);
    assert_eq!(text_of(&opened.inbound.body), "查一下我的订单");
}

#[test]
fn the_webhook_get_event_is_a_url_verification_that_echoes_echostr() {
    let ev = event(
        &["webhook-get", "--echostr", "echo-me-123"],
        &[("WECHAT_TOKEN", TOKEN)],
    );
    assert_eq!(ev["routeKey"], "GET /wechat");
    assert!(ev.get("body").is_none(), "a GET has no body: {ev}");
    let echoed = webhook(TOKEN, None)
        .verify_url(&query_of(&ev), now())
        .expect("the signature verifies with the token");
    assert_eq!(echoed, "echo-me-123");
}

#[test]
fn the_sqs_event_parses_and_names_the_message_key() {
    let ev = event(
        &[
            "sqs",
            "--msg-id",
            "24000000000000007",
            "--from",
            "oEventCliUser0000000000002",
        ],
        &[],
    );
    let records = ev["Records"].as_array().expect("Records");
    assert_eq!(records.len(), 1, "{ev}");
    assert_eq!(records[0]["eventSource"], "aws:sqs");
    let envelope: Value =
        serde_json::from_str(records[0]["body"].as_str().expect("body is a string"))
            .expect("the body is the EventBridge event, as JSON");
    assert_eq!(envelope["detail-type"], "MessageReceived");
    assert_eq!(envelope["source"], "wca");
    let detail: wca_core::Event =
        serde_json::from_value(envelope["detail"].clone()).expect("a wca event");
    assert_eq!(detail.id, "received:msg:24000000000000007");
    match detail.kind {
        wca_core::EventKind::MessageReceived {
            msg_key,
            openid,
            msg_type,
            create_time,
            ..
        } => {
            assert_eq!(msg_key, "msg:24000000000000007");
            assert_eq!(openid, "oEventCliUser0000000000002");
            assert_eq!(msg_type, "text");
            assert!((create_time - now()).abs() <= 60, "fresh: {create_time}");
        }
        other => panic!("not MessageReceived: {other:?}"),
    }
    let sent: i64 = records[0]["attributes"]["SentTimestamp"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("SentTimestamp in ms");
    assert!((sent / 1000 - now()).abs() <= 60, "fresh: {sent}");
}

/// Every field path of a JSON value (array elements under `[]`, JSON held
/// in a string `body` opened too), for comparing shapes, not values.
fn shape(value: &Value, path: &str, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let p = format!("{path}.{key}");
                into.insert(p.clone());
                if let (Value::String(s), "body") = (v, key.as_str())
                    && let Ok(inner @ Value::Object(_)) = serde_json::from_str::<Value>(s)
                {
                    shape(&inner, &p, into);
                }
                shape(v, &p, into);
            }
        }
        Value::Array(items) => {
            for item in items {
                shape(item, &format!("{path}[]"), into);
            }
        }
        _ => {}
    }
}

fn shape_of(value: &Value) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    shape(value, "", &mut paths);
    paths
}

fn sample(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../infra/events")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("the checked-in sample");
    serde_json::from_str(&text).expect("the sample is JSON")
}

#[test]
fn each_event_has_the_fields_of_its_checked_in_sample() {
    let token = [("WECHAT_TOKEN", TOKEN)];
    let get = event(&["webhook-get"], &token);
    assert_eq!(shape_of(&get), shape_of(&sample("webhook-verify.json")));
    let post = event(&["webhook-post"], &token);
    assert_eq!(shape_of(&post), shape_of(&sample("webhook-text.json")));
    // The sample batch holds a poison record after the good one; compare
    // with the good one alone.
    let mut batch = sample("analytics-batch.json");
    batch["Records"]
        .as_array_mut()
        .expect("Records")
        .truncate(1);
    let sqs = event(&["sqs"], &[]);
    assert_eq!(shape_of(&sqs), shape_of(&batch));
}

#[test]
fn an_unknown_kind_is_an_error_naming_the_kinds_there_are() {
    let out = wca_event(&["webhook-put"], &[("WECHAT_TOKEN", TOKEN)]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no event is printed");
    let err = String::from_utf8_lossy(&out.stderr);
    for word in ["webhook-put", "webhook-get", "webhook-post", "sqs"] {
        assert!(err.contains(word), "{word} in: {err}");
    }
}

#[test]
fn without_a_token_a_webhook_event_is_an_error_saying_where_one_comes_from() {
    let out = wca_event(&["webhook-post"], &[]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no event is printed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WECHAT_TOKEN"), "{err}");
}
