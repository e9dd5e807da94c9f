//! The HTTP adapter of [`WeChatApi`]: WeChat's JSON over an async HTTP
//! client, with the access token shared by every instance.
//!
//! The token comes from `/cgi-bin/stable_token` (not the old `token`
//! endpoint, whose every call invalidates the last token). It is cached
//! in a [`TokenStore`] that all instances share, and in this process;
//! only one refresh runs at a time here, and a token is renewed five
//! minutes before it expires. When WeChat says a token is invalid (40001,
//! 42001, 40014) the call refreshes by force once, unless another task or
//! instance already replaced that token, and within a daily budget of
//! forced refreshes (WeChat allows 20).
//!
//! The AppSecret and the tokens never appear in an error or a `Debug`:
//! errors carry WeChat's errmsg, or the HTTP client's message without its
//! URL (the URL holds the token).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::Mutex as AsyncMutex;
use wca_core::outbound::{Tag, TagPage, TemplateMessage, UserInfo};
use wca_core::{
    ApiError, CachedToken, Clock, CustomMessage, Failure, Refusal, TokenStore, WeChatApi,
};

/// WeChat's API base URL.
pub const DEFAULT_BASE: &str = "https://api.weixin.qq.com";

/// A token is renewed this long before it expires.
const RENEW_AHEAD_SECS: i64 = 300;

/// The AppSecret: `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct AppSecret(String);

impl AppSecret {
    /// Wraps the secret; `None` when it is blank.
    pub fn new(secret: &str) -> Option<Self> {
        let secret = secret.trim();
        (!secret.is_empty()).then(|| Self(secret.to_owned()))
    }
}

impl fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppSecret(<redacted>)")
    }
}

/// How to reach WeChat.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The base URL (`WECHAT_API_BASE`; [`DEFAULT_BASE`] in production).
    pub base: String,
    /// The account's AppID.
    pub app_id: String,
    /// The account's AppSecret (`WECHAT_APP_SECRET`).
    pub secret: AppSecret,
    /// Each call gives up after this long.
    pub timeout: Duration,
    /// Forced token refreshes allowed a day, by this process.
    pub forced_refreshes_per_day: u32,
}

impl ApiConfig {
    /// A config with the usual timeout (5 s) and WeChat's forced-refresh
    /// budget (20 a day).
    pub fn new(base: &str, app_id: &str, secret: AppSecret) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            app_id: app_id.to_owned(),
            secret,
            timeout: Duration::from_secs(5),
            forced_refreshes_per_day: 20,
        }
    }
}

/// The counts of token work, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    /// `stable_token` calls made by this process.
    pub fetched: u64,
    /// Of those, forced.
    pub forced: u64,
}

/// [`WeChatApi`] over HTTP.
pub struct HttpWeChatApi {
    http: reqwest::Client,
    config: ApiConfig,
    tokens: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    cached: Mutex<Option<CachedToken>>,
    refreshing: AsyncMutex<()>,
    forced_today: Mutex<(i64, u32)>,
    counts: Mutex<TokenCounts>,
}

