//! The step runner on its own: probes retried until their deadline against a local
//! HTTP server, step timeouts, rollback order, drill versus failover, drill routes,
//! previews and saved reports. Endpoints here are `file`, `command` and `http` (against
//! a local recording server) providers, so nothing outside the test is needed. Every
//! report starts with the preflight's checks; the tests look at the steps after them.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lifeboat::drill::report::{Phase, StepStatus};
use lifeboat::drill::{Mode, Outcome, Report, RunOptions, StepRecord, preview, run_playbook};
use lifeboat::plan::{Plan, validate};

/// Answers the n-th request with `answers[n]` (the last one from then on).
fn serve(answers: Vec<(u16, &'static str)>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let (status, body) = answers[n.min(answers.len() - 1)];
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = (&stream).write_all(reply.as_bytes());
        }
    });
    (url, count)
}

const HEAD: &str = r#"
[key]
env = "LIFEBOAT_DRILL_TEST_NO_PASSWORD"

[regions.a]
address = "memory://drill-a"

[regions.b]
address = "memory://drill-b"
"#;

fn plan(dir: &Path, body: &str) -> Plan {
    let file = dir.join("plan.toml");
    std::fs::write(&file, format!("{HEAD}\n{body}")).unwrap();
    let (plan, diags) = validate(&file);
    let errors: Vec<String> = diags.iter().filter(|d| d.is_error()).map(|d| d.to_string()).collect();
    plan.unwrap_or_else(|| panic!("plan does not validate: {errors:?}"))
}

async fn run(plan: &Plan, dir: &Path, name: &str, mode: Mode) -> Report {
    let opts = RunOptions {
        mode,
        state_dir: dir.join("state"),
        upload: false,
        record_baselines: false,
    };
    run_playbook(plan, name, &opts).await.unwrap().0
}

/// The report's entries after the preflight's, which come first and all passed.
fn after_preflight(report: &Report) -> Vec<&StepRecord> {
    let checks = report.steps.iter().take_while(|s| s.phase == Phase::Preflight).count();
    assert!(checks > 0, "no preflight checks in {report:#?}");
    let (pre, rest) = report.steps.split_at(checks);
    assert!(pre.iter().all(|s| s.status == StepStatus::Passed), "{pre:#?}");
    assert!(rest.iter().all(|s| s.phase != Phase::Preflight), "{rest:#?}");
    rest.iter().collect()
}

fn logging_endpoint(name: &str, log: &Path) -> String {
    format!(
        r#"
[endpoints.{name}]
provider = "command"
command = ["sh", "-c", "echo \"$LIFEBOAT_ENDPOINT $1\" >> {}", "sh"]
targets = {{ a = "A", b = "B" }}
"#,
        log.display()
    )
}

