//! The webhook driven through its router in-process, with memory adapters:
//! WeChat's real request shapes in, status and reply bytes out.

use std::sync::Arc;

use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use base64::Engine as _;
use http_body_util::BodyExt;
use tower::ServiceExt;
use wca_core::{
    Counters, Direction, EventKind, ManualClock, MessageArchive, OpenId, Outgoing, analytics,
    memory::{MemoryArchive, MemoryCounters, MemoryEventSink, MemoryIdempotency},
};
use wca_webhook::{
    Ports, REFUSAL_WINDOW_SECS, Webhook, router,
    settings::{FileSettings, Settings},
};
use wca_wechat::{AesKey, Token, client_side, reply};

const TOKEN: &str = "testToken123";
const APP_ID: &str = "wxtestappid0000001";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const NOW: i64 = 1_700_000_000;
const OPENID: &str = "oUserTest0000000000000001";
const GH: &str = "gh_testaccount";

struct Fixture {
    app: axum::Router,
    archive: Arc<MemoryArchive>,
    events: Arc<MemoryEventSink>,
    clock: Arc<ManualClock>,
    safe: bool,
}

fn fixture(safe: bool) -> Fixture {
    fixture_with(safe, FileSettings::default())
}

fn fixture_with(safe: bool, file: FileSettings) -> Fixture {
    let mut env = vec![("WECHAT_TOKEN", TOKEN), ("WECHAT_APP_ID", APP_ID)];
    if safe {
        env.push(("WECHAT_AES_KEY", AES_KEY));
    }
    let env: [(&str, &str); 3] = [env[0], env[1], *env.get(2).unwrap_or(&("UNUSED", ""))];
    let settings = Settings::resolve(file, &env, None).expect("settings");
    let archive = Arc::new(MemoryArchive::default());
    let events = Arc::new(MemoryEventSink::default());
    let clock = Arc::new(ManualClock::new(NOW));
    let ports = Ports {
        archive: archive.clone(),
        dedup: Arc::new(MemoryIdempotency::default()),
        events: events.clone(),
        clock: clock.clone(),
        conversations: Arc::new(wca_core::memory::MemoryConversationStore::default()),
        shop: wca_dialog::Shop::default(),
        commit: None,
    };
    Fixture {
        app: router(Webhook::new(settings, ports)),
        archive,
        events,
        clock,
        safe,
    }
}

fn token() -> Token {
    Token::new(TOKEN).expect("token")
}

fn key() -> AesKey {
    AesKey::parse(AES_KEY).expect("key")
}

struct Sent {
    status: StatusCode,
    body: String,
}

impl Fixture {
    fn seal(&self, inner_xml: &str, timestamp: i64, nonce: &str) -> client_side::SealedRequest {
        let key = self.safe.then(key);
        client_side::seal_request(
            &token(),
            key.as_ref(),
            APP_ID,
            GH,
            OPENID,
            inner_xml,
            timestamp,
            nonce,
            [7u8; 16],
        )
    }

    async fn post_raw(&self, query: &[(String, String)], body: Vec<u8>) -> Sent {
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        let req = Request::post(format!("/wechat?{qs}"))
            .header("content-type", "text/xml")
            .body(Body::from(body))
            .expect("request");
        let resp = self.app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        Sent {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn post(&self, inner_xml: &str) -> Sent {
        let sealed = self.seal(inner_xml, self.clock_now(), "nonce123");
        self.post_raw(&sealed.query, sealed.body.into_bytes()).await
    }

    fn clock_now(&self) -> i64 {
        use wca_core::Clock;
        self.clock.now()
    }

    /// The reply's text content, opening it as `wca send` would.
    fn reply_content(&self, body: &str) -> Option<String> {
        let xml = if self.safe {
            reply::open_encrypted_reply(&token(), &key(), APP_ID, body).expect("open reply")
        } else {
            body.to_owned()
        };
        reply::parse_reply(&xml).expect("parse reply").content
    }

    fn received_events(&self, events: &[wca_core::Event]) -> usize {
        events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::MessageReceived { .. }))
            .count()
    }
}

fn text(msg_id: &str, content: &str) -> String {
    client_side::text_message_xml(GH, OPENID, NOW, msg_id, content)
}

