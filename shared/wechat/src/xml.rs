//! Inbound messages and events, typed.
//!
//! Every message type and event of the Official Account callback has a
//! variant; anything else (a type WeChat adds tomorrow) becomes
//! [`InboundBody::Unsupported`] with its fields, and the raw XML is always
//! kept on [`Inbound`], so an unknown kind is acknowledged and archived
//! rather than refused.
//!
//! ```
//! use wca_wechat::{Inbound, InboundBody, xml::Message};
//!
//! let xml = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>\
//!            <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>\
//!            <Content><![CDATA[你好]]></Content><MsgId>42</MsgId></xml>";
//! let msg = Inbound::parse(xml).unwrap();
//! assert_eq!(msg.dedup_key(), "msg:42");
//! assert_eq!(msg.text(), Some("你好"));
//! assert!(matches!(msg.body, InboundBody::Message(Message::Text { .. })));
//! ```

use std::collections::BTreeMap;

use serde::Serialize;

use sha1::{Digest, Sha1};

use crate::WechatError;
use crate::tree::{self, Node};

/// Longest OpenID / original id we accept (real ones are 28 and 15).
const MAX_ID_LEN: usize = 128;

/// One inbound message or event, parsed, with the XML it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inbound {
    /// Our account's original id (`gh_...`).
    pub to_user_name: String,
    /// The sender's OpenID.
    pub from_user_name: String,
    /// WeChat's `CreateTime` (Unix seconds).
    pub create_time: i64,
    /// `MsgId`, for messages (events have none).
    pub msg_id: Option<String>,
    /// The (decrypted) XML exactly as WeChat sent it.
    #[serde(skip)]
    pub raw_xml: String,
    /// For an event, what tells it apart from another event of the same
    /// sender in the same second: its `Event` (lower case) and, when it has
    /// an `EventKey` or `MsgID`, 8 hex digits of their SHA-1.
    #[serde(skip)]
    pub event_identity: Option<String>,
    /// What it is.
    pub body: InboundBody,
}

/// The typed content of an inbound message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "category", rename_all = "snake_case")]
pub enum InboundBody {
    /// A user's message.
    Message(Message),
    /// An event (follow, menu click, job report, ...).
    Event(Event),
    /// A message type or event we do not know: kept, not refused.
    Unsupported {
        /// `MsgType` as sent.
        msg_type: String,
        /// `Event` as sent, for unknown events.
        event: Option<String>,
        /// Every top-level leaf field, by element name.
        fields: BTreeMap<String, String>,
    },
}

/// A user's message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Text.
    Text {
        /// The text.
        content: String,
        /// Set when the user tapped a menu option the bot offered.
        #[serde(skip_serializing_if = "Option::is_none")]
        biz_msg_menu_id: Option<String>,
    },
    /// A picture.
    Image {
        /// Where WeChat hosts it.
        pic_url: String,
        /// Media id for the media API.
        media_id: String,
    },
    /// A voice message, with WeChat's speech recognition when enabled.
    Voice {
        /// Media id.
        media_id: String,
        /// `amr`, `speex`, ...
        format: String,
        /// The recognised text.
        #[serde(skip_serializing_if = "Option::is_none")]
        recognition: Option<String>,
    },
    /// A video.
    Video {
        /// Media id.
        media_id: String,
        /// Thumbnail media id.
        thumb_media_id: String,
    },
    /// A short video.
    ShortVideo {
        /// Media id.
        media_id: String,
        /// Thumbnail media id.
        thumb_media_id: String,
    },
    /// A shared location.
    Location {
        /// `Location_X`.
        latitude: f64,
        /// `Location_Y`.
        longitude: f64,
        /// Map zoom.
        scale: String,
        /// Place description.
        label: String,
    },
    /// A shared link.
    Link {
        /// Title.
        title: String,
        /// Description.
        description: String,
        /// The URL.
        url: String,
    },
}

/// One entry of a subscribe-message event's list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubscribeMsgItem {
    /// The template.
    pub template_id: String,
    /// `accept` / `reject` (popup, change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Where the popup was shown (popup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub popup_scene: Option<String>,
    /// The sent message's id (sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// Delivery error code (sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Delivery status (sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_status: Option<String>,
}

