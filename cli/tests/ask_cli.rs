//! The real `wca ask` on the demo shop's FAQ: lines on stdin, one JSON
//! object per line out, in the contract's shape.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn demo(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/demo-shop")
        .join(file)
}

fn ask(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wca"))
        .arg("ask")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wca ask");
    // wca may exit before reading (a bad --faq): a broken pipe here is its
    // answer, not a test failure.
    let _ = child.stdin.take().expect("stdin").write_all(input);
    child.wait_with_output().expect("wait")
}

fn demo_args() -> [String; 4] {
    [
        "--faq".into(),
        demo("faq.tsv").display().to_string(),
        "--faq".into(),
        demo("faq-extra.tsv").display().to_string(),
    ]
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .expect("utf-8 stdout")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[test]
fn each_line_gets_the_faq_entry_that_answers_it_or_null() {
    let args = demo_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ask(&args, "優惠券可以疊加嗎？\r\n今天天气怎么样\n\n".as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");

    // The fields, in contract order.
    let first = String::from_utf8_lossy(&out.stdout);
    let first = first.lines().next().expect("a first line");
    let at: Vec<usize> = ["\"text\":", "\"faq_id\":", "\"score\":", "\"answer\":"]
        .iter()
        .map(|key| {
            first
                .find(key)
                .unwrap_or_else(|| panic!("{key} in {first}"))
        })
        .collect();
    assert!(at.is_sorted(), "{first}");

    let hit = &lines[0];
    assert_eq!(hit.as_object().map(|o| o.len()), Some(4), "{hit}");
    assert_eq!(hit["text"], "優惠券可以疊加嗎？");
    assert_eq!(hit["faq_id"], "coupon-stack");
    assert!(
        hit["answer"]
            .as_str()
            .is_some_and(|a| a.starts_with("每笔订单最多同时用1张店铺券")),
        "{hit}"
    );
    let score = hit["score"].as_f64().expect("score is a number");
    assert!((0.0..=1.0).contains(&score), "{score}");

    let miss = &lines[1];
    assert_eq!(miss["text"], "今天天气怎么样");
    assert!(
        miss["faq_id"].is_null() && miss["answer"].is_null(),
        "{miss}"
    );
    assert!(miss["score"].is_number());

    assert_eq!(lines[2]["text"], "");
    assert!(lines[2]["faq_id"].is_null());
}

#[test]
fn a_threshold_above_every_score_answers_nothing() {
    let mut args: Vec<String> = demo_args().into();
    args.extend(["--threshold".into(), "1.5".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ask(&args, "优惠券可以叠加使用吗？\n".as_bytes());
    assert!(out.status.success());
    let lines = lines(&out);
    assert!(lines[0]["faq_id"].is_null(), "{:?}", lines[0]);
    assert!(lines[0]["score"].as_f64().is_some_and(|s| s > 0.5));
}

#[test]
fn a_broken_faq_file_fails_with_its_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("faq.tsv");
    std::fs::write(&path, "fee\t运费？\t8元\nbroken line\n").expect("write");
    let out = ask(&["--faq", &path.display().to_string()], b"x\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("faq.tsv:2: expected id<TAB>question<TAB>answer"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}
