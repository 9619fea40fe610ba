//! Drill and failover end to end with real parts: a checkpoint backed up to two
//! local-folder regions, two inference servers (primary and standby), a real nginx as
//! the inference gateway (file endpoint: upstream swapped atomically, `-t`, reload),
//! and a real authoritative DNS server (Knot) taking TSIG-signed RFC 2136 updates.
//!
//! Skipped, with the reason printed, when knotd, keymgr or nginx are missing;
//! `tests/run.sh` installs them and sets `LIFEBOAT_REQUIRE_SERVERS=1`, under which a
//! missing one fails the test instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

mod inference_server;
mod servers;
mod support_drill;

use support_drill::{Nginx, Procs, infer, start_knot, start_nginx, tools};

const PASSWORD: &str = "drill-e2e-password";

fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}");
    support_drill::http_exchange(port, &req)
}

struct World {
    dir: PathBuf,
    plan: PathBuf,
    answer: u64,
    primary: u16,
    standby: u16,
    nginx: Nginx,
    dns_port: u16,
}

fn write_plan(w: &World, secret_file: &Path, wrong_secret_file: &Path) {
    let d = w.dir.display();
    let probe = |port: u16, answer: u64, timeout: &str| {
        format!(
            "{{ kind = \"probe\", url = \"http://127.0.0.1:{port}/v1/predict\", method = \"POST\", body = \"{{}}\", expect_json = {{ \"/answer\" = {answer} }}, interval = \"1s\", timeout = \"{timeout}\" }}"
        )
    };
    let steps = |last_probe: String| {
        format!(
            "steps = [\n  {{ kind = \"restore\", dataset = \"checkpoints\", target = \"{d}/standby\" }},\n  {},\n  {{ kind = \"repoint\", endpoint = \"gateway\", to = \"standby\" }},\n  {{ kind = \"repoint\", endpoint = \"dns\", to = \"standby\" }},\n  {last_probe},\n]\n",
            probe(w.standby, w.answer, "20s")
        )
    };
    let dns = |name: &str, secret: &Path| {
        format!(
            "[endpoints.{name}]\nprovider = \"dns\"\nserver = \"127.0.0.1:{}\"\nzone = \"example.test.\"\nrecord = \"infer.example.test.\"\nttl = \"30s\"\ntsig_key_name = \"ddns-key\"\ntsig_secret = {{ file = \"{}\" }}\ntargets = {{ primary = \"127.0.0.10\", standby = \"127.0.0.20\" }}\n",
            w.dns_port,
            secret.display()
        )
    };
    let plan = format!(
        r#"{head}
{gateway}
{dns}
{wrong}
[playbooks.recover]
rto = "5m"
primary = "primary"
standby = "standby"
{good}
[playbooks.recover-bad-probe]
rto = "5m"
primary = "primary"
standby = "standby"
{bad}
[playbooks.wrong-key]
rto = "1m"
steps = [{{ kind = "repoint", endpoint = "dns-wrong-key", to = "standby" }}]
"#,
        head = support_drill::plan_head(&w.dir, "checkpoints", "src/model"),
        gateway = w
            .nginx
            .endpoint(&format!("127.0.0.1:{}", w.primary), &format!("127.0.0.1:{}", w.standby)),
        dns = dns("dns", secret_file),
        wrong = dns("dns-wrong-key", wrong_secret_file),
        good = steps(probe(w.nginx.port, w.answer, "20s")),
        bad = steps(probe(w.nginx.port, w.answer + 1, "3s")),
    );
    std::fs::write(&w.plan, plan).unwrap();
}

