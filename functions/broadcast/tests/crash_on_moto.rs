//! The deliver worker on the local AWS stand-in (moto_server, started by
//! `infra/test.sh`) and the WeChat stand-in: 10,000 followers, the worker
//! aborted at 30% and again at 70%, and every follower still gets the
//! campaign exactly once.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wca_aws::{DynamoDbStore, SqsDeliveryQueue, stand_in_config, unique_name};
use wca_broadcast::Broadcast;
use wca_core::campaign::{Audiences, CampaignStore, Campaigns, Deliverer, NewCampaign, Runner};
use wca_core::{Clock, SystemClock, WeChatApi};
use wca_fake_wechat::{FakeWeChat, Options};
use wca_wechat::api::{ApiConfig, AppSecret, HttpWeChatApi};

const FOLLOWERS: usize = 10_000;

fn endpoint() -> String {
    wca_aws::stand_in_endpoint().expect(
        "WCA_MOTO_ENDPOINT is not set: run the tests with infra/test.sh, which starts moto_server",
    )
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` to end by itself.
async fn ended(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            start.elapsed() < within,
            "the deliver worker did not abort in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_30_and_70_percent_the_deliver_worker_still_sends_each_of_10000_followers_the_campaign_once()
 {
    let endpoint = endpoint();
    let opts = Options {
        page_size: 1000,
        ..Options::default()
    };
    let (fake, addr) = FakeWeChat::start(opts.clone()).await.expect("stand-in");
    let tag = fake.add_tag("周末活动");
    for i in 0..FOLLOWERS {
        fake.add_follower(&format!("oMoto{i:06}"), &[tag]);
    }
    let api_base = format!("http://{addr}");

    let config = stand_in_config(&endpoint).await;
    let table = unique_name("wca-campaigns");
    let store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        &table,
    ));
    store.create_table().await.expect("create table");
    // Two seconds of invisibility: the batch a dead worker held comes
    // back soon after the restart.
    let queue = SqsDeliveryQueue::create(
        aws_sdk_sqs::Client::new(&config),
        &unique_name("wca-delivery"),
        2,
    )
    .await
    .expect("create queue");

    // The broadcast function's tick, in this process: the campaign falls
    // due and its audience is expanded onto the queue.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let api: Arc<dyn WeChatApi> = Arc::new(
        HttpWeChatApi::new(
            ApiConfig::new(
                &api_base,
                &opts.app_id,
                AppSecret::new(&opts.secret).expect("secret"),
            ),
            store.clone(),
            clock.clone(),
        )
        .expect("api"),
    );
    let campaign_store: Arc<dyn CampaignStore> = store.clone();
    let campaigns = Arc::new(Campaigns::new(campaign_store.clone(), clock.clone(), None));
    let due = clock.now() + 60;
    let at = jiff::Timestamp::from_second(due)
        .expect("instant")
        .to_string();
    let campaign = campaigns
        .create(
            NewCampaign {
                name: "周末".to_owned(),
                at: Some(at),
                audience: "tag:周末活动".to_owned(),
                channel: "template".to_owned(),
                template_id: Some("TPL-2".to_owned()),
                text: "{{openid}}，周末见".to_owned(),
                ..NewCampaign::default()
            },
            "alice",
        )
        .await
        .expect("created");
    let runner = Runner {
        store: campaign_store.clone(),
        audiences: Arc::new(Audiences {
            api: Some(api),
            profiles: None,
            contacts: None,
            segment_page: 500,
        }),
        deliverer: Arc::new(Deliverer {
            store: campaign_store.clone(),
            outbound: None,
            api: None,
            profiles: None,
            screen: None,
            clock: clock.clone(),
        }),
        concurrency: 1,
        queue: Some(Arc::new(queue.clone())),
        stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    let summary = Broadcast::new(campaigns.clone(), runner)
        .tick(due)
        .await
        .expect("tick");
    assert_eq!((summary.started, summary.expanded), (1, 1), "{summary:?}");
    assert!(fake.sent().is_empty(), "the tick only queues");

    let worker = |abort_after: Option<u32>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_deliver"));
        cmd.env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .env("TABLE_NAME", &table)
            .env("EVENT_BUS_NAME", "default")
            .env("WECHAT_TOKEN", "campaignWorkerToken")
            .env("WECHAT_APP_ID", &opts.app_id)
            .env("WECHAT_APP_SECRET", &opts.secret)
            .env("WECHAT_API_BASE", &api_base)
            .env("WCA_DELIVERY_QUEUE_URL", queue.reader().url())
            .env("WCA_CAMPAIGN_CONCURRENCY", "1")
            .env("WCA_INTERRUPTED_AFTER_SECS", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(n) = abort_after {
            cmd.env("WCA_TEST_ABORT_AFTER_SENDS", n.to_string());
        }
        cmd.spawn().expect("start the deliver worker")
    };

    // It aborts right after WeChat accepted the 3,000th message, before
    // the worker recorded it: the worst moment to die.
    let mut first = worker(Some(3000));
    let status = ended(&mut first, Duration::from_secs(600)).await;
    assert!(!status.success(), "aborted: {status}");
    assert_eq!(fake.sent().len(), 3000);

    // Restarted, it goes on (the batch the first held comes back after
    // the queue's visibility timeout), and aborts again at 70%.
    let mut second = worker(Some(4000));
    let status = ended(&mut second, Duration::from_secs(600)).await;
    assert!(!status.success(), "aborted: {status}");
    assert_eq!(fake.sent().len(), 7000);

    let _third = Killed(worker(None));
    let started = Instant::now();
    let report = loop {
        let r = campaigns.report(&campaign.id).await.expect("report");
        let occ = &r.occurrences[0];
        if occ.state == "expanded" && occ.pending == 0 {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not finished in time: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let sent = fake.sent();
    let mut who: Vec<&str> = sent.iter().map(|s| s.openid.as_str()).collect();
    who.sort_unstable();
    who.dedup();
    assert_eq!(sent.len(), FOLLOWERS, "one message each, none twice");
    assert_eq!(who.len(), FOLLOWERS, "every follower got it");
    for s in &sent {
        assert_eq!(
            s.body["data"]["content"]["value"],
            format!("{}，周末见", s.openid),
            "each message carries its own recipient's variables"
        );
    }
    let occ = &report.occurrences[0];
    assert_eq!(occ.audience, FOLLOWERS as u64, "{report:?}");
    // The two messages accepted just before each abort were never
    // recorded as sent: the report says so, and nobody got one twice.
    assert_eq!(occ.failed.get("interrupted"), Some(&2), "{report:?}");
    assert_eq!(occ.sent, FOLLOWERS as u64 - 2, "{report:?}");
    assert!(occ.skipped.is_empty(), "{report:?}");
}
