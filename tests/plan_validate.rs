//! Plan validation end to end: broken fixtures render exactly the expected diagnostics,
//! and every plan shipped with Lifeboat validates without errors.

use std::path::{Path, PathBuf};

use lifeboat::plan::{Diagnostic, validate, validate_path};

/// Renders diagnostics with the file named as given, without its folder.
fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| {
            let mut d = d.clone();
            d.file = d.file.file_name().map(PathBuf::from).unwrap_or_default();
            format!("{d}\n")
        })
        .collect()
}

fn golden_fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/golden exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn broken_plans_render_exactly_the_expected_diagnostics() {
    let mut mismatches = Vec::new();
    for fixture in golden_fixtures() {
        let (plan, diags) = validate(&fixture);
        let got = render(&diags);
        let expected_file = fixture.with_extension("expected");
        if std::env::var_os("LIFEBOAT_BLESS").is_some() {
            std::fs::write(&expected_file, &got).expect("write expected");
        }
        let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
        if got != expected {
            mismatches.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}",
                fixture.display()
            ));
        }
        let has_errors = diags.iter().any(Diagnostic::is_error);
        assert_eq!(
            plan.is_some(),
            !has_errors,
            "{}: a plan with errors must yield no Plan",
            fixture.display()
        );
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn a_plan_with_only_warnings_still_validates() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/warnings_only.toml");
    let (plan, diags) = validate(&fixture);
    assert!(!diags.is_empty() && diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let plan = plan.expect("warnings alone do not reject a plan");
    let dataset = plan.datasets.values().next().expect("one dataset");
    assert!(dataset.paths.iter().all(|p| p.is_absolute()), "{:?}", dataset.paths);
}

#[test]
fn shipped_plans_and_examples_have_no_errors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for target in [root.join("plans"), root.join("examples")] {
        let (plans, diags) = validate_path(&target);
        let errors: Vec<String> = diags.iter().filter(|d| d.is_error()).map(ToString::to_string).collect();
        assert!(
            errors.is_empty(),
            "errors in {}:\n{}",
            target.display(),
            errors.join("\n")
        );
        checked += plans.len();
    }
    assert!(
        checked >= 2,
        "expected the ML platform plan and the quick start, validated {checked}"
    );
}

#[test]
fn the_ml_platform_plan_becomes_the_model_execution_uses() {
    use lifeboat::plan::{DatasetKind, RepoAddress, StepAction};
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/ml-platform.toml");
    let (plan, _) = validate(&file);
    let plan = plan.expect("the shipped plan validates");
    assert_eq!(plan.regions.len(), 3);
    let on_prem = plan
        .regions
        .values()
        .find(|r| r.name.as_str() == "on-prem")
        .expect("on-prem region");
    assert_eq!(
        on_prem.address,
        RepoAddress::S3 {
            bucket: "lifeboat".into(),
            prefix: "ml-platform".into(),
            endpoint: Some("https://minio.dc1.internal:9000".into()),
            region: Some("dc1".into()),
        }
    );
    let checkpoints = plan
        .datasets
        .values()
        .find(|d| d.kind == DatasetKind::Model)
        .expect("a model dataset");
    assert_eq!(checkpoints.retention.keep_last, 5);
    assert!(checkpoints.sign);
    let signing = plan
        .signing
        .as_ref()
        .expect("the signed checkpoints have a [signing] section");
    assert!(signing.key.is_some() && !signing.trusted.is_empty());
    assert_eq!(checkpoints.schedule.max_interval().as_secs(), 2 * 3600);
    let failover = plan.playbooks.values().next().expect("a playbook");
    let kinds: Vec<&str> = failover
        .steps
        .iter()
        .map(|s| match s.action {
            StepAction::Restore { .. } => "restore",
            StepAction::Probe(_) => "probe",
            StepAction::Repoint { .. } => "repoint",
            StepAction::Command { .. } => "command",
            StepAction::Wait { .. } => "wait",
            StepAction::Notify { .. } => "notify",
        })
        .collect();
    assert_eq!(
        kinds,
        ["notify", "restore", "command", "probe", "repoint", "wait", "notify"]
    );
    assert_eq!(failover.rollback.len(), 1);
}

#[test]
fn refused_values_are_each_located_and_no_credential_is_repeated() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/unsafe_values.toml");
    let (plan, diags) = validate(&file);
    assert!(plan.is_none(), "a plan with unsafe values must be refused");
    let shown = render(&diags);
    for leaked in ["SECRETLEAKED", "AKIDLEAKED"] {
        assert!(!shown.contains(leaked), "{leaked} repeated:\n{shown}");
    }
    // One error per unsafe value, each on its own line of the fixture.
    for line in [
        5, 8, 9, 12, 13, 26, 27, 28, 32, 33, 38, 42, 44, 45, 46, 47, 48, 49, 50, 51, 58, 63,
    ] {
        let at = format!("unsafe_values.toml:{line}:");
        assert!(
            diags.iter().any(|d| d.is_error() && format!("{d}").contains(&at)),
            "no error on line {line}:\n{shown}"
        );
    }
}

