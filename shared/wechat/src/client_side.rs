//! WeChat's side of the callback, for `wca send`, tests and benchmarks:
//! build the message XML WeChat would push, sign it and (in safe mode)
//! encrypt it exactly as WeChat does.

use std::fmt::Write as _;

use crate::callback::Query;
use crate::reply::{cdata, write_header};
use crate::{AesKey, Token, crypto, signature};

/// A request ready to POST: query parameters and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRequest {
    /// `signature`, `timestamp`, `nonce`, `openid`, and in safe mode
    /// `encrypt_type=aes` and `msg_signature`.
    pub query: Vec<(String, String)>,
    /// The XML body (the envelope with `Encrypt` in safe mode).
    pub body: String,
}

impl SealedRequest {
    /// The query as the server side reads it.
    pub fn parsed_query(&self) -> Query {
        Query::from_pairs(&self.query)
    }
}

/// The XML of a text message from `from` (OpenID) to `to` (our `gh_` id).
pub fn text_message_xml(
    to: &str,
    from: &str,
    create_time: i64,
    msg_id: &str,
    content: &str,
) -> String {
    let mut x = header(to, from, create_time, "text");
    x.push_str("<Content>");
    cdata(&mut x, content);
    let _ = write!(x, "</Content><MsgId>{msg_id}</MsgId></xml>");
    x
}

/// The XML of an event (`subscribe`, `CLICK`, ...) with an optional `EventKey`.
pub fn event_xml(
    to: &str,
    from: &str,
    create_time: i64,
    event: &str,
    event_key: Option<&str>,
) -> String {
    let mut x = header(to, from, create_time, "event");
    x.push_str("<Event>");
    cdata(&mut x, event);
    x.push_str("</Event>");
    if let Some(key) = event_key {
        x.push_str("<EventKey>");
        cdata(&mut x, key);
        x.push_str("</EventKey>");
    }
    x.push_str("</xml>");
    x
}

fn header(to: &str, from: &str, create_time: i64, msg_type: &str) -> String {
    let mut x = String::with_capacity(256);
    write_header(&mut x, to, from, create_time, msg_type);
    x
}

/// Signs `inner_xml` (and with `key`, encrypts it for `app_id` with the
/// given 16 random bytes) as WeChat would deliver it to our webhook.
#[allow(clippy::too_many_arguments)] // mirrors the protocol's inputs one to one
pub fn seal_request(
    token: &Token,
    key: Option<&AesKey>,
    app_id: &str,
    to: &str,
    from: &str,
    inner_xml: &str,
    timestamp: i64,
    nonce: &str,
    random: [u8; 16],
) -> SealedRequest {
    let ts = timestamp.to_string();
    let mut query = vec![
        (
            "signature".to_owned(),
            signature::sign(&[token.expose(), &ts, nonce]),
        ),
        ("timestamp".to_owned(), ts.clone()),
        ("nonce".to_owned(), nonce.to_owned()),
        ("openid".to_owned(), from.to_owned()),
    ];
    let body = match key {
        None => inner_xml.to_owned(),
        Some(key) => {
            let encrypt = crypto::encrypt(key, random, inner_xml, app_id);
            query.push(("encrypt_type".to_owned(), "aes".to_owned()));
            query.push((
                "msg_signature".to_owned(),
                signature::sign(&[token.expose(), &ts, nonce, &encrypt]),
            ));
            let mut x = String::with_capacity(encrypt.len() + 96);
            x.push_str("<xml><ToUserName>");
            cdata(&mut x, to);
            x.push_str("</ToUserName><Encrypt>");
            cdata(&mut x, &encrypt);
            x.push_str("</Encrypt></xml>");
            x
        }
    };
    SealedRequest { query, body }
}