#[tokio::test]
async fn a_greeting_gets_the_default_greeting_reply_in_plaintext_mode() {
    let f = fixture(false);
    let sent = f.post(&text("1001", "你好")).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    let parsed = reply::parse_reply(&sent.body).expect("reply xml");
    assert_eq!(parsed.msg_type, "text");
    assert_eq!(parsed.to_user_name, OPENID);
    assert_eq!(parsed.from_user_name, GH);
    assert!(parsed.content.unwrap_or_default().contains("你好"));
}

#[tokio::test]
async fn a_greeting_gets_an_encrypted_reply_in_safe_mode() {
    let f = fixture(true);
    let sent = f.post(&text("1002", "你好")).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert!(sent.body.contains("<Encrypt>"), "{}", sent.body);
    assert!(
        !sent.body.contains("你好"),
        "the reply is not in clear text"
    );
    assert!(
        f.reply_content(&sent.body)
            .unwrap_or_default()
            .contains("你好")
    );
}

#[tokio::test]
async fn a_message_posted_three_times_is_archived_once_counted_once_and_answered_identically() {
    for safe in [false, true] {
        let f = fixture(safe);
        let msg = text("2001", "你好");
        let mut bodies = Vec::new();
        for retry in 0..3 {
            // WeChat signs every retry afresh.
            f.clock.advance(5);
            let sealed = f.seal(&msg, f.clock_now(), &format!("nonce{retry}"));
            let sent = f.post_raw(&sealed.query, sealed.body.into_bytes()).await;
            assert_eq!(sent.status, StatusCode::OK);
            bodies.push(sent.body);
        }
        assert_eq!(bodies[0], bodies[1], "safe={safe}");
        assert_eq!(bodies[1], bodies[2], "safe={safe}");
        assert_eq!(f.archive.len(), 1, "archived once");

        let events = f.events.take();
        assert_eq!(f.received_events(&events), 1, "one MessageReceived");
        let counters = MemoryCounters::default();
        for e in &events {
            analytics::apply(&counters, e, &jiff::tz::TimeZone::UTC)
                .await
                .expect("apply");
        }
        assert_eq!(
            counters
                .get("msgs:day:2023-11-14:type:text")
                .await
                .expect("get"),
            1
        );
        assert_eq!(
            counters.get("replies:day:2023-11-14").await.expect("get"),
            1
        );
    }
}

#[tokio::test]
async fn every_accepted_message_is_archived_with_raw_xml_and_parsed_fields() {
    let f = fixture(true);
    let msg = text("3001", "我的快递到哪了");
    let sent = f.post(&msg).await;
    assert_eq!(sent.status, StatusCode::OK);
    assert_ne!(
        sent.body, "success",
        "the default dialog answers what it cannot handle with a clarifying question"
    );
    let stored = f
        .archive
        .get(OPENID, "msg:3001", NOW)
        .await
        .expect("get")
        .expect("archived");
    assert_eq!(stored.raw_xml, msg);
    assert_eq!(stored.openid, OPENID);
    assert_eq!(stored.msg_type, "text");
    assert!(stored.parsed.to_string().contains("我的快递到哪了"));
    assert_eq!(stored.expires_at, NOW + 180 * 24 * 3600);
}

#[tokio::test]
async fn the_reply_is_archived_beside_the_message_and_both_are_in_the_users_history() {
    let f = fixture(true);
    let sent = f.post(&text("3101", "你好")).await;
    let content = f.reply_content(&sent.body).expect("a text reply");
    let again = f.post(&text("3101", "你好")).await;
    assert_eq!(again.body, sent.body, "a retry is answered identically");

    let reply = f.archive.reply("msg:3101").expect("reply archived");
    assert_eq!(reply.reply, Outgoing::text(content.clone()));
    assert_eq!(reply.openid, OPENID);
    assert_eq!(reply.route, "rule");
    assert_eq!(reply.expires_at, NOW + 180 * 24 * 3600);

    let user = OpenId::parse(OPENID).expect("openid");
    let history = f.archive.history(&user, 10, NOW).await.expect("history");
    let sides: Vec<(Direction, Option<&str>)> =
        history.iter().map(|e| (e.direction(), e.text())).collect();
    assert_eq!(
        sides,
        vec![
            (Direction::Outbound, Some(content.as_str())),
            (Direction::Inbound, Some("你好")),
        ],
        "one message, one reply, newest first, the retry adding nothing"
    );
}

