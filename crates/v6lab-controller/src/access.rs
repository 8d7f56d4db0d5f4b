//! One place decides access, for HTTP, WebSocket and SSH: who a token or a web session is
//! ([`Principal`]), the rate limit on wrong tokens, the client's address (behind trusted
//! proxies), and the axum extractors [`Admin`], [`LabAccess`] and [`Caller`].
//!
//! - The administrator token is compared in constant time; a student token is looked up by its
//!   SHA-256 digest through an index (a digest reveals nothing of the token, so the lookup's
//!   timing does not either).
//! - A correct token is never refused by the rate limit: the token is checked first, and only
//!   failures are counted; a blocked source gets 429 for wrong tokens only.
//! - Web sessions are random ids in a cookie, kept server-side as digests with the digest of the
//!   token they were opened with: signing out deletes the session; a new token ends it.
//!
//! `api` and `web` both build on this module; it imports neither.

use crate::auth::{self, RateLimit};
use crate::controller::{Controller, now};
use crate::store::{Store, StoreError, digest};
use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

pub const ADMIN_COOKIE: &str = "v6lab_admin";
pub const STUDENT_COOKIE: &str = "v6lab_student";

/// What the HTTP handlers share (the axum state).
#[derive(Clone)]
pub struct Api {
    pub ctl: Arc<Controller>,
    pub admin_token: Arc<RwLock<String>>,
    pub limit: Arc<RateLimit>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (`v6lab serve --trusted-proxy`).
    pub trusted_proxies: Arc<[IpAddr]>,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    /// A student, owner of this lab.
    Student {
        lab: String,
        student: Option<String>,
    },
}

impl Principal {
    /// The lab a student owns (`None` for the administrator).
    pub fn lab(&self) -> Option<&str> {
        match self {
            Principal::Admin => None,
            Principal::Student { lab, .. } => Some(lab),
        }
    }

    /// Whether this principal may use `lab`.
    pub fn may_use(&self, lab: &str) -> bool {
        self.lab().is_none_or(|own| own == lab)
    }
}

/// A refusal or failure, answered as `{"error": ...}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(crate::api_types::ErrorBody { error: self.1 })).into_response()
    }
}

pub fn err(code: StatusCode, msg: impl Into<String>) -> ApiError {
    ApiError(code, msg.into())
}

pub fn forbidden() -> ApiError {
    err(StatusCode::FORBIDDEN, "forbidden")
}

pub fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "request failed");
    err(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the controller's log",
    )
}

/// The one token lookup: the administrator, the student owning a lab, or nobody.
pub fn lookup(
    store: &Store,
    admin_token: &RwLock<String>,
    token: &str,
) -> Result<Option<Principal>, StoreError> {
    let admin = admin_token
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if auth::token_eq(token, &admin) {
        return Ok(Some(Principal::Admin));
    }
    if !token.starts_with("v6s_") {
        return Ok(None);
    }
    Ok(store.lab_by_token(token)?.map(|l| Principal::Student {
        lab: l.name,
        student: l.student,
    }))
}

/// Why an authentication failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A wrong (or no) token; counted.
    Wrong,
    /// A wrong token from a source that has had too many.
    Blocked,
}

/// The token's owner if `check` accepts it; otherwise the failure is counted against `ip`.
/// The token is always checked first, so a correct token is never refused.
pub fn authenticate<T>(
    limit: &RateLimit,
    ip: IpAddr,
    check: impl FnOnce() -> Option<T>,
) -> Result<T, Refusal> {
    if let Some(p) = check() {
        return Ok(p);
    }
    let blocked = limit.blocked(ip);
    limit.failure(ip);
    Err(if blocked {
        Refusal::Blocked
    } else {
        Refusal::Wrong
    })
}

/// The client's address: the TCP peer, or, when the peer is a trusted proxy, the last address
/// in `X-Forwarded-For` that is not a trusted proxy itself.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let canon = |a: IpAddr| a.to_canonical();
    if !trusted.iter().any(|t| canon(*t) == canon(peer)) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().parse::<IpAddr>())
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    hops.into_iter()
        .rev()
        .find(|h| !trusted.iter().any(|t| canon(*t) == canon(*h)))
        .unwrap_or(peer)
}

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser says this request comes from another site.
pub fn cross_site(headers: &HeaderMap) -> bool {
    matches!(
        headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
        Some("cross-site" | "same-site")
    )
}

