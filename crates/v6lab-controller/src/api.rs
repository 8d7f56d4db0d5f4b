//! The controller's HTTP API (axum). Every management call needs the administrator token; a
//! student token opens only its own lab. Refusals say nothing about which labs exist.

use crate::access::{Admin, Caller, LabAccess, err, internal};
pub use crate::access::{Api, ApiError, Principal};
use crate::api_types::{
    CheckRun, Class, ClassProgress, ClassSummary, Deleted, ExerciseInfo, Expiry, Extend, Lab,
    LabProgress, NewClass, NewLab, NodeInfo, StudentProgress, Token,
};
use crate::auth;
use crate::controller::now;
use crate::store::{ClassRow, LabRow, LabState};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use std::time::Duration;

pub fn router(api: Api) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/classes", post(create_class).get(list_classes))
        .route("/api/classes/{class}", get(show_class).delete(delete_class))
        .route("/api/classes/{class}/extend", post(extend_class))
        .route("/api/classes/{class}/progress", get(class_progress))
        .route("/api/labs", get(list_labs).post(create_lab))
        .route("/api/labs/{lab}", get(show_lab).delete(delete_lab))
        .route("/api/labs/{lab}/extend", post(extend_lab))
        .route(
            "/api/labs/{lab}/checks",
            get(lab_checks).post(check_lab_now),
        )
        .route("/api/events", get(events))
        .route("/api/admin/rotate-token", post(rotate_token))
        .merge(crate::web::router())
        .with_state(api)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(api): State<Api>) -> Result<Response, ApiError> {
    let labs = api.ctl.store.labs().map_err(internal)?;
    let count = |s: LabState| labs.iter().filter(|l| l.state == s).count();
    let body = api.ctl.metrics.render(&[
        ("pending", count(LabState::Pending)),
        ("ready", count(LabState::Ready)),
        ("failed", count(LabState::Failed)),
    ]);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

fn lifetime_secs(api: &Api, given: Option<&str>, default: u64) -> Result<i64, ApiError> {
    let secs = match given {
        Some(l) => v6lab_core::values::parse_duration(l).map_err(|e| {
            err(
                StatusCode::BAD_REQUEST,
                format!("lifetime `{l}`: {e}; write e.g. 90m or 3h"),
            )
        })?,
        None => default,
    };
    // Beyond i64: longer than any maximum, refused as such below.
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    if secs > api.ctl.cfg.max_lifetime {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!(
                "the lifetime {secs}s is longer than this controller allows ({}s)",
                api.ctl.cfg.max_lifetime
            ),
        ));
    }
    if secs <= 0 {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "the lifetime must be longer than zero",
        ));
    }
    Ok(secs)
}

fn plan_or_400(file: &str, topology: &str) -> Result<v6lab_core::Plan, ApiError> {
    v6lab_core::plan_source(file, topology.as_bytes())
        .map(|(_, p)| p)
        .map_err(|(s, d)| err(StatusCode::UNPROCESSABLE_ENTITY, d.render(&s.text)))
}

fn class_of(c: &ClassRow, labs: &[LabRow]) -> Class {
    Class {
        name: c.name.clone(),
        topology: c.topology_name.clone(),
        created: c.created,
        expires: c.expires,
        labs: labs.iter().map(|l| Lab::of(l, true)).collect(),
    }
}