/// An event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A new follower; `event_key` is `qrscene_...` when they scanned a
    /// parametric QR code.
    Subscribe {
        /// `EventKey`, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        event_key: Option<String>,
        /// QR code ticket, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        ticket: Option<String>,
    },
    /// A follower left.
    Unsubscribe,
    /// A follower scanned a parametric QR code.
    Scan {
        /// The scene value.
        event_key: String,
        /// QR code ticket.
        #[serde(skip_serializing_if = "Option::is_none")]
        ticket: Option<String>,
    },
    /// Periodic location report.
    Location {
        /// Latitude.
        latitude: f64,
        /// Longitude.
        longitude: f64,
        /// Precision.
        precision: f64,
    },
    /// A menu click.
    Click {
        /// The menu key.
        event_key: String,
    },
    /// A menu link opened.
    View {
        /// The URL.
        url: String,
        /// The menu id.
        #[serde(skip_serializing_if = "Option::is_none")]
        menu_id: Option<String>,
    },
    /// Scan-code menu events (`scancode_push`, `scancode_waitmsg`).
    ScanCode {
        /// True for `scancode_waitmsg` (the user waits for our reply).
        wait_for_reply: bool,
        /// The menu key.
        event_key: String,
        /// `qrcode`, `barcode`, ...
        scan_type: String,
        /// What was scanned.
        scan_result: String,
    },
    /// Picture menu events (`pic_sysphoto`, `pic_photo_or_album`, `pic_weixin`).
    SendPictures {
        /// Which of the three.
        source: String,
        /// The menu key.
        event_key: String,
        /// How many pictures.
        count: u32,
        /// Their MD5 sums.
        pic_md5: Vec<String>,
    },
    /// Location menu event (`location_select`).
    LocationSelect {
        /// The menu key.
        event_key: String,
        /// Latitude.
        latitude: f64,
        /// Longitude.
        longitude: f64,
        /// Map zoom.
        scale: String,
        /// Place description.
        label: String,
        /// Point of interest, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        poi_name: Option<String>,
    },
    /// A menu opened a mini program.
    ViewMiniprogram {
        /// The mini program path.
        event_key: String,
        /// The menu id.
        #[serde(skip_serializing_if = "Option::is_none")]
        menu_id: Option<String>,
    },
    /// A template message was delivered (or not).
    TemplateSendJobFinish {
        /// `MsgID` of the template message.
        msg_id: String,
        /// `success`, `failed:user block`, ...
        status: String,
    },
    /// A mass send finished.
    MassSendJobFinish {
        /// `MsgID` of the job.
        msg_id: String,
        /// `send success`, `send fail`, `err(...)`.
        status: String,
        /// Followers targeted.
        total_count: u64,
        /// After filtering.
        filter_count: u64,
        /// Delivered.
        sent_count: u64,
        /// Failed.
        error_count: u64,
    },
    /// Subscribe-message popup, change of choice, or delivery report.
    SubscribeMessage {
        /// `popup`, `change` or `sent`.
        kind: String,
        /// The templates concerned.
        items: Vec<SubscribeMsgItem>,
    },
    /// Customer-service sessions: created, closed or switched agent.
    KfSession {
        /// `create`, `close` or `switch`.
        action: String,
        /// The agent (`KfAccount`), or the new agent when switched.
        kf_account: String,
        /// The previous agent when switched.
        #[serde(skip_serializing_if = "Option::is_none")]
        from_kf_account: Option<String>,
    },
}

