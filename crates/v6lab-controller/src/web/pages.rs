//! The pages: sign-in, the trainer's dashboard, a class's progress board and access sheet, a
//! student's lab. Each live part of a page is also served alone (`?part=NAME`), rendered by the
//! same template, so the page's script refreshes it when an event arrives.

use super::{markdown, session};
use crate::access::{Api, ApiError, Principal};
use crate::controller::now;
use crate::store::{EventRow, LabRow, LabState, ProgressRow};
use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::OnceLock;
use v6lab_core::Plan;
use v6lab_core::plan::{Assign4, Assign6};

/// The port of the SSH gateway shown on access sheets (`ssh -p 2222 STUDENT@HOST`).
pub const SSH_PORT: u16 = 2222;

/// The SSH gateway's port as `v6lab serve` bound it (`None`: no gateway). Set once at start.
pub static SSH_GATEWAY_PORT: OnceLock<Option<u16>> = OnceLock::new();

/// The SSH gateway's host key fingerprint (`SHA256:...`), shown on access sheets. Set at start.
pub static SSH_HOST_KEY: OnceLock<String> = OnceLock::new();

fn ssh_port() -> Option<u16> {
    match SSH_GATEWAY_PORT.get() {
        Some(p) => *p,
        None => Some(SSH_PORT),
    }
}

const TEMPLATES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../../../templates/web/base.html.tera"),
    ),
    (
        "index.html",
        include_str!("../../../../templates/web/index.html.tera"),
    ),
    (
        "message.html",
        include_str!("../../../../templates/web/message.html.tera"),
    ),
    (
        "go.html",
        include_str!("../../../../templates/web/go.html.tera"),
    ),
    (
        "confirm.html",
        include_str!("../../../../templates/web/confirm.html.tera"),
    ),
    (
        "dashboard.html",
        include_str!("../../../../templates/web/dashboard.html.tera"),
    ),
    (
        "dash_classes.html",
        include_str!("../../../../templates/web/dash_classes.html.tera"),
    ),
    (
        "events.html",
        include_str!("../../../../templates/web/events.html.tera"),
    ),
    (
        "class.html",
        include_str!("../../../../templates/web/class.html.tera"),
    ),
    (
        "board.html",
        include_str!("../../../../templates/web/board.html.tera"),
    ),
    (
        "sheet.html",
        include_str!("../../../../templates/web/sheet.html.tera"),
    ),
    (
        "lab.html",
        include_str!("../../../../templates/web/lab.html.tera"),
    ),
    (
        "lab_status.html",
        include_str!("../../../../templates/web/lab_status.html.tera"),
    ),
    (
        "exercises.html",
        include_str!("../../../../templates/web/exercises.html.tera"),
    ),
];

fn engine() -> &'static tera::Tera {
    static ENGINE: OnceLock<tera::Tera> = OnceLock::new();
    ENGINE.get_or_init(|| {
        // Names end in .html: tera escapes every value for HTML.
        let mut t = tera::Tera::default();
        t.add_raw_templates(TEMPLATES.iter().copied())
            .unwrap_or_else(|e| panic!("web templates do not parse: {e}"));
        t
    })
}

/// Renders a template; templates ship with the binary and are tested, so failing is a bug.
fn render(name: &str, ctx: &Value) -> String {
    let ctx = tera::Context::from_serialize(ctx).expect("context serializes");
    engine()
        .render(name, &ctx)
        .unwrap_or_else(|e| panic!("web template {name} failed: {e:?}"))
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn who_name(p: Option<&Principal>) -> &'static str {
    match p {
        Some(Principal::Admin) => "admin",
        Some(Principal::Student { .. }) => "student",
        None => "",
    }
}

/// A page: the template's own context plus what the layout needs.
fn page(name: &str, who: Option<&Principal>, mut ctx: Value) -> Response {
    ctx["who"] = json!(who_name(who));
    ctx["now"] = json!(now());
    html(StatusCode::OK, render(name, &ctx))
}