#[tokio::test]
async fn a_message_without_a_reply_leaves_only_the_message_in_the_history() {
    let f = fixture(false);
    let xml = client_side::event_xml(GH, OPENID, NOW, "CLICK", Some("menu_1"));
    let sent = f.post(&xml).await;
    assert_eq!(sent.body, "success");
    let user = OpenId::parse(OPENID).expect("openid");
    let history = f.archive.history(&user, 10, NOW).await.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].direction(), Direction::Inbound);
    assert!(
        history[0]
            .key()
            .starts_with(&format!("evt:{OPENID}:{NOW}:click:"))
    );
    assert!(f.archive.reply(history[0].key()).is_none());
}

#[tokio::test]
async fn a_new_follower_gets_the_welcome_and_the_event_is_deduplicated_by_sender_time_and_identity()
{
    let f = fixture(false);
    let sub = client_side::event_xml(GH, OPENID, NOW, "subscribe", Some("qrscene_spring"));
    let first = f.post(&sub).await;
    let second = f.post(&sub).await;
    assert!(
        f.reply_content(&first.body)
            .unwrap_or_default()
            .contains("欢迎")
    );
    assert_eq!(first.body, second.body);
    let stored = f
        .archive
        .get(
            OPENID,
            &wca_wechat::xml::Inbound::parse(&sub)
                .expect("xml")
                .dedup_key(),
            NOW,
        )
        .await
        .expect("get")
        .expect("archived");
    assert_eq!(stored.msg_type, "event:subscribe");
}

#[tokio::test]
async fn events_of_one_user_in_the_same_second_are_each_archived_and_counted() {
    let f = fixture(false);
    let events = [
        client_side::event_xml(GH, OPENID, NOW, "subscribe", Some("qrscene_spring")),
        client_side::event_xml(GH, OPENID, NOW, "CLICK", Some("menu_orders")),
        client_side::event_xml(GH, OPENID, NOW, "unsubscribe", None),
    ];
    for xml in &events {
        let sent = f.post(xml).await;
        assert_eq!(sent.status, StatusCode::OK);
    }
    assert_eq!(f.archive.len(), 3, "none taken for a retry of another");
    assert_eq!(f.received_events(&f.events.take()), 3, "each counted");
}

#[tokio::test]
async fn an_unknown_message_type_is_acknowledged_archived_and_counted() {
    let f = fixture(false);
    let xml = format!(
        "<xml><ToUserName><![CDATA[{GH}]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName>\
         <CreateTime>{NOW}</CreateTime><MsgType><![CDATA[hologram]]></MsgType><MsgId>4001</MsgId></xml>"
    );
    let sent = f.post(&xml).await;
    assert_eq!(sent.status, StatusCode::OK);
    assert_eq!(sent.body, "success");
    let stored = f
        .archive
        .get(OPENID, "msg:4001", NOW)
        .await
        .expect("get")
        .expect("archived");
    assert_eq!(stored.msg_type, "unsupported:hologram");
    assert_eq!(f.received_events(&f.events.take()), 1);
}

#[tokio::test]
async fn asking_for_a_human_hands_the_conversation_to_customer_service() {
    let f = fixture(false);
    let sent = f.post(&text("5001", "转人工")).await;
    let parsed = reply::parse_reply(&sent.body).expect("reply");
    assert_eq!(parsed.msg_type, "transfer_customer_service");
}

#[tokio::test]
async fn url_verification_echoes_echostr_only_when_signed() {
    let f = fixture(true);
    let ts = NOW.to_string();
    let sig = wca_wechat::signature::sign(&[TOKEN, &ts, "n1"]);
    let ok = Request::get(format!(
        "/wechat?signature={sig}&timestamp={ts}&nonce=n1&echostr=hello123"
    ))
    .body(Body::empty())
    .expect("req");
    let resp = f.app.clone().oneshot(ok).await.expect("resp");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"hello123");

    let bad = Request::get(format!(
        "/wechat?signature={sig}&timestamp={ts}&nonce=n2&echostr=hello123"
    ))
    .body(Body::empty())
    .expect("req");
    let resp = f.app.clone().oneshot(bad).await.expect("resp");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