impl Inbound {
    /// Parses a decrypted message.
    pub fn parse(xml: &str) -> Result<Self, WechatError> {
        let root = tree::parse(xml, "xml")?;
        let required = |name: &'static str| -> Result<String, WechatError> {
            let v = root
                .text_of(name)
                .ok_or(WechatError::MissingField(name))?
                .trim();
            if v.is_empty() {
                return Err(WechatError::MissingField(name));
            }
            if v.len() > MAX_ID_LEN {
                return Err(WechatError::BadField(name));
            }
            Ok(v.to_owned())
        };
        let to_user_name = required("ToUserName")?;
        let from_user_name = required("FromUserName")?;
        let create_time = required("CreateTime")?
            .parse::<i64>()
            .map_err(|_| WechatError::BadField("CreateTime"))?;
        let msg_type = required("MsgType")?;
        let msg_id = match root.text_of("MsgId").map(str::trim) {
            None | Some("") => None,
            Some(id) if id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()) => {
                Some(id.to_owned())
            }
            Some(_) => return Err(WechatError::BadField("MsgId")),
        };
        let body = body(&root, &msg_type)?;
        let event_identity = msg_id.is_none().then(|| event_identity(&root));
        Ok(Self {
            to_user_name,
            from_user_name,
            create_time,
            msg_id,
            raw_xml: xml.to_owned(),
            event_identity,
            body,
        })
    }

    /// The key WeChat's retries share: `msg:{MsgId}` for messages,
    /// `evt:{FromUserName}:{CreateTime}:{event identity}` for events (see
    /// [`Inbound::event_identity`]): WeChat's advice, sender and time, is
    /// not enough when one user subscribes, clicks and unsubscribes within
    /// a second, or two template reports arrive together.
    pub fn dedup_key(&self) -> String {
        match (&self.msg_id, &self.event_identity) {
            (Some(id), _) => format!("msg:{id}"),
            (None, Some(identity)) => format!(
                "evt:{}:{}:{identity}",
                self.from_user_name, self.create_time
            ),
            (None, None) => format!("evt:{}:{}", self.from_user_name, self.create_time),
        }
    }

    /// A short label of the kind: `text`, `event:subscribe`,
    /// `unsupported:hologram`. Safe for counter and table keys.
    pub fn kind_label(&self) -> String {
        match &self.body {
            InboundBody::Message(m) => m.kind().to_owned(),
            InboundBody::Event(e) => format!("event:{}", e.kind()),
            InboundBody::Unsupported {
                msg_type, event, ..
            } => match event {
                Some(ev) => format!("unsupported:event:{}", label_safe(ev)),
                None => format!("unsupported:{}", label_safe(msg_type)),
            },
        }
    }

    /// What the user said in words: a text's content, or a voice
    /// message's recognised text.
    pub fn text(&self) -> Option<&str> {
        match &self.body {
            InboundBody::Message(Message::Text { content, .. }) => Some(content),
            InboundBody::Message(Message::Voice {
                recognition: Some(r),
                ..
            }) if !r.is_empty() => Some(r),
            _ => None,
        }
    }
}

impl Message {
    /// The `MsgType` as WeChat spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Image { .. } => "image",
            Self::Voice { .. } => "voice",
            Self::Video { .. } => "video",
            Self::ShortVideo { .. } => "shortvideo",
            Self::Location { .. } => "location",
            Self::Link { .. } => "link",
        }
    }
}

impl Event {
    /// The `Event` value, lower-cased.
    pub fn kind(&self) -> &str {
        match self {
            Self::Subscribe { .. } => "subscribe",
            Self::Unsubscribe => "unsubscribe",
            Self::Scan { .. } => "scan",
            Self::Location { .. } => "location",
            Self::Click { .. } => "click",
            Self::View { .. } => "view",
            Self::ScanCode {
                wait_for_reply: true,
                ..
            } => "scancode_waitmsg",
            Self::ScanCode { .. } => "scancode_push",
            Self::SendPictures { source, .. } => source,
            Self::LocationSelect { .. } => "location_select",
            Self::ViewMiniprogram { .. } => "view_miniprogram",
            Self::TemplateSendJobFinish { .. } => "templatesendjobfinish",
            Self::MassSendJobFinish { .. } => "masssendjobfinish",
            Self::SubscribeMessage { kind, .. } => match kind.as_str() {
                "popup" => "subscribe_msg_popup_event",
                "change" => "subscribe_msg_change_event",
                _ => "subscribe_msg_sent_event",
            },
            Self::KfSession { action, .. } => match action.as_str() {
                "create" => "kf_create_session",
                "close" => "kf_close_session",
                _ => "kf_switch_session",
            },
        }
    }

    /// The scene of a parametric QR code (`qrscene_` stripped on follow).
    pub fn qr_scene(&self) -> Option<&str> {
        match self {
            Self::Subscribe {
                event_key: Some(k), ..
            } => k.strip_prefix("qrscene_"),
            Self::Scan { event_key, .. } => Some(event_key),
            _ => None,
        }
    }
}