/// A page that only says something (errors, refusals).
pub struct Message {
    status: StatusCode,
    heading: &'static str,
    text: String,
    who: &'static str,
}

impl Message {
    fn new(status: StatusCode, heading: &'static str, text: impl Into<String>) -> Message {
        Message {
            status,
            heading,
            text: text.into(),
            who: "",
        }
    }
}

impl IntoResponse for Message {
    fn into_response(self) -> Response {
        let ctx = json!({
            "title": self.heading, "heading": self.heading, "text": self.text,
            "who": self.who, "now": now(),
        });
        html(self.status, render("message.html", &ctx))
    }
}

fn forbidden(who: Option<&Principal>) -> Message {
    // The same answer whether or not the page exists: nothing is disclosed.
    Message {
        who: who_name(who),
        ..Message::new(
            StatusCode::FORBIDDEN,
            "Not yours",
            "This page belongs to someone else's lab. Open the link on your own access slip.",
        )
    }
}

fn sign_in_needed() -> Message {
    Message::new(
        StatusCode::UNAUTHORIZED,
        "Please sign in",
        "Students: open the link on your access slip (or scan its QR code). \
         Trainers: sign in on the start page.",
    )
}

fn internal(e: impl std::fmt::Display) -> Message {
    tracing::error!(error = %e, "web page failed");
    Message::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The controller could not answer; its log says why.",
    )
}

/// The refusal of a page for the administrator only, unless the administrator asks.
fn not_admin(api: &Api, headers: &HeaderMap) -> Option<Response> {
    match api.session_principal(headers) {
        Some(Principal::Admin) => None,
        Some(p) => Some(forbidden(Some(&p)).into_response()),
        None => Some(Redirect::to("/").into_response()),
    }
}

fn plan_of(file: &str, topology: &str) -> Option<Plan> {
    v6lab_core::replan(file, topology.as_bytes())
        .ok()
        .map(|(_, p)| p)
}

