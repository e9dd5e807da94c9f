//! The crash-test hook of the campaign workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::CustomMessage;
use crate::outbound::{ApiError, Tag, TagPage, TemplateMessage, UserInfo, WeChatApi};

/// A test hook (`WCA_TEST_ABORT_AFTER_SENDS=N` in `wca serve` and the
/// `deliver` worker): the process aborts right after WeChat accepted its
/// N-th message and before wca recorded it, the worst moment to die, so
/// that a test can show a restart sends nobody the message twice.
pub struct AbortAfterSends {
    inner: Arc<dyn WeChatApi>,
    left: AtomicU64,
}

impl AbortAfterSends {
    /// Wraps `inner` so the process aborts after `after` accepted sends;
    /// `inner` itself when `after` is 0.
    pub fn wrap(inner: Arc<dyn WeChatApi>, after: u64) -> Arc<dyn WeChatApi> {
        if after == 0 {
            return inner;
        }
        tracing::warn!(
            after,
            "test hook: this process aborts after {after} accepted sends"
        );
        Arc::new(Self {
            inner,
            left: AtomicU64::new(after),
        })
    }

    fn accepted(&self) {
        if self.left.fetch_sub(1, Ordering::SeqCst) == 1 {
            std::process::abort();
        }
    }
}

#[async_trait]
impl WeChatApi for AbortAfterSends {
    async fn send_custom(&self, openid: &str, msg: &CustomMessage) -> Result<(), ApiError> {
        let r = self.inner.send_custom(openid, msg).await;
        if r.is_ok() {
            self.accepted();
        }
        r
    }
    async fn send_template(&self, msg: &TemplateMessage) -> Result<u64, ApiError> {
        let r = self.inner.send_template(msg).await;
        if r.is_ok() {
            self.accepted();
        }
        r
    }
    async fn tags(&self) -> Result<Vec<Tag>, ApiError> {
        self.inner.tags().await
    }
    async fn tag_members(
        &self,
        tag_id: u64,
        next_openid: Option<&str>,
    ) -> Result<TagPage, ApiError> {
        self.inner.tag_members(tag_id, next_openid).await
    }
    async fn followers(&self, next_openid: Option<&str>) -> Result<TagPage, ApiError> {
        self.inner.followers(next_openid).await
    }
    async fn mass_send_text(
        &self,
        tag_id: Option<u64>,
        content: &str,
        clientmsgid: &str,
    ) -> Result<u64, ApiError> {
        self.inner
            .mass_send_text(tag_id, content, clientmsgid)
            .await
    }
    async fn user_info(&self, openid: &str) -> Result<UserInfo, ApiError> {
        self.inner.user_info(openid).await
    }
    async fn user_info_batch(&self, openids: &[String]) -> Result<Vec<UserInfo>, ApiError> {
        self.inner.user_info_batch(openids).await
    }
    async fn set_remark(&self, openid: &str, remark: &str) -> Result<(), ApiError> {
        self.inner.set_remark(openid, remark).await
    }
    async fn tag_users(&self, tag_id: u64, openids: &[String]) -> Result<(), ApiError> {
        self.inner.tag_users(tag_id, openids).await
    }
}
