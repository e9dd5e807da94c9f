//! The WeChat XML parser (`Inbound::parse`, `reply::parse_reply`) and the
//! writers whose output it must read back (`Reply::to_xml`,
//! `client_side::text_message_xml`).
//!
//! Input: any bytes, read as UTF-8 with replacement characters. The text is
//! parsed as a message and as a reply; then, whatever it is, it is used as
//! the content of a reply, of a message and of a news card, and as a user
//! id, and what the writers make of it must parse back to the same text
//! (less the characters XML 1.0 cannot carry, which the writer drops).

use wca_wechat::reply::{Article, Reply, parse_reply};
use wca_wechat::xml::{Event, Message};
use wca_wechat::{Inbound, InboundBody, WechatError, client_side};

use super::{ensure, refused};
use crate::{Checked, Outcome};

pub(crate) const TOKENS: &[&[u8]] = &[
    b"<xml>",
    b"</xml>",
    b"<![CDATA[",
    b"]]>",
    b"]]]]><![CDATA[>",
    b"<",
    b">",
    b"</",
    b"/>",
    b"&amp;",
    b"&lt;",
    b"&#x0;",
    b"&#xD800;",
    b"&#1114111;",
    b"&unknown;",
    b"&",
    b"<!DOCTYPE xml>",
    b"<!-- c -->",
    b"<?xml version=\"1.0\"?>",
    b"<?pi?>",
    b" a=\"1\"",
    b"<ToUserName>",
    b"<FromUserName>",
    b"<CreateTime>",
    b"<MsgType>",
    b"<MsgId>",
    b"<MsgID>",
    b"<Content>",
    b"<Event>",
    b"<EventKey>",
    b"<Location_X>",
    b"<Latitude>",
    b"<Count>",
    b"<TotalCount>",
    b"<PicList><item><PicMd5Sum>a</PicMd5Sum></item></PicList>",
    b"<SendLocationInfo>",
    b"<ScanCodeInfo>",
    b"<List>",
    b"text",
    b"event",
    b"location",
    b"subscribe",
    b"pic_weixin",
    b"location_select",
    b"masssendjobfinish",
    b"subscribe_msg_sent_event",
    b"kf_switch_session",
    b"scancode_waitmsg",
];

/// Longest id `Inbound::parse` accepts (its `MAX_ID_LEN`).
const MAX_ID_LEN: usize = 128;

pub(crate) fn check(input: &[u8]) -> Checked {
    let text = String::from_utf8_lossy(input);
    // The reply reader shares the tree; it must not panic either.
    if let Err(e) = parse_reply(&text) {
        error_is_short_and_says_why(&e)?;
    }
    writers_read_back(&text)?;
    match Inbound::parse(&text) {
        Ok(msg) => {
            accepted_message_is_sound(&msg, &text)?;
            Ok(Outcome::Accepted)
        }
        Err(e) => {
            error_is_short_and_says_why(&e)?;
            refused("Inbound::parse", e.to_string())
        }
    }
}

/// Errors are returned in HTTP bodies and logged: short, never the
/// document quoted back, and with a status the webhook knows.
fn error_is_short_and_says_why(e: &WechatError) -> Result<(), String> {
    let message = e.to_string();
    ensure(!message.trim().is_empty(), || {
        format!("{e:?} has no message")
    })?;
    ensure(message.len() <= 200, || {
        format!("error message of {} bytes: {message:?}", message.len())
    })?;
    ensure([400, 403, 413].contains(&e.status()), || {
        format!("{e:?} answers HTTP {}", e.status())
    })
}

fn accepted_message_is_sound(msg: &Inbound, text: &str) -> Result<(), String> {
    for (name, id) in [
        ("ToUserName", &msg.to_user_name),
        ("FromUserName", &msg.from_user_name),
    ] {
        ensure(
            !id.is_empty() && id.trim() == id && id.len() <= MAX_ID_LEN,
            || format!("{name} {id:?} accepted"),
        )?;
    }
    ensure(msg.raw_xml == text, || {
        "raw_xml differs from the input".to_owned()
    })?;
    if let Some(id) = &msg.msg_id {
        ensure(
            id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()),
            || format!("MsgId {id:?} accepted"),
        )?;
    }
    let key = msg.dedup_key();
    let prefix = if msg.msg_id.is_some() { "msg:" } else { "evt:" };
    ensure(key.starts_with(prefix), || format!("dedup key {key:?}"))?;
    let label = msg.kind_label();
    ensure(
        label.len() <= 64
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b':'),
        || format!("kind label {label:?} is not safe for a counter key"),
    )?;
    // Coordinates end up in events and analytics as JSON numbers, which
    // cannot be NaN or infinite.
    let coordinates: Vec<f64> = match &msg.body {
        InboundBody::Message(Message::Location {
            latitude,
            longitude,
            ..
        }) => vec![*latitude, *longitude],
        InboundBody::Event(Event::Location {
            latitude,
            longitude,
            precision,
        }) => vec![*latitude, *longitude, *precision],
        InboundBody::Event(Event::LocationSelect {
            latitude,
            longitude,
            ..
        }) => vec![*latitude, *longitude],
        _ => Vec::new(),
    };
    ensure(coordinates.iter().all(|c| c.is_finite()), || {
        format!(
            "{} accepted with coordinates {coordinates:?}",
            msg.kind_label()
        )
    })
}

/// The characters an XML 1.0 document can carry; the writers drop others.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn writers_read_back(text: &str) -> Result<(), String> {
    let carried: String = text.chars().filter(|&c| xml_char(c)).collect();

    // A text reply, with the text as its content and as the user's id.
    let id: String = text.chars().take(40).collect();
    let xml = Reply::Text {
        content: text.to_owned(),
    }
    .to_xml(&id, "gh_1", 1_700_000_000);
    let back = parse_reply(&xml).map_err(|e| format!("our own text reply does not parse: {e}"))?;
    let id_carried: String = id.chars().filter(|&c| xml_char(c)).collect();
    ensure(back.content.as_deref() == Some(carried.as_str()), || {
        format!("text reply content came back as {:?}", back.content)
    })?;
    ensure(back.to_user_name == id_carried, || {
        format!("ToUserName came back as {:?}", back.to_user_name)
    })?;
    ensure(
        back.from_user_name == "gh_1"
            && back.create_time == 1_700_000_000
            && back.msg_type == "text",
        || format!("reply header came back as {back:?}"),
    )?;

    // A news card with the text's lines as its fields.
    let mut lines = text.split('\n').map(str::to_owned);
    let mut field = || lines.next().unwrap_or_default();
    let article = Article {
        title: field(),
        description: field(),
        pic_url: field(),
        url: field(),
    };
    let xml = Reply::News {
        articles: vec![article.clone(), article],
    }
    .to_xml("oUser", "gh_1", 7);
    let back = parse_reply(&xml).map_err(|e| format!("our own news reply does not parse: {e}"))?;
    ensure(back.msg_type == "news", || {
        format!("news came back as {:?}", back.msg_type)
    })?;

    // The message WeChat would send with this text.
    let xml = client_side::text_message_xml("gh_1", "oUser", 1_700_000_000, "42", text);
    let msg =
        Inbound::parse(&xml).map_err(|e| format!("a text message of ours does not parse: {e}"))?;
    ensure(msg.text() == Some(carried.as_str()), || {
        format!("message text came back as {:?}", msg.text())
    })?;
    ensure(msg.dedup_key() == "msg:42", || {
        format!("dedup key {:?}", msg.dedup_key())
    })
}
