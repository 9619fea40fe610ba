//! The `file` endpoint's swap with a real nginx: whatever is planted in the endpoint's
//! directory (symlinks at likely temporary names, a symlink at the final name), the swap
//! writes only the endpoint's own file, keeps its mode and owner, and never follows a link
//! (a link at the final name already stops the run in its preflight).
//!
//! nginx is needed: missing, the tests say so and pass, unless `LIFEBOAT_REQUIRE_SERVERS=1`
//! (set by `tests/run.sh`), where they fail.

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

const PASSWORD: &str = "file-swap-password";

fn nginx_binary() -> Option<PathBuf> {
    let from_env = std::env::var_os("LIFEBOAT_TEST_NGINX").map(PathBuf::from);
    let found = from_env.or_else(|| {
        ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("LIFEBOAT_REQUIRE_SERVERS").as_deref() != Ok("1"),
            "nginx is required (LIFEBOAT_REQUIRE_SERVERS=1) but not installed"
        );
        eprintln!("skipping: nginx is needed (apt-get install nginx-light; tests/run.sh does it)");
    }
    found
}

/// nginx stopped (SIGQUIT, then SIGKILL) when the test ends.
struct Nginx {
    child: Child,
    cmd: Vec<String>,
    upstream: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_nginx(bin: &Path, dir: &Path) -> Nginx {
    for d in ["logs", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let port = free_port();
    let upstream = dir.join("upstream.conf");
    std::fs::write(&upstream, "upstream inference { server 127.0.0.1:1001; }\n").unwrap();
    let d = dir.display();
    let conf = format!(
        "daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/logs/error.log notice;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log {d}/logs/access.log;\n\
         client_body_temp_path {d}/tmp/cb; proxy_temp_path {d}/tmp/p; fastcgi_temp_path {d}/tmp/f;\n\
         uwsgi_temp_path {d}/tmp/u; scgi_temp_path {d}/tmp/s;\n\
         include {d}/upstream.conf;\n\
         server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://inference; }} }} }}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let cmd: Vec<String> = vec![
        bin.display().to_string(),
        "-p".into(),
        d.to_string(),
        "-c".into(),
        format!("{d}/nginx.conf"),
        "-e".into(),
        format!("{d}/logs/error.log"),
    ];
    let child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "nginx did not start; see {d}/logs/error.log");
        std::thread::sleep(Duration::from_millis(100));
    }
    Nginx { child, cmd, upstream }
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

struct World {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    plan: PathBuf,
    nginx: Nginx,
}

impl World {
    /// Regions, a backed-up dataset, the nginx gateway endpoint, and `extra` plan text.
    fn new(nginx_bin: &Path, standby_target: &str, extra: &str) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let nginx = start_nginx(nginx_bin, &dir.join("nginx"));
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/weights.bin"), vec![7u8; 50_000]).unwrap();
        let plan = dir.join("plan.toml");
        let w = World {
            _tmp: tmp,
            dir,
            plan,
            nginx,
        };
        w.write_plan(standby_target, extra);
        w
    }

    fn write_plan(&self, standby_target: &str, extra: &str) {
        let d = self.dir.display();
        let mut check = self.nginx.cmd.clone();
        check.push("-t".into());
        let mut reload = self.nginx.cmd.clone();
        reload.extend(["-s".into(), "reload".into()]);
        let text = format!(
            r#"[key]
env = "LIFEBOAT_PASSWORD"

[regions.primary]
address = "{d}/repo-primary"
create = true

[regions.standby]
address = "{d}/repo-standby"
create = true

[datasets.models]
kind = "model"
paths = ["{d}/src"]
schedule = "@hourly"
regions = ["primary", "standby"]
rpo = "1h"
retention = {{ keep_last = 3 }}

[endpoints.gateway]
provider = "file"
path = "{upstream}"
template = "upstream inference {{ server {{target}}; }}\n"
check = {check}
reload = {reload}
targets = {{ primary = "127.0.0.1:1001", standby = "{standby_target}" }}

[playbooks.recover]
rto = "5m"
primary = "primary"
standby = "standby"
steps = [
  {{ kind = "restore", dataset = "models", target = "{d}/restored" }},
  {{ kind = "repoint", endpoint = "gateway", to = "standby" }},
]
{extra}
"#,
            upstream = self.nginx.upstream.display(),
            check = toml_list(&check),
            reload = toml_list(&reload),
        );
        std::fs::write(&self.plan, text).unwrap();
    }

