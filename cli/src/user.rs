//! `wca user export|erase OPENID`: personal data on request (PIPL).
//!
//! Export prints everything wca holds about one user as one JSON document;
//! erase removes it and prints what it removed, as counts. Both work on a
//! `wca serve` data dir (`--data-dir`, which `wca serve` must not hold
//! open: redb allows one process per file) or on the deployed table
//! (`--dynamodb TABLE`, with the usual AWS environment). What wca reads
//! but does not own (the shop's profile file or API) is named in `sources`
//! and `kept`, to be handled where it lives.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use wca_core::{Clock as _, Erased, OpenId, ProfileStore as _, SystemClock, UserData, UserRecord};
use wca_local::{JsonlProfiles, JsonlTickets, LocalError, RedbStore};
use wca_webhook::settings::FileSettings;
use wca_webhook::shop::ShopSource;

use crate::DEFAULT_DATA_DIR;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Print everything held about a user as one JSON document.
    Export(UserArgs),
    /// Remove everything wca holds about a user; print the counts (JSON).
    Erase(UserArgs),
}

#[derive(Debug, Args)]
pub struct UserArgs {
    /// The user's OpenID.
    openid: String,
    /// The data dir of `wca serve` (stop it first: its store can be open in
    /// one process at a time).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The config file `wca serve` runs with, for its `[shop]` profiles
    /// and tickets.
    #[arg(long, env = "WCA_CONFIG")]
    config: Option<PathBuf>,
    /// The deployed DynamoDB table instead of a data dir (credentials,
    /// region and `AWS_ENDPOINT_URL` from the environment).
    #[arg(long, value_name = "TABLE")]
    dynamodb: Option<String>,
}

/// Where the profile and tickets come from, said in words.
#[derive(Debug, Default, Serialize)]
struct Sources {
    store: String,
    profile: String,
    tickets: String,
}

#[derive(Debug, Serialize)]
struct Export {
    #[serde(flatten)]
    record: UserRecord,
    sources: Sources,
}

#[derive(Debug, Serialize)]
struct Erasure {
    openid: OpenId,
    erased: Erased,
    /// Data about the user that wca does not own and did not touch.
    kept: Vec<String>,
}

pub fn run(command: UserCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let out = match command {
        UserCommand::Export(args) => serde_json::to_string_pretty(&rt.block_on(export(args))?)?,
        UserCommand::Erase(args) => serde_json::to_string_pretty(&rt.block_on(erase(args))?)?,
    };
    println!("{out}");
    Ok(())
}

/// The `[shop]` profile and ticket settings, if a config is given.
struct Shop {
    users: Option<ShopSource>,
    tickets: Option<ShopSource>,
}

impl Shop {
    fn load(args: &UserArgs) -> anyhow::Result<Self> {
        let Some(path) = &args.config else {
            return Ok(Self {
                users: None,
                tickets: None,
            });
        };
        let file = FileSettings::load(path)?;
        let source =
            |v: &Option<String>| v.as_deref().map(|v| ShopSource::parse(v, &file.base_dir));
        Ok(Self {
            users: source(&file.shop.users),
            tickets: source(&file.shop.tickets),
        })
    }

    /// The tickets file `wca serve` appends to: `[shop] tickets`, or
    /// `tickets.jsonl` in the data dir.
    fn tickets_file(&self, data_dir: &Path) -> Result<PathBuf, String> {
        match &self.tickets {
            None => Ok(data_dir.join("tickets.jsonl")),
            Some(ShopSource::File(path)) => Ok(path.clone()),
            Some(ShopSource::Http(url)) => Err(format!(
                "tickets: held by the shop's API at {url}; not read by wca, ask the shop"
            )),
            Some(ShopSource::DynamoDb) => {
                Err("tickets: in the deployed table; run again with --dynamodb TABLE".to_owned())
            }
        }
    }

    /// Where profiles are, when not in a store wca reads here.
    fn profile_note(&self) -> String {
        match &self.users {
            None => "no profile store configured".to_owned(),
            Some(ShopSource::File(path)) => format!(
                "profile: held by the shop's file {} (read-only here; wca does not own it, erase the record there)",
                path.display()
            ),
            Some(ShopSource::Http(url)) => {
                format!("profile: held by the shop's API at {url}; not read by wca, ask the shop")
            }
            Some(ShopSource::DynamoDb) => {
                "profile: in the deployed table; run again with --dynamodb TABLE".to_owned()
            }
        }
    }
}

fn parse_openid(s: &str) -> anyhow::Result<OpenId> {
    OpenId::parse(s).with_context(|| format!("{s:?}"))
}

/// The data dir's store, refusing to create one where there is none.
fn open_local(data_dir: &Path) -> anyhow::Result<RedbStore> {
    let path = data_dir.join("wca.redb");
    if !path.is_file() {
        bail!(
            "no store at {}: is --data-dir where `wca serve` keeps its data?",
            path.display()
        );
    }
    match RedbStore::open(&path) {
        Ok(store) => Ok(store),
        Err(e @ LocalError::Open { .. }) => Err(anyhow::Error::new(e).context(format!(
            "the store {} is open in another process: stop wca serve first (the store can be open in one process at a time)",
            path.display()
        ))),
        Err(e) => Err(e.into()),
    }
}

async fn export(args: UserArgs) -> anyhow::Result<Export> {
    let openid = parse_openid(&args.openid)?;
    let now = SystemClock.now();
    if let Some(table) = &args.dynamodb {
        let store = wca_aws::DynamoDbStore::from_env(table.as_str()).await;
        let record = store.export(&openid, now).await?;
        let held = format!("the table {table}");
        return Ok(Export {
            record,
            sources: Sources {
                store: held.clone(),
                profile: held.clone(),
                tickets: held,
            },
        });
    }
    let shop = Shop::load(&args)?;
    let store = open_local(&args.data_dir)?;
    let mut record = store.export(&openid, now).await?;
    drop(store);
    let mut sources = Sources {
        store: args.data_dir.join("wca.redb").display().to_string(),
        profile: shop.profile_note(),
        ..Sources::default()
    };
    if let Some(ShopSource::File(path)) = &shop.users {
        record.profile = JsonlProfiles::load(path)?.profile(&openid).await?;
    }
    match shop.tickets_file(&args.data_dir) {
        Ok(path) => {
            record.tickets = JsonlTickets::tickets_of(&path, &openid)?;
            sources.tickets = path.display().to_string();
        }
        Err(note) => sources.tickets = note,
    }
    record.sort();
    Ok(Export { record, sources })
}

async fn erase(args: UserArgs) -> anyhow::Result<Erasure> {
    let openid = parse_openid(&args.openid)?;
    if let Some(table) = &args.dynamodb {
        let store = wca_aws::DynamoDbStore::from_env(table.as_str()).await;
        let erased = store.erase(&openid).await?;
        return Ok(Erasure {
            openid,
            erased,
            kept: Vec::new(),
        });
    }
    let shop = Shop::load(&args)?;
    let store = open_local(&args.data_dir)?;
    let mut erased = store.erase(&openid).await?;
    drop(store);
    let mut kept = Vec::new();
    if shop.users.is_some() {
        kept.push(shop.profile_note());
    }
    match shop.tickets_file(&args.data_dir) {
        Ok(path) => erased.tickets += JsonlTickets::erase_user(&path, &openid)?,
        Err(note) => kept.push(note),
    }
    Ok(Erasure {
        openid,
        erased,
        kept,
    })
}
