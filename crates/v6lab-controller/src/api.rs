//! The controller's HTTP API (axum). Every management call needs the administrator token; a
//! student token opens only its own lab. Refusals say nothing about which labs exist.

use crate::auth::{self, RateLimit};
use crate::controller::{Controller, now};
use crate::store::{ClassRow, LabRow, LabState};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Clone)]
pub struct Api {
    pub ctl: Arc<Controller>,
    pub admin_token: Arc<std::sync::RwLock<String>>,
    pub limit: Arc<RateLimit>,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    /// A student, owner of this lab.
    Student(String),
}

pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

fn err(code: StatusCode, msg: impl Into<String>) -> ApiError {
    ApiError(code, msg.into())
}

fn forbidden() -> ApiError {
    err(StatusCode::FORBIDDEN, "forbidden")
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "request failed");
    err(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the controller's log",
    )
}

impl Api {
    pub fn token(headers: &HeaderMap) -> Option<&str> {
        headers
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")
            .map(str::trim)
    }

    /// Authenticates a request. Never tells whether a lab exists.
    pub fn auth(&self, headers: &HeaderMap, peer: SocketAddr) -> Result<Principal, ApiError> {
        // A web session (signed cookie) when no token is given; see `web::session`.
        if Self::token(headers).is_none()
            && let Some(p) = crate::web::session::principal(self, headers)
        {
            return Ok(p);
        }
        if self.limit.blocked(peer.ip()) {
            return Err(err(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed attempts; wait a minute",
            ));
        }
        let fail = || {
            self.limit.failure(peer.ip());
            self.ctl
                .metrics
                .auth_failures
                .fetch_add(1, Ordering::Relaxed);
            err(
                StatusCode::UNAUTHORIZED,
                "a valid token is required (Authorization: Bearer TOKEN)",
            )
        };
        let Some(given) = Self::token(headers) else {
            return Err(fail());
        };
        if auth::token_eq(
            given,
            &self.admin_token.read().unwrap_or_else(|p| p.into_inner()),
        ) {
            return Ok(Principal::Admin);
        }
        if given.starts_with("v6s_") {
            let labs = self.ctl.store.labs().map_err(internal)?;
            // Compare against every lab's token (constant time each) so timing reveals nothing.
            let mut owner = None;
            for l in &labs {
                if auth::token_eq(given, &l.token) {
                    owner = Some(l.name.clone());
                }
            }
            if let Some(o) = owner {
                return Ok(Principal::Student(o));
            }
        }
        Err(fail())
    }

    pub fn admin(&self, headers: &HeaderMap, peer: SocketAddr) -> Result<(), ApiError> {
        match self.auth(headers, peer)? {
            Principal::Admin => Ok(()),
            Principal::Student(_) => Err(forbidden()),
        }
    }

    /// The administrator, or the student who owns `lab`.
    pub fn lab_access(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        lab: &str,
    ) -> Result<Principal, ApiError> {
        let p = self.auth(headers, peer)?;
        match &p {
            Principal::Admin => Ok(p),
            Principal::Student(own) if own == lab => Ok(p),
            Principal::Student(_) => Err(forbidden()),
        }
    }
}

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

#[derive(Deserialize)]
pub struct NewClass {
    /// Class name (DNS-safe); default: the topology's name and a number.
    pub name: Option<String>,
    /// The topology, as YAML text.
    pub topology: String,
    /// File name of the topology, for messages.
    #[serde(default)]
    pub topology_file: Option<String>,
    /// Number of students (labs named student-01...), or
    pub students: Option<usize>,
    /// student names (one lab each).
    pub roster: Option<Vec<String>>,
    /// `3h`, `90m`; default: the topology's lifetime.
    pub lifetime: Option<String>,
}

fn lifetime_secs(api: &Api, given: Option<&str>, default: u64) -> Result<i64, ApiError> {
    let secs = match given {
        Some(l) => v6lab_core::values::parse_duration(l).map_err(|e| {
            err(
                StatusCode::BAD_REQUEST,
                format!("lifetime `{l}`: {e}; write e.g. 90m or 3h"),
            )
        })? as i64,
        None => default as i64,
    };
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

fn class_json(c: &ClassRow, labs: &[LabRow], with_tokens: bool) -> Value {
    json!({
        "name": c.name, "topology": c.topology_name, "created": c.created, "expires": c.expires,
        "labs": labs.iter().map(|l| lab_json(l, with_tokens)).collect::<Vec<_>>(),
    })
}

fn lab_json(l: &LabRow, with_token: bool) -> Value {
    let mut v = serde_json::to_value(l).unwrap_or(Value::Null);
    if with_token {
        v["token"] = json!(l.token);
    }
    v
}

async fn create_class(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<NewClass>,
) -> Result<Response, ApiError> {
    api.admin(&headers, peer)?;
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
    Ok((StatusCode::CREATED, Json(class_json(&class, &labs, true))).into_response())
}

async fn list_classes(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    api.admin(&headers, peer)?;
    let classes = api.ctl.store.classes().map_err(internal)?;
    let mut out = Vec::new();
    for c in classes {
        let labs = api.ctl.store.class_labs(&c.name).map_err(internal)?;
        out.push(json!({
            "name": c.name, "topology": c.topology_name, "created": c.created, "expires": c.expires,
            "labs": labs.len(), "ready": labs.iter().filter(|l| l.state == LabState::Ready).count(),
            "failed": labs.iter().filter(|l| l.state == LabState::Failed).count(),
        }));
    }
    Ok(Json(Value::Array(out)))
}

async fn show_class(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(class): Path<String>,
) -> Result<Json<Value>, ApiError> {
    api.admin(&headers, peer)?;
    let c = api
        .ctl
        .store
        .class(&class)
        .map_err(internal)?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no class {class}")))?;
    let labs = api.ctl.store.class_labs(&class).map_err(internal)?;
    Ok(Json(class_json(&c, &labs, true)))
}

#[derive(Deserialize)]
pub struct Extend {
    /// Add this much time: `1h`, `30m`.
    pub by: String,
}

/// The new expiry of something created at `created` and expiring at `expires`, extended by
/// `req.by`; refused beyond the controller's maximum lifetime.
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
    })? as i64;
    let new = expires.max(now()) + by;
    if new - created > api.ctl.cfg.max_lifetime {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!(
                "that would make the {what} live longer than this controller allows ({}s)",
                api.ctl.cfg.max_lifetime
            ),
        ));
    }
    Ok(new)
}