async fn create_class(
    State(api): State<Api>,
    _: Admin,
    Json(req): Json<NewClass>,
) -> Result<Response, ApiError> {
    let file = req
        .topology_file
        .clone()
        .unwrap_or_else(|| "topology.yaml".into());
    let plan = plan_or_400(&file, &req.topology)?;
    let lifetime = lifetime_secs(&api, req.lifetime.as_deref(), plan.lifetime_secs)?;
    let name = match &req.name {
        Some(n) => n.clone(),
        None => {
            let existing = api.ctl.store.classes().map_err(internal)?;
            (1..)
                .map(|i| format!("{}-{i}", plan.name))
                .find(|n| !existing.iter().any(|c| &c.name == n))
                .expect("a free name")
        }
    };
    if let Some(p) = v6lab_core::values::dns_label_problem(&name, 24) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("class name `{name}`: {p}"),
        ));
    }
    let students: Vec<String> = match (&req.roster, req.students) {
        (Some(r), _) if !r.is_empty() => {
            r.iter().map(|s| v6lab_core::values::dns_safe(s)).collect()
        }
        (_, Some(n)) if n > 0 => (1..=n).map(|i| format!("student-{i:02}")).collect(),
        _ => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "give `students` (a number) or a `roster` (names)",
            ));
        }
    };
    // One plan per student: off the async threads.
    let (f, t, s) = (file.clone(), req.topology.clone(), students.clone());
    tokio::task::spawn_blocking(move || crate::variation::check_class(&f, &t, &s))
        .await
        .map_err(internal)?
        .map_err(|(code, message)| err(code, message))?;
    let mut seen = std::collections::HashSet::new();
    for s in &students {
        if s.is_empty() || !seen.insert(s.clone()) {
            return Err(err(
                StatusCode::BAD_REQUEST,
                format!("student name `{s}` is empty or appears twice in the roster"),
            ));
        }
        let lab = format!("{name}-{s}");
        if let Some(p) = v6lab_core::values::dns_label_problem(&lab, 40) {
            return Err(err(
                StatusCode::BAD_REQUEST,
                format!("lab name `{lab}`: {p}; use shorter class or student names"),
            ));
        }
    }
    if api.ctl.store.class(&name).map_err(internal)?.is_some() {
        return Err(err(
            StatusCode::CONFLICT,
            format!("class {name} exists already"),
        ));
    }
    let t = now();
    let class = ClassRow {
        name: name.clone(),
        topology_name: plan.name.clone(),
        topology: req.topology.clone(),
        created: t,
        expires: t + lifetime,
    };
    let labs: Vec<LabRow> = students
        .iter()
        .map(|s| LabRow {
            name: format!("{name}-{s}"),
            class: Some(name.clone()),
            student: Some(s.clone()),
            topology: req.topology.clone(),
            topology_name: plan.name.clone(),
            token: auth::new_token("v6s_"),
            created: t,
            expires: t + lifetime,
            state: LabState::Pending,
            attempts: 0,
            next_try: 0,
            last_error: None,
            warned: false,
            complete: false,
            adopted: false,
        })
        .collect();
    for l in &labs {
        if api.ctl.store.lab(&l.name).map_err(internal)?.is_some() {
            return Err(err(
                StatusCode::CONFLICT,
                format!("lab {} exists already", l.name),
            ));
        }
    }
    crate::variation::record(&api.ctl.store, &name, &students).map_err(internal)?;
    api.ctl
        .store
        .insert_class(&class, &labs)
        .map_err(internal)?;
    api.ctl.event(
        None,
        Some(&name),
        "class-created",
        &format!("class {name}: {} labs of {}", labs.len(), plan.name),
    );
    Ok((StatusCode::CREATED, Json(class_of(&class, &labs))).into_response())
}

async fn list_classes(
    State(api): State<Api>,
    _: Admin,
) -> Result<Json<Vec<ClassSummary>>, ApiError> {
    let classes = api.ctl.store.classes().map_err(internal)?;
    let mut out = Vec::new();
    for c in classes {
        let labs = api.ctl.store.class_labs(&c.name).map_err(internal)?;
        let count = |s: LabState| labs.iter().filter(|l| l.state == s).count();
        out.push(ClassSummary {
            labs: labs.len(),
            ready: count(LabState::Ready),
            failed: count(LabState::Failed),
            name: c.name,
            topology: c.topology_name,
            created: c.created,
            expires: c.expires,
        });
    }
    Ok(Json(out))
}