/// See [`Inbound::event_identity`].
fn event_identity(root: &Node) -> String {
    let event = label_safe(root.text_of("Event").unwrap_or(""));
    let key = root.text_of("EventKey").map(str::trim).unwrap_or("");
    let msg_id = root.text_of("MsgID").map(str::trim).unwrap_or("");
    if key.is_empty() && msg_id.is_empty() {
        return event;
    }
    let digest = Sha1::new()
        .chain_update(key.as_bytes())
        .chain_update([0u8])
        .chain_update(msg_id.as_bytes())
        .finalize();
    let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{event}:{short}")
}

/// Lower-case ASCII letters, digits and `_`, at most 32: an unknown type
/// from the wire never makes an odd key.
fn label_safe(raw: &str) -> String {
    raw.chars()
        .filter_map(|c| {
            let c = c.to_ascii_lowercase();
            (c.is_ascii_alphanumeric() || c == '_').then_some(c)
        })
        .take(32)
        .collect()
}

fn body(root: &Node, msg_type: &str) -> Result<InboundBody, WechatError> {
    let message = match msg_type.to_ascii_lowercase().as_str() {
        "text" => Message::Text {
            content: root
                .text_of("Content")
                .ok_or(WechatError::MissingField("Content"))?
                .to_owned(),
            biz_msg_menu_id: root.non_empty("bizmsgmenuid"),
        },
        "image" => Message::Image {
            pic_url: root.string("PicUrl"),
            media_id: root.string("MediaId"),
        },
        "voice" => Message::Voice {
            media_id: root.string("MediaId"),
            format: root.string("Format"),
            recognition: root.non_empty("Recognition"),
        },
        "video" => Message::Video {
            media_id: root.string("MediaId"),
            thumb_media_id: root.string("ThumbMediaId"),
        },
        "shortvideo" => Message::ShortVideo {
            media_id: root.string("MediaId"),
            thumb_media_id: root.string("ThumbMediaId"),
        },
        "location" => Message::Location {
            latitude: coordinate(root, "Location_X")?,
            longitude: coordinate(root, "Location_Y")?,
            scale: root.string("Scale"),
            label: root.string("Label"),
        },
        "link" => Message::Link {
            title: root.string("Title"),
            description: root.string("Description"),
            url: root.string("Url"),
        },
        "event" => {
            let name = root
                .text_of("Event")
                .ok_or(WechatError::MissingField("Event"))?
                .trim();
            return Ok(match event(root, name)? {
                Some(e) => InboundBody::Event(e),
                None => unsupported(root, msg_type, Some(name)),
            });
        }
        _ => return Ok(unsupported(root, msg_type, None)),
    };
    Ok(InboundBody::Message(message))
}

fn unsupported(root: &Node, msg_type: &str, event: Option<&str>) -> InboundBody {
    InboundBody::Unsupported {
        msg_type: msg_type.to_owned(),
        event: event.map(str::to_owned),
        fields: root
            .children
            .iter()
            .filter(|c| c.children.is_empty())
            .map(|c| (c.name.clone(), c.text.clone()))
            .collect(),
    }
}

fn number<T: std::str::FromStr>(node: &Node, name: &'static str) -> Result<T, WechatError> {
    node.text_of(name)
        .ok_or(WechatError::MissingField(name))?
        .trim()
        .parse()
        .map_err(|_| WechatError::BadField(name))
}

/// A latitude, longitude or precision: a finite number. `inf` and `NaN`
/// parse as `f64`, but are no place, and the archive's JSON cannot carry
/// them (they became `null`).
fn coordinate(node: &Node, name: &'static str) -> Result<f64, WechatError> {
    let value: f64 = number(node, name)?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(WechatError::BadField(name))
    }
}

/// A count WeChat reports; absent counts read 0.
fn count(node: &Node, name: &'static str) -> Result<u64, WechatError> {
    match node.text_of(name) {
        None => Ok(0),
        Some(_) => number(node, name),
    }
}