/// "1 h 05 min", "12 min 30 s", "45 s", "ended": what the countdowns show before scripts run.
pub fn left(secs: i64) -> String {
    match secs {
        s if s <= 0 => "ended".into(),
        s if s >= 3600 => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min {:02} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

/// `HH:MM:SS` UTC (the page's script shows local time).
fn clock(ts: i64) -> String {
    let s = ts.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

fn state_label(s: LabState) -> &'static str {
    match s {
        LabState::Pending => "starting",
        LabState::Ready => "ready",
        LabState::Failed => "failed",
    }
}

fn event_json(e: &EventRow) -> Value {
    json!({
        "id": e.id, "ts": e.ts, "clock": clock(e.ts), "kind": e.kind,
        "lab": e.lab.clone().unwrap_or_default(), "class": e.class.clone().unwrap_or_default(),
        "message": e.message,
    })
}

/// The newest `n` events that `keep` accepts, newest first (looking back at most 2000).
fn recent_events(api: &Api, n: usize, keep: impl Fn(&EventRow) -> bool) -> (Vec<Value>, i64) {
    let last = api.ctl.store.last_event_id().unwrap_or(0);
    let mut list: Vec<Value> = api
        .ctl
        .store
        .events((last - 2000).max(0), 2000)
        .unwrap_or_default()
        .iter()
        .filter(|e| keep(e))
        .rev()
        .take(n)
        .map(event_json)
        .collect();
    list.truncate(n);
    (list, last)
}

/// An exercise's status on the board and the student page.
fn cell(exercise: &str, row: Option<&ProgressRow>, state: LabState) -> Value {
    let (status, icon, label) = match (row, state) {
        (Some(r), _) if r.passed => ("passed", "✓", "passed"),
        (Some(_), _) => ("failing", "✗", "not yet"),
        (None, LabState::Ready) => ("unchecked", "○", "not checked"),
        (None, _) => ("waiting", "…", "lab starting"),
    };
    json!({
        "exercise": exercise, "status": status, "icon": icon, "label": label,
        "detail": row.map(|r| r.detail.clone()).unwrap_or_default(),
        "checked": row.map(|r| clock(r.checked)).unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------------------------
// Start page, sign-in, student links

pub async fn index(State(api): State<Api>, headers: HeaderMap) -> Response {
    match api.session_principal(&headers) {
        Some(Principal::Admin) => Redirect::to("/dashboard").into_response(),
        Some(Principal::Student { lab, .. }) => {
            Redirect::to(&format!("/labs/{lab}")).into_response()
        }
        None => page("index.html", None, json!({"title": "Sign in", "error": ""})),
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// Checks a token typed or linked by a person, through the one lookup (failures counted by the
/// rate limiter, a correct token always accepted).
fn check_token(
    api: &Api,
    headers: &HeaderMap,
    token: &str,
    peer: SocketAddr,
) -> Result<Principal, ApiError> {
    api.check_token(token.trim(), api.client(headers, peer))
}

fn with_cookies(mut r: Response, cookies: impl IntoIterator<Item = String>) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

pub async fn login(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if session::cross_site(&headers) {
        return forbidden(None).into_response();
    }
    let again = |status: StatusCode, error: &str| {
        let ctx = json!({
            "title": "Sign in", "error": error, "who": "", "now": now(),
        });
        html(status, render("index.html", &ctx))
    };
    match check_token(&api, &headers, &form.token, peer) {
        Ok(Principal::Admin) => match session::admin_cookie(&api, &headers) {
            Some(c) => with_cookies(Redirect::to("/dashboard").into_response(), [c]),
            None => internal("no session key").into_response(),
        },
        Ok(Principal::Student { lab, .. }) => match api.ctl.store.lab(&lab) {
            Ok(Some(l)) => match session::student_cookie(&api, &headers, &l) {
                Some(c) => with_cookies(
                    Redirect::to(&format!("/labs/{}", l.name)).into_response(),
                    [c],
                ),
                None => internal("no session key").into_response(),
            },
            _ => again(StatusCode::UNAUTHORIZED, "That token is not valid."),
        },
        Err(ApiError(StatusCode::TOO_MANY_REQUESTS, _)) => again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong tokens from this address: wait a minute, then try again.",
        ),
        Err(_) => again(StatusCode::UNAUTHORIZED, "That token is not valid."),
    }
}

/// Signing out ends the sessions on the server, not only in the browser.
pub async fn logout(State(api): State<Api>, headers: HeaderMap) -> Response {
    if session::cross_site(&headers) {
        return forbidden(None).into_response();
    }
    with_cookies(
        Redirect::to("/").into_response(),
        session::end(&api, &headers),
    )
}

/// `/s/TOKEN`: a student's link. Sets the student session and moves to the lab's page, through
/// a small page of our own rather than a redirect: a link followed from another site (a mail,
/// a chat) would not carry the new `SameSite=Strict` cookie through a redirect.
///
/// A browser that already holds another session (another student's lab, or the trainer's) is
/// asked first ([`confirm`]). A link followed from another site carries no session cookie, so
/// it is first reopened from this site, where the browser sends its cookies.
pub async fn student_link(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let l = match open_link(&api, &headers, &token, peer) {
        Ok(l) => l,
        Err(m) => return m.into_response(),
    };
    if session::cross_site(&headers) {
        let ctx = json!({"title": "Opening your lab", "next": format!("/s/{token}"), "who": "", "now": now()});
        return html(StatusCode::OK, render("go.html", &ctx));
    }
    match api.session_principal(&headers) {
        Some(p) if !matches!(&p, Principal::Student { lab, .. } if *lab == l.name) => {
            let current = match &p {
                Principal::Admin => "the trainer".to_owned(),
                Principal::Student { lab, .. } => format!("lab {lab}"),
            };
            let back = match p.lab() {
                Some(lab) => format!("/labs/{lab}"),
                None => "/dashboard".to_owned(),
            };
            let ctx = json!({
                "title": "Open another lab?", "current": current, "lab": l.name,
                "student": l.student.clone().unwrap_or_default(), "back": back,
                "action": format!("/s/{token}"), "who": who_name(Some(&p)), "now": now(),
            });
            html(StatusCode::OK, render("confirm.html", &ctx))
        }
        _ => go_to_lab(&api, &headers, &l, []),
    }
}

/// `POST /s/TOKEN`: the answer "yes, open this lab here" to [`student_link`]'s question.
pub async fn confirm(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    if session::cross_site(&headers) {
        return forbidden(None).into_response();
    }
    match open_link(&api, &headers, &token, peer) {
        Ok(l) => {
            // The session being replaced ends here, on the server too; the cookies are cleared
            // before the new one is set.
            let ended = session::end(&api, &headers);
            go_to_lab(&api, &headers, &l, ended)
        }
        Err(m) => m.into_response(),
    }
}

/// The lab a student link opens, or the page saying why not.
fn open_link(
    api: &Api,
    headers: &HeaderMap,
    token: &str,
    peer: SocketAddr,
) -> Result<LabRow, Message> {
    let invalid = || {
        Message::new(
            StatusCode::NOT_FOUND,
            "This link does not open a lab",
            "It may be mistyped, or its lab has ended. Ask your trainer for a new access slip.",
        )
    };
    // Administrator tokens never travel in URLs; anything else is a wrong token.
    let token = if token.starts_with("v6s_") {
        token
    } else {
        "v6s_-"
    };
    match check_token(api, headers, token, peer) {
        Ok(Principal::Student { lab, .. }) if token != "v6s_-" => match api.ctl.store.lab(&lab) {
            Ok(Some(l)) => Ok(l),
            _ => Err(invalid()),
        },
        Err(ApiError(StatusCode::TOO_MANY_REQUESTS, _)) => Err(Message::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Too many wrong links from this address: wait a minute, then try again.",
        )),
        _ => Err(invalid()),
    }
}

/// Starts the student session on `l` (after the cookies `before`) and moves to its page.
fn go_to_lab(
    api: &Api,
    headers: &HeaderMap,
    l: &LabRow,
    before: impl IntoIterator<Item = String>,
) -> Response {
    let Some(c) = session::student_cookie(api, headers, l) else {
        return internal("no session key").into_response();
    };
    let next = format!("/labs/{}", l.name);
    let ctx = json!({"title": "Opening your lab", "next": next, "who": "", "now": now()});
    let cookies = before.into_iter().chain([c]);
    with_cookies(html(StatusCode::OK, render("go.html", &ctx)), cookies)
}

// ---------------------------------------------------------------------------------------------
// Trainer: dashboard, class board, access sheet

#[derive(Deserialize)]
pub struct PartQuery {
    part: Option<String>,
}

pub async fn dashboard(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(q): Query<PartQuery>,
) -> Response {
    if let Some(refusal) = not_admin(&api, &headers) {
        return refusal;
    }
    let who = Principal::Admin;
    let t = now();
    let classes = match api.ctl.store.classes() {
        Ok(c) => c,
        Err(e) => return internal(e).into_response(),
    };
    let mut cs = Vec::new();
    for c in &classes {
        let labs = api.ctl.store.class_labs(&c.name).unwrap_or_default();
        let exercises = plan_of(&c.topology_name, &c.topology)
            .map(|p| p.exercises.len())
            .unwrap_or(0);
        let passed: usize = labs
            .iter()
            .map(|l| {
                api.ctl
                    .store
                    .progress(&l.name)
                    .unwrap_or_default()
                    .iter()
                    .filter(|p| p.passed)
                    .count()
            })
            .sum();
        let count = |s: LabState| labs.iter().filter(|l| l.state == s).count();
        cs.push(json!({
            "name": c.name, "topology": c.topology_name, "expires": c.expires,
            "left": left(c.expires - t), "labs": labs.len(),
            "ready": count(LabState::Ready), "pending": count(LabState::Pending),
            "failed": count(LabState::Failed),
            "passed": passed, "possible": exercises * labs.len(),
        }));
    }
    let singles: Vec<Value> = api
        .ctl
        .store
        .labs()
        .unwrap_or_default()
        .iter()
        .filter(|l| l.class.is_none())
        .map(|l| {
            json!({
                "name": l.name, "topology": l.topology_name, "state": l.state,
                "state_label": state_label(l.state), "expires": l.expires,
                "left": left(l.expires - t), "adopted": l.adopted,
                "error": l.last_error.clone().unwrap_or_default(),
            })
        })
        .collect();
    let ctx = json!({"title": "Dashboard", "classes": cs, "labs": singles});
    if q.part.as_deref() == Some("classes") {
        return page("dash_classes.html", Some(&who), ctx);
    }
    let (events, last) = recent_events(&api, 40, |_| true);
    let mut ctx = ctx;
    ctx["events"] = json!(events);
    ctx["last_event"] = json!(last);
    page("dashboard.html", Some(&who), ctx)
}

pub async fn class(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(class): Path<String>,
    Query(q): Query<PartQuery>,
) -> Response {
    if let Some(refusal) = not_admin(&api, &headers) {
        return refusal;
    }
    let who = Principal::Admin;
    let c = match api.ctl.store.class(&class) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Message {
                who: "admin",
                ..Message::new(
                    StatusCode::NOT_FOUND,
                    "No such class",
                    format!("There is no class {class} (any more)."),
                )
            }
            .into_response();
        }
        Err(e) => return internal(e).into_response(),
    };
    let t = now();
    let plan = plan_of(&c.topology_name, &c.topology);
    let exercises: Vec<Value> = plan
        .iter()
        .flat_map(|p| &p.exercises)
        .map(|e| json!({"id": e.id, "title": e.title}))
        .collect();
    let labs = api.ctl.store.class_labs(&c.name).unwrap_or_default();
    let mut passed = 0;
    let mut per_exercise = vec![0usize; exercises.len()];
    let rows: Vec<Value> = labs
        .iter()
        .map(|l| {
            let progress = api.ctl.store.progress(&l.name).unwrap_or_default();
            let cells: Vec<Value> = plan
                .iter()
                .flat_map(|p| &p.exercises)
                .enumerate()
                .map(|(i, e)| {
                    let row = progress.iter().find(|r| r.exercise == e.id);
                    if row.is_some_and(|r| r.passed) {
                        passed += 1;
                        per_exercise[i] += 1;
                    }
                    cell(&e.id, row, l.state)
                })
                .collect();
            json!({
                "lab": l.name, "student": l.student.clone().unwrap_or_else(|| l.name.clone()),
                "state": l.state, "state_label": state_label(l.state),
                "error": l.last_error.clone().unwrap_or_default(),
                "expires": l.expires, "left": left(l.expires - t), "cells": cells,
            })
        })
        .collect();
    let exercises: Vec<Value> = exercises
        .into_iter()
        .zip(&per_exercise)
        .map(|(mut e, n)| {
            e["passed"] = json!(n);
            e
        })
        .collect();
    let ctx = json!({
        "title": format!("{} · progress", c.name),
        "class": {"name": c.name, "topology": c.topology_name, "expires": c.expires,
                  "left": left(c.expires - t)},
        "exercises": exercises, "rows": rows, "passed": passed,
        "possible": exercises.len() * labs.len(),
    });
    if q.part.as_deref() == Some("board") {
        return page("board.html", Some(&who), ctx);
    }
    let lab_names: Vec<String> = labs.iter().map(|l| l.name.clone()).collect();
    let (events, last) = recent_events(&api, 15, |e| {
        e.class.as_deref() == Some(c.name.as_str())
            || e.lab.as_ref().is_some_and(|l| lab_names.contains(l))
    });
    let mut ctx = ctx;
    ctx["svg"] = json!(plan.as_ref().map(super::topology_svg).unwrap_or_default());
    ctx["events"] = json!(events);
    ctx["last_event"] = json!(last);
    page("class.html", Some(&who), ctx)
}

/// What students type: `http(s)://HOST[:PORT]`, from `?base=`, `V6LAB_PUBLIC_URL` or the
/// request's Host header.
fn base_url(headers: &HeaderMap, given: Option<&str>) -> String {
    let valid = |u: &str| {
        let rest = u
            .strip_prefix("http://")
            .or_else(|| u.strip_prefix("https://"));
        rest.is_some_and(|h| {
            !h.is_empty()
                && h.len() < 256
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c))
        })
    };
    if let Some(u) = given.map(|u| u.trim().trim_end_matches('/'))
        && valid(u)
    {
        return u.to_owned();
    }
    if let Ok(u) = std::env::var("V6LAB_PUBLIC_URL") {
        let u = u.trim().trim_end_matches('/');
        if valid(u) {
            return u.to_owned();
        }
    }
    let scheme = if session::https(headers) || crate::tls::enabled() {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let u = format!("{scheme}://{host}");
    if valid(&u) {
        u
    } else {
        format!("{scheme}://localhost")
    }
}

/// The host of a base URL, for `ssh` (no port, no brackets).
fn ssh_host(base: &str) -> String {
    let h = base
        .split_once("://")
        .map(|(_, h)| h)
        .unwrap_or(base)
        .split('/')
        .next()
        .unwrap_or_default();
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_owned();
    }
    match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host.to_owned()
        }
        _ => h.to_owned(),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

fn ssh_command(student: &str, host: &str) -> String {
    match ssh_port() {
        Some(port) => format!("ssh -p {port} {student}@{host}"),
        None => String::new(),
    }
}

fn qr_svg(text: &str, label: &str) -> String {
    use qrcode::render::svg;
    match qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M) {
        Ok(code) => {
            let s = code
                .render::<svg::Color>()
                .min_dimensions(150, 150)
                .quiet_zone(true)
                .build();
            let s = s.find("<svg").map(|i| &s[i..]).unwrap_or(&s);
            let mut esc = Vec::new();
            let _ = tera::escape_html(label, &mut esc);
            let label = String::from_utf8_lossy(&esc);
            s.replacen(
                "<svg",
                &format!("<svg role=\"img\" aria-label=\"{label}\""),
                1,
            )
        }
        Err(_) => String::new(),
    }
}