#[test]
fn secret_urls_and_passed_variables_reach_the_model() {
    use lifeboat::plan::{SecretSource, StepAction, UrlSource};
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/secret_urls.toml");
    let (plan, diags) = validate(&file);
    let plan = plan.unwrap_or_else(|| panic!("refused: {}", render(&diags)));
    let Some(UrlSource::Secret(hook)) = &plan.alerts.webhook else {
        panic!("alert webhook is not a secret reference: {:?}", plan.alerts.webhook);
    };
    assert_eq!(hook.sources, [SecretSource::Env("ALERT_WEBHOOK_URL".into())]);
    assert_eq!(plan.alerts.env, ["HTTPS_PROXY"]);
    let endpoint = plan.endpoints.values().next().expect("an endpoint");
    assert_eq!(endpoint.env, ["KUBECONFIG"]);
    let steps = &plan.playbooks.values().next().expect("a playbook").steps;
    assert_eq!(steps[0].env, ["HTTPS_PROXY"]);
    assert_eq!(steps[1].env, ["NO_PROXY"]);
    let urls: Vec<&Option<UrlSource>> = steps
        .iter()
        .filter_map(|s| match &s.action {
            StepAction::Notify { url, .. } => Some(url),
            _ => None,
        })
        .collect();
    assert!(matches!(urls[0], Some(UrlSource::Secret(_))), "{urls:?}");
    assert_eq!(
        urls[1],
        &Some(UrlSource::Plain("https://chat.example.com/hook?token=from-plan".into()))
    );
}

#[test]
fn anomaly_settings_reach_the_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("anomaly.toml");
    let dataset = |name: &str, anomaly: &str| {
        format!(
            "[datasets.{name}]\npaths = [\".\"]\nschedule = \"@hourly\"\nregions = [\"a\"]\nrpo = \"2h\"\nretention = {{ keep_last = 30 }}\n{anomaly}\n"
        )
    };
    let text = [
        "[key]\nenv = \"LIFEBOAT_PASSWORD\"\n[regions.a]\naddress = \"memory://a\"\n".to_string(),
        dataset("plain", ""),
        dataset("off", "anomaly = \"off\""),
        dataset("tuned", "anomaly = { sensitivity = \"high\", min_history = 4 }"),
        dataset("low", "anomaly = { sensitivity = \"low\" }"),
    ]
    .concat();
    std::fs::write(&file, text).expect("write plan");
    let (plan, diags) = validate(&file);
    let plan = plan.unwrap_or_else(|| panic!("refused: {}", render(&diags)));
    let policy = |name: &str| {
        let ds = plan
            .datasets
            .values()
            .find(|d| d.name.as_str() == name)
            .expect("dataset");
        ds.anomaly.map(|p| (p.threshold, p.min_history))
    };
    assert_eq!(policy("plain"), Some((8.0, 10)));
    assert_eq!(policy("off"), None);
    assert_eq!(policy("tuned"), Some((5.0, 4)));
    assert_eq!(policy("low"), Some((12.0, 10)));
}

#[test]
fn baseline_settings_reach_the_model() {
    use lifeboat::plan::{Baseline, Probe, StepAction};
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("baselines.toml");
    let probe = |extra: &str| {
        format!("  {{ kind = \"probe\", url = \"http://127.0.0.1:8080/v1/predict\", method = \"POST\"{extra} }},\n")
    };
    let text = [
        "[key]\nenv = \"LIFEBOAT_PASSWORD\"\n[regions.a]\naddress = \"memory://a\"\n".to_string(),
        "[playbooks.p]\nrto = \"5m\"\nsteps = [\n".into(),
        probe(""),
        probe(", record_baseline = true"),
        probe(", record_baseline = true, compare = \"json\""),
        probe(", record_baseline = true, tolerance = { \"$.choices[0].score\" = 0.01, \"$.n\" = 2 }"),
        "]\n".into(),
    ]
    .concat();
    std::fs::write(&file, text).expect("write plan");
    let (plan, diags) = validate(&file);
    let plan = plan.unwrap_or_else(|| panic!("refused: {}", render(&diags)));
    let baselines: Vec<Option<Baseline>> = plan
        .playbooks
        .values()
        .next()
        .expect("playbook")
        .steps
        .iter()
        .map(|s| match &s.action {
            StepAction::Probe(Probe::Http(h)) => h.baseline.clone(),
            other => panic!("not an HTTP probe: {other:?}"),
        })
        .collect();
    assert_eq!(baselines[0], None);
    assert_eq!(baselines[1], Some(Baseline::Exact));
    assert_eq!(baselines[2], Some(Baseline::Json { tolerance: vec![] }));
    let Some(Baseline::Json { tolerance }) = &baselines[3] else {
        panic!("{:?}", baselines[3]);
    };
    let shown: Vec<(String, f64)> = tolerance.iter().map(|(p, t)| (p.text(), *t)).collect();
    assert_eq!(
        shown,
        [("$.choices[0].score".to_string(), 0.01), ("$.n".to_string(), 2.0)]
    );
}
