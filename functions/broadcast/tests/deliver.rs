//! The deliver function's handling of queue messages, on the in-memory
//! campaign store and the WeChat stand-in: redelivery, pauses, claims a
//! dead worker left behind, and bodies that are not batches.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use wca_broadcast::Deliver;
use wca_core::campaign::{
    BatchDeliverer, Campaign, CampaignStore, Campaigns, Deliverer, DeliveryBatch, DeliveryQueue,
    NewCampaign,
};
use wca_core::memory::{MemoryCampaigns, MemoryTokenStore};
use wca_core::{Clock, ManualClock, PortError, WeChatApi};
use wca_fake_wechat::{FakeWeChat, Options};
use wca_wechat::api::{ApiConfig, AppSecret, HttpWeChatApi};

/// What the worker queued again, and with which delay.
#[derive(Default)]
struct Requeued(Mutex<Vec<(DeliveryBatch, Duration)>>);

#[async_trait]
impl DeliveryQueue for Requeued {
    async fn enqueue(&self, batches: &[DeliveryBatch], delay: Duration) -> Result<(), PortError> {
        let mut queued = self.0.lock().expect("lock");
        queued.extend(batches.iter().map(|b| (b.clone(), delay)));
        Ok(())
    }
}

impl Requeued {
    fn take(&self) -> Vec<(DeliveryBatch, Duration)> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

struct World {
    fake: FakeWeChat,
    clock: Arc<ManualClock>,
    store: Arc<MemoryCampaigns>,
    campaigns: Campaigns,
    campaign: Campaign,
    scheduled_at: i64,
    requeued: Arc<Requeued>,
    deliver: Deliver,
}

const NOW: i64 = 1_795_000_000;
const INTERRUPTED_AFTER: i64 = 120;

async fn world(followers: &[&str]) -> World {
    let opts = Options::default();
    let (fake, addr) = FakeWeChat::start(opts.clone()).await.expect("stand-in");
    for openid in followers {
        fake.add_follower(openid, &[]);
    }
    let clock = Arc::new(ManualClock::new(NOW));
    let store = Arc::new(MemoryCampaigns::default());
    let api: Arc<dyn WeChatApi> = Arc::new(
        HttpWeChatApi::new(
            ApiConfig::new(
                &format!("http://{addr}"),
                &opts.app_id,
                AppSecret::new(&opts.secret).expect("secret"),
            ),
            Arc::new(MemoryTokenStore::default()),
            clock.clone(),
        )
        .expect("api"),
    );
    let campaign_store: Arc<dyn CampaignStore> = store.clone();
    let campaigns = Campaigns::new(campaign_store.clone(), clock.clone(), None);
    let campaign = campaigns
        .create(
            NewCampaign {
                name: "通知".to_owned(),
                at: Some(
                    jiff::Timestamp::from_second(NOW + 3600)
                        .expect("instant")
                        .to_string(),
                ),
                audience: "all".to_owned(),
                channel: "template".to_owned(),
                template_id: Some("TPL-9".to_owned()),
                text: "{{openid}}，您的积分已到账".to_owned(),
                ..NewCampaign::default()
            },
            "alice",
        )
        .await
        .expect("created");
    let occurrence = campaigns
        .run_now(&campaign.id, "alice")
        .await
        .expect("run now");
    let deliverer = Arc::new(Deliverer {
        store: campaign_store,
        outbound: None,
        api: Some(api),
        profiles: None,
        screen: None,
        clock: clock.clone(),
    });
    let requeued = Arc::new(Requeued::default());
    let deliver = Deliver::new(
        BatchDeliverer::new(deliverer, 4).interrupted_after(INTERRUPTED_AFTER),
        requeued.clone(),
    );
    World {
        fake,
        clock,
        store,
        campaigns,
        campaign,
        scheduled_at: occurrence.scheduled_at,
        requeued,
        deliver,
    }
}

impl World {
    fn body(&self, openids: &[&str]) -> String {
        serde_json::to_string(&DeliveryBatch {
            campaign_id: self.campaign.id.clone(),
            scheduled_at: self.scheduled_at,
            openids: openids.iter().map(|s| (*s).to_owned()).collect(),
            waits: 0,
        })
        .expect("json")
    }

    /// Claims `openid`'s delivery as another worker would, now.
    async fn claimed_elsewhere(&self, openid: &str) {
        let occurrence = wca_core::campaign::occurrence_id(&self.campaign.id, self.scheduled_at);
        let existing = self
            .store
            .claim_delivery(&occurrence, openid, self.clock.now())
            .await
            .expect("claim");
        assert!(existing.is_none(), "{existing:?}");
    }

