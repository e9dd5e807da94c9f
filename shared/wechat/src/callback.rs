//! The server side of the callback: verify and open what WeChat sends,
//! seal what we answer. No HTTP types: a query and a body in, a typed
//! message or a [`WechatError`] (with its HTTP status) out.
//!
//! Order of checks on a POST, cheapest and least trusting first: body
//! size, empty body, timestamp (format and window), signatures (constant
//! time), UTF-8, XML, decryption (base64, block length, padding, layout,
//! AppID), then the typed message.

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::{AesKey, Inbound, Token, WechatError, crypto, reply, signature, tree};

/// The query parameters WeChat puts on the callback URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Query {
    /// `sha1(token, timestamp, nonce)`.
    pub signature: Option<String>,
    /// Unix seconds, as text.
    pub timestamp: Option<String>,
    /// Random number, as text.
    pub nonce: Option<String>,
    /// URL verification only: echoed back.
    pub echostr: Option<String>,
    /// The sender (POST).
    pub openid: Option<String>,
    /// `aes` in safe and compatible mode.
    pub encrypt_type: Option<String>,
    /// Safe mode: `sha1(token, timestamp, nonce, Encrypt)`.
    pub msg_signature: Option<String>,
}

impl Query {
    /// The query from decoded `name=value` pairs (the last of a repeated
    /// name wins, as most frameworks do).
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut q = Self::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "signature" => &mut q.signature,
                "timestamp" => &mut q.timestamp,
                "nonce" => &mut q.nonce,
                "echostr" => &mut q.echostr,
                "openid" => &mut q.openid,
                "encrypt_type" => &mut q.encrypt_type,
                "msg_signature" => &mut q.msg_signature,
                _ => continue,
            };
            *slot = Some(value.clone());
        }
        q
    }
}

/// Everything needed to verify and open requests and seal replies.
#[derive(Debug, Clone)]
pub struct CallbackConfig {
    /// The console's Token.
    pub token: Token,
    /// Our AppID, checked inside every encrypted message.
    pub app_id: String,
    /// The EncodingAESKey; when set, requests must be encrypted.
    pub aes_key: Option<AesKey>,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Refuse requests whose timestamp is further than this from now.
    pub timestamp_window_secs: Option<i64>,
}

/// A request that passed every check.
#[derive(Debug, Clone)]
pub struct OpenedRequest {
    /// The message.
    pub inbound: Inbound,
    /// Whether it came encrypted (the reply then is too).
    pub encrypted: bool,
    /// The request's nonce (reused for the reply envelope, as WeChat's
    /// samples do).
    pub nonce: String,
}

impl CallbackConfig {
    /// GET URL verification: the `echostr` to echo when the signature holds.
    pub fn verify_url(&self, query: &Query, now: i64) -> Result<String, WechatError> {
        let (ts, nonce) = self.check_time(query, now)?;
        let sig = need(&query.signature, "signature")?;
        if !signature::verify(sig, &[self.token.expose(), ts, nonce]) {
            return Err(WechatError::BadSignature);
        }
        Ok(need(&query.echostr, "echostr")?.to_owned())
    }

    /// Verifies, decrypts and parses a POST.
    pub fn open_request(
        &self,
        query: &Query,
        body: &[u8],
        now: i64,
    ) -> Result<OpenedRequest, WechatError> {
        if body.len() > self.max_body_bytes {
            return Err(WechatError::BodyTooLarge {
                limit: self.max_body_bytes,
            });
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(WechatError::EmptyBody);
        }
        let (ts, nonce) = self.check_time(query, now)?;
        let encrypted = query
            .encrypt_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("aes"));
        // The URL signature is checked whenever present; in plaintext mode
        // it is the only one and must be.
        match (&query.signature, encrypted) {
            (Some(sig), _) => {
                if !signature::verify(sig, &[self.token.expose(), ts, nonce]) {
                    return Err(WechatError::BadSignature);
                }
            }
            (None, false) => return Err(WechatError::MissingParameter("signature")),
            (None, true) => {}
        }
        let text = std::str::from_utf8(body).map_err(|_| WechatError::NotUtf8)?;
        let xml = match (&self.aes_key, encrypted) {
            (Some(_), false) => return Err(WechatError::NotEncrypted),
            (None, true) => return Err(WechatError::NoAesKey),
            (None, false) => text.to_owned(),
            (Some(key), true) => {
                let envelope = tree::parse(text, "xml")?;
                let encrypt = envelope
                    .text_of("Encrypt")
                    .ok_or(WechatError::NotEncrypted)?;
                let msg_sig = need(&query.msg_signature, "msg_signature")?;
                if !signature::verify(msg_sig, &[self.token.expose(), ts, nonce, encrypt]) {
                    return Err(WechatError::BadSignature);
                }
                crypto::decrypt_for(key, encrypt, &self.app_id)?
            }
        };
        Ok(OpenedRequest {
            inbound: Inbound::parse(&xml)?,
            encrypted,
            nonce: nonce.to_owned(),
        })
    }

    /// The HTTP body answering `opened` with `reply_xml`: the XML itself in
    /// plaintext mode, a signed envelope when the request was encrypted.
    pub fn seal_reply(&self, opened: &OpenedRequest, reply_xml: &str, now: i64) -> String {
        match (&self.aes_key, opened.encrypted) {
            (Some(key), true) => reply::seal_reply(
                &self.token,
                key,
                &self.app_id,
                reply_xml,
                now,
                &opened.nonce,
                rand::rng().random(),
            ),
            _ => reply_xml.to_owned(),
        }
    }

    /// Parses the timestamp, applies the window, returns it with the nonce.
    fn check_time<'q>(
        &self,
        query: &'q Query,
        now: i64,
    ) -> Result<(&'q str, &'q str), WechatError> {
        let ts = need(&query.timestamp, "timestamp")?;
        let nonce = need(&query.nonce, "nonce")?;
        let secs: i64 = ts.parse().map_err(|_| WechatError::BadTimestamp)?;
        let outside = self
            .timestamp_window_secs
            .is_some_and(|window| secs.abs_diff(now) > window.unsigned_abs());
        if outside {
            return Err(WechatError::StaleTimestamp);
        }
        Ok((ts, nonce))
    }
}

