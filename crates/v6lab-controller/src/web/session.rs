//! Web sessions: a random session id in a cookie, kept server-side (as a digest, in the store)
//! with the digest of the token it was opened with; who a session is is decided in
//! [`crate::access`].
//!
//! - `v6lab_admin`: an administrator session; rotating the administrator token ends every one.
//!   Lasts [`ADMIN_SESSION_SECS`].
//! - `v6lab_student`: a student session on one lab. Valid while the lab exists, has not expired
//!   and keeps that token: a session ends with its lab.
//! - Signing out deletes the session on the server: a copy of the cookie opens nothing after.
//!
//! Both are `HttpOnly; SameSite=Strict`, and `Secure` behind an HTTPS proxy. A request that a
//! browser marks as coming from another site (`Sec-Fetch-Site: cross-site|same-site`) is never
//! authenticated by cookie, so other sites cannot act with a user's session.

use crate::access::Api;
pub use crate::access::{ADMIN_COOKIE, STUDENT_COOKIE, cookie, cross_site};
use crate::controller::now;
use crate::store::{SessionRow, digest};
use axum::http::HeaderMap;

/// How long an administrator stays signed in.
pub const ADMIN_SESSION_SECS: i64 = 12 * 3600;

/// Whether the client reached us over HTTPS (through a proxy that says so).
pub fn https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: i64) -> String {
    // Also when the controller serves HTTPS itself.
    let secure = if https(headers) || crate::tls::enabled() {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

/// A new session id (256 random bits).
fn new_id() -> String {
    crate::auth::new_token("v6c_")
}

/// `Set-Cookie` starting an administrator session.
pub fn admin_cookie(api: &Api, headers: &HeaderMap) -> Option<String> {
    let token = api
        .admin_token
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let id = new_id();
    let row = SessionRow {
        lab: None,
        token_digest: digest(&token),
        expires: now() + ADMIN_SESSION_SECS,
    };
    if let Err(e) = api.ctl.store.insert_session(&id, &row, now()) {
        tracing::error!(error = %e, "web session");
        return None;
    }
    Some(set_cookie(headers, ADMIN_COOKIE, &id, ADMIN_SESSION_SECS))
}

/// `Set-Cookie` starting a student session on `lab`, or refreshing the request's session on it
/// (same id): it lasts as long as the lab, also after the trainer extended it.
pub fn student_cookie(
    api: &Api,
    headers: &HeaderMap,
    lab: &crate::store::LabRow,
) -> Option<String> {
    let t = now();
    let Ok(Some(token_digest)) = api.ctl.store.token_digest(&lab.name) else {
        return None;
    };
    let current = cookie(headers, STUDENT_COOKIE).filter(|id| {
        matches!(api.ctl.store.session(id), Ok(Some(s)) if s.lab.as_deref() == Some(lab.name.as_str()) && s.token_digest == token_digest && s.expires > t)
    });
    let id = current.map(str::to_owned).unwrap_or_else(new_id);
    let row = SessionRow {
        lab: Some(lab.name.clone()),
        token_digest,
        // The lab's expiry decides; this only lets the store forget the row one day.
        expires: t + api.ctl.cfg.max_lifetime.max(3600),
    };
    if let Err(e) = api.ctl.store.insert_session(&id, &row, t) {
        tracing::error!(error = %e, "web session");
        return None;
    }
    let max_age = (lab.expires - t).max(60);
    Some(set_cookie(headers, STUDENT_COOKIE, &id, max_age))
}

/// Ends the request's sessions on the server; returns the `Set-Cookie` headers clearing them.
pub fn end(api: &Api, headers: &HeaderMap) -> [String; 2] {
    for name in [ADMIN_COOKIE, STUDENT_COOKIE] {
        if let Some(id) = cookie(headers, name)
            && let Err(e) = api.ctl.store.delete_session(id)
        {
            tracing::error!(error = %e, "ending a web session");
        }
    }
    clear_cookies()
}

/// `Set-Cookie` headers ending both sessions in the browser.
pub fn clear_cookies() -> [String; 2] {
    [ADMIN_COOKIE, STUDENT_COOKIE]
        .map(|n| format!("{n}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"))
}
