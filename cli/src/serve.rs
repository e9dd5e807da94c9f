//! `wca serve`: the webhook (counting its events in the store before it
//! acknowledges a message) and the retention sweeper in one process, over
//! an embedded redb file.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use rand::{Rng, distr::Alphanumeric};
use wca_core::SystemClock;
use wca_local::{CountingSink, RedbStore, spawn_retention};
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
    /// Try async replies without WeChat: start the WeChat API stand-in in
    /// this process and send every reply to it as a customer-service
    /// message (async mode); `wca chat` shows them as pushed messages.
    #[arg(long)]
    fake_wechat: bool,
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
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The development token: reused from `data_dir`, or created there
/// readable by its owner only; `true` when created now.
fn dev_token(data_dir: &Path) -> anyhow::Result<(String, bool)> {
    if let Some(token) = read_dev_token(data_dir) {
        return Ok((token, false));
    }
    Ok((private_token(&dev_token_path(data_dir))?, true))
}

/// The admin tokens: `WCA_ADMIN_TOKEN` / `WCA_ADMIN_TOKENS`, or else one
/// kept in `data_dir/admin-token` (made on first start, owner-only), which
/// `wca campaign` reads by itself.
fn admin_tokens(data_dir: &Path) -> anyhow::Result<wca_admin::Admins> {
    let mut admins = wca_admin::Admins::from_vars(|name| std::env::var(name).ok())
        .map_err(anyhow::Error::msg)?;
    if admins.is_empty() {
        let path = crate::campaign::admin_token_path(data_dir);
        let token = match std::fs::read_to_string(&path) {
            Ok(t) if t.trim().len() >= wca_admin::MIN_TOKEN_LEN => t.trim().to_owned(),
            _ => private_token(&path)?,
        };
        admins.add("admin", &token).map_err(anyhow::Error::msg)?;
        eprintln!(
            "wca: admin API at /admin/ with the token in {} (`wca campaign` finds it; set WCA_ADMIN_TOKEN to choose your own)",
            path.display()
        );
    }
    Ok(admins)
}

