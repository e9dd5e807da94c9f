//! Passive replies: what the webhook answers inside WeChat's 5-second
//! window, plus the reading side (used by `wca send` and tests, which
//! play WeChat).
//!
//! Every text goes into CDATA through [`cdata`], which splits `]]>` so it
//! cannot close the section early and drops the control characters XML
//! 1.0 forbids, so no reply text can break the document.
//!
//! ```
//! use wca_wechat::reply::{Reply, parse_reply};
//!
//! let xml = Reply::Text { content: "a ]]> b".into() }.to_xml("oUser", "gh_1", 1_700_000_000);
//! let back = parse_reply(&xml).unwrap();
//! assert_eq!(back.content.as_deref(), Some("a ]]> b"));
//! assert_eq!(back.to_user_name, "oUser");
//! ```

use std::fmt::Write as _;

use crate::tree::{self, Node};
use crate::{AesKey, Token, WechatError, crypto, signature};

/// A news (article) card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    /// Title.
    pub title: String,
    /// Summary.
    pub description: String,
    /// Cover picture URL.
    pub pic_url: String,
    /// Where a tap leads.
    pub url: String,
}

/// A passive reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Text.
    Text {
        /// The text.
        content: String,
    },
    /// A picture by media id.
    Image {
        /// Media id.
        media_id: String,
    },
    /// A voice clip by media id.
    Voice {
        /// Media id.
        media_id: String,
    },
    /// A video by media id.
    Video {
        /// Media id.
        media_id: String,
        /// Title.
        title: Option<String>,
        /// Description.
        description: Option<String>,
    },
    /// Music.
    Music {
        /// Title.
        title: Option<String>,
        /// Description.
        description: Option<String>,
        /// Music URL.
        music_url: Option<String>,
        /// High-quality music URL (used on Wi-Fi).
        hq_music_url: Option<String>,
        /// Thumbnail media id.
        thumb_media_id: String,
    },
    /// Up to 8 article cards (WeChat shows only the first since 2018 for
    /// passive replies, but accepts more).
    News {
        /// The articles.
        articles: Vec<Article>,
    },
    /// Hand the conversation to the human customer-service agents.
    TransferCustomerService {
        /// A specific agent (`name@account`), or any.
        kf_account: Option<String>,
    },
}

impl From<&wca_core::Outgoing> for Reply {
    /// The passive reply that says what the domain's reply says.
    fn from(out: &wca_core::Outgoing) -> Self {
        match out {
            wca_core::Outgoing::Text { content } => Reply::Text {
                content: content.clone(),
            },
            wca_core::Outgoing::TransferToAgent { kf_account } => Reply::TransferCustomerService {
                kf_account: kf_account.clone(),
            },
        }
    }
}

impl Reply {
    /// The reply's `MsgType`.
    pub fn kind_label(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Image { .. } => "image",
            Self::Voice { .. } => "voice",
            Self::Video { .. } => "video",
            Self::Music { .. } => "music",
            Self::News { .. } => "news",
            Self::TransferCustomerService { .. } => "transfer_customer_service",
        }
    }

    /// The reply XML, addressed from our account `from` to the user `to`.
    pub fn to_xml(&self, to: &str, from: &str, create_time: i64) -> String {
        let mut x = String::with_capacity(256);
        write_header(&mut x, to, from, create_time, self.kind_label());
        match self {
            Self::Text { content } => element(&mut x, "Content", content),
            Self::Image { media_id } => {
                x.push_str("<Image>");
                element(&mut x, "MediaId", media_id);
                x.push_str("</Image>");
            }
            Self::Voice { media_id } => {
                x.push_str("<Voice>");
                element(&mut x, "MediaId", media_id);
                x.push_str("</Voice>");
            }
            Self::Video {
                media_id,
                title,
                description,
            } => {
                x.push_str("<Video>");
                element(&mut x, "MediaId", media_id);
                optional(&mut x, "Title", title);
                optional(&mut x, "Description", description);
                x.push_str("</Video>");
            }
            Self::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => {
                x.push_str("<Music>");
                optional(&mut x, "Title", title);
                optional(&mut x, "Description", description);
                optional(&mut x, "MusicUrl", music_url);
                optional(&mut x, "HQMusicUrl", hq_music_url);
                element(&mut x, "ThumbMediaId", thumb_media_id);
                x.push_str("</Music>");
            }
            Self::News { articles } => {
                let _ = write!(
                    x,
                    "<ArticleCount>{}</ArticleCount><Articles>",
                    articles.len()
                );
                for a in articles {
                    x.push_str("<item>");
                    element(&mut x, "Title", &a.title);
                    element(&mut x, "Description", &a.description);
                    element(&mut x, "PicUrl", &a.pic_url);
                    element(&mut x, "Url", &a.url);
                    x.push_str("</item>");
                }
                x.push_str("</Articles>");
            }
            Self::TransferCustomerService { kf_account } => {
                if let Some(account) = kf_account {
                    x.push_str("<TransInfo>");
                    element(&mut x, "KfAccount", account);
                    x.push_str("</TransInfo>");
                }
            }
        }
        x.push_str("</xml>");
        x
    }
}

