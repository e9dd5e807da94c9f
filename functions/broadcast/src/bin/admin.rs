//! The admin API as a Lambda function behind the webhook's HTTP API
//! (`/admin/{proxy+}`): create, list, approve, pause, resume, run and
//! report campaigns in the stack's table, with the named tokens of
//! `WCA_ADMIN_TOKENS` (`alice=TOKEN,bob=TOKEN`, usually from the SSM
//! parameter `WCA_ADMIN_TOKENS_PARAM`) or `WCA_ADMIN_TOKEN`.

use std::sync::Arc;

use lambda_http::{Error, run};
use wca_admin::{Admin, Admins, router};
use wca_broadcast::Stack;
use wca_webhook::settings::Env;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wca_aws::init_tracing();
    let stack = Stack::load().await?;
    let admins = Admins::from_vars(|name| stack.env.var(name))?;
    if admins.is_empty() {
        return Err(
            "the admin API needs WCA_ADMIN_TOKENS (or its SSM parameter) or WCA_ADMIN_TOKEN".into(),
        );
    }
    let app = router(Arc::new(Admin {
        campaigns: stack.campaigns.clone(),
        admins,
        // The next one-minute tick starts what `run-now` claimed.
        wake: None,
    }));
    run(app).await
}
