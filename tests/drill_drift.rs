//! Model drift in drills, end to end through the `lifeboat` binary: a checkpoint backed
//! up to two local-folder regions, restored by each drill into the standby's folder and
//! served there by the test inference server, whose score the test changes. A probe with
//! `record_baseline = true` records the first answer; later drills compare with it
//! (within a tolerance, or exactly) and fail with the drift in the report. The baseline
//! lives in the reports stored in the regions, so it survives the loss of the state
//! folder and of the primary region, and only `--record-baseline` replaces it.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

mod inference_server;
mod servers;
mod support_drill;

const PASSWORD: &str = "drill-drift-password";

struct World {
    dir: PathBuf,
    plan: String,
    /// Each run gets a fresh state folder: nothing is remembered locally.
    runs: std::cell::Cell<u32>,
}

impl World {
    fn new(dir: &Path, port: u16) -> World {
        std::fs::create_dir_all(dir.join("src/model")).unwrap();
        std::fs::write(dir.join("src/model/weights.bin"), b"weights of the canary model").unwrap();
        let probe = |extra: &str| {
            format!(
                "{{ kind = \"probe\", url = \"http://127.0.0.1:{port}/v1/predict\", method = \"POST\", body = \"{{}}\", timeout = \"10s\", record_baseline = true{extra} }}"
            )
        };
        let restore = format!(
            "{{ kind = \"restore\", dataset = \"checkpoints\", target = \"{}/standby\" }}",
            dir.display()
        );
        let playbook = |name: &str, probe: String| {
            format!("[playbooks.{name}]\nrto = \"5m\"\nstandby = \"standby\"\nsteps = [\n  {restore},\n  {probe},\n]\n")
        };
        let plan = format!(
            "{}\n{}\n{}",
            support_drill::plan_head(dir, "checkpoints", "src/model"),
            playbook("tolerant", probe(", tolerance = { \"$.choices[0].score\" = 0.01 }")),
            playbook("exact", probe(", compare = \"exact\"")),
        );
        let file = dir.join("plan.toml");
        std::fs::write(&file, plan).unwrap();
        World {
            dir: dir.to_path_buf(),
            plan: file.display().to_string(),
            runs: std::cell::Cell::new(0),
        }
    }

    fn lifeboat(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::cargo_bin("lifeboat")
            .unwrap()
            .args(args)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .current_dir(&self.dir)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    /// Run a drill of `playbook` (with `extra` arguments); its exit code and JSON report.
    fn drill(&self, playbook: &str, extra: &[&str]) -> (i32, Value) {
        self.runs.set(self.runs.get() + 1);
        let state = self.dir.join(format!("state-{}", self.runs.get()));
        let state = state.display().to_string();
        let mut args = vec!["--json", "drill", "--plan", &self.plan, "--state", &state];
        args.extend_from_slice(extra);
        args.push(playbook);
        let (code, out, err) = self.lifeboat(&args);
        let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}{err}"));
        (code, report)
    }
}

/// The probe step of a report.
fn probe(report: &Value) -> &Value {
    let steps = report["steps"].as_array().expect("steps");
    steps
        .iter()
        .find(|s| s["phase"] == "steps" && s["kind"] == "probe")
        .unwrap_or_else(|| panic!("no probe step: {report:#}"))
}

/// The report's object name, as a later comparison names it.
fn report_name(report: &Value) -> String {
    let started: chrono::DateTime<chrono::Utc> = report["started"].as_str().unwrap().parse().unwrap();
    format!(
        "{}-{}-drill.json",
        started.format("%Y%m%dT%H%M%S%.3fZ"),
        report["playbook"].as_str().unwrap()
    )
}

fn assert_compared_without_drift(code: i32, report: &Value, from: &str) {
    assert_eq!(code, 0, "{report:#}");
    let step = probe(report);
    assert_eq!(step["status"], "passed", "{step:#}");
    assert_eq!(step["baseline"]["action"], "compared", "{step:#}");
    assert_eq!(step["baseline"]["from"], from, "{step:#}");
    assert!(step["baseline"].get("drift").is_none(), "{step:#}");
    assert!(
        step["detail"]
            .as_str()
            .unwrap()
            .contains("the same as the baseline recorded"),
        "{step:#}"
    );
}

