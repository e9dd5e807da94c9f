//! `wca user export` and `wca user erase` on the data dir of a real
//! `wca serve`, after `wca send` has talked to it as two users.

use std::path::Path;
use std::process::{Child, Output, Stdio};

mod common;
use common::wca;

use serde_json::Value;

const ALICE: &str = "oErase_cli_alice01";
const BOB: &str = "oErase_cli_bob0002";

/// `wca serve` on `data_dir`, and the URL it listens on.
fn serve(data_dir: &Path) -> (Child, String) {
    common::serve(data_dir, Stdio::null(), |_| {})
}

fn user(action: &str, openid: &str, data_dir: &Path) -> Output {
    wca()
        .args(["user", action, openid, "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run wca user")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document on stdout")
}

fn len(doc: &Value, field: &str) -> usize {
    doc[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} is a list: {doc}"))
        .len()
}

#[test]
fn a_users_data_is_exported_then_erased_and_an_export_after_the_erasure_is_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let (mut server, url) = serve(&data_dir);
    common::send(&url, &data_dir, ALICE, "你好", "91001");
    common::send(&url, &data_dir, BOB, "你好", "91002");

    let busy = user("export", ALICE, &data_dir);
    assert!(!busy.status.success(), "the store is held by wca serve");
    let said = String::from_utf8_lossy(&busy.stderr);
    assert!(said.contains("stop wca serve first"), "{said}");

    server.kill().expect("stop wca serve");
    server.wait().expect("wait for wca serve");

    let export = json(&user("export", ALICE, &data_dir));
    assert_eq!(export["openid"], ALICE);
    assert!(export["exported_at"].as_i64().is_some(), "{export}");
    assert_eq!(len(&export, "messages"), 1, "{export}");
    assert_eq!(export["messages"][0]["key"], "msg:91001");
    assert_eq!(len(&export, "replies"), 1, "{export}");
    assert!(export["conversation"].is_object(), "{export}");
    assert_eq!(len(&export, "tickets"), 0);
    assert_eq!(len(&export, "campaign_claims"), 0);
    assert!(export.get("profile").is_some() && export.get("sources").is_some());
    assert!(
        !export.to_string().contains(BOB),
        "nothing of the other user: {export}"
    );

    let erased = json(&user("erase", ALICE, &data_dir));
    assert_eq!(erased["openid"], ALICE);
    let counts = &erased["erased"];
    for (kind, n) in [
        ("messages", 1),
        ("replies", 1),
        ("conversation", 1),
        ("dedup_records", 1),
    ] {
        assert_eq!(counts[kind], n, "{kind}: {erased}");
    }

    let after = json(&user("export", ALICE, &data_dir));
    assert_eq!(len(&after, "messages"), 0, "{after}");
    assert_eq!(len(&after, "replies"), 0, "{after}");
    assert!(after["conversation"].is_null(), "{after}");

    let again = json(&user("erase", ALICE, &data_dir));
    let total: u64 = again["erased"]
        .as_object()
        .expect("counts")
        .values()
        .map(|n| n.as_u64().expect("a count"))
        .sum();
    assert_eq!(total, 0, "a second erasure removes nothing: {again}");

    let other = json(&user("export", BOB, &data_dir));
    assert_eq!(
        len(&other, "messages"),
        1,
        "the other user is intact: {other}"
    );
    assert_eq!(len(&other, "replies"), 1, "{other}");
}

#[test]
fn an_export_of_a_data_dir_without_a_store_says_so_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("nothing-here");
    let out = user("export", ALICE, &data_dir);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("no store at"), "{said}");
    assert!(!data_dir.exists(), "no data dir is created by looking");
}