fn lifeboat(w: &World, args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("lifeboat")
        .unwrap()
        .args(args)
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .current_dir(&w.dir)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn upstream_port(w: &World) -> String {
    std::fs::read_to_string(&w.nginx.upstream).unwrap()
}

fn gateway_answer(w: &World) -> Option<serde_json::Value> {
    let (status, body) = http(w.nginx.port, "POST", "/v1/predict")?;
    (status == 200).then(|| serde_json::from_str::<serde_json::Value>(&body).ok())?
}

#[test]
fn drill_and_failover_move_inference_to_the_standby_with_real_dns_and_nginx() {
    let wanted = [
        ("knotd", "LIFEBOAT_TEST_KNOTD"),
        ("keymgr", "LIFEBOAT_TEST_KEYMGR"),
        ("nginx", "LIFEBOAT_TEST_NGINX"),
    ];
    let install = "apt-get install knot knot-dnsutils nginx-light";
    let Some(t) = tools("drill_e2e", &wanted, install) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let mut procs = Procs::default();

    // The checkpoint: served by the primary from its own copy, backed up to both regions.
    let weights: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::create_dir_all(dir.join("src/model")).unwrap();
    std::fs::create_dir_all(dir.join("primary-serve")).unwrap();
    std::fs::write(dir.join("src/model/weights.bin"), &weights).unwrap();
    std::fs::write(dir.join("primary-serve/weights.bin"), b"an older primary checkpoint").unwrap();
    let primary = inference_server::start(&dir.join("primary-serve/weights.bin"));
    let standby = inference_server::start(&dir.join("standby/model/weights.bin"));
    assert_eq!(
        http(standby, "POST", "/v1/predict").unwrap().0,
        503,
        "standby has no model yet"
    );

    let (dns_port, secret) = start_knot(&mut procs, &t[0], &t[1], &dir.join("knot"));
    let nginx = start_nginx(&mut procs, &t[2], &dir.join("nginx"), &format!("127.0.0.1:{primary}"));
    let secret_file = dir.join("tsig.secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let wrong_file = dir.join("wrong.secret");
    std::fs::write(&wrong_file, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
    let w = World {
        plan: dir.join("plan.toml"),
        dir: dir.clone(),
        answer: inference_server::answer(&weights),
        primary,
        standby,
        nginx,
        dns_port,
    };
    write_plan(&w, &secret_file, &wrong_file);
    let plan = w.plan.display().to_string();

    let (code, out, err) = lifeboat(&w, &["apply", &plan]);
    assert_eq!(code, 0, "apply: {out}{err}");
    // The primary site is lost: its repository and the source folder are gone.
    std::fs::remove_dir_all(dir.join("repo-primary")).unwrap();
    std::fs::remove_dir_all(dir.join("src")).unwrap();

    // Dry run: describes, changes nothing.
    let (code, out, err) = lifeboat(&w, &["failover", "--plan", &plan, "--dry-run", "recover"]);
    assert_eq!(code, 0, "dry run: {out}{err}");
    assert!(
        out.contains("re-point gateway to standby") && out.contains("DNS update of infer.example.test."),
        "{out}"
    );
    assert!(
        out.contains("preflight ok: endpoint dns to standby") && out.contains("holds 127.0.0.10"),
        "the dry run's preflight read the record: {out}"
    );
    assert!(upstream_port(&w).contains(&primary.to_string()));
    assert_eq!(infer(dns_port), Ok(vec!["127.0.0.10".to_string()]));
    // Nothing was restored: the restore step's target holds nothing and the standby
    // still has no model to serve.
    let restored = std::fs::read_dir(dir.join("standby")).map_or(0, |d| d.count());
    assert_eq!(restored, 0, "the dry run restored into {}/standby", dir.display());
    assert_eq!(
        http(standby, "POST", "/v1/predict").unwrap().0,
        503,
        "the dry run gave the standby a model"
    );

    // A passing drill: everything for real, then traffic back on the primary.
    let (code, out, err) = lifeboat(&w, &["--json", "drill", "--plan", &plan, "recover"]);
    assert_eq!(code, 0, "drill: {out}{err}");
    let report = json(&out);
    assert_eq!(report["outcome"], "passed", "{report:#}");
    assert!(
        report["rto"]["measured_ms"].as_u64().is_some_and(|ms| ms > 0),
        "{report:#}"
    );
    assert_eq!(report["rpo"][0]["met"], true, "{report:#}");
    assert!(
        report["uploads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["region"] == "standby" && u["error"].is_null()),
        "{report:#}"
    );
    assert!(
        upstream_port(&w).contains(&primary.to_string()),
        "{}",
        upstream_port(&w)
    );
    assert_eq!(infer(dns_port), Ok(vec!["127.0.0.10".to_string()]));
    let (_, body) = http(standby, "POST", "/v1/predict").unwrap();
    assert!(
        body.contains(&w.answer.to_string()),
        "standby serves the restored checkpoint: {body}"
    );
    let state_reports = std::fs::read_dir(dir.join(".lifeboat-state/reports")).unwrap().count();
    assert_eq!(state_reports, 2, "one JSON and one Markdown report");
    let stored = std::fs::read_dir(dir.join("repo-standby/reports"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(stored, 2, "the report is kept in the standby repository");

    // A drill whose probe fails rolls back: upstream and DNS back on the primary.
    let (code, out, err) = lifeboat(&w, &["--json", "drill", "--plan", &plan, "recover-bad-probe"]);
    assert_eq!(code, 1, "failing drill: {out}{err}");
    let report = json(&out);
    assert_eq!(report["outcome"], "failed");
    let rollback = support_drill::rollback_records(&report);
    assert_eq!(
        rollback,
        ["dns back to primary passed", "gateway back to primary passed"]
    );
    assert!(
        upstream_port(&w).contains(&primary.to_string()),
        "{}",
        upstream_port(&w)
    );
    assert_eq!(infer(dns_port), Ok(vec!["127.0.0.10".to_string()]));

    // A wrong TSIG key is an authentication failure, and the record stays.
    // The preflight's signed query finds it before any step runs.
    let (code, out, err) = lifeboat(&w, &["--json", "failover", "--plan", &plan, "--confirm", "wrong-key"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "no step ran: {out}");
    assert!(
        err.contains("preflight of playbook wrong-key failed")
            && err.contains("endpoint dns-wrong-key to standby")
            && err.contains("authentication failed"),
        "{err}"
    );
    assert_eq!(infer(dns_port), Ok(vec!["127.0.0.10".to_string()]));

    // The failover: traffic moves to the standby and stays there.
    let (code, out, err) = lifeboat(&w, &["--json", "failover", "--plan", &plan, "--confirm", "recover"]);
    assert_eq!(code, 0, "failover: {out}{err}");
    assert_eq!(json(&out)["outcome"], "passed");
    assert!(
        upstream_port(&w).contains(&standby.to_string()),
        "{}",
        upstream_port(&w)
    );
    assert_eq!(infer(dns_port), Ok(vec!["127.0.0.20".to_string()]));
    let served = gateway_answer(&w).expect("the gateway answers");
    assert_eq!(served["answer"].as_u64(), Some(w.answer), "{served}");
}