#[tokio::test]
async fn probe_retries_until_the_answer_is_right() {
    let dir = tempfile::tempdir().unwrap();
    let (url, count) = serve(vec![
        (503, "down"),
        (200, r#"{"answer": 6}"#),
        (200, r#"{"answer": 7}"#),
    ]);
    let p = plan(
        dir.path(),
        &format!(
            r#"
[playbooks.p]
rto = "1m"
steps = [{{ kind = "probe", url = "{url}", expect_json = {{ "/answer" = 7 }}, interval = "1s", timeout = "10s" }}]
"#
        ),
    );
    let report = run(&p, dir.path(), "p", Mode::Drill).await;
    assert_eq!(report.outcome, Outcome::Passed, "{report:#?}");
    let steps = after_preflight(&report);
    assert_eq!(steps[0].attempts, Some(3));
    assert!(steps[0].latency_ms.is_some());
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert!(report.rto.measured_ms.is_some() && report.rto.met);
}

#[tokio::test]
async fn probe_gives_up_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (url, count) = serve(vec![(500, "broken")]);
    let p = plan(
        dir.path(),
        &format!(
            r#"
[playbooks.p]
rto = "1m"
steps = [{{ kind = "probe", url = "{url}", interval = "1s", timeout = "3s" }}]
"#
        ),
    );
    let report = run(&p, dir.path(), "p", Mode::Drill).await;
    assert_eq!(report.outcome, Outcome::Failed);
    let step = after_preflight(&report)[0];
    assert_eq!(step.status, StepStatus::Failed);
    assert!((1900..5000).contains(&step.duration_ms), "took {} ms", step.duration_ms);
    assert!(
        count.load(Ordering::SeqCst) >= 3,
        "only {} attempts",
        count.load(Ordering::SeqCst)
    );
    assert!(step.detail.contains("500"), "{}", step.detail);
    assert_eq!(report.rto.measured_ms, None);
}

#[tokio::test]
async fn a_hung_command_fails_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(
        dir.path(),
        r#"
[playbooks.p]
rto = "1m"
steps = [{ kind = "command", command = ["sleep", "10"], timeout = "1s" }]
"#,
    );
    let started = std::time::Instant::now();
    let report = run(&p, dir.path(), "p", Mode::Failover).await;
    assert!(started.elapsed().as_secs() < 4);
    assert_eq!(report.outcome, Outcome::Failed);
    let step = after_preflight(&report)[0];
    assert!(step.detail.contains("timed out"), "{}", step.detail);
}

#[tokio::test]
async fn a_failing_step_undoes_repoints_newest_first_then_runs_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("repoints.log");
    let body = format!(
        r#"{}{}
[playbooks.p]
rto = "1m"
primary = "a"
standby = "b"

[[playbooks.p.steps]]
kind = "repoint"
endpoint = "first"
to = "b"

[[playbooks.p.steps]]
kind = "repoint"
endpoint = "second"
to = "b"

[[playbooks.p.steps]]
kind = "command"
command = ["false"]

[[playbooks.p.steps]]
kind = "wait"
duration = "1s"

[[playbooks.p.rollback]]
kind = "command"
command = ["sh", "-c", "echo rollback >> {}"]
"#,
        logging_endpoint("first", &log),
        logging_endpoint("second", &log),
        log.display()
    );
    let p = plan(dir.path(), &body);
    let report = run(&p, dir.path(), "p", Mode::Failover).await;
    assert_eq!(report.outcome, Outcome::Failed);
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines, "first B\nsecond B\nsecond A\nfirst A\nrollback\n");
    let checked: Vec<&str> = report
        .steps
        .iter()
        .filter(|s| s.phase == Phase::Preflight)
        .map(|s| s.name.as_str())
        .collect();
    for name in [
        "endpoint first to b",
        "endpoint first to a",
        "endpoint second to b",
        "endpoint second to a",
    ] {
        assert!(checked.contains(&name), "{name} not checked: {checked:?}");
    }
    let statuses: Vec<(Phase, StepStatus)> = after_preflight(&report).iter().map(|s| (s.phase, s.status)).collect();
    assert_eq!(
        statuses,
        vec![
            (Phase::Steps, StepStatus::Passed),
            (Phase::Steps, StepStatus::Passed),
            (Phase::Steps, StepStatus::Failed),
            (Phase::Steps, StepStatus::Skipped),
            (Phase::Rollback, StepStatus::Passed),
            (Phase::Rollback, StepStatus::Passed),
            (Phase::Rollback, StepStatus::Passed),
        ]
    );
}

fn file_endpoint_plan(dir: &Path, drill_route: bool) -> (Plan, PathBuf) {
    let upstream = dir.join("upstream.conf");
    let drill = if drill_route {
        format!("drill = {{ path = \"{}\" }}\n", dir.join("drill.conf").display())
    } else {
        String::new()
    };
    let body = format!(
        r#"
[endpoints.gw]
provider = "file"
path = "{}"
template = "upstream gw {{ {{target}} }}  # {{region}}\n"
check = ["test", "-s", "{}"]
{drill}targets = {{ a = "server 10.0.0.1:80;", b = "server 10.0.0.2:80;" }}

[playbooks.p]
rto = "1m"
primary = "a"
standby = "b"
steps = [
  {{ kind = "repoint", endpoint = "gw", to = "b" }},
  {{ kind = "probe", command = ["grep", "-q", "10.0.0.2", "{}"] }},
]
"#,
        upstream.display(),
        upstream.display(),
        dir.join(if drill_route { "drill.conf" } else { "upstream.conf" })
            .display()
    );
    (plan(dir, &body), upstream)
}