/// Opens `<xml>` and writes the four fields every message and reply
/// starts with.
pub(crate) fn write_header(x: &mut String, to: &str, from: &str, create_time: i64, msg_type: &str) {
    x.push_str("<xml><ToUserName>");
    cdata(x, to);
    x.push_str("</ToUserName><FromUserName>");
    cdata(x, from);
    let _ = write!(
        x,
        "</FromUserName><CreateTime>{create_time}</CreateTime><MsgType>"
    );
    cdata(x, msg_type);
    x.push_str("</MsgType>");
}

fn element(x: &mut String, name: &str, value: &str) {
    let _ = write!(x, "<{name}>");
    cdata(x, value);
    let _ = write!(x, "</{name}>");
}

fn optional(x: &mut String, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        element(x, name, v);
    }
}

/// Appends `text` as CDATA: `]]>` is split across two sections and the
/// characters XML 1.0 cannot carry (C0 controls but tab, LF and CR;
/// U+FFFE, U+FFFF) are dropped.
pub fn cdata(out: &mut String, text: &str) {
    // Drop first, split after: dropping a character can join `]]` and `>`
    // (`]\0]>`) into a terminator the split did not see.
    let carried: std::borrow::Cow<'_, str> = if text.chars().all(xml_char) {
        text.into()
    } else {
        text.chars()
            .filter(|&c| xml_char(c))
            .collect::<String>()
            .into()
    };
    out.push_str("<![CDATA[");
    let mut rest = &*carried;
    while let Some(i) = rest.find("]]>") {
        out.push_str(&rest[..i]);
        // `]]` ends this section, `>` starts the next.
        out.push_str("]]]]><![CDATA[>");
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    out.push_str("]]>");
}

fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// A safe-mode reply envelope: the encrypted reply, its signature, and the
/// timestamp and nonce the signature covers.
pub fn encrypted_envelope(
    encrypt: &str,
    msg_signature: &str,
    timestamp: i64,
    nonce: &str,
) -> String {
    let mut x = String::with_capacity(encrypt.len() + 160);
    x.push_str("<xml><Encrypt>");
    cdata(&mut x, encrypt);
    x.push_str("</Encrypt><MsgSignature>");
    cdata(&mut x, msg_signature);
    let _ = write!(
        x,
        "</MsgSignature><TimeStamp>{timestamp}</TimeStamp><Nonce>"
    );
    cdata(&mut x, nonce);
    x.push_str("</Nonce></xml>");
    x
}

/// Encrypts and signs a reply for safe mode.
pub fn seal_reply(
    token: &Token,
    key: &AesKey,
    app_id: &str,
    reply_xml: &str,
    timestamp: i64,
    nonce: &str,
    random: [u8; 16],
) -> String {
    let encrypt = crypto::encrypt(key, random, reply_xml, app_id);
    let ts = timestamp.to_string();
    let sig = signature::sign(&[token.expose(), &ts, nonce, &encrypt]);
    encrypted_envelope(&encrypt, &sig, timestamp, nonce)
}

/// A reply as WeChat reads it (the fields `wca send` and tests look at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReply {
    /// The user it is for.
    pub to_user_name: String,
    /// Our account.
    pub from_user_name: String,
    /// When it was made.
    pub create_time: i64,
    /// `text`, `news`, `transfer_customer_service`, ...
    pub msg_type: String,
    /// The text of a text reply.
    pub content: Option<String>,
}

/// Reads a plaintext reply.
pub fn parse_reply(xml: &str) -> Result<ParsedReply, WechatError> {
    let root = tree::parse(xml, "xml")?;
    let need = |n: &'static str| {
        root.text_of(n)
            .map(str::to_owned)
            .ok_or(WechatError::MissingField(n))
    };
    Ok(ParsedReply {
        to_user_name: need("ToUserName")?,
        from_user_name: need("FromUserName")?,
        create_time: need("CreateTime")?
            .trim()
            .parse()
            .map_err(|_| WechatError::BadField("CreateTime"))?,
        msg_type: need("MsgType")?,
        content: root.text_of("Content").map(str::to_owned),
    })
}