async fn show_class(
    State(api): State<Api>,
    _: Admin,
    Path(class): Path<String>,
) -> Result<Json<Class>, ApiError> {
    let c = api
        .ctl
        .store
        .class(&class)
        .map_err(internal)?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no class {class}")))?;
    let labs = api.ctl.store.class_labs(&class).map_err(internal)?;
    Ok(Json(class_of(&c, &labs)))
}

/// The new expiry of something created at `created` and expiring at `expires`, extended by
/// `by` seconds at `now`; `None` beyond `max_lifetime` (or beyond what the clock can hold).
fn extended_expiry(
    by: u64,
    created: i64,
    expires: i64,
    now: i64,
    max_lifetime: i64,
) -> Option<i64> {
    let new = expires.max(now).checked_add(i64::try_from(by).ok()?)?;
    (new.checked_sub(created)? <= max_lifetime).then_some(new)
}

/// [`extended_expiry`] of a request; refused with a reason.
fn extended(
    api: &Api,
    req: &Extend,
    created: i64,
    expires: i64,
    what: &str,
) -> Result<i64, ApiError> {
    let by = v6lab_core::values::parse_duration(&req.by).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            format!("`{}`: {e}; write e.g. 30m or 1h", req.by),
        )
    })?;
    extended_expiry(by, created, expires, now(), api.ctl.cfg.max_lifetime).ok_or_else(|| {
        err(
            StatusCode::BAD_REQUEST,
            format!(
                "that would make the {what} live longer than this controller allows ({}s)",
                api.ctl.cfg.max_lifetime
            ),
        )
    })
}

async fn extend_class(
    State(api): State<Api>,
    _: Admin,
    Path(class): Path<String>,
    Json(req): Json<Extend>,
) -> Result<Json<Expiry>, ApiError> {
    let c = api
        .ctl
        .store
        .class(&class)
        .map_err(internal)?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no class {class}")))?;
    let expires = extended(&api, &req, c.created, c.expires, "class")?;
    api.ctl
        .store
        .extend_class(&class, expires)
        .map_err(internal)?;
    api.ctl.event(
        None,
        Some(&class),
        "extended",
        &format!(
            "class {class} now expires at {}",
            crate::controller::utc(expires)
        ),
    );
    Ok(Json(Expiry {
        name: class,
        expires,
    }))
}

async fn delete_class(
    State(api): State<Api>,
    _: Admin,
    Path(class): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    if !api.ctl.store.delete_class(&class).map_err(internal)? {
        return Err(err(StatusCode::NOT_FOUND, format!("no class {class}")));
    }
    api.ctl.event(
        None,
        Some(&class),
        "class-deleted",
        &format!("class {class} deleted; its labs are being removed"),
    );
    Ok(Json(Deleted { deleted: class }))
}

async fn class_progress(
    State(api): State<Api>,
    _: Admin,
    Path(class): Path<String>,
) -> Result<Json<ClassProgress>, ApiError> {
    let c = api
        .ctl
        .store
        .class(&class)
        .map_err(internal)?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no class {class}")))?;
    let plan = plan_or_400(&c.topology_name, &c.topology)?;
    let exercises = plan.exercises.iter().map(|e| e.id.clone()).collect();
    let mut students = Vec::new();
    for l in api.ctl.store.class_labs(&class).map_err(internal)? {
        let p = api.ctl.store.progress(&l.name).map_err(internal)?;
        students.push(StudentProgress {
            lab: l.name,
            student: l.student,
            state: l.state,
            exercises: p,
        });
    }
    Ok(Json(ClassProgress {
        class,
        exercises,
        students,
    }))
}