#[tokio::test]
async fn a_passing_drill_puts_traffic_back_and_a_failover_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let (p, upstream) = file_endpoint_plan(dir.path(), false);
    std::fs::write(&upstream, "upstream gw { server 10.0.0.1:80; }  # a\n").unwrap();
    let report = run(&p, dir.path(), "p", Mode::Drill).await;
    assert_eq!(report.outcome, Outcome::Passed, "{report:#?}");
    assert_eq!(after_preflight(&report).last().unwrap().phase, Phase::PointBack);
    assert_eq!(
        std::fs::read_to_string(&upstream).unwrap(),
        "upstream gw { server 10.0.0.1:80; }  # a\n"
    );

    let report = run(&p, dir.path(), "p", Mode::Failover).await;
    assert_eq!(report.outcome, Outcome::Passed);
    assert!(after_preflight(&report).iter().all(|s| s.phase == Phase::Steps));
    assert_eq!(
        std::fs::read_to_string(&upstream).unwrap(),
        "upstream gw { server 10.0.0.2:80; }  # b\n"
    );
}

#[tokio::test]
async fn a_drill_with_a_drill_route_leaves_production_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (p, upstream) = file_endpoint_plan(dir.path(), true);
    std::fs::write(&upstream, "production\n").unwrap();
    let report = run(&p, dir.path(), "p", Mode::Drill).await;
    assert_eq!(report.outcome, Outcome::Passed, "{report:#?}");
    assert_eq!(std::fs::read_to_string(&upstream).unwrap(), "production\n");
    let drill = std::fs::read_to_string(dir.path().join("drill.conf")).unwrap();
    assert!(drill.contains("10.0.0.1"), "drill route back on the primary: {drill}");
}

#[tokio::test]
async fn a_failed_check_puts_the_old_file_back() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = dir.path().join("upstream.conf");
    std::fs::write(&upstream, "old\n").unwrap();
    let body = format!(
        r#"
[endpoints.gw]
provider = "file"
path = "{}"
check = ["false"]
targets = {{ a = "x", b = "y" }}

[playbooks.p]
rto = "1m"
steps = [{{ kind = "repoint", endpoint = "gw", to = "b" }}]
"#,
        upstream.display()
    );
    let p = plan(dir.path(), &body);
    let report = run(&p, dir.path(), "p", Mode::Failover).await;
    assert_eq!(report.outcome, Outcome::Failed);
    let step = after_preflight(&report)[0];
    assert!(step.detail.contains("old file is back"), "{}", step.detail);
    assert_eq!(std::fs::read_to_string(&upstream).unwrap(), "old\n");
}

#[tokio::test]
async fn reports_are_saved_as_json_and_markdown() {
    let dir = tempfile::tempdir().unwrap();
    let (p, upstream) = file_endpoint_plan(dir.path(), false);
    std::fs::write(&upstream, "x\n").unwrap();
    let opts = RunOptions {
        mode: Mode::Drill,
        state_dir: dir.path().join("state"),
        upload: false,
        record_baselines: false,
    };
    let (report, path) = run_playbook(&p, "p", &opts).await.unwrap();
    let saved: Report = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved, report);
    let md = std::fs::read_to_string(path.with_extension("md")).unwrap();
    assert!(md.contains("## Timeline") && md.contains("RTO:"), "{md}");
}

