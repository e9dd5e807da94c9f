//! `wca fake-wechat` (the WeChat API stand-in as a server) and `wca bench
//! outbound` (sends per second through the client, and an outage).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use wca_core::memory::{MemoryContactWindows, MemoryEventSink, MemoryTokenStore};
use wca_core::outbound::{BreakerConfig, OutboundPolicy};
use wca_core::{ContactWindows, CustomMessage, EventKind, Failure, Outbound, SystemClock};
use wca_fake_wechat::{FakeWeChat, Options};
use wca_wechat::api::{ApiConfig, AppSecret, HttpWeChatApi};

#[derive(Debug, Args)]
pub struct FakeWeChatArgs {
    /// Port on 127.0.0.1 (0: any free port, named on stderr).
    #[arg(long, default_value_t = 3918)]
    port: u16,
    /// The AppID it accepts.
    #[arg(long, default_value_t = Options::default().app_id)]
    app_id: String,
    /// The AppSecret it accepts (a stand-in's, not a real one).
    #[arg(long, default_value_t = Options::default().secret)]
    secret: String,
    /// Followers to create (`oFake00001`, ...), all tagged `demo`.
    #[arg(long, default_value_t = 0)]
    followers: u32,
    /// Followers per page of a tag or of all followers (WeChat: 10,000).
    #[arg(long, default_value_t = Options::default().page_size)]
    page_size: usize,
}

pub fn fake_wechat(args: FakeWeChatArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let fake = FakeWeChat::new(Options {
            app_id: args.app_id.clone(),
            secret: args.secret.clone(),
            page_size: args.page_size.max(1),
            ..Options::default()
        });
        if args.followers > 0 {
            let tag = fake.add_tag("demo");
            for i in 1..=args.followers {
                fake.add_follower(&format!("oFake{i:05}"), &[tag]);
            }
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
        let port = listener.local_addr()?.port();
        // One write: a reader that stops after the first line must get it
        // whole.
        let banner = format!(
            "WeChat API stand-in at http://127.0.0.1:{port}\n  \
             WECHAT_API_BASE=http://127.0.0.1:{port} WECHAT_APP_ID={app} WECHAT_APP_SECRET={secret}\n  \
             sent messages: GET /_fake/sent   counts: GET /_fake/stats   \
             busy for 30 s: POST /_fake/faults {{\"errcode\":-1,\"seconds\":30}}",
            app = args.app_id,
            secret = args.secret,
        );
        eprintln!("{banner}");
        axum::serve(listener, fake.router())
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving")
    })
}

#[derive(Debug, Args)]
pub struct OutboundBenchArgs {
    /// Messages to send, one per user.
    #[arg(long, default_value_t = 20_000)]
    sends: u32,
    /// Sends in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: u32,
    /// The client's rate limit, calls a second (WeChat's customer-service
    /// limit is about 400/s per account; raise it to measure the client).
    #[arg(long, default_value_t = 100_000)]
    rate: u32,
    /// Make the stand-in answer -1 (system busy) for this many seconds
    /// from the start: the breaker's figures.
    #[arg(long, default_value_t = 0)]
    outage_secs: u64,
}

