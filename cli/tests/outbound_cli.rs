//! `wca fake-wechat` serves WeChat's API to other processes, and `wca
//! bench outbound` sends each message exactly once through the client.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use serde_json::{Value, json};

#[test]
fn wca_fake_wechat_hands_out_a_token_and_answers_with_wechats_errcodes() {
    let mut child = common::wca()
        .args(["fake-wechat", "--port", "0", "--followers", "3"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wca fake-wechat");
    let mut banner = String::new();
    // Kept open to the end: a closed pipe would fail the child's writes.
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    stderr.read_line(&mut banner).expect("banner");
    let base = banner
        .trim()
        .strip_prefix("WeChat API stand-in at ")
        .unwrap_or_else(|| panic!("not the stand-in's banner: {banner}"))
        .to_owned();
    let get = |url: &str| -> Value {
        let text = ureq::get(url)
            .call()
            .expect("GET")
            .body_mut()
            .read_to_string()
            .expect("body");
        serde_json::from_str(&text).expect("json")
    };
    assert_eq!(
        get(&format!("{base}/cgi-bin/tags/get"))["errcode"],
        41001,
        "no token: WeChat's 41001"
    );
    let request = json!({
        "grant_type": "client_credential",
        "appid": "wxfake0000000000001",
        "secret": "fake-app-secret-0123456789abcdef",
    });
    let text = ureq::post(format!("{base}/cgi-bin/stable_token"))
        .header("content-type", "application/json")
        .send(request.to_string())
        .expect("stable_token")
        .body_mut()
        .read_to_string()
        .expect("body");
    let token: Value = serde_json::from_str(&text).expect("json");
    let token = token["access_token"].as_str().expect("a token").to_owned();
    let tags = get(&format!("{base}/cgi-bin/tags/get?access_token={token}"));
    assert_eq!(tags["tags"][0]["name"], "demo");
    assert_eq!(tags["tags"][0]["count"], 3);
    child.kill().expect("stop");
    let _ = child.wait();
}

#[test]
fn wca_bench_outbound_delivers_one_message_to_each_user() {
    let out = common::wca()
        .args(["bench", "outbound", "--sends", "300", "--concurrency", "16"])
        .output()
        .expect("run the bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("stand-in received 300 messages for 300 users; 1 token fetches"),
        "{stdout}"
    );
}