    fn sent_to(&self) -> Vec<String> {
        let mut who: Vec<String> = self.fake.sent().into_iter().map(|s| s.openid).collect();
        who.sort();
        who
    }
}

#[tokio::test]
async fn a_batch_the_queue_delivers_twice_reaches_each_recipient_once() {
    let w = world(&["oA", "oB", "oC"]).await;
    let body = w.body(&["oA", "oB", "oC"]);
    let first = w.deliver.handle(&body).await.expect("first");
    assert_eq!((first.sent, first.already), (3, 0));
    let again = w.deliver.handle(&body).await.expect("again");
    assert_eq!((again.sent, again.already), (0, 3));
    assert_eq!(w.sent_to(), ["oA", "oB", "oC"]);
    assert!(w.requeued.take().is_empty());
}

#[tokio::test]
async fn a_paused_campaigns_batch_goes_back_on_the_queue_and_is_sent_once_resumed() {
    let w = world(&["oA", "oB"]).await;
    w.campaigns
        .pause(&w.campaign.id, "alice")
        .await
        .expect("pause");
    let held = w
        .deliver
        .handle(&w.body(&["oA", "oB"]))
        .await
        .expect("handled");
    assert_eq!((held.sent, held.requeued), (0, 2));
    assert!(w.fake.sent().is_empty(), "nothing goes out while paused");
    let queued = w.requeued.take();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].0.openids, ["oA", "oB"]);
    assert_eq!(queued[0].1, Duration::from_secs(900), "SQS's longest delay");

    w.campaigns
        .resume(&w.campaign.id, "alice")
        .await
        .expect("resume");
    let body = serde_json::to_string(&queued[0].0).expect("json");
    let sent = w.deliver.handle(&body).await.expect("handled");
    assert_eq!(sent.sent, 2);
    assert_eq!(w.sent_to(), ["oA", "oB"]);
}

#[tokio::test]
async fn a_claim_left_sending_waits_while_a_live_worker_may_own_it_then_counts_as_interrupted() {
    let w = world(&["oA", "oB"]).await;
    // A worker claimed oA, then died (or is still sending).
    w.claimed_elsewhere("oA").await;
    w.clock.advance(30);
    let first = w
        .deliver
        .handle(&w.body(&["oA", "oB"]))
        .await
        .expect("handled");
    assert_eq!((first.sent, first.requeued), (1, 1));
    let queued = w.requeued.take();
    assert_eq!(queued[0].0.openids, ["oA"]);
    assert_eq!(
        queued[0].1,
        Duration::from_secs(91),
        "it comes back once the claim is old enough to be a dead worker's"
    );

    w.clock.advance(91);
    let body = serde_json::to_string(&queued[0].0).expect("json");
    let settled = w.deliver.handle(&body).await.expect("handled");
    assert_eq!((settled.sent, settled.other, settled.requeued), (0, 1, 0));
    assert_eq!(w.sent_to(), ["oB"], "oA is never sent: WeChat may have it");
    let report = w.campaigns.report(&w.campaign.id).await.expect("report");
    let occ = &report.occurrences[0];
    assert_eq!(occ.sent, 1);
    assert_eq!(occ.failed.get("interrupted"), Some(&1));
}

#[tokio::test]
async fn a_body_that_is_not_a_batch_is_an_error_for_the_queue_to_retry_and_park() {
    let w = world(&["oA"]).await;
    let err = w
        .deliver
        .handle(r#"{"campaign_id": "c1"}"#)
        .await
        .expect_err("refused");
    assert!(err.contains("not a delivery batch"), "{err}");
    assert!(w.fake.sent().is_empty());
}

#[tokio::test]
async fn a_batch_that_waited_a_day_for_something_other_than_a_pause_is_left_for_the_dead_letter_queue()
 {
    let w = world(&["oA"]).await;
    // Held by a claim another worker may still own: it would wait again.
    w.claimed_elsewhere("oA").await;
    let tired = serde_json::to_string(&DeliveryBatch {
        campaign_id: w.campaign.id.clone(),
        scheduled_at: w.scheduled_at,
        openids: vec!["oA".to_owned()],
        waits: wca_core::campaign::MAX_WAITS,
    })
    .expect("json");
    let err = w.deliver.handle(&tired).await.expect_err("given up");
    assert!(err.contains("dead-letter"), "{err}");
    assert!(w.requeued.take().is_empty(), "not queued again");

    // A pause does not count: a paused campaign's batch waits as long as
    // the pause lasts.
    w.campaigns
        .pause(&w.campaign.id, "alice")
        .await
        .expect("pause");
    let held = w.deliver.handle(&tired).await.expect("held");
    assert_eq!(held.requeued, 1);
}
