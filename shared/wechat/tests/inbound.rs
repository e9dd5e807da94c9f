//! Every inbound message type and event WeChat documents, as WeChat sends
//! it, parsed into its typed variant; and hostile input that must give a
//! typed error, never a panic.

use proptest::prelude::*;
use wca_wechat::callback::CallbackConfig;
use wca_wechat::xml::{Event, Message};
use wca_wechat::{AesKey, Inbound, InboundBody, Token, WechatError, client_side};

fn envelope(msg_type: &str, rest: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName>\n<FromUserName><![CDATA[oUser000000000000000000001]]></FromUserName>\n\
         <CreateTime>1700000000</CreateTime>\n<MsgType><![CDATA[{msg_type}]]></MsgType>\n{rest}</xml>"
    )
}

fn event(name: &str, rest: &str) -> String {
    envelope("event", &format!("<Event><![CDATA[{name}]]></Event>{rest}"))
}

fn parse(xml: &str) -> Inbound {
    Inbound::parse(xml).unwrap_or_else(|e| panic!("{e}: {xml}"))
}

#[test]
fn every_message_type_parses_into_its_variant() {
    let table: Vec<(String, &str, Message)> = vec![
        (
            envelope(
                "text",
                "<Content><![CDATA[我的快递到哪了]]></Content><MsgId>1</MsgId>",
            ),
            "text",
            Message::Text {
                content: "我的快递到哪了".into(),
                biz_msg_menu_id: None,
            },
        ),
        (
            envelope(
                "text",
                "<Content>满意</Content><MsgId>1</MsgId><bizmsgmenuid>101</bizmsgmenuid>",
            ),
            "text",
            Message::Text {
                content: "满意".into(),
                biz_msg_menu_id: Some("101".into()),
            },
        ),
        (
            envelope(
                "image",
                "<PicUrl><![CDATA[http://mmbiz/x.jpg]]></PicUrl><MediaId><![CDATA[m1]]></MediaId><MsgId>2</MsgId>",
            ),
            "image",
            Message::Image {
                pic_url: "http://mmbiz/x.jpg".into(),
                media_id: "m1".into(),
            },
        ),
        (
            envelope(
                "voice",
                "<MediaId><![CDATA[m2]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[你好]]></Recognition><MsgId>3</MsgId>",
            ),
            "voice",
            Message::Voice {
                media_id: "m2".into(),
                format: "amr".into(),
                recognition: Some("你好".into()),
            },
        ),
        (
            envelope(
                "voice",
                "<MediaId><![CDATA[m2]]></MediaId><Format><![CDATA[speex]]></Format><MsgId>4</MsgId>",
            ),
            "voice",
            Message::Voice {
                media_id: "m2".into(),
                format: "speex".into(),
                recognition: None,
            },
        ),
        (
            envelope(
                "video",
                "<MediaId><![CDATA[m3]]></MediaId><ThumbMediaId><![CDATA[t3]]></ThumbMediaId><MsgId>5</MsgId>",
            ),
            "video",
            Message::Video {
                media_id: "m3".into(),
                thumb_media_id: "t3".into(),
            },
        ),
        (
            envelope(
                "shortvideo",
                "<MediaId><![CDATA[m4]]></MediaId><ThumbMediaId><![CDATA[t4]]></ThumbMediaId><MsgId>6</MsgId>",
            ),
            "shortvideo",
            Message::ShortVideo {
                media_id: "m4".into(),
                thumb_media_id: "t4".into(),
            },
        ),
        (
            envelope(
                "location",
                "<Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[广州市天河区]]></Label><MsgId>7</MsgId>",
            ),
            "location",
            Message::Location {
                latitude: 23.134521,
                longitude: 113.358803,
                scale: "20".into(),
                label: "广州市天河区".into(),
            },
        ),
        (
            envelope(
                "link",
                "<Title><![CDATA[标题]]></Title><Description><![CDATA[描述]]></Description><Url><![CDATA[https://example.com/a]]></Url><MsgId>8</MsgId>",
            ),
            "link",
            Message::Link {
                title: "标题".into(),
                description: "描述".into(),
                url: "https://example.com/a".into(),
            },
        ),
    ];
    for (xml, label, want) in table {
        let got = parse(&xml);
        assert_eq!(got.body, InboundBody::Message(want), "{xml}");
        assert_eq!(got.kind_label(), label);
        assert!(got.dedup_key().starts_with("msg:"));
        assert_eq!(got.raw_xml, xml, "the raw XML is kept exactly");
    }
}

