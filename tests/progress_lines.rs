//! Progress without a terminal: a long backup writes periodic one-line progress on
//! stderr (a JSON object per line with `--json`), while stdout keeps the one result
//! document.

mod support;
mod support_daemon;

use std::time::Duration;

use support::*;
use support_daemon::{free_port, poll, try_http};

const VIEWER: &str = "progress-viewer-token-0123456789";

/// A sparse file: gigabytes to read and chunk, nothing on disk, one blob stored.
fn sparse(path: &std::path::Path, len: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

#[test]
fn a_long_json_backup_streams_progress_lines_on_stderr() {
    let repo = Repo::init(&[]);
    let src = repo.scratch("src");
    let len = 3u64 << 30;
    sparse(&src.join("zeros.img"), len);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["--json", "backup"])
        .arg(&src)
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .env("LIFEBOAT_REPO", &repo.path)
        .env("LIFEBOAT_PROGRESS_SECONDS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["snapshot"]["summary"]["bytes_read"], len, "{doc}");

    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty(), "no progress line in a backup of {len} bytes");
    let reports: Vec<&serde_json::Value> = lines.iter().map(|l| &l["progress"]["report"]).collect();
    for (line, r) in lines.iter().zip(&reports) {
        assert_eq!(line["progress"]["operation"], "backup", "{line}");
        assert!(r["bytes_done"].as_u64().unwrap() <= len, "{line}");
    }
    let last = reports.last().unwrap();
    assert_eq!(last["bytes_total"], len, "totals known once the pre-scan ran: {last}");
    assert_eq!(last["files_total"], 1, "{last}");
    assert!(last["bytes_per_second"].as_u64().unwrap() > 0, "{last}");
    assert!(last["eta_seconds"].is_u64(), "{last}");
}

/// The daemon shows a running job's progress with totals and an ETA on `/v1/jobs`, logs
/// it as `job progress` lines, and names the finished job's figures `bytes_read` and,
/// per region, `bytes_added`.
#[test]
fn a_long_daemon_job_shows_totals_and_eta_and_logs_progress() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let len = 3u64 << 30;
    sparse(&root.join("data/zeros.img"), len);
    std::fs::create_dir_all(root.join("plans")).unwrap();
    let line = support_daemon::hash_line("viewer", "viewer", VIEWER);
    std::fs::write(root.join("tokens"), format!("{line}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tokens"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let plan = format!(
        "version = 1\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\
         [regions.a]\naddress = \"{r}/regions/a\"\ncreate = true\n\
         [datasets.big]\npaths = [\"{r}/data\"]\nschedule = \"0 0 * * * *\"\nregions = [\"a\"]\nrpo = \"2h\"\n\
         retention = {{ keep_last = 2 }}\n",
        r = root.display()
    );
    std::fs::write(root.join("plans/site.toml"), plan).unwrap();
    let port = free_port();
    let log = root.join("daemon.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["daemon", "--plans"])
        .arg(root.join("plans"))
        .arg("--state")
        .arg(root.join("state"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--tokens"])
        .arg(root.join("tokens"))
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .env("LIFEBOAT_PROGRESS_SECONDS", "1")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // Never backed up, the dataset is due at once; watch the job while it runs.
    let (mut seen, mut done) = (None, None);
    let finished = poll(Duration::from_secs(120), || {
        let Some((200, body)) = try_http(port, "GET", "/v1/jobs", Some(VIEWER)) else {
            return false;
        };
        let jobs: serde_json::Value = serde_json::from_str(&body).unwrap();
        if let Some(active) = jobs["active"].as_array().and_then(|a| a.first())
            && active["eta_seconds"].is_u64()
        {
            seen = Some(active.clone());
        }
        done = jobs["jobs"]
            .as_array()
            .and_then(|j| j.iter().find(|j| !j["ended"].is_null()))
            .cloned();
        done.is_some()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(finished, "no finished job; log:\n{}", read_log());

    let active = seen.unwrap_or_else(|| panic!("no running job showed an ETA; log:\n{}", read_log()));
    assert_eq!(active["bytes_total"], len, "{active}");
    assert_eq!(active["files_total"], 1, "{active}");
    assert!(active["bytes_done"].as_u64().unwrap() <= len, "{active}");
    assert!(active["bytes_per_second"].as_u64().unwrap() > 0, "{active}");

    let text = read_log();
    let progress: Vec<&str> = text.lines().filter(|l| l.contains("job progress")).collect();
    assert!(!progress.is_empty(), "no progress line in the log:\n{text}");
    assert!(progress.iter().any(|l| l.contains("ETA")), "{progress:#?}");
    let job = done.unwrap();
    assert_eq!(job["outcome"], "success", "{job}");
    assert_eq!(job["bytes_read"], len, "{job}");
    assert!(job["regions"][0]["bytes_added"].as_u64().unwrap() > 0, "{job}");
}