#[derive(Deserialize)]
pub struct SheetQuery {
    base: Option<String>,
}

pub async fn sheet(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(class): Path<String>,
    Query(q): Query<SheetQuery>,
) -> Response {
    if let Some(refusal) = not_admin(&api, &headers) {
        return refusal;
    }
    let who = Principal::Admin;
    let c = match api.ctl.store.class(&class) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Message {
                who: "admin",
                ..Message::new(
                    StatusCode::NOT_FOUND,
                    "No such class",
                    format!("There is no class {class} (any more)."),
                )
            }
            .into_response();
        }
        Err(e) => return internal(e).into_response(),
    };
    let base = base_url(&headers, q.base.as_deref());
    let host = ssh_host(&base);
    let varied = crate::variation::varies(&c.topology);
    let slips: Vec<Value> = api
        .ctl
        .store
        .class_labs(&c.name)
        .unwrap_or_default()
        .iter()
        .map(|l| {
            let student = l.student.clone().unwrap_or_else(|| l.name.clone());
            let url = format!("{base}/s/{}", l.token);
            let prefixes = varied
                .then(|| crate::variation::replan_lab(&api.ctl.store, l).ok())
                .flatten()
                .map(|p| crate::variation::student_prefixes(&api.ctl.store, l, &p))
                .unwrap_or_default();
            json!({
                "prefixes": prefixes,
                "student": student, "lab": l.name, "url": url, "token": l.token,
                "ssh": ssh_command(&student, &host),
                "qr": qr_svg(&url, &format!("QR code of {student}'s link")),
            })
        })
        .collect();
    let ctx = json!({
        "title": format!("{} · access sheet", c.name),
        "class": {"name": c.name, "topology": c.topology_name, "expires": c.expires,
                  "ends": clock(c.expires)},
        "base": base, "loopback": is_loopback(&host), "slips": slips,
        "tls_fingerprint": crate::tls::FINGERPRINT.get(), "ssh_host_key": SSH_HOST_KEY.get(),
    });
    page("sheet.html", Some(&who), ctx)
}