// ---- bad input: each case a test; all must be a clear 4xx, archive nothing,
// ---- emit no MessageReceived, and never panic.

async fn assert_refused(f: &Fixture, sent: Sent, status: StatusCode, says: &str) {
    assert_eq!(sent.status, status, "body: {}", sent.body);
    assert!(
        sent.body.to_lowercase().contains(says),
        "error body {:?} should mention {says:?}",
        sent.body
    );
    assert!(!sent.body.contains(TOKEN) && !sent.body.contains(AES_KEY));
    assert!(f.archive.is_empty(), "nothing archived");
    let events = f.events.take();
    assert_eq!(f.received_events(&events), 0);
    assert!(
        events
            .iter()
            .all(|e| matches!(e.kind, EventKind::RequestRejected { .. })),
        "a refusal is only tallied, never recorded as a message"
    );
}

fn set(query: &mut [(String, String)], name: &str, value: &str) {
    for (k, v) in query.iter_mut() {
        if k == name {
            *v = value.to_owned();
        }
    }
}

#[tokio::test]
async fn bad_input_wrong_signature_is_refused() {
    for safe in [false, true] {
        let f = fixture(safe);
        let mut sealed = f.seal(&text("1", "hi"), NOW, "n");
        let name = if safe { "msg_signature" } else { "signature" };
        set(
            &mut sealed.query,
            name,
            "0000000000000000000000000000000000000000",
        );
        let sent = f.post_raw(&sealed.query, sealed.body.into_bytes()).await;
        assert_refused(&f, sent, StatusCode::FORBIDDEN, "signature").await;
    }
}

#[tokio::test]
async fn bad_input_stale_timestamp_is_refused() {
    let f = fixture(true);
    let sealed = f.seal(&text("1", "hi"), NOW - 3600, "n");
    let sent = f.post_raw(&sealed.query, sealed.body.into_bytes()).await;
    assert_refused(&f, sent, StatusCode::FORBIDDEN, "timestamp").await;
}

#[tokio::test]
async fn bad_input_oversized_body_is_refused() {
    let f = fixture(false);
    let huge = text("1", &"大".repeat(40_000));
    let sealed = f.seal(&huge, NOW, "n");
    let sent = f.post_raw(&sealed.query, sealed.body.into_bytes()).await;
    assert_eq!(sent.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(f.archive.is_empty());
}

#[tokio::test]
async fn bad_input_malformed_xml_is_refused() {
    for safe in [false, true] {
        let f = fixture(safe);
        let sent = f
            .post("<xml><ToUserName>gh</ToUserName><Content>open")
            .await;
        assert_refused(&f, sent, StatusCode::BAD_REQUEST, "xml").await;
    }
}

const BILLION_LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol3;</Content><MsgId>1</MsgId></xml>"#;

const EXTERNAL_ENTITY: &str = r#"<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>"#;

#[tokio::test]
async fn bad_input_billion_laughs_is_refused() {
    for safe in [false, true] {
        let f = fixture(safe);
        let sent = f.post(BILLION_LAUGHS).await;
        assert_refused(&f, sent, StatusCode::BAD_REQUEST, "dtd").await;
    }
}

#[tokio::test]
async fn bad_input_external_entity_is_refused() {
    for safe in [false, true] {
        let f = fixture(safe);
        let sent = f.post(EXTERNAL_ENTITY).await;
        assert_refused(&f, sent, StatusCode::BAD_REQUEST, "dtd").await;
    }
}

/// A safe-mode request around an arbitrary `Encrypt` value, correctly signed.
async fn post_encrypt(f: &Fixture, encrypt: &str) -> Sent {
    let ts = NOW.to_string();
    let msg_signature = wca_wechat::signature::sign(&[TOKEN, &ts, "n", encrypt]);
    let signature = wca_wechat::signature::sign(&[TOKEN, &ts, "n"]);
    let query = vec![
        ("signature".to_owned(), signature),
        ("timestamp".to_owned(), ts),
        ("nonce".to_owned(), "n".to_owned()),
        ("openid".to_owned(), OPENID.to_owned()),
        ("encrypt_type".to_owned(), "aes".to_owned()),
        ("msg_signature".to_owned(), msg_signature),
    ];
    let body = format!(
        "<xml><ToUserName><![CDATA[{GH}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    f.post_raw(&query, body.into_bytes()).await
}

/// Encrypts `plain` (already a multiple of 16 bytes) with WeChat's key and
/// IV and no padding of our own, to craft broken padding.
fn raw_encrypt(plain: &[u8]) -> String {
    let key_bytes = base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    )
    .decode(format!("{AES_KEY}="))
    .expect("key");
    let mut buf = plain.to_vec();
    let len = buf.len();
    let enc = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key_bytes, &key_bytes[..16])
        .expect("key/iv");
    let out = enc
        .encrypt_padded_mut::<NoPadding>(&mut buf, len)
        .expect("aligned");
    base64::engine::general_purpose::STANDARD.encode(out)
}

