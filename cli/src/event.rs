//! `wca event webhook-get|webhook-post|sqs`: prints a sample Lambda event,
//! signed and timestamped now, for `sam local invoke -e FILE` and
//! `cargo lambda invoke --data-file FILE`.
//!
//! The checked-in samples in `infra/events/` are signed at 2023-11-14, so
//! the webhook only takes them with its timestamp window turned off; these
//! are fresh, so the webhook runs with its real settings (the default
//! window is 300 s: invoke within five minutes). The shapes are those of
//! the checked-in files, field for field:
//!
//! - `webhook-get`: API Gateway HTTP API (payload 2.0) `GET /wechat`, the
//!   URL verification WeChat sends when the server is configured
//!   (`signature`, `timestamp`, `nonce`, `echostr`), like
//!   `webhook-verify.json`.
//! - `webhook-post`: `POST /wechat` with a text message, like
//!   `webhook-text.json`; in safe mode (`WECHAT_AES_KEY` set) encrypted and
//!   with `msg_signature`, exactly as `wca send` posts it.
//! - `sqs`: an SQS batch of one record holding the EventBridge event of a
//!   received message, what the analytics queue delivers, like the first
//!   record of `analytics-batch.json`.
//!
//! The token is `WECHAT_TOKEN`, or `wca serve`'s development token in
//! `--data-dir`; the AppID (inside encrypted messages) `WECHAT_APP_ID` or
//! the development one. The function must run with the same values.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use rand::Rng;
use serde::{Serialize, Serializer};
use wca_wechat::client_side;

use crate::DEFAULT_DATA_DIR;
use crate::send::Secrets;

#[derive(Debug, Args)]
pub struct EventArgs {
    /// Which event to print.
    kind: Kind,
    /// The message's text (webhook-post).
    #[arg(long, default_value = "你好")]
    text: String,
    /// The sender's OpenID (webhook-post, sqs).
    #[arg(long = "from", default_value = "oWcaDevUser000000000000001")]
    from: String,
    /// The Official Account's id, ToUserName (webhook-post).
    #[arg(long = "to", default_value = "gh_wcadev0000")]
    to: String,
    /// MsgId (webhook-post, sqs); random by default.
    #[arg(long)]
    msg_id: Option<u64>,
    /// What the URL verification asks the webhook to echo (webhook-get).
    #[arg(long, default_value = "hello-from-wechat")]
    echostr: String,
    /// Where `wca serve` keeps its development token, used when
    /// WECHAT_TOKEN is not set (webhook-get, webhook-post).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// HTTP API `GET /wechat`: WeChat's URL verification.
    WebhookGet,
    /// HTTP API `POST /wechat`: a text message (encrypted in safe mode).
    WebhookPost,
    /// SQS record of an EventBridge `MessageReceived` (the analytics queue).
    Sqs,
}

pub fn run(args: EventArgs) -> anyhow::Result<()> {
    let now = Now::system();
    let mut rng = rand::rng();
    let json = match args.kind {
        Kind::WebhookGet => webhook_get(&args, now, &mut rng)?,
        Kind::WebhookPost => webhook_post(&args, now, &mut rng)?,
        Kind::Sqs => sqs(&args, now, &mut rng)?,
    };
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{json}").and_then(|()| out.flush()) {
        // `wca event ... | head`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written.context("writing the event to stdout"),
    }
}

/// The moment the event is stamped with, in the two resolutions AWS uses.
#[derive(Debug, Clone, Copy)]
struct Now {
    ms: i64,
}

impl Now {
    fn system() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self { ms }
    }

    fn secs(self) -> i64 {
        self.ms.div_euclid(1000)
    }
}

fn webhook_get(args: &EventArgs, now: Now, rng: &mut impl Rng) -> anyhow::Result<String> {
    let secrets = Secrets::from_env(&args.data_dir)?;
    let ts = now.secs().to_string();
    let nonce = nonce(rng);
    let signature = wca_wechat::signature::sign(&[secrets.token.expose(), &ts, &nonce]);
    let query = vec![
        ("signature".to_owned(), signature),
        ("timestamp".to_owned(), ts),
        ("nonce".to_owned(), nonce),
        ("echostr".to_owned(), args.echostr.clone()),
    ];
    to_json(&HttpApiEvent::new("GET", query, None, now, rng))
}