// ---------------------------------------------------------------------------------------------
// Student: their lab

fn ipv6_text(a: &Assign6) -> (String, &'static str) {
    match a {
        Assign6::Static { address } => (address.to_string(), "static"),
        Assign6::Slaac { expected, prefix } => (
            format!("{expected}/{}", prefix.prefix_len()),
            "SLAAC, once routers advertise",
        ),
        Assign6::Dhcpv6 { prefix } => (format!("from {prefix}"), "DHCPv6"),
        Assign6::None => (String::new(), "left to you"),
        Assign6::Disabled => (String::new(), ""),
    }
}

fn ipv4_text(a: &Assign4) -> (String, &'static str) {
    match a {
        Assign4::Static { address } => (address.to_string(), "static"),
        Assign4::Dhcp { prefix } => (format!("from {prefix}"), "DHCP"),
        Assign4::None => (String::new(), "left to you"),
        Assign4::Disabled => (String::new(), ""),
    }
}

fn nodes_json(plan: &Plan) -> Vec<Value> {
    plan.nodes
        .iter()
        .map(|n| {
            let ifaces: Vec<Value> = n
                .interfaces
                .iter()
                .map(|i| {
                    // An address an exercise leaves to the student says so.
                    let exercise = |family: &str| {
                        let id = format!("{}.{family}", i.name);
                        n.parts
                            .iter()
                            .find(|p| p.id == id)
                            .and_then(|p| p.student.as_ref())
                            .map(|ex| format!("yours to configure (exercise {ex})"))
                    };
                    let (v6, how6) = ipv6_text(&i.ipv6);
                    let (v4, how4) = ipv4_text(&i.ipv4);
                    let how6 = exercise("ipv6").unwrap_or_else(|| how6.to_owned());
                    let how4 = exercise("ipv4").unwrap_or_else(|| how4.to_owned());
                    json!({
                        "name": i.name, "segment": i.segment, "ipv6": v6, "how6": how6,
                        "ipv4": v4, "how4": how4,
                        "link_local": i.link_local.map(|a| a.to_string()).unwrap_or_default(),
                    })
                })
                .collect();
            json!({"name": n.name, "role": n.role, "ifaces": ifaces})
        })
        .collect()
}

