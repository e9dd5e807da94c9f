//! `WCA_REPLY_MODE=async`: `wca serve` answers `success`, and the reply
//! reaches the WeChat stand-in as one customer-service message, however
//! often WeChat retries.

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use wca_fake_wechat::{FakeWeChat, Options};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn in_async_mode_the_reply_reaches_wechat_once_as_a_customer_service_message_despite_three_retries()
{
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let opts = Options::default();
    let (fake, addr) = runtime
        .block_on(FakeWeChat::start(opts.clone()))
        .expect("stand-in");
    let user = "oAsyncUser000000000000001";
    // WeChat saw the user's message: its window is open.
    fake.interact(user);

    // What the same message gets as a passive reply.
    let passive_dir = tempfile::tempdir().expect("tempdir");
    let (passive, passive_url) = common::serve(passive_dir.path(), Stdio::null(), |_| {});
    let passive = Killed(passive);
    let expected = common::send(&passive_url, passive_dir.path(), user, "你好", "9000");
    drop(passive);
    assert!(
        !expected.is_empty() && !expected.starts_with('('),
        "{expected}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let base = format!("http://{addr}");
    let (child, url) = common::serve(dir.path(), Stdio::null(), |cmd| {
        cmd.env("WCA_REPLY_MODE", "async")
            .env("WECHAT_API_BASE", &base)
            .env("WECHAT_APP_ID", &opts.app_id)
            .env("WECHAT_APP_SECRET", &opts.secret);
    });
    let _server = Killed(child);
    // The first delivery and WeChat's three retries of MsgId 9001.
    for _ in 0..4 {
        assert_eq!(
            common::send(&url, dir.path(), user, "你好", "9001"),
            "(acknowledged, no reply)",
            "async mode answers success"
        );
    }
    let mut sent = Vec::new();
    for _ in 0..100 {
        sent = fake.sent();
        if !sent.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Time for a duplicate to show up, if there were one.
    std::thread::sleep(Duration::from_millis(1500));
    let sent_after = fake.sent();
    assert_eq!(sent_after.len(), 1, "exactly one message: {sent_after:?}");
    assert_eq!(sent, sent_after);
    let message = &sent_after[0];
    assert_eq!(message.api, "custom");
    assert_eq!(message.openid, user);
    assert_eq!(message.msgtype, "text");
    assert_eq!(message.content, expected, "the reply the dialog chose");
    assert_eq!(fake.stats().stable_token_calls, 1);
}

#[test]
fn async_mode_without_an_app_secret_refuses_to_start_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = common::wca()
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env("WCA_REPLY_MODE", "async")
        .env_remove("WECHAT_APP_SECRET")
        .output()
        .expect("run wca serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WECHAT_APP_SECRET"), "{err}");
}

#[test]
fn with_fake_wechat_serve_pushes_each_reply_to_its_own_stand_in_and_chat_shows_it() {
    use std::io::Write as _;
    let user = "oAsyncChat000000000000001";
    // What the message gets as a passive reply.
    let passive_dir = tempfile::tempdir().expect("tempdir");
    let (passive, passive_url) = common::serve(passive_dir.path(), Stdio::null(), |_| {});
    let passive = Killed(passive);
    let expected = common::send(&passive_url, passive_dir.path(), user, "你好", "9100");
    drop(passive);

    let dir = tempfile::tempdir().expect("tempdir");
    let (child, url) = common::serve(dir.path(), Stdio::null(), |cmd| {
        cmd.arg("--fake-wechat").env_remove("WCA_REPLY_MODE");
    });
    let server = Killed(child);
    let stand_in = std::fs::read_to_string(dir.path().join("fake-wechat.url"))
        .expect("serve names its stand-in in the data dir");
    assert!(stand_in.starts_with("http://127.0.0.1:"), "{stand_in}");

    let mut chat = common::wca()
        .args(["chat", "--from", user, "--url", &url, "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wca chat");
    chat.stdin
        .take()
        .expect("stdin")
        .write_all("你好\n".as_bytes())
        .expect("write");
    let out = chat.wait_with_output().expect("chat ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let transcript = String::from_utf8_lossy(&out.stdout);
    let first_line = expected.lines().next().expect("a reply");
    assert!(
        transcript.contains(&format!("客服(推送)> {first_line}")),
        "the pushed reply is shown: {transcript}"
    );
    assert!(
        !transcript.contains("已收到，无回复"),
        "not shown as unanswered: {transcript}"
    );
    drop(server);
}
