//! Alerts (issue 15): `[notify]` pings healthchecks, posts a webhook and publishes to
//! ntfy, against real HTTP receivers on 127.0.0.1: one that records what it is sent, one
//! that is down, one too slow, one answering 500. A notification that fails is retried,
//! recorded, and never changes the verdict; secrets in urls are recorded redacted.

use std::time::Duration;

use super::receiver::receiver;
use super::*;

const HC_UUID: &str = "5ec4e7-uuid-of-the-check";
const TOKEN: &str = "webhook-token-s3cr3t";

/// A drill of one step (`exec` of `run`) notifying every channel at `base`.
fn notifying(base: &str, on: &str, run: &str) -> Drill {
    pb("alerts")
        .secret("hc", "HC_UUID")
        .secret("token", "HOOK_TOKEN")
        .table("notify", "on", raw(on))
        .table("notify", "healthchecks", format!("{base}/ping/{{{{ secrets.hc }}}}").as_str())
        .table(
            "notify",
            "webhook",
            raw(format!(
                r#"{{ url = "{base}/hook", headers = {{ Authorization = "Bearer {{{{ secrets.token }}}}" }} }}"#
            )),
        )
        .table("notify", "ntfy", format!("{base}/drills").as_str())
        .table("notify", "timeout", "1s")
        .step(exec("work", run))
        .drill()
        .env("HC_UUID", HC_UUID)
        .env("HOOK_TOKEN", TOKEN)
}