/// The bearer token of a request.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl Api {
    /// The client's address, as far as it can be believed.
    pub fn client(&self, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
        client_ip(peer.ip(), headers, &self.trusted_proxies)
    }

    /// The principal of a session id from a cookie, if the session is alive: not expired, and
    /// its token (the administrator's, or its lab's) unchanged; the lab still there.
    fn session(&self, id: &str, admin: bool) -> Option<Principal> {
        let s = self.ctl.store.session(id).ok()??;
        if s.expires <= now() {
            return None;
        }
        match (admin, s.lab) {
            (true, None) => {
                let t = self.admin_token.read().unwrap_or_else(|p| p.into_inner());
                auth::token_eq(&s.token_digest, &digest(&t)).then_some(Principal::Admin)
            }
            (false, Some(lab)) => {
                let l = self.ctl.store.lab(&lab).ok()??;
                let d = self.ctl.store.token_digest(&lab).ok()??;
                (l.expires > now() && d == s.token_digest).then_some(Principal::Student {
                    lab: l.name,
                    student: l.student,
                })
            }
            _ => None,
        }
    }

    /// Who the request's session cookies say is calling (the administrator first), if anyone.
    /// Requests a browser marks as coming from another site are never authenticated by cookie.
    pub fn session_principal(&self, headers: &HeaderMap) -> Option<Principal> {
        if cross_site(headers) {
            return None;
        }
        cookie(headers, ADMIN_COOKIE)
            .and_then(|v| self.session(v, true))
            .or_else(|| cookie(headers, STUDENT_COOKIE).and_then(|v| self.session(v, false)))
    }

    /// Authenticates a token typed, linked or sent by a client at `ip`.
    pub fn check_token(&self, token: &str, ip: IpAddr) -> Result<Principal, ApiError> {
        let found = authenticate(&self.limit, ip, || {
            match lookup(&self.ctl.store, &self.admin_token, token) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "token lookup");
                    None
                }
            }
        });
        found.map_err(|r| {
            self.ctl
                .metrics
                .auth_failures
                .fetch_add(1, Ordering::Relaxed);
            match r {
                Refusal::Blocked => err(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many failed attempts from this address; wait a minute",
                ),
                Refusal::Wrong => err(
                    StatusCode::UNAUTHORIZED,
                    "a valid token is required (Authorization: Bearer TOKEN)",
                ),
            }
        })
    }

    /// Authenticates a request: a bearer token, else a web session. Never tells whether a lab
    /// exists.
    pub fn auth(&self, headers: &HeaderMap, peer: SocketAddr) -> Result<Principal, ApiError> {
        match bearer(headers) {
            Some(t) => self.check_token(t, self.client(headers, peer)),
            None => match self.session_principal(headers) {
                Some(p) => Ok(p),
                None => self.check_token("", self.client(headers, peer)),
            },
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
        if p.may_use(lab) {
            Ok(p)
        } else {
            Err(forbidden())
        }
    }
}

fn peer_of(parts: &Parts) -> SocketAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or((Ipv6Addr::UNSPECIFIED, 0).into())
}

/// Any authenticated caller.
pub struct Caller(pub Principal);

impl FromRequestParts<Api> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        api.auth(&parts.headers, peer_of(parts)).map(Caller)
    }
}

/// The administrator (401 without a valid token or session, 403 for a student).
pub struct Admin;

impl FromRequestParts<Api> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        match api.auth(&parts.headers, peer_of(parts))? {
            Principal::Admin => Ok(Admin),
            Principal::Student { .. } => Err(forbidden()),
        }
    }
}

/// Access to the lab named by the route's `{lab}`: the administrator, or its student. Another
/// lab and a lab that does not exist are refused alike (403).
pub struct LabAccess {
    pub lab: String,
    pub who: Principal,
}