pub async fn lab(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(lab): Path<String>,
    Query(q): Query<PartQuery>,
) -> Response {
    let who = api.session_principal(&headers);
    match &who {
        None => return sign_in_needed().into_response(),
        Some(Principal::Student { lab: own, .. }) if *own != lab => {
            return forbidden(who.as_ref()).into_response();
        }
        _ => {}
    }
    let l: LabRow = match api.ctl.store.lab(&lab) {
        Ok(Some(l)) => l,
        Ok(None) => {
            return Message {
                who: who_name(who.as_ref()),
                ..Message::new(
                    StatusCode::NOT_FOUND,
                    "No such lab",
                    format!("There is no lab {lab} (any more)."),
                )
            }
            .into_response();
        }
        Err(e) => return internal(e).into_response(),
    };
    let t = now();
    let plan = crate::variation::replan_lab(&api.ctl.store, &l).ok();
    let progress = api.ctl.store.progress(&l.name).unwrap_or_default();
    let exercises: Vec<Value> = plan
        .iter()
        .flat_map(|p| &p.exercises)
        .map(|e| {
            let mut v = cell(&e.id, progress.iter().find(|r| r.exercise == e.id), l.state);
            v["id"] = json!(e.id);
            v["title"] = json!(e.title);
            v["html"] = json!(markdown::render(&e.instructions));
            v
        })
        .collect();
    let host = ssh_host(&base_url(&headers, None));
    let ctx = json!({
        "title": l.student.clone().map(|s| format!("{s} · {}", l.topology_name))
            .unwrap_or_else(|| l.name.clone()),
        "lab": {
            "name": l.name, "student": l.student.clone().unwrap_or_default(),
            "class": l.class.clone().unwrap_or_default(), "topology": l.topology_name,
            "description": plan.as_ref().and_then(|p| p.description.clone()).unwrap_or_default(),
            "state": l.state, "state_label": state_label(l.state),
            "error": l.last_error.clone().unwrap_or_default(),
            "expires": l.expires, "left": left(l.expires - t),
        },
        "viewer": who_name(who.as_ref()),
        "ssh": l.student.as_deref().map(|s| ssh_command(s, &host)).unwrap_or_default(),
        "exercises": exercises,
    });
    let mut r = match q.part.as_deref() {
        Some("status") => page("lab_status.html", who.as_ref(), ctx),
        Some("exercises") => page("exercises.html", who.as_ref(), ctx),
        _ => {
            let mut ctx = ctx;
            ctx["nodes"] = json!(plan.as_ref().map(nodes_json).unwrap_or_default());
            ctx["svg"] = json!(plan.as_ref().map(super::topology_svg).unwrap_or_default());
            ctx["last_event"] = json!(api.ctl.store.last_event_id().unwrap_or(0));
            ctx["prefixes"] = json!(
                plan.as_ref()
                    .map(|p| crate::variation::student_prefixes(&api.ctl.store, &l, p))
                    .unwrap_or_default()
            );
            page("lab.html", who.as_ref(), ctx)
        }
    };
    // A student's session follows the lab's lifetime, also after the trainer extended it.
    if matches!(who, Some(Principal::Student { .. }))
        && let Some(c) = session::student_cookie(&api, &headers, &l)
    {
        r = with_cookies(r, [c]);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdown_text() {
        assert_eq!(left(0), "ended");
        assert_eq!(left(45), "45 s");
        assert_eq!(left(750), "12 min 30 s");
        assert_eq!(left(3900), "1 h 05 min");
    }

    #[test]
    fn ssh_hosts_from_base_urls() {
        assert_eq!(ssh_host("http://10.0.0.5:7464"), "10.0.0.5");
        assert_eq!(ssh_host("https://lab.example.org"), "lab.example.org");
        assert_eq!(ssh_host("http://[2001:db8::5]:7464"), "2001:db8::5");
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && !is_loopback("10.0.0.5"));
    }

    #[test]
    fn base_url_prefers_the_given_one_and_rejects_junk() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "10.1.2.3:7464".parse().unwrap());
        assert_eq!(base_url(&h, None), "http://10.1.2.3:7464");
        assert_eq!(
            base_url(&h, Some("https://lab.example.org/")),
            "https://lab.example.org"
        );
        assert_eq!(
            base_url(&h, Some("javascript:alert(1)")),
            "http://10.1.2.3:7464"
        );
        assert_eq!(
            base_url(&h, Some("http://a\"><script>")),
            "http://10.1.2.3:7464"
        );
    }

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            assert!(engine().get_template_names().any(|n| n == *name), "{name}");
        }
    }

    #[test]
    fn messages_are_escaped() {
        let who = json!({"who": "admin", "now": 0});
        let mut ctx = who.clone();
        ctx["title"] = json!("t");
        ctx["heading"] = json!("<h>");
        ctx["text"] = json!("<b>bold</b>");
        let out = render("message.html", &ctx);
        assert!(out.contains("&lt;b&gt;bold&lt;/b&gt;"), "{out}");
        assert!(!out.contains("<b>bold"), "{out}");
    }

    #[test]
    fn qr_codes_are_inline_svg() {
        let s = qr_svg("http://10.0.0.5:7464/s/v6s_abc", "QR <x>");
        assert!(
            s.starts_with("<svg role=\"img\" aria-label=\"QR &lt;x&gt;\""),
            "{s}"
        );
    }
}