fn need<'q>(value: &'q Option<String>, name: &'static str) -> Result<&'q str, WechatError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or(WechatError::MissingParameter(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// E: the open platform's worked example, a whole request as WeChat
    /// sent it (both signatures, the encrypted event), opened end to end.
    #[test]
    fn the_open_platforms_published_request_opens_end_to_end() {
        let config = CallbackConfig {
            token: Token::new("AAAAA").expect("token"),
            app_id: "wx134c8103faa5a59e".to_owned(),
            aes_key: Some(AesKey::parse(&"A".repeat(43)).expect("key")),
            max_body_bytes: 65536,
            timestamp_window_secs: Some(300),
        };
        let query = Query {
            signature: Some("cc0c594499c1634947d5b502f158ee518947db27".into()),
            timestamp: Some("1715943329".into()),
            nonce: Some("1590219412".into()),
            openid: Some("o9AgO5Kd5ggOC-bXrbNODIiE3bGY".into()),
            encrypt_type: Some("aes".into()),
            msg_signature: Some("6c12a4205838198b8fa631b3220723bb07f1015c".into()),
            echostr: None,
        };
        let body = "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><Encrypt><![CDATA[D7yzvUNAL930rd28wf21s4hvXhz0L6Uit/p2Di6C5DHyYGpEgdBRnKjBec34JwoQXicwaZC7fOVihW80F4VtsdvE//1vr7oAbqjDv8KenVp+ajKYpJnyQ4zMRhIC+a31fCVOMC03FfzV/QuC94kBP55a+Za3sJgvAn+ZbsNqZI5DkyuzkhQN8OBqCzFhizGmy0xpM0MEA4agpvE+RuNO1rhHTtuJB5yltw1FiYzecSXJ+y/D2r81VkRn2eYjh2ltsoyfbDR7Is6ookXIFxTfyeNyeHxMeT4KN5WpCDmSbTcUYrbBUlkGLJ9n/rU8YOywma6G7aTb7KZKOqCxgfoUlYEZPk4FUL/TK7ShriFDMVCLyjQJ15Ob++agDWtcxhfUfe6HIoIpRW8mKNBQiY/Jd1svvuskA1wLef1RTtzKfMpagSCX/laZINmdnX4zrF6kIaR9P4xQrWXbsTFHTYe0Mg==]]></Encrypt></xml>";
        let opened = config
            .open_request(&query, body.as_bytes(), 1_715_943_330)
            .expect("opens");
        assert!(opened.encrypted);
        assert_eq!(
            opened.inbound.from_user_name,
            "o9AgO5Kd5ggOC-bXrbNODIiE3bGY"
        );
        assert_eq!(opened.inbound.kind_label(), "unsupported:event:debug_demo");
        assert_eq!(
            opened.inbound.dedup_key(),
            "evt:o9AgO5Kd5ggOC-bXrbNODIiE3bGY:1715943329:debug_demo"
        );

        let stale = config.open_request(&query, body.as_bytes(), 1_715_943_329 + 301);
        assert_eq!(stale.err(), Some(WechatError::StaleTimestamp));
    }

    /// C: the Python sample's compatibility-mode body, with the plaintext
    /// fields beside Encrypt: the encrypted copy is the one trusted.
    #[test]
    fn the_official_python_samples_compatible_mode_body_opens() {
        let config = CallbackConfig {
            token: Token::new("spamtest").expect("token"),
            app_id: "wx2c2769f8efd9abc2".to_owned(),
            aes_key: Some(
                AesKey::parse("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").expect("key"),
            ),
            max_body_bytes: 65536,
            timestamp_window_secs: None,
        };
        let encrypt = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";
        let body = format!(
            "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[forged]]></Content><MsgId>1</MsgId><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        );
        let query = Query {
            signature: Some("16120ec1b8dbb870f510d87ce6bc2463eae6ca1a".into()),
            timestamp: Some("1409735669".into()),
            nonce: Some("1320562132".into()),
            encrypt_type: Some("aes".into()),
            msg_signature: Some("5d197aaffba7e9b25a30732f161a50dee96bd5fa".into()),
            ..Query::default()
        };
        let opened = config
            .open_request(&query, body.as_bytes(), 0)
            .expect("opens");
        assert_eq!(opened.inbound.text(), Some("abcdteT"));
        assert_eq!(opened.inbound.dedup_key(), "msg:6054768590064713728");
    }
}
