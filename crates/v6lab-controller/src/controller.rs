//! The controller: keeps the runtime equal to the store. A reconcile pass reads desired labs
//! (store) and observed labs (runtime labels), decides ([`crate::reconcile::decide`]) and runs
//! the actions as tasks: one lab's failure never blocks another's.

use crate::auth;
use crate::metrics::Metrics;
use crate::reconcile::{self, Action, Observed};
use crate::store::{EventRow, LabRow, LabState, Store, StoreError};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, broadcast};
use v6lab_runtime::docker::{Docker, NoopObserver};
use v6lab_runtime::exercise::Patience;
use v6lab_runtime::from_plan::{Apply, lab_spec};

/// A unix time as `2026-11-26 09:45 UTC`, for messages people read.
pub fn utc(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60
    )
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    /// Warn this many seconds before a lab expires.
    pub warn_before: i64,
    /// No lab or class may live longer than this (seconds).
    pub max_lifetime: i64,
    /// Time between reconcile passes.
    pub tick: Duration,
    /// Labs created at once.
    pub create_concurrency: usize,
    /// Time between progress checks of class labs (0: never).
    pub check_interval: Duration,
    /// Checks run at once across labs.
    pub check_concurrency: usize,
    /// The lab image (already built).
    pub image: String,
    /// This controller's owner label on the labs it creates (`controller-<id>`).
    pub owner: String,
}

pub struct Controller {
    pub store: Store,
    pub docker: Docker,
    pub cfg: Config,
    pub metrics: Metrics,
    pub events: broadcast::Sender<EventRow>,
    busy: Mutex<BTreeSet<String>>,
    creating: Semaphore,
    checking: Semaphore,
}

/// Removes a lab from the busy set when its task ends, however it ends.
struct BusyGuard(Arc<Controller>, String);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

impl Controller {
    pub fn new(store: Store, docker: Docker, cfg: Config) -> Arc<Controller> {
        let (events, _) = broadcast::channel(1024);
        Arc::new(Controller {
            creating: Semaphore::new(cfg.create_concurrency.max(1)),
            checking: Semaphore::new(cfg.check_concurrency.max(1)),
            store,
            docker,
            cfg,
            metrics: Metrics::default(),
            events,
            busy: Mutex::new(BTreeSet::new()),
        })
    }

    /// Records an event and tells live subscribers.
    pub fn event(&self, lab: Option<&str>, class: Option<&str>, kind: &str, message: &str) {
        let ts = now();
        match self.store.event(ts, lab, class, kind, message) {
            Ok(id) => {
                let _ = self.events.send(EventRow {
                    id,
                    ts,
                    lab: lab.map(str::to_owned),
                    class: class.map(str::to_owned),
                    kind: kind.to_owned(),
                    message: message.to_owned(),
                });
            }
            Err(e) => tracing::error!(error = %e, "recording an event"),
        }
        tracing::info!(lab, class, kind, "{message}");
    }