/// The typed event, or `None` for one we do not know.
fn event(root: &Node, name: &str) -> Result<Option<Event>, WechatError> {
    // Menu ids arrive as numbers; keep them as text.
    let lower = name.to_ascii_lowercase();
    let event = match lower.as_str() {
        "subscribe" => Event::Subscribe {
            event_key: root.non_empty("EventKey"),
            ticket: root.non_empty("Ticket"),
        },
        "unsubscribe" => Event::Unsubscribe,
        "scan" => Event::Scan {
            event_key: root.string("EventKey"),
            ticket: root.non_empty("Ticket"),
        },
        "location" => Event::Location {
            latitude: coordinate(root, "Latitude")?,
            longitude: coordinate(root, "Longitude")?,
            precision: coordinate(root, "Precision").unwrap_or(0.0),
        },
        "click" => Event::Click {
            event_key: root.string("EventKey"),
        },
        "view" => Event::View {
            url: root.string("EventKey"),
            menu_id: root.non_empty("MenuId"),
        },
        "scancode_push" | "scancode_waitmsg" => {
            let info = root.child("ScanCodeInfo");
            let field = |n: &str| {
                info.and_then(|i| i.text_of(n))
                    .unwrap_or_default()
                    .to_owned()
            };
            Event::ScanCode {
                wait_for_reply: lower == "scancode_waitmsg",
                event_key: root.string("EventKey"),
                scan_type: field("ScanType"),
                scan_result: field("ScanResult"),
            }
        }
        "pic_sysphoto" | "pic_photo_or_album" | "pic_weixin" => {
            let info = root.child("SendPicsInfo");
            let pic_md5 = info
                .and_then(|i| i.child("PicList"))
                .map(|list| {
                    list.children_named("item")
                        .filter_map(|item| item.text_of("PicMd5Sum"))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            Event::SendPictures {
                source: lower.clone(),
                event_key: root.string("EventKey"),
                count: match info {
                    Some(i) => count(i, "Count")? as u32,
                    None => 0,
                },
                pic_md5,
            }
        }
        "location_select" => {
            let info = root
                .child("SendLocationInfo")
                .ok_or(WechatError::MissingField("SendLocationInfo"))?;
            Event::LocationSelect {
                event_key: root.string("EventKey"),
                latitude: coordinate(info, "Location_X")?,
                longitude: coordinate(info, "Location_Y")?,
                scale: info.string("Scale"),
                label: info.string("Label"),
                poi_name: info.non_empty("Poiname"),
            }
        }
        "view_miniprogram" => Event::ViewMiniprogram {
            event_key: root.string("EventKey"),
            menu_id: root.non_empty("MenuId"),
        },
        "templatesendjobfinish" => Event::TemplateSendJobFinish {
            msg_id: root.string("MsgID"),
            status: root.string("Status"),
        },
        "masssendjobfinish" => Event::MassSendJobFinish {
            msg_id: root.string("MsgID"),
            status: root.string("Status"),
            total_count: count(root, "TotalCount")?,
            filter_count: count(root, "FilterCount")?,
            sent_count: count(root, "SentCount")?,
            error_count: count(root, "ErrorCount")?,
        },
        "subscribe_msg_popup_event" | "subscribe_msg_change_event" | "subscribe_msg_sent_event" => {
            let (kind, container) = match lower.as_str() {
                "subscribe_msg_popup_event" => ("popup", "SubscribeMsgPopupEvent"),
                "subscribe_msg_change_event" => ("change", "SubscribeMsgChangeEvent"),
                _ => ("sent", "SubscribeMsgSentEvent"),
            };
            let items = root
                .child(container)
                .map(|c| c.children_named("List").map(subscribe_item).collect())
                .unwrap_or_default();
            Event::SubscribeMessage {
                kind: kind.to_owned(),
                items,
            }
        }
        "kf_create_session" | "kf_close_session" => Event::KfSession {
            action: if lower == "kf_create_session" {
                "create"
            } else {
                "close"
            }
            .to_owned(),
            kf_account: root.string("KfAccount"),
            from_kf_account: None,
        },
        "kf_switch_session" => Event::KfSession {
            action: "switch".to_owned(),
            kf_account: root.string("ToKfAccount"),
            from_kf_account: root.non_empty("FromKfAccount"),
        },
        _ => return Ok(None),
    };
    Ok(Some(event))
}

fn subscribe_item(node: &Node) -> SubscribeMsgItem {
    SubscribeMsgItem {
        template_id: node.string("TemplateId"),
        status: node.non_empty("SubscribeStatusString"),
        popup_scene: node.non_empty("PopupScene"),
        msg_id: node.non_empty("MsgID"),
        error_code: node.non_empty("ErrorCode"),
        error_status: node.non_empty("ErrorStatus"),
    }
}