#[tokio::test]
async fn bad_input_bad_base64_is_refused() {
    let f = fixture(true);
    let sent = post_encrypt(&f, "this is not base64!!").await;
    assert_refused(&f, sent, StatusCode::BAD_REQUEST, "base64").await;
}

#[tokio::test]
async fn bad_input_bad_padding_is_refused() {
    let f = fixture(true);
    let mut plain = vec![b'a'; 64];
    plain[63] = 0; // pad length 0 is never valid
    let sent = post_encrypt(&f, &raw_encrypt(&plain)).await;
    assert_refused(&f, sent, StatusCode::BAD_REQUEST, "padding").await;
    let mut plain = vec![b'a'; 64];
    plain[63] = 40; // longer than WeChat's 32-byte block
    let sent = post_encrypt(&f, &raw_encrypt(&plain)).await;
    assert_refused(&f, sent, StatusCode::BAD_REQUEST, "padding").await;
}

#[tokio::test]
async fn bad_input_wrong_app_id_is_refused() {
    let f = fixture(true);
    let other = client_side::seal_request(
        &token(),
        Some(&key()),
        "wxsomebodyelse00001",
        GH,
        OPENID,
        &text("1", "hi"),
        NOW,
        "n",
        [1u8; 16],
    );
    let sent = f.post_raw(&other.query, other.body.into_bytes()).await;
    assert_refused(&f, sent, StatusCode::BAD_REQUEST, "app").await;
}

#[tokio::test]
async fn bad_input_empty_body_is_refused() {
    for safe in [false, true] {
        let f = fixture(safe);
        let sealed = f.seal("", NOW, "n");
        let sent = f.post_raw(&sealed.query, Vec::new()).await;
        assert_refused(&f, sent, StatusCode::BAD_REQUEST, "empty").await;
    }
}

#[tokio::test]
async fn bad_input_non_utf8_body_is_refused() {
    for safe in [false, true] {
        let f = fixture(safe);
        let sealed = f.seal(&text("1", "hi"), NOW, "n");
        let mut body = sealed.body.into_bytes();
        body.extend_from_slice(&[0xff, 0xfe, 0xc3]);
        let sent = f.post_raw(&sealed.query, body).await;
        assert_refused(&f, sent, StatusCode::BAD_REQUEST, "utf-8").await;
    }
}

#[tokio::test]
async fn bad_input_plaintext_post_in_safe_mode_is_refused() {
    let f = fixture(true);
    let ts = NOW.to_string();
    let signature = wca_wechat::signature::sign(&[TOKEN, &ts, "n"]);
    let query = vec![
        ("signature".to_owned(), signature),
        ("timestamp".to_owned(), ts),
        ("nonce".to_owned(), "n".to_owned()),
    ];
    let sent = f.post_raw(&query, text("1", "hi").into_bytes()).await;
    assert_refused(&f, sent, StatusCode::BAD_REQUEST, "encrypt").await;
}

/// A fixture whose rules answer `理财` and `骂我` with replies that hold
/// a blocked and a masked word.
fn compliance_fixture() -> Fixture {
    let file = FileSettings::parse(
        "[filter]\nfallback = \"这个问题请咨询人工客服。\"\n\
         [[reply.rule]]\nmatch = \"exact\"\nkeywords = [\"理财\"]\nreply = \"这款理财稳赚不赔！\"\n\
         [[reply.rule]]\nmatch = \"exact\"\nkeywords = [\"骂我\"]\nreply = \"你这个傻逼，哈哈\"\n\
         [[reply.rule]]\nmatch = \"exact\"\nkeywords = [\"你好\"]\nreply = \"您好，请问有什么可以帮您？\"\n",
    )
    .expect("config parses");
    fixture_with(false, file)
}

