//! The WeChat API client and the outbound guards against the stand-in
//! (`wca-fake-wechat`) on loopback: tokens, errcodes, the window and the
//! budget, the breaker.

use std::sync::Arc;
use std::time::Duration;

use wca_core::memory::{MemoryContactWindows, MemoryEventSink, MemoryTokenStore};
use wca_core::outbound::{BreakerConfig, BreakerState, OutboundPolicy, TemplateMessage};
use wca_core::{
    ApiError, ContactWindows, CustomMessage, EventKind, Failure, ManualClock, Outbound, Refusal,
    SystemClock, TokenStore, WeChatApi,
};
use wca_fake_wechat::{FakeWeChat, Options};
use wca_wechat::api::{ApiConfig, AppSecret, HttpWeChatApi};

async fn fake() -> (FakeWeChat, String) {
    fake_with(Options::default()).await
}

async fn fake_with(opts: Options) -> (FakeWeChat, String) {
    let (fake, addr) = FakeWeChat::start(opts).await.expect("start the stand-in");
    (fake, format!("http://{addr}"))
}

fn client(base: &str, tokens: Arc<dyn TokenStore>) -> Arc<HttpWeChatApi> {
    let opts = Options::default();
    let secret = AppSecret::new(&opts.secret).expect("secret");
    Arc::new(
        HttpWeChatApi::new(
            ApiConfig::new(base, &opts.app_id, secret),
            tokens,
            Arc::new(SystemClock),
        )
        .expect("client"),
    )
}

fn text(s: &str) -> CustomMessage {
    CustomMessage::Text { content: s.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_sends_on_a_cold_cache_make_one_stable_token_call() {
    let (fake, base) = fake().await;
    let api = client(&base, Arc::new(MemoryTokenStore::default()));
    let mut sends = Vec::new();
    for i in 0..50 {
        let openid = format!("oUser{i:02}");
        fake.interact(&openid);
        let api = Arc::clone(&api);
        sends.push(tokio::spawn(async move {
            api.send_custom(&openid, &text(&format!("您好 {i}"))).await
        }));
    }
    for s in sends {
        s.await.expect("join").expect("sent");
    }
    assert_eq!(fake.stats().stable_token_calls, 1);
    assert_eq!(api.token_counts().fetched, 1);
    assert_eq!(fake.sent().len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_invalidated_mid_run_costs_one_forced_refresh_and_loses_no_message() {
    let (fake, base) = fake().await;
    let api = client(&base, Arc::new(MemoryTokenStore::default()));
    for i in 0..40 {
        fake.interact(&format!("oUser{i:02}"));
    }
    for i in 0..10 {
        api.send_custom(&format!("oUser{i:02}"), &text("第一批"))
            .await
            .expect("sent before");
    }
    fake.invalidate_tokens();
    let mut sends = Vec::new();
    for i in 10..40 {
        let api = Arc::clone(&api);
        sends.push(tokio::spawn(async move {
            api.send_custom(&format!("oUser{i:02}"), &text("第二批"))
                .await
        }));
    }
    for s in sends {
        s.await.expect("join").expect("sent after the invalidation");
    }
    let stats = fake.stats();
    assert_eq!(stats.forced_refreshes, 1, "{stats:?}");
    assert_eq!(stats.stable_token_calls, 2, "{stats:?}");
    let sent = fake.sent();
    assert_eq!(sent.len(), 40, "every message arrived once");
    let mut who: Vec<_> = sent.iter().map(|s| s.openid.clone()).collect();
    who.sort();
    who.dedup();
    assert_eq!(who.len(), 40);
}

#[tokio::test]
async fn instances_sharing_a_token_store_fetch_one_token_between_them() {
    let (fake, base) = fake().await;
    let shared: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::default());
    let first = client(&base, Arc::clone(&shared));
    let second = client(&base, Arc::clone(&shared));
    fake.interact("oA");
    first.send_custom("oA", &text("一")).await.expect("first");
    second.send_custom("oA", &text("二")).await.expect("second");
    assert_eq!(fake.stats().stable_token_calls, 1);
    assert_eq!(second.token_counts().fetched, 0);
}

#[tokio::test]
async fn a_token_is_renewed_ahead_of_its_expiry_without_forcing() {
    let (fake, base) = fake().await;
    let clock = Arc::new(ManualClock::new(1_900_000_000));
    let opts = Options::default();
    let api = HttpWeChatApi::new(
        ApiConfig::new(
            &base,
            &opts.app_id,
            AppSecret::new(&opts.secret).expect("s"),
        ),
        Arc::new(MemoryTokenStore::default()),
        clock.clone(),
    )
    .expect("client");
    let first = api.token().await.expect("token");
    clock.advance(7200 - 301);
    assert_eq!(api.token().await.expect("token"), first, "still fresh");
    clock.advance(2);
    fake.advance(Duration::from_secs(7200 - 299));
    let renewed = api.token().await.expect("token");
    assert_ne!(renewed, first, "renewed within 5 minutes of expiry");
    assert_eq!(api.token_counts().forced, 0);
}

#[tokio::test]
async fn a_wrong_app_secret_is_a_config_error_that_never_shows_the_secret() {
    let (_fake, base) = fake().await;
    let wrong = "THE-WRONG-SECRET-d41d8cd98f00b204";
    let config = ApiConfig::new(
        &base,
        &Options::default().app_id,
        AppSecret::new(wrong).expect("s"),
    );
    assert!(!format!("{config:?}").contains(wrong));
    let api = HttpWeChatApi::new(
        config,
        Arc::new(MemoryTokenStore::default()),
        Arc::new(SystemClock),
    )
    .expect("client");
    let err = api
        .send_custom("oA", &text("x"))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), 40125);
    assert_eq!(err.failure(), Failure::Config);
    assert!(!err.to_string().contains(wrong), "{err}");
    assert!(!format!("{err:?}").contains(wrong));
}

#[tokio::test]
async fn a_network_error_names_no_url_so_the_token_cannot_leak() {
    let (_fake, base) = fake().await;
    let shared: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::default());
    let token = client(&base, Arc::clone(&shared))
        .token()
        .await
        .expect("token");
    // The same token, shared, so the failing call carries it in its URL;
    // nothing listens on port 9 of loopback.
    let cut = client("http://127.0.0.1:9", shared);
    let err = cut.send_custom("oA", &text("x")).await.expect_err("down");
    assert_eq!(cut.token_counts().fetched, 0, "the shared token was used");
    assert_eq!(err.failure(), Failure::Retry);
    assert!(!err.to_string().contains("access_token"), "{err}");
    assert!(!err.to_string().contains(&token), "{err}");
    assert!(!format!("{err:?}").contains(&token));
}