pub fn bench(args: OutboundBenchArgs) -> anyhow::Result<()> {
    if args.sends == 0 || args.concurrency == 0 {
        bail!("--sends and --concurrency must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_bench(args))
}

async fn run_bench(args: OutboundBenchArgs) -> anyhow::Result<()> {
    let opts = Options::default();
    let (fake, addr) = FakeWeChat::start(opts.clone()).await?;
    let windows = Arc::new(MemoryContactWindows::default());
    let now = wca_core::Clock::now(&SystemClock);
    for i in 0..args.sends {
        let openid = format!("oBench{i:07}");
        fake.interact(&openid);
        windows.touch(&openid, now).await?;
    }
    let secret = AppSecret::new(&opts.secret).context("secret")?;
    let api = HttpWeChatApi::new(
        ApiConfig::new(&format!("http://{addr}"), &opts.app_id, secret),
        Arc::new(MemoryTokenStore::default()),
        Arc::new(SystemClock),
    )?;
    let events = Arc::new(MemoryEventSink::default());
    let outbound = Arc::new(Outbound::new(
        Arc::new(api),
        windows,
        events.clone(),
        Arc::new(SystemClock),
        OutboundPolicy {
            per_sec: args.rate,
            backoff: Duration::from_millis(50),
            breaker: BreakerConfig {
                open_for: Duration::from_secs(2),
                ..BreakerConfig::default()
            },
            ..OutboundPolicy::default()
        },
    ));
    if args.outage_secs > 0 {
        fake.fail_for(-1, "custom/send", Duration::from_secs(args.outage_secs));
    }
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let outbound = Arc::clone(&outbound);
        let next = Arc::clone(&next);
        let total = args.sends;
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut waits = 0u64;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return (latencies, waits);
                }
                let openid = format!("oBench{i:07}");
                let msg = CustomMessage::Text {
                    content: format!("您的订单 {i} 已发货"),
                };
                let t = Instant::now();
                loop {
                    match outbound
                        .send_custom(&openid, &msg, &format!("bench:{i}"))
                        .await
                    {
                        Ok(()) => break,
                        // Kept and tried again later, as a queue would.
                        Err(e) if e.failure() == Failure::Retry => {
                            waits += 1;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => {
                            eprintln!("{openid}: {e}");
                            break;
                        }
                    }
                }
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    let mut waits = 0;
    for w in workers {
        let (l, n) = w.await?;
        latencies.extend(l);
        waits += n;
    }
    let took = started.elapsed();
    latencies.sort();
    let pick = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[i].as_secs_f64() * 1000.0
    };
    let sent = fake.sent();
    let mut who: Vec<&str> = sent.iter().map(|s| s.openid.as_str()).collect();
    who.sort_unstable();
    who.dedup();
    let stats = fake.stats();
    let transitions: Vec<String> = events
        .take()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::BreakerChanged { state } => Some(state.as_str().to_owned()),
            _ => None,
        })
        .collect();
    println!(
        "sends {} in {:.2} s: {:.0} sends/s (concurrency {}, rate limit {}/s)",
        args.sends,
        took.as_secs_f64(),
        f64::from(args.sends) / took.as_secs_f64(),
        args.concurrency,
        args.rate,
    );
    println!(
        "latency per message, first try to accepted: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pick(0.5),
        pick(0.99),
        pick(1.0)
    );
    println!(
        "stand-in received {} messages for {} users; {} token fetches; {} calls answered busy; {} waits for a retry",
        sent.len(),
        who.len(),
        stats.stable_token_calls,
        stats.injected_errors,
        waits
    );
    if !transitions.is_empty() {
        println!("breaker: {}", transitions.join(" -> "));
    }
    if sent.len() != who.len() || who.len() != args.sends as usize {
        bail!(
            "{} messages for {} users, expected exactly one each for {}",
            sent.len(),
            who.len(),
            args.sends
        );
    }
    Ok(())
}

/// The WeChat stand-in `wca serve --fake-wechat` runs in its own process:
/// replies are pushed to it, and `wca chat` reads them back from it.
pub struct DevStandIn {
    /// The stand-in.
    pub fake: FakeWeChat,
    /// Its base URL.
    pub base: String,
    /// The AppSecret it accepts.
    pub secret: String,
}

impl DevStandIn {
    /// Starts the stand-in on a free loopback port, for `app_id`.
    pub async fn start(app_id: &str) -> anyhow::Result<Self> {
        let opts = Options {
            app_id: app_id.to_owned(),
            ..Options::default()
        };
        let (fake, addr) = FakeWeChat::start(opts.clone())
            .await
            .context("starting the WeChat stand-in")?;
        Ok(Self {
            fake,
            base: format!("http://{addr}"),
            secret: opts.secret,
        })
    }
}

/// The file in the data dir that tells `wca chat` where the stand-in of a
/// running `wca serve --fake-wechat` is.
pub fn stand_in_file(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("fake-wechat.url")
}

/// A user's window in the store, mirrored to the stand-in: a message the
/// user sends to `wca serve` is one WeChat saw too, so the stand-in opens
/// its own window for them, as WeChat would.
struct Mirrored {
    store: Arc<dyn ContactWindows>,
    fake: FakeWeChat,
}

