//! The console's files, embedded in the binary at build time: hand-written HTML, CSS and
//! JavaScript modules, no build step, nothing fetched from anywhere but the node itself.
//!
//! - `console.html` + `console.js`: the operator console (`/`).
//! - `login.html` + `login.js`: signing in (`/login`).
//! - `public.html` + `public.js`: the public map of the buttons (`/public/`).
//! - `reportes.html` + `reportes.js` + `reportes.css`: the municipality's reports (`/reportes`), charts drawn
//!   with Chart.js (`vendor/chartjs/`, vendored from npm; served by [`crate::reports`]).
//! - `wall.js`: the camera wall of the console (a tile per camera of an open incident).
//! - `fmp4.js`: live video as fragmented MP4 through Media Source Extensions, for browsers
//!   without WebCodecs.
//! - `glass.js`: glass-to-glass latency read from test cameras' stamped pictures.
//! - `i18n.js` + `i18n/es.json`, `i18n/en.json`: words in Spanish and English and times in
//!   the city's zone ([`crate::i18n`]).
//! - `map.js`: the map every page draws: streets from the configured tile server with Leaflet
//!   (`vendor/leaflet/`, vendored from npm), or the SVG grid from coordinates alone when no
//!   tiles are configured or they do not load; `map.css`, its styles (the console, the public
//!   map and the brigade app share both).
//! - `console.css`: the console's stylesheet; `favicon.svg`.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

pub const CONSOLE_HTML: &str = include_str!("../assets/console.html");
pub const LOGIN_HTML: &str = include_str!("../assets/login.html");
pub const PUBLIC_HTML: &str = include_str!("../assets/public.html");
pub const REPORTS_HTML: &str = include_str!("../assets/reportes.html");

/// Name, content type, bytes of every file under `/assets/`.
const FILES: &[(&str, &str, &str)] = &[
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/console.js"),
    ),
    (
        "calls.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/calls.js"),
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
        "reportes.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/reportes.js"),
    ),
    (
        "reportes.css",
        "text/css; charset=utf-8",
        include_str!("../assets/reportes.css"),
    ),
    (
        "posts.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/posts.js"),
    ),
    (
        "posts.css",
        "text/css; charset=utf-8",
        include_str!("../assets/posts.css"),
    ),
    (
        "glass.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/glass.js"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/i18n.js"),
    ),
    (
        "i18n/es.json",
        "application/json",
        crate::i18n::CATALOGUE_ES,
    ),
    (
        "i18n/en.json",
        "application/json",
        crate::i18n::CATALOGUE_EN,
    ),
    (
        "map.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/map.js"),
    ),
    (
        "map.css",
        "text/css; charset=utf-8",
        include_str!("../assets/map.css"),
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

/// Leaflet (assets/vendor/leaflet, from npm, BSD 2-Clause): name, content type, bytes.
const LEAFLET: &[(&str, &str, &[u8])] = &[
    (
        "leaflet-src.esm.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/leaflet/leaflet-src.esm.js"),
    ),
    (
        "leaflet.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/vendor/leaflet/leaflet.css"),
    ),
    (
        "LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/vendor/leaflet/LICENSE"),
    ),
    (
        "images/layers.png",
        "image/png",
        include_bytes!("../assets/vendor/leaflet/images/layers.png"),
    ),
    (
        "images/layers-2x.png",
        "image/png",
        include_bytes!("../assets/vendor/leaflet/images/layers-2x.png"),
    ),
    (
        "images/marker-icon.png",
        "image/png",
        include_bytes!("../assets/vendor/leaflet/images/marker-icon.png"),
    ),
    (
        "images/marker-icon-2x.png",
        "image/png",
        include_bytes!("../assets/vendor/leaflet/images/marker-icon-2x.png"),
    ),
    (
        "images/marker-shadow.png",
        "image/png",
        include_bytes!("../assets/vendor/leaflet/images/marker-shadow.png"),
    ),
];

/// `GET /assets/vendor/leaflet/{file}` and `.../images/{file}`: the street map's library.
pub async fn leaflet(Path(file): Path<String>) -> Response {
    leaflet_file(&file)
}

/// `GET /assets/vendor/leaflet/images/{file}`.
pub async fn leaflet_image(Path(file): Path<String>) -> Response {
    leaflet_file(&format!("images/{file}"))
}

fn leaflet_file(file: &str) -> Response {
    match LEAFLET.iter().find(|(name, _, _)| *name == file) {
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

/// `GET /assets/i18n/{file}`: the message catalogues.
pub async fn catalogue(Path(file): Path<String>) -> Response {
    serve(&format!("i18n/{file}"))
}

/// `GET /assets/{file}`. Revalidated on every load (`no-cache`): a node upgrade must never
/// leave an operator on an old script talking to a new API.
pub async fn asset(Path(file): Path<String>) -> Response {
    serve(&file)
}

fn serve(file: &str) -> Response {
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

/// An HTML page rendered for one request (language, settings), never cached.
pub fn page_owned(html: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
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
