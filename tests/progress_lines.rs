//! Progress without a terminal: a long backup writes periodic one-line progress on
//! stderr (a JSON object per line with `--json`), while stdout keeps the one result
//! document.

mod support;

use support::*;

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
