//! The exit-code contract, command by command: each command against each class of
//! error (missing repository, wrong password, unreachable region, bad address, bad
//! plan, bad playbook, closed pipe) ends with the documented code and one `error:`
//! line that names the problem. Everything is local: an unreachable region is an S3
//! address on a loopback port nothing listens on.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

mod servers;
mod support_s3;

const PASSWORD: &str = "exit-code-test-password";
/// The plan's `[key]` variable; the command-line sources must win over it.
const PLAN_KEY_VAR: &str = "LIFEBOAT_EXIT_TEST_KEY";

fn lifeboat(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("LIFEBOAT_PASSWORD")
        .env_remove("LIFEBOAT_REPO")
        .env_remove("RUST_LOG")
        .env("AWS_ACCESS_KEY_ID", "exit-test")
        .env("AWS_SECRET_ACCESS_KEY", "exit-test-secret");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run lifeboat")
}

/// Asserts the exit code and that the one `error:` line contains `needle`.
fn expect(out: &Output, code: i32, needle: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{what}: stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{what}: expected one error line:\n{stderr}");
    assert!(errors[0].contains(needle), "{what}: `{needle}` not in {:?}", errors[0]);
    assert!(
        errors[0].len() < 400,
        "{what}: error line of {} chars: {}",
        errors[0].len(),
        errors[0]
    );
}

/// An S3 address whose endpoint is a loopback port nothing listens on.
fn closed_port_s3(bucket: &str) -> (String, u16) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    (
        format!("s3://{bucket}/p?endpoint=http://127.0.0.1:{port}&region=us-east-1"),
        port,
    )
}

/// A local repository with one snapshot of `files` small files.
fn repo_with_snapshot(files: usize) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for i in 0..files {
        std::fs::write(data.join(format!("file-{i:05}.txt")), i.to_string()).unwrap();
    }
    let pw = [("LIFEBOAT_PASSWORD", PASSWORD)];
    expect_ok(&lifeboat(dir.path(), &["init", "--repo", "repo"], &pw));
    expect_ok(&lifeboat(dir.path(), &["-q", "backup", "--repo", "repo", "data"], &pw));
    let repo = dir.path().join("repo");
    (dir, repo)
}

fn expect_ok(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Repository commands that need an existing repository, with their other arguments.
fn repo_commands() -> Vec<Vec<&'static str>> {
    vec![
        vec!["snapshots"],
        vec!["ls", "latest"],
        vec!["backup", "data"],
        vec!["restore", "latest", "--target", "out"],
        vec!["check"],
        vec!["forget", "--keep-last", "1"],
        vec!["prune"],
        vec!["unlock"],
        vec!["key", "list"],
        vec!["repair", "index", "--dry-run"],
    ]
}

fn with_repo<'a>(cmd: &[&'a str], repo: &'a str) -> Vec<&'a str> {
    let mut args = cmd.to_vec();
    let at = if cmd[0] == "key" || cmd[0] == "repair" { 2 } else { 1 };
    args.splice(at..at, ["--repo", repo]);
    args
}

#[test]
fn repository_commands_exit_2_on_a_missing_repository_a_wrong_password_and_a_bad_address() {
    let (dir, repo) = repo_with_snapshot(3);
    let repo = repo.to_str().unwrap().to_string();
    let missing = dir.path().join("nothing-here");
    let missing = missing.to_str().unwrap();
    for cmd in repo_commands() {
        let what = format!("{cmd:?}");
        let out = lifeboat(
            dir.path(),
            &with_repo(&cmd, missing),
            &[("LIFEBOAT_PASSWORD", PASSWORD)],
        );
        expect(&out, 2, "no repository at", &format!("{what} on a missing repository"));
        let out = lifeboat(dir.path(), &with_repo(&cmd, &repo), &[("LIFEBOAT_PASSWORD", "wrong")]);
        expect(
            &out,
            2,
            "wrong password for repository",
            &format!("{what} with a wrong password"),
        );
        let out = lifeboat(
            dir.path(),
            &with_repo(&cmd, "ftp://host/x"),
            &[("LIFEBOAT_PASSWORD", PASSWORD)],
        );
        expect(&out, 2, "unknown scheme", &format!("{what} on ftp://"));
    }
    let out = lifeboat(
        dir.path(),
        &["init", "--repo", "ftp://host/x"],
        &[("LIFEBOAT_PASSWORD", PASSWORD)],
    );
    expect(&out, 2, "unknown scheme", "init on ftp://");
}