fn compliance_events(events: &[wca_core::Event]) -> Vec<&wca_core::Event> {
    events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ComplianceHit { .. }))
        .collect()
}

#[tokio::test]
async fn an_inbound_text_with_a_denied_word_is_recorded_archived_and_still_acknowledged() {
    let f = compliance_fixture();
    let content = "请问 稳·赚·不·赔 的产品还有吗";
    let sent = f.post(&text("7001", content)).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert!(
        f.archive
            .get(OPENID, "msg:7001", NOW)
            .await
            .expect("get")
            .is_some()
    );
    let events = f.events.take();
    assert_eq!(f.received_events(&events), 1);
    let hits = compliance_events(&events);
    assert_eq!(hits.len(), 1, "{events:?}");
    assert_eq!(hits[0].id, "compliance:inbound:msg:7001");
    let EventKind::ComplianceHit {
        direction,
        outcome,
        hits,
        ..
    } = &hits[0].kind
    else {
        unreachable!("filtered above")
    };
    assert_eq!(*direction, wca_core::Direction::Inbound);
    assert_eq!(outcome, "recorded");
    assert_eq!(hits[0].word, "稳赚不赔");
    assert_eq!(hits[0].category, "fraud");
    assert_eq!(&content[hits[0].start..hits[0].end], "稳·赚·不·赔");
}

#[tokio::test]
async fn a_reply_with_a_blocked_word_is_replaced_by_the_fallback_and_the_event_says_why() {
    let f = compliance_fixture();
    let sent = f.post(&text("7002", "理财")).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert_eq!(
        f.reply_content(&sent.body).as_deref(),
        Some("这个问题请咨询人工客服。")
    );
    let events = f.events.take();
    let hits = compliance_events(&events);
    assert_eq!(hits.len(), 1, "{events:?}");
    let EventKind::ComplianceHit {
        direction,
        action,
        outcome,
        hits,
        ..
    } = &hits[0].kind
    else {
        unreachable!("filtered above")
    };
    assert_eq!(*direction, wca_core::Direction::Outbound);
    assert_eq!((action.as_str(), outcome.as_str()), ("block", "blocked"));
    assert_eq!(hits[0].word, "稳赚不赔");
}

#[tokio::test]
async fn a_reply_with_a_masked_word_is_sent_with_the_word_masked() {
    let f = compliance_fixture();
    let sent = f.post(&text("7003", "骂我")).await;
    assert_eq!(
        f.reply_content(&sent.body).as_deref(),
        Some("你这个**，哈哈")
    );
    let events = f.events.take();
    let hits = compliance_events(&events);
    assert_eq!(hits.len(), 1, "{events:?}");
    assert!(matches!(
        &hits[0].kind,
        EventKind::ComplianceHit { outcome, .. } if outcome == "masked"
    ));
}

#[tokio::test]
async fn a_clean_message_and_a_clean_reply_record_no_compliance_hit() {
    let f = compliance_fixture();
    let sent = f.post(&text("7004", "你好")).await;
    assert!(f.reply_content(&sent.body).is_some());
    assert!(compliance_events(&f.events.take()).is_empty());
}

#[tokio::test]
async fn a_text_message_carries_its_intent_and_sentiment_on_the_received_event() {
    let f = fixture(false);
    f.post(&text("8001", "我要退货")).await;
    let events = f.events.take();
    let received = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::MessageReceived {
                intent, sentiment, ..
            } => Some((intent.clone(), sentiment.clone())),
            _ => None,
        })
        .expect("a received event");
    assert_eq!(received.0.as_deref(), Some("return_refund"));
    assert!(
        matches!(
            received.1.as_deref(),
            Some("negative" | "neutral" | "positive")
        ),
        "{received:?}"
    );
}

