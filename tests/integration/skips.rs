//! Skips said where they are seen, and counted: a test that returns early (no server, not
//! root, no mount namespace) says so on the real stderr at once (libtest keeps a passing
//! test's `eprintln!` to itself), and when the binary exits it prints how many were
//! skipped and which, so a run that skipped something never looks like a full pass.

use std::io::Write as _;
use std::sync::{Mutex, Once};

/// Each skip: what was skipped and why.
static SKIPPED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
static AT_EXIT: Once = Once::new();

extern "C" fn summary_at_exit() {
    let skipped = SKIPPED.lock().map(|s| s.clone()).unwrap_or_default();
    let _ = std::io::stderr().write_all(summary(&skipped).as_bytes());
}

/// What the binary prints at exit: nothing when nothing was skipped.
pub fn summary(skipped: &[(String, String)]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let mut text = format!(
        "\n*** {} SKIPPED: tests that passed without doing all their work ***\n",
        skipped.len()
    );
    for (what, why) in skipped {
        text.push_str(&format!("***   {what}: {why}\n"));
    }
    text
}

/// Says at once that `what` is skipped, and counts it for the summary at exit.
pub fn record(what: &str, why: &str) {
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain function, once.
        unsafe { libc::atexit(summary_at_exit) };
    });
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let name = test.rsplit("::").next().unwrap_or(&test);
    let what = if what.contains(name) {
        what.to_string()
    } else {
        format!("{what} (in {test})")
    };
    let _ = std::io::stderr().write_all(format!("\n*** SKIPPED {what}: {why} ***\n").as_bytes());
    if let Ok(mut all) = SKIPPED.lock() {
        all.push((what, why.to_string()));
    }
}

#[test]
fn the_summary_counts_every_skip() {
    assert_eq!(summary(&[]), "");
    let two = [
        ("postgres".to_string(), "no pg_ctl".to_string()),
        ("a part of x".to_string(), "cannot mount".to_string()),
    ];
    let text = summary(&two);
    assert!(text.contains("*** 2 SKIPPED"), "{text}");
    assert!(text.contains("postgres: no pg_ctl") && text.contains("a part of x: cannot mount"));
}
