//! `/metrics` in the Prometheus text format, written by hand: a couple of dozen
//! families do not justify a metrics crate, and the format is a few lines of rules.
//! Every gauge is read from the same `StatusView` that `/v1/status` serves, so the two
//! cannot disagree.

use std::fmt::Write;

use super::shared::{Shared, lock};
use super::view::{RegionView, StatusView};

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    format!("{{{}}}", inner.join(","))
}

/// Metric families in order; each keeps its samples together, as the format requires.
#[derive(Default)]
struct Exposition {
    families: Vec<(&'static str, String)>,
}

impl Exposition {
    fn head(&mut self, name: &'static str, kind: &str, help: &str) {
        self.families
            .push((name, format!("# HELP {name} {help}\n# TYPE {name} {kind}\n")));
    }

    /// A sample of `family`; `series` differs from it only for `_sum` and `_count`.
    fn sample_of(&mut self, family: &str, series: &str, pairs: &[(&str, &str)], value: f64) {
        if let Some((_, text)) = self.families.iter_mut().find(|(n, _)| *n == family) {
            let _ = writeln!(text, "{series}{} {value}", labels(pairs));
        }
    }

    fn sample(&mut self, name: &str, pairs: &[(&str, &str)], value: f64) {
        self.sample_of(name, name, pairs, value);
    }

