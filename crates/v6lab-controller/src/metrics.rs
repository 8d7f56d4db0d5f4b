//! Prometheus metrics, in the text exposition format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    pub reconciles: AtomicU64,
    /// Sum of reconcile pass durations, microseconds.
    pub reconcile_micros: AtomicU64,
    pub reconcile_failures: AtomicU64,
    pub labs_created: AtomicU64,
    pub lab_create_failures: AtomicU64,
    /// Sum of lab creation durations, milliseconds.
    pub lab_create_millis: AtomicU64,
    pub labs_deleted: AtomicU64,
    pub auth_failures: AtomicU64,
    pub checks_run: AtomicU64,
    /// Commands running in nodes now, and the controller-wide bound on them.
    pub execs_running: AtomicU64,
    pub execs_limit: AtomicU64,
    /// Commands stopped at their deadline or output cap.
    pub execs_stopped: AtomicU64,
    /// "Check now" requests answered 429.
    pub checks_refused: AtomicU64,
    /// Periodic check rounds that skipped a lab whose previous run was still under way.
    pub checks_skipped: AtomicU64,
}

impl Metrics {
    pub fn render(&self, labs_by_state: &[(&str, usize)]) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP v6lab_labs Labs the controller wants, by state.\n# TYPE v6lab_labs gauge"
        );
        for (state, n) in labs_by_state {
            let _ = writeln!(o, "v6lab_labs{{state=\"{state}\"}} {n}");
        }
        let _ = writeln!(
            o,
            "# HELP v6lab_reconcile_duration_seconds Time spent deciding what to do in reconcile passes.\n# TYPE v6lab_reconcile_duration_seconds summary"
        );
        let _ = writeln!(
            o,
            "v6lab_reconcile_duration_seconds_sum {}",
            g(&self.reconcile_micros) as f64 / 1e6
        );
        let _ = writeln!(
            o,
            "v6lab_reconcile_duration_seconds_count {}",
            g(&self.reconciles)
        );
        let _ = writeln!(
            o,
            "# HELP v6lab_reconcile_failures_total Reconcile passes that could not read the runtime or the store.\n# TYPE v6lab_reconcile_failures_total counter"
        );
        let _ = writeln!(
            o,
            "v6lab_reconcile_failures_total {}",
            g(&self.reconcile_failures)
        );
        let _ = writeln!(
            o,
            "# HELP v6lab_lab_create_duration_seconds Time to bring a lab up until every node is ready.\n# TYPE v6lab_lab_create_duration_seconds summary"
        );
        let _ = writeln!(
            o,
            "v6lab_lab_create_duration_seconds_sum {}",
            g(&self.lab_create_millis) as f64 / 1e3
        );
        let _ = writeln!(
            o,
            "v6lab_lab_create_duration_seconds_count {}",
            g(&self.labs_created)
        );
        let _ = writeln!(
            o,
            "# HELP v6lab_lab_create_failures_total Lab creations that failed (retried with backoff).\n# TYPE v6lab_lab_create_failures_total counter"
        );
        let _ = writeln!(
            o,
            "v6lab_lab_create_failures_total {}",
            g(&self.lab_create_failures)
        );
        let _ = writeln!(
            o,
            "# HELP v6lab_labs_deleted_total Labs removed (expired, deleted or orphaned).\n# TYPE v6lab_labs_deleted_total counter"
        );
        let _ = writeln!(o, "v6lab_labs_deleted_total {}", g(&self.labs_deleted));
        let _ = writeln!(
            o,
            "# HELP v6lab_auth_failures_total Requests refused for a missing or wrong token.\n# TYPE v6lab_auth_failures_total counter"
        );
        let _ = writeln!(o, "v6lab_auth_failures_total {}", g(&self.auth_failures));
        let _ = writeln!(
            o,
            "# HELP v6lab_checks_total Exercise checks run by the controller.\n# TYPE v6lab_checks_total counter"
        );
        let _ = writeln!(o, "v6lab_checks_total {}", g(&self.checks_run));
        for (name, help, kind, v) in [
            (
                "v6lab_execs_running",
                "Commands the controller runs in nodes now.",
                "gauge",
                &self.execs_running,
            ),
            (
                "v6lab_execs_limit",
                "Commands the controller runs in nodes at most at once.",
                "gauge",
                &self.execs_limit,
            ),
            (
                "v6lab_execs_stopped_total",
                "Commands in nodes stopped at their deadline or output cap.",
                "counter",
                &self.execs_stopped,
            ),
            (
                "v6lab_checks_refused_total",
                "Check-now requests refused (a run under way or its cooldown).",
                "counter",
                &self.checks_refused,
            ),
            (
                "v6lab_checks_skipped_total",
                "Labs skipped by a periodic check round: their previous run was still under way.",
                "counter",
                &self.checks_skipped,
            ),
        ] {
            let _ = writeln!(
                o,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                g(v)
            );
        }
        o
    }
}
