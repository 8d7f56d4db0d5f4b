//! Static files of the web UI, compiled into the binary: our own scripts and styles
//! (`web/src/`) and the xterm.js files copied from the pinned npm packages (`web/vendor/`, see
//! `web/vendor.sh`). Served with an ETag (a hash of the content) and revalidated on each load.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        mime: "text/css; charset=utf-8",
        body: include_bytes!("../../../../web/src/app.css"),
    },
    Asset {
        name: "app.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../../web/src/app.js"),
    },
    Asset {
        name: "term.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../../web/src/term.js"),
    },
    Asset {
        name: "go.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../../web/src/go.js"),
    },
    Asset {
        name: "xterm.mjs",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../../web/vendor/xterm.mjs"),
    },
    Asset {
        name: "addon-fit.mjs",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../../web/vendor/addon-fit.mjs"),
    },
    Asset {
        name: "xterm.css",
        mime: "text/css; charset=utf-8",
        body: include_bytes!("../../../../web/vendor/xterm.css"),
    },
    Asset {
        name: "favicon.svg",
        mime: "image/svg+xml",
        body: include_bytes!("../../../../web/src/favicon.svg"),
    },
];

fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..12])))
            .collect()
    })
}

pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == file) else {
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    let (a, tag) = (&ASSETS[i], &etags()[i]);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, a.mime)], a.body).into_response()
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