#[async_trait::async_trait]
impl ContactWindows for Mirrored {
    async fn touch(&self, openid: &str, at: i64) -> Result<(), wca_core::PortError> {
        self.fake.interact(openid);
        self.store.touch(openid, at).await
    }

    async fn reserve(
        &self,
        openid: &str,
        now: i64,
        rules: wca_core::WindowRules,
    ) -> Result<wca_core::Reserved, wca_core::PortError> {
        self.store.reserve(openid, now, rules).await
    }

    async fn give_back(&self, openid: &str, window: i64) -> Result<(), wca_core::PortError> {
        self.store.give_back(openid, window).await
    }

    async fn undeliverable(
        &self,
        openid: &str,
        window: i64,
        code: i64,
    ) -> Result<(), wca_core::PortError> {
        self.store.undeliverable(openid, window, code).await
    }

    async fn get(
        &self,
        openid: &str,
    ) -> Result<Option<wca_core::ContactWindow>, wca_core::PortError> {
        self.store.get(openid).await
    }
}

/// How long after a message arrives a passive reply is still worth
/// answering with: WeChat stops waiting after 5 s.
const LATE_AFTER: Duration = Duration::from_secs(4);

/// The WeChat API client of `wca serve`, shared by async replies and
/// campaigns (one rate limit and one breaker for the account).
pub struct WeChatClient {
    /// The API.
    pub api: Arc<dyn wca_core::WeChatApi>,
    /// Sends behind the window, rate limit and breaker.
    pub outbound: Arc<Outbound>,
    /// The API's base URL.
    pub base: String,
}

/// The client for `stand_in`, or for `WECHAT_API_BASE` when
/// `WECHAT_APP_SECRET` is set; `None` otherwise.
pub fn wechat_client(
    store: &wca_local::RedbStore,
    app_id: &str,
    events: Arc<dyn wca_core::EventSink>,
    stand_in: Option<&DevStandIn>,
) -> anyhow::Result<Option<WeChatClient>> {
    let (base, secret) = match stand_in {
        Some(dev) => (
            dev.base.clone(),
            AppSecret::new(&dev.secret).context("the stand-in's secret")?,
        ),
        None => {
            let Some(secret) = std::env::var("WECHAT_APP_SECRET")
                .ok()
                .filter(|s| !s.trim().is_empty())
            else {
                return Ok(None);
            };
            (
                std::env::var("WECHAT_API_BASE")
                    .ok()
                    .filter(|b| !b.trim().is_empty())
                    .unwrap_or_else(|| wca_wechat::api::DEFAULT_BASE.to_owned()),
                AppSecret::new(&secret).context("WECHAT_APP_SECRET is not a valid AppSecret")?,
            )
        }
    };
    let clock: Arc<dyn wca_core::Clock> = Arc::new(SystemClock);
    let api = crate::campaign::abort_hook(Arc::new(HttpWeChatApi::new(
        ApiConfig::new(&base, app_id, secret),
        Arc::new(store.clone()),
        clock.clone(),
    )?))?;
    let outbound = Arc::new(Outbound::new(
        api.clone(),
        Arc::new(store.clone()),
        events,
        clock,
        OutboundPolicy::default(),
    ));
    Ok(Some(WeChatClient {
        api,
        outbound,
        base,
    }))
}