#[tokio::test]
async fn tag_members_page_through_every_follower_once() {
    let (fake, base) = fake_with(Options {
        page_size: 10,
        ..Options::default()
    })
    .await;
    let vip = fake.add_tag("VIP");
    let other = fake.add_tag("新客");
    for i in 0..25 {
        fake.add_follower(&format!("oVip{i:03}"), &[vip]);
    }
    fake.add_follower("oNew", &[other]);
    let api = client(&base, Arc::new(MemoryTokenStore::default()));
    let tags = api.tags().await.expect("tags");
    assert_eq!(
        tags.iter()
            .map(|t| (t.name.as_str(), t.count))
            .collect::<Vec<_>>(),
        vec![("VIP", 25), ("新客", 1)]
    );
    let mut all = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = api.tag_members(vip, next.as_deref()).await.expect("page");
        pages += 1;
        all.extend(page.openids);
        match page.next_openid {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    assert_eq!(all.len(), 25);
    all.dedup();
    assert_eq!(all.len(), 25, "no follower twice");
    assert_eq!(pages, 4, "three pages of 10, 10 and 5, then an empty one");
}

#[tokio::test]
async fn user_info_remarks_tags_and_templates_speak_wechats_json() {
    let (fake, base) = fake().await;
    let vip = fake.add_tag("VIP");
    fake.add_follower("oA", &[]);
    fake.add_follower("oB", &[]);
    let api = client(&base, Arc::new(MemoryTokenStore::default()));
    api.set_remark("oA", "王女士").await.expect("remark");
    api.tag_users(vip, &["oA".into(), "oB".into()])
        .await
        .expect("tag");
    let a = api.user_info("oA").await.expect("info");
    assert!(a.subscribed);
    assert_eq!(a.remark, "王女士");
    assert_eq!(a.tag_ids, vec![vip]);
    let both = api
        .user_info_batch(&["oA".into(), "oB".into()])
        .await
        .expect("batch");
    assert_eq!(both.len(), 2);
    assert_eq!(
        api.user_info("oNobody").await.expect_err("unknown").code(),
        40003
    );
    let msgid = api
        .send_template(&TemplateMessage {
            openid: "oB".into(),
            template_id: "TPL_ORDER_SHIPPED".into(),
            url: None,
            data: [("order".to_owned(), "2026112000958".to_owned())].into(),
        })
        .await
        .expect("template");
    assert!(msgid > 0);
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["data"]["order"]["value"], "2026112000958");
}

