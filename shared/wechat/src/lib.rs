//! The WeChat Official Account callback protocol, complete and strict.
//!
//! - [`signature`]: URL and message signatures, checked in constant time.
//! - [`crypto`]: safe-mode AES-256-CBC with WeChat's 32-byte padding, and
//!   the secret types [`Token`] and [`AesKey`] whose `Debug` hides them.
//! - [`xml`]: every inbound message and event as a typed [`Inbound`];
//!   unknown kinds are kept as [`InboundBody::Unsupported`], not refused.
//! - [`reply`]: passive replies whose text cannot break out of CDATA.
//! - [`callback`]: the server side in one call each: verify and open a
//!   request ([`callback::CallbackConfig::open_request`]), seal a reply.
//! - [`client_side`]: WeChat's side, for `wca send`, tests and benchmarks.
//!
//! - [`api`] (feature `api`): the HTTP client of the WeChat API, the
//!   adapter of [`wca_core::WeChatApi`], with the shared access token.
//!
//! Apart from [`api`], nothing here knows HTTP or AWS. Every failure is a [`WechatError`]
//! with an HTTP status and a message that never repeats a secret.
//!
//! ```
//! use wca_wechat::{AesKey, Token, callback::CallbackConfig, client_side, reply::Reply};
//!
//! let token = Token::new("myToken1").unwrap();
//! let key = AesKey::parse("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
//! let config = CallbackConfig {
//!     token: token.clone(),
//!     app_id: "wx1234567890abcdef".into(),
//!     aes_key: Some(key.clone()),
//!     max_body_bytes: 64 * 1024,
//!     timestamp_window_secs: Some(300),
//! };
//! // WeChat's side: a text message, signed and encrypted.
//! let inner = client_side::text_message_xml("gh_1", "oUser1", 1_700_000_000, "1001", "你好");
//! let sent = client_side::seal_request(&token, Some(&key), "wx1234567890abcdef",
//!     "gh_1", "oUser1", &inner, 1_700_000_000, "42", [7; 16]);
//! // Ours: open it, answer it.
//! let opened = config.open_request(&sent.parsed_query(), sent.body.as_bytes(), 1_700_000_010).unwrap();
//! assert_eq!(opened.inbound.text(), Some("你好"));
//! let xml = Reply::Text { content: "您好！".into() }.to_xml("oUser1", "gh_1", 1_700_000_010);
//! let body = config.seal_reply(&opened, &xml, 1_700_000_010);
//! assert!(body.contains("<Encrypt>"));
//! ```

#[cfg(feature = "api")]
pub mod api;
pub mod callback;
pub mod client_side;
pub mod crypto;
mod error;
pub mod reply;
pub mod signature;
mod tree;
pub mod xml;

pub use crypto::{AesKey, Token};
pub use error::WechatError;
pub use xml::{Inbound, InboundBody};
