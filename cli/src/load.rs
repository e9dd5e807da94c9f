//! `wca bench load`: holds N keep-alive connections to a webhook and posts
//! signed (in safe mode, encrypted) text messages on each, one after
//! another, every one with its own MsgId so that no answer comes from the
//! dedup record. Reports throughput, latency percentiles and errors.
//!
//! The client is a few lines of HTTP/1.1 over tokio sockets rather than a
//! general HTTP client: it shares the machine's cores with the server it
//! measures, so each request should cost it as little as possible.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use rand::{Rng as _, SeedableRng as _};
use tokio::net::TcpStream;
use wca_wechat::client_side;

use crate::DEFAULT_DATA_DIR;
use crate::send::Secrets;

/// What the load's senders say, round-robin: the demo shop's everyday
/// questions, a greeting, an order lookup, a flow start and a thank-you.
const TEXTS: &[&str] = &[
    "你好",
    "运费怎么算？满多少包邮",
    "我的快递到哪了",
    "可以开票吗",
    "你们一般发什么快递",
    "我要退货",
    "算了",
    "谢谢",
];

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The webhook URL (plain http).
    #[arg(long, default_value = "http://127.0.0.1:3000/wechat")]
    url: String,
    /// Connections held open, each posting one message at a time.
    #[arg(long, short = 'c', default_value_t = 10)]
    connections: usize,
    /// How long to post for, once every connection is open.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Distinct senders the messages come from.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// A request still unanswered after this many seconds counts as a
    /// timeout and its connection is reopened (WeChat gives up after 5).
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Where `wca serve` keeps its development token (used when
    /// `WECHAT_TOKEN` is not set). `WECHAT_AES_KEY` set means safe mode.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The Official Account's id (ToUserName).
    #[arg(long = "to", default_value = "gh_wcadev0000")]
    to: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Where to connect and what to ask for.
#[derive(Debug, Clone)]
struct Target {
    /// `host:port`.
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("{url:?}: the load generator speaks plain http:// only");
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            bail!("{url:?} names no host");
        }
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            path: path.to_owned(),
        })
    }
}

/// Why a request did not get a 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Failure {
    Connect,
    Timeout,
    Status(u16),
    /// The connection broke or the answer was not HTTP.
    Broken,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect => f.write_str("connect"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::Status(code) => write!(f, "http {code}"),
            Failure::Broken => f.write_str("broken connection"),
        }
    }
}

/// One connection's record.
#[derive(Debug, Default)]
struct Tally {
    /// Latency of each answered request, in microseconds.
    latencies_us: Vec<u32>,
    /// Of those, how many carried a reply (not `success`).
    replies: u64,
    failures: Vec<Failure>,
}

/// The whole run's result.
#[derive(Debug, serde::Serialize, PartialEq)]
pub struct Report {
    pub connections: usize,
    pub mode: &'static str,
    pub seconds: f64,
    pub ok: u64,
    pub replies: u64,
    pub errors: u64,
    pub error_kinds: std::collections::BTreeMap<String, u64>,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Report {
    fn new(connections: usize, mode: &'static str, seconds: f64, tallies: Vec<Tally>) -> Self {
        let mut latencies: Vec<u32> = Vec::new();
        let mut replies = 0;
        let mut error_kinds = std::collections::BTreeMap::new();
        for tally in tallies {
            latencies.extend(tally.latencies_us);
            replies += tally.replies;
            for failure in tally.failures {
                *error_kinds.entry(failure.to_string()).or_insert(0) += 1;
            }
        }
        latencies.sort_unstable();
        let ok = latencies.len() as u64;
        Self {
            connections,
            mode,
            seconds,
            ok,
            replies,
            errors: error_kinds.values().sum(),
            error_kinds,
            throughput: ok as f64 / seconds,
            p50_ms: percentile_ms(&latencies, 0.50),
            p90_ms: percentile_ms(&latencies, 0.90),
            p99_ms: percentile_ms(&latencies, 0.99),
            max_ms: latencies.last().map_or(0.0, |&us| f64::from(us) / 1000.0),
        }
    }

    fn print_table(&self) {
        println!(
            "{} connections, {} mode, {:.1} s: {:.0} msg/s ({} ok, {} with a reply), p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} errors",
            self.connections,
            self.mode,
            self.seconds,
            self.throughput,
            self.ok,
            self.replies,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
            self.errors,
        );
        for (kind, n) in &self.error_kinds {
            println!("  {n} × {kind}");
        }
    }
}

/// The nearest-rank percentile of sorted microsecond latencies, in ms.
fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
}

pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.users == 0 {
        bail!("--connections and --users must be at least 1");
    }
    if !(args.seconds > 0.0 && args.timeout > 0.0) {
        bail!("--seconds and --timeout must be positive");
    }
    let secrets = Arc::new(Secrets::from_env(&args.data_dir)?);
    let target = Target::parse(&args.url)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(drive(&args, secrets, target))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        report.print_table();
    }
    Ok(())
}

async fn drive(args: &LoadArgs, secrets: Arc<Secrets>, target: Target) -> anyhow::Result<Report> {
    let mode = if secrets.key.is_some() {
        "safe"
    } else {
        "plaintext"
    };
    // Open every connection first (a few hundred at a time, so the
    // server's accept backlog never overflows), then start the clock.
    let opening = Arc::new(tokio::sync::Semaphore::new(256));
    let mut opens = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let opening = Arc::clone(&opening);
        let authority = target.authority.clone();
        opens.spawn(async move {
            let _permit = opening.acquire().await;
            connect(&authority).await
        });
    }
    let mut streams = Vec::with_capacity(args.connections);
    while let Some(opened) = opens.join_next().await {
        streams.push(opened.context("opening a connection")??);
    }
    eprintln!(
        "wca bench load: {} connections open to {}, posting for {} s ({mode} mode)",
        streams.len(),
        target.authority,
        args.seconds
    );

    // MsgIds unique to this run: a random base plus a shared counter.
    let base = rand::rng().random_range(1u64 << 40..1u64 << 50);
    let next_id = Arc::new(AtomicU64::new(base));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.seconds);
    let mut workers = tokio::task::JoinSet::new();
    for (n, stream) in streams.into_iter().enumerate() {
        let worker = Worker {
            secrets: Arc::clone(&secrets),
            target: target.clone(),
            to: args.to.clone(),
            users: args.users,
            timeout: Duration::from_secs_f64(args.timeout),
            next_id: Arc::clone(&next_id),
            rng: rand::rngs::SmallRng::seed_from_u64(base ^ n as u64),
        };
        workers.spawn(worker.run(stream, deadline));
    }
    let mut tallies = Vec::with_capacity(args.connections);
    while let Some(tally) = workers.join_next().await {
        tallies.push(tally.context("a connection's task failed")?);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Report::new(args.connections, mode, seconds, tallies))
}

async fn connect(authority: &str) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

struct Worker {
    secrets: Arc<Secrets>,
    target: Target,
    to: String,
    users: usize,
    timeout: Duration,
    next_id: Arc<AtomicU64>,
    rng: rand::rngs::SmallRng,
}

