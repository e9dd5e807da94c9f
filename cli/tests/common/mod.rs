//! What the tests of the `wca` binary share: the binary with the caller's
//! WeChat settings cleared, and `wca serve` started on a data dir.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The `wca` binary, without the WeChat settings of the shell running the
/// tests.
pub fn wca() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wca"));
    for var in [
        "WECHAT_TOKEN",
        "WECHAT_APP_ID",
        "WECHAT_AES_KEY",
        "WCA_CONFIG",
        "WCA_REPLY_MODE",
        "WECHAT_API_BASE",
        "WECHAT_APP_SECRET",
        "WCA_ADMIN_TOKEN",
        "WCA_ADMIN_TOKENS",
        "WCA_TEST_ABORT_AFTER_SENDS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// `wca serve` on a free port and `data_dir`, set up further by
/// `configure` (arguments, environment), with its stderr to `stderr`;
/// returned once it listens, with the URL it listens on.
pub fn serve(
    data_dir: &Path,
    stderr: Stdio,
    configure: impl FnOnce(&mut Command),
) -> (Child, String) {
    let mut cmd = wca();
    cmd.args(["serve", "--port", "0", "--data-dir"])
        .arg(data_dir);
    configure(&mut cmd);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn wca serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the listening line");
    let url = line
        .trim()
        .strip_prefix("wca listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

/// `wca send TEXT` from `from` with MsgId `msg_id` to `wca serve` at `url`
/// (its data dir holds the token); the reply `wca send` printed.
pub fn send(url: &str, data_dir: &Path, from: &str, text: &str, msg_id: &str) -> String {
    let out = wca()
        .args([
            "send", text, "--url", url, "--from", from, "--msg-id", msg_id,
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run wca send");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
