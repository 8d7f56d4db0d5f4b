//! The web UI, served by the controller next to the API: the trainer's dashboard (classes, labs,
//! a live progress board, printable access sheets) and the students' pages (their lab's nodes,
//! exercises, checks, time left, and a terminal per node in the browser).
//!
//! - Pages are tera templates (`templates/web/*.html.tera`), compiled into the binary; every
//!   value is escaped by tera's HTML autoescape; exercise instructions are Markdown rendered
//!   here with raw HTML neutralised ([`markdown`]).
//! - Scripts and styles (`web/src/`) and the xterm.js files (`web/vendor/`, copied by
//!   `web/vendor.sh` from the npm packages pinned in `web/package-lock.json`) are compiled into
//!   the binary too ([`assets`]): nothing is fetched from elsewhere at run time.
//! - Sessions are server-side, named by a random id in a cookie ([`session`]): the administrator
//!   signs in with the admin token (never in a URL); a student opens `/s/TOKEN`, which sets a
//!   student cookie and moves to the clean URL `/labs/LAB` (asking first when the browser holds
//!   another session). Signing out deletes the session. The same cookies authenticate the JSON
//!   API ([`crate::access`]), which the pages call for extend, delete, checks and the live event
//!   stream.
//! - Terminals ([`terminal`]) are WebSockets to an exec TTY in a node, authorised before the
//!   upgrade and closed when the lab ends.

mod assets;
mod markdown;
mod pages;
pub use pages::{SSH_GATEWAY_PORT, SSH_HOST_KEY};
pub mod session;
mod terminal;

use crate::access::Api;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};

/// Routes of the web UI (merged into the API router, which adds the state).
pub fn router() -> Router<Api> {
    Router::new()
        .route("/", get(pages::index))
        .route("/login", post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/s/{token}", get(pages::student_link).post(pages::confirm))
        .route("/dashboard", get(pages::dashboard))
        .route("/classes/{class}", get(pages::class))
        .route("/classes/{class}/sheet", get(pages::sheet))
        .route("/labs/{lab}", get(pages::lab))
        .route("/labs/{lab}/nodes/{node}/terminal", get(terminal::terminal))
        .route("/static/{file}", get(assets::serve))
        .layer(axum::middleware::map_response(security_headers))
}

/// The topology picture of a plan (SVG, segments coloured by family).
pub fn topology_svg(plan: &v6lab_core::Plan) -> String {
    v6lab_core::graph::svg(plan)
}

/// Headers on every web response: no scripts but our own, no framing, no referrer (student
/// links carry a token), no MIME sniffing. xterm.js sets its theme through a `<style>` element,
/// hence `style-src 'unsafe-inline'`; scripts stay `'self'` only.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::CACHE_CONTROL, "no-store");
    r
}
