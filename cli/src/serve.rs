//! `wca serve`: the webhook, the analytics consumer and the retention
//! sweeper in one process, over an embedded redb file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use rand::{Rng, distr::Alphanumeric};
use wca_core::SystemClock;
use wca_local::{RedbStore, event_channel, spawn_analytics, spawn_retention};
use wca_webhook::{
    Ports, Webhook, router,
    settings::{FileSettings, ProcessEnv, Settings},
    shop::{Platform, ShopSource},
};

use crate::{DEFAULT_DATA_DIR, dev_token_path, read_dev_token};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Address to bind; keep the loopback default unless a tunnel or proxy
    /// in front of it needs otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Where the embedded store and the development token live.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Optional TOML config file with `[wechat]`, `[webhook]` and `[reply]` sections.
    #[arg(long, env = "WCA_CONFIG")]
    config: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(args))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WCA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The development token: reused from `data_dir` or created there.
fn dev_token(data_dir: &Path) -> anyhow::Result<String> {
    if let Some(token) = read_dev_token(data_dir) {
        return Ok(token);
    }
    let token: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    std::fs::write(dev_token_path(data_dir), &token)
        .with_context(|| format!("writing {}", dev_token_path(data_dir).display()))?;
    Ok(token)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileSettings::load(path)?,
        None => FileSettings::default(),
    };
    let configured =
        std::env::var("WECHAT_TOKEN").is_ok_and(|t| !t.is_empty()) || file.wechat.token.is_some();
    let fallback = if configured {
        None
    } else {
        Some(dev_token(&args.data_dir)?)
    };
    let settings = Settings::resolve(file, &ProcessEnv, fallback.as_deref())?;
    if fallback.is_some() {
        // The development token is printed once, for the person at the
        // terminal; it never goes to the log.
        eprintln!(
            "wca: no WECHAT_TOKEN set; using the development token {} (saved in {})",
            settings.callback.token.expose(),
            dev_token_path(&args.data_dir).display()
        );
    }
    let mode = if settings.callback.aes_key.is_some() {
        "safe (encrypted)"
    } else {
        "plaintext"
    };

    let store = RedbStore::open(&args.data_dir.join("wca.redb"))
        .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
    let clock = Arc::new(SystemClock);
    let (sink, rx) = event_channel(4096);
    let analytics = spawn_analytics(rx, Arc::new(store.clone()), settings.timezone.clone());
    let retention = spawn_retention(store.clone(), clock.clone(), Duration::from_secs(3600));
    let platform = Platform {
        default_tickets: Some(ShopSource::File(args.data_dir.join("tickets.jsonl"))),
        ..Platform::default()
    };
    let shop = wca_webhook::shop::build(&settings, &ProcessEnv, platform)?;
    let ports = Ports {
        archive: Arc::new(store.clone()),
        dedup: Arc::new(store.clone()),
        events: Arc::new(sink),
        clock,
        conversations: Arc::new(store),
        shop,
    };
    let app = router(Webhook::new(settings, ports));

    let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.host, args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    eprintln!("wca: {mode} mode, data in {}", args.data_dir.display());
    println!("wca listening on http://{addr}/wechat");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")?;
    retention.abort();
    // Dropping the router dropped the last event sender: let the consumer
    // finish what is queued.
    let _ = tokio::time::timeout(Duration::from_secs(5), analytics).await;
    Ok(())
}
