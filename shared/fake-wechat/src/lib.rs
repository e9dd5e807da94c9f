//! A stand-in for the WeChat Official Account API, for tests and the local
//! demo (the real one is reachable only from whitelisted IPs).
//!
//! It speaks WeChat's JSON and errcodes on the endpoints wca calls, with
//! the limits that matter to a sender:
//!
//! - `stable_token`: tokens that expire, a forced refresh that invalidates
//!   the previous token, 20 forced refreshes a day;
//! - customer-service messages only within 48 hours of the user's last
//!   message (45015), at most 5 per user message (45047), not to users who
//!   left (43004) or never existed (40003);
//! - template messages to followers, tags with paged members, all
//!   followers paged (`user/get`), user info, remarks;
//! - text mass sends (`message/mass/sendall`) to all followers or a tag's,
//!   refusing a `clientmsgid` seen within 24 hours (45065) and counting a
//!   monthly quota (45028 when spent).
//!
//! Under `/_fake/` it takes orders and answers questions: add followers
//! and tags, record a user's message, invalidate tokens, inject busy
//! errors or latency, move its clock, and list what was sent.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let (fake, addr) = wca_fake_wechat::FakeWeChat::start(Default::default()).await?;
//! fake.add_follower("oUser1", &[]);
//! fake.interact("oUser1");
//! // point WECHAT_API_BASE at http://{addr} and send; then:
//! let sent = fake.sent();
//! # let _ = (addr, sent); Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};

/// How the stand-in is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// The AppID it accepts.
    pub app_id: String,
    /// The AppSecret it accepts.
    pub secret: String,
    /// How long a token lives (WeChat: 7,200 s).
    pub token_ttl_secs: i64,
    /// Followers per page of a tag (WeChat: 10,000).
    pub page_size: usize,
    /// Forced token refreshes a day (WeChat: 20).
    pub forced_refreshes_per_day: u32,
    /// Mass sends per calendar month (UTC) of the stand-in's clock
    /// (WeChat: 4 for a service account).
    pub mass_sends_per_month: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            app_id: "wxfake0000000000001".to_owned(),
            secret: "fake-app-secret-0123456789abcdef".to_owned(),
            token_ttl_secs: 7200,
            page_size: 10_000,
            forced_refreshes_per_day: 20,
            mass_sends_per_month: 4,
        }
    }
}

/// A message the stand-in accepted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sent {
    /// The recipient.
    pub openid: String,
    /// `custom`, `template` or `mass` (one per recipient of a mass send).
    pub api: String,
    /// `text`, `image`, `news`, `link`, or `template`.
    pub msgtype: String,
    /// The text of a text message (empty otherwise).
    pub content: String,
    /// The whole request body.
    pub body: Value,
    /// When, on the stand-in's clock.
    pub at: i64,
}

/// What the stand-in has been asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Calls of `stable_token`, forced or not.
    pub stable_token_calls: u64,
    /// Of those, forced refreshes.
    pub forced_refreshes: u64,
    /// Calls of every other endpoint.
    pub api_calls: u64,
    /// Calls answered with an injected error.
    pub injected_errors: u64,
    /// Calls refused for a bad, expired or missing token.
    pub token_errors: u64,
}

/// An error to answer with, for a while or for a number of calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// The errcode (-1 system busy, 45009 over the limit, ...).
    pub errcode: i64,
    /// Only calls whose path contains this (all when empty).
    pub path: String,
    /// Until this instant of the stand-in's clock, in milliseconds...
    pub until_ms: Option<i64>,
    /// ...or for this many calls.
    pub calls: Option<u32>,
}

#[derive(Debug, Default)]
struct Follower {
    subscribed: bool,
    subscribe_time: i64,
    tags: BTreeSet<u64>,
    remark: String,
    last_interaction: Option<i64>,
    sent_since: u32,
}

#[derive(Debug)]
struct State {
    opts: Options,
    clock_offset_ms: i64,
    tokens: HashMap<String, i64>,
    current: Option<String>,
    serial: u64,
    forced: (i64, u32),
    followers: BTreeMap<String, Follower>,
    tags: BTreeMap<u64, String>,
    sent: Vec<Sent>,
    stats: Stats,
    faults: Vec<Fault>,
    latency: Duration,
    /// Messages still to be delivered without an answer.
    answers_to_lose: u32,
    /// The `clientmsgid` of each mass send, and when it went.
    mass_ids: HashMap<String, i64>,
    /// The month ([`month_of`]) and how many mass sends went in it.
    mass_month: (i64, u32),
}