/// Verifies and decrypts a safe-mode reply envelope, as WeChat does:
/// `MsgSignature` over token, `TimeStamp`, `Nonce` and `Encrypt`, then the
/// AppID inside. Returns the reply XML.
pub fn open_encrypted_reply(
    token: &Token,
    key: &AesKey,
    app_id: &str,
    envelope: &str,
) -> Result<String, WechatError> {
    let root: Node = tree::parse(envelope, "xml")?;
    let field = |n: &'static str| root.text_of(n).ok_or(WechatError::MissingField(n));
    let encrypt = field("Encrypt")?;
    let ts = field("TimeStamp")?.trim();
    let nonce = field("Nonce")?;
    if !signature::verify(
        field("MsgSignature")?,
        &[token.expose(), ts, nonce, encrypt],
    ) {
        return Err(WechatError::BadSignature);
    }
    crypto::decrypt_for(key, encrypt, app_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(content: &str) -> Option<String> {
        let xml = Reply::Text {
            content: content.to_owned(),
        }
        .to_xml("o", "gh", 1);
        parse_reply(&xml).expect("well-formed").content
    }

    #[test]
    fn text_cannot_break_out_of_cdata() {
        for s in [
            "]]>",
            "a]]>b]]>c",
            "]]]]>",
            "<xml></xml>",
            "]]><MsgType>news</MsgType><![CDATA[",
        ] {
            assert_eq!(roundtrip(s).as_deref(), Some(s), "{s:?}");
        }
    }

    /// Found by `wca-fuzz --target xml` (`found/xml-*`): the control
    /// character was dropped after the `]]>` split, so `]\0]>` became a
    /// terminator and the rest of the text was read as XML.
    #[test]
    fn a_dropped_control_character_cannot_join_a_cdata_terminator() {
        for s in [
            "]\u{0}]>",
            "]]\u{1b}>",
            "a]\u{FFFE}]>b]]>c",
            "]\u{0}]><MsgType>news</MsgType>",
        ] {
            let kept: String = s.chars().filter(|&c| xml_char(c)).collect();
            assert_eq!(roundtrip(s).as_deref(), Some(kept.as_str()), "{s:?}");
        }
    }

    #[test]
    fn control_characters_are_dropped_so_the_xml_stays_valid() {
        assert_eq!(
            roundtrip("a\u{0}b\u{1b}c\u{FFFE}\td").as_deref(),
            Some("abc\td")
        );
    }

    #[test]
    fn every_reply_kind_renders_its_wechat_shape() {
        let cases = [
            (
                Reply::Image {
                    media_id: "m1".into(),
                },
                "<Image><MediaId><![CDATA[m1]]></MediaId></Image>",
            ),
            (
                Reply::Voice {
                    media_id: "m2".into(),
                },
                "<Voice><MediaId><![CDATA[m2]]></MediaId></Voice>",
            ),
            (
                Reply::Video {
                    media_id: "m3".into(),
                    title: Some("t".into()),
                    description: None,
                },
                "<Video><MediaId><![CDATA[m3]]></MediaId><Title><![CDATA[t]]></Title></Video>",
            ),
            (
                Reply::Music {
                    title: Some("歌".into()),
                    description: None,
                    music_url: Some("http://a/m.mp3".into()),
                    hq_music_url: None,
                    thumb_media_id: "th".into(),
                },
                "<Music><Title><![CDATA[歌]]></Title><MusicUrl><![CDATA[http://a/m.mp3]]></MusicUrl><ThumbMediaId><![CDATA[th]]></ThumbMediaId></Music>",
            ),
            (
                Reply::News {
                    articles: vec![Article {
                        title: "T".into(),
                        description: "D".into(),
                        pic_url: "P".into(),
                        url: "U".into(),
                    }],
                },
                "<ArticleCount>1</ArticleCount><Articles><item><Title><![CDATA[T]]></Title><Description><![CDATA[D]]></Description><PicUrl><![CDATA[P]]></PicUrl><Url><![CDATA[U]]></Url></item></Articles>",
            ),
            (
                Reply::TransferCustomerService {
                    kf_account: Some("a@b".into()),
                },
                "<TransInfo><KfAccount><![CDATA[a@b]]></KfAccount></TransInfo>",
            ),
        ];
        for (reply, fragment) in cases {
            let xml = reply.to_xml("o", "gh", 7);
            assert!(xml.contains(fragment), "{xml}");
            let parsed = parse_reply(&xml).expect("parse");
            assert_eq!(parsed.msg_type, reply.kind_label());
            assert_eq!(parsed.create_time, 7);
        }
    }

    #[test]
    fn a_sealed_reply_opens_only_with_the_right_token() {
        let token = Token::new("tok123").expect("token");
        let key = AesKey::parse("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").expect("key");
        let xml = Reply::Text {
            content: "好".into(),
        }
        .to_xml("o", "gh", 5);
        let env = seal_reply(&token, &key, "wxapp", &xml, 5, "n1", [9; 16]);
        assert_eq!(
            open_encrypted_reply(&token, &key, "wxapp", &env).expect("open"),
            xml
        );
        let other = Token::new("tok124").expect("token");
        assert_eq!(
            open_encrypted_reply(&other, &key, "wxapp", &env),
            Err(WechatError::BadSignature)
        );
        assert_eq!(
            open_encrypted_reply(&token, &key, "wxother", &env),
            Err(WechatError::WrongAppId)
        );
    }
}
