//! A gateway world for `failover --confirm` tests: a checkpoint backed up to two
//! local-folder regions, a real nginx whose upstream fragment is the `file` endpoint
//! `gateway` (checked with `nginx -t`, reloaded), and playbook `recover` (restore, then
//! re-point the gateway to the standby). Tests add endpoints and playbooks as plan text.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

use super::{Nginx, Procs, start_nginx};

const PASSWORD: &str = "gateway-world-password";

/// What the gateway's upstream fragment holds before any re-point.
pub const ORIGINAL: &str = "upstream inference { server 127.0.0.1:1001; }\n";

pub struct World {
    _procs: Procs,
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub plan: PathBuf,
    pub nginx: Nginx,
}

impl World {
    /// Regions, a backed-up dataset, the nginx gateway endpoint (its standby target
    /// `standby_target`), and `extra` plan text.
    pub fn new(nginx_bin: &Path, standby_target: &str, extra: &str) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut procs = Procs::default();
        let nginx = start_nginx(&mut procs, nginx_bin, &dir.join("nginx"), "127.0.0.1:1001");
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/weights.bin"), vec![7u8; 50_000]).unwrap();
        let plan = dir.join("plan.toml");
        let w = World {
            _procs: procs,
            _tmp: tmp,
            dir,
            plan,
            nginx,
        };
        w.write_plan(standby_target, extra);
        w
    }

    pub fn write_plan(&self, standby_target: &str, extra: &str) {
        let d = self.dir.display();
        let text = format!(
            r#"{head}
{gateway}
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
            head = super::plan_head(&self.dir, "models", "src"),
            gateway = self.nginx.endpoint("127.0.0.1:1001", standby_target),
        );
        std::fs::write(&self.plan, text).unwrap();
    }

    /// `lifeboat ARGS` in the world's folder with the right password (unless `env`
    /// sets another) and no TSIG secret; exit code, stdout, stderr.
    pub fn lifeboat(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
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

    pub fn apply(&self) {
        let plan = self.plan.display().to_string();
        let (code, out, err) = self.lifeboat(&["apply", &plan], &[]);
        assert_eq!(code, 0, "apply: {out}{err}");
    }

    /// `--json failover --confirm PLAYBOOK`.
    pub fn failover(&self, playbook: &str, env: &[(&str, &str)]) -> (i32, String, String) {
        let plan = self.plan.display().to_string();
        self.lifeboat(&["--json", "failover", "--plan", &plan, "--confirm", playbook], env)
    }

    pub fn upstream(&self) -> String {
        std::fs::read_to_string(&self.nginx.upstream).unwrap()
    }

    /// Whether the restore target is missing or empty.
    pub fn restored_nothing(&self) -> bool {
        std::fs::read_dir(self.dir.join("restored")).map_or(true, |mut d| d.next().is_none())
    }

    /// The newest JSON report kept in the state folder.
    pub fn last_report(&self) -> serde_json::Value {
        let dir = self.dir.join(".lifeboat-state/reports");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        let last = files.last().expect("a report is kept");
        serde_json::from_slice(&std::fs::read(last).unwrap()).unwrap()
    }
}

/// nginx from `tests/run.sh` or the system, or `None` (reported) to skip `test`.
pub fn nginx(test: &str) -> Option<PathBuf> {
    let found = super::tools(test, &[("nginx", "LIFEBOAT_TEST_NGINX")], "apt-get install nginx-light")?;
    found.into_iter().next()
}
