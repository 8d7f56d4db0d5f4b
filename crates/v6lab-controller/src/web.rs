//! The web UI: trainer dashboard, access sheets, student pages with in-browser terminals.

use crate::api::Api;
use axum::Router;

/// Routes of the web UI (merged into the API router, which adds the state).
pub fn router() -> Router<Api> {
    Router::new()
}
