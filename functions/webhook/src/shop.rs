//! The shop's systems from the `[shop]` section, wired the same way for
//! `wca serve` and the Lambda function.
//!
//! | value | orders | users | tickets |
//! |---|---|---|---|
//! | a file path | [`JsonlOrders`] | [`JsonlProfiles`] | [`JsonlTickets`] (appended to) |
//! | `http://...`, `https://...` | [`HttpShop`] | [`HttpShop`] | [`HttpShop`] |
//! | `dynamodb` | — (a shop's orders live in its own system) | the stack's table | the stack's table |
//!
//! Files are read now, so a broken one stops start-up with its name and
//! line. A shop API is called with `WCA_SHOP_TOKEN` as a bearer token when
//! it is set, within `[shop] timeout_ms`. When `tickets` is unset, tickets
//! go where the caller says: `wca serve` appends them to `tickets.jsonl` in
//! its data dir, the Lambda function writes them to the stack's table.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wca_core::{ProfileStore, TicketSink};
use wca_dialog::Shop;
use wca_local::{DEFAULT_SHOP_TIMEOUT, HttpShop, JsonlOrders, JsonlProfiles, JsonlTickets};

use crate::settings::{Env, Settings};

/// The environment variable holding the shop API's bearer token.
pub const TOKEN_VAR: &str = "WCA_SHOP_TOKEN";

/// Where one system is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShopSource {
    /// A JSONL file.
    File(PathBuf),
    /// The shop's own API at this base URL.
    Http(String),
    /// The stack's DynamoDB table.
    DynamoDb,
}

impl ShopSource {
    /// Reads a `[shop]` value; a relative path is resolved against `base`.
    pub fn parse(value: &str, base: &std::path::Path) -> Self {
        let value = value.trim();
        if value.eq_ignore_ascii_case("dynamodb") {
            ShopSource::DynamoDb
        } else if value.starts_with("http://") || value.starts_with("https://") {
            ShopSource::Http(value.to_owned())
        } else {
            ShopSource::File(base.join(value))
        }
    }
}

/// What the caller's platform offers beyond files and URLs.
#[derive(Clone, Default)]
pub struct Platform {
    /// Profiles in the stack's table (`users = "dynamodb"`); `None` where
    /// there is no table (`wca serve`).
    pub dynamodb_profiles: Option<Arc<dyn ProfileStore>>,
    /// Tickets in the stack's table (`tickets = "dynamodb"`).
    pub dynamodb_tickets: Option<Arc<dyn TicketSink>>,
    /// Where tickets go when `[shop] tickets` is unset (`None`: nowhere,
    /// and the return flow is off).
    pub default_tickets: Option<ShopSource>,
}

/// A `[shop]` setting that cannot be wired.
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    /// A file or URL is not usable.
    #[error("[shop] {key}: {source}")]
    Adapter {
        /// `orders`, `users` or `tickets`.
        key: &'static str,
        /// Why.
        source: wca_local::LocalError,
    },
    /// `dynamodb` where there is no table, or for orders.
    #[error("[shop] {key} = \"dynamodb\": {why}")]
    NoTable {
        /// `orders`, `users` or `tickets`.
        key: &'static str,
        /// Why.
        why: &'static str,
    },
}

/// The HTTP adapters made so far, one per base URL, so that the systems of
/// one API share a client and its connection slots.
struct Apis {
    timeout: Duration,
    token: Option<String>,
    made: Vec<HttpShop>,
}

impl Apis {
    fn get(&mut self, key: &'static str, base: &str) -> Result<HttpShop, ShopError> {
        let trimmed = base.trim_end_matches('/');
        if let Some(shop) = self.made.iter().find(|s| s.base() == trimmed) {
            return Ok(shop.clone());
        }
        let shop = HttpShop::new(base, self.timeout, self.token.clone())
            .map_err(|source| ShopError::Adapter { key, source })?;
        self.made.push(shop.clone());
        Ok(shop)
    }
}