async fn extend_class(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(class): Path<String>,
    Json(req): Json<Extend>,
) -> Result<Json<Value>, ApiError> {
    api.admin(&headers, peer)?;
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
    Ok(Json(json!({"name": class, "expires": expires})))
}

async fn delete_class(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(class): Path<String>,
) -> Result<Json<Value>, ApiError> {
    api.admin(&headers, peer)?;
    if !api.ctl.store.delete_class(&class).map_err(internal)? {
        return Err(err(StatusCode::NOT_FOUND, format!("no class {class}")));
    }
    api.ctl.event(
        None,
        Some(&class),
        "class-deleted",
        &format!("class {class} deleted; its labs are being removed"),
    );
    Ok(Json(json!({"deleted": class})))
}

async fn class_progress(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(class): Path<String>,
) -> Result<Json<Value>, ApiError> {
    api.admin(&headers, peer)?;
    let c = api
        .ctl
        .store
        .class(&class)
        .map_err(internal)?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no class {class}")))?;
    let plan = plan_or_400(&c.topology_name, &c.topology)?;
    let exercises: Vec<&str> = plan.exercises.iter().map(|e| e.id.as_str()).collect();
    let mut students = Vec::new();
    for l in api.ctl.store.class_labs(&class).map_err(internal)? {
        let p = api.ctl.store.progress(&l.name).map_err(internal)?;
        students
            .push(json!({"lab": l.name, "student": l.student, "state": l.state, "exercises": p}));
    }
    Ok(Json(
        json!({"class": class, "exercises": exercises, "students": students}),
    ))
}

#[derive(Deserialize)]
pub struct NewLab {
    pub name: String,
    pub topology: String,
    #[serde(default)]
    pub topology_file: Option<String>,
    pub lifetime: Option<String>,
    #[serde(default)]
    pub complete: bool,
}

async fn create_lab(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<NewLab>,
) -> Result<Response, ApiError> {
    api.admin(&headers, peer)?;
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
    Ok((StatusCode::CREATED, Json(lab_json(&row, true))).into_response())
}

async fn list_labs(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    api.admin(&headers, peer)?;
    let labs = api.ctl.store.labs().map_err(internal)?;
    Ok(Json(Value::Array(
        labs.iter().map(|l| lab_json(l, false)).collect(),
    )))
}

async fn show_lab(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(lab): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let who = api.lab_access(&headers, peer, &lab)?;
    let l = api
        .ctl
        .store
        .lab(&lab)
        .map_err(internal)?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no lab {lab}")))?;
    let mut v = lab_json(&l, who == Principal::Admin);
    if let Ok((_, plan)) = v6lab_core::plan_source(&l.topology_name, l.topology.as_bytes()) {
        v["nodes"] = json!(
            plan.nodes
                .iter()
                .map(|n| json!({"name": n.name, "role": n.role}))
                .collect::<Vec<_>>()
        );
        v["exercises"] = json!(
            plan.exercises
                .iter()
                .map(|e| json!({"id": e.id, "title": e.title, "instructions": e.instructions}))
                .collect::<Vec<_>>()
        );
    }
    v["seconds_left"] = json!((l.expires - now()).max(0));
    Ok(Json(v))
}

async fn extend_lab(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(lab): Path<String>,
    Json(req): Json<Extend>,
) -> Result<Json<Value>, ApiError> {
    api.admin(&headers, peer)?;
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
    Ok(Json(json!({"name": lab, "expires": expires})))
}

async fn delete_lab(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(lab): Path<String>,
) -> Result<Json<Value>, ApiError> {
    api.admin(&headers, peer)?;
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
    Ok(Json(json!({"deleted": lab})))
}

async fn lab_checks(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(lab): Path<String>,
) -> Result<Json<Value>, ApiError> {
    api.lab_access(&headers, peer, &lab)?;
    let p = api.ctl.store.progress(&lab).map_err(internal)?;
    Ok(Json(json!({"lab": lab, "exercises": p})))
}

async fn check_lab_now(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(lab): Path<String>,
) -> Result<Response, ApiError> {
    api.lab_access(&headers, peer, &lab)?;
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
    Ok(Json(json!({"lab": lab, "exercises": results})).into_response())
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let who = api.auth(&headers, peer)?;
    let visible = move |e: &crate::store::EventRow| match &who {
        Principal::Admin => true,
        Principal::Student(l) => e.lab.as_deref() == Some(l.as_str()),
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

async fn rotate_token(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    api.admin(&headers, peer)?;
    let (t, _) = auth::admin_token(&api.ctl.cfg.state_dir, true).map_err(internal)?;
    *api.admin_token.write().unwrap_or_else(|p| p.into_inner()) = t.clone();
    api.ctl.event(
        None,
        None,
        "token-rotated",
        "the administrator token was replaced",
    );
    Ok(Json(json!({"token": t})))
}
