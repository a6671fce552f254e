//! The web console at `/`: sign up, the library with live processing
//! status, uploads (tus-js-client), analytics charts (Chart.js), a SQL
//! console and the admin's pages — one page of plain JavaScript over the
//! public API, whose live parts read `SUBSCRIBE` as server-sent events.
//! The page, its script and the two libraries (pinned npm releases,
//! vendored in `serve/assets` with their licences) are compiled into the
//! binary, so nothing is fetched from elsewhere at run time.

use axum::http::{HeaderValue, header};
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::playback::player::asset;
use crate::state::AppState;

const PAGE: &str = include_str!("../assets/console/index.html");
const CONSOLE_JS: &str = include_str!("../assets/console/console.js");
const CONSOLE_CSS: &str = include_str!("../assets/console/console.css");
const TUS_JS: &str = include_str!("../assets/tus-4.3.1.min.js");
const CHART_JS: &str = include_str!("../assets/chart-4.5.1.umd.min.js");

/// The console runs only its own scripts and talks only to this origin.
const CSP: &str = "default-src 'self'; script-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's page and assets.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(console_js))
        .routes(routes!(console_css))
        .routes(routes!(tus_js))
        .routes(routes!(chart_js))
}

/// The web console.
#[utoipa::path(get, path = "/", tag = "console",
    responses((status = 200, description = "the console", content_type = "text/html")))]
pub async fn index() -> Response {
    let mut response = asset(PAGE, "text/html; charset=utf-8", "no-cache");
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    response
}

/// The console's script.
#[utoipa::path(get, path = "/assets/console.js", tag = "console",
    responses((status = 200, description = "the script", content_type = "text/javascript")))]
pub async fn console_js() -> Response {
    asset(CONSOLE_JS, "text/javascript; charset=utf-8", "no-cache")
}

/// The console's style sheet.
#[utoipa::path(get, path = "/assets/console.css", tag = "console",
    responses((status = 200, description = "the style sheet", content_type = "text/css")))]
pub async fn console_css() -> Response {
    asset(CONSOLE_CSS, "text/css; charset=utf-8", "no-cache")
}

/// tus-js-client 4.3.1 (MIT, `serve/assets/tus-js-client-LICENSE`).
#[utoipa::path(get, path = "/assets/tus-4.3.1.min.js", tag = "console",
    responses((status = 200, description = "the script", content_type = "text/javascript")))]
pub async fn tus_js() -> Response {
    asset(
        TUS_JS,
        "text/javascript; charset=utf-8",
        "public, max-age=31536000, immutable",
    )
}

/// Chart.js 4.5.1 (MIT, `serve/assets/chart.js-LICENSE`).
#[utoipa::path(get, path = "/assets/chart-4.5.1.umd.min.js", tag = "console",
    responses((status = 200, description = "the script", content_type = "text/javascript")))]
pub async fn chart_js() -> Response {
    asset(
        CHART_JS,
        "text/javascript; charset=utf-8",
        "public, max-age=31536000, immutable",
    )
}