impl FromRequestParts<Api> for LabAccess {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, api)
            .await
            .map_err(|_| err(StatusCode::BAD_REQUEST, "no lab in the path"))?;
        let lab = params
            .iter()
            .find(|(k, _)| *k == "lab")
            .map(|(_, v)| v.to_owned())
            .ok_or_else(|| err(StatusCode::BAD_REQUEST, "no lab in the path"))?;
        let who = api.lab_access(&parts.headers, peer_of(parts), &lab)?;
        Ok(LabAccess { lab, who })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "2001:db8::10".parse().unwrap();
        let student: IpAddr = "2001:db8:1::5".parse().unwrap();
        let xff = h(&[("x-forwarded-for", "203.0.113.9, 2001:db8:1::5")]);
        assert_eq!(
            client_ip(student, &xff, &[proxy]),
            student,
            "untrusted peer"
        );
        assert_eq!(client_ip(proxy, &xff, &[proxy]), student);
        assert_eq!(client_ip(proxy, &xff, &[]), proxy, "no trusted proxy");
        // Chained proxies: the last hop that is not a trusted proxy.
        let chain = h(&[("x-forwarded-for", "198.51.100.7, 2001:db8::11")]);
        let two = [proxy, "2001:db8::11".parse().unwrap()];
        assert_eq!(
            client_ip(proxy, &chain, &two),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // Garbage or nothing: the proxy itself is counted.
        let bad = h(&[("x-forwarded-for", "not-an-address")]);
        assert_eq!(client_ip(proxy, &bad, &[proxy]), proxy);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
        // An IPv4 proxy seen as IPv4-mapped IPv6.
        let v4proxy: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let one = h(&[("x-forwarded-for", "192.0.2.50")]);
        assert_eq!(
            client_ip(mapped, &one, &[v4proxy]),
            "192.0.2.50".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_correct_token_is_never_refused_and_only_failures_count() {
        let limit = RateLimit::new(3, std::time::Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..1000 {
            let _ = authenticate(&limit, ip, || None::<()>);
        }
        assert_eq!(
            authenticate(&limit, ip, || None::<()>),
            Err(Refusal::Blocked)
        );
        assert_eq!(authenticate(&limit, ip, || Some(7)), Ok(7));
        let fresh: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(
            authenticate(&limit, fresh, || None::<()>),
            Err(Refusal::Wrong)
        );
        for _ in 0..100 {
            assert_eq!(authenticate(&limit, fresh, || Some(())), Ok(()));
        }
        assert!(!limit.blocked(fresh), "successes are not counted");
    }

    #[test]
    fn principals_use_their_own_lab_only() {
        let s = Principal::Student {
            lab: "c-a".into(),
            student: None,
        };
        assert!(s.may_use("c-a") && !s.may_use("c-b"));
        assert!(Principal::Admin.may_use("c-b"));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let m = h(&[("cookie", "a=1; v6lab_student=xyz; b=2")]);
        assert_eq!(cookie(&m, STUDENT_COOKIE), Some("xyz"));
        assert_eq!(cookie(&m, ADMIN_COOKIE), None);
        assert!(cross_site(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(!cross_site(&h(&[("sec-fetch-site", "same-origin")])));
    }

    /// An `Api` on a store in memory with two student labs, on the fake runtime (no engine).
    async fn api() -> (Api, String, String, String) {
        use crate::controller::Config;
        use crate::store::{LabRow, LabState};
        let store = Store::memory().unwrap();
        let mk = |name: &str| LabRow {
            created: now(),
            expires: now() + 3600,
            state: LabState::Ready,
            ..LabRow::sample(name, &auth::new_token("v6s_"))
        };
        let (a, b) = (mk("c-a"), mk("c-b"));
        store.insert_lab(&a).unwrap();
        store.insert_lab(&b).unwrap();
        let runtime = v6lab_runtime::fake::Fake::new();
        let cfg = Config {
            state_dir: std::env::temp_dir(),
            warn_before: 60,
            max_lifetime: 86_400,
            tick: std::time::Duration::from_secs(1),
            create_concurrency: 1,
            check_interval: std::time::Duration::ZERO,
            check_concurrency: 1,
            image: String::new(),
            owner: "controller-test".into(),
        };
        let admin = auth::new_token("v6a_");
        let api = Api {
            ctl: Controller::new(store, runtime, cfg),
            admin_token: Arc::new(RwLock::new(admin.clone())),
            limit: Arc::new(RateLimit::new(3, std::time::Duration::from_secs(60))),
            trusted_proxies: Arc::from(["2001:db8::10".parse::<IpAddr>().unwrap()]),
        };
        (api, admin, a.token, b.token)
    }

    fn router(api: Api) -> axum::Router {
        use axum::routing::get;
        axum::Router::new()
            .route("/admin", get(|_: Admin| async { "admin" }))
            .route(
                "/labs/{lab}/nodes/{node}",
                get(|a: LabAccess| async move { a.lab }),
            )
            .route(
                "/who",
                get(|Caller(p): Caller| async move { format!("{p:?}") }),
            )
            .with_state(api)
    }

    async fn call(
        r: &axum::Router,
        path: &str,
        from: &str,
        extra: &[(&str, &str)],
    ) -> (u16, String) {
        use tower::ServiceExt;
        let mut req = axum::http::Request::get(path);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let mut req = req.body(axum::body::Body::empty()).unwrap();
        let peer: SocketAddr = (from.parse::<IpAddr>().unwrap(), 40000).into();
        req.extensions_mut().insert(ConnectInfo(peer));
        let resp = r.clone().oneshot(req).await.unwrap();
        let code = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn extractors_decide_the_401_403_matrix() {
        let (api, admin, a, b) = api().await;
        let r = router(api);
        let bearer = |t: &str| format!("Bearer {t}");
        let ip = "192.0.2.1";
        let (ba, bb, bx) = (bearer(&admin), bearer(&a), bearer("v6s_wrong"));
        // Administrator only.
        assert_eq!(
            call(&r, "/admin", ip, &[("authorization", &ba)]).await.0,
            200
        );
        assert_eq!(
            call(&r, "/admin", ip, &[("authorization", &bb)]).await.0,
            403
        );
        assert_eq!(call(&r, "/admin", ip, &[]).await.0, 401);
        // A lab: its student and the administrator; another lab or none alike: 403.
        let lab_a = "/labs/c-a/nodes/h1";
        assert_eq!(
            call(&r, lab_a, ip, &[("authorization", &ba)]).await,
            (200, "c-a".into())
        );
        assert_eq!(
            call(&r, lab_a, ip, &[("authorization", &bb)]).await,
            (200, "c-a".into())
        );
        let (code, body) = call(&r, "/labs/c-b/nodes/h1", ip, &[("authorization", &bb)]).await;
        assert_eq!(code, 403);
        let (code2, body2) = call(&r, "/labs/c-zz/nodes/h1", ip, &[("authorization", &bb)]).await;
        assert_eq!(
            (code2, body2),
            (code, body),
            "a missing lab looks like another's"
        );
        assert_eq!(call(&r, lab_a, ip, &[("authorization", &bx)]).await.0, 401);
        let (_, who) = call(&r, "/who", ip, &[("authorization", &bearer(&b))]).await;
        assert!(who.contains("c-b"), "{who}");
    }

    #[tokio::test]
    async fn wrong_tokens_never_lock_out_a_correct_one() {
        let (api, admin, a, _) = api().await;
        let r = router(api);
        let ip = "2001:db8:5:6::1";
        for i in 0..1000 {
            let wrong = format!("Bearer v6s_{i}");
            let (code, _) = call(&r, "/who", ip, &[("authorization", &wrong)]).await;
            assert!(code == 401 || code == 429, "{code}");
        }
        // Blocked for wrong tokens (from anywhere in the /64) ...
        let wrong = [("authorization", "Bearer v6s_x")];
        assert_eq!(call(&r, "/who", "2001:db8:5:6::99", &wrong).await.0, 429);
        // ... but a correct token from the same address works at once.
        let ok = format!("Bearer {a}");
        assert_eq!(call(&r, "/who", ip, &[("authorization", &ok)]).await.0, 200);
        let ok = format!("Bearer {admin}");
        assert_eq!(call(&r, "/who", ip, &[("authorization", &ok)]).await.0, 200);
        // Another network is not blocked.
        assert_eq!(call(&r, "/who", "2001:db8:5:7::1", &wrong).await.0, 401);
    }

    #[tokio::test]
    async fn behind_a_trusted_proxy_failures_count_per_client() {
        let (api, _, _, _) = api().await;
        let r = router(api);
        let proxy = "2001:db8::10";
        let from = |c: &'static str| [("authorization", "Bearer v6s_x"), ("x-forwarded-for", c)];
        for _ in 0..5 {
            call(&r, "/who", proxy, &from("198.51.100.1")).await;
        }
        assert_eq!(call(&r, "/who", proxy, &from("198.51.100.1")).await.0, 429);
        assert_eq!(
            call(&r, "/who", proxy, &from("198.51.100.2")).await.0,
            401,
            "another client behind the proxy"
        );
        // An untrusted peer cannot pick its address.
        let spoof = [
            ("authorization", "Bearer v6s_x"),
            ("x-forwarded-for", "198.51.100.3"),
        ];
        for _ in 0..5 {
            call(&r, "/who", "192.0.2.99", &spoof).await;
        }
        assert_eq!(call(&r, "/who", proxy, &from("198.51.100.3")).await.0, 401);
    }

    #[tokio::test]
    async fn a_session_ends_on_the_server_at_sign_out() {
        let (api, admin, a, _) = api().await;
        let lab = api.ctl.store.lab("c-a").unwrap().unwrap();
        let set = crate::web::session::student_cookie(&api, &HeaderMap::new(), &lab).unwrap();
        let id = set.split(';').next().unwrap().to_owned();
        let r = router(api.clone());
        let with = [("cookie", id.as_str())];
        assert_eq!(
            call(&r, "/labs/c-a/nodes/h1", "192.0.2.1", &with).await.0,
            200
        );
        assert_eq!(
            call(&r, "/labs/c-b/nodes/h1", "192.0.2.1", &with).await.0,
            403
        );
        // From another site, a cookie is no session.
        let cross = [("cookie", id.as_str()), ("sec-fetch-site", "cross-site")];
        assert_eq!(
            call(&r, "/labs/c-a/nodes/h1", "192.0.2.1", &cross).await.0,
            401
        );
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, id.parse().unwrap());
        crate::web::session::end(&api, &h);
        assert_eq!(
            call(&r, "/labs/c-a/nodes/h1", "192.0.2.1", &with).await.0,
            401,
            "a copied cookie opens nothing"
        );
        // A new token ends a student's sessions; a rotated admin token the administrator's.
        let set = crate::web::session::student_cookie(&api, &HeaderMap::new(), &lab).unwrap();
        let id = set.split(';').next().unwrap().to_owned();
        assert_eq!(
            call(&r, "/labs/c-a/nodes/h1", "192.0.2.2", &[("cookie", &id)])
                .await
                .0,
            200
        );
        api.ctl
            .store
            .set_token("c-a", &auth::new_token("v6s_"))
            .unwrap();
        assert_eq!(
            call(&r, "/labs/c-a/nodes/h1", "192.0.2.2", &[("cookie", &id)])
                .await
                .0,
            401
        );
        assert!(api.ctl.store.lab_by_token(&a).unwrap().is_none());
        let set = crate::web::session::admin_cookie(&api, &HeaderMap::new()).unwrap();
        let id = set.split(';').next().unwrap().to_owned();
        assert_eq!(
            call(&r, "/admin", "192.0.2.3", &[("cookie", &id)]).await.0,
            200
        );
        *api.admin_token.write().unwrap() = auth::new_token("v6a_");
        assert_eq!(
            call(&r, "/admin", "192.0.2.3", &[("cookie", &id)]).await.0,
            401
        );
        let _ = admin;
    }
}