#[tokio::test]
async fn an_event_carries_no_intent() {
    let f = fixture(false);
    let subscribe = client_side::event_xml(GH, OPENID, NOW, "subscribe", None);
    f.post(&subscribe).await;
    let events = f.events.take();
    assert!(events.iter().all(|e| !matches!(
        &e.kind,
        EventKind::MessageReceived {
            intent: Some(_),
            ..
        }
    )));
}

/// A memory archive whose `put_reply` fails while `broken` is set: the
/// process dying between recording its answer and archiving its reply.
#[derive(Default)]
struct RepliesBreak {
    inner: MemoryArchive,
    broken: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl MessageArchive for RepliesBreak {
    async fn put(&self, msg: &wca_core::ArchivedMessage) -> Result<bool, wca_core::PortError> {
        self.inner.put(msg).await
    }
    async fn put_reply(
        &self,
        reply: &wca_core::ArchivedReply,
    ) -> Result<bool, wca_core::PortError> {
        if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(wca_core::PortError::Unavailable("process died".into()));
        }
        self.inner.put_reply(reply).await
    }
    async fn get(
        &self,
        openid: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<wca_core::ArchivedMessage>, wca_core::PortError> {
        self.inner.get(openid, key, now).await
    }
    async fn history(
        &self,
        openid: &OpenId,
        limit: usize,
        now: i64,
    ) -> Result<Vec<wca_core::Archived>, wca_core::PortError> {
        self.inner.history(openid, limit, now).await
    }
    async fn purge_expired(&self, now: i64) -> Result<u64, wca_core::PortError> {
        self.inner.purge_expired(now).await
    }
}

#[tokio::test]
async fn a_reply_is_sent_only_once_it_is_archived_and_a_retry_archives_the_recorded_one() {
    let settings = Settings::resolve(
        FileSettings::default(),
        &[("WECHAT_TOKEN", TOKEN), ("WECHAT_APP_ID", APP_ID)],
        None,
    )
    .expect("settings");
    let archive = Arc::new(RepliesBreak::default());
    archive
        .broken
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let ports = Ports {
        archive: archive.clone(),
        dedup: Arc::new(MemoryIdempotency::default()),
        events: Arc::new(MemoryEventSink::default()),
        clock: Arc::new(ManualClock::new(NOW)),
        conversations: Arc::new(wca_core::memory::MemoryConversationStore::default()),
        shop: wca_dialog::Shop::default(),
        commit: None,
    };
    let f = Fixture {
        app: router(Webhook::new(settings, ports)),
        archive: Arc::new(MemoryArchive::default()),
        events: Arc::new(MemoryEventSink::default()),
        clock: Arc::new(ManualClock::new(NOW)),
        safe: false,
    };
    let first = f.post(&text("3301", "你好")).await;
    assert_eq!(
        first.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "a reply that is not on record is not sent"
    );
    assert!(
        !first.body.contains("died"),
        "no detail leaks: {}",
        first.body
    );
    assert!(
        archive.inner.reply("msg:3301").is_none(),
        "not archived yet"
    );
    let second = f.post(&text("3301", "你好")).await;
    assert_eq!(
        second.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "nor on a retry while the archive still fails"
    );

    archive
        .broken
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let retry = f.post(&text("3301", "你好")).await;
    assert_eq!(retry.status, StatusCode::OK);
    let reply = archive
        .inner
        .reply("msg:3301")
        .expect("archived by the retry");
    assert_eq!(
        Some(reply.reply),
        f.reply_content(&retry.body).map(Outgoing::text),
        "the archived reply is the one WeChat got"
    );
    assert_eq!(reply.route, "rule");
    let again = f.post(&text("3301", "你好")).await;
    assert_eq!(
        again.body, retry.body,
        "every later retry gets the same answer"
    );
}

#[tokio::test]
async fn refused_requests_are_tallied_into_one_event_per_reason_per_minute() {
    let f = fixture(false);
    let bad_signature = || {
        let mut sealed = f.seal(&text("1", "hi"), f.clock_now(), "n");
        set(
            &mut sealed.query,
            "signature",
            "0000000000000000000000000000000000000000",
        );
        sealed
    };
    for _ in 0..50 {
        let sealed = bad_signature();
        let sent = f.post_raw(&sealed.query, sealed.body.into_bytes()).await;
        assert_eq!(sent.status, StatusCode::FORBIDDEN);
    }
    let sent = f.post_raw(&[], b"<xml>".to_vec()).await;
    assert!(sent.status.is_client_error());
    assert!(
        f.events.take().is_empty(),
        "no event per refused request inside the window"
    );

    // A minute later, the next request (any request) closes the window.
    f.clock.advance(REFUSAL_WINDOW_SECS);
    let sent = f.post(&text("4001", "你好")).await;
    assert_eq!(sent.status, StatusCode::OK);
    let events = f.events.take();
    let mut tallies: Vec<(String, u64)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RequestRejected { reason, count } => Some((reason.clone(), *count)),
            _ => None,
        })
        .collect();
    tallies.sort();
    assert_eq!(tallies.len(), 2, "one event per reason: {tallies:?}");
    assert_eq!(tallies.iter().map(|(_, n)| n).sum::<u64>(), 51);
    assert!(
        tallies.contains(&("bad_signature".to_owned(), 50)),
        "{tallies:?}"
    );

    // Counted by its amount, once.
    let counters = MemoryCounters::default();
    let tz = jiff::tz::TimeZone::UTC;
    for event in events.iter().chain(events.iter()) {
        analytics::apply(&counters, event, &tz)
            .await
            .expect("apply");
    }
    assert_eq!(
        counters.get("rejected:day:2023-11-14").await.expect("get"),
        51
    );
}

