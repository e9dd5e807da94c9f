//! Triggered campaigns on Lambda, on the local AWS stand-in and the
//! WeChat stand-in: the webhook (passive mode) answers a coupon question
//! as usual and queues a batch of one on the delivery queue; the deliver
//! function sends the coupon through the customer-service API. A second
//! question inside the cooldown queues nothing.

mod common;

use std::sync::Arc;

use wca_aws::{DynamoDbStore, SqsDeliveryQueue, stand_in_config};
use wca_broadcast::Deliver;
use wca_core::campaign::{
    BatchDeliverer, CampaignStore, Campaigns, Deliverer, DeliveryBatch, NewCampaign,
};
use wca_core::memory::MemoryEventSink;
use wca_core::outbound::OutboundPolicy;
use wca_core::{Outbound, SystemClock};
use wca_fake_wechat::{FakeWeChat, Options};
use wca_webhook::lambda::QueuedTriggers;
use wca_webhook::settings::{FileSettings, Settings};
use wca_webhook::{Ports, Webhook, router};
use wca_wechat::api::{ApiConfig, AppSecret, HttpWeChatApi};

const TOKEN: &str = "triggerToken1234";
const APP_ID: &str = "wxtrigger000000001";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const SIGNING: (&str, &str, &str) = (TOKEN, APP_ID, AES_KEY);

fn settings() -> Settings {
    let env = [
        ("WECHAT_TOKEN", TOKEN),
        ("WECHAT_APP_ID", APP_ID),
        ("WECHAT_AES_KEY", AES_KEY),
    ];
    Settings::resolve(FileSettings::default(), &env, None).expect("settings")
}

/// The stack's table and delivery queue on moto, and the WeChat stand-in.
struct Rig {
    config: aws_config::SdkConfig,
    store: Arc<DynamoDbStore>,
    queue: SqsDeliveryQueue,
    fake: FakeWeChat,
    base: String,
    secret: String,
}

async fn rig() -> Rig {
    let config = stand_in_config(&common::endpoint()).await;
    let store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        wca_aws::unique_name("wca"),
    ));
    store.create_table().await.expect("table");
    let queue = SqsDeliveryQueue::create(
        aws_sdk_sqs::Client::new(&config),
        &wca_aws::unique_name("delivery"),
        30,
    )
    .await
    .expect("queue");
    let opts = Options {
        app_id: APP_ID.into(),
        ..Options::default()
    };
    let (fake, addr) = FakeWeChat::start(opts.clone()).await.expect("stand-in");
    Rig {
        config,
        store,
        queue,
        fake,
        base: format!("http://{addr}"),
        secret: opts.secret,
    }
}

impl Rig {
    /// The functions' ports on the table, events kept in memory.
    fn ports(&self) -> Ports {
        Ports {
            archive: self.store.clone(),
            dedup: self.store.clone(),
            events: Arc::new(MemoryEventSink::default()),
            clock: Arc::new(SystemClock),
            conversations: self.store.clone(),
            shop: wca_dialog::Shop::default(),
            commit: None,
        }
    }

    /// Customer-service sends to the stand-in.
    fn outbound(&self) -> (Arc<HttpWeChatApi>, Arc<Outbound>) {
        let api = Arc::new(
            HttpWeChatApi::new(
                ApiConfig::new(
                    &self.base,
                    APP_ID,
                    AppSecret::new(&self.secret).expect("secret"),
                ),
                self.store.clone(),
                Arc::new(SystemClock),
            )
            .expect("client"),
        );
        let outbound = Arc::new(Outbound::new(
            api.clone(),
            self.store.clone(),
            Arc::new(MemoryEventSink::default()),
            Arc::new(SystemClock),
            OutboundPolicy::default(),
        ));
        (api, outbound)
    }

    /// The triggers as the functions wire them.
    fn triggers(&self) -> Arc<QueuedTriggers> {
        Arc::new(QueuedTriggers::new(self.store.clone(), self.queue.clone()))
    }
}