/// The shop's systems as `settings` and `platform` say.
pub fn build(settings: &Settings, env: &dyn Env, platform: Platform) -> Result<Shop, ShopError> {
    let section = &settings.shop;
    let base = &settings.base_dir;
    let source = |v: &Option<String>| v.as_deref().map(|v| ShopSource::parse(v, base));
    let mut apis = Apis {
        timeout: section
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_SHOP_TIMEOUT),
        token: env.var(TOKEN_VAR),
        made: Vec::new(),
    };
    let adapter = |key| move |source| ShopError::Adapter { key, source };

    let orders: Option<Arc<dyn wca_core::OrderSystem>> = match source(&section.orders) {
        None => None,
        Some(ShopSource::File(path)) => Some(Arc::new(
            JsonlOrders::load(&path).map_err(adapter("orders"))?,
        )),
        Some(ShopSource::Http(url)) => Some(Arc::new(apis.get("orders", &url)?)),
        Some(ShopSource::DynamoDb) => {
            return Err(ShopError::NoTable {
                key: "orders",
                why: "orders come from a file or the shop's API",
            });
        }
    };
    let profiles: Option<Arc<dyn ProfileStore>> = match source(&section.users) {
        None => None,
        Some(ShopSource::File(path)) => Some(Arc::new(
            JsonlProfiles::load(&path).map_err(adapter("users"))?,
        )),
        Some(ShopSource::Http(url)) => Some(Arc::new(apis.get("users", &url)?)),
        Some(ShopSource::DynamoDb) => Some(platform.dynamodb_profiles.clone().ok_or(
            ShopError::NoTable {
                key: "users",
                why: "there is no DynamoDB table here (wca serve reads files or a URL)",
            },
        )?),
    };
    let tickets: Option<Arc<dyn TicketSink>> =
        match source(&section.tickets).or(platform.default_tickets.clone()) {
            None => None,
            Some(ShopSource::File(path)) => Some(Arc::new(
                JsonlTickets::open(&path).map_err(adapter("tickets"))?,
            )),
            Some(ShopSource::Http(url)) => Some(Arc::new(apis.get("tickets", &url)?)),
            Some(ShopSource::DynamoDb) => Some(platform.dynamodb_tickets.clone().ok_or(
                ShopError::NoTable {
                    key: "tickets",
                    why: "there is no DynamoDB table here (wca serve writes a file or a URL)",
                },
            )?),
        };
    Ok(Shop {
        orders,
        tickets,
        profiles,
        // The webhook reads the archive it writes.
        history: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::FileSettings;
    use std::collections::HashMap;

    struct Vars(HashMap<&'static str, &'static str>);

    impl Env for Vars {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| (*v).to_owned())
        }
    }

    fn settings(shop: &str, base: &std::path::Path) -> Settings {
        let file = FileSettings::parse(&format!("[shop]\n{shop}")).expect("parses");
        let env = Vars(HashMap::from([("WECHAT_TOKEN", "tok123")]));
        let mut s = Settings::resolve(file, &env, None).expect("resolves");
        s.base_dir = base.to_owned();
        s
    }

    #[test]
    fn values_name_a_file_a_url_or_the_table() {
        let base = std::path::Path::new("/etc/wca");
        assert_eq!(
            ShopSource::parse("orders.jsonl", base),
            ShopSource::File(base.join("orders.jsonl"))
        );
        assert_eq!(
            ShopSource::parse(" https://shop.example.com/wca ", base),
            ShopSource::Http("https://shop.example.com/wca".to_owned())
        );
        assert_eq!(ShopSource::parse("DynamoDB", base), ShopSource::DynamoDb);
    }

    #[test]
    fn the_demo_files_and_a_default_ticket_file_wire_every_system() {
        let demo =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo-shop");
        let dir = tempfile::tempdir().expect("tempdir");
        let s = settings(
            "orders = \"orders.jsonl\"\nusers = \"users.jsonl\"\n",
            &demo,
        );
        let platform = Platform {
            default_tickets: Some(ShopSource::File(dir.path().join("tickets.jsonl"))),
            ..Platform::default()
        };
        let shop = build(&s, &Vars(HashMap::new()), platform).expect("builds");
        assert!(shop.orders.is_some() && shop.profiles.is_some() && shop.tickets.is_some());
    }

    #[test]
    fn dynamodb_where_there_is_no_table_or_for_orders_is_a_clear_error() {
        let base = std::path::Path::new(".");
        for (line, key) in [
            ("users = \"dynamodb\"", "users"),
            ("tickets = \"dynamodb\"", "tickets"),
            ("orders = \"dynamodb\"", "orders"),
        ] {
            let err = build(
                &settings(line, base),
                &Vars(HashMap::new()),
                Platform::default(),
            )
            .err()
            .expect(line);
            assert!(
                err.to_string().starts_with(&format!("[shop] {key}")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_missing_file_or_a_bad_url_names_the_key() {
        let base = std::path::Path::new("/nonexistent");
        let err = build(
            &settings("orders = \"orders.jsonl\"", base),
            &Vars(HashMap::new()),
            Platform::default(),
        )
        .err()
        .expect("missing file");
        assert!(err.to_string().contains("[shop] orders"), "{err}");
        assert!(err.to_string().contains("orders.jsonl"), "{err}");
        let err = build(
            &settings("users = \"https://\"", base),
            &Vars(HashMap::new()),
            Platform::default(),
        )
        .err()
        .expect("bad url");
        assert!(err.to_string().contains("[shop] users"), "{err}");
    }

    #[test]
    fn systems_of_one_api_share_one_client() {
        let base = std::path::Path::new(".");
        let s = settings(
            "orders = \"http://127.0.0.1:9/wca\"\nusers = \"http://127.0.0.1:9/wca/\"\ntickets = \"http://127.0.0.1:9/other\"\ntimeout_ms = 200",
            base,
        );
        let mut apis = Apis {
            timeout: Duration::from_millis(200),
            token: None,
            made: Vec::new(),
        };
        for (key, url) in [
            ("orders", "http://127.0.0.1:9/wca"),
            ("users", "http://127.0.0.1:9/wca/"),
            ("tickets", "http://127.0.0.1:9/other"),
        ] {
            apis.get(key, url).expect("valid");
        }
        assert_eq!(apis.made.len(), 2);
        assert!(build(&s, &Vars(HashMap::new()), Platform::default()).is_ok());
    }
}