fn webhook_post(args: &EventArgs, now: Now, rng: &mut impl Rng) -> anyhow::Result<String> {
    let secrets = Secrets::from_env(&args.data_dir)?;
    let msg_id = msg_id(args, rng);
    let inner = client_side::text_message_xml(
        &args.to,
        &args.from,
        now.secs(),
        &msg_id.to_string(),
        &args.text,
    );
    let sealed = client_side::seal_request(
        &secrets.token,
        secrets.key.as_ref(),
        &secrets.app_id,
        &args.to,
        &args.from,
        &inner,
        now.secs(),
        &nonce(rng),
        rng.random(),
    );
    to_json(&HttpApiEvent::new(
        "POST",
        sealed.query,
        Some(sealed.body),
        now,
        rng,
    ))
}

fn sqs(args: &EventArgs, now: Now, rng: &mut impl Rng) -> anyhow::Result<String> {
    let msg_key = format!("msg:{}", msg_id(args, rng));
    let detail = wca_core::Event::message_received(&msg_key, &args.from, "text", now.secs(), None);
    let envelope = EventBridgeEvent {
        version: "0",
        id: uuid(rng),
        detail_type: detail.kind.type_name().to_owned(),
        source: EVENT_SOURCE,
        account: ACCOUNT,
        time: UtcTime::from_unix(now.secs()).rfc3339(),
        region: REGION,
        resources: [],
        detail: &detail,
    };
    let sent = now.ms.to_string();
    let event = SqsEvent {
        records: vec![SqsRecord {
            message_id: uuid(rng),
            receipt_handle: "AQEB-sample",
            body: serde_json::to_string(&envelope).context("serialising the EventBridge event")?,
            attributes: SqsAttributes {
                approximate_receive_count: "1",
                sent_timestamp: sent.clone(),
                sender_id: "AIDAEXAMPLE",
                approximate_first_receive_timestamp: sent,
            },
            message_attributes: Pairs(Vec::new()),
            md5_of_body: "",
            event_source: "aws:sqs",
            event_source_arn: format!("arn:aws:sqs:{REGION}:{ACCOUNT}:wca-AnalyticsQueue"),
            aws_region: REGION,
        }],
    };
    to_json(&event)
}

fn to_json(event: &impl Serialize) -> anyhow::Result<String> {
    serde_json::to_string_pretty(event).context("serialising the event")
}

fn msg_id(args: &EventArgs, rng: &mut impl Rng) -> u64 {
    args.msg_id
        .unwrap_or_else(|| rng.random_range(1..u64::MAX / 2))
}

fn nonce(rng: &mut impl Rng) -> String {
    rng.random_range(100_000_000u64..999_999_999).to_string()
}

