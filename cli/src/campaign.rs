//! `wca campaign ...`: the admin API's client; and the campaign scheduler
//! `wca serve` runs in process (the same tick as the Lambda's
//! one-minute rule).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use wca_core::campaign::{Campaigns, RunEnd, Runner};

use crate::DEFAULT_DATA_DIR;

#[derive(Debug, Args)]
pub struct Server {
    /// The admin API: a running `wca serve`, or a deployed stack's API.
    #[arg(long, global = true, default_value = "http://127.0.0.1:3000")]
    server: String,
    /// Where `wca serve` keeps its admin token when WCA_ADMIN_TOKEN is not
    /// set.
    #[arg(long, global = true, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Create a campaign; prints {"id": "..."}.
    Add(Box<AddArgs>),
    /// List campaigns.
    List(#[command(flatten)] Server),
    /// One campaign, with its audit trail.
    Show(IdArgs),
    /// Stop a campaign from firing.
    Pause(IdArgs),
    /// Let a paused campaign fire again.
    Resume(IdArgs),
    /// Approve a campaign another admin created (双人复核).
    Approve(IdArgs),
    /// Start a run now, outside the schedule.
    RunNow(IdArgs),
    /// Per-run report: audience, sent, skipped by reason, failed by errcode.
    Report(IdArgs),
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The campaign's id.
    id: String,
    #[command(flatten)]
    server: Server,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// A name people recognise.
    #[arg(long)]
    name: String,
    /// 5-field cron (minute hour day-of-month month day-of-week, Monday = 1).
    #[arg(long, requires = "tz", conflicts_with = "at")]
    cron: Option<String>,
    /// The IANA zone the cron reads its clock in (Asia/Shanghai).
    #[arg(long)]
    tz: Option<String>,
    /// Once, at this RFC 3339 instant (2026-12-01T09:00:00+08:00).
    #[arg(long, required_unless_present_any = ["cron", "on_intent", "on_keyword"])]
    at: Option<String>,
    /// Instead of a time: sent to whoever writes a message of one of these
    /// intents (comma-separated: promotion), with --channel custom
    /// --audience all.
    #[arg(long, conflicts_with_all = ["cron", "at"])]
    on_intent: Option<String>,
    /// ...or a message holding one of these words (comma-separated:
    /// 优惠券,折扣).
    #[arg(long, conflicts_with_all = ["cron", "at"])]
    on_keyword: Option<String>,
    /// A triggered campaign reaches a user at most once in this many days
    /// (default 7).
    #[arg(long)]
    cooldown_days: Option<u32>,
    /// tag:NAME, all, or segment:EXPR (vip>=2,tag=复购,active<48h).
    #[arg(long)]
    audience: String,
    /// custom (48-hour window), template (service notices), mass (by tag),
    /// or tag (a triggered campaign puts the WeChat tag --text names on the
    /// user who wrote).
    #[arg(long)]
    channel: String,
    /// The content, with {{name}}, {{vip_level}}, {{tags}},
    /// {{last_order_id}}, {{openid}} filled per user.
    #[arg(long)]
    text: String,
    /// A value for users without one: --default name=亲 (repeatable).
    #[arg(long = "default", value_name = "VAR=VALUE")]
    defaults: Vec<String>,
    /// The template's id (channel template).
    #[arg(long)]
    template_id: Option<String>,
    /// Local hours without sends, START-END (22-8).
    #[arg(long)]
    quiet_hours: Option<String>,
    /// Messages a second, at most, for this campaign.
    #[arg(long)]
    rate: Option<u32>,
    /// Not before this RFC 3339 instant.
    #[arg(long)]
    starts: Option<String>,
    /// Not after this RFC 3339 instant.
    #[arg(long)]
    ends: Option<String>,
    /// How late (seconds) a run missed during downtime may still start.
    #[arg(long)]
    grace_secs: Option<i64>,
    #[command(flatten)]
    server: Server,
}

/// The admin token file `wca serve` writes when WCA_ADMIN_TOKEN is unset.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-token")
}

struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    fn new(server: &Server) -> anyhow::Result<Self> {
        let token = std::env::var("WCA_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .or_else(|| {
                std::fs::read_to_string(admin_token_path(&server.data_dir))
                    .ok()
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
            })
            .context(
                "set WCA_ADMIN_TOKEN to the admin token (a local `wca serve` without one keeps its own in .wca-data/admin-token)",
            )?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Ok(Self {
            base: server.server.trim_end_matches('/').to_owned(),
            token,
            agent,
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = format!("{}/admin/{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let sent = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            (_, Some(body)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(body.to_string().as_bytes()),
            _ => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty(),
        };
        let mut resp = sent.with_context(|| format!("calling {url}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .context("reading the answer")?;
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("HTTP {status} from {url}: {}", text.trim()))?;
        if !(200..300).contains(&status) {
            let message = value["error"].as_str().unwrap_or(text.trim());
            bail!("HTTP {status}: {message}");
        }
        Ok(value)
    }
}

fn print(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn run(cmd: CampaignCommand) -> anyhow::Result<()> {
    match cmd {
        CampaignCommand::Add(args) => {
            let mut defaults = BTreeMap::new();
            for pair in &args.defaults {
                let (k, v) = pair
                    .split_once('=')
                    .with_context(|| format!("--default {pair:?}: write VAR=VALUE"))?;
                defaults.insert(k.trim().to_owned(), v.to_owned());
            }
            let body = json!({
                "name": args.name, "cron": args.cron, "tz": args.tz, "at": args.at,
                "audience": args.audience, "channel": args.channel, "text": args.text,
                "defaults": defaults, "template_id": args.template_id,
                "quiet_hours": args.quiet_hours, "rate_per_sec": args.rate,
                "starts": args.starts, "ends": args.ends, "grace_secs": args.grace_secs,
                "on_intent": args.on_intent, "on_keyword": args.on_keyword,
                "cooldown_days": args.cooldown_days,
            });
            let created = Client::new(&args.server)?.call("POST", "campaigns", Some(&body))?;
            println!("{}", json!({ "id": created["id"] }));
            Ok(())
        }
        CampaignCommand::List(server) => {
            let all = Client::new(&server)?.call("GET", "campaigns", None)?;
            for c in all["campaigns"].as_array().into_iter().flatten() {
                let next = c["next_fire"]
                    .as_i64()
                    .and_then(|t| jiff::Timestamp::from_second(t).ok())
                    .map_or_else(|| "-".to_owned(), |t| t.to_string());
                println!(
                    "{}\t{}\t{}\t{}\t{}\tnext {}",
                    c["id"].as_str().unwrap_or_default(),
                    c["status"].as_str().unwrap_or_default(),
                    c["channel"].as_str().unwrap_or_default(),
                    c["audience"].as_str().unwrap_or_default(),
                    c["name"].as_str().unwrap_or_default(),
                    next
                );
            }
            Ok(())
        }
        CampaignCommand::Show(a) => {
            print(&Client::new(&a.server)?.call("GET", &format!("campaigns/{}", a.id), None)?)
        }
        CampaignCommand::Pause(a) => print(&Client::new(&a.server)?.call(
            "POST",
            &format!("campaigns/{}/pause", a.id),
            None,
        )?),
        CampaignCommand::Resume(a) => print(&Client::new(&a.server)?.call(
            "POST",
            &format!("campaigns/{}/resume", a.id),
            None,
        )?),
        CampaignCommand::Approve(a) => print(&Client::new(&a.server)?.call(
            "POST",
            &format!("campaigns/{}/approve", a.id),
            None,
        )?),
        CampaignCommand::RunNow(a) => print(&Client::new(&a.server)?.call(
            "POST",
            &format!("campaigns/{}/run-now", a.id),
            None,
        )?),
        CampaignCommand::Report(a) => {
            let report =
                Client::new(&a.server)?.call("GET", &format!("campaigns/{}/report", a.id), None)?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
    }
}

/// The scheduler task of `wca serve`.
pub struct Scheduler {
    task: tokio::task::JoinHandle<()>,
    stop: Arc<AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
}

/// Every `every` (and when woken): claims due occurrences, then runs each
/// unfinished one (new, resumed after a restart, or waiting out quiet
/// hours or a pause) that is not already running.
pub fn spawn_scheduler(
    campaigns: Arc<Campaigns>,
    runner: Arc<Runner>,
    clock: Arc<dyn wca_core::Clock>,
    wake: Arc<tokio::sync::Notify>,
    every: Duration,
) -> Scheduler {
    let stop = runner.stop.clone();
    let woken = wake.clone();
    let stopping = stop.clone();
    let task = tokio::spawn(async move {
        match campaigns.settle_interrupted(clock.now() + 1).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                interrupted = n,
                "campaign sends cut off by the last stop are recorded as interrupted"
            ),
            Err(e) => tracing::warn!(error = %e, "could not settle interrupted campaign sends"),
        }
        let running: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut runs = tokio::task::JoinSet::new();
        while !stopping.load(Ordering::SeqCst) {
            if let Err(e) = campaigns.tick(clock.now()).await {
                tracing::warn!(error = %e, "campaign tick failed; trying again");
            }
            match campaigns.unfinished().await {
                Ok(open) => {
                    for (campaign, occurrence) in open {
                        let id = occurrence.id();
                        let fresh = running
                            .lock()
                            .map(|mut set| set.insert(id.clone()))
                            .unwrap_or(false);
                        if !fresh {
                            continue;
                        }
                        let runner = runner.clone();
                        let running = running.clone();
                        runs.spawn(async move {
                            let end = runner.run(&campaign.id, occurrence.scheduled_at).await;
                            match &end {
                                Ok(RunEnd::Finished) => {
                                    tracing::info!(occurrence = %id, "campaign run finished")
                                }
                                Ok(other) => {
                                    tracing::info!(occurrence = %id, end = ?other, "campaign run paused")
                                }
                                Err(e) => {
                                    tracing::warn!(occurrence = %id, error = %e, "campaign run stopped by a store error")
                                }
                            }
                            if let Ok(mut set) = running.lock() {
                                set.remove(&id);
                            }
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not read unfinished campaign runs"),
            }
            while runs.try_join_next().is_some() {}
            let _ = tokio::time::timeout(every, woken.notified()).await;
        }
        // Let each run reach its next safe point (between sends).
        while runs.join_next().await.is_some() {}
    });
    Scheduler { task, stop, wake }
}

impl Scheduler {
    /// Stops between sends (at most `within`); what is left resumes at the
    /// next start.
    pub async fn stop(self, within: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        let abort = self.task.abort_handle();
        if tokio::time::timeout(within, self.task).await.is_err() {
            tracing::warn!("campaign runs still sending at shutdown; stopping them");
            abort.abort();
        }
    }
}

impl Scheduler {
    /// What wakes the scheduler before its next tick (after `run-now`).
    pub fn wake(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }
}

/// Campaigns in `wca serve`: kept in the embedded store, screened by the
/// configured filter, audiences from the WeChat API (`client`) and the
/// shop's profile file (segments), sent through `client`'s outbound
/// sender. With the stand-in, the shop's users become its followers,
/// carrying their profile tags as WeChat tags, so a demo campaign to
/// `tag:VIP` has an audience.
pub fn local(
    store: &wca_local::RedbStore,
    settings: &wca_webhook::settings::Settings,
    client: Option<&crate::outbound::WeChatClient>,
    profiles: Option<Arc<dyn wca_core::ProfileStore>>,
    stand_in: Option<&crate::outbound::DevStandIn>,
) -> anyhow::Result<(
    Arc<Campaigns>,
    Scheduler,
    Arc<dyn wca_core::campaign::MessageTriggers>,
)> {
    use wca_webhook::shop::ShopSource;
    let clock: Arc<dyn wca_core::Clock> = Arc::new(wca_core::SystemClock);
    let screen: Arc<dyn wca_core::OutboundScreen> = Arc::new(settings.filter.clone());
    let campaign_store: Arc<dyn wca_core::campaign::CampaignStore> = Arc::new(store.clone());
    let directory = match settings
        .shop
        .users
        .as_deref()
        .map(|v| ShopSource::parse(v, &settings.base_dir))
    {
        Some(ShopSource::File(path)) => Some(Arc::new(
            wca_local::JsonlProfiles::load(&path)
                .with_context(|| format!("reading the profiles in {}", path.display()))?,
        )),
        _ => None,
    };
    if let (Some(dev), Some(dir)) = (stand_in, &directory) {
        seed_stand_in(&dev.fake, dir);
    }
    let api: Option<Arc<dyn wca_core::WeChatApi>> = client.map(|c| c.api.clone());
    let audiences = Arc::new(wca_core::campaign::Audiences {
        api: api.clone(),
        profiles: directory.map(|d| {
            let d: Arc<dyn wca_core::campaign::ProfileDirectory> = d;
            d
        }),
        contacts: Some(Arc::new(store.clone())),
        segment_page: 500,
    });
    let campaigns = Arc::new(
        Campaigns::new(campaign_store.clone(), clock.clone(), Some(screen.clone()))
            .with_approval(wca_core::campaign::Approval {
                above: env_number("WCA_APPROVAL_ABOVE", 1000)?,
                audiences: audiences.clone(),
            })
            .with_segments(audiences.profiles.is_some()),
    );
    let deliverer = Arc::new(wca_core::campaign::Deliverer {
        store: campaign_store.clone(),
        outbound: client.map(|c| c.outbound.clone()),
        api,
        profiles,
        screen: Some(screen),
        clock: clock.clone(),
    });
    let runner = Arc::new(Runner {
        store: campaign_store.clone(),
        audiences,
        deliverer: deliverer.clone(),
        concurrency: env_number("WCA_CAMPAIGN_CONCURRENCY", 32)?,
        queue: None,
        stop: Arc::new(AtomicBool::new(false)),
    });
    let every = Duration::from_millis(env_number("WCA_CAMPAIGN_TICK_MS", 15_000)?);
    let triggers = Arc::new(LocalTriggers {
        triggers: wca_core::campaign::Triggers::new(
            campaign_store,
            every.min(Duration::from_secs(10)),
        ),
        batches: Arc::new(wca_core::campaign::BatchDeliverer::new(deliverer, 4)),
    });
    let scheduler = spawn_scheduler(
        campaigns.clone(),
        runner,
        clock,
        Arc::new(tokio::sync::Notify::new()),
        every,
    );
    Ok((campaigns, scheduler, triggers))
}

/// Triggered campaigns in `wca serve`: each text the webhook committed
/// is matched in a task of its own (the reply does not wait), and what
/// fires is delivered at once, through the same claims as any campaign.
struct LocalTriggers {
    triggers: wca_core::campaign::Triggers,
    batches: Arc<wca_core::campaign::BatchDeliverer>,
}

#[async_trait::async_trait]
impl wca_core::campaign::MessageTriggers for LocalTriggers {
    async fn on_message(&self, openid: &str, text: &str, intent: Option<&str>, now: i64) {
        let batches = match self.triggers.fired(openid, text, intent, now).await {
            Ok(batches) => batches,
            Err(e) => {
                tracing::warn!(error = %e, "triggered campaigns could not be checked for a message");
                return;
            }
        };
        for batch in batches {
            tokio::spawn(deliver_until_done(self.batches.clone(), batch));
        }
    }
}

/// Delivers `batch`, waiting out what must wait (WeChat busy, a pause)
/// for up to about an hour.
async fn deliver_until_done(
    batches: Arc<wca_core::campaign::BatchDeliverer>,
    mut batch: wca_core::campaign::DeliveryBatch,
) {
    for _ in 0..60 {
        match batches.deliver(batch.clone()).await {
            Ok(outcome) => match outcome.later {
                Some((again, delay, why)) => {
                    tracing::info!(why, "a triggered campaign message waits");
                    tokio::time::sleep(delay.min(Duration::from_secs(60))).await;
                    batch = again;
                }
                None => return,
            },
            Err(e) => {
                tracing::warn!(error = %e, "a triggered campaign message could not be delivered; trying again");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
    tracing::warn!(campaign_id = %batch.campaign_id, "a triggered campaign message was given up after an hour of waiting");
}

fn env_number<T: TryFrom<u64>>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .and_then(|n| T::try_from(n).ok())
            .with_context(|| format!("{name} must be a positive whole number, not {v:?}")),
        _ => Ok(default),
    }
}

/// The shop's users as followers of the stand-in, their profile tags as
/// WeChat tags.
fn seed_stand_in(fake: &wca_fake_wechat::FakeWeChat, profiles: &wca_local::JsonlProfiles) {
    let mut tag_ids: BTreeMap<String, u64> = BTreeMap::new();
    for profile in profiles.all() {
        let ids: Vec<u64> = profile
            .tags
            .iter()
            .map(|t| *tag_ids.entry(t.clone()).or_insert_with(|| fake.add_tag(t)))
            .collect();
        fake.add_follower(profile.openid.as_str(), &ids);
    }
}

/// Wraps `api` in the crash-test hook when `WCA_TEST_ABORT_AFTER_SENDS`
/// is set ([`wca_core::campaign::AbortAfterSends`]).
pub fn abort_hook(
    api: Arc<dyn wca_core::WeChatApi>,
) -> anyhow::Result<Arc<dyn wca_core::WeChatApi>> {
    let after: u64 = env_number("WCA_TEST_ABORT_AFTER_SENDS", 0)?;
    Ok(wca_core::campaign::AbortAfterSends::wrap(api, after))
}

#[derive(Debug, Args)]
pub struct CampaignBenchArgs {
    /// Followers carrying the campaign's tag.
    #[arg(long, default_value_t = 10_000)]
    recipients: u32,
    /// The campaign's rate limit, messages a second (none when absent).
    #[arg(long)]
    rate: Option<u32>,
    /// Recipients in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// custom (every follower inside the 48-hour window) or template.
    #[arg(long, default_value = "template")]
    channel: String,
}

/// `wca bench campaign`: a tag campaign of `--recipients` followers on
/// the stand-in, run to the end through a fresh embedded store: every
/// recipient is claimed, rendered, screened, sent and recorded.
pub fn bench(args: CampaignBenchArgs) -> anyhow::Result<()> {
    if args.recipients == 0 || args.concurrency == 0 {
        bail!("--recipients and --concurrency must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_bench(args))
}

async fn run_bench(args: CampaignBenchArgs) -> anyhow::Result<()> {
    use wca_core::ContactWindows as _;
    let opts = wca_fake_wechat::Options::default();
    let (fake, addr) = wca_fake_wechat::FakeWeChat::start(opts.clone()).await?;
    let tag = fake.add_tag("bench");
    let dir = tempfile::tempdir()?;
    let store = wca_local::RedbStore::open(&dir.path().join("wca.redb"))?;
    let clock: Arc<dyn wca_core::Clock> = Arc::new(wca_core::SystemClock);
    let now = clock.now();
    for i in 0..args.recipients {
        let openid = format!("oBench{i:07}");
        fake.add_follower(&openid, &[tag]);
        if args.channel == "custom" {
            fake.interact(&openid);
            store.touch(&openid, now).await?;
        }
    }
    let secret = wca_wechat::api::AppSecret::new(&opts.secret).context("secret")?;
    let api: Arc<dyn wca_core::WeChatApi> = Arc::new(wca_wechat::api::HttpWeChatApi::new(
        wca_wechat::api::ApiConfig::new(&format!("http://{addr}"), &opts.app_id, secret),
        Arc::new(store.clone()),
        clock.clone(),
    )?);
    let events = Arc::new(wca_core::memory::MemoryEventSink::default());
    let outbound = Arc::new(wca_core::Outbound::new(
        api.clone(),
        Arc::new(store.clone()),
        events,
        clock.clone(),
        wca_core::outbound::OutboundPolicy {
            per_sec: 1_000_000,
            ..wca_core::outbound::OutboundPolicy::default()
        },
    ));
    let filter = wca_filter::Dictionary::new()
        .add_deny("deny.tsv", wca_filter::BUILTIN_DENY)?
        .build()?;
    let screen: Arc<dyn wca_core::OutboundScreen> = Arc::new(filter);
    let campaign_store: Arc<dyn wca_core::campaign::CampaignStore> = Arc::new(store.clone());
    let campaigns = Campaigns::new(campaign_store.clone(), clock.clone(), Some(screen.clone()));
    let new = wca_core::campaign::NewCampaign {
        name: "bench".to_owned(),
        cron: Some("0 9 * * 1".to_owned()),
        tz: Some("Asia/Shanghai".to_owned()),
        audience: "tag:bench".to_owned(),
        channel: args.channel.clone(),
        text: "{{openid}}，本周会员日，全场9折".to_owned(),
        template_id: Some("TPL-BENCH".to_owned()),
        rate_per_sec: args.rate,
        ..wca_core::campaign::NewCampaign::default()
    };
    let campaign = campaigns
        .create(new, "bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let runner = Runner {
        store: campaign_store.clone(),
        audiences: Arc::new(wca_core::campaign::Audiences {
            api: Some(api.clone()),
            profiles: None,
            contacts: None,
            segment_page: 500,
        }),
        deliverer: Arc::new(wca_core::campaign::Deliverer {
            store: campaign_store,
            outbound: Some(outbound),
            api: Some(api),
            profiles: None,
            screen: Some(screen),
            clock,
        }),
        concurrency: args.concurrency,
        queue: None,
        stop: Arc::new(AtomicBool::new(false)),
    };
    let occurrence = campaigns
        .run_now(&campaign.id, "bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = std::time::Instant::now();
    let end = runner.run(&campaign.id, occurrence.scheduled_at).await?;
    let took = started.elapsed();
    let report = campaigns
        .report(&campaign.id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let occ = &report.occurrences[0];
    let sent = fake.sent();
    let mut who: Vec<&str> = sent.iter().map(|s| s.openid.as_str()).collect();
    who.sort_unstable();
    who.dedup();
    println!(
        "campaign to {} followers ({} channel, concurrency {}, rate limit {}): {:.2} s, {:.0} recipients/s",
        args.recipients,
        args.channel,
        args.concurrency,
        args.rate
            .map_or_else(|| "off".to_owned(), |r| format!("{r}/s")),
        took.as_secs_f64(),
        f64::from(args.recipients) / took.as_secs_f64()
    );
    println!(
        "report: audience {}, sent {}, skipped {:?}, failed {:?}; the stand-in got {} messages for {} users ({end:?})",
        occ.audience,
        occ.sent,
        occ.skipped,
        occ.failed,
        sent.len(),
        who.len()
    );
    if sent.len() != args.recipients as usize || who.len() != sent.len() {
        bail!(
            "expected exactly one message for each of {} followers",
            args.recipients
        );
    }
    Ok(())
}
