//! The controller: keeps the runtime equal to the store. A reconcile pass reads desired labs
//! (store) and observed labs (runtime labels), decides ([`crate::reconcile::decide`]) and runs
//! the actions as tasks: one lab's failure never blocks another's.

use crate::auth;
use crate::metrics::Metrics;
use crate::reconcile::{self, Action, Observed};
use crate::store::{EventRow, LabRow, LabState, Store, StoreError};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use v6lab_runtime::exercise::{ExerciseResult, Patience};
use v6lab_runtime::from_plan::{Apply, lab_spec};
use v6lab_runtime::runtime::{
    self, BoxFuture, Ensured, ExecLimits, ExecOutput, ImageError, ImageList, LabStatus, LabSummary,
    NoopObserver, Observer, Pipes, Recipe, Removed, Runtime, Streamed, Terminal,
};
use v6lab_runtime::spec::LabSpec;

/// Commands run in nodes at once by the controller (checks, reading topologies back), across
/// all labs: a room of hostile labs cannot make the controller run more.
pub const MAX_EXECS: usize = 32;
/// After a "check my work now" run, the lab's next one waits this long.
pub const CHECK_COOLDOWN: Duration = Duration::from_secs(10);
/// How long "check now" waits for a periodic run of the same lab to end before refusing.
const PERIODIC_WAIT: Duration = Duration::from_secs(60);
/// The longest one lab's check run may take, whatever its checks' timeouts add up to.
pub const MAX_CHECK_RUN: Duration = Duration::from_secs(120);
/// The longest a lab's creation may hold a creation slot.
pub const MAX_CREATE: Duration = Duration::from_secs(600);

/// Why a lab cannot be checked now; answered 429 with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRefused {
    pub lab: String,
    /// A run of this lab's checks is under way (else: one ended moments ago).
    pub running: bool,
    /// Whole seconds, at least 1.
    pub retry_after: u64,
}

impl CheckRefused {
    pub fn message(&self) -> String {
        let why = if self.running {
            format!("the checks of lab {} are running", self.lab)
        } else {
            format!("lab {} was checked moments ago", self.lab)
        };
        format!("{why}; try again in {} s", self.retry_after)
    }
}

impl IntoResponse for CheckRefused {
    fn into_response(self) -> Response {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, self.retry_after.to_string())],
            axum::Json(serde_json::json!({
                "error": self.message(),
                "retry_after": self.retry_after,
            })),
        )
            .into_response()
    }
}

/// Whether a lab may be checked on demand now: not while a run of its checks is under way,
/// and not within `cooldown` of the end of the last on-demand run. `Err(retry after)`.
pub fn may_check_now(
    running: bool,
    last_end: Option<Instant>,
    now: Instant,
    cooldown: Duration,
) -> Result<(), Duration> {
    if running {
        return Err(cooldown);
    }
    match last_end {
        Some(end) if now < end + cooldown => Err(end + cooldown - now),
        _ => Ok(()),
    }
}

/// Check runs under way (one at a time per lab) and when each lab's last on-demand run ended.
#[derive(Debug, Default)]
struct CheckGate {
    /// Labs whose checks run, and whether that run is on demand.
    running: BTreeMap<String, bool>,
    /// Labs with an on-demand request waiting for a periodic run to end (one each).
    waiting: BTreeSet<String>,
    last_end: BTreeMap<String, Instant>,
}

/// An on-demand request's place in the wait for a periodic run (one per lab).
struct WaitingPlace {
    ctl: Arc<Controller>,
    lab: String,
}

impl Drop for WaitingPlace {
    fn drop(&mut self) {
        self.ctl.gate().waiting.remove(&self.lab);
    }
}

/// A lab's check run; ends it in the gate when dropped, however the run ends.
pub struct CheckRun {
    ctl: Arc<Controller>,
    lab: String,
    on_demand: bool,
}

impl Drop for CheckRun {
    fn drop(&mut self) {
        let mut g = self.ctl.gate();
        g.running.remove(&self.lab);
        if self.on_demand {
            let now = Instant::now();
            // Entries whose cooldown is over decide nothing: the map stays as small as the
            // number of labs checked in the last few seconds.
            g.last_end.retain(|_, end| now < *end + CHECK_COOLDOWN);
            g.last_end.insert(self.lab.clone(), now);
        }
    }
}

/// The controller's way into nodes: every command waits for one of [`MAX_EXECS`] slots
/// (until `until` at the latest) and is counted.
struct Gated<'a> {
    ctl: &'a Controller,
    until: Instant,
}

