//! The real `wca classify`: lines on stdin, one JSON object per line out,
//! in the contract's shape.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

fn classify(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wca"))
        .arg("classify")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wca classify");
    // wca may exit before reading (a bad --model-dir): a broken pipe here is
    // its answer, not a test failure.
    let _ = child.stdin.take().expect("stdin").write_all(input);
    child.wait_with_output().expect("wait")
}

const FIELDS: [&str; 6] = [
    "text",
    "intent",
    "confidence",
    "top",
    "sentiment",
    "sentiment_score",
];

fn raw_lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .expect("UTF-8 out")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    raw_lines(out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn each_line_becomes_one_json_object_in_the_contract_shape() {
    let out = classify(&[], "我要退货\n转人工\r\n\n😀\n".as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = lines(&out);
    assert_eq!(
        lines.len(),
        4,
        "one line out per line in, the empty one too"
    );
    for raw in raw_lines(&out) {
        // serde_json::Value sorts keys, so check the order on the raw text
        // (none of these texts contains a key).
        let at: Vec<usize> = FIELDS
            .iter()
            .map(|f| {
                raw.find(&format!("\"{f}\":"))
                    .unwrap_or_else(|| panic!("{f} in {raw}"))
            })
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "the contract's fields, in order: {raw}"
        );
    }
    for (line, text) in lines.iter().zip(["我要退货", "转人工", "", "😀"]) {
        assert_eq!(
            line.as_object().expect("object").len(),
            FIELDS.len(),
            "{line}"
        );
        assert_eq!(line["text"], text);
        let top = line["top"].as_array().expect("top");
        assert_eq!(top.len(), 3);
        for pair in top {
            let pair = pair.as_array().expect("[label, F]");
            assert!(pair[0].is_string() && pair[1].is_f64(), "{pair:?}");
        }
        assert_eq!(top[0][0], line["intent"]);
        assert_eq!(top[0][1], line["confidence"]);
        let score = line["sentiment_score"].as_f64().expect("score");
        assert!((-1.0..=1.0).contains(&score));
        assert!(
            ["negative", "neutral", "positive"].contains(&line["sentiment"].as_str().expect("str"))
        );
    }
    assert_eq!(lines[0]["intent"], "return_refund");
    assert_eq!(lines[1]["intent"], "human_agent");
}

#[test]
fn a_line_that_is_not_utf8_is_reported_and_still_gets_its_own_output_line() {
    let out = classify(&[], b"\xff\xfe\n\xe4\xbd\xa0\xe5\xa5\xbd\n");
    assert!(out.status.success());
    let lines = lines(&out);
    assert_eq!(lines.len(), 2, "one output line per input line");
    assert_eq!(lines[0]["invalid_utf8"], true);
    assert_eq!(lines[1]["text"], "你好");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 1") && stderr.contains("UTF-8"),
        "{stderr}"
    );
}

#[test]
fn a_model_dir_that_does_not_exist_fails_naming_the_file() {
    let out = classify(&["--model-dir", "/nonexistent/models"], b"hi\n");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/models/intent/model.onnx"),
        "{stderr}"
    );
}

#[test]
fn a_model_dir_with_the_default_files_gives_the_same_answers() {
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/nlp/models");
    let input = "你好\n付款失败了怎么办\n".as_bytes();
    let from_dir = classify(&["--model-dir", models.to_str().expect("path")], input);
    let embedded = classify(&[], input);
    assert!(
        from_dir.status.success(),
        "{}",
        String::from_utf8_lossy(&from_dir.stderr)
    );
    assert_eq!(from_dir.stdout, embedded.stdout);
}