#[test]
fn every_documented_event_parses_into_its_variant() {
    let table: Vec<(String, &str, Event)> = vec![
        (
            event("subscribe", ""),
            "event:subscribe",
            Event::Subscribe {
                event_key: None,
                ticket: None,
            },
        ),
        (
            event(
                "subscribe",
                "<EventKey><![CDATA[qrscene_123123]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>",
            ),
            "event:subscribe",
            Event::Subscribe {
                event_key: Some("qrscene_123123".into()),
                ticket: Some("TICKET".into()),
            },
        ),
        (
            event("unsubscribe", ""),
            "event:unsubscribe",
            Event::Unsubscribe,
        ),
        (
            event(
                "SCAN",
                "<EventKey><![CDATA[SCENE_VALUE]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>",
            ),
            "event:scan",
            Event::Scan {
                event_key: "SCENE_VALUE".into(),
                ticket: Some("TICKET".into()),
            },
        ),
        (
            event(
                "LOCATION",
                "<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>",
            ),
            "event:location",
            Event::Location {
                latitude: 23.137466,
                longitude: 113.352425,
                precision: 119.38504,
            },
        ),
        (
            event(
                "CLICK",
                "<EventKey><![CDATA[V1001_TODAY_MUSIC]]></EventKey>",
            ),
            "event:click",
            Event::Click {
                event_key: "V1001_TODAY_MUSIC".into(),
            },
        ),
        (
            event(
                "VIEW",
                "<EventKey><![CDATA[www.qq.com]]></EventKey><MenuId>MENUID</MenuId>",
            ),
            "event:view",
            Event::View {
                url: "www.qq.com".into(),
                menu_id: Some("MENUID".into()),
            },
        ),
        (
            event(
                "scancode_waitmsg",
                "<EventKey><![CDATA[rselfmenu_0_0]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[2]]></ScanResult></ScanCodeInfo>",
            ),
            "event:scancode_waitmsg",
            Event::ScanCode {
                wait_for_reply: true,
                event_key: "rselfmenu_0_0".into(),
                scan_type: "qrcode".into(),
                scan_result: "2".into(),
            },
        ),
        (
            event(
                "pic_weixin",
                "<EventKey><![CDATA[6]]></EventKey><SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum><![CDATA[5a75aaca956d97be686719218f275c6b]]></PicMd5Sum></item></PicList></SendPicsInfo>",
            ),
            "event:pic_weixin",
            Event::SendPictures {
                source: "pic_weixin".into(),
                event_key: "6".into(),
                count: 1,
                pic_md5: vec!["5a75aaca956d97be686719218f275c6b".into()],
            },
        ),
        (
            event(
                "location_select",
                "<EventKey><![CDATA[6]]></EventKey><SendLocationInfo><Location_X><![CDATA[23]]></Location_X><Location_Y><![CDATA[113]]></Location_Y><Scale><![CDATA[15]]></Scale><Label><![CDATA[ 广州市海珠区]]></Label><Poiname><![CDATA[]]></Poiname></SendLocationInfo>",
            ),
            "event:location_select",
            Event::LocationSelect {
                event_key: "6".into(),
                latitude: 23.0,
                longitude: 113.0,
                scale: "15".into(),
                label: " 广州市海珠区".into(),
                poi_name: None,
            },
        ),
        (
            event(
                "view_miniprogram",
                "<EventKey><![CDATA[pages/index/index]]></EventKey><MenuId>MENUID</MenuId>",
            ),
            "event:view_miniprogram",
            Event::ViewMiniprogram {
                event_key: "pages/index/index".into(),
                menu_id: Some("MENUID".into()),
            },
        ),
        (
            event(
                "TEMPLATESENDJOBFINISH",
                "<MsgID>200163836</MsgID><Status><![CDATA[success]]></Status>",
            ),
            "event:templatesendjobfinish",
            Event::TemplateSendJobFinish {
                msg_id: "200163836".into(),
                status: "success".into(),
            },
        ),
        (
            event(
                "MASSSENDJOBFINISH",
                "<MsgID>1000001625</MsgID><Status><![CDATA[err(30003)]]></Status><TotalCount>0</TotalCount><FilterCount>0</FilterCount><SentCount>0</SentCount><ErrorCount>0</ErrorCount>",
            ),
            "event:masssendjobfinish",
            Event::MassSendJobFinish {
                msg_id: "1000001625".into(),
                status: "err(30003)".into(),
                total_count: 0,
                filter_count: 0,
                sent_count: 0,
                error_count: 0,
            },
        ),
        (
            event(
                "subscribe_msg_popup_event",
                "<SubscribeMsgPopupEvent><List><TemplateId><![CDATA[VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc]]></TemplateId><SubscribeStatusString><![CDATA[accept]]></SubscribeStatusString><PopupScene>2</PopupScene></List><List><TemplateId><![CDATA[9nLIlbOQZC5Y89AZteFEux3WCXRRRG5Wfzkpssu4bLI]]></TemplateId><SubscribeStatusString><![CDATA[reject]]></SubscribeStatusString><PopupScene>2</PopupScene></List></SubscribeMsgPopupEvent>",
            ),
            "event:subscribe_msg_popup_event",
            Event::SubscribeMessage {
                kind: "popup".into(),
                items: vec![
                    wca_wechat::xml::SubscribeMsgItem {
                        template_id: "VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc".into(),
                        status: Some("accept".into()),
                        popup_scene: Some("2".into()),
                        ..Default::default()
                    },
                    wca_wechat::xml::SubscribeMsgItem {
                        template_id: "9nLIlbOQZC5Y89AZteFEux3WCXRRRG5Wfzkpssu4bLI".into(),
                        status: Some("reject".into()),
                        popup_scene: Some("2".into()),
                        ..Default::default()
                    },
                ],
            },
        ),
        (
            event(
                "kf_switch_session",
                "<FromKfAccount><![CDATA[test1@test]]></FromKfAccount><ToKfAccount><![CDATA[test2@test]]></ToKfAccount>",
            ),
            "event:kf_switch_session",
            Event::KfSession {
                action: "switch".into(),
                kf_account: "test2@test".into(),
                from_kf_account: Some("test1@test".into()),
            },
        ),
    ];
    for (xml, label, want) in table {
        let got = parse(&xml);
        assert_eq!(got.body, InboundBody::Event(want), "{xml}");
        assert_eq!(got.kind_label(), label);
        assert!(
            got.dedup_key()
                .starts_with("evt:oUser000000000000000000001:1700000000:"),
            "events dedup by sender, time and identity: {}",
            got.dedup_key()
        );
    }
}