    fn lifeboat(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut cmd = Command::cargo_bin("lifeboat").unwrap();
        cmd.args(args)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env_remove("LIFEBOAT_TSIG_SECRET")
            .current_dir(&self.dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    fn apply(&self) {
        let plan = self.plan.display().to_string();
        let (code, out, err) = self.lifeboat(&["apply", &plan], &[]);
        assert_eq!(code, 0, "apply: {out}{err}");
    }

    fn failover(&self, playbook: &str, env: &[(&str, &str)]) -> (i32, String, String) {
        let plan = self.plan.display().to_string();
        self.lifeboat(&["--json", "failover", "--plan", &plan, "--confirm", playbook], env)
    }

    fn upstream(&self) -> String {
        std::fs::read_to_string(&self.nginx.upstream).unwrap()
    }
}

const ORIGINAL: &str = "upstream inference { server 127.0.0.1:1001; }\n";

#[test]
fn the_file_swap_keeps_mode_and_owner_and_ignores_planted_temp_links() {
    let Some(bin) = nginx_binary() else { return };
    let w = World::new(&bin, "127.0.0.1:1002", "");
    w.apply();
    let upstream = &w.nginx.upstream;
    // A secret-looking fragment owned by another user, readable by it alone.
    std::fs::set_permissions(upstream, std::fs::Permissions::from_mode(0o600)).unwrap();
    let other = if nix_is_root() { 65534 } else { current_uid() };
    Command::new("chown")
        .arg(format!("{other}:{other}"))
        .arg(upstream)
        .status()
        .unwrap();
    // Links planted where a predictable temporary name would be.
    let victim = w.dir.join("victim");
    std::fs::write(&victim, "do not touch\n").unwrap();
    let dir = upstream.parent().unwrap();
    for name in [".upstream.conf.lifeboat-tmp", ".upstream.conf.tmp", "upstream.conf.tmp"] {
        std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
    }

    let (code, out, err) = w.failover("recover", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(w.upstream(), "upstream inference { server 127.0.0.1:1002; }\n");
    let meta = std::fs::symlink_metadata(upstream).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.mode() & 0o7777, 0o600, "mode kept");
    assert_eq!((meta.uid(), meta.gid()), (other, other), "owner kept");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "do not touch\n");
    let leftovers: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains("lifeboat-tmp") && n != ".upstream.conf.lifeboat-tmp")
        .collect();
    assert!(leftovers.is_empty(), "no temporary file left: {leftovers:?}");
}

#[test]
fn a_symlink_at_the_final_name_is_refused_and_not_followed() {
    let Some(bin) = nginx_binary() else { return };
    let w = World::new(&bin, "127.0.0.1:1002", "");
    w.apply();
    let upstream = &w.nginx.upstream;
    let real = w.dir.join("real-upstream.conf");
    std::fs::rename(upstream, &real).unwrap();
    std::os::unix::fs::symlink(&real, upstream).unwrap();

    // The preflight reads the file as the swap would, so the run stops before the
    // restore: nothing written, nothing restored.
    let (code, out, err) = w.failover("recover", &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("preflight of playbook recover failed")
            && err.contains("endpoint gateway to standby")
            && err.contains("is a symlink")
            && err.contains("set `path` to the real file"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(w.dir.join("restored")).map_or(true, |mut d| d.next().is_none()),
        "nothing was restored"
    );
    assert_eq!(std::fs::read_to_string(&real).unwrap(), ORIGINAL);
    assert!(std::fs::symlink_metadata(upstream).unwrap().file_type().is_symlink());
}

fn current_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

fn nix_is_root() -> bool {
    current_uid() == 0
}
