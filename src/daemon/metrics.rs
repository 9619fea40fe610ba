//! `/metrics` in the Prometheus text format, written by hand: a dozen families
//! do not justify a metrics crate, and the format is a few lines of rules.

use std::fmt::Write;

use super::shared::{Shared, lock};
use super::view::StatusView;

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

fn objectives(f: &mut Exposition, status: &StatusView) {
    f.head("lifeboat_jobs_running", "gauge", "Jobs queued or running.");
    f.sample("lifeboat_jobs_running", &[], status.running_jobs as f64);
    f.head(
        "lifeboat_plan_load_errors",
        "gauge",
        "Plan files refused at their last load.",
    );
    f.sample("lifeboat_plan_load_errors", &[], status.plan_errors.len() as f64);
    f.head(
        "lifeboat_rpo_seconds",
        "gauge",
        "The dataset's recovery point objective.",
    );
    f.head(
        "lifeboat_objective_violated",
        "gauge",
        "1 when no region holds a snapshot within the RPO.",
    );
    f.head(
        "lifeboat_last_success_timestamp_seconds",
        "gauge",
        "Time of the region's newest snapshot.",
    );
    f.head(
        "lifeboat_rpo_age_seconds",
        "gauge",
        "Age of the region's newest snapshot.",
    );
    f.head(
        "lifeboat_region_lagging",
        "gauge",
        "1 when the region missed a run another region got.",
    );
    f.head(
        "lifeboat_verification_passed",
        "gauge",
        "1 when the latest test restore from the region came back bit-exact.",
    );
    f.head(
        "lifeboat_verification_timestamp_seconds",
        "gauge",
        "When the latest test restore ran.",
    );
    f.head(
        "lifeboat_verification_rto_seconds",
        "gauge",
        "Full-restore time estimated from the latest test restore's throughput.",
    );
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
    for p in &status.plans {
        for d in &p.datasets {
            let l = [("plan", p.name.as_str()), ("dataset", d.dataset.as_str())];
            f.sample("lifeboat_rpo_seconds", &l, d.rpo_seconds as f64);
            f.sample("lifeboat_objective_violated", &l, bool_value(d.violated));
            for r in &d.regions {
                let l = [
                    ("plan", p.name.as_str()),
                    ("dataset", d.dataset.as_str()),
                    ("region", r.region.as_str()),
                ];
                if let Some(t) = r.last_success {
                    f.sample("lifeboat_last_success_timestamp_seconds", &l, t.timestamp() as f64);
                }
                if let Some(age) = r.age_seconds {
                    f.sample("lifeboat_rpo_age_seconds", &l, age as f64);
                }
                f.sample("lifeboat_region_lagging", &l, bool_value(r.lagging));
                if let Some(v) = &r.verification {
                    f.sample("lifeboat_verification_passed", &l, bool_value(v.passed));
                    f.sample("lifeboat_verification_timestamp_seconds", &l, v.at.timestamp() as f64);
                    if let Some(rto) = v.estimated_rto_seconds {
                        f.sample("lifeboat_verification_rto_seconds", &l, rto);
                    }
                }
            }
        }
    }
}

/// The whole exposition.
pub fn render(shared: &Shared) -> String {
    let status = super::view::status(shared);
    let mut f = Exposition::default();
    job_counters(&mut f, shared);
    objectives(&mut f, &status);
    f.finish()
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