#[tokio::test]
async fn followers_page_through_every_subscribed_follower_once() {
    let (fake, base) = fake_with(Options {
        page_size: 10,
        ..Options::default()
    })
    .await;
    for i in 0..23 {
        fake.add_follower(&format!("oFan{i:03}"), &[]);
    }
    for gone in ["oGone1", "oGone2"] {
        fake.add_follower(gone, &[]);
        fake.set_subscribed(gone, false);
    }
    let api = client(&base, Arc::new(MemoryTokenStore::default()));
    let mut all = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = api.followers(next.as_deref()).await.expect("page");
        pages += 1;
        all.extend(page.openids);
        match page.next_openid {
            Some(n) => next = Some(n),
            None => break,
        }
        assert!(pages < 10, "the pages end");
    }
    assert_eq!(pages, 3, "pages of 10, 10 and 3");
    assert_eq!(all.len(), 23);
    assert!(all.iter().all(|o| o.starts_with("oFan")), "{all:?}");
    all.dedup();
    assert_eq!(all.len(), 23, "no follower twice");
}

#[tokio::test]
async fn a_mass_send_by_tag_reaches_the_tags_followers_and_returns_wechats_msg_id() {
    let (fake, base) = fake().await;
    let vip = fake.add_tag("VIP");
    fake.add_follower("oVip1", &[vip]);
    fake.add_follower("oVip2", &[vip]);
    fake.add_follower("oOther", &[]);
    let api = client(&base, Arc::new(MemoryTokenStore::default()));
    let msg_id = api
        .mass_send_text(Some(vip), "会员日全场九折", "campaign:spring:1")
        .await
        .expect("sent");
    assert!(msg_id > 0);
    let sent = fake.sent();
    let who: Vec<_> = sent.iter().map(|s| s.openid.as_str()).collect();
    assert_eq!(who, ["oVip1", "oVip2"]);
    assert_eq!(sent[0].api, "mass");
    assert_eq!(sent[0].content, "会员日全场九折");
    assert_eq!(
        sent[0].body["filter"],
        serde_json::json!({"is_to_all": false, "tag_id": vip})
    );
    assert_eq!(sent[0].body["clientmsgid"], "campaign:spring:1");

    api.mass_send_text(None, "春节放假通知", "campaign:spring:2")
        .await
        .expect("sent to all");
    assert_eq!(fake.sent().len(), 5, "then all three followers");
}

#[tokio::test]
async fn a_retried_mass_send_is_refused_as_a_duplicate_and_delivered_once() {
    let (fake, base) = fake().await;
    fake.add_follower("oA", &[]);
    let api = client(&base, Arc::new(MemoryTokenStore::default()));
    api.mass_send_text(None, "通知", "campaign:x:1")
        .await
        .expect("first");
    let err = api
        .mass_send_text(None, "通知", "campaign:x:1")
        .await
        .expect_err("a duplicate");
    assert_eq!(err.code(), 45065);
    assert_eq!(err.failure(), Failure::Rejected, "never retried");
    assert_eq!(fake.sent().len(), 1, "delivered once");
}

#[tokio::test]
async fn a_spent_mass_send_quota_is_a_config_error() {
    let (fake, base) = fake_with(Options {
        mass_sends_per_month: 1,
        ..Options::default()
    })
    .await;
    fake.add_follower("oA", &[]);
    let api = client(&base, Arc::new(MemoryTokenStore::default()));
    api.mass_send_text(None, "一", "m:1").await.expect("first");
    let err = api
        .mass_send_text(None, "二", "m:2")
        .await
        .expect_err("no quota");
    assert_eq!(err.code(), 45028);
    assert_eq!(err.failure(), Failure::Config);
    assert_eq!(fake.sent().len(), 1);
}

