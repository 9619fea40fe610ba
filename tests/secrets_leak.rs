//! Secrets stay secret, end to end: the quick start, a drill with a command step and
//! webhooks to a local listener, a failed verification that fires the alert webhook, a
//! refused plan, and a daemon serving `/v1/status` all run with known secret values in
//! Lifeboat's environment (repository password, `AWS_SECRET_ACCESS_KEY`, a TSIG secret,
//! a webhook token). Every stdout and stderr, log, report and state file is then
//! searched for those values: none may appear. A command step that prints its
//! environment sees only the allowlist, its `LIFEBOAT_*` variables and what its `env`
//! names. Local repository objects, reports and the daemon's state folder are owner-only.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support_daemon;

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");
const PASSWORD: &str = "leak-test-repository-passphrase-7Q2";
const AWS_SECRET: &str = "AWSsecretLEAK0000000000000000000000000001";
const TSIG_SECRET: &str = "dHNpZy1sZWFrLXRlc3Qtc2VjcmV0LTAwMDE=";
const HOOK_TOKEN: &str = "hooktokenLEAK4242";
const VIEWER: &str = "viewer-token-leak-test-000";
const SECRETS: [&str; 4] = [PASSWORD, AWS_SECRET, TSIG_SECRET, HOOK_TOKEN];

/// Requests a local webhook listener received: request line and body.
type Received = Arc<Mutex<Vec<String>>>;

fn listener() -> (u16, Received) {
    let socket = TcpListener::bind("127.0.0.1:0").expect("bind a listener");
    let port = socket.local_addr().expect("local address").port();
    let received: Received = Arc::default();
    let log = received.clone();
    std::thread::spawn(move || {
        for stream in socket.incoming().flatten() {
            if let Some(request) = read_request(stream) {
                log.lock().expect("listener log").push(request);
            }
        }
    });
    (port, received)
}

fn read_request(mut stream: TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).ok()?;
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length || n == 0 {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                let first = text.lines().next().unwrap_or("").to_string();
                return Some(format!("{first}\n{}", &text[end + 4..]));
            }
        }
        if n == 0 {
            return None;
        }
    }
}

/// The quick start's plan and data in `root/examples`, plus a playbook whose command
/// steps show their environment and whose notify steps reach the listener.
fn site(root: &Path, port: u16) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples = root.join("examples");
    copy_tree(&repo.join("examples/data"), &examples.join("data"));
    std::fs::create_dir_all(examples.join(".run")).expect("run folder");
    let mut plan = std::fs::read_to_string(repo.join("examples/quickstart.toml")).expect("quick start plan");
    plan.push_str(&format!(
        r#"
[alerts]
webhook = {{ env = "ALERT_WEBHOOK_URL" }}

[playbooks.leak-check]
rto = "5m"
primary = "a"
standby = "b"
steps = [
  {{ kind = "command", command = ["sh", "-c", "env > \"$LEAK_ENV_DUMP\""], env = ["PASSED_OK", "LEAK_ENV_DUMP"] }},
  {{ kind = "command", command = ["env"] }},
  {{ kind = "notify", message = "drill {{playbook}} reached the notify step", url = {{ env = "ALERT_WEBHOOK_URL" }} }},
  {{ kind = "notify", message = "plain", url = "http://127.0.0.1:{port}/plain?token={HOOK_TOKEN}" }},
]
"#
    ));
    let file = examples.join("quickstart.toml");
    std::fs::write(&file, plan).expect("write the plan");
    file
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// A refused plan that quotes every secret it could: credentials in an address, a
/// webhook with a token, an inline TSIG secret.
fn refused_plan(dir: &Path) -> PathBuf {
    let text = format!(
        r#"version = 1
[key]
env = "LIFEBOAT_PASSWORD"
[regions.a]
address = "s3://AKIDLEAKTEST:{AWS_SECRET}@bucket/prefix?endpoint=http://127.0.0.1:1"
[datasets.d]
paths = ["."]
schedule = "@hourly"
regions = ["a"]
rpo = "2h"
retention = {{ keep_last = 1 }}
[alerts]
webhook = "https://hook:{HOOK_TOKEN}@hooks.example.com/x?token={HOOK_TOKEN}"
[endpoints.dns]
provider = "dns"
server = "127.0.0.1:53"
zone = "example.test."
record = "api.example.test."
tsig_key_name = "k"
tsig_secret = "{TSIG_SECRET}"
targets = {{ a = "10.0.0.1" }}
"#
    );
    let file = dir.join("refused.toml");
    std::fs::write(&file, text).expect("write the refused plan");
    file
}

