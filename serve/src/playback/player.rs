//! Reelflow's own player page, `GET /watch/{id}`: hls.js (vendored in
//! `serve/assets`, so nothing is fetched from elsewhere) plays the video
//! and the page sends the player's beacons. The page and its scripts are
//! compiled into the binary.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::problem::ApiPath;

const PAGE: &str = include_str!("../../assets/player.html");
const PLAYER_JS: &str = include_str!("../../assets/player.js");
const HLS_JS: &str = include_str!("../../assets/hls-1.7.4.min.js");

/// The page may run only its own scripts (hls.js runs its transmuxer in a
/// worker made from a blob) and talk only to this origin.
const CSP: &str = "default-src 'self'; script-src 'self'; worker-src 'self' blob:; media-src 'self' blob:; \
                   img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; connect-src 'self'; base-uri 'none'";

pub(crate) fn asset(body: &'static str, content_type: &'static str, cache_control: &'static str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The player page of a video.
#[utoipa::path(get, path = "/watch/{id}", tag = "playback",
    params(("id" = Uuid, Path, description = "video id"),
        ("token" = Option<String>, Query, description = "a playback token (private videos)"),
        ("autoplay" = Option<String>, Query, description = "1 starts playing, muted")),
    responses((status = 200, description = "the page", content_type = "text/html"), (status = 400, body = crate::problem::Problem)))]
pub async fn watch(ApiPath(_id): ApiPath<Uuid>) -> Response {
    let mut response = asset(PAGE, "text/html; charset=utf-8", "no-cache");
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    response
}

/// The player page's script.
#[utoipa::path(get, path = "/assets/player.js", tag = "playback",
    responses((status = 200, description = "the script", content_type = "text/javascript")))]
pub async fn player_js() -> Response {
    asset(PLAYER_JS, "text/javascript; charset=utf-8", "no-cache")
}

/// hls.js 1.7.4 (Apache-2.0, `serve/assets/hls.js-LICENSE`).
#[utoipa::path(get, path = "/assets/hls-1.7.4.min.js", tag = "playback",
    responses((status = 200, description = "the script", content_type = "text/javascript")))]
pub async fn hls_js() -> Response {
    asset(
        HLS_JS,
        "text/javascript; charset=utf-8",
        "public, max-age=31536000, immutable",
    )
}