impl Worker {
    async fn run(mut self, stream: TcpStream, deadline: Instant) -> Tally {
        let mut tally = Tally::default();
        let mut stream = Some(stream);
        let mut buf = Vec::with_capacity(4096);
        while Instant::now() < deadline {
            let conn = match stream.take() {
                Some(conn) => conn,
                None => match connect(&self.target.authority).await {
                    Ok(conn) => conn,
                    Err(_) => {
                        tally.failures.push(Failure::Connect);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let request = self.request();
            let sent = Instant::now();
            let answered =
                tokio::time::timeout(self.timeout, exchange(conn, &request, &mut buf)).await;
            match answered {
                Err(_) => tally.failures.push(Failure::Timeout),
                Ok(Err(failure)) => tally.failures.push(failure),
                Ok(Ok((conn, status, keep_alive))) => {
                    if status == 200 {
                        let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                        tally.latencies_us.push(us);
                        if !is_bare_ack(&buf) {
                            tally.replies += 1;
                        }
                    } else {
                        tally.failures.push(Failure::Status(status));
                    }
                    if keep_alive {
                        stream = Some(conn);
                    }
                }
            }
        }
        tally
    }

    /// A signed POST of a new text message from one of the senders.
    fn request(&mut self) -> Vec<u8> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let user = (id as usize) % self.users;
        let from = format!("oWcaLoad{user:020}");
        let text = TEXTS[(id as usize / self.users) % TEXTS.len()];
        let now = wca_core::Clock::now(&wca_core::SystemClock);
        let inner = client_side::text_message_xml(&self.to, &from, now, &id.to_string(), text);
        let nonce = self
            .rng
            .random_range(100_000_000u64..999_999_999)
            .to_string();
        let sealed = client_side::seal_request(
            &self.secrets.token,
            self.secrets.key.as_ref(),
            &self.secrets.app_id,
            &self.to,
            &from,
            &inner,
            now,
            &nonce,
            self.rng.random(),
        );
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&sealed.query)
            .finish();
        let sep = if self.target.path.contains('?') {
            '&'
        } else {
            '?'
        };
        let mut out = format!(
            "POST {}{sep}{query} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            self.target.path,
            self.target.authority,
            sealed.body.len()
        )
        .into_bytes();
        out.extend_from_slice(sealed.body.as_bytes());
        out
    }
}

/// Whether a response body is the bare acknowledgement.
fn is_bare_ack(body: &[u8]) -> bool {
    let body = body.trim_ascii();
    body.is_empty() || body == b"success"
}

/// Writes `request` and reads one response into `body`; gives back the
/// connection, the status and whether the connection may be reused.
async fn exchange(
    conn: TcpStream,
    request: &[u8],
    body: &mut Vec<u8>,
) -> Result<(TcpStream, u16, bool), Failure> {
    write_all(&conn, request)
        .await
        .map_err(|_| Failure::Broken)?;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = read_some(&conn, &mut chunk)
            .await
            .map_err(|_| Failure::Broken)?;
        if n == 0 {
            return Err(Failure::Broken);
        }
        head.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&head) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = response.code.ok_or(Failure::Broken)?;
                let mut length = None;
                let mut keep_alive = true;
                for header in response.headers.iter() {
                    if header.name.eq_ignore_ascii_case("content-length") {
                        length = std::str::from_utf8(header.value)
                            .ok()
                            .and_then(|v| v.trim().parse::<usize>().ok());
                    } else if header.name.eq_ignore_ascii_case("connection")
                        && header.value.eq_ignore_ascii_case(b"close")
                    {
                        keep_alive = false;
                    }
                }
                // Every answer of the webhook has a length; one without
                // is read to the end of the connection.
                body.clear();
                body.extend_from_slice(&head[head_len..]);
                match length {
                    Some(length) => {
                        while body.len() < length {
                            let n = read_some(&conn, &mut chunk)
                                .await
                                .map_err(|_| Failure::Broken)?;
                            if n == 0 {
                                return Err(Failure::Broken);
                            }
                            body.extend_from_slice(&chunk[..n]);
                        }
                        body.truncate(length);
                    }
                    None => {
                        loop {
                            let n = read_some(&conn, &mut chunk)
                                .await
                                .map_err(|_| Failure::Broken)?;
                            if n == 0 {
                                break;
                            }
                            body.extend_from_slice(&chunk[..n]);
                        }
                        keep_alive = false;
                    }
                }
                return Ok((conn, status, keep_alive));
            }
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return Err(Failure::Broken),
        }
    }
}

/// Reads what has arrived (0 at the end of the stream).
async fn read_some(conn: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        conn.readable().await?;
        match conn.try_read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            done => return done,
        }
    }
}

async fn write_all(conn: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        conn.writable().await?;
        match conn.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_a_port_means_port_80_and_its_path_is_kept() {
        let t = Target::parse("http://example.test/wechat").expect("valid");
        assert_eq!(t.authority, "example.test:80");
        assert_eq!(t.path, "/wechat");
        let t = Target::parse("http://127.0.0.1:3000").expect("valid");
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("127.0.0.1:3000", "/")
        );
    }

    #[test]
    fn an_https_url_is_refused_with_a_reason() {
        let err = Target::parse("https://example.test/wechat").expect_err("https");
        assert!(err.to_string().contains("plain http"), "{err}");
    }

    #[test]
    fn percentiles_are_nearest_rank_in_milliseconds() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&sorted, 0.50), 50.0);
        assert_eq!(percentile_ms(&sorted, 0.99), 99.0);
        assert_eq!(percentile_ms(&sorted, 1.0), 100.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }

    #[test]
    fn a_report_counts_replies_and_groups_errors_by_kind() {
        let tallies = vec![
            Tally {
                latencies_us: vec![2000, 1000],
                replies: 1,
                failures: vec![Failure::Timeout, Failure::Status(503)],
            },
            Tally {
                latencies_us: vec![3000],
                replies: 0,
                failures: vec![Failure::Timeout],
            },
        ];
        let report = Report::new(2, "plaintext", 2.0, tallies);
        assert_eq!((report.ok, report.replies, report.errors), (3, 1, 3));
        assert_eq!(report.error_kinds["timeout"], 2);
        assert_eq!(report.error_kinds["http 503"], 1);
        assert_eq!(report.throughput, 1.5);
        assert_eq!((report.p50_ms, report.max_ms), (2.0, 3.0));
    }
}