#[tokio::test]
async fn a_coupon_question_to_the_webhook_queues_one_coupon_that_the_deliver_function_sends_once() {
    let rig = rig().await;
    let (store, queue, fake) = (&rig.store, &rig.queue, &rig.fake);
    let campaign_store: Arc<dyn CampaignStore> = store.clone();
    let campaigns = Campaigns::new(campaign_store.clone(), Arc::new(SystemClock), None);
    let coupon = campaigns
        .create(
            NewCampaign {
                name: "问券送券".to_owned(),
                on_keyword: Some("优惠券".to_owned()),
                audience: "all".to_owned(),
                channel: "custom".to_owned(),
                text: "送您一张满100减20优惠券：QUAN-{{openid}}".to_owned(),
                ..NewCampaign::default()
            },
            "alice",
        )
        .await
        .expect("created");

    let webhook = router(Webhook::new(settings(), rig.ports()).with_triggers(rig.triggers()));
    let asker = "oTrigger00000000000000001";
    for (user, msg_id, text) in [
        (asker, "7101", "有优惠券吗"),
        ("oTrigger00000000000000002", "7102", "我的快递到哪了"),
        (asker, "7103", "还有别的优惠券吗"),
    ] {
        let (_, _, status, body) = common::post_text(&webhook, SIGNING, user, msg_id, text).await;
        assert_eq!(status, 200);
        assert!(!body.is_empty(), "answered passively as usual");
    }

    let reader = queue.reader();
    let mut queued = Vec::new();
    for _ in 0..3 {
        queued.extend(reader.receive(1).await.expect("receive"));
    }
    assert_eq!(queued.len(), 1, "one coupon for one asker: {queued:?}");
    let batch: DeliveryBatch = serde_json::from_str(&queued[0].body).expect("a batch");
    assert_eq!(
        (batch.campaign_id.as_str(), batch.openids.as_slice()),
        (coupon.id.as_str(), [asker.to_owned()].as_slice())
    );

    // The deliver function, sending to the stand-in.
    let (api, outbound) = rig.outbound();
    fake.interact(asker);
    let deliver = Deliver::new(
        BatchDeliverer::new(
            Arc::new(Deliverer {
                store: campaign_store,
                outbound: Some(outbound),
                api: Some(api),
                profiles: None,
                screen: None,
                clock: Arc::new(SystemClock),
            }),
            4,
        ),
        Arc::new(queue.clone()),
    );
    let handled = deliver.handle(&queued[0].body).await.expect("delivered");
    assert_eq!(handled.sent, 1, "{handled:?}");
    let again = deliver.handle(&queued[0].body).await.expect("redelivered");
    assert_eq!(
        (again.sent, again.already),
        (0, 1),
        "SQS redelivery sends nothing"
    );

    let coupons: Vec<_> = fake
        .sent()
        .into_iter()
        .filter(|s| s.api == "custom")
        .map(|s| (s.openid, s.content))
        .collect();
    assert_eq!(
        coupons,
        vec![(
            asker.to_owned(),
            format!("送您一张满100减20优惠券：QUAN-{asker}")
        )]
    );
    let report = campaigns.report(&coupon.id).await.expect("report");
    assert_eq!(report.occurrences[0].sent, 1);
}

#[tokio::test]
async fn in_async_mode_the_responder_that_decides_the_reply_queues_the_coupon() {
    use wca_aws::SqsMessageQueue;
    use wca_webhook::AsyncReplies;
    use wca_webhook::lambda::Responder;

    let rig = rig().await;
    let (store, delivery) = (&rig.store, &rig.queue);
    let replies = SqsMessageQueue::create(
        aws_sdk_sqs::Client::new(&rig.config),
        &wca_aws::unique_name("replies"),
        30,
    )
    .await
    .expect("fifo queue");
    let campaign_store: Arc<dyn CampaignStore> = store.clone();
    let coupon = Campaigns::new(campaign_store, Arc::new(SystemClock), None)
        .create(
            NewCampaign {
                name: "问券送券".to_owned(),
                on_intent: Some("promotion".to_owned()),
                on_keyword: Some("优惠券".to_owned()),
                audience: "all".to_owned(),
                channel: "custom".to_owned(),
                text: "送您一张优惠券".to_owned(),
                ..NewCampaign::default()
            },
            "alice",
        )
        .await
        .expect("created");
    // The webhook in async mode only queues the message...
    let webhook = router(
        Webhook::new(settings(), rig.ports()).with_async_replies(AsyncReplies {
            contacts: store.clone(),
            wake: Arc::default(),
            queue: Some(Arc::new(replies.clone())),
            late_after: None,
        }),
    );
    let asker = "oTrigger00000000000000009";
    let (_, _, status, _) = common::post_text(&webhook, SIGNING, asker, "7201", "有优惠券吗").await;
    assert_eq!(status, 200);
    assert!(
        delivery
            .reader()
            .receive(1)
            .await
            .expect("receive")
            .is_empty(),
        "the webhook decided nothing yet"
    );

    // ...the responder decides the reply, and hears of the text.
    let (_, outbound) = rig.outbound();
    let responder = Responder::new(
        Webhook::new(settings(), rig.ports()).with_triggers(rig.triggers()),
        outbound,
    );
    let batch = replies.reader().receive(1).await.expect("receive");
    assert_eq!(batch.len(), 1);
    let response = responder.handle(common::as_sqs_event(&batch)).await;
    assert!(response.batch_item_failures.is_empty());
    let queued = delivery.reader().receive(1).await.expect("receive");
    assert_eq!(queued.len(), 1, "one coupon queued");
    let fired: DeliveryBatch = serde_json::from_str(&queued[0].body).expect("a batch");
    assert_eq!(fired.campaign_id, coupon.id);
    assert_eq!(fired.openids, [asker]);
}