#[tokio::test]
async fn a_mass_send_whose_answer_is_lost_is_unconfirmed_and_delivered_once() {
    let (fake, base) = fake().await;
    let opts = Options::default();
    let mut config = ApiConfig::new(
        &base,
        &opts.app_id,
        AppSecret::new(&opts.secret).expect("secret"),
    );
    config.timeout = Duration::from_millis(500);
    let api = HttpWeChatApi::new(
        config,
        Arc::new(MemoryTokenStore::default()),
        Arc::new(SystemClock),
    )
    .expect("client");
    fake.add_follower("oA", &[]);
    fake.add_follower("oB", &[]);
    api.token()
        .await
        .expect("a token first, so only the send is lost");
    fake.lose_answers(1);
    let err = api
        .mass_send_text(None, "通知", "m:lost")
        .await
        .expect_err("no answer in time");
    assert!(matches!(err, ApiError::Unconfirmed(_)), "{err}");
    assert_eq!(err.failure(), Failure::Unknown);
    assert_eq!(fake.sent().len(), 2, "WeChat delivered it to both");
}

struct Rig {
    fake: FakeWeChat,
    windows: Arc<MemoryContactWindows>,
    events: Arc<MemoryEventSink>,
    outbound: Outbound,
}

async fn rig(policy: OutboundPolicy) -> Rig {
    rig_with(policy, |outbound| outbound).await
}

/// [`rig`], with `dress` adding options to the sender.
async fn rig_with(policy: OutboundPolicy, dress: impl FnOnce(Outbound) -> Outbound) -> Rig {
    let (fake, base) = fake().await;
    let windows = Arc::new(MemoryContactWindows::default());
    let events = Arc::new(MemoryEventSink::default());
    let outbound = dress(Outbound::new(
        client(&base, Arc::new(MemoryTokenStore::default())),
        windows.clone(),
        events.clone(),
        Arc::new(SystemClock),
        policy,
    ));
    Rig {
        fake,
        windows,
        events,
        outbound,
    }
}

/// The user writes: both WeChat and our record of windows see it.
async fn user_writes(rig: &Rig, openid: &str) {
    rig.fake.interact(openid);
    rig.windows.touch(openid, now()).await.expect("touch");
}

fn now() -> i64 {
    wca_core::Clock::now(&SystemClock)
}

#[tokio::test]
async fn the_sixth_message_after_one_user_message_is_refused_without_calling_wechat() {
    let rig = rig(OutboundPolicy::default()).await;
    user_writes(&rig, "oA").await;
    for i in 0..5 {
        rig.outbound
            .send_custom("oA", &text(&format!("第{i}条")), &format!("t:{i}"))
            .await
            .expect("within the budget");
    }
    let calls = rig.fake.stats().api_calls;
    let err = rig
        .outbound
        .send_custom("oA", &text("第六条"), "t:6")
        .await
        .expect_err("over the budget");
    assert!(
        matches!(err, ApiError::Refused(Refusal::OverBudget { sent: 5 })),
        "{err}"
    );
    assert_eq!(rig.fake.stats().api_calls, calls, "WeChat was not called");
    assert!(rig.events.take().iter().any(|e| matches!(
        &e.kind,
        EventKind::OutboundFailed { reason, .. } if reason == "over_budget"
    )));
}

#[tokio::test]
async fn errors_45015_and_45047_are_recorded_per_user_and_never_retried() {
    let rig = rig(OutboundPolicy::default()).await;
    // WeChat and our record disagree: our record says the window is open,
    // WeChat says it is not (the user wrote through another instance's
    // view, or the clocks differ). WeChat wins, once.
    rig.fake.add_follower("oLate", &[]);
    rig.windows.touch("oLate", now()).await.expect("touch");
    let before = rig.fake.stats().api_calls;
    let err = rig
        .outbound
        .send_custom("oLate", &text("您好"), "t:1")
        .await
        .expect_err("45015");
    assert_eq!(err.code(), 45015);
    assert_eq!(err.failure(), Failure::Recipient);
    let calls = rig.fake.stats().api_calls;
    assert_eq!(calls, before + 1, "45015 was not retried");
    let again = rig
        .outbound
        .send_custom("oLate", &text("您好"), "t:2")
        .await
        .expect_err("refused locally");
    assert!(
        matches!(
            again,
            ApiError::Refused(Refusal::Undeliverable { code: 45015 })
        ),
        "{again}"
    );
    assert_eq!(rig.fake.stats().api_calls, calls, "not retried");

    // 45047: WeChat counted more than we did.
    user_writes(&rig, "oBusy").await;
    rig.fake.inject(wca_fake_wechat::Fault {
        errcode: 45047,
        path: "custom/send".into(),
        until_ms: None,
        calls: Some(1),
    });
    let err = rig
        .outbound
        .send_custom("oBusy", &text("x"), "t:3")
        .await
        .expect_err("45047");
    assert_eq!(err.code(), 45047);
    let failures: Vec<_> = rig
        .events
        .take()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::OutboundFailed {
                openid,
                code,
                failure,
                ..
            } => Some((openid, code, failure)),
            _ => None,
        })
        .collect();
    assert!(failures.contains(&("oLate".into(), 45015, Failure::Recipient)));
    assert!(failures.contains(&("oBusy".into(), 45047, Failure::Recipient)));
    assert_eq!(
        rig.fake.stats().injected_errors,
        1,
        "the 45047 was not retried"
    );
    let calls = rig.fake.stats().api_calls;
    let again = rig
        .outbound
        .send_custom("oBusy", &text("y"), "t:4")
        .await
        .expect_err("refused locally");
    assert!(
        matches!(
            again,
            ApiError::Refused(Refusal::Undeliverable { code: 45047 })
        ),
        "recorded for the user: {again}"
    );
    assert_eq!(rig.fake.stats().api_calls, calls, "WeChat was not asked");
}