/// A random version-4 UUID, as SQS message ids and EventBridge event ids
/// look.
fn uuid(rng: &mut impl Rng) -> String {
    let n: u128 = rng.random();
    let n = (n & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

// The placeholders of the checked-in samples: nothing here names a real
// account or API.
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const API_ID: &str = "example";
const HOST: &str = "example.execute-api.us-east-1.amazonaws.com";
/// The `source` wca's events carry on the bus (`wca_aws`'s `SOURCE`).
const EVENT_SOURCE: &str = "wca";

/// Name/value pairs written as a JSON object in their order (query
/// parameters, headers).
#[derive(Debug)]
struct Pairs<K, V>(Vec<(K, V)>);

impl<K: Serialize, V: Serialize> Serialize for Pairs<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// An API Gateway HTTP API event, payload format 2.0.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpApiEvent {
    version: &'static str,
    route_key: String,
    raw_path: &'static str,
    raw_query_string: String,
    headers: Pairs<&'static str, &'static str>,
    query_string_parameters: Pairs<String, String>,
    request_context: RequestContext,
    is_base64_encoded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext {
    account_id: &'static str,
    api_id: &'static str,
    domain_name: &'static str,
    domain_prefix: &'static str,
    http: HttpDescription,
    request_id: String,
    route_key: String,
    stage: &'static str,
    time: String,
    time_epoch: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpDescription {
    method: &'static str,
    path: &'static str,
    protocol: &'static str,
    source_ip: &'static str,
    user_agent: &'static str,
}

impl HttpApiEvent {
    fn new(
        method: &'static str,
        query: Vec<(String, String)>,
        body: Option<String>,
        now: Now,
        rng: &mut impl Rng,
    ) -> Self {
        let route_key = format!("{method} /wechat");
        let raw_query_string = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&query)
            .finish();
        Self {
            version: "2.0",
            route_key: route_key.clone(),
            raw_path: "/wechat",
            raw_query_string,
            headers: Pairs(vec![("content-type", "text/xml"), ("host", HOST)]),
            query_string_parameters: Pairs(query),
            request_context: RequestContext {
                account_id: ACCOUNT,
                api_id: API_ID,
                domain_name: HOST,
                domain_prefix: API_ID,
                http: HttpDescription {
                    method,
                    path: "/wechat",
                    protocol: "HTTP/1.1",
                    source_ip: "203.0.113.10",
                    // What WeChat's servers send.
                    user_agent: "Mozilla/4.0",
                },
                request_id: uuid(rng),
                route_key,
                stage: "$default",
                time: UtcTime::from_unix(now.secs()).common_log(),
                time_epoch: now.ms,
            },
            is_base64_encoded: false,
            body,
        }
    }
}

/// An SQS event (the `Records` batch a queue consumer receives).
#[derive(Debug, Serialize)]
struct SqsEvent {
    #[serde(rename = "Records")]
    records: Vec<SqsRecord>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SqsRecord {
    message_id: String,
    receipt_handle: &'static str,
    body: String,
    attributes: SqsAttributes,
    message_attributes: Pairs<String, String>,
    md5_of_body: &'static str,
    event_source: &'static str,
    #[serde(rename = "eventSourceARN")]
    event_source_arn: String,
    aws_region: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SqsAttributes {
    approximate_receive_count: &'static str,
    sent_timestamp: String,
    sender_id: &'static str,
    approximate_first_receive_timestamp: String,
}

/// The envelope EventBridge puts around `detail` when a rule sends it on
/// to a queue.
#[derive(Debug, Serialize)]
struct EventBridgeEvent<'a> {
    version: &'static str,
    id: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: &'static str,
    account: &'static str,
    time: String,
    region: &'static str,
    resources: [String; 0],
    detail: &'a wca_core::Event,
}

/// A UTC calendar time, for the two text forms AWS stamps events with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UtcTime {
    year: i64,
    month: u32,
    day: u32,
    secs_of_day: i64,
}

impl UtcTime {
    fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let secs_of_day = secs.rem_euclid(86_400);
        // Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self {
            year,
            month: u32::try_from(month).unwrap_or(1),
            day: u32::try_from(day).unwrap_or(1),
            secs_of_day,
        }
    }

    fn hms(self) -> (i64, i64, i64) {
        let s = self.secs_of_day;
        (s / 3600, s / 60 % 60, s % 60)
    }

    /// `2023-11-14T22:13:20Z` (EventBridge's `time`).
    fn rfc3339(self) -> String {
        let (h, m, s) = self.hms();
        format!(
            "{:04}-{:02}-{:02}T{h:02}:{m:02}:{s:02}Z",
            self.year, self.month, self.day
        )
    }

    /// `14/Nov/2023:22:13:20 +0000` (API Gateway's `requestContext.time`).
    fn common_log(self) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let (h, m, s) = self.hms();
        let month = MONTHS[(self.month as usize).saturating_sub(1) % 12];
        format!(
            "{:02}/{month}/{:04}:{h:02}:{m:02}:{s:02} +0000",
            self.day, self.year
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_the_checked_in_samples_write_1700000000() {
        let t = UtcTime::from_unix(1_700_000_000);
        assert_eq!(t.rfc3339(), "2023-11-14T22:13:20Z");
        assert_eq!(t.common_log(), "14/Nov/2023:22:13:20 +0000");
    }

    #[test]
    fn calendar_edges_land_on_the_right_day() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (1_735_689_600, "2025-01-01T00:00:00Z"),
            (-1, "1969-12-31T23:59:59Z"),
        ] {
            assert_eq!(UtcTime::from_unix(secs).rfc3339(), want, "{secs}");
        }
    }

    #[test]
    fn uuids_are_version_4() {
        let id = uuid(&mut rand::rng());
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(&id[14..15], "4", "{id}");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }
}