#[test]
fn a_drill_fails_when_the_models_answer_drifts_from_its_recorded_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = inference_server::start(&dir.join("standby/model/weights.bin"));
    inference_server::set_score(port, "0.870");
    let w = World::new(dir, port);
    let (code, out, err) = w.lifeboat(&["apply", &w.plan]);
    assert_eq!(code, 0, "apply: {out}{err}");

    // First drills: nothing recorded yet, so each records its answer as the baseline.
    let (code, first) = w.drill("tolerant", &[]);
    assert_eq!(code, 0, "{first:#}");
    let step = probe(&first);
    assert_eq!(step["baseline"]["action"], "recorded", "{step:#}");
    let recorded: Value = serde_json::from_str(step["baseline"]["answer"].as_str().unwrap()).unwrap();
    assert_eq!(recorded["choices"][0]["score"], 0.87, "{step:#}");
    assert!(
        step["detail"]
            .as_str()
            .unwrap()
            .contains("recorded as the first baseline"),
        "{step:#}"
    );
    let (code, exact_first) = w.drill("exact", &[]);
    assert_eq!(code, 0, "{exact_first:#}");
    assert_eq!(probe(&exact_first)["baseline"]["action"], "recorded");

    // The same answer passes both; the recording run is named.
    let (code, second) = w.drill("tolerant", &[]);
    assert_compared_without_drift(code, &second, &report_name(&first));

    // Within the tolerance: the tolerant probe passes, the exact one fails.
    inference_server::set_score(port, "0.875");
    let (code, near) = w.drill("tolerant", &[]);
    assert_compared_without_drift(code, &near, &report_name(&first));
    let (code, exact) = w.drill("exact", &[]);
    assert_eq!(code, 1, "{exact:#}");
    let drift = &probe(&exact)["baseline"]["drift"];
    assert_eq!(drift[0]["path"], "$.choices[0].score", "{exact:#}");
    assert_eq!(drift[0]["answer"], 0.875, "{exact:#}");

    // Beyond it: the drill fails, the difference in the JSON, the text and the Markdown.
    inference_server::set_score(port, "0.93");
    let (code, far) = w.drill("tolerant", &[]);
    assert_eq!(code, 1, "{far:#}");
    assert_eq!(far["outcome"], "failed", "{far:#}");
    let step = probe(&far);
    assert_eq!(step["status"], "failed", "{step:#}");
    let drift = step["baseline"]["drift"].as_array().unwrap();
    assert_eq!(drift.len(), 1, "{step:#}");
    assert_eq!(drift[0]["path"], "$.choices[0].score");
    assert_eq!(
        (drift[0]["baseline"].clone(), drift[0]["answer"].clone()),
        (0.87.into(), 0.93.into())
    );
    assert_eq!(drift[0]["tolerance"], 0.01);
    let detail = step["detail"].as_str().unwrap();
    assert!(detail.contains("DRIFT from the baseline recorded"), "{detail}");
    assert!(
        detail.contains("$.choices[0].score is 0.93, baseline 0.87 (differs by 0.06"),
        "{detail}"
    );
    let markdown = std::fs::read_dir(dir.join(format!("state-{}/reports", w.runs.get())))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "md"))
        .unwrap();
    let markdown = std::fs::read_to_string(markdown).unwrap();
    assert!(
        markdown.contains("$.choices[0].score is 0.93, baseline 0.87"),
        "{markdown}"
    );
    let (_, text, _) = w.lifeboat(&[
        "drill",
        "--plan",
        &w.plan,
        "--state",
        &dir.join("state-text").display().to_string(),
        "tolerant",
    ]);
    assert!(text.contains("$.choices[0].score is 0.93, baseline 0.87"), "{text}");

    // A failed comparison never becomes the baseline: the next drill still fails.
    let (code, again) = w.drill("tolerant", &[]);
    assert_eq!(code, 1, "{again:#}");
    assert_eq!(probe(&again)["baseline"]["from"], report_name(&first).as_str());

    // Recording anew is explicit, and later drills compare with the new answer, even
    // with the primary region (and its copy of the reports) gone.
    let (code, rerecorded) = w.drill("tolerant", &["--record-baseline"]);
    assert_eq!(code, 0, "{rerecorded:#}");
    assert_eq!(probe(&rerecorded)["baseline"]["action"], "recorded");
    std::fs::remove_dir_all(dir.join("repo-primary")).unwrap();
    let (code, after) = w.drill("tolerant", &[]);
    assert_compared_without_drift(code, &after, &report_name(&rerecorded));
}

#[test]
fn without_a_readable_region_no_first_baseline_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = inference_server::start(&dir.join("standby/model/weights.bin"));
    inference_server::set_score(port, "0.5");
    let w = World::new(dir, port);
    let (code, out, err) = w.lifeboat(&["apply", &w.plan]);
    assert_eq!(code, 0, "apply: {out}{err}");
    // The primary region is lost before any baseline was recorded: the standby has
    // none, but whether the primary had one cannot be known.
    std::fs::remove_dir_all(dir.join("repo-primary")).unwrap();
    let (code, report) = w.drill("tolerant", &[]);
    assert_eq!(code, 1, "{report:#}");
    let step = probe(&report);
    assert!(step.get("baseline").is_none(), "{step:#}");
    let detail = step["detail"].as_str().unwrap();
    assert!(
        detail.contains("cannot tell whether a baseline was recorded"),
        "{detail}"
    );
    assert!(detail.contains("region primary"), "{detail}");
    // The operator can choose to record one.
    let (code, report) = w.drill("tolerant", &["--record-baseline"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(probe(&report)["baseline"]["action"], "recorded");
}