type Answer = Result<Value, (i64, String)>;

fn fail(code: i64, msg: &str) -> Answer {
    Err((code, msg.to_owned()))
}

impl State {
    fn now_ms(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        wall + self.clock_offset_ms
    }

    fn now(&self) -> i64 {
        self.now_ms() / 1000
    }

    fn injected(&mut self, path: &str) -> Option<i64> {
        let now = self.now_ms();
        self.faults
            .retain(|f| f.until_ms.is_none_or(|u| u > now) && f.calls != Some(0));
        let fault = self
            .faults
            .iter_mut()
            .find(|f| f.path.is_empty() || path.contains(&f.path))?;
        if let Some(calls) = &mut fault.calls {
            *calls -= 1;
        }
        self.stats.injected_errors += 1;
        Some(fault.errcode)
    }

    fn new_token(&mut self) -> String {
        self.serial += 1;
        let token = format!("FAKE_ACCESS_TOKEN_{:06}_{}", self.serial, self.now_ms());
        self.tokens
            .insert(token.clone(), self.now() + self.opts.token_ttl_secs);
        self.current = Some(token.clone());
        token
    }

    fn stable_token(&mut self, body: &Value) -> Answer {
        self.stats.stable_token_calls += 1;
        if body["grant_type"] != "client_credential" {
            return fail(40002, "invalid grant_type");
        }
        if body["appid"] != self.opts.app_id.as_str() {
            return fail(40013, "invalid appid");
        }
        if body["secret"] != self.opts.secret.as_str() {
            return fail(40125, "invalid appsecret");
        }
        let now = self.now();
        let force = body["force_refresh"].as_bool().unwrap_or(false);
        let token = if force {
            let day = now.div_euclid(86_400);
            if self.forced.0 != day {
                self.forced = (day, 0);
            }
            if self.forced.1 >= self.opts.forced_refreshes_per_day {
                return fail(45009, "reach max api daily quota limit");
            }
            self.forced.1 += 1;
            self.stats.forced_refreshes += 1;
            if let Some(old) = self.current.take() {
                self.tokens.remove(&old);
            }
            self.new_token()
        } else {
            // WeChat hands out the same token until its last 5 minutes.
            match self.current.clone() {
                Some(t) if self.tokens.get(&t).is_some_and(|e| e - now > 300) => t,
                _ => self.new_token(),
            }
        };
        let expires_in = self.tokens.get(&token).copied().unwrap_or(now) - now;
        Ok(json!({"access_token": token, "expires_in": expires_in}))
    }

    fn check_token(&mut self, query: &BTreeMap<String, String>) -> Result<(), (i64, String)> {
        let Some(token) = query.get("access_token").filter(|t| !t.is_empty()) else {
            self.stats.token_errors += 1;
            return Err((41001, "access_token missing".to_owned()));
        };
        match self.tokens.get(token) {
            None => {
                self.stats.token_errors += 1;
                Err((
                    40001,
                    "invalid credential, access_token is invalid or not latest".to_owned(),
                ))
            }
            Some(&expires) if expires <= self.now() => {
                self.stats.token_errors += 1;
                Err((42001, "access_token expired".to_owned()))
            }
            Some(_) => Ok(()),
        }
    }

    fn follower(&mut self, openid: &str) -> Result<&mut Follower, (i64, String)> {
        self.followers
            .get_mut(openid)
            .ok_or_else(|| (40003, "invalid openid".to_owned()))
    }