/// Writes a new random token to `path`, readable by its owner only.
fn private_token(path: &Path) -> anyhow::Result<String> {
    let token: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let mut file = std::fs::OpenOptions::new();
    // An empty file left behind is written over.
    file.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    file.open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, token.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

/// Creates `dir` (and its parents) readable by its owner only: it holds
/// the development token, every archived message and the tickets. A
/// directory that exists keeps the permissions its owner gave it.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// How long shutdown waits for messages in progress.
const DRAIN_WITHIN: Duration = Duration::from_secs(10);

/// Ctrl-C, or SIGTERM (what `kill`, systemd and container runtimes send).
async fn shutdown_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops wca serve")
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileSettings::load(path)?,
        None => FileSettings::default(),
    };
    let configured =
        std::env::var("WECHAT_TOKEN").is_ok_and(|t| !t.is_empty()) || file.wechat.token.is_some();
    private_dir(&args.data_dir)?;
    let fallback = if configured {
        None
    } else {
        Some(dev_token(&args.data_dir)?)
    };
    let settings = Settings::resolve(
        file,
        &ProcessEnv,
        fallback.as_ref().map(|(token, _)| token.as_str()),
    )?;
    if let Some((_, created)) = fallback {
        // The development token is shown once, when it is made, and only
        // to a person at a terminal: never to a log file or a pipe.
        let path = dev_token_path(&args.data_dir);
        if created && std::io::stderr().is_terminal() {
            eprintln!(
                "wca: no WECHAT_TOKEN set; created the development token {} (saved in {}, where `wca send` and `wca chat` find it)",
                settings.callback.token.expose(),
                path.display()
            );
        } else {
            eprintln!(
                "wca: no WECHAT_TOKEN set; using the development token saved in {}",
                path.display()
            );
        }
    }
    let mode = if settings.callback.aes_key.is_some() {
        "safe (encrypted)"
    } else {
        "plaintext"
    };

    let store = RedbStore::open(&args.data_dir.join("wca.redb"))
        .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
    let clock = Arc::new(SystemClock);
    // Events are counted in the store before the message is acknowledged
    // (the store's group commit makes that one fsync for many messages),
    // so a crash loses no count; the sink counts refused requests.
    let sink: Arc<dyn wca_core::EventSink> = Arc::new(CountingSink::new(
        Arc::new(store.clone()),
        settings.timezone.clone(),
    ));
    let stand_in_file = crate::outbound::stand_in_file(&args.data_dir);
    // A stand-in of an earlier run is gone: `wca chat` must not wait on it.
    let _ = std::fs::remove_file(&stand_in_file);
    let stand_in = if args.fake_wechat {
        let dev = crate::outbound::DevStandIn::start(&settings.callback.app_id).await?;
        std::fs::write(&stand_in_file, &dev.base)
            .with_context(|| format!("writing {}", stand_in_file.display()))?;
        eprintln!(
            "wca: replies go to the WeChat stand-in at {} as customer-service messages (GET {}/_fake/sent); `wca chat` shows them",
            dev.base, dev.base
        );
        Some(dev)
    } else {
        None
    };
    let client = crate::outbound::wechat_client(
        &store,
        &settings.callback.app_id,
        sink.clone(),
        stand_in.as_ref(),
    )?;
    let async_replies =
        crate::outbound::async_replies(&store, client.as_ref(), sink.clone(), stand_in.as_ref())?;
    // Everything a message produces is written in one transaction: after
    // a crash it is fully processed or not at all.
    let commit = store.message_commit(settings.timezone.clone());
    let retention = spawn_retention(store.clone(), clock.clone(), Duration::from_secs(3600));
    let platform = Platform {
        default_tickets: Some(ShopSource::File(args.data_dir.join("tickets.jsonl"))),
        ..Platform::default()
    };
    let shop = wca_webhook::shop::build(&settings, &ProcessEnv, platform)?;
    let admins = admin_tokens(&args.data_dir)?;
    let (campaigns, scheduler, triggers) = crate::campaign::local(
        &store,
        &settings,
        client.as_ref(),
        shop.profiles.clone(),
        stand_in.as_ref(),
    )?;
    let watched = store.clone();
    let ports = Ports {
        archive: Arc::new(store.clone()),
        dedup: Arc::new(store.clone()),
        events: sink,
        clock,
        conversations: Arc::new(store),
        shop,
        commit: Some(Arc::new(commit)),
    };
    let mut hook = Webhook::new(settings, ports).with_triggers(triggers);
    let mut sender = None;
    if let Some((replies, task)) = async_replies {
        hook = hook.with_async_replies(replies);
        sender = Some(task);
    }
    // A write that failed on I/O (a full disk) leaves redb refusing every
    // later write until the file is reopened: stop, so that a supervisor
    // restarts wca serve, instead of answering 500 forever.
    let (broke, mut broken) = tokio::sync::oneshot::channel::<String>();
    let stop = async move {
        tokio::select! {
            () = shutdown_requested() => {}
            why = watched.broken() => {
                tracing::error!(error = %why, "the store can no longer write; stopping");
                let _ = broke.send(why);
            }
        }
    };
    let admin = wca_admin::Admin {
        campaigns,
        admins,
        wake: Some(scheduler.wake()),
    };
    let app = router(hook.clone()).merge(wca_admin::router(Arc::new(admin)));

    let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.host, args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    eprintln!("wca: {mode} mode, data in {}", args.data_dir.display());
    println!("wca listening on http://{addr}/wechat");
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .context("serving")?;
    // Messages whose sender hung up are still being processed: finish
    // them, so that what was claimed is answered, archived and counted.
    if !hook.drain(DRAIN_WITHIN).await {
        tracing::warn!(
            in_flight = hook.in_flight(),
            "stopping with messages still in progress; WeChat's retries will take them over"
        );
    }
    drop(hook);
    retention.abort();
    scheduler.stop(DRAIN_WITHIN).await;
    if let Some(sender) = sender {
        sender.stop(DRAIN_WITHIN).await;
    }
    if stand_in.is_some() {
        let _ = std::fs::remove_file(&stand_in_file);
    }
    if let Ok(why) = broken.try_recv() {
        anyhow::bail!(
            "stopped because the store can no longer write ({why}); free the disk or fix the device, then start wca serve again (a supervisor such as systemd restarts it by itself)"
        );
    }
    Ok(())
}
