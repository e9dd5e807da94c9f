//! What the webhook's test files share: WeChat's side of a plaintext post.

use wca_core::SystemClock;
use wca_webhook::Webhook;
use wca_wechat::{Token, client_side};

/// Posts a signed plaintext text from `from` to account `to`, as WeChat
/// would, straight into `hook` (token `token`, AppID `app_id`); asserts a
/// 200 and returns the body.
pub async fn post_text(
    hook: &Webhook,
    (token, app_id, to): (&str, &str, &str),
    from: &str,
    msg_id: &str,
    text: &str,
) -> String {
    let now = wca_core::Clock::now(&SystemClock);
    let inner = client_side::text_message_xml(to, from, now, msg_id, text);
    let sealed = client_side::seal_request(
        &Token::new(token).expect("token"),
        None,
        app_id,
        to,
        from,
        &inner,
        now,
        "77",
        [0; 16],
    );
    let response = hook
        .handle_post(&sealed.parsed_query(), sealed.body.as_bytes())
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.body
}
