//! Campaigns through `wca serve` and `wca campaign`: per-user variables
//! from the demo shop, the filter at creation, and exactly once per
//! recipient across two crashes.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wca_fake_wechat::{FakeWeChat, Options};

const TOKEN: &str = "campaign-test-admin-token-0001";
/// A second admin, named bob.
const BOB: &str = "campaign-test-bob-token-00002";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn base_of(url: &str) -> String {
    url.trim_end_matches("/wechat").to_owned()
}

/// `wca campaign ARGS --server SERVER`: (success, stdout, stderr).
fn campaign(server: &str, args: &[&str]) -> (bool, String, String) {
    campaign_as(TOKEN, server, args)
}

/// [`campaign`] as the admin whose token is `token`.
fn campaign_as(token: &str, server: &str, args: &[&str]) -> (bool, String, String) {
    let out = common::wca()
        .arg("campaign")
        .args(args)
        .args(["--server", server])
        .env("WCA_ADMIN_TOKEN", token)
        .output()
        .expect("run wca campaign");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn add(server: &str, args: &[&str]) -> String {
    let (ok, out, err) = campaign(server, &[&["add"], args].concat());
    assert!(ok, "wca campaign add failed: {err}");
    let v: Value = serde_json::from_str(out.trim()).expect("add prints JSON");
    v["id"].as_str().expect("an id").to_owned()
}

fn report(server: &str, id: &str) -> Value {
    let (ok, out, err) = campaign(server, &["report", id]);
    assert!(ok, "wca campaign report failed: {err}");
    serde_json::from_str(out.trim()).expect("report prints JSON")
}

/// The report once its first occurrence is expanded with nothing pending.
fn finished_report(server: &str, id: &str, within: Duration) -> Value {
    let start = Instant::now();
    loop {
        let r = report(server, id);
        let occ = &r["occurrences"][0];
        if occ["state"] == "expanded" && occ["pending"] == 0 {
            return r;
        }
        assert!(start.elapsed() < within, "not finished in time: {r}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn soon() -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn demo_shop() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo-shop")
}

/// `wca serve --fake-wechat` on the demo shop, ticking every 200 ms: the
/// running server, its webhook URL and its base URL.
fn demo_serve(data_dir: &Path) -> (Killed, String, String) {
    let config = demo_shop().join("wca.toml");
    let (child, url) = common::serve(data_dir, Stdio::null(), |cmd| {
        cmd.arg("--fake-wechat")
            .arg("--config")
            .arg(&config)
            .env("WCA_ADMIN_TOKEN", TOKEN)
            .env("WCA_CAMPAIGN_TICK_MS", "200");
    });
    let server = base_of(&url);
    (Killed(child), url, server)
}

#[test]
fn a_tag_campaign_fills_each_vip_users_name_and_order_from_the_demo_shop_and_refuses_blocked_words()
{
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, _, server) = demo_serve(dir.path());

    let (ok, _, err) = campaign(
        &server,
        &[
            "add",
            "--name",
            "理财",
            "--cron",
            "0 9 * * 1",
            "--tz",
            "Asia/Shanghai",
            "--audience",
            "tag:VIP",
            "--channel",
            "template",
            "--template-id",
            "TPL-1",
            "--text",
            "{{name}}，新品保本保息，年化8%",
        ],
    );
    assert!(!ok, "a campaign with a blocked word is refused");
    assert!(
        err.contains("保本保息"),
        "the refusal names the word: {err}"
    );

    let id = add(
        &server,
        &[
            "--name",
            "会员日",
            "--at",
            &soon(),
            "--audience",
            "tag:VIP",
            "--channel",
            "template",
            "--template-id",
            "TPL-1",
            "--text",
            "{{name}}，VIP{{vip_level}}会员日：订单{{last_order_id}}享9折",
        ],
    );
    let r = finished_report(&server, &id, Duration::from_secs(60));
    let occ = &r["occurrences"][0];
    assert_eq!(r["id"], id.as_str());
    assert_eq!(occ["audience"], 4, "the demo shop has four VIP users: {r}");
    assert_eq!(occ["sent"], 4, "{r}");

    // What each VIP user should read, from the demo shop's users.jsonl.
    let users = std::fs::read_to_string(demo_shop().join("users.jsonl")).expect("users");
    let mut expected: Vec<(String, String)> = users
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|u| {
            u["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "VIP"))
        })
        .map(|u| {
            (
                u["openid"].as_str().unwrap_or_default().to_owned(),
                format!(
                    "{}，VIP{}会员日：订单{}享9折",
                    u["name"].as_str().unwrap_or_default(),
                    u["vip_level"],
                    u["last_order_id"].as_str().unwrap_or_default()
                ),
            )
        })
        .collect();
    expected.sort();
    let mut got: Vec<(String, String)> = stand_in_sent(dir.path())
        .iter()
        .map(|s| {
            assert_eq!(s["api"], "template");
            (
                s["openid"].as_str().unwrap_or_default().to_owned(),
                s["body"]["data"]["content"]["value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, expected);

    let (ok, listed, _) = campaign(&server, &["list"]);
    assert!(ok);
    assert_eq!(
        listed.lines().count(),
        1,
        "the refused campaign was not stored: {listed}"
    );
    assert!(
        listed.contains("finished"),
        "a one-off that ran is finished: {listed}"
    );
}

/// Waits for `child` to end by itself.
fn ended(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(start.elapsed() < within, "wca serve did not abort in time");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn killed_at_30_and_70_percent_then_restarted_every_one_of_10000_followers_gets_the_message_once() {
    const FOLLOWERS: usize = 10_000;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let opts = Options {
        page_size: 1000,
        ..Options::default()
    };
    let (fake, addr) = runtime
        .block_on(FakeWeChat::start(opts.clone()))
        .expect("stand-in");
    let tag = fake.add_tag("周末活动");
    for i in 0..FOLLOWERS {
        fake.add_follower(&format!("oCrash{i:06}"), &[tag]);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let api = format!("http://{addr}");
    let start = |abort_after: Option<u32>| {
        let (child, url) = common::serve(dir.path(), Stdio::null(), |cmd| {
            cmd.env("WECHAT_API_BASE", &api)
                .env("WECHAT_APP_ID", &opts.app_id)
                .env("WECHAT_APP_SECRET", &opts.secret)
                .env("WCA_ADMIN_TOKEN", TOKEN)
                .env("WCA_ADMIN_TOKENS", format!("bob={BOB}"))
                .env("WCA_CAMPAIGN_TICK_MS", "200")
                .env("WCA_CAMPAIGN_CONCURRENCY", "1");
            if let Some(n) = abort_after {
                cmd.env("WCA_TEST_ABORT_AFTER_SENDS", n.to_string());
            }
        });
        (child, base_of(&url))
    };

    // The process aborts right after WeChat accepted the 3,000th message,
    // before wca recorded it: the worst moment to die.
    let (mut first, server) = start(Some(3000));
    let id = add(
        &server,
        &[
            "--name",
            "周末",
            "--at",
            &soon(),
            "--audience",
            "tag:周末活动",
            "--channel",
            "template",
            "--template-id",
            "TPL-2",
            "--text",
            "{{openid}}，周末见",
        ],
    );
    // Ten thousand recipients is above the approval threshold: nothing
    // goes out until a second admin approves.
    let (ok, shown, err) = campaign(&server, &["show", &id]);
    assert!(ok, "{err}");
    assert!(shown.contains("pending_approval"), "{shown}");
    let (ok, _, err) = campaign_as(BOB, &server, &["approve", &id]);
    assert!(ok, "bob approves: {err}");
    let status = ended(&mut first, Duration::from_secs(300));
    assert!(!status.success(), "aborted: {status}");
    assert_eq!(fake.sent().len(), 3000);

    // Restarted, it resumes, and aborts again at 70%.
    let (mut second, _) = start(Some(4000));
    let status = ended(&mut second, Duration::from_secs(300));
    assert!(!status.success(), "aborted: {status}");
    assert_eq!(fake.sent().len(), 7000);

    let (third, server) = start(None);
    let _third = Killed(third);
    let r = finished_report(&server, &id, Duration::from_secs(300));

    let sent = fake.sent();
    let mut who: Vec<&str> = sent.iter().map(|s| s.openid.as_str()).collect();
    who.sort_unstable();
    who.dedup();
    assert_eq!(sent.len(), FOLLOWERS, "one message each, none twice");
    assert_eq!(who.len(), FOLLOWERS, "every follower got it");
    for s in &sent {
        assert_eq!(
            s.body["data"]["content"]["value"],
            format!("{}，周末见", s.openid),
            "each message carries its own recipient's variables"
        );
    }
    let occ = &r["occurrences"][0];
    assert_eq!(occ["audience"], FOLLOWERS, "{r}");
    // The two messages accepted just before each abort were never
    // recorded as sent: the report says so, and nobody got one twice.
    assert_eq!(occ["failed"]["interrupted"], 2, "{r}");
    assert_eq!(occ["sent"], FOLLOWERS - 2, "{r}");
    let skipped: u64 = occ["skipped"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    assert_eq!(skipped, 0, "{r}");
}

/// What the stand-in that `wca serve --fake-wechat` started has accepted.
fn stand_in_sent(data_dir: &Path) -> Vec<Value> {
    let stand_in = std::fs::read_to_string(data_dir.join("fake-wechat.url")).expect("url");
    let body = ureq::get(&format!("{}/_fake/sent", stand_in.trim()))
        .call()
        .expect("stand-in")
        .body_mut()
        .read_to_string()
        .expect("body");
    let sent: Value = serde_json::from_str(&body).expect("json");
    sent.as_array().cloned().unwrap_or_default()
}

/// The coupons the stand-in holds: (openid, text) of each pushed
/// customer-service message that carries one.
fn coupons(data_dir: &Path) -> Vec<(String, String)> {
    stand_in_sent(data_dir)
        .iter()
        .filter(|s| {
            s["api"] == "custom" && s["content"].as_str().is_some_and(|c| c.contains("QUAN"))
        })
        .map(|s| {
            (
                s["openid"].as_str().unwrap_or_default().to_owned(),
                s["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_user_who_asks_about_coupons_gets_one_coupon_in_their_own_name_once_per_cooldown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, url, server) = demo_serve(dir.path());

    // A trigger needs the customer-service channel, to whoever wrote.
    let (ok, _, err) = campaign(
        &server,
        &[
            "add",
            "--name",
            "券",
            "--on-keyword",
            "优惠券",
            "--audience",
            "tag:VIP",
            "--channel",
            "custom",
            "--text",
            "券",
        ],
    );
    assert!(!ok && err.contains("--audience all"), "{err}");

    let id = add(
        &server,
        &[
            "--name",
            "问券送券",
            "--on-keyword",
            "优惠券,折扣",
            "--cooldown-days",
            "7",
            "--audience",
            "all",
            "--channel",
            "custom",
            "--text",
            "{{name}}，送您一张满100减20优惠券：QUAN-{{openid}}",
        ],
    );
    let (ok, shown, err) = campaign(&server, &["show", &id]);
    assert!(ok, "{err}");
    assert!(
        shown.contains("\"active\""),
        "no approval for a trigger: {shown}"
    );

    // o_demo_user01 (陈静) asks twice; o_demo_user02 (王浩然) talks about
    // something else, then asks in other words.
    common::send(&url, dir.path(), "o_demo_user01", "有优惠券吗？", "91001");
    common::send(&url, dir.path(), "o_demo_user02", "我的快递到哪了", "91002");
    common::send(
        &url,
        dir.path(),
        "o_demo_user01",
        "还有别的优惠券吗",
        "91003",
    );
    common::send(&url, dir.path(), "o_demo_user02", "最近有折扣吗", "91004");

    let start = Instant::now();
    let mut got = coupons(dir.path());
    while got.len() < 2 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
        got = coupons(dir.path());
    }
    // Anything late would show up by now.
    std::thread::sleep(Duration::from_millis(500));
    got = coupons(dir.path());
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "o_demo_user01".to_owned(),
                "陈静，送您一张满100减20优惠券：QUAN-o_demo_user01".to_owned()
            ),
            (
                "o_demo_user02".to_owned(),
                "王浩然，送您一张满100减20优惠券：QUAN-o_demo_user02".to_owned()
            ),
        ],
        "one coupon each, in their own name; the second question is inside the cooldown"
    );
    let r = report(&server, &id);
    let occ = &r["occurrences"][0];
    assert_eq!(
        (occ["audience"].as_u64(), occ["sent"].as_u64()),
        (Some(2), Some(2)),
        "{r}"
    );
}

#[test]
fn a_user_who_asks_about_coupons_is_tagged_in_wechat_and_a_campaign_to_that_tag_reaches_only_them()
{
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, url, server) = demo_serve(dir.path());
    let stand_in = std::fs::read_to_string(dir.path().join("fake-wechat.url")).expect("url");
    ureq::post(&format!("{}/_fake/tags", stand_in.trim()))
        .header("content-type", "application/json")
        .send(serde_json::json!({"name": "意向客户"}).to_string())
        .expect("a tag in the stand-in");

    let (ok, _, err) = campaign(
        &server,
        &[
            "add",
            "--name",
            "打标",
            "--on-keyword",
            "优惠券",
            "--audience",
            "all",
            "--channel",
            "tag",
            "--text",
            "{{name}}",
        ],
    );
    assert!(!ok && err.contains("tag's name"), "{err}");
    let tagger = add(
        &server,
        &[
            "--name",
            "问券打标",
            "--on-keyword",
            "优惠券",
            "--audience",
            "all",
            "--channel",
            "tag",
            "--text",
            "意向客户",
        ],
    );
    common::send(&url, dir.path(), "o_demo_user03", "有优惠券吗", "92001");
    common::send(&url, dir.path(), "o_demo_user04", "我的快递到哪了", "92002");
    let start = Instant::now();
    loop {
        let r = report(&server, &tagger);
        if r["occurrences"][0]["sent"] == 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "not tagged: {r}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // 客户分层: the tag is an audience now.
    let id = add(
        &server,
        &[
            "--name",
            "意向客户专享",
            "--at",
            &soon(),
            "--audience",
            "tag:意向客户",
            "--channel",
            "template",
            "--template-id",
            "TPL-3",
            "--text",
            "{{name}}，意向客户专享券已到账",
        ],
    );
    finished_report(&server, &id, Duration::from_secs(30));
    let got: Vec<(String, String)> = stand_in_sent(dir.path())
        .iter()
        .filter(|s| s["api"] == "template")
        .map(|s| {
            (
                s["openid"].as_str().unwrap_or_default().to_owned(),
                s["body"]["data"]["content"]["value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(
            "o_demo_user03".to_owned(),
            "橘子汽水，意向客户专享券已到账".to_owned()
        )]
    );
}