impl fmt::Debug for HttpWeChatApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpWeChatApi")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpWeChatApi {
    /// A client for `config`, sharing its token through `tokens`.
    pub fn new(
        config: ApiConfig,
        tokens: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_max_idle_per_host(64)
            // A redirect would carry the token in its URL to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        Ok(Self {
            http,
            config,
            tokens,
            clock,
            cached: Mutex::new(None),
            refreshing: AsyncMutex::new(()),
            forced_today: Mutex::new((0, 0)),
            counts: Mutex::new(TokenCounts::default()),
        })
    }

    /// The token work done so far.
    pub fn token_counts(&self) -> TokenCounts {
        *lock(&self.counts)
    }

    /// A token good for at least a few more minutes: from this process,
    /// else from the shared store, else from WeChat (one fetch at a time).
    pub async fn token(&self) -> Result<String, ApiError> {
        if let Some(t) = self.fresh_here() {
            return Ok(t);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        if let Some(t) = self.fresh_here() {
            return Ok(t);
        }
        let now = self.clock.now();
        if let Some(shared) = self.tokens.get(&self.config.app_id).await?
            && shared.expires_at - RENEW_AHEAD_SECS > now
        {
            let token = shared.token.clone();
            *lock(&self.cached) = Some(shared);
            return Ok(token);
        }
        self.fetch(false).await
    }

    /// WeChat refused `bad`: a new token, fetched by force unless someone
    /// already replaced `bad`.
    async fn replace(&self, bad: &str) -> Result<String, ApiError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let now = self.clock.now();
        if let Some(t) = lock(&self.cached)
            .as_ref()
            .filter(|t| t.token != bad && t.expires_at - RENEW_AHEAD_SECS > now)
        {
            return Ok(t.token.clone());
        }
        if let Some(shared) = self.tokens.get(&self.config.app_id).await?
            && shared.token != bad
            && shared.expires_at - RENEW_AHEAD_SECS > now
        {
            let token = shared.token.clone();
            *lock(&self.cached) = Some(shared);
            return Ok(token);
        }
        {
            let mut forced = lock(&self.forced_today);
            let day = now.div_euclid(86_400);
            if forced.0 != day {
                *forced = (day, 0);
            }
            if forced.1 >= self.config.forced_refreshes_per_day {
                return Err(ApiError::Refused(Refusal::ForcedRefreshesSpent));
            }
            forced.1 += 1;
        }
        self.fetch(true).await
    }

    async fn fetch(&self, force: bool) -> Result<String, ApiError> {
        {
            let mut counts = lock(&self.counts);
            counts.fetched += 1;
            counts.forced += u64::from(force);
        }
        let body = json!({
            "grant_type": "client_credential",
            "appid": self.config.app_id,
            "secret": self.config.secret.0,
            "force_refresh": force,
        });
        let url = format!("{}/cgi-bin/stable_token", self.config.base);
        let answer = self.send(self.http.post(url).json(&body), false).await?;
        let token = answer["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::BadResponse("stable_token without access_token".into()))?;
        let expires_in = answer["expires_in"].as_i64().unwrap_or(7200);
        let cached = CachedToken {
            token: token.to_owned(),
            expires_at: self.clock.now() + expires_in,
        };
        *lock(&self.cached) = Some(cached.clone());
        // The token is good even if it cannot be shared: keep using it.
        if let Err(e) = self.tokens.put(&self.config.app_id, &cached).await {
            tracing::warn!(error = %e, "could not share the new access token");
        }
        tracing::info!(force, expires_in, "fetched a WeChat access token");
        Ok(token.to_owned())
    }

    fn fresh_here(&self) -> Option<String> {
        let now = self.clock.now();
        lock(&self.cached)
            .as_ref()
            .filter(|t| t.expires_at - RENEW_AHEAD_SECS > now)
            .map(|t| t.token.clone())
    }

    /// Sends a request and reads WeChat's JSON: `errcode` 0 (or absent)
    /// is the answer, anything else an [`ApiError::WeChat`]. For a call
    /// that `delivers` a message, a failure after the request may have
    /// gone out (a timeout, a lost or unreadable answer) is
    /// [`ApiError::Unconfirmed`]: WeChat may have delivered it, so it must
    /// not be sent again. Only a connection that never opened is a plain
    /// network error then.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        delivers: bool,
    ) -> Result<Value, ApiError> {
        let lost = |e: reqwest::Error| {
            let connect = e.is_connect();
            let what = e.without_url().to_string();
            if delivers && !connect {
                ApiError::Unconfirmed(what)
            } else {
                ApiError::Network(what)
            }
        };
        let response = request.send().await.map_err(lost)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            let what = e.without_url().to_string();
            if delivers {
                ApiError::Unconfirmed(what)
            } else {
                ApiError::Network(what)
            }
        })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            let what = format!("HTTP {status}, {} bytes, not JSON", bytes.len());
            if delivers {
                ApiError::Unconfirmed(what)
            } else {
                ApiError::BadResponse(what)
            }
        })?;
        match value["errcode"].as_i64() {
            None | Some(0) => Ok(value),
            Some(code) => Err(ApiError::WeChat {
                code,
                message: value["errmsg"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect(),
            }),
        }
    }

    /// Calls `path` with a token, replacing the token once if WeChat says
    /// it is invalid.
    async fn call(&self, get: bool, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call_as(get, path, body, false).await
    }

    /// [`Self::call`] for a call that delivers a message (see
    /// [`Self::send`]).
    async fn deliver(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call_as(false, path, body, true).await
    }

    async fn call_as(
        &self,
        get: bool,
        path: &str,
        body: &Value,
        delivers: bool,
    ) -> Result<Value, ApiError> {
        let token = self.token().await?;
        match self.call_with(get, path, body, &token, delivers).await {
            Err(e) if e.failure() == Failure::RefreshToken => {
                tracing::warn!(
                    code = e.code(),
                    "WeChat refused the access token; replacing it"
                );
                let token = self.replace(&token).await?;
                match self.call_with(get, path, body, &token, delivers).await {
                    // Refused again (another instance replaced it in
                    // between): not permanent, try again later.
                    Err(again) if again.failure() == Failure::RefreshToken => {
                        Err(ApiError::Network(format!(
                            "WeChat refused a fresh access token too ({})",
                            again.code()
                        )))
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    async fn call_with(
        &self,
        get: bool,
        path: &str,
        body: &Value,
        token: &str,
        delivers: bool,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.config.base);
        let request = if get {
            let mut query: Vec<(&str, String)> = vec![("access_token", token.to_owned())];
            if let Some(map) = body.as_object() {
                for (k, v) in map {
                    query.push((k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)));
                }
            }
            self.http.get(url).query(&query)
        } else {
            self.http
                .post(url)
                .query(&[("access_token", token)])
                .body(body.to_string())
                .header("content-type", "application/json; charset=utf-8")
        };
        self.send(request, delivers).await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The JSON body of a customer-service message.
pub fn custom_body(openid: &str, msg: &CustomMessage) -> Value {
    match msg {
        CustomMessage::Text { content } => {
            json!({"touser": openid, "msgtype": "text", "text": {"content": content}})
        }
        CustomMessage::Image { media_id } => {
            json!({"touser": openid, "msgtype": "image", "image": {"media_id": media_id}})
        }
        CustomMessage::News { article } => json!({
            "touser": openid,
            "msgtype": "news",
            "news": {"articles": [{
                "title": article.title,
                "description": article.description,
                "url": article.url,
                "picurl": article.picurl,
            }]},
        }),
    }
}

/// A page of OpenIDs (`user/get`, `user/tag/get`). WeChat's
/// `next_openid` is the last of the page; an empty one, or an empty page,
/// ends.
fn page_of(answer: &Value) -> TagPage {
    let openids: Vec<String> = answer["data"]["openid"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let next_openid = answer["next_openid"]
        .as_str()
        .filter(|n| !n.is_empty() && !openids.is_empty())
        .map(str::to_owned);
    TagPage {
        openids,
        next_openid,
    }
}

fn user_info_of(v: &Value) -> Result<UserInfo, ApiError> {
    let openid = v["openid"]
        .as_str()
        .ok_or_else(|| ApiError::BadResponse("user info without openid".into()))?;
    Ok(UserInfo {
        openid: openid.to_owned(),
        subscribed: v["subscribe"].as_i64() == Some(1),
        subscribe_time: v["subscribe_time"].as_i64(),
        remark: v["remark"].as_str().unwrap_or_default().to_owned(),
        tag_ids: v["tagid_list"]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
        unionid: v["unionid"].as_str().map(str::to_owned),
    })
}

#[async_trait]
impl WeChatApi for HttpWeChatApi {
    async fn send_custom(&self, openid: &str, msg: &CustomMessage) -> Result<(), ApiError> {
        self.deliver("/cgi-bin/message/custom/send", &custom_body(openid, msg))
            .await
            .map(drop)
    }

    async fn send_template(&self, msg: &TemplateMessage) -> Result<u64, ApiError> {
        let data: serde_json::Map<String, Value> = msg
            .data
            .iter()
            .map(|(k, v)| (k.clone(), json!({"value": v})))
            .collect();
        let mut body = json!({"touser": msg.openid, "template_id": msg.template_id, "data": data});
        if let Some(url) = &msg.url {
            body["url"] = json!(url);
        }
        let answer = self
            .deliver("/cgi-bin/message/template/send", &body)
            .await?;
        // errcode 0 means it was accepted: a missing msgid must not make
        // it look like a failure that is safe to send again.
        Ok(answer["msgid"].as_u64().unwrap_or_else(|| {
            tracing::warn!("WeChat accepted a template message without a msgid");
            0
        }))
    }

    async fn tags(&self) -> Result<Vec<Tag>, ApiError> {
        let answer = self.call(true, "/cgi-bin/tags/get", &json!({})).await?;
        Ok(answer["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| {
                        Some(Tag {
                            id: t["id"].as_u64()?,
                            name: t["name"].as_str()?.to_owned(),
                            count: t["count"].as_u64().unwrap_or(0),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn tag_members(
        &self,
        tag_id: u64,
        next_openid: Option<&str>,
    ) -> Result<TagPage, ApiError> {
        let body = json!({"tagid": tag_id, "next_openid": next_openid.unwrap_or("")});
        let answer = self.call(false, "/cgi-bin/user/tag/get", &body).await?;
        Ok(page_of(&answer))
    }

    async fn followers(&self, next_openid: Option<&str>) -> Result<TagPage, ApiError> {
        let query = match next_openid {
            Some(next) => json!({"next_openid": next}),
            None => json!({}),
        };
        let answer = self.call(true, "/cgi-bin/user/get", &query).await?;
        Ok(page_of(&answer))
    }

    async fn mass_send_text(
        &self,
        tag_id: Option<u64>,
        content: &str,
        clientmsgid: &str,
    ) -> Result<u64, ApiError> {
        let filter = match tag_id {
            Some(id) => json!({"is_to_all": false, "tag_id": id}),
            None => json!({"is_to_all": true}),
        };
        let body = json!({
            "filter": filter,
            "text": {"content": content},
            "msgtype": "text",
            "clientmsgid": clientmsgid,
        });
        let answer = self.deliver("/cgi-bin/message/mass/sendall", &body).await?;
        answer["msg_id"]
            .as_u64()
            .ok_or_else(|| ApiError::BadResponse("mass send without msg_id".into()))
    }

    async fn user_info(&self, openid: &str) -> Result<UserInfo, ApiError> {
        let query = json!({"openid": openid, "lang": "zh_CN"});
        let answer = self.call(true, "/cgi-bin/user/info", &query).await?;
        user_info_of(&answer)
    }

    async fn user_info_batch(&self, openids: &[String]) -> Result<Vec<UserInfo>, ApiError> {
        let list: Vec<Value> = openids
            .iter()
            .map(|o| json!({"openid": o, "lang": "zh_CN"}))
            .collect();
        let answer = self
            .call(
                false,
                "/cgi-bin/user/info/batchget",
                &json!({"user_list": list}),
            )
            .await?;
        answer["user_info_list"]
            .as_array()
            .map(|l| l.iter().map(user_info_of).collect())
            .unwrap_or_else(|| Ok(Vec::new()))
    }

    async fn set_remark(&self, openid: &str, remark: &str) -> Result<(), ApiError> {
        let body = json!({"openid": openid, "remark": remark});
        self.call(false, "/cgi-bin/user/info/updateremark", &body)
            .await
            .map(drop)
    }

    async fn tag_users(&self, tag_id: u64, openids: &[String]) -> Result<(), ApiError> {
        let body = json!({"openid_list": openids, "tagid": tag_id});
        self.call(false, "/cgi-bin/tags/members/batchtagging", &body)
            .await
            .map(drop)
    }
}