impl Gated<'_> {
    async fn exec(
        &self,
        lab: &str,
        node: &str,
        argv: &[String],
        limits: ExecLimits,
    ) -> Result<ExecOutput, runtime::Error> {
        let until = tokio::time::Instant::from_std(self.until);
        let Ok(Ok(_permit)) = tokio::time::timeout_at(until, self.ctl.execs.acquire()).await else {
            return Err(runtime::Error::Io {
                context: format!("running a command in node {node} of lab {lab}"),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the controller is running too many commands at once; try again shortly",
                ),
            });
        };
        let m = &self.ctl.metrics;
        // Counted down however the exec ends, also when its caller drops it.
        struct Running<'a>(&'a std::sync::atomic::AtomicU64);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        m.execs_running.fetch_add(1, Ordering::Relaxed);
        let running = Running(&m.execs_running);
        let out = self.ctl.runtime.exec(lab, node, argv, limits).await;
        drop(running);
        if matches!(&out, Ok(o) if o.stopped.is_some()) {
            m.execs_stopped.fetch_add(1, Ordering::Relaxed);
        }
        out
    }
}

/// The controller's runtime with its commands gated; everything else passes through.
impl Runtime for Gated<'_> {
    fn up<'a>(
        &'a self,
        spec: &'a LabSpec,
        observer: &'a dyn Observer,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<(), runtime::Error>> {
        self.ctl.runtime.up(spec, observer, cancel)
    }

    fn down<'a>(&'a self, lab: &'a str) -> BoxFuture<'a, Result<Removed, runtime::Error>> {
        self.ctl.runtime.down(lab)
    }

    fn down_all(&self) -> BoxFuture<'_, Result<Removed, runtime::Error>> {
        self.ctl.runtime.down_all()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<LabSummary>, runtime::Error>> {
        self.ctl.runtime.list()
    }

    fn inspect<'a>(&'a self, lab: &'a str) -> BoxFuture<'a, Result<LabStatus, runtime::Error>> {
        self.ctl.runtime.inspect(lab)
    }

    fn stray_labs(&self) -> BoxFuture<'_, Result<BTreeSet<String>, runtime::Error>> {
        self.ctl.runtime.stray_labs()
    }

    fn exec<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        limits: ExecLimits,
    ) -> BoxFuture<'a, Result<ExecOutput, runtime::Error>> {
        Box::pin(Gated::exec(self, lab, node, argv, limits))
    }

    fn exec_interactive<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        term: Terminal<'a>,
    ) -> BoxFuture<'a, Result<i64, runtime::Error>> {
        self.ctl.runtime.exec_interactive(lab, node, argv, term)
    }

    fn exec_streamed<'a>(
        &'a self,
        lab: &'a str,
        node: &'a str,
        argv: &'a [String],
        pipes: Pipes<'a>,
        deadline: Option<Duration>,
    ) -> BoxFuture<'a, Result<Streamed, runtime::Error>> {
        self.ctl
            .runtime
            .exec_streamed(lab, node, argv, pipes, deadline)
    }

    fn ensure_image<'a>(
        &'a self,
        recipe: &'a Recipe,
        force: bool,
        progress: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<Ensured, ImageError>> {
        self.ctl.runtime.ensure_image(recipe, force, progress)
    }

    fn images(&self) -> BoxFuture<'_, Result<ImageList, ImageError>> {
        self.ctl.runtime.images()
    }
}

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
    /// The engine the labs run on (Docker in production, a fake in tests).
    pub runtime: Arc<dyn Runtime>,
    pub cfg: Config,
    pub metrics: Metrics,
    pub events: broadcast::Sender<EventRow>,
    busy: Mutex<BTreeSet<String>>,
    creating: Semaphore,
    checking: Semaphore,
    /// Commands in nodes at once ([`MAX_EXECS`]).
    execs: Semaphore,
    checks: Mutex<CheckGate>,
    /// Labs being created, each with the token that cancels its creation when it is deleted.
    creations: Mutex<BTreeMap<String, CancellationToken>>,
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
    pub fn new(store: Store, runtime: impl Runtime + 'static, cfg: Config) -> Arc<Controller> {
        let (events, _) = broadcast::channel(1024);
        let metrics = Metrics::default();
        metrics
            .execs_limit
            .store(MAX_EXECS as u64, Ordering::Relaxed);
        Arc::new(Controller {
            creating: Semaphore::new(cfg.create_concurrency.max(1)),
            checking: Semaphore::new(cfg.check_concurrency.max(1)),
            execs: Semaphore::new(MAX_EXECS),
            checks: Mutex::new(CheckGate::default()),
            creations: Mutex::new(BTreeMap::new()),
            store,
            runtime: Arc::new(runtime),
            cfg,
            metrics,
            events,
            busy: Mutex::new(BTreeSet::new()),
        })
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, CheckGate> {
        self.checks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn creations(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, CancellationToken>> {
        self.creations.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the creation of `lab` if one is under way (the lab was deleted): its `up` is
    /// abandoned, a command running in a node is killed, and the normal removal follows.
    pub fn cancel_creation(&self, lab: &str) -> bool {
        match self.creations().get(lab) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Cancels the creations of labs the store no longer has (a class was deleted).
    fn cancel_unwanted_creations(&self) {
        let being_made: Vec<String> = self.creations().keys().cloned().collect();
        for lab in being_made {
            if matches!(self.store.lab(&lab), Ok(None)) {
                self.cancel_creation(&lab);
            }
        }
    }

    /// A place to wait for the periodic run of `lab` under way: only when that run is periodic,
    /// and only one request per lab holds it (freed when dropped, however the request ends).
    fn wait_turn(self: &Arc<Self>, lab: &str) -> Option<WaitingPlace> {
        let mut g = self.gate();
        (g.running.get(lab) == Some(&false) && g.waiting.insert(lab.to_owned())).then(|| {
            WaitingPlace {
                ctl: self.clone(),
                lab: lab.to_owned(),
            }
        })
    }

    /// Starts a run of `lab`'s checks unless one is under way; `on_demand` runs ("check my
    /// work now") also keep the cooldown ([`may_check_now`]).
    pub fn begin_check(
        self: &Arc<Self>,
        lab: &str,
        on_demand: bool,
    ) -> Result<CheckRun, CheckRefused> {
        let mut g = self.gate();
        let running = g.running.contains_key(lab);
        let last = if on_demand {
            g.last_end.get(lab).copied()
        } else {
            None
        };
        if let Err(wait) = may_check_now(running, last, Instant::now(), CHECK_COOLDOWN) {
            self.metrics.checks_refused.fetch_add(1, Ordering::Relaxed);
            return Err(CheckRefused {
                lab: lab.to_owned(),
                running,
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            });
        }
        g.running.insert(lab.to_owned(), on_demand);
        Ok(CheckRun {
            ctl: self.clone(),
            lab: lab.to_owned(),
            on_demand,
        })
    }

    /// "Check my work now": the lab's checks, each until its timeout, unless the lab's checks
    /// are running or were run on demand moments ago.
    pub async fn check_now(
        self: &Arc<Self>,
        l: &LabRow,
    ) -> Result<Vec<ExerciseResult>, CheckRefused> {
        // A periodic run under way is waited for (one request per lab, bounded), not refused:
        // the student asked once, and the answer follows that run.
        let deadline = Instant::now() + PERIODIC_WAIT;
        let mut place: Option<WaitingPlace> = None;
        let _run = loop {
            match self.begin_check(&l.name, true) {
                Err(r)
                    if r.running
                        && Instant::now() < deadline
                        && (place.is_some() || {
                            place = self.wait_turn(&l.name);
                            place.is_some()
                        }) =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other?,
            }
        };
        drop(place);
        Ok(self.check_lab(l, Patience::UntilTimeout).await)
    }

    /// Records an event and tells live subscribers.
    pub fn event(&self, lab: Option<&str>, class: Option<&str>, kind: &str, message: &str) {
        // The delete paths announce themselves: a lab still being created stops at once.
        match (kind, lab) {
            ("deleting", Some(lab)) => {
                self.cancel_creation(lab);
            }
            ("class-deleted", _) => self.cancel_unwanted_creations(),
            _ => {}
        }
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
        // Links before containers: a lab being made has its containers before its links, so a
        // link seen here whose lab has no container in the listing below is truly left over
        // (read the other way round, a lab created between the two reads would look like
        // leftover links and be swept from under whoever is making it).
        let with_links = self.runtime.stray_labs().await;
        let observed: Vec<Observed> = self
            .runtime
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
        // desired lab owns them.
        let mut observed = observed;
        if let Ok(with_links) = with_links {
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
        // A lab deleted while being created (however it was deleted) stops being created.
        for (lab, token) in self.creations().iter() {
            if !desired.iter().any(|d| &d.name == lab) {
                token.cancel();
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
        match self.runtime.down(lab).await {
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
        let cancel = CancellationToken::new();
        self.creations().insert(lab.to_owned(), cancel.clone());
        struct Registered<'a>(&'a Controller, &'a str);
        impl Drop for Registered<'_> {
            fn drop(&mut self) {
                self.0.creations().remove(self.1);
            }
        }
        let _registered = Registered(self, lab);
        // A lab deleted while waiting for a slot never takes one.
        let _permit = tokio::select! {
            p = self.creating.acquire() => p.expect("semaphore"),
            _ = cancel.cancelled() => return,
        };
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
        let result = match tokio::time::timeout(MAX_CREATE, self.bring_up(&row, &cancel)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "lab {lab} was not ready within {} s; creation stopped",
                MAX_CREATE.as_secs()
            )),
        };
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
                let _ = self.runtime.down(lab).await;
            }
            Err(_) if !still_wanted || cancel.is_cancelled() => {
                let _ = self.runtime.down(lab).await;
                self.event(
                    Some(lab),
                    row.class.as_deref(),
                    "cancelled",
                    &format!("creating lab {lab} stopped: the lab was deleted"),
                );
            }
            Err(e) => {
                self.metrics
                    .lab_create_failures
                    .fetch_add(1, Ordering::Relaxed);
                let _ = self.runtime.down(lab).await;
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

    async fn bring_up(&self, row: &LabRow, cancel: &CancellationToken) -> Result<(), String> {
        // Whatever a previous attempt or a crash left is removed first.
        self.runtime
            .down(&row.name)
            .await
            .map_err(|e| e.to_string())?;
        let (_, plan) =
            crate::variation::plan_lab(&self.store, row, v6lab_core::policy::current())?;
        let copy = crate::variation::node_copy(&self.store, row).map_err(|e| e.to_string())?;
        let apply = if row.complete {
            Apply::Complete
        } else {
            Apply::Exercises
        };
        let mut spec = lab_spec(
            &plan,
            &copy,
            &row.name,
            &self.cfg.image,
            Some(row.expires as u64),
            apply,
        );
        spec.owner = self.cfg.owner.clone();
        self.runtime
            .up(&spec, &NoopObserver, cancel)
            .await
            .map_err(|e| e.to_string())
    }

    async fn adopt(&self, lab: &str) {
        let st = match self.runtime.inspect(lab).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(lab, error = %e, "cannot adopt");
                return;
            }
        };
        let nodes: Vec<String> = st.nodes.iter().map(|n| n.node.clone()).collect();
        let gated = Gated {
            ctl: self,
            until: Instant::now() + MAX_CHECK_RUN,
        };
        let Ok((source, plan)) = v6lab_runtime::exercise::lab_plan(&gated, lab, &nodes).await
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

    /// Starts a run of the checks of every ready class lab, each in its own task with its own
    /// deadline, and returns without waiting for them: a slow or hostile lab never delays the
    /// others' next round. A lab whose previous run is still under way is skipped this round.
    /// At most `check_concurrency` labs run at once, so checks never starve creation.
    pub fn check_all(self: &Arc<Self>) -> Result<(), StoreError> {
        let labs: Vec<LabRow> = self
            .store
            .labs()?
            .into_iter()
            .filter(|l| l.state == LabState::Ready && l.class.is_some())
            .collect();
        for l in labs {
            let Ok(run) = self.begin_check(&l.name, false) else {
                self.metrics.checks_skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let this = self.clone();
            tokio::spawn(async move {
                let _run = run;
                let _p = this.checking.acquire().await.expect("semaphore");
                this.check_lab(&l, Patience::Once).await;
            });
        }
        Ok(())
    }

    /// Runs one lab's checks now and records the results.
    pub async fn check_lab(&self, l: &LabRow, patience: Patience) -> Vec<ExerciseResult> {
        let Ok(plan) = crate::variation::replan_lab(&self.store, l) else {
            return Vec::new();
        };
        // The lab's own deadline: its checks' budget, capped.
        let until =
            Instant::now() + v6lab_runtime::exercise::budget(&plan, None).min(MAX_CHECK_RUN);
        let gated = Gated { ctl: self, until };
        let results =
            v6lab_runtime::exercise::run_exercises(&gated, &l.name, &plan, None, patience, until)
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
            if let Err(e) = self.check_all() {
                tracing::warn!(error = %e, "progress checks");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_now_waits_for_a_running_check_and_the_cooldown() {
        let t = Instant::now();
        let cool = Duration::from_secs(5);
        assert_eq!(may_check_now(false, None, t, cool), Ok(()));
        // One run at a time.
        assert_eq!(may_check_now(true, None, t, cool), Err(cool));
        // The cooldown counts from the end of the last run.
        let end = t;
        let later = |ms| t + Duration::from_millis(ms);
        assert_eq!(
            may_check_now(false, Some(end), later(1500), cool),
            Err(Duration::from_millis(3500))
        );
        assert_eq!(may_check_now(false, Some(end), later(5000), cool), Ok(()));
        assert_eq!(may_check_now(false, Some(end), later(60_000), cool), Ok(()));
    }

    #[test]
    fn refusals_say_when_to_retry() {
        let r = CheckRefused {
            lab: "student-01".into(),
            running: false,
            retry_after: 4,
        };
        assert_eq!(
            r.message(),
            "lab student-01 was checked moments ago; try again in 4 s"
        );
        let resp = r.into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "4");
    }

    /// The controller's executor, expiry and recovery against a runtime in memory.
    mod with_a_fake_runtime {
        use super::*;
        use v6lab_runtime::fake::{Fake, Up};

        const TOPOLOGY: &str = include_str!("../../../topologies/ipv6-basics.yaml");
        const OWNER: &str = "controller-test";

        fn controller(fake: &Arc<Fake>) -> Arc<Controller> {
            let cfg = Config {
                state_dir: std::env::temp_dir(),
                warn_before: 60,
                max_lifetime: 86_400,
                tick: Duration::from_secs(1),
                create_concurrency: 2,
                check_interval: Duration::ZERO,
                check_concurrency: 1,
                image: "v6lab/node:test".into(),
                owner: OWNER.into(),
            };
            Controller::new(Store::memory().unwrap(), fake.clone(), cfg)
        }

        fn row(name: &str, state: LabState, expires_in: i64) -> LabRow {
            LabRow {
                topology: TOPOLOGY.into(),
                topology_name: "ipv6-basics".into(),
                created: now(),
                expires: now() + expires_in,
                state,
                ..LabRow::sample(name, &auth::new_token("v6s_"))
            }
        }

        /// A lab on the runtime: `nodes` of `expected` made, by `owner`.
        fn on_runtime(fake: &Fake, lab: &str, owner: &str, nodes: usize, expected: usize) {
            fake.state().labs.insert(
                lab.into(),
                runtime::LabSummary {
                    lab: lab.into(),
                    topology: "ipv6-basics".into(),
                    topology_hash: String::new(),
                    nodes,
                    running: nodes,
                    expires_at: None,
                    owner: owner.into(),
                    expected_nodes: expected,
                },
            );
        }

        /// Polls `ok` until it holds, for at most 10 s.
        async fn until(what: &str, ok: impl Fn() -> bool) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !ok() {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }

        fn events(ctl: &Controller, lab: &str) -> Vec<String> {
            ctl.store
                .events(0, 1000)
                .unwrap()
                .into_iter()
                .filter(|e| e.lab.as_deref() == Some(lab))
                .map(|e| e.kind)
                .collect()
        }

        fn idle(ctl: &Controller) -> bool {
            ctl.busy.lock().unwrap().is_empty()
        }

        #[tokio::test]
        async fn a_lab_that_expires_is_removed_and_forgotten() {
            let fake = Arc::new(Fake::new());
            let ctl = controller(&fake);
            on_runtime(&fake, "t-old", OWNER, 3, 3);
            ctl.store
                .insert_lab(&row("t-old", LabState::Ready, -1))
                .unwrap();
            let actions = ctl.clone().reconcile_once().await.unwrap();
            assert_eq!(actions, vec![Action::Expire("t-old".into())]);
            until("the expired lab to go", || {
                fake.labs().is_empty() && idle(&ctl)
            })
            .await;
            assert!(ctl.store.lab("t-old").unwrap().is_none());
            assert!(events(&ctl, "t-old").contains(&"expired".to_string()));
            assert_eq!(fake.state().downs, vec!["t-old".to_string()]);
        }

        #[tokio::test]
        async fn a_lab_deleted_while_being_created_stops_being_created() {
            let fake = Arc::new(Fake::new());
            fake.set_up(Up::Hang);
            let ctl = controller(&fake);
            ctl.store
                .insert_lab(&row("t-new", LabState::Pending, 3600))
                .unwrap();
            let actions = ctl.clone().reconcile_once().await.unwrap();
            assert_eq!(actions, vec![Action::Create("t-new".into())]);
            until("the creation to hang", || fake.state().coming_up == 1).await;
            assert_eq!(fake.labs(), vec!["t-new".to_string()]);
            // Deleted as the API does it: the row goes, the event announces it.
            ctl.store.delete_lab("t-new").unwrap();
            ctl.event(
                Some("t-new"),
                None,
                "deleting",
                "lab t-new is being deleted",
            );
            until("the creation to stop and its lab to go", || {
                fake.state().coming_up == 0 && fake.labs().is_empty() && idle(&ctl)
            })
            .await;
            assert!(events(&ctl, "t-new").contains(&"cancelled".to_string()));
            assert_eq!(fake.state().ups, vec!["t-new".to_string()]);
        }

        #[tokio::test]
        async fn a_half_made_lab_is_repaired_and_leftovers_are_removed_at_start() {
            let fake = Arc::new(Fake::new());
            // What a controller killed mid-creation leaves: a lab of its own with one node of
            // three, one of its labs it no longer wants, and links without any container.
            on_runtime(&fake, "t-half", OWNER, 1, 3);
            on_runtime(&fake, "t-unwanted", OWNER, 3, 3);
            fake.state().stray.insert("t-links".into());
            // Someone else's lab is left alone.
            on_runtime(&fake, "t-other", "controller-elsewhere", 3, 3);
            let ctl = controller(&fake);
            ctl.store
                .insert_lab(&row("t-half", LabState::Ready, 3600))
                .unwrap();
            let mut actions = ctl.clone().reconcile_once().await.unwrap();
            actions.sort();
            assert_eq!(
                actions,
                vec![
                    Action::DeleteOrphan("t-links".into()),
                    Action::DeleteOrphan("t-unwanted".into()),
                    Action::Repair("t-half".into()),
                ]
            );
            until("the repair and the removals", || {
                let st = fake.state();
                st.stray.is_empty()
                    && st.labs.keys().eq(["t-half", "t-other"])
                    && st.labs["t-half"].nodes == st.labs["t-half"].expected_nodes
            })
            .await;
            until("the tasks to end", || idle(&ctl)).await;
            assert_eq!(
                ctl.store.lab("t-half").unwrap().unwrap().state,
                LabState::Ready
            );
            let kinds = events(&ctl, "t-half");
            assert!(kinds.contains(&"repairing".to_string()), "{kinds:?}");
            assert!(kinds.contains(&"ready".to_string()), "{kinds:?}");
            // What was there was removed before the lab was made again.
            {
                let st = fake.state();
                assert!(st.downs.contains(&"t-half".to_string()));
                assert_eq!(st.ups, vec!["t-half".to_string()]);
            }
            // Nothing more to do.
            assert_eq!(ctl.clone().reconcile_once().await.unwrap(), vec![]);
        }

        #[tokio::test]
        async fn a_failed_creation_is_cleaned_up_and_retried_only_after_its_backoff() {
            let fake = Arc::new(Fake::new());
            fake.set_up(Up::Fail("radvd: no such file".into()));
            let ctl = controller(&fake);
            ctl.store
                .insert_lab(&row("t-bad", LabState::Pending, 3600))
                .unwrap();
            ctl.clone().reconcile_once().await.unwrap();
            until("the creation to fail", || {
                matches!(ctl.store.lab("t-bad"), Ok(Some(l)) if l.state == LabState::Failed)
                    && idle(&ctl)
            })
            .await;
            let l = ctl.store.lab("t-bad").unwrap().unwrap();
            assert_eq!(l.attempts, 1);
            assert!(
                l.next_try > now(),
                "retried at {} (now {})",
                l.next_try,
                now()
            );
            assert!(l.last_error.unwrap().contains("radvd: no such file"));
            assert!(fake.labs().is_empty(), "the half-made lab is removed");
            assert!(events(&ctl, "t-bad").contains(&"error".to_string()));
            // Within the backoff the lab is not tried again.
            assert_eq!(ctl.clone().reconcile_once().await.unwrap(), vec![]);
            assert_eq!(fake.state().ups.len(), 1);
        }
    }

    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc(1_795_683_987), "2026-11-26 09:06 UTC");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00 UTC");
    }
}