async fn create_lab(
    State(api): State<Api>,
    _: Admin,
    Json(req): Json<NewLab>,
) -> Result<Response, ApiError> {
    let plan = plan_or_400(
        req.topology_file.as_deref().unwrap_or("topology.yaml"),
        &req.topology,
    )?;
    let lifetime = lifetime_secs(&api, req.lifetime.as_deref(), plan.lifetime_secs)?;
    if let Some(p) = v6lab_core::values::dns_label_problem(&req.name, 40) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("lab name `{}`: {p}", req.name),
        ));
    }
    if api.ctl.store.lab(&req.name).map_err(internal)?.is_some() {
        return Err(err(
            StatusCode::CONFLICT,
            format!("lab {} exists already", req.name),
        ));
    }
    let t = now();
    let row = LabRow {
        name: req.name.clone(),
        class: None,
        student: None,
        topology: req.topology.clone(),
        topology_name: plan.name.clone(),
        token: auth::new_token("v6s_"),
        created: t,
        expires: t + lifetime,
        state: LabState::Pending,
        attempts: 0,
        next_try: 0,
        last_error: None,
        warned: false,
        complete: req.complete,
        adopted: false,
    };
    api.ctl.store.insert_lab(&row).map_err(internal)?;
    api.ctl.event(
        Some(&row.name),
        None,
        "created",
        &format!("lab {} of {} wanted", row.name, plan.name),
    );
    Ok((StatusCode::CREATED, Json(Lab::of(&row, true))).into_response())
}

async fn list_labs(State(api): State<Api>, _: Admin) -> Result<Json<Vec<Lab>>, ApiError> {
    let labs = api.ctl.store.labs().map_err(internal)?;
    Ok(Json(labs.iter().map(|l| Lab::of(l, false)).collect()))
}

async fn show_lab(
    State(api): State<Api>,
    LabAccess { lab, who }: LabAccess,
) -> Result<Json<Lab>, ApiError> {
    let l = api
        .ctl
        .store
        .lab(&lab)
        .map_err(internal)?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no lab {lab}")))?;
    let mut v = Lab::of(&l, who == Principal::Admin);
    if let Ok(plan) = crate::variation::replan_lab(&api.ctl.store, &l) {
        v.nodes = Some(
            plan.nodes
                .iter()
                .map(|n| NodeInfo {
                    name: n.name.clone(),
                    role: n.role.as_str().to_owned(),
                })
                .collect(),
        );
        v.exercises = Some(
            plan.exercises
                .iter()
                .map(|e| ExerciseInfo {
                    id: e.id.clone(),
                    title: e.title.clone(),
                    instructions: e.instructions.clone(),
                })
                .collect(),
        );
    }
    v.seconds_left = Some((l.expires - now()).max(0));
    Ok(Json(v))
}

async fn extend_lab(
    State(api): State<Api>,
    _: Admin,
    Path(lab): Path<String>,
    Json(req): Json<Extend>,
) -> Result<Json<Expiry>, ApiError> {
    let l = api
        .ctl
        .store
        .lab(&lab)
        .map_err(internal)?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no lab {lab}")))?;
    let expires = extended(&api, &req, l.created, l.expires, "lab")?;
    api.ctl.store.extend_lab(&lab, expires).map_err(internal)?;
    api.ctl.event(
        Some(&lab),
        l.class.as_deref(),
        "extended",
        &format!(
            "lab {lab} now expires at {}",
            crate::controller::utc(expires)
        ),
    );
    Ok(Json(Expiry { name: lab, expires }))
}

async fn delete_lab(
    State(api): State<Api>,
    _: Admin,
    Path(lab): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    if !api.ctl.store.delete_lab(&lab).map_err(internal)? {
        return Err(err(StatusCode::NOT_FOUND, format!("no lab {lab}")));
    }
    let _ = api.ctl.store.drop_empty_classes();
    api.ctl.event(
        Some(&lab),
        None,
        "deleting",
        &format!("lab {lab} deleted; it is being removed"),
    );
    Ok(Json(Deleted { deleted: lab }))
}

async fn lab_checks(
    State(api): State<Api>,
    LabAccess { lab, .. }: LabAccess,
) -> Result<Json<LabProgress>, ApiError> {
    let p = api.ctl.store.progress(&lab).map_err(internal)?;
    Ok(Json(LabProgress { lab, exercises: p }))
}

