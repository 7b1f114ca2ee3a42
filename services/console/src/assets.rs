//! The console's files, embedded in the binary at build time: hand-written HTML, CSS and
//! JavaScript modules, no build step, nothing fetched from anywhere but the node itself.
//!
//! - `console.html` + `console.js`: the operator console (`/`).
//! - `login.html` + `login.js`: signing in (`/login`).
//! - `public.html` + `public.js`: the public map of the buttons (`/public/`).
//! - `wall.js`: the camera wall of the console (a tile per camera of an open incident).
//! - `fmp4.js`: live video as fragmented MP4 through Media Source Extensions, for browsers
//!   without WebCodecs.
//! - `glass.js`: glass-to-glass latency read from test cameras' stamped pictures.
//! - `map.js`: the SVG map both draw, from coordinates alone (no tile server).
//! - `console.css`: the one stylesheet; `favicon.svg`.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

pub const CONSOLE_HTML: &str = include_str!("../assets/console.html");
pub const LOGIN_HTML: &str = include_str!("../assets/login.html");
pub const PUBLIC_HTML: &str = include_str!("../assets/public.html");

/// Name, content type, bytes of every file under `/assets/`.
const FILES: &[(&str, &str, &str)] = &[
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/console.js"),
    ),
    (
        "login.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/login.js"),
    ),
    (
        "public.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/public.js"),
    ),
    (
        "wall.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/wall.js"),
    ),
    (
        "fmp4.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/fmp4.js"),
    ),
    (
        "glass.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/glass.js"),
    ),
    (
        "map.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/map.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../assets/console.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../assets/favicon.svg"),
    ),
];

/// `GET /assets/{file}`. Revalidated on every load (`no-cache`): a node upgrade must never
/// leave an operator on an old script talking to a new API.
pub async fn asset(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

/// An HTML page, never cached (it decides which scripts load).
pub fn page(html: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}