#[tokio::test]
async fn a_message_whose_answer_is_lost_is_not_sent_again_and_counts_as_unknown() {
    let (fake, base) = fake().await;
    let opts = Options::default();
    let mut config = ApiConfig::new(
        &base,
        &opts.app_id,
        AppSecret::new(&opts.secret).expect("secret"),
    );
    config.timeout = Duration::from_millis(500);
    let api = HttpWeChatApi::new(
        config,
        Arc::new(MemoryTokenStore::default()),
        Arc::new(SystemClock),
    )
    .expect("client");
    let windows = Arc::new(MemoryContactWindows::default());
    let outbound = Outbound::new(
        Arc::new(api),
        windows.clone(),
        Arc::new(MemoryEventSink::default()),
        Arc::new(SystemClock),
        OutboundPolicy::default(),
    );
    fake.interact("oSlow");
    windows.touch("oSlow", now()).await.expect("touch");
    // WeChat delivers the message, but its answer never comes back.
    fake.lose_answers(1);
    let err = outbound
        .send_custom("oSlow", &text("您好"), "t:5")
        .await
        .expect_err("no answer in time");
    assert_eq!(err.failure(), Failure::Unknown, "{err}");
    assert!(matches!(err, ApiError::Unconfirmed(_)), "{err}");
    assert_eq!(
        fake.sent().len(),
        1,
        "one attempt, not retried: WeChat may have delivered it"
    );
    assert_eq!(
        windows.get("oSlow").await.expect("window").map(|w| w.sent),
        Some(1),
        "its budget stays spent"
    );
}

#[tokio::test]
async fn a_user_outside_the_48_hour_window_is_refused_locally() {
    let rig = rig(OutboundPolicy::default()).await;
    rig.windows
        .touch("oOld", now() - 48 * 3600)
        .await
        .expect("touch");
    let err = rig
        .outbound
        .send_custom("oOld", &text("x"), "t:1")
        .await
        .expect_err("closed");
    assert!(matches!(
        err,
        ApiError::Refused(Refusal::OutsideWindow { .. })
    ));
    assert_eq!(rig.fake.stats().api_calls, 0);
}

#[tokio::test]
async fn a_busy_wechat_is_retried_with_backoff_and_the_message_goes_once() {
    let rig = rig(OutboundPolicy {
        backoff: Duration::from_millis(20),
        ..OutboundPolicy::default()
    })
    .await;
    user_writes(&rig, "oA").await;
    rig.fake.inject(wca_fake_wechat::Fault {
        errcode: -1,
        path: "custom/send".into(),
        until_ms: None,
        calls: Some(2),
    });
    rig.outbound
        .send_custom("oA", &text("稍等"), "t:1")
        .await
        .expect("third try goes");
    assert_eq!(rig.fake.sent().len(), 1);
    assert_eq!(
        rig.windows.get("oA").await.expect("get").map(|w| w.sent),
        Some(1),
        "one message of the budget, not three"
    );
}