#[test]
fn preview_lists_actions_and_what_a_failure_undoes() {
    let dir = tempfile::tempdir().unwrap();
    let (p, upstream) = file_endpoint_plan(dir.path(), false);
    let playbook = lifeboat::drill::run::find_playbook(&p, "p").unwrap();
    let lines = preview::preview(&p, playbook, Mode::Failover).unwrap();
    let text = lines.join("\n");
    assert!(text.contains("re-point gw to b"), "{text}");
    assert!(text.contains("if a step fails: re-point gw back to a"), "{text}");
    assert!(!upstream.exists(), "a preview must change nothing");
    assert!(lifeboat::drill::run::find_playbook(&p, "nope").is_err());
}

/// Records each request's first line and body, answering a `GET` (the preflight's
/// read) with 200 and every other request with `status`.
fn recording_server(status: u16) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let (mut first, mut line, mut length) = (String::new(), String::new(), 0usize);
            let _ = reader.read_line(&mut first);
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0u8; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            log.lock()
                .unwrap()
                .push(format!("{} {}", first.trim(), String::from_utf8_lossy(&body)));
            let status = if first.starts_with("GET ") { 200 } else { status };
            let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            let _ = (&stream).write_all(reply.as_bytes());
        }
    });
    (url, seen)
}

fn http_endpoint_plan(dir: &Path, url: &str) -> Plan {
    plan(
        dir,
        &format!(
            r#"
[endpoints.gw]
provider = "http"
url = "{url}admin/upstream"
method = "PUT"
body = "{{\"upstream\": \"{{target}}\"}}"
expect_status = 200
targets = {{ a = "10.0.0.1:80", b = "10.0.0.2:80" }}

[playbooks.p]
rto = "1m"
primary = "a"
standby = "b"
steps = [{{ kind = "repoint", endpoint = "gw", to = "b" }}]
"#
        ),
    )
}

#[tokio::test]
async fn http_endpoint_calls_the_admin_api_and_a_drill_calls_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = recording_server(200);
    let report = run(&http_endpoint_plan(dir.path(), &url), dir.path(), "p", Mode::Drill).await;
    assert_eq!(report.outcome, Outcome::Passed, "{report:#?}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
    // The preflight's read for each region the run may point it at, then the changes.
    assert!(
        seen[..2].iter().all(|r| r.starts_with("GET /admin/upstream")),
        "{seen:?}"
    );
    assert!(
        seen[2].starts_with("PUT /admin/upstream") && seen[2].contains(r#"{"upstream": "10.0.0.2:80"}"#),
        "{seen:?}"
    );
    assert!(seen[3].contains(r#"{"upstream": "10.0.0.1:80"}"#), "{seen:?}");
}

#[tokio::test]
async fn http_endpoint_with_an_unexpected_status_fails_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = recording_server(500);
    let report = run(&http_endpoint_plan(dir.path(), &url), dir.path(), "p", Mode::Drill).await;
    assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
    let steps = after_preflight(&report);
    assert_eq!((steps[0].phase, steps[0].status), (Phase::Steps, StepStatus::Failed));
    assert!(steps[0].detail.contains("answered 500"), "{}", steps[0].detail);
    // The failed call may have changed the gateway, so it is undone too.
    assert_eq!(steps[1].name, "gw back to a", "{steps:#?}");
    let puts = seen.lock().unwrap().iter().filter(|r| r.starts_with("PUT ")).count();
    assert_eq!(puts, 2);
}

#[tokio::test]
async fn notify_step_posts_its_message_to_the_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = recording_server(200);
    let p = plan(
        dir.path(),
        &format!(
            r#"
[playbooks.p]
rto = "1m"
steps = [{{ kind = "notify", message = "failing over inference", url = "{url}hook" }}]
"#
        ),
    );
    let report = run(&p, dir.path(), "p", Mode::Drill).await;
    assert_eq!(report.outcome, Outcome::Passed, "{report:#?}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("POST /hook") && seen[0].contains("failing over inference"),
        "{seen:?}"
    );
}