#[test]
fn events_of_one_user_in_the_same_second_each_have_their_own_dedup_key() {
    use wca_wechat::client_side::event_xml;
    let (gh, user, t) = ("gh_x", "oUser000000000000000000001", 1_700_000_000);
    let report = |msg_id: &str| {
        format!(
            "<xml><ToUserName>{gh}</ToUserName><FromUserName>{user}</FromUserName>\
             <CreateTime>{t}</CreateTime><MsgType>event</MsgType>\
             <Event>TEMPLATESENDJOBFINISH</Event><MsgID>{msg_id}</MsgID><Status>success</Status></xml>"
        )
    };
    let events = [
        event_xml(gh, user, t, "subscribe", None),
        event_xml(gh, user, t, "CLICK", Some("menu_orders")),
        event_xml(gh, user, t, "CLICK", Some("menu_help")),
        event_xml(gh, user, t, "unsubscribe", None),
        report("200001"),
        report("200002"),
    ];
    let keys: Vec<String> = events.iter().map(|x| parse(x).dedup_key()).collect();
    let mut distinct = keys.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), events.len(), "{keys:?}");
    assert_eq!(keys[0], format!("evt:{user}:{t}:subscribe"));
    for (xml, key) in events.iter().zip(&keys) {
        assert_eq!(&parse(xml).dedup_key(), key, "a retry shares its key");
    }
}

#[test]
fn a_follow_from_a_parametric_qr_code_exposes_its_scene() {
    let got = parse(&event(
        "subscribe",
        "<EventKey><![CDATA[qrscene_spring]]></EventKey>",
    ));
    let InboundBody::Event(e) = got.body else {
        panic!("not an event")
    };
    assert_eq!(e.qr_scene(), Some("spring"));
}

#[test]
fn unknown_types_and_events_are_kept_with_their_fields_not_refused() {
    let got = parse(&envelope("hologram", "<Depth>3</Depth><MsgId>99</MsgId>"));
    assert_eq!(got.kind_label(), "unsupported:hologram");
    assert_eq!(got.dedup_key(), "msg:99");
    match &got.body {
        InboundBody::Unsupported {
            msg_type,
            event,
            fields,
        } => {
            assert_eq!(msg_type, "hologram");
            assert_eq!(event, &None);
            assert_eq!(fields.get("Depth").map(String::as_str), Some("3"));
        }
        other => panic!("{other:?}"),
    }
    let got = parse(&event("Brand-New Event!", ""));
    assert_eq!(
        got.kind_label(),
        "unsupported:event:brandnewevent",
        "labels are key-safe"
    );
}