/// Replies through the customer-service API in `wca serve`, sent by a task
/// that drains the outbox, to `WECHAT_API_BASE` (or to `stand_in`, which
/// implies async mode):
/// - `WCA_REPLY_MODE=async`: every reply;
/// - passive mode with `WECHAT_APP_SECRET` set: only a reply decided too
///   late for WeChat to take it passively (over 4 s, e.g. a slow order
///   lookup; `WCA_LATE_REPLY_MS` changes the limit).
///
/// `None` in passive mode without an AppSecret.
pub fn async_replies(
    store: &wca_local::RedbStore,
    client: Option<&WeChatClient>,
    events: Arc<dyn wca_core::EventSink>,
    stand_in: Option<&DevStandIn>,
) -> anyhow::Result<Option<(wca_webhook::AsyncReplies, ReplySender)>> {
    let mode = std::env::var("WCA_REPLY_MODE").unwrap_or_default();
    let has_secret = client.is_some();
    let mut late_after = None;
    match (mode.trim(), stand_in) {
        ("" | "async", Some(_)) => {}
        ("" | "passive", None) if !has_secret => return Ok(None),
        ("" | "passive", None) => {
            late_after = Some(match std::env::var("WCA_LATE_REPLY_MS") {
                Ok(ms) if !ms.trim().is_empty() => Duration::from_millis(
                    ms.trim()
                        .parse()
                        .ok()
                        .filter(|&ms: &u64| (100..=60_000).contains(&ms))
                        .context(
                            "WCA_LATE_REPLY_MS must be a number of milliseconds from 100 to 60000",
                        )?,
                ),
                _ => LATE_AFTER,
            });
        }
        ("async", None) => {}
        ("passive", Some(_)) => {
            bail!("--fake-wechat receives async replies: unset WCA_REPLY_MODE=passive")
        }
        (other, _) => bail!("WCA_REPLY_MODE must be passive or async, not {other:?}"),
    }
    let client = client.context(
        "WCA_REPLY_MODE=async sends through the WeChat API: set WECHAT_APP_SECRET \
         (or try it with `wca serve --fake-wechat`)",
    )?;
    let base = client.base.clone();
    let outbound = client.outbound.clone();
    let clock: Arc<dyn wca_core::Clock> = Arc::new(SystemClock);
    let wake = Arc::new(tokio::sync::Notify::new());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let outbox = store.clone();
    let woken = wake.clone();
    let stopping = stop.clone();
    let task = tokio::spawn(async move {
        report_interrupted(&outbox, &*events, &*clock).await;
        // Small rounds, so that a stop waits for a few sends at most.
        while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
            let waiting = match wca_core::outbound::send_outbox(&outbox, &outbound, 20).await {
                Ok(round) => {
                    if round.sent + round.dropped > 0 {
                        tracing::info!(
                            sent = round.sent,
                            dropped = round.dropped,
                            waiting = round.waiting,
                            "async replies"
                        );
                    }
                    round.waiting
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the outbox could not be read; trying again");
                    1
                }
            };
            let pause = if waiting > 0 {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(1)
            };
            let _ = tokio::time::timeout(pause, woken.notified()).await;
        }
    });
    match late_after {
        Some(limit) => {
            tracing::info!(base = %base, late_after_ms = limit.as_millis(), "replies decided too late for a passive answer go through the customer-service API")
        }
        None => tracing::info!(base = %base, "async replies through the customer-service API"),
    }
    let mut contacts: Arc<dyn ContactWindows> = Arc::new(store.clone());
    if let Some(dev) = stand_in {
        contacts = Arc::new(Mirrored {
            store: contacts,
            fake: dev.fake.clone(),
        });
    }
    let sender = ReplySender {
        task,
        stop,
        wake: wake.clone(),
    };
    Ok(Some((
        wca_webhook::AsyncReplies {
            contacts,
            wake,
            queue: None,
            late_after,
        },
        sender,
    )))
}

/// The task that sends async replies.
pub struct ReplySender {
    task: tokio::task::JoinHandle<()>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
}

impl ReplySender {
    /// Lets the round in progress finish (at most `within`), so that no
    /// send is cut in the middle; what is left waits in the outbox for the
    /// next start.
    pub async fn stop(self, within: Duration) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
        let abort = self.task.abort_handle();
        if tokio::time::timeout(within, self.task).await.is_err() {
            tracing::warn!("async replies still sending at shutdown; stopping them");
            abort.abort();
        }
    }
}

/// Replies a previous process claimed and never finished: WeChat may or
/// may not have them, so they are not sent again, only recorded.
async fn report_interrupted(
    outbox: &dyn wca_core::Outbox,
    events: &dyn wca_core::EventSink,
    clock: &dyn wca_core::Clock,
) {
    let stuck = match outbox.take_interrupted().await {
        Ok(stuck) => stuck,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the outbox's interrupted sends");
            return;
        }
    };
    for entry in stuck {
        tracing::warn!(msg_key = %entry.reply.key, "an async reply was being sent when the last process stopped; not sent again");
        let event = wca_core::Event::outbound_failed(
            &entry.reply.key,
            &entry.reply.openid,
            "text",
            Failure::Retry,
            "interrupted",
            0,
            clock.now(),
        );
        let _ = events.emit(&[event]).await;
    }
}