#[test]
fn repository_commands_name_a_refused_connection_with_host_and_port() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let (addr, port) = closed_port_s3("gone");
    let server = format!("connection refused at 127.0.0.1:{port}");
    for cmd in [vec!["snapshots"], vec!["backup", "data"], vec!["init"]] {
        let out = lifeboat(dir.path(), &with_repo(&cmd, &addr), &[("LIFEBOAT_PASSWORD", PASSWORD)]);
        expect(&out, 1, &server, &format!("{cmd:?} on a closed port"));
        let line = String::from_utf8_lossy(&out.stderr);
        assert!(line.contains("endpoint="), "the fix is named: {line}");
    }
}

#[test]
fn a_closed_stdout_ends_output_quietly_with_the_commands_own_code() {
    let (dir, repo) = repo_with_snapshot(4000);
    for json in [false, true] {
        let mut args = vec!["ls", "--repo", repo.to_str().unwrap(), "latest"];
        if json {
            args.insert(0, "--json");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .args(&args)
            .current_dir(dir.path())
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        // The reader is gone now, with most of the listing still unwritten.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "json={json}: {stderr}");
        assert!(stderr.is_empty(), "json={json}: nothing on stderr, got {stderr}");
    }
}

/// A plan in a temporary folder: regions `a` and `b` at the given addresses, one dataset,
/// a command endpoint that records re-points in `moved.log`, and a re-point-only playbook.
struct PlanDir {
    dir: TempDir,
}

impl PlanDir {
    fn new(a: &str, b: &str) -> PlanDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/weights.bin"), b"some weights").unwrap();
        let log = dir.path().join("moved.log");
        let plan = format!(
            r#"version = 1
[key]
env = "{PLAN_KEY_VAR}"
[regions.a]
address = "{a}"
create = true
[regions.b]
address = "{b}"
create = true
[datasets.docs]
paths = ["data"]
schedule = "@hourly"
regions = ["a", "b"]
rpo = "2h"
retention = {{ keep_last = 3 }}
[endpoints.gw]
provider = "command"
command = ["sh", "-c", "echo \"$LIFEBOAT_ENDPOINT $1\" >> {}", "sh"]
targets = {{ a = "A", b = "B" }}
[playbooks.move]
rto = "1m"
primary = "a"
standby = "b"
steps = [{{ kind = "repoint", endpoint = "gw", to = "b" }}]
"#,
            log.display()
        );
        std::fs::write(dir.path().join("plan.toml"), plan).unwrap();
        PlanDir { dir }
    }

    fn local() -> PlanDir {
        PlanDir::new("regions/a", "regions/b")
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        lifeboat(self.dir.path(), args, env)
    }

    /// With the plan's own password source set.
    fn run_ok_key(&self, args: &[&str]) -> Output {
        self.run(args, &[(PLAN_KEY_VAR, PASSWORD)])
    }

    fn moved(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moved.log")).unwrap_or_default()
    }
}

/// Every plan command with its arguments.
fn plan_commands() -> Vec<Vec<&'static str>> {
    vec![
        vec!["plan", "plan.toml"],
        vec!["apply", "plan.toml"],
        vec!["verify", "--plan", "plan.toml"],
        vec!["sync", "--plan", "plan.toml"],
        vec!["restore", "--plan", "plan.toml", "--dataset", "docs", "--target", "out"],
        vec!["drill", "--plan", "plan.toml", "move"],
        vec!["failover", "--plan", "plan.toml", "move", "--dry-run"],
        vec!["failover", "--plan", "plan.toml", "move", "--confirm"],
    ]
}

