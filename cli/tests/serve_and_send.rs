//! The real `wca` binary: `wca serve` in a child process, `wca send` and
//! wechatpy (an independent implementation) talking to it over HTTP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

mod common;
use common::wca;

const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// A running `wca serve`, killed on drop.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(env: &[(&str, &str)]) -> Server {
    start_with(&[], env)
}

fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let (child, url) = common::serve(&data_dir, Stdio::null(), |cmd| {
        cmd.args(args).envs(env.iter().copied());
    });
    Server {
        child,
        url,
        _dir: dir,
        data_dir,
    }
}

fn send(
    server: &Server,
    env: &[(&str, &str)],
    text: &str,
    extra: &[&str],
) -> (bool, String, String) {
    let out = wca()
        .args(["send", text, "--url", &server.url, "--data-dir"])
        .arg(&server.data_dir)
        .args(extra)
        .envs(env.iter().copied())
        .output()
        .expect("run wca send");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_with_no_configuration_answers_wca_send_with_a_greeting() {
    let server = start(&[]);
    let (ok, out, err) = send(&server, &[], "你好", &[]);
    assert!(ok, "stderr: {err}");
    assert!(out.contains("你好"), "reply: {out}");
    // Anything the bot cannot answer gets a clarifying question.
    let (ok, out, _) = send(&server, &[], "随便说点什么", &[]);
    assert!(ok);
    assert!(out.contains("没太明白"), "reply: {out}");
}

#[test]
fn serve_and_send_work_in_safe_mode_with_an_aes_key() {
    let env = [
        ("WECHAT_AES_KEY", AES_KEY),
        ("WECHAT_TOKEN", "safeModeToken1"),
    ];
    let server = start(&env);
    let (ok, out, err) = send(&server, &env, "你好", &[]);
    assert!(ok, "stderr: {err}");
    assert!(out.contains("你好"), "reply: {out}");

    // A sender without the key is refused, and says why.
    let (ok, _, err) = send(&server, &[("WECHAT_TOKEN", "safeModeToken1")], "你好", &[]);
    assert!(!ok);
    assert!(err.contains("HTTP 400"), "{err}");
}

#[test]
fn send_with_the_wrong_token_is_refused_with_a_clear_error() {
    let server = start(&[]);
    let (ok, _, err) = send(&server, &[("WECHAT_TOKEN", "notTheRightOne")], "你好", &[]);
    assert!(!ok);
    assert!(
        err.contains("HTTP 403") && err.contains("signature"),
        "{err}"
    );
    assert!(
        !err.contains("notTheRightOne"),
        "the token is not echoed: {err}"
    );
}

#[test]
fn a_retried_msg_id_gets_the_same_reply() {
    let server = start(&[]);
    let a = send(&server, &[], "你好", &["--msg-id", "777"]);
    let b = send(&server, &[], "谢谢", &["--msg-id", "777"]);
    assert!(a.0 && b.0);
    assert_eq!(
        a.1, b.1,
        "the second delivery of MsgId 777 replays the first reply"
    );
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("WCA_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "wechatpy is needed: run infra/setup-python.sh (the README's test command does) or set WCA_PYTHON"
    );
    venv
}

fn wechatpy(server: &Server, token: &str, aes: Option<&str>, repeat: u32) {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/wechatpy_roundtrip.py");
    let mut cmd = Command::new(python());
    cmd.arg(script)
        .args(["--url", &server.url, "--token", token, "--app-id"])
        .arg(wca_webhook::settings::DEV_APP_ID)
        .args(["--text", "你好", "--expect-contains", "你好", "--repeat"])
        .arg(repeat.to_string());
    if let Some(k) = aes {
        cmd.args(["--aes-key", k]);
    }
    let out = cmd.output().expect("run python");
    assert!(
        out.status.success(),
        "wechatpy round trip failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn wechatpy_encrypts_a_message_that_wca_serve_answers_and_wechatpy_decrypts_the_reply() {
    let env = [
        ("WECHAT_AES_KEY", AES_KEY),
        ("WECHAT_TOKEN", "interopToken1"),
    ];
    let server = start(&env);
    wechatpy(&server, "interopToken1", Some(AES_KEY), 3);
}

#[test]
fn wechatpy_talks_to_wca_serve_in_plaintext_mode() {
    let env = [("WECHAT_TOKEN", "interopToken2")];
    let server = start(&env);
    wechatpy(&server, "interopToken2", None, 1);
}

const DEMO_CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/demo-shop/wca.toml"
);

#[test]
fn the_demo_shop_holds_a_whole_conversation_through_wca_chat() {
    use std::io::Write as _;
    let server = start_with(&["--config", DEMO_CONFIG], &[]);
    let lines = [
        "你好",
        "我的快递到哪了",
        "3",
        "我要退货",
        "2026111305517",
        "耳机左边有杂音",
        "你们一般发什么快递",
        "我要查订单",
        "算了",
        "拜托转个人工",
    ];
    let mut chat = wca()
        .args([
            "chat",
            "--from",
            "o_demo_user01",
            "--url",
            &server.url,
            "--data-dir",
        ])
        .arg(&server.data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wca chat");
    chat.stdin
        .take()
        .expect("stdin")
        .write_all(lines.join("\n").as_bytes())
        .expect("write the conversation");
    let out = chat
        .wait_with_output()
        .expect("wca chat ends at end of input");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let transcript = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "客服> 陈静您好",
        "1. 2026112000958",
        "您的订单 2026111305517",
        "售后单号 AS000001",
        "默认发中通快递",
        "已为您取消",
        "（已转接人工客服）",
    ] {
        assert!(
            transcript.contains(expected),
            "no {expected:?} in:\n{transcript}"
        );
    }
    // The ticket is on disk in the data dir, for the shop to act on.
    let tickets = std::fs::read_to_string(server.data_dir.join("tickets.jsonl")).expect("tickets");
    assert!(
        tickets.contains("2026111305517") && tickets.contains("耳机左边有杂音"),
        "{tickets}"
    );
}

#[test]
fn sigterm_stops_wca_serve_cleanly_with_every_event_recorded() {
    let mut server = start(&[]);
    let (ok, _, err) = send(&server, &[], "你好", &["--msg-id", "4242"]);
    assert!(ok, "stderr: {err}");
    let pid = server.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let mut status = None;
    for _ in 0..200 {
        status = server.child.try_wait().expect("try_wait");
        if status.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = status.expect("wca serve stopped within 20 s of SIGTERM");
    assert!(
        status.success(),
        "a clean exit, not death by signal: {status:?}"
    );

    // The queued events were counted before the store closed. (The day
    // is read on both sides of the check, in case midnight passes.)
    let day = || {
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").expect("tz");
        jiff::Timestamp::now().to_zoned(tz).date().to_string()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = wca_local::RedbStore::open(&server.data_dir.join("wca.redb")).expect("store");
    let counted = runtime.block_on(async {
        use wca_core::Counters;
        let mut counted = (0, 0);
        for day in [day(), day()] {
            counted.0 += store
                .get(&format!("msgs:day:{day}"))
                .await
                .expect("counter");
            counted.1 += store
                .get(&format!("replies:day:{day}"))
                .await
                .expect("counter");
        }
        counted
    });
    assert!(counted.0 >= 1, "the message was counted: {counted:?}");
    assert!(counted.1 >= 1, "the reply was counted: {counted:?}");
}

#[cfg(unix)]
#[test]
fn local_files_are_their_owners_only_and_the_token_stays_off_a_piped_stderr() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let (mut child, _) = common::serve(&data_dir, Stdio::piped(), |_| {});
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    let token_file = data_dir.join("dev-token");
    let token = std::fs::read_to_string(&token_file).expect("dev token");
    assert_eq!(mode(&data_dir), 0o700, "data dir");
    assert_eq!(mode(&token_file), 0o600, "dev-token");
    assert_eq!(mode(&data_dir.join("wca.redb")), 0o600, "wca.redb");
    let _ = child.kill();
    let out = child.wait_with_output().expect("stderr");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dev-token"),
        "says where the token is: {stderr}"
    );
    assert!(
        !stderr.contains(token.trim()),
        "the token itself is not on a pipe"
    );
}

#[cfg(unix)]
#[test]
fn an_existing_data_dir_keeps_its_permissions_and_an_empty_token_file_is_written_over() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).expect("data dir");
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    std::fs::write(data_dir.join("dev-token"), "").expect("empty token file");
    let (mut child, url) = common::serve(&data_dir, Stdio::null(), |_| {});
    let _ = child.kill();
    let _ = child.wait();
    assert!(url.starts_with("http://"), "{url}");
    let mode = std::fs::metadata(&data_dir)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o750, "the owner's choice is kept");
    let token = std::fs::read_to_string(data_dir.join("dev-token")).expect("token");
    assert_eq!(token.trim().len(), 32, "a token was written: {token:?}");
}
