//! `wca filter`: the JSON-lines contract, run on the real binary.

use std::io::Write as _;
use std::process::{Command, Stdio};

const DENY: &str =
    "@default\tabuse\tmask\n稳赚不赔\tfraud\tblock\n傻逼\tabuse\nsb\tabuse\n刷单\tfraud\n";
const ALLOW: &str = "刷单词\n";

/// Runs `wca filter` with the test dictionary on `input`; stdout, stderr
/// and whether it succeeded.
fn filter(input: &[u8]) -> (String, String, bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let deny = dir.path().join("deny.tsv");
    let allow = dir.path().join("allow.txt");
    std::fs::write(&deny, DENY).expect("write deny");
    std::fs::write(&allow, ALLOW).expect("write allow");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wca"))
        .arg("filter")
        .arg("--deny")
        .arg(&deny)
        .arg("--allow")
        .arg(&allow)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wca filter");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn each_input_line_gets_one_json_object_with_byte_offsets_and_the_masked_text() {
    let (out, err, ok) =
        filter("保证稳 赚 不 赔\n今天天气不错\r\n你个 SB！背单词我用刷单词卡\n".as_bytes());
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");

    let first = &lines[0];
    assert_eq!(first["text"], "保证稳 赚 不 赔");
    assert_eq!(first["action"], "block");
    assert_eq!(
        first["hits"],
        serde_json::json!([{"word": "稳赚不赔", "category": "fraud", "action": "block", "start": 6, "end": 21}])
    );
    assert_eq!(first["masked"], "保证*******");

    assert_eq!(
        lines[1]["text"], "今天天气不错",
        "a CRLF line ending is not part of the text"
    );
    assert_eq!(lines[1]["hits"], serde_json::json!([]));
    assert_eq!(lines[1]["action"], "pass");
    assert_eq!(lines[1]["masked"], "今天天气不错");

    let third = &lines[2];
    assert_eq!(third["action"], "mask");
    assert_eq!(
        third["hits"].as_array().map(Vec::len),
        Some(1),
        "刷单词 is allowed: {third}"
    );
    assert_eq!(third["hits"][0]["word"], "sb");
    assert_eq!(third["masked"], "你个 **！背单词我用刷单词卡");
    let object_keys: Vec<&String> = third.as_object().expect("object").keys().collect();
    assert_eq!(object_keys.len(), 4, "text, hits, action, masked: {third}");
}

#[test]
fn a_line_that_is_not_utf8_is_reported_and_the_rest_still_checked() {
    let (out, err, ok) = filter(b"\xff\xfe bad\n\xe5\x82\xbb\xe9\x80\xbc\n");
    assert!(ok, "{err}");
    assert!(err.contains("line 1: not UTF-8"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("\"action\":\"mask\""), "{out}");
}

#[test]
fn a_bad_dictionary_line_is_a_clear_error_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let deny = dir.path().join("bad.tsv");
    std::fs::write(&deny, "ok\tfraud\nno tab here\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_wca"))
        .arg("filter")
        .arg("--deny")
        .arg(&deny)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.tsv:2"), "{err}");
    assert!(err.contains("no TAB"), "{err}");
}