#[test]
fn plan_commands_exit_2_on_a_wrong_password_before_changing_anything() {
    let p = PlanDir::local();
    expect_ok(&p.run_ok_key(&["apply", "plan.toml"]));
    for cmd in plan_commands() {
        let what = format!("{cmd:?}");
        // LIFEBOAT_PASSWORD wins over the plan's [key], which holds the right one.
        let wrong_env = [(PLAN_KEY_VAR, PASSWORD), ("LIFEBOAT_PASSWORD", "wrong")];
        expect(&p.run(&cmd, &wrong_env), 2, "wrong password for region a", &what);
        std::fs::write(p.dir.path().join("wrong.pw"), "wrong\n").unwrap();
        let mut with_file = vec!["--password-file", "wrong.pw"];
        with_file.extend(&cmd);
        expect(
            &p.run(&with_file, &[(PLAN_KEY_VAR, PASSWORD)]),
            2,
            "--password-file",
            &what,
        );
    }
    assert_eq!(
        p.moved(),
        "",
        "a wrong password must stop the failover before any re-point"
    );
    // The right password from the command line opens a plan whose [key] is unset.
    std::fs::write(p.dir.path().join("right.pw"), format!("{PASSWORD}\n")).unwrap();
    let out = p.run(&["--password-file", "right.pw", "plan", "plan.toml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn plan_commands_exit_2_on_a_bad_plan_or_playbook() {
    let p = PlanDir::local();
    std::fs::write(
        p.dir.path().join("bad.toml"),
        "version = 1\n[regions.a]\naddres = \"x\"\n",
    )
    .unwrap();
    for cmd in plan_commands() {
        let args: Vec<&str> = cmd
            .iter()
            .map(|a| if *a == "plan.toml" { "bad.toml" } else { a })
            .collect();
        expect(&p.run_ok_key(&args), 2, "bad.toml has", &format!("{args:?}"));
    }
    for cmd in [
        vec!["drill"],
        vec!["failover", "--confirm"],
        vec!["failover", "--dry-run"],
    ] {
        let mut args = cmd.clone();
        args.extend(["--plan", "plan.toml", "nosuch"]);
        expect(
            &p.run_ok_key(&args),
            2,
            "has no playbook `nosuch` — it has: move",
            &format!("{args:?}"),
        );
    }
    let out = p.run_ok_key(&["failover", "--plan", "plan.toml", "move"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--dry-run") && stderr.contains("--confirm"), "{stderr}");
    assert_eq!(p.moved(), "");
}

#[test]
fn plan_names_apply_for_regions_not_created_yet() {
    let p = PlanDir::local();
    let out = p.run_ok_key(&["plan", "plan.toml"]);
    assert_eq!(out.status.code(), Some(4));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("no repository there yet — `lifeboat apply plan.toml` creates it"),
        "{text}"
    );
    assert!(!text.contains("lifeboat init"), "{text}");
    assert!(text.contains("not yet"), "{text}");
}

#[test]
fn plan_commands_on_unreachable_regions() {
    let (a, port) = closed_port_s3("region-a");
    let (b, _) = closed_port_s3("region-b");
    let p = PlanDir::new(&a, &b);
    let refused = format!("connection refused at 127.0.0.1:{port}");
    let out = p.run_ok_key(&["plan", "plan.toml"]);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&refused));
    let out = p.run_ok_key(&["sync", "--plan", "plan.toml"]);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    let out = p.run_ok_key(&["apply", "plan.toml"]);
    expect(&out, 1, "could not be backed up to any region", "apply");
    assert!(String::from_utf8_lossy(&out.stdout).contains("connection refused at 127.0.0.1:"));
    // A re-point-only failover moves traffic but cannot store its report: not a success.
    let out = p.run_ok_key(&["failover", "--plan", "plan.toml", "move", "--confirm"]);
    expect(&out, 1, "could not be stored in any region", "failover");
    assert_eq!(p.moved(), "gw B\n");
}

/// Against a real S3 server (SeaweedFS from `tests/run.sh`): a wrong secret is named as
/// rejected credentials, with the server's host and port and the fix, on one short line.
#[test]
fn a_wrong_s3_secret_is_named_with_server_and_fix() {
    let Some(env) = support_s3::WeedEnv::from_env("a_wrong_s3_secret_is_named_with_server_and_fix") else {
        assert!(
            std::env::var_os("LIFEBOAT_REQUIRE_SERVERS").is_none(),
            "LIFEBOAT_REQUIRE_SERVERS is set but the S3 servers are not"
        );
        return;
    };
    let bucket = env.new_bucket(0, "exit-creds", false);
    let addr = env.address(0, &bucket, "repo");
    let server = env.regions[0].endpoint.trim_start_matches("http://").to_string();
    let out = env.lifeboat(&["init", "--repo", &addr]);
    expect_ok(&out);
    let out = env.lifeboat_with(&["snapshots", "--repo", &addr], "not-the-secret");
    expect(
        &out,
        1,
        &format!("credentials rejected (SignatureDoesNotMatch or unknown access key) at {server}"),
        "snapshots",
    );
    expect(&out, 1, "AWS_SECRET_ACCESS_KEY", "snapshots");
}