    fn finish(self) -> String {
        self.families.into_iter().map(|(_, text)| text).collect()
    }
}

fn bool_value(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn job_counters(f: &mut Exposition, shared: &Shared) {
    let c = lock(&shared.counters);
    f.head(
        "lifeboat_jobs_total",
        "counter",
        "Jobs finished since start, by outcome.",
    );
    for ((key, outcome), n) in &c.jobs {
        f.sample(
            "lifeboat_jobs_total",
            &[
                ("plan", key.plan.as_str()),
                ("dataset", key.dataset.as_str()),
                ("outcome", outcome.as_str()),
            ],
            *n as f64,
        );
    }
    f.head("lifeboat_job_duration_seconds", "summary", "Time jobs took.");
    for (key, (sum, count)) in &c.durations {
        let l = [("plan", key.plan.as_str()), ("dataset", key.dataset.as_str())];
        let family = "lifeboat_job_duration_seconds";
        f.sample_of(family, "lifeboat_job_duration_seconds_sum", &l, *sum);
        f.sample_of(family, "lifeboat_job_duration_seconds_count", &l, *count as f64);
    }
    f.head(
        "lifeboat_backup_bytes_added_total",
        "counter",
        "New bytes stored per region since start.",
    );
    for ((key, region), n) in &c.bytes_added {
        let l = [
            ("plan", key.plan.as_str()),
            ("dataset", key.dataset.as_str()),
            ("region", region.as_str()),
        ];
        f.sample("lifeboat_backup_bytes_added_total", &l, *n as f64);
    }
}

fn daemon_gauges(f: &mut Exposition, status: &StatusView) {
    f.head(
        "lifeboat_build_info",
        "gauge",
        "Always 1; the version label is this daemon's build.",
    );
    f.sample("lifeboat_build_info", &[("version", status.version.as_str())], 1.0);
    f.head("lifeboat_jobs_running", "gauge", "Jobs running now (holding a slot).");
    f.sample("lifeboat_jobs_running", &[], status.running_jobs as f64);
    f.head("lifeboat_jobs_queued", "gauge", "Jobs waiting for a slot or a region.");
    f.sample("lifeboat_jobs_queued", &[], status.queued_jobs as f64);
    f.head(
        "lifeboat_plan_load_errors",
        "gauge",
        "Plan files refused at their last load.",
    );
    f.sample("lifeboat_plan_load_errors", &[], status.plan_errors.len() as f64);
    f.head(
        "lifeboat_plan_stale",
        "gauge",
        "1 when the plan's file is invalid and its last valid version is running instead.",
    );
    for p in &status.plans {
        f.sample("lifeboat_plan_stale", &[("plan", p.name.as_str())], bool_value(p.stale));
    }
}

fn proofs(f: &mut Exposition, status: &StatusView) {
    f.head(
        "lifeboat_drill_passed",
        "gauge",
        "1 when the last scheduled drill of the playbook passed.",
    );
    f.head(
        "lifeboat_drill_rto_seconds",
        "gauge",
        "Recovery time measured by the last scheduled drill.",
    );
    for d in &status.drills {
        let l = [("plan", d.plan.as_str()), ("playbook", d.playbook.as_str())];
        f.sample("lifeboat_drill_passed", &l, bool_value(d.outcome == "passed"));
        if let Some(ms) = d.rto_ms {
            f.sample("lifeboat_drill_rto_seconds", &l, ms as f64 / 1000.0);
        }
    }
}

/// Per dataset and per region, each value exactly the `/v1/status` field it mirrors.
const REGION_FAMILIES: [(&str, &str); 10] = [
    (
        "lifeboat_last_success_timestamp_seconds",
        "Time of the region's newest snapshot.",
    ),
    ("lifeboat_snapshot_age_seconds", "Age of the region's newest snapshot."),
    (
        "lifeboat_region_lagging",
        "1 when the region missed a run another region got.",
    ),
    (
        "lifeboat_region_reachable",
        "0 when the last backup could not reach the region's storage.",
    ),
    (
        "lifeboat_region_consecutive_failures",
        "Backups into the region that failed in a row.",
    ),
    (
        "lifeboat_region_stale_locks",
        "Leases in the region that no holder keeps.",
    ),
    (
        "lifeboat_region_last_error_class",
        "1 for the class of the region's last error; absent after a success.",
    ),
    (
        "lifeboat_verification_passed",
        "1 when the latest test restore from the region came back bit-exact.",
    ),
    (
        "lifeboat_verification_timestamp_seconds",
        "When the latest test restore ran.",
    ),
    (
        "lifeboat_verification_rto_seconds",
        "Full-restore time estimated from the latest test restore's throughput.",
    ),
];

fn objectives(f: &mut Exposition, status: &StatusView) {
    f.head(
        "lifeboat_rpo_seconds",
        "gauge",
        "The dataset's recovery point objective.",
    );
    f.head(
        "lifeboat_objective_violated",
        "gauge",
        "1 when /v1/status lists a violation for the dataset: no region within the RPO, or a region over it or lagging.",
    );
    f.head(
        "lifeboat_anomaly_score",
        "gauge",
        "Anomaly score of the dataset's newest snapshot against its own history (robust z-score).",
    );
    f.head(
        "lifeboat_anomaly_suspect",
        "gauge",
        "1 when the dataset's newest snapshot passed its anomaly threshold (see lifeboat anomalies).",
    );
    for (name, help) in REGION_FAMILIES {
        f.head(name, "gauge", help);
    }
    for p in &status.plans {
        for d in &p.datasets {
            let l = [("plan", p.name.as_str()), ("dataset", d.dataset.as_str())];
            f.sample("lifeboat_rpo_seconds", &l, d.rpo_seconds as f64);
            f.sample("lifeboat_objective_violated", &l, bool_value(d.violated));
            if let Some(a) = &d.anomaly {
                f.sample("lifeboat_anomaly_score", &l, a.score);
                f.sample("lifeboat_anomaly_suspect", &l, bool_value(a.suspect));
            }
            for r in &d.regions {
                region(f, &p.name, &d.dataset, r);
            }
        }
    }
}

fn region(f: &mut Exposition, plan: &str, dataset: &str, r: &RegionView) {
    let l = [("plan", plan), ("dataset", dataset), ("region", r.region.as_str())];
    if let Some(t) = r.last_success {
        f.sample("lifeboat_last_success_timestamp_seconds", &l, t.timestamp() as f64);
    }
    if let Some(age) = r.age_seconds {
        f.sample("lifeboat_snapshot_age_seconds", &l, age as f64);
    }
    f.sample("lifeboat_region_lagging", &l, bool_value(r.lagging));
    f.sample("lifeboat_region_reachable", &l, bool_value(r.reachable));
    f.sample(
        "lifeboat_region_consecutive_failures",
        &l,
        r.consecutive_failures as f64,
    );
    f.sample("lifeboat_region_stale_locks", &l, r.stale_locks as f64);
    if let Some(class) = &r.last_error_class {
        let with_class = [l[0], l[1], l[2], ("class", class.as_str())];
        f.sample("lifeboat_region_last_error_class", &with_class, 1.0);
    }
    if let Some(v) = &r.verification {
        f.sample("lifeboat_verification_passed", &l, bool_value(v.passed));
        f.sample("lifeboat_verification_timestamp_seconds", &l, v.at.timestamp() as f64);
        if let Some(rto) = v.estimated_rto_seconds {
            f.sample("lifeboat_verification_rto_seconds", &l, rto);
        }
    }
}

/// The whole exposition, its gauges taken from `status` (the whole daemon's, or the
/// part a scoped caller may see, so job counts and plan errors are scoped too).
pub fn render(shared: &Shared, status: &StatusView) -> String {
    let mut f = Exposition::default();
    daemon_gauges(&mut f, status);
    job_counters(&mut f, shared);
    objectives(&mut f, status);
    proofs(&mut f, status);
    rate_limits(&mut f, shared);
    f.finish()
}

/// How many keys each API rate-limit table holds (bounded by `--rate-limit-entries`).
fn rate_limits(f: &mut Exposition, shared: &Shared) {
    let name = "lifeboat_api_rate_limit_keys";
    f.head(
        name,
        "gauge",
        "Client addresses or subjects held by each API rate-limit table.",
    );
    let g = &shared.guard;
    for (table, len) in [
        ("address", g.addresses.len()),
        ("subject", g.subjects.len()),
        ("jobs", g.jobs.len()),
    ] {
        f.sample(name, &[("table", table)], len as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_stay_with_their_family() {
        let mut f = Exposition::default();
        f.head("a", "gauge", "A.");
        f.head("b", "gauge", "B.");
        f.sample("b", &[], 2.0);
        f.sample("a", &[("x", "1")], 1.0);
        assert_eq!(
            f.finish(),
            "# HELP a A.\n# TYPE a gauge\na{x=\"1\"} 1\n# HELP b B.\n# TYPE b gauge\nb{} 2\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(labels(&[("a", "x\"y\\z\n")]), "{a=\"x\\\"y\\\\z\\n\"}");
    }
}