#[tokio::test]
async fn during_an_outage_the_breaker_stops_calls_and_every_message_goes_once_after_it() {
    let rig = Arc::new(
        rig(OutboundPolicy {
            backoff: Duration::from_millis(20),
            attempts: 2,
            breaker: BreakerConfig {
                consecutive_failures: 5,
                open_for: Duration::from_millis(500),
                ..BreakerConfig::default()
            },
            ..OutboundPolicy::default()
        })
        .await,
    );
    for i in 0..20 {
        user_writes(&rig, &format!("oU{i:02}")).await;
    }
    let outage = Duration::from_secs(3);
    rig.fake.fail_for(-1, "custom/send", outage);
    let started = tokio::time::Instant::now();
    // Each message is kept by its sender until it goes, as the async
    // responder and the campaign deliverer keep theirs (SQS redelivers).
    let mut senders = Vec::new();
    for i in 0..20 {
        let rig = Arc::clone(&rig);
        senders.push(tokio::spawn(async move {
            let openid = format!("oU{i:02}");
            let mut tries = 0;
            loop {
                tries += 1;
                match rig
                    .outbound
                    .send_custom(&openid, &text("恢复后送达"), &format!("t:{i}"))
                    .await
                {
                    Ok(()) => return tries,
                    Err(e) if e.failure() == Failure::Retry => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("{openid}: {e}"),
                }
            }
        }));
    }
    for s in senders {
        s.await.expect("join");
    }
    let took = started.elapsed();
    assert!(took >= outage, "nothing went during the outage");
    let sent = rig.fake.sent();
    assert_eq!(sent.len(), 20, "every message went");
    let mut who: Vec<_> = sent.iter().map(|s| s.openid.clone()).collect();
    who.sort();
    who.dedup();
    assert_eq!(who.len(), 20, "each once");
    let errors = rig.fake.stats().injected_errors;
    // Without the breaker, 20 senders retrying every 100 ms (2 tries
    // each) for 3 s would make about 1,200 calls.
    assert!(errors < 200, "the breaker held calls back: {errors} failed");
    let states: Vec<BreakerState> = rig
        .events
        .take()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::BreakerChanged { state } => Some(state),
            _ => None,
        })
        .collect();
    assert!(states.contains(&BreakerState::Open), "{states:?}");
    assert_eq!(states.last(), Some(&BreakerState::Closed), "{states:?}");
    assert_eq!(rig.outbound.breaker_state(), BreakerState::Closed);
}

fn screen() -> Arc<wca_filter::Filter> {
    let mut dict = wca_filter::Dictionary::new();
    dict.add_deny(
        "deny.tsv",
        "稳赚不赔\tfraud\tblock\n加微信\tcontact\tmask\n",
    )
    .expect("deny");
    Arc::new(dict.build().expect("filter"))
}

#[tokio::test]
async fn a_blocked_text_is_not_sent_costs_no_budget_and_is_a_compliance_hit() {
    let rig = rig_with(OutboundPolicy::default(), |o| o.with_screen(screen())).await;
    user_writes(&rig, "oA").await;
    let err = rig
        .outbound
        .send_custom("oA", &text("本产品保证稳 赚不赔"), "campaign:x:1")
        .await
        .expect_err("blocked");
    assert!(
        matches!(&err, ApiError::Refused(Refusal::Blocked { words }) if words == &["稳赚不赔"]),
        "{err}"
    );
    assert_eq!(err.failure(), Failure::Rejected, "never retried");
    assert_eq!(rig.fake.stats().api_calls, 0, "WeChat never saw it");
    assert_eq!(
        rig.windows.get("oA").await.expect("get").map(|w| w.sent),
        Some(0)
    );
    assert!(rig.events.take().iter().any(|e| matches!(
        &e.kind,
        EventKind::ComplianceHit { outcome, direction, .. }
            if outcome == "blocked" && *direction == wca_core::Direction::Outbound
    )));
}

#[tokio::test]
async fn a_masked_text_goes_out_masked_and_lands_in_the_users_history() {
    let archive = Arc::new(wca_core::memory::MemoryArchive::default());
    let kept = archive.clone();
    let rig = rig_with(OutboundPolicy::default(), |o| {
        o.with_screen(screen()).with_archive(kept, 3600)
    })
    .await;
    let user = "oMaskUser0000000000000001";
    user_writes(&rig, user).await;
    rig.outbound
        .send_custom(user, &text("有问题加微信问我"), "notice:1")
        .await
        .expect("sent");
    assert_eq!(rig.fake.sent()[0].content, "有问题***问我");
    let openid = wca_core::OpenId::parse(user).expect("openid");
    let history = wca_core::MessageArchive::history(&*archive, &openid, 10, now())
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].text(), Some("有问题***问我"), "archived as sent");
    assert_eq!(history[0].key(), "notice:1");
}
