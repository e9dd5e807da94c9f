//! Passive mode with the WeChat API at hand (`wca serve` with an
//! AppSecret): a reply decided too late for WeChat to take it passively
//! (a slow lookup) goes through the customer-service API instead, once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wca_core::outbound::{OutboundPolicy, send_outbox};
use wca_core::{
    ConversationState, ConversationStore, OpenId, Outbound, PortError, SystemClock, Versioned,
};
use wca_fake_wechat::{FakeWeChat, Options};
use wca_local::RedbStore;
use wca_webhook::settings::{FileSettings, Settings};
use wca_webhook::{AsyncReplies, Ports, Webhook};
use wca_wechat::api::{ApiConfig, AppSecret, HttpWeChatApi};
use wca_wechat::reply;

const TOKEN: &str = "lateToken1234";
const APP_ID: &str = "wxlate000000000001";
const USER: &str = "oLateReply000000000000001";

/// The conversation store, slowed down like a backend that takes its time.
struct Slow {
    inner: RedbStore,
    delay: Arc<std::sync::Mutex<Duration>>,
}

#[async_trait]
impl ConversationStore for Slow {
    async fn get(&self, openid: &OpenId, now: i64) -> Result<Versioned, PortError> {
        let delay = *self.delay.lock().expect("delay");
        tokio::time::sleep(delay).await;
        self.inner.get(openid, now).await
    }

    async fn compare_and_set(
        &self,
        openid: &OpenId,
        expected: u64,
        state: &ConversationState,
        expires_at: i64,
    ) -> Result<bool, PortError> {
        self.inner
            .compare_and_set(openid, expected, state, expires_at)
            .await
    }
}

async fn post(hook: &Webhook, msg_id: &str, text: &str) -> String {
    common::post_text(hook, (TOKEN, APP_ID, "gh_late"), USER, msg_id, text).await
}

#[tokio::test]
async fn a_reply_decided_too_late_for_a_passive_answer_goes_once_through_the_customer_service_api()
{
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(&dir.path().join("wca.redb")).expect("store");
    let settings = Settings::resolve(
        FileSettings::default(),
        &[("WECHAT_TOKEN", TOKEN), ("WECHAT_APP_ID", APP_ID)],
        None,
    )
    .expect("settings");
    let delay = Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let events: Arc<wca_core::memory::MemoryEventSink> = Arc::default();
    let ports = Ports {
        archive: Arc::new(store.clone()),
        dedup: Arc::new(store.clone()),
        events: events.clone(),
        clock: Arc::new(SystemClock),
        conversations: Arc::new(Slow {
            inner: store.clone(),
            delay: delay.clone(),
        }),
        shop: wca_dialog::Shop::default(),
        commit: Some(Arc::new(store.message_commit(settings.timezone.clone()))),
    };
    let hook = Webhook::new(settings, ports).with_async_replies(AsyncReplies {
        contacts: Arc::new(store.clone()),
        wake: Arc::default(),
        queue: None,
        late_after: Some(Duration::from_millis(300)),
    });
    let opts = Options {
        app_id: APP_ID.into(),
        ..Options::default()
    };
    let (fake, addr) = FakeWeChat::start(opts.clone()).await.expect("stand-in");
    fake.interact(USER);
    let outbound = Outbound::new(
        Arc::new(
            HttpWeChatApi::new(
                ApiConfig::new(
                    &format!("http://{addr}"),
                    APP_ID,
                    AppSecret::new(&opts.secret).expect("secret"),
                ),
                Arc::new(store.clone()),
                Arc::new(SystemClock),
            )
            .expect("client"),
        ),
        Arc::new(store.clone()),
        events,
        Arc::new(SystemClock),
        OutboundPolicy::default(),
    );

    // Quick: a passive reply, nothing in the outbox.
    let quick = post(&hook, "601", "你好").await;
    let passive = reply::parse_reply(&quick).expect("a passive reply");
    let round = send_outbox(&store, &outbound, 10).await.expect("round");
    assert_eq!(round.sent, 0, "nothing waits in the outbox");

    // Slow: decided after the limit, so `success` and the outbox.
    *delay.lock().expect("delay") = Duration::from_millis(600);
    assert_eq!(post(&hook, "602", "你好").await, "success");
    // WeChat's retry gets the same answer, and adds nothing.
    assert_eq!(post(&hook, "602", "你好").await, "success");
    let round = send_outbox(&store, &outbound, 10).await.expect("round");
    assert_eq!(round.sent, 1, "{round:?}");
    let sent = fake.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].openid, USER);
    assert!(
        !sent[0].content.is_empty() && passive.content.is_some(),
        "{sent:?}"
    );
    let round = send_outbox(&store, &outbound, 10).await.expect("round");
    assert_eq!(round.sent, 0, "sent once");
}