/// What the run recorded of its notifications: (channel, event, delivered, attempts).
fn notifications(out: &Outcome) -> Vec<(String, String, bool, u64)> {
    let record = out.record();
    record["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["channel"].as_str().unwrap().to_string(),
                n["event"].as_str().unwrap().to_string(),
                n["delivered"].as_bool().unwrap(),
                n["attempts"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// No secret in any file the run left, nor in what it printed.
fn no_secret_left(out: &Outcome) {
    for (path, text) in all_files(&out.path().join("artifacts")) {
        for secret in [HC_UUID, TOKEN] {
            assert!(!text.contains(secret), "{secret} is in {}", path.display());
        }
    }
    assert!(!out.stderr.contains(HC_UUID) && !out.stderr.contains(TOKEN));
}

#[test]
fn a_passing_drill_notifies_start_and_success_on_every_channel() {
    let r = receiver(200, Duration::ZERO);
    let out = notifying(&r.base, r#"["start", "success", "failure"]"#, "true").run();
    let out = out.expect_code(0);
    let lines: Vec<String> = r.requests().iter().map(|q| q.line.clone()).collect();
    let want = [
        format!("POST /ping/{HC_UUID}/start HTTP/1.1"),
        "POST /hook HTTP/1.1".into(),
        "POST /drills HTTP/1.1".into(),
        format!("POST /ping/{HC_UUID} HTTP/1.1"),
        "POST /hook HTTP/1.1".into(),
        "POST /drills HTTP/1.1".into(),
    ];
    assert_eq!(lines, want);
    let hook = &r.requests()[4];
    assert_eq!(
        hook.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let body: Value = serde_json::from_str(&hook.body).unwrap();
    assert_eq!(body["status"], "passed");
    assert_eq!(body["drill"], "alerts");
    assert_eq!(body["event"], "success");
    assert_has(
        body["text"].as_str().unwrap(),
        "restore drill `alerts`: passed",
        "text",
    );
    assert!(body["report"].as_str().unwrap().ends_with(".md"), "{body}");
    let ntfy = &r.requests()[5];
    assert_eq!(ntfy.header("title"), Some("restore drill alerts: success"));
    let all_delivered = notifications(&out).iter().all(|n| n.2 && n.3 == 1);
    assert!(all_delivered, "{:?}", notifications(&out));
    assert_eq!(notifications(&out).len(), 6);
    let url = out.record()["notifications"][0]["url"].clone();
    assert_eq!(url, format!("{}/ping/***/start", r.base));
    no_secret_left(&out);
}

#[test]
fn a_failing_drill_pings_fail_with_its_summary_by_default() {
    let r = receiver(200, Duration::ZERO);
    let out = notifying(&r.base, r#"["failure"]"#, "false")
        .run()
        .expect_code(1);
    let requests = r.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(
        requests[0].line,
        format!("POST /ping/{HC_UUID}/fail HTTP/1.1")
    );
    let summary = out.record()["summary"].as_str().unwrap().to_string();
    assert!(summary.starts_with("failed"), "{summary}");
    assert_eq!(requests[0].body, summary);
    assert_eq!(requests[2].header("priority"), Some("high"));
    assert_eq!(requests[2].body, summary);
}

#[test]
fn notifications_that_fail_are_recorded_and_never_change_the_verdict() {
    let down = format!("http://127.0.0.1:{}", free_port());
    let slow = receiver(200, Duration::from_secs(3));
    let broken = receiver(500, Duration::ZERO);
    for (base, code, run) in [
        (down.as_str(), 0, "true"),
        (slow.base.as_str(), 1, "false"),
        (broken.base.as_str(), 0, "true"),
    ] {
        let out = notifying(base, r#"["success", "failure"]"#, run).run();
        let out = out.expect_code(code);
        let seen = notifications(&out);
        assert_eq!(seen.len(), 3, "{seen:?}");
        for (channel, _, delivered, attempts) in &seen {
            assert!(!delivered, "{channel} to {base}");
            assert_eq!(*attempts, 3, "{channel} to {base}");
        }
        let record = out.record();
        let error = record["notifications"][0]["error"].as_str().unwrap();
        assert_has(error, "(after 3 attempts)", "the error");
        let warned = record["warnings"].as_array().unwrap();
        assert!(
            warned
                .iter()
                .any(|w| w.as_str().unwrap().contains("was not delivered"))
        );
        no_secret_left(&out);
    }
    // The one answering 500 was asked three times for each channel.
    assert_eq!(broken.requests().len(), 9);
    let status = |out: &Value| out["notifications"][0]["status"].clone();
    let out = notifying(&broken.base, r#"["success"]"#, "true").run();
    assert_eq!(status(&out.record()), 500);
}

/// A token written into a channel's url itself (a literal, not from `[secrets]`: ntfy's
/// `?auth=`, a webhook's `?token=`) reaches the receiver, and is `***` in the record,
/// its warnings, every report and the terminal, whether the notification was delivered
/// (a receiver answering 500 here) or not; so is one in an `http` step's url.
#[test]
fn a_token_in_a_channel_url_is_sent_and_shown_nowhere() {
    const HOOK: &str = "Lit-Hook-Tok3n";
    const NTFY: &str = "tk_LitNtfyTok";
    const KEY: &str = "Lit-Api-K3y";
    let r = receiver(500, Duration::ZERO);
    let out = pb("tokens")
        .table("notify", "on", raw(r#"["success"]"#))
        .table(
            "notify",
            "webhook",
            raw(format!(r#"{{ url = "{}/hook?token={HOOK}" }}"#, r.base)),
        )
        .table(
            "notify",
            "ntfy",
            format!("{}/drills?auth={NTFY}", r.base).as_str(),
        )
        .table("notify", "timeout", "1s")
        .table(
            "report",
            "formats",
            list(&["markdown", "html", "junit", "prometheus"]),
        )
        .step(
            http("probe", &format!("{}/health?x=1&api_key={KEY}", r.base))
                .set("expect_status", 500),
        )
        .run()
        .expect_code(0);
    let lines: Vec<String> = r.requests().iter().map(|q| q.line.clone()).collect();
    assert!(
        lines.iter().any(|l| l.contains(&format!("?token={HOOK}"))),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains(&format!("?auth={NTFY}"))),
        "{lines:?}"
    );
    let record = out.record();
    assert_eq!(
        record["notifications"][0]["url"],
        format!("{}/hook?token=***", r.base)
    );
    assert_eq!(
        out.output("probe", "url"),
        format!("{}/health?x=1&api_key=***", r.base).as_str()
    );
    let written = everything_written(&out).into_iter();
    for (what, text) in written.filter(|(p, _)| !p.ends_with("playbook.toml")) {
        for token in [HOOK, NTFY, KEY] {
            assert!(!text.contains(token), "{token} is in {what}:\n{text}");
        }
    }
}