/// A conversation store where another message of the same user gets in
/// first once: right after the first read of the user's conversation, it
/// advances the conversation itself.
#[derive(Default)]
struct Interloper {
    inner: wca_core::memory::MemoryConversationStore,
    done: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl wca_core::ConversationStore for Interloper {
    async fn get(
        &self,
        openid: &OpenId,
        now: i64,
    ) -> Result<wca_core::Versioned, wca_core::PortError> {
        let read = self.inner.get(openid, now).await?;
        if !openid.is_board() && !self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let mut theirs = read.state.clone();
            theirs.turns += 1;
            assert!(
                self.inner
                    .compare_and_set(openid, read.version, &theirs, i64::MAX)
                    .await?
            );
        }
        Ok(read)
    }

    async fn compare_and_set(
        &self,
        openid: &OpenId,
        expected: u64,
        state: &wca_core::ConversationState,
        expires_at: i64,
    ) -> Result<bool, wca_core::PortError> {
        self.inner
            .compare_and_set(openid, expected, state, expires_at)
            .await
    }
}

#[tokio::test]
async fn a_message_whose_conversation_moved_on_before_its_commit_is_decided_again_and_counted_once()
{
    let settings = Settings::resolve(
        FileSettings::default(),
        &[("WECHAT_TOKEN", TOKEN), ("WECHAT_APP_ID", APP_ID)],
        None,
    )
    .expect("settings");
    let archive = Arc::new(MemoryArchive::default());
    let events = Arc::new(MemoryEventSink::default());
    let conversations = Arc::new(Interloper::default());
    let ports = Ports {
        archive: archive.clone(),
        dedup: Arc::new(MemoryIdempotency::default()),
        events: events.clone(),
        clock: Arc::new(ManualClock::new(NOW)),
        conversations: conversations.clone(),
        shop: wca_dialog::Shop::default(),
        commit: None,
    };
    let f = Fixture {
        app: router(Webhook::new(settings, ports)),
        archive: archive.clone(),
        events: events.clone(),
        clock: Arc::new(ManualClock::new(NOW)),
        safe: false,
    };
    let sent = f.post(&text("3401", "你好")).await;
    assert_eq!(sent.status, StatusCode::OK);
    assert!(
        sent.body.contains("<xml>"),
        "answered with a reply: {}",
        sent.body
    );
    let user = OpenId::parse(OPENID).expect("openid");
    let stored = wca_core::ConversationStore::get(conversations.as_ref(), &user, NOW)
        .await
        .expect("conversation");
    assert_eq!(
        (stored.version, stored.state.turns),
        (2, 2),
        "the other message's turn and this one's, neither lost"
    );
    let received = events
        .take()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::MessageReceived { .. }))
        .count();
    assert_eq!(
        received, 1,
        "the first decision's events were never emitted"
    );
    assert!(archive.reply("msg:3401").is_some());
}