#[test]
fn missing_or_malformed_header_fields_are_typed_errors() {
    let cases = [
        (
            "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content></xml>",
            WechatError::MissingField("ToUserName"),
        ),
        (
            "<xml><ToUserName>g</ToUserName><FromUserName>o</FromUserName><CreateTime>soon</CreateTime><MsgType>text</MsgType><Content>x</Content></xml>",
            WechatError::BadField("CreateTime"),
        ),
        (
            "<xml><ToUserName>g</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>",
            WechatError::MissingField("Content"),
        ),
        (
            "<xml><ToUserName>g</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content><MsgId>1:2</MsgId></xml>",
            WechatError::BadField("MsgId"),
        ),
    ];
    for (xml, want) in cases {
        assert_eq!(Inbound::parse(xml), Err(want), "{xml}");
    }
}

/// Found by `wca-fuzz --target xml` (`tests/fuzz/found/xml-*`):
/// `<Location_Y>inf</Location_Y>` was accepted, and the archive's JSON
/// recorded the place as `null`.
#[test]
fn a_location_at_infinity_or_nan_is_a_bad_field() {
    let cases = [
        (
            envelope(
                "location",
                "<Location_X>23.1</Location_X><Location_Y>inf</Location_Y><Scale>20</Scale><Label>x</Label><MsgId>7</MsgId>",
            ),
            "Location_Y",
        ),
        (
            event(
                "LOCATION",
                "<Latitude>NaN</Latitude><Longitude>113.3</Longitude>",
            ),
            "Latitude",
        ),
        (
            event(
                "location_select",
                "<SendLocationInfo><Location_X>-inf</Location_X><Location_Y>113</Location_Y></SendLocationInfo>",
            ),
            "Location_X",
        ),
    ];
    for (xml, field) in cases {
        assert_eq!(
            Inbound::parse(&xml),
            Err(WechatError::BadField(field)),
            "{xml}"
        );
    }
}

fn config(safe: bool) -> CallbackConfig {
    CallbackConfig {
        token: Token::new("propToken1").expect("token"),
        app_id: "wxprop".to_owned(),
        aes_key: safe
            .then(|| AesKey::parse("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").expect("key")),
        max_body_bytes: 65536,
        timestamp_window_secs: Some(300),
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_parser(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = Inbound::parse(text);
        }
    }

    #[test]
    fn arbitrary_xml_like_text_never_panics(s in "(<[a-zA-Z]{1,4}>|</[a-zA-Z]{1,4}>|<!\\[CDATA\\[|\\]\\]>|&[a-z#0-9]{0,4};|[a-z0-9 ]{0,4}){0,40}") {
        let _ = Inbound::parse(&s);
    }

    #[test]
    fn any_text_survives_the_round_trip_through_a_signed_encrypted_request(content in "\\PC{0,200}", safe in any::<bool>()) {
        let cfg = config(safe);
        let inner = client_side::text_message_xml("gh_p", "oProp", 1_700_000_000, "7", &content);
        let sealed = client_side::seal_request(&cfg.token, cfg.aes_key.as_ref(), "wxprop", "gh_p", "oProp", &inner, 1_700_000_000, "9", [1; 16]);
        let opened = cfg.open_request(&sealed.parsed_query(), sealed.body.as_bytes(), 1_700_000_000).expect("opens");
        prop_assert_eq!(opened.inbound.text(), Some(content.as_str()));
    }

    #[test]
    fn a_flipped_ciphertext_byte_is_a_typed_error_or_a_different_message_never_a_panic(pos in 0usize..400, bit in 0u8..8) {
        let cfg = config(true);
        let inner = client_side::text_message_xml("gh_p", "oProp", 1_700_000_000, "7", "你好");
        let sealed = client_side::seal_request(&cfg.token, cfg.aes_key.as_ref(), "wxprop", "gh_p", "oProp", &inner, 1_700_000_000, "9", [1; 16]);
        let query = sealed.parsed_query();
        let mut body = sealed.body.into_bytes();
        let i = pos % body.len();
        body[i] ^= 1 << bit;
        // Any outcome but a panic is fine; most flips fail the signature.
        let _ = cfg.open_request(&query, &body, 1_700_000_000);
    }
}