    fn custom_send(&mut self, body: &Value) -> Answer {
        let openid = body["touser"].as_str().unwrap_or_default().to_owned();
        let msgtype = body["msgtype"].as_str().unwrap_or_default().to_owned();
        let content = match msgtype.as_str() {
            "text" => body["text"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            "image" | "news" | "link" | "voice" | "video" | "miniprogrampage" => String::new(),
            _ => return fail(40008, "invalid message type"),
        };
        if msgtype == "text" && content.is_empty() {
            return fail(44003, "empty news data");
        }
        if content.len() > 2048 {
            return fail(45002, "content size out of limit");
        }
        let now = self.now();
        let f = self.follower(&openid)?;
        if !f.subscribed {
            return fail(43004, "require subscribe");
        }
        match f.last_interaction {
            Some(at) if now - at < 48 * 3600 => {}
            _ => {
                return fail(
                    45015,
                    "response out of time limit or subscription is canceled",
                );
            }
        }
        if f.sent_since >= 5 {
            return fail(45047, "out of response count limit");
        }
        f.sent_since += 1;
        self.sent.push(Sent {
            openid,
            api: "custom".to_owned(),
            msgtype,
            content,
            body: body.clone(),
            at: now,
        });
        Ok(json!({}))
    }

    fn template_send(&mut self, body: &Value) -> Answer {
        let openid = body["touser"].as_str().unwrap_or_default().to_owned();
        if body["template_id"].as_str().is_none_or(str::is_empty) {
            return fail(40037, "invalid template_id");
        }
        let now = self.now();
        let f = self.follower(&openid)?;
        if !f.subscribed {
            return fail(43004, "require subscribe");
        }
        self.serial += 1;
        let msgid = self.serial;
        self.sent.push(Sent {
            openid,
            api: "template".to_owned(),
            msgtype: "template".to_owned(),
            content: String::new(),
            body: body.clone(),
            at: now,
        });
        Ok(json!({"msgid": msgid}))
    }

    fn followers(&self, query: &BTreeMap<String, String>) -> Answer {
        let after = query.get("next_openid").map_or("", String::as_str);
        let subscribed = || {
            self.followers
                .iter()
                .filter(|(_, f)| f.subscribed)
                .map(|(id, _)| id)
        };
        let total = subscribed().count();
        let mut rest = subscribed().filter(|id| id.as_str() > after);
        let page: Vec<&String> = rest.by_ref().take(self.opts.page_size).collect();
        if page.is_empty() {
            return Ok(json!({"total": total, "count": 0, "next_openid": ""}));
        }
        // The last of the page when more follow, empty at the end.
        let next = match rest.next() {
            Some(_) => page.last().map_or(String::new(), |s| (*s).clone()),
            None => String::new(),
        };
        Ok(json!({
            "total": total,
            "count": page.len(),
            "data": {"openid": page},
            "next_openid": next,
        }))
    }

    fn mass_send(&mut self, body: &Value) -> Answer {
        if body["msgtype"] != "text" {
            // The stand-in mass-sends text only.
            return fail(40008, "invalid message type");
        }
        let content = body["text"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if content.is_empty() {
            return fail(44004, "empty content");
        }
        let to_all = body["filter"]["is_to_all"].as_bool().unwrap_or(false);
        let tag = if to_all {
            None
        } else {
            match body["filter"]["tag_id"]
                .as_u64()
                .filter(|t| self.tags.contains_key(t))
            {
                Some(tag) => Some(tag),
                // 40050 is WeChat's documented "invalid group id" (tags
                // replaced groups in the mass-send filter); what sendall
                // answers for an unknown tag_id is not documented.
                None => return fail(40050, "invalid group id"),
            }
        };
        let now = self.now();
        let clientmsgid = body["clientmsgid"].as_str().unwrap_or_default().to_owned();
        self.mass_ids.retain(|_, at| now - *at < 86_400);
        if !clientmsgid.is_empty() && self.mass_ids.contains_key(&clientmsgid) {
            return fail(45065, "clientmsgid exist");
        }
        let month = month_of(now);
        if self.mass_month.0 != month {
            self.mass_month = (month, 0);
        }
        if self.mass_month.1 >= self.opts.mass_sends_per_month {
            return fail(45028, "has no masssend quota");
        }
        self.mass_month.1 += 1;
        if !clientmsgid.is_empty() {
            self.mass_ids.insert(clientmsgid, now);
        }
        let recipients: Vec<String> = self
            .followers
            .iter()
            .filter(|(_, f)| f.subscribed && tag.is_none_or(|t| f.tags.contains(&t)))
            .map(|(id, _)| id.clone())
            .collect();
        for openid in recipients {
            self.sent.push(Sent {
                openid,
                api: "mass".to_owned(),
                msgtype: "text".to_owned(),
                content: content.clone(),
                body: body.clone(),
                at: now,
            });
        }
        self.serial += 1;
        let msg_id = self.serial;
        Ok(json!({
            "errmsg": "send job submission success",
            "msg_id": msg_id,
            "msg_data_id": msg_id,
        }))
    }

    fn tags(&self) -> Answer {
        let tags: Vec<Value> = self
            .tags
            .iter()
            .map(|(id, name)| {
                let count = self
                    .followers
                    .values()
                    .filter(|f| f.subscribed && f.tags.contains(id))
                    .count();
                json!({"id": id, "name": name, "count": count})
            })
            .collect();
        Ok(json!({"tags": tags}))
    }

    fn tag_members(&self, body: &Value) -> Answer {
        let Some(tag) = body["tagid"].as_u64().filter(|t| self.tags.contains_key(t)) else {
            return fail(45159, "invalid tag id");
        };
        let after = body["next_openid"].as_str().unwrap_or_default();
        let page: Vec<&String> = self
            .followers
            .iter()
            .filter(|(id, f)| f.subscribed && f.tags.contains(&tag) && id.as_str() > after)
            .map(|(id, _)| id)
            .take(self.opts.page_size)
            .collect();
        let next = page.last().map_or(String::new(), |s| (*s).clone());
        if page.is_empty() {
            return Ok(json!({"count": 0, "next_openid": ""}));
        }
        Ok(json!({"count": page.len(), "data": {"openid": page}, "next_openid": next}))
    }

    fn user_info(&self, openid: &str) -> Answer {
        let Some(f) = self.followers.get(openid) else {
            return fail(40003, "invalid openid");
        };
        if !f.subscribed {
            return Ok(json!({"subscribe": 0, "openid": openid}));
        }
        Ok(json!({
            "subscribe": 1,
            "openid": openid,
            "language": "zh_CN",
            "subscribe_time": f.subscribe_time,
            "remark": f.remark,
            "groupid": 0,
            "tagid_list": f.tags,
            "subscribe_scene": "ADD_SCENE_QR_CODE",
        }))
    }

    fn user_info_batch(&self, body: &Value) -> Answer {
        let list = body["user_list"].as_array().cloned().unwrap_or_default();
        if list.is_empty() || list.len() > 100 {
            return fail(40032, "invalid openid list size");
        }
        let mut infos = Vec::new();
        for entry in &list {
            infos.push(self.user_info(entry["openid"].as_str().unwrap_or_default())?);
        }
        Ok(json!({"user_info_list": infos}))
    }

    fn update_remark(&mut self, body: &Value) -> Answer {
        let openid = body["openid"].as_str().unwrap_or_default().to_owned();
        let remark = body["remark"].as_str().unwrap_or_default().to_owned();
        if remark.chars().count() > 30 {
            return fail(45061, "remark too long");
        }
        self.follower(&openid)?.remark = remark;
        Ok(json!({}))
    }

    fn batch_tagging(&mut self, body: &Value) -> Answer {
        let Some(tag) = body["tagid"].as_u64().filter(|t| self.tags.contains_key(t)) else {
            return fail(45159, "invalid tag id");
        };
        let list: Vec<String> = body["openid_list"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if list.is_empty() || list.len() > 50 {
            return fail(40032, "invalid openid list size");
        }
        if list.iter().any(|o| !self.followers.contains_key(o)) {
            return fail(40003, "invalid openid");
        }
        for openid in list {
            if let Some(f) = self.followers.get_mut(&openid) {
                f.tags.insert(tag);
            }
        }
        Ok(json!({}))
    }
}

/// The stand-in: share it between the server task and the test.
#[derive(Debug, Clone)]
pub struct FakeWeChat {
    state: Arc<Mutex<State>>,
}

impl FakeWeChat {
    /// A stand-in with no followers and no tags.
    pub fn new(opts: Options) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                opts,
                clock_offset_ms: 0,
                tokens: HashMap::new(),
                current: None,
                serial: 0,
                forced: (0, 0),
                followers: BTreeMap::new(),
                tags: BTreeMap::new(),
                sent: Vec::new(),
                stats: Stats::default(),
                faults: Vec::new(),
                latency: Duration::ZERO,
                answers_to_lose: 0,
                mass_ids: HashMap::new(),
                mass_month: (i64::MIN, 0),
            })),
        }
    }

    /// Binds 127.0.0.1 on a free port and serves in a background task.
    pub async fn start(opts: Options) -> std::io::Result<(Self, SocketAddr)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let fake = Self::new(opts);
        let router = fake.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok((fake, addr))
    }

    /// The HTTP routes: WeChat's under `/cgi-bin/`, the stand-in's own
    /// under `/_fake/`.
    pub fn router(&self) -> Router {
        let fake = self.clone();
        Router::new().fallback(move |req: Request| {
            let fake = fake.clone();
            async move { fake.dispatch(req).await }
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a follower (or updates one) carrying `tags`, following since
    /// now, who has not written yet.
    pub fn add_follower(&self, openid: &str, tags: &[u64]) {
        let mut s = self.lock();
        let now = s.now();
        let f = s.followers.entry(openid.to_owned()).or_default();
        f.subscribed = true;
        f.subscribe_time = now;
        f.tags.extend(tags);
    }

    /// The follower leaves (or comes back).
    pub fn set_subscribed(&self, openid: &str, subscribed: bool) {
        if let Some(f) = self.lock().followers.get_mut(openid) {
            f.subscribed = subscribed;
        }
    }

    /// Creates a tag; returns its id.
    pub fn add_tag(&self, name: &str) -> u64 {
        let mut s = self.lock();
        let id = s.tags.keys().next_back().map_or(100, |last| last + 1);
        s.tags.insert(id, name.to_owned());
        id
    }

    /// The user wrote to the account now: a new 48-hour window with a full
    /// budget (a follower is added if unknown).
    pub fn interact(&self, openid: &str) {
        let mut s = self.lock();
        let now = s.now();
        let f = s
            .followers
            .entry(openid.to_owned())
            .or_insert_with(|| Follower {
                subscribed: true,
                subscribe_time: now,
                ..Follower::default()
            });
        f.last_interaction = Some(now);
        f.sent_since = 0;
    }

    /// Every token stops working at once (what a leaked or reset secret
    /// does); the next call with one gets 40001.
    pub fn invalidate_tokens(&self) {
        let mut s = self.lock();
        s.tokens.clear();
        s.current = None;
    }

    /// Answers calls with `fault` until it runs out.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Answers every call to a path containing `path` (all when empty)
    /// with `errcode` for `duration`.
    pub fn fail_for(&self, errcode: i64, path: &str, duration: Duration) {
        let mut s = self.lock();
        let until = s.now_ms() + i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        s.faults.push(Fault {
            errcode,
            path: path.to_owned(),
            until_ms: Some(until),
            calls: None,
        });
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Delivers the next `n` messages but never answers those calls, as
    /// when WeChat's answer is lost on the way: the caller cannot know
    /// whether the message went.
    pub fn lose_answers(&self, n: u32) {
        self.lock().answers_to_lose = n;
    }

    /// Every answer waits this long first.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Moves the stand-in's clock forward.
    pub fn advance(&self, by: Duration) {
        self.lock().clock_offset_ms += i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
    }

    /// What was sent, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    /// What was asked.
    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    async fn dispatch(&self, req: Request) -> Response {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query: BTreeMap<String, String> = req
            .uri()
            .query()
            .map(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let body = match to_bytes(req.into_body(), 1 << 20).await {
            Ok(b) => b,
            Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
        };
        let json: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(_) => return wechat(fail(47001, "data format error")),
            }
        };
        if let Some(rest) = path.strip_prefix("/_fake/") {
            return self.control(&method, rest, &json);
        }
        let latency = self.lock().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let (answer, lose) = match self.answer(&method, &path, &query, &json) {
            Ok(answered) => answered,
            Err(response) => return *response,
        };
        if lose {
            // Delivered, but the answer never comes: the caller times out.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        wechat(answer)
    }

    /// WeChat's answer to a call, and whether to lose it (see
    /// [`FakeWeChat::lose_answers`]); `Err`: an answer made already.
    fn answer(
        &self,
        method: &Method,
        path: &str,
        query: &BTreeMap<String, String>,
        json: &Value,
    ) -> Result<(Answer, bool), Box<Response>> {
        let mut s = self.lock();
        let delivers = path.starts_with("/cgi-bin/message/");
        let answer = if path == "/cgi-bin/stable_token" && method == Method::POST {
            match s.injected(path) {
                Some(code) => fail(code, "system error"),
                None => s.stable_token(json),
            }
        } else {
            s.stats.api_calls += 1;
            if let Err(e) = s.check_token(query) {
                return Err(Box::new(wechat(Err(e))));
            }
            if let Some(code) = s.injected(path) {
                return Err(Box::new(wechat(fail(code, "system error"))));
            }
            match (method.as_str(), path) {
                ("POST", "/cgi-bin/message/custom/send") => s.custom_send(json),
                ("POST", "/cgi-bin/message/template/send") => s.template_send(json),
                ("POST", "/cgi-bin/message/mass/sendall") => s.mass_send(json),
                ("GET", "/cgi-bin/user/get") => s.followers(query),
                ("GET", "/cgi-bin/tags/get") => s.tags(),
                ("POST", "/cgi-bin/user/tag/get") => s.tag_members(json),
                ("GET", "/cgi-bin/user/info") => {
                    s.user_info(query.get("openid").map_or("", String::as_str))
                }
                ("POST", "/cgi-bin/user/info/batchget") => s.user_info_batch(json),
                ("POST", "/cgi-bin/user/info/updateremark") => s.update_remark(json),
                ("POST", "/cgi-bin/tags/members/batchtagging") => s.batch_tagging(json),
                _ => {
                    return Err(Box::new(plain(
                        StatusCode::NOT_FOUND,
                        "no such WeChat API in the stand-in",
                    )));
                }
            }
        };
        let lose = delivers && answer.is_ok() && s.answers_to_lose > 0;
        if lose {
            s.answers_to_lose -= 1;
        }
        Ok((answer, lose))
    }

    fn control(&self, method: &Method, what: &str, body: &Value) -> Response {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let done = |v: Value| {
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string()))
                .unwrap_or_default()
        };
        match (method.as_str(), what) {
            ("POST", "followers") => {
                let tags: Vec<u64> = body["tags"]
                    .as_array()
                    .map(|t| t.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                self.add_follower(&text(&body["openid"]), &tags);
                if body["subscribed"] == false {
                    self.set_subscribed(&text(&body["openid"]), false);
                }
                done(json!({"ok": true}))
            }
            ("POST", "tags") => done(json!({"id": self.add_tag(&text(&body["name"]))})),
            ("POST", "interact") => {
                self.interact(&text(&body["openid"]));
                done(json!({"ok": true}))
            }
            ("POST", "invalidate") => {
                self.invalidate_tokens();
                done(json!({"ok": true}))
            }
            ("POST", "faults") => {
                let mut s = self.lock();
                let until_ms = body["seconds"].as_f64().map(|secs| {
                    #[allow(clippy::cast_possible_truncation)]
                    let ms = (secs * 1000.0) as i64;
                    s.now_ms() + ms
                });
                let calls = body["calls"]
                    .as_u64()
                    .map(|c| u32::try_from(c).unwrap_or(u32::MAX));
                if let Some(ms) = body["latency_ms"].as_u64() {
                    s.latency = Duration::from_millis(ms);
                }
                if let Some(errcode) = body["errcode"].as_i64() {
                    s.faults.push(Fault {
                        errcode,
                        path: text(&body["path"]),
                        until_ms,
                        calls,
                    });
                }
                done(json!({"ok": true}))
            }
            ("DELETE", "faults") => {
                let mut s = self.lock();
                s.faults.clear();
                s.latency = Duration::ZERO;
                done(json!({"ok": true}))
            }
            ("POST", "advance") => {
                let secs = body["seconds"].as_u64().unwrap_or(0);
                self.advance(Duration::from_secs(secs));
                done(json!({"ok": true}))
            }
            ("GET", "sent") => done(json!(self.sent())),
            ("GET", "stats") => done(json!(self.stats())),
            _ => plain(StatusCode::NOT_FOUND, "unknown stand-in control"),
        }
    }
}

fn wechat(answer: Answer) -> Response {
    let body = match answer {
        Ok(mut v) => {
            if let Some(map) = v.as_object_mut() {
                map.entry("errcode").or_insert(json!(0));
                map.entry("errmsg").or_insert(json!("ok"));
            }
            v
        }
        Err((code, msg)) => json!({"errcode": code, "errmsg": msg}),
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

/// The calendar month (UTC) of Unix time `secs`, as `year * 12 + month - 1`
/// (Howard Hinnant's `civil_from_days`).
fn month_of(secs: i64) -> i64 {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    year * 12 + month - 1
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    Response::builder()
        .status(status)
        .body(Body::from(text))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-10T12:00:00Z.
    const MARCH_10: i64 = 1_773_144_000;

    /// A stand-in whose clock reads `at` (Unix seconds).
    fn fake_at(opts: Options, at: i64) -> FakeWeChat {
        let fake = FakeWeChat::new(opts);
        {
            let mut s = fake.lock();
            let wall = s.now_ms() - s.clock_offset_ms;
            s.clock_offset_ms = at * 1000 - wall;
        }
        fake
    }

    /// WeChat's answer to a call with a fresh token, and whether it is to
    /// be lost.
    fn call(
        fake: &FakeWeChat,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: &Value,
    ) -> (Answer, bool) {
        let mut q: BTreeMap<String, String> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let token = fake.lock().new_token();
        q.insert("access_token".to_owned(), token);
        match fake.answer(&method, path, &q, body) {
            Ok(answered) => answered,
            Err(_) => (fail(-999, "answered before the API"), false),
        }
    }

    fn followers_page(fake: &FakeWeChat, next: &str) -> Value {
        let query: &[(&str, &str)] = if next.is_empty() {
            &[]
        } else {
            &[("next_openid", next)]
        };
        call(fake, Method::GET, "/cgi-bin/user/get", query, &Value::Null)
            .0
            .expect("a page")
    }

    fn mass(fake: &FakeWeChat, body: &Value) -> Answer {
        call(
            fake,
            Method::POST,
            "/cgi-bin/message/mass/sendall",
            &[],
            body,
        )
        .0
    }

    fn text_to(filter: Value, content: &str, clientmsgid: &str) -> Value {
        json!({
            "filter": filter,
            "text": {"content": content},
            "msgtype": "text",
            "clientmsgid": clientmsgid,
        })
    }

    fn to_all(clientmsgid: &str) -> Value {
        text_to(json!({"is_to_all": true}), "春节放假通知", clientmsgid)
    }

    fn code(answer: &Answer) -> i64 {
        answer.as_ref().err().map_or(0, |(code, _)| *code)
    }

    #[test]
    fn followers_come_in_pages_in_openid_order_without_those_who_left() {
        let fake = fake_at(
            Options {
                page_size: 2,
                ..Options::default()
            },
            MARCH_10,
        );
        for id in ["oE", "oC", "oA", "oD", "oB"] {
            fake.add_follower(id, &[]);
        }
        fake.set_subscribed("oC", false);
        let first = followers_page(&fake, "");
        assert_eq!(first["data"]["openid"], json!(["oA", "oB"]));
        assert_eq!(first["next_openid"], "oB", "more follow");
        assert_eq!(first["total"], 4);
        let second = followers_page(&fake, "oB");
        assert_eq!(second["data"]["openid"], json!(["oD", "oE"]));
        assert_eq!(second["next_openid"], "", "none follow: the end");
        let past = followers_page(&fake, "oE");
        assert_eq!(past["count"], 0);
        assert_eq!(past["next_openid"], "");
    }

    #[test]
    fn a_mass_send_by_tag_reaches_each_subscribed_follower_carrying_it_once() {
        let fake = fake_at(Options::default(), MARCH_10);
        let vip = fake.add_tag("VIP");
        fake.add_follower("oA", &[vip]);
        fake.add_follower("oB", &[vip]);
        fake.add_follower("oC", &[]);
        fake.add_follower("oD", &[vip]);
        fake.set_subscribed("oB", false);
        let answer = mass(
            &fake,
            &text_to(json!({"is_to_all": false, "tag_id": vip}), "会员日", "c1"),
        )
        .expect("sent");
        assert!(answer["msg_id"].as_u64().is_some_and(|id| id > 0));
        assert_eq!(answer["errmsg"], "send job submission success");
        let sent = fake.sent();
        let who: Vec<_> = sent.iter().map(|s| s.openid.as_str()).collect();
        assert_eq!(who, ["oA", "oD"]);
        assert!(
            sent.iter()
                .all(|s| s.api == "mass" && s.msgtype == "text" && s.content == "会员日")
        );
    }

    #[test]
    fn a_mass_send_to_all_reaches_every_subscribed_follower_without_a_window() {
        let fake = fake_at(Options::default(), MARCH_10);
        let vip = fake.add_tag("VIP");
        fake.add_follower("oA", &[vip]);
        fake.add_follower("oB", &[]);
        fake.add_follower("oGone", &[]);
        fake.set_subscribed("oGone", false);
        mass(&fake, &to_all("c1")).expect("sent");
        let who: Vec<_> = fake.sent().into_iter().map(|s| s.openid).collect();
        assert_eq!(who, ["oA", "oB"], "no one had written; no window needed");
    }

    #[test]
    fn a_mass_send_with_a_clientmsgid_seen_today_is_refused_and_sends_nothing() {
        let fake = fake_at(Options::default(), MARCH_10);
        fake.add_follower("oA", &[]);
        mass(&fake, &to_all("campaign:1")).expect("first");
        fake.advance(Duration::from_secs(86_399));
        let again = mass(&fake, &to_all("campaign:1"));
        assert_eq!(code(&again), 45065);
        assert_eq!(fake.sent().len(), 1, "nothing more sent");
        fake.advance(Duration::from_secs(1));
        mass(&fake, &to_all("campaign:1")).expect("24 hours later");
        assert_eq!(fake.sent().len(), 2);
    }

    #[test]
    fn mass_sends_past_the_monthly_quota_get_45028_until_the_next_month() {
        let fake = fake_at(Options::default(), MARCH_10);
        fake.add_follower("oA", &[]);
        for i in 0..4 {
            mass(&fake, &to_all(&format!("c{i}"))).expect("within the quota");
        }
        let over = mass(&fake, &to_all("c4"));
        assert_eq!(code(&over), 45028);
        assert_eq!(fake.sent().len(), 4, "the fifth sent nothing");
        // 31 days after any day is in the next month.
        fake.advance(Duration::from_secs(31 * 86_400));
        mass(&fake, &to_all("c4")).expect("a new month, a new quota");
    }

    #[test]
    fn refused_mass_sends_send_nothing_and_spend_no_quota() {
        let fake = fake_at(
            Options {
                mass_sends_per_month: 1,
                ..Options::default()
            },
            MARCH_10,
        );
        let vip = fake.add_tag("VIP");
        fake.add_follower("oA", &[vip]);
        let mut news = to_all("n1");
        news["msgtype"] = json!("mpnews");
        assert_eq!(code(&mass(&fake, &news)), 40008);
        let unknown = text_to(json!({"is_to_all": false, "tag_id": vip + 1}), "x", "n2");
        assert_eq!(code(&mass(&fake, &unknown)), 40050);
        let no_tag = text_to(json!({"is_to_all": false}), "x", "n3");
        assert_eq!(code(&mass(&fake, &no_tag)), 40050);
        let empty = text_to(json!({"is_to_all": true}), "", "n4");
        assert_eq!(code(&mass(&fake, &empty)), 44004);
        assert!(fake.sent().is_empty());
        mass(&fake, &to_all("n1")).expect("the quota and the id are unspent");
    }

    #[test]
    fn a_mass_send_is_a_delivery_whose_answer_can_be_lost() {
        let fake = fake_at(Options::default(), MARCH_10);
        fake.add_follower("oA", &[]);
        fake.lose_answers(1);
        let (answer, lost) = call(
            &fake,
            Method::POST,
            "/cgi-bin/message/mass/sendall",
            &[],
            &to_all("c1"),
        );
        assert!(answer.is_ok() && lost, "delivered, answer lost");
        assert_eq!(fake.sent().len(), 1);
    }

    #[test]
    fn calendar_months_turn_at_midnight_utc_on_the_first() {
        // 2026-02-28T23:59:59Z and 2026-03-01T00:00:00Z.
        assert_eq!(month_of(1_772_323_199), 2026 * 12 + 1);
        assert_eq!(month_of(1_772_323_200), 2026 * 12 + 2);
        // 2024-02-29T12:00:00Z, a leap day.
        assert_eq!(month_of(1_709_208_000), 2024 * 12 + 1);
        assert_eq!(month_of(0), 1970 * 12);
        assert_eq!(month_of(-1), 1969 * 12 + 11);
    }
}