async fn check_lab_now(
    State(api): State<Api>,
    LabAccess { lab, .. }: LabAccess,
) -> Result<Response, ApiError> {
    let l = api
        .ctl
        .store
        .lab(&lab)
        .map_err(internal)?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no lab {lab}")))?;
    if l.state != LabState::Ready {
        return Err(err(
            StatusCode::CONFLICT,
            format!("lab {lab} is not ready yet ({})", l.state.as_str()),
        ));
    }
    // One run at a time per lab, and a cooldown: 429 with Retry-After otherwise.
    let results = match api.ctl.check_now(&l).await {
        Ok(r) => r,
        Err(refused) => return Ok(refused.into_response()),
    };
    let exercises = results.into_iter().map(Into::into).collect();
    Ok(Json(CheckRun { lab, exercises }).into_response())
}

#[derive(Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    pub since: i64,
    #[serde(default)]
    pub follow: bool,
}

async fn events(
    State(api): State<Api>,
    Caller(who): Caller,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let visible = move |e: &crate::store::EventRow| match who.lab() {
        None => true,
        Some(l) => e.lab.as_deref() == Some(l),
    };
    if !q.follow {
        let list: Vec<_> = api
            .ctl
            .store
            .events(q.since, 1000)
            .map_err(internal)?
            .into_iter()
            .filter(|e| visible(e))
            .collect();
        return Ok(Json(list).into_response());
    }
    // Past events first, then live ones, without a gap: subscribe before reading the past.
    let rx = api.ctl.events.subscribe();
    let past: Vec<_> = api
        .ctl
        .store
        .events(q.since, 1000)
        .map_err(internal)?
        .into_iter()
        .filter(|e| visible(e))
        .collect();
    let last = past.last().map(|e| e.id).unwrap_or(q.since);
    let live = tokio_stream::wrappers::BroadcastStream::new(rx);
    use futures::StreamExt;
    let stream: std::pin::Pin<
        Box<dyn Stream<Item = Result<Event, std::convert::Infallible>> + Send>,
    > = Box::pin(
        futures::stream::iter(past.into_iter().map(Ok))
            .chain(live.filter_map(move |r| {
                let v = r.ok().filter(|e| e.id > last && visible(e));
                async move { v.map(Ok) }
            }))
            .map(
                |e: Result<crate::store::EventRow, std::convert::Infallible>| {
                    let e = e.expect("infallible");
                    Ok(Event::default()
                        .id(e.id.to_string())
                        .event(e.kind.clone())
                        .data(serde_json::to_string(&e).unwrap_or_default()))
                },
            ),
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

async fn rotate_token(State(api): State<Api>, _: Admin) -> Result<Json<Token>, ApiError> {
    let (t, _) = auth::admin_token(&api.ctl.cfg.state_dir, true).map_err(internal)?;
    *api.admin_token.write().unwrap_or_else(|p| p.into_inner()) = t.clone();
    api.ctl.event(
        None,
        None,
        "token-rotated",
        "the administrator token was replaced",
    );
    Ok(Json(Token { token: t }))
}

#[cfg(test)]
mod tests {
    use super::extended_expiry;

    #[test]
    fn extensions_stay_within_the_maximum_and_never_overflow() {
        let max = 24 * 3600;
        assert_eq!(extended_expiry(3600, 0, 3600, 100, max), Some(7200));
        // From now when already expired.
        assert_eq!(extended_expiry(60, 0, 10, 100, max), Some(160));
        assert_eq!(extended_expiry(max as u64, 0, 3600, 100, max), None);
        assert_eq!(extended_expiry(u64::MAX, 0, 3600, 100, max), None);
        assert_eq!(
            extended_expiry(i64::MAX as u64, 0, 3600, 100, i64::MAX),
            None
        );
        assert_eq!(extended_expiry(10, i64::MIN, 3600, 100, max), None);
    }
}