    /// Runs reconcile passes forever.
    pub async fn run(self: Arc<Self>) {
        loop {
            if let Err(e) = self.clone().reconcile_once().await {
                self.metrics
                    .reconcile_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "reconcile pass failed; retrying");
            }
            tokio::time::sleep(self.cfg.tick).await;
        }
    }

    /// One pass: decide and start the actions (they finish in the background).
    pub async fn reconcile_once(self: Arc<Self>) -> Result<Vec<Action>, String> {
        let started = Instant::now();
        // Busy labs first: a task that ends after this snapshot is still seen as busy; one that
        // ended before it has written its result, which the store read below sees.
        let busy = self.busy.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let desired = self.store.labs().map_err(|e| e.to_string())?;
        let observed: Vec<Observed> = self
            .docker
            .list()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|l| Observed {
                name: l.lab,
                nodes: l.nodes,
                running: l.running,
                expected_nodes: l.expected_nodes,
                owner: l.owner,
                expires: l.expires_at.map(|e| e as i64),
            })
            .collect();
        // Links without any container: left by a killed `up` or `down`. Ours to sweep when no
        // desired lab owns them (a lab being made has its containers before its links).
        let mut observed = observed;
        if let Ok(with_links) = self.docker.labs_with_links().await {
            for lab in with_links {
                if !observed.iter().any(|o| o.name == lab) {
                    observed.push(Observed {
                        name: lab,
                        nodes: 0,
                        running: 0,
                        expected_nodes: 0,
                        owner: String::new(),
                        expires: None,
                    });
                }
            }
        }
        let actions = reconcile::decide(
            now(),
            self.cfg.warn_before,
            &self.cfg.owner,
            &desired,
            &observed,
            &busy,
        );
        self.metrics.reconciles.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .reconcile_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        for a in &actions {
            if let Action::Warn(lab) = a {
                // Quick: no task needed.
                if let Some(l) = desired.iter().find(|d| &d.name == lab) {
                    let mins = ((l.expires - now()).max(0) + 59) / 60;
                    self.event(
                        Some(lab),
                        l.class.as_deref(),
                        "expiring",
                        &format!("lab {lab} expires in {mins} min"),
                    );
                    let _ = self.store.set_warned(lab);
                }
                continue;
            }
            {
                let mut b = self.busy.lock().unwrap_or_else(|p| p.into_inner());
                if !b.insert(a.lab().to_owned()) {
                    continue;
                }
            }
            let this = self.clone();
            let action = a.clone();
            tokio::spawn(async move {
                let _guard = BusyGuard(this.clone(), action.lab().to_owned());
                this.execute(action).await;
            });
        }
        Ok(actions)
    }

    async fn execute(self: &Arc<Self>, action: Action) {
        match action {
            Action::Create(lab) => self.create(&lab, false).await,
            Action::Repair(lab) => self.create(&lab, true).await,
            Action::Expire(lab) => {
                let class = self.store.lab(&lab).ok().flatten().and_then(|l| l.class);
                if self.remove(&lab).await {
                    let _ = self.store.delete_lab(&lab);
                    self.event(
                        Some(&lab),
                        class.as_deref(),
                        "expired",
                        &format!("lab {lab} reached the end of its lifetime and was removed"),
                    );
                    if let Ok(gone) = self.store.drop_empty_classes() {
                        for c in gone {
                            self.event(
                                None,
                                Some(&c),
                                "class-expired",
                                &format!("class {c} ended: every lab is gone"),
                            );
                        }
                    }
                }
            }
            Action::DeleteOrphan(lab) => {
                if self.remove(&lab).await {
                    self.event(
                        Some(&lab),
                        None,
                        "deleted",
                        &format!("lab {lab} removed: no longer wanted"),
                    );
                }
            }
            Action::Adopt(lab) => self.adopt(&lab).await,
            Action::Forget(lab) => {
                let _ = self.store.delete_lab(&lab);
                self.event(
                    Some(&lab),
                    None,
                    "forgotten",
                    &format!("lab {lab} was removed outside the controller"),
                );
            }
            Action::Warn(_) => {}
        }
    }

    /// Removes a lab's runtime objects; false (and an error event) when the runtime refused.
    async fn remove(&self, lab: &str) -> bool {
        match self.docker.down(lab).await {
            Ok(_) => {
                self.metrics.labs_deleted.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.event(
                    Some(lab),
                    None,
                    "error",
                    &format!("removing lab {lab} failed: {e}"),
                );
                false
            }
        }
    }

    async fn create(self: &Arc<Self>, lab: &str, repair: bool) {
        let _permit = self.creating.acquire().await.expect("semaphore");
        let Ok(Some(row)) = self.store.lab(lab) else {
            return;
        };
        if repair {
            self.event(
                Some(lab),
                row.class.as_deref(),
                "repairing",
                &format!("lab {lab} lost nodes; recreating it"),
            );
        }
        let started = Instant::now();
        let result = self.bring_up(&row).await;
        // The lab may have been deleted meanwhile: then it must not stay.
        let still_wanted = matches!(self.store.lab(lab), Ok(Some(_)));
        match result {
            Ok(()) if still_wanted => {
                let _ = self.store.set_state(lab, LabState::Ready, None, 0);
                self.metrics.labs_created.fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .lab_create_millis
                    .fetch_add(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                self.event(
                    Some(lab),
                    row.class.as_deref(),
                    "ready",
                    &format!(
                        "lab {lab} is ready ({:.1}s)",
                        started.elapsed().as_secs_f32()
                    ),
                );
            }
            Ok(()) => {
                let _ = self.docker.down(lab).await;
            }
            Err(e) => {
                self.metrics
                    .lab_create_failures
                    .fetch_add(1, Ordering::Relaxed);
                let _ = self.docker.down(lab).await;
                let retry = now() + reconcile::backoff(row.attempts + 1);
                let _ = self.store.set_state(lab, LabState::Failed, Some(&e), retry);
                self.event(
                    Some(lab),
                    row.class.as_deref(),
                    "error",
                    &format!(
                        "creating lab {lab} failed (attempt {}): {e}",
                        row.attempts + 1
                    ),
                );
            }
        }
    }

    async fn bring_up(&self, row: &LabRow) -> Result<(), String> {
        // Whatever a previous attempt or a crash left is removed first.
        self.docker
            .down(&row.name)
            .await
            .map_err(|e| e.to_string())?;
        let (_, plan) = v6lab_core::plan_source(&row.topology_name, row.topology.as_bytes())
            .map_err(|(s, d)| d.render(&s.text))?;
        let apply = if row.complete {
            Apply::Complete
        } else {
            Apply::Exercises
        };
        let mut spec = lab_spec(
            &plan,
            &row.topology,
            &row.name,
            &self.cfg.image,
            Some(row.expires as u64),
            apply,
        );
        spec.owner = self.cfg.owner.clone();
        self.docker
            .up(&spec, &NoopObserver)
            .await
            .map_err(|e| e.to_string())
    }

    async fn adopt(&self, lab: &str) {
        let st = match self.docker.inspect(lab).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(lab, error = %e, "cannot adopt");
                return;
            }
        };
        let nodes: Vec<String> = st.nodes.iter().map(|n| n.node.clone()).collect();
        let Ok((source, plan)) = v6lab_runtime::exercise::lab_plan(&self.docker, lab, &nodes).await
        else {
            return;
        };
        let t = now();
        let expires = st
            .expires_at
            .map(|e| e as i64)
            .unwrap_or(t + plan.lifetime_secs as i64)
            .min(t + self.cfg.max_lifetime);
        let row = LabRow {
            name: lab.to_owned(),
            class: None,
            student: None,
            topology: source,
            topology_name: plan.name.clone(),
            token: auth::new_token("v6s_"),
            created: t,
            expires,
            state: LabState::Ready,
            attempts: 0,
            next_try: 0,
            last_error: None,
            warned: false,
            complete: false,
            adopted: true,
        };
        if self.store.insert_lab(&row).is_ok() {
            self.event(
                Some(lab),
                None,
                "adopted",
                &format!(
                    "lab {lab} (started by `v6lab up`) is now managed; it expires at {}",
                    utc(expires)
                ),
            );
        }
    }

    /// Runs the checks of every ready class lab once, bounded so checks never starve creation.
    pub async fn check_all(self: &Arc<Self>) -> Result<(), StoreError> {
        let labs: Vec<LabRow> = self
            .store
            .labs()?
            .into_iter()
            .filter(|l| l.state == LabState::Ready && l.class.is_some())
            .collect();
        let mut tasks = Vec::new();
        for l in labs {
            let this = self.clone();
            tasks.push(tokio::spawn(async move {
                let _p = this.checking.acquire().await.expect("semaphore");
                this.check_lab(&l, Patience::Once).await;
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }

    /// Runs one lab's checks now and records the results.
    pub async fn check_lab(
        &self,
        l: &LabRow,
        patience: Patience,
    ) -> Vec<v6lab_runtime::exercise::ExerciseResult> {
        let Ok((_, plan)) = v6lab_core::plan_source(&l.topology_name, l.topology.as_bytes()) else {
            return Vec::new();
        };
        let results =
            v6lab_runtime::exercise::run_exercises(&self.docker, &l.name, &plan, None, patience)
                .await;
        let t = now();
        for e in &results {
            self.metrics
                .checks_run
                .fetch_add(e.checks.len() as u64, Ordering::Relaxed);
            let detail = e
                .checks
                .iter()
                .map(|c| format!("{}: {}", c.title, c.detail))
                .collect::<Vec<_>>()
                .join("; ");
            if let Ok(true) = self
                .store
                .record_progress(&l.name, &e.id, e.passed, t, &detail)
            {
                let kind = if e.passed {
                    "exercise-passed"
                } else {
                    "exercise-failing"
                };
                self.event(
                    Some(&l.name),
                    l.class.as_deref(),
                    kind,
                    &format!(
                        "{}: exercise {} {}",
                        l.name,
                        e.id,
                        if e.passed { "passes" } else { "fails" }
                    ),
                );
            }
        }
        results
    }

    /// Periodic progress checks, forever.
    pub async fn run_checks(self: Arc<Self>) {
        if self.cfg.check_interval.is_zero() {
            return;
        }
        loop {
            tokio::time::sleep(self.cfg.check_interval).await;
            if let Err(e) = self.check_all().await {
                tracing::warn!(error = %e, "progress checks");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc(1_795_683_987), "2026-11-26 09:06 UTC");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00 UTC");
    }
}
