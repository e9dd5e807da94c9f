//! What the end-to-end tests share: WeChat's side of a signed post, and
//! Lambda's side of an SQS batch.

#![allow(dead_code)]

use aws_lambda_events::event::sqs::SqsEvent;
use axum::{body::Body, http::Request};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wca_aws::Received;
use wca_core::{Clock, SystemClock};
use wca_wechat::{AesKey, Token, client_side};

/// The endpoint of the local AWS stand-in the test command started.
pub fn endpoint() -> String {
    wca_aws::stand_in_endpoint().expect(
        "WCA_MOTO_ENDPOINT is not set: run the tests with infra/test.sh, which starts moto_server",
    )
}

/// Posts a text from `openid` to the webhook as WeChat would, encrypted
/// with `aes_key` under `token` and `app_id`; returns the time it used,
/// the message XML, the status and the response body.
pub async fn post_text(
    app: &axum::Router,
    (token, app_id, aes_key): (&str, &str, &str),
    openid: &str,
    msg_id: &str,
    content: &str,
) -> (i64, String, u16, Vec<u8>) {
    let now = SystemClock.now();
    let token = Token::new(token).expect("token");
    let key = AesKey::parse(aes_key).expect("key");
    let inner = client_side::text_message_xml("gh_e2e", openid, now, msg_id, content);
    let sealed = client_side::seal_request(
        &token,
        Some(&key),
        app_id,
        "gh_e2e",
        openid,
        &inner,
        now,
        "4242",
        [9u8; 16],
    );
    let qs = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&sealed.query)
        .finish();
    let response = app
        .clone()
        .oneshot(
            Request::post(format!("/wechat?{qs}"))
                .body(Body::from(sealed.body))
                .expect("request"),
        )
        .await
        .expect("response");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (now, inner, status, body.to_vec())
}

/// The batch Lambda's SQS poller would hand a function for `messages`.
pub fn as_sqs_event(messages: &[Received]) -> SqsEvent {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let mut attributes = serde_json::Map::new();
            if let Some(group) = &m.group_id {
                attributes.insert("MessageGroupId".into(), group.clone().into());
            }
            serde_json::json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": attributes,
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("sqs event")
}
