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
    let args = [
        "--deny".as_ref(),
        deny.as_os_str(),
        "--allow".as_ref(),
        allow.as_os_str(),
    ];
    filter_with(&args, input)
}

/// Runs `wca filter ARGS` on `input`; stdout, stderr and whether it
/// succeeded.
fn filter_with(args: &[&std::ffi::OsStr], input: &[u8]) -> (String, String, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wca"))
        .arg("filter")
        .args(args)
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

/// Issue 13: a non-UTF-8 line used to be skipped, so output line N no
/// longer answered input line N for every line after it.
#[test]
fn a_line_that_is_not_utf8_still_gets_its_own_output_line() {
    let (out, err, ok) =
        filter(b"\xff\xfe bad\n\xe5\x82\xbb\xe9\x80\xbc\nsb \xe5\x82\n\xe4\xbd\xa0\xe5\xa5\xbd\n");
    assert!(ok, "{err}");
    assert!(err.contains("line 1: not UTF-8"), "{err}");
    assert!(err.contains("line 3: not UTF-8"), "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 4, "one line out per line in: {out}");

    assert_eq!(lines[0]["text"], "\u{fffd}\u{fffd} bad", "decoded lossily");
    assert_eq!(lines[0]["action"], "pass");
    assert_eq!(lines[0]["invalid_utf8"], true);
    let keys: Vec<&String> = lines[0].as_object().expect("object").keys().collect();
    assert_eq!(
        keys.len(),
        5,
        "the contract's four fields and the flag: {}",
        lines[0]
    );

    assert_eq!(lines[1]["text"], "傻逼");
    assert_eq!(lines[1]["action"], "mask");
    assert!(
        lines[1].get("invalid_utf8").is_none(),
        "only bad lines carry the flag"
    );

    assert_eq!(lines[2]["text"], "sb \u{fffd}");
    assert_eq!(lines[2]["action"], "mask", "a bad line is still checked");
    assert_eq!(lines[2]["masked"], "** \u{fffd}");
    assert_eq!(lines[2]["invalid_utf8"], true);

    assert_eq!(lines[3]["text"], "你好");
    assert!(lines[3].get("invalid_utf8").is_none());
}

#[test]
fn filter_without_a_dictionary_uses_the_built_in_one() {
    // 洗钱 (fraud, block) and 赌博 (gambling, block) are in the shipped
    // deny list; 反洗钱 is on the shipped allow-list.
    let (out, err, ok) = filter_with(
        &[],
        "帮你洗钱\n一起赌博吗\n反洗钱宣传\n今天天气不错\n".as_bytes(),
    );
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0]["hits"][0]["word"], "洗钱");
    assert_eq!(lines[0]["hits"][0]["category"], "fraud");
    assert_eq!(lines[0]["action"], "block");
    assert_eq!(lines[1]["hits"][0]["category"], "gambling");
    assert_eq!(
        lines[2]["action"], "pass",
        "the built-in allow-list too: {}",
        lines[2]
    );
    assert_eq!(lines[3]["action"], "pass");
}

#[test]
fn a_deny_file_replaces_the_built_in_dictionary() {
    // 洗钱 is built in but not in the test dictionary.
    let (out, err, ok) = filter("帮你洗钱\n傻逼\n".as_bytes());
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("\"action\":\"pass\""), "{out}");
    assert!(lines[1].contains("\"action\":\"mask\""), "{out}");
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