fn lifeboat(root: &Path, port: u16, args: &[&str]) -> Output {
    command(root, port).args(args).output().expect("run lifeboat")
}

/// `lifeboat` with every secret in its environment, run from `root`.
fn command(root: &Path, port: u16) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(root)
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .env("AWS_ACCESS_KEY_ID", "AKIDLEAKTEST")
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .env("LIFEBOAT_TSIG_SECRET", TSIG_SECRET)
        .env(
            "ALERT_WEBHOOK_URL",
            format!("http://127.0.0.1:{port}/hook/{HOOK_TOKEN}?token={HOOK_TOKEN}"),
        )
        .env("PASSED_OK", "visible-to-the-step")
        .env("LEAK_ENV_DUMP", root.join("env-dump.txt"))
        .env("RUST_LOG", "debug");
    cmd
}

/// Output of one run, kept for the final search.
struct Transcript(Vec<(String, String)>);

impl Transcript {
    fn add(&mut self, what: &str, out: &Output) -> String {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.0.push((what.to_string(), text.clone()));
        text
    }

    fn ok(&mut self, what: &str, out: &Output) -> String {
        let text = self.add(what, out);
        assert!(out.status.success(), "{what} failed: {text}");
        text
    }
}

/// Every file under `dir`, skipping plans (they hold the refused values on purpose), the
/// data backed up, and the environment dump (checked on its own).
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read folder").flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if entry.file_type().expect("file type").is_dir() {
            if name != "data" {
                files(&path, out);
            }
        } else if !name.ends_with(".toml") && name != "env-dump.txt" {
            out.push(path);
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn wait_for(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

fn get(port: u16, path: &str, token: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The daemon over a plans folder holding the quick start and the refused plan; returns
/// its `/v1/status` answer once the refused plan shows under `plan_errors`.
fn daemon_status(root: &Path, port: u16, plan: &Path, refused: &Path) -> String {
    let plans = root.join("plans");
    std::fs::create_dir_all(&plans).expect("plans folder");
    std::fs::copy(plan, plans.join("quickstart.toml")).expect("copy plan");
    std::fs::copy(refused, plans.join("refused.toml")).expect("copy refused plan");
    let line = support_daemon::hash_line("viewer", "viewer", VIEWER);
    std::fs::write(root.join("tokens"), format!("{line}\n")).expect("tokens");
    let api = TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let log = std::fs::File::create(root.join("daemon.log")).expect("daemon log");
    let child = command(root, port)
        .args([
            "daemon",
            "--plans",
            "plans",
            "--state",
            "daemon-state",
            "--tokens",
            "tokens",
        ])
        .args(["--listen", &format!("127.0.0.1:{api}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the daemon");
    let _daemon = Daemon(child);
    let mut status = String::new();
    let served = wait_for(Duration::from_secs(60), || {
        status = get(api, "/v1/status", VIEWER).unwrap_or_default();
        status.contains("refused.toml")
    });
    assert!(served, "the daemon never listed the refused plan: {status}");
    status
}

#[test]
fn no_secret_reaches_any_output_log_report_or_state_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let (port, received) = listener();
    let plan = site(root, port);
    let plan_arg = plan.to_str().expect("utf-8 path");
    let refused = refused_plan(root);
    let mut seen = Transcript(Vec::new());

    // The quick start, as examples/quickstart.sh runs it.
    seen.ok("validate", &lifeboat(root, port, &["validate", plan_arg]));
    seen.ok("apply", &lifeboat(root, port, &["apply", plan_arg]));
    seen.ok("plan --json", &lifeboat(root, port, &["--json", "plan", plan_arg]));
    let target = root.join("examples/.run/restored");
    let restore = ["restore", "--plan", plan_arg, "--dataset", "example-data", "--target"];
    let mut args: Vec<&str> = restore.to_vec();
    args.push(target.to_str().expect("utf-8"));
    seen.ok("restore", &lifeboat(root, port, &args));
    seen.ok(
        "verify",
        &lifeboat(root, port, &["verify", "--plan", plan_arg, "--sample", "1"]),
    );
    let drill = ["drill", "--plan", plan_arg, "--state", "examples/.run/state"];
    let mut quick = drill.to_vec();
    quick.push("quick");
    seen.ok("drill quick", &lifeboat(root, port, &quick));

    // The drill whose command steps show their environment and whose notify steps post.
    let mut leak_check = drill.to_vec();
    leak_check.extend(["--json", "leak-check"]);
    let report = seen.ok("drill leak-check", &lifeboat(root, port, &leak_check));
    assert!(
        report.contains("sent to the URL from environment variable ALERT_WEBHOOK_URL"),
        "{report}"
    );
    assert!(report.contains("/plain?token=***"), "{report}");

    let dump = std::fs::read_to_string(root.join("env-dump.txt")).expect("the step wrote its environment");
    assert!(dump.contains("PASSED_OK=visible-to-the-step\n"), "{dump}");
    assert!(dump.contains("LIFEBOAT_PLAYBOOK=leak-check\n"), "{dump}");
    assert!(dump.contains("PATH="), "{dump}");
    for withheld in [
        "LIFEBOAT_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "LIFEBOAT_TSIG_SECRET",
        "ALERT_WEBHOOK_URL",
    ] {
        assert!(!dump.contains(withheld), "the step inherited {withheld}:\n{dump}");
    }
    for secret in SECRETS {
        assert!(!dump.contains(secret), "the step saw a secret:\n{dump}");
    }

    // A failed verification fires the alert webhook (its URL is a secret reference).
    std::fs::remove_dir_all(root.join("examples/regions/b/data")).expect("remove region b's packs");
    let failed = lifeboat(
        root,
        port,
        &["verify", "--plan", plan_arg, "--region", "b", "--sample", "1"],
    );
    let text = seen.add("failed verify", &failed);
    assert!(
        !failed.status.success(),
        "verify passed without region b's packs: {text}"
    );
    let hooks = received.lock().expect("listener log").clone();
    let alert = hooks.iter().find(|r| r.contains("\"kind\":\"verification\""));
    assert!(
        alert.is_some_and(|a| a.starts_with(&format!("POST /hook/{HOOK_TOKEN}?token="))),
        "{hooks:?}"
    );
    assert!(hooks.iter().any(|r| r.contains("reached the notify step")), "{hooks:?}");

    // A refused plan: every problem reported, no value repeated, exit 2.
    let refused_arg = refused.to_str().expect("utf-8");
    for args in [vec!["validate", refused_arg], vec!["--json", "validate", refused_arg]] {
        let out = lifeboat(root, port, &args);
        let text = seen.add("validate refused", &out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(
            text.contains("carries credentials") && text.contains("written inline"),
            "{text}"
        );
    }

    let status = daemon_status(root, port, &plan, &refused);
    seen.0.push(("/v1/status".into(), status));

    for (what, text) in &seen.0 {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{what} shows a secret:\n{text}");
        }
    }
    let mut written = Vec::new();
    files(root, &mut written);
    assert!(written.len() > 20, "too few files searched: {written:?}");
    for file in &written {
        let bytes = std::fs::read(file).expect("read file");
        for secret in SECRETS {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{} holds a secret", file.display());
        }
    }

    // Owner-only: the repositories' keys, the reports, the daemon's state folder.
    let keys: Vec<PathBuf> = std::fs::read_dir(root.join("examples/regions/a/keys"))
        .expect("keys folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| mode(k) == 0o600), "{keys:?}");
    assert_eq!(mode(&root.join("examples/regions/a/keys")), 0o700);
    let reports: Vec<PathBuf> = std::fs::read_dir(root.join("examples/.run/state/reports"))
        .expect("reports folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(reports.len() >= 4, "{reports:?}");
    assert!(reports.iter().all(|r| mode(r) == 0o600), "{reports:?}");
    assert_eq!(mode(&root.join("daemon-state")), 0o700);
}
