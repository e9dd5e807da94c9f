//! The crypto envelope: AES-256-CBC with WeChat's 32-byte padding, the
//! EncodingAESKey and Token parsers, signed reply envelopes and whole
//! callback requests.
//!
//! Input: a mode byte, then the mode's data (the seed files start with the
//! mode letter, so they read as text):
//!
//! - `d` + key index + base64: decrypt a (mutated) `Encrypt` with one of
//!   the verified vectors' keys; what decrypts must encrypt and decrypt
//!   back to itself.
//! - `r` + 43 key bytes + 16 random bytes + message `\0` AppID: encrypt
//!   then decrypt gives the message and AppID back; sealing a reply then
//!   opening it gives the reply back.
//! - `k` + text: `AesKey::parse` and `Token::new` accept exactly what the
//!   console allows, and their `Debug` never shows it.
//! - `o` + message: a request sealed as WeChat seals it (safe mode and
//!   plaintext) opens to what `Inbound::parse` makes of the message.
//! - `b` + body: a (mutated) safe-mode body, correctly signed over the
//!   `Encrypt` it appears to carry, is opened or refused with a message.
//!
//! Any other first byte picks a mode by its value.

use wca_wechat::callback::{CallbackConfig, Query};
use wca_wechat::reply::{open_encrypted_reply, seal_reply};
use wca_wechat::{AesKey, Inbound, Token, WechatError, client_side, crypto, signature};

use super::{ensure, refused};
use crate::{Checked, Outcome};

pub(crate) const TOKENS: &[&[u8]] = &[
    b"=",
    b"==",
    b"+",
    b"/",
    b"A",
    b"AAAA",
    b" ",
    b"\n",
    b"<Encrypt><![CDATA[",
    b"]]></Encrypt>",
    b"<Encrypt>",
    b"</Encrypt>",
    b"<xml>",
    b"</xml>",
];

/// The EncodingAESKeys of the verified vectors (`/work/shared/spec`).
const KEYS: [&str; 5] = [
    "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
    "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
];

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

const APP_ID: &str = "wx2c2769f8efd9abc2";
const NOW: i64 = 1_700_000_000;

pub(crate) fn check(input: &[u8]) -> Checked {
    let (&mode, data) = input.split_first().unwrap_or((&b'k', &[]));
    match mode {
        b'd' => decrypt(data),
        b'r' => round_trip(data),
        b'k' => key_and_token(data),
        b'o' => open_sealed(data),
        b'b' => open_body(data),
        _ => match mode % 5 {
            0 => decrypt(data),
            1 => round_trip(data),
            2 => key_and_token(data),
            3 => open_sealed(data),
            _ => open_body(data),
        },
    }
}

fn key(index: u8) -> Result<AesKey, String> {
    AesKey::parse(KEYS[usize::from(index) % KEYS.len()])
        .map_err(|e| format!("a vector key does not parse: {e}"))
}

fn refusal(what: &str, e: &WechatError) -> Checked {
    ensure(
        e.status() == 400 || e.status() == 403 || e.status() == 413,
        || format!("{what}: {e:?} answers HTTP {}", e.status()),
    )?;
    refused(what, e.to_string())
}

fn decrypt(data: &[u8]) -> Checked {
    let (&index, b64) = data.split_first().unwrap_or((&0, &[]));
    let key = key(index)?;
    let text = String::from_utf8_lossy(b64);
    match crypto::decrypt(&key, &text) {
        Ok(d) => {
            let again = crypto::encrypt(&key, [7; 16], &d.message, &d.receiver_id);
            let back = crypto::decrypt(&key, &again)
                .map_err(|e| format!("re-encrypted payload does not decrypt: {e}"))?;
            ensure(back == d, || {
                format!("re-encrypted payload came back as {back:?}")
            })?;
            Ok(Outcome::Accepted)
        }
        Err(e) => refusal("decrypt", &e),
    }
}

/// Splits `data` into a fixed-size head (zero-padded) and the rest.
fn take<const N: usize>(data: &[u8]) -> ([u8; N], &[u8]) {
    let mut head = [0u8; N];
    let n = N.min(data.len());
    head[..n].copy_from_slice(&data[..n]);
    (head, &data[n..])
}

