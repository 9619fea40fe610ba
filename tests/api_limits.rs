//! Rate limits and the access log on the real daemon: per-subject buckets that hold
//! under concurrent load while `/healthz` keeps answering, a per-address limit before
//! authentication, `429` with `Retry-After`, bounded limiter tables, one summary line
//! for a storm of bad tokens, and one access-log line per request.

mod support_api;
mod support_daemon;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support_api::{Site, hash_line, poll, raw_http, try_http};

const SUBJECTS: usize = 20;
const PER_SUBJECT: usize = 100;

fn load_token(i: usize) -> String {
    format!("load-subject-{i:02}-token-0123456789")
}

/// The value of `series` in a Prometheus text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Poll `/healthz` until `stop`; every answer must be a quick 200.
fn watch_health(port: u16, stop: Arc<AtomicBool>, failures: Arc<Mutex<Vec<String>>>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut answered = 0;
        while !stop.load(Ordering::SeqCst) {
            let asked = Instant::now();
            match try_http(port, "GET", "/healthz", None, "") {
                Some((200, _)) if asked.elapsed() < Duration::from_secs(2) => answered += 1,
                other => failures
                    .lock()
                    .unwrap()
                    .push(format!("{other:?} after {:?}", asked.elapsed())),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        answered
    })
}

#[test]
fn each_subjects_limit_holds_under_load_and_healthz_answers_throughout() {
    let site = Site::new();
    let lines: Vec<String> = (0..SUBJECTS)
        .map(|i| hash_line("viewer", &format!("load-{i:02}"), &load_token(i)))
        .collect();
    site.write_tokens(&lines.join("\n"));
    let d = site.start(
        "127.0.0.1",
        &[
            "--subject-rate",
            "60",
            "--address-rate",
            "1000000",
            "--rate-limit-entries",
            "64",
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let health = watch_health(d.port, stop.clone(), failures.clone());
    let started = Instant::now();
    let workers: Vec<_> = (0..SUBJECTS)
        .map(|i| {
            let port = d.port;
            std::thread::spawn(move || {
                let token = load_token(i);
                let mut codes = Vec::new();
                for _ in 0..PER_SUBJECT {
                    let (code, raw) = raw_http(port, "GET", "/v1/status", Some(&token), "").expect("answer");
                    if code == 429 {
                        assert!(raw.to_ascii_lowercase().contains("\r\nretry-after: "), "{raw}");
                    }
                    codes.push(code);
                }
                codes
            })
        })
        .collect();
    let results: Vec<Vec<u16>> = workers.into_iter().map(|w| w.join().expect("worker")).collect();
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let answered = health.join().expect("health watcher");
    assert!(
        failures.lock().unwrap().is_empty(),
        "/healthz failed: {:?}",
        failures.lock().unwrap()
    );
    // Every probe must answer within 2 s (checked above), so a watcher probing back to
    // back answers at least once per 2.1 s of load, whatever the load's length.
    let expected = ((elapsed / 2.1).floor() as usize).max(1);
    assert!(
        answered >= expected,
        "/healthz answered only {answered} times in {elapsed:.1}s of load"
    );

    // Burst 6, then 1 a second: each subject gets at least its burst and at most
    // burst + refill, whatever the other nineteen do.
    let most = 6 + elapsed.ceil() as usize + 1;
    for (i, codes) in results.iter().enumerate() {
        let ok = codes.iter().filter(|c| **c == 200).count();
        assert!(codes.iter().all(|c| *c == 200 || *c == 429), "subject {i}: {codes:?}");
        assert!(
            (6..=most).contains(&ok),
            "subject {i}: {ok} accepted in {elapsed:.1}s (at most {most})"
        );
    }
    let (_, metrics) = d.call("GET", "/metrics", None, "");
    assert_eq!(
        metric(&metrics, "lifeboat_api_rate_limit_keys{table=\"subject\"}"),
        Some(SUBJECTS as f64)
    );
    assert_eq!(
        metric(&metrics, "lifeboat_api_rate_limit_keys{table=\"address\"}"),
        Some(1.0)
    );
}

#[test]
fn a_client_address_is_limited_before_its_token_is_checked() {
    let site = Site::new();
    let d = site.start("127.0.0.1", &["--address-rate", "60"]);
    let codes: Vec<u16> = (0..12).map(|_| d.call("GET", "/v1/status", None, "").0).collect();
    assert_eq!(codes[..6], [401; 6], "{codes:?}");
    assert!(codes[6..].iter().all(|c| *c == 429), "{codes:?}");
    let token = support_api::token_of("viewer-all");
    assert_eq!(
        d.call("GET", "/v1/status", Some(&token), "").0,
        429,
        "a valid token does not skip the address limit"
    );
    assert_eq!(
        d.call("GET", "/healthz", None, "").0,
        200,
        "health probes are never limited"
    );
}

#[test]
fn a_storm_of_bad_tokens_is_one_summary_line_and_every_request_is_in_the_access_log() {
    let site = Site::new();
    let d = site.start("127.0.0.1", &["--address-rate", "1000000", "--log-format", "json"]);
    let bad = "bad-token-that-must-never-be-logged-0001";
    for _ in 0..1000 {
        assert_eq!(d.call("GET", "/v1/jobs", Some(bad), "").0, 401);
    }
    let viewer = support_api::token_of("viewer-ml");
    assert_eq!(d.call("GET", "/v1/status", Some(&viewer), "").0, 200);
    let summarized = poll(Duration::from_secs(15), || {
        d.log().contains("API requests refused: unauthorized")
    });
    assert!(summarized, "no summary line; log tail:\n{}", tail(&d.log()));
    let log = d.log();
    let events: Vec<serde_json::Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let warnings: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["level"] == "WARN" && e["message"].as_str().is_some_and(|m| m.contains("refused")))
        .collect();
    assert!(
        warnings.len() <= 2,
        "one line per interval, not per request: {warnings:?}"
    );
    let summary = warnings
        .iter()
        .find(|w| w["message"].as_str().is_some_and(|m| m.contains("unauthorized")))
        .expect("the summary is a warning");
    assert_eq!(summary["refused"], 1000, "{summary}");
    assert_eq!(summary["addresses"], 1, "{summary}");

    let access: Vec<&serde_json::Value> = events.iter().filter(|e| e["message"] == "api request").collect();
    let refused = access
        .iter()
        .filter(|e| e["status"] == 401 && e["route"] == "/v1/jobs")
        .count();
    assert_eq!(refused, 1000);
    let ok = access
        .iter()
        .find(|e| e["status"] == 200 && e["route"] == "/v1/status")
        .expect("the viewer's request is logged");
    assert_eq!(ok["subject"], "viewer-ml");
    assert_eq!(ok["role"], "viewer:ml");
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["client"], "127.0.0.1");
    assert!(
        ok["latency_ms"].as_f64().is_some() && ok["timestamp"].is_string(),
        "{ok}"
    );
    assert!(!log.contains(bad) && !log.contains(&viewer), "a token reached the log");
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