fn round_trip(data: &[u8]) -> Checked {
    let (key_bytes, rest) = take::<43>(data);
    let (random, rest) = take::<16>(rest);
    let key_text: String = key_bytes
        .iter()
        .map(|&b| char::from(B64[usize::from(b) % 64]))
        .collect();
    let key = AesKey::parse(&key_text)
        .map_err(|e| format!("43 base64 characters refused as a key: {e}"))?;
    let rest = String::from_utf8_lossy(rest);
    let (message, app_id) = rest.split_once('\0').unwrap_or((&rest, APP_ID));

    let sealed = crypto::encrypt(&key, random, message, app_id);
    let blocks = (16 + 4 + message.len() + app_id.len()) / 32 + 1;
    ensure(sealed.len() == (blocks * 32).div_ceil(3) * 4, || {
        format!("{} base64 characters for {blocks} blocks", sealed.len())
    })?;
    let opened = crypto::decrypt(&key, &sealed).map_err(|e| format!("own ciphertext: {e}"))?;
    ensure(
        opened.message == message && opened.receiver_id == app_id,
        || format!("encrypt then decrypt gave {opened:?}"),
    )?;
    ensure(
        crypto::decrypt_for(&key, &sealed, app_id).as_deref() == Ok(message),
        || "decrypt_for refused its own AppID".to_owned(),
    )?;
    let other = format!("{app_id}x");
    ensure(
        crypto::decrypt_for(&key, &sealed, &other) == Err(WechatError::WrongAppId),
        || "decrypt_for accepted another AppID".to_owned(),
    )?;

    // A sealed reply envelope opens to the reply, and only with its token.
    let token = Token::new("tok123").map_err(|e| e.to_string())?;
    let nonce = u32::from_le_bytes([random[0], random[1], random[2], random[3]]).to_string();
    let timestamp = i64::from(random[4]) << 24;
    let envelope = seal_reply(&token, &key, app_id, message, timestamp, &nonce, random);
    let back = open_encrypted_reply(&token, &key, app_id, &envelope)
        .map_err(|e| format!("own reply envelope does not open: {e}"))?;
    ensure(back == message, || format!("reply envelope gave {back:?}"))?;
    let other = Token::new("tok124").map_err(|e| e.to_string())?;
    ensure(
        open_encrypted_reply(&other, &key, app_id, &envelope) == Err(WechatError::BadSignature),
        || "a reply envelope opened with another token".to_owned(),
    )?;
    Ok(Outcome::Accepted)
}

fn key_and_token(data: &[u8]) -> Checked {
    let text = String::from_utf8_lossy(data);
    let trimmed = text.trim();
    let key_ok = trimmed.len() == 43
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    let key = AesKey::parse(&text);
    ensure(key.is_ok() == key_ok, || {
        format!("AesKey::parse gave {key:?} for {text:?}")
    })?;
    let token_ok =
        (3..=32).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric());
    let token = Token::new(text.as_ref());
    ensure(token.is_ok() == token_ok, || {
        format!("Token::new gave {token:?} for {text:?}")
    })?;
    if text.len() >= 8 {
        let shown = format!("{key:?} {token:?}");
        ensure(!shown.contains(trimmed), || {
            format!("Debug shows the secret: {shown}")
        })?;
    }
    match (key, token) {
        (Ok(_), _) | (_, Ok(_)) => Ok(Outcome::Accepted),
        // A bad key or token is a configuration error (HTTP 500), not a
        // bad request: only the message is checked.
        (Err(e), _) => refused("AesKey::parse", e.to_string()),
    }
}

fn config(safe: bool) -> Result<CallbackConfig, String> {
    Ok(CallbackConfig {
        token: Token::new("spamtest").map_err(|e| e.to_string())?,
        app_id: APP_ID.to_owned(),
        aes_key: if safe { Some(key(0)?) } else { None },
        max_body_bytes: 64 * 1024,
        timestamp_window_secs: Some(300),
    })
}

fn open_sealed(data: &[u8]) -> Checked {
    let (random, rest) = take::<16>(data);
    let inner = String::from_utf8_lossy(rest);
    let direct = Inbound::parse(&inner).map(|m| format!("{m:?}"));
    for safe in [true, false] {
        let config = config(safe)?;
        let token = &config.token;
        let sent = client_side::seal_request(
            token,
            config.aes_key.as_ref(),
            APP_ID,
            "gh_1",
            "oUser",
            &inner,
            NOW,
            "42",
            random,
        );
        let opened = config
            .open_request(&sent.parsed_query(), sent.body.as_bytes(), NOW + 5)
            .map(|o| format!("{:?}", o.inbound));
        let expected = match &direct {
            _ if sent.body.len() > config.max_body_bytes => Err(WechatError::BodyTooLarge {
                limit: config.max_body_bytes,
            }),
            _ if sent.body.bytes().all(|b| b.is_ascii_whitespace()) => Err(WechatError::EmptyBody),
            other => other.clone(),
        };
        ensure(opened == expected, || {
            format!("safe mode {safe}: opened {opened:?}, parsed {expected:?}")
        })?;
    }
    match direct {
        Ok(_) => Ok(Outcome::Accepted),
        Err(e) => refusal("open_request", &e),
    }
}

/// The text between the first `<Encrypt>` (and `<![CDATA[`) and the next
/// `<`: what the body appears to carry, to sign it as WeChat would.
fn apparent_encrypt(body: &str) -> &str {
    let Some((_, after)) = body.split_once("<Encrypt>") else {
        return "";
    };
    let after = after.strip_prefix("<![CDATA[").unwrap_or(after);
    let end = after.find(['<', ']']).unwrap_or(after.len());
    &after[..end]
}

fn open_body(data: &[u8]) -> Checked {
    let body = String::from_utf8_lossy(data);
    let config = config(true)?;
    let ts = NOW.to_string();
    let nonce = "42";
    let encrypt = apparent_encrypt(&body);
    let query = Query {
        signature: Some(signature::sign(&[config.token.expose(), &ts, nonce])),
        timestamp: Some(ts.clone()),
        nonce: Some(nonce.to_owned()),
        encrypt_type: Some("aes".to_owned()),
        msg_signature: Some(signature::sign(&[
            config.token.expose(),
            &ts,
            nonce,
            encrypt,
        ])),
        ..Query::default()
    };
    match config.open_request(&query, body.as_bytes(), NOW) {
        Ok(opened) => {
            ensure(opened.encrypted, || {
                "a safe-mode request opened as plaintext".to_owned()
            })?;
            Ok(Outcome::Accepted)
        }
        Err(e) => refusal("open_request", &e),
    }
}
