//! The HTTP application: `fn app(state) -> Router`, so tests drive it without
//! a socket. Each area owns its routes (`routes()`, declared with their
//! OpenAPI description through utoipa-axum); this file only merges them and
//! adds what is the same for all of them — CORS, compression of playlists,
//! the body limit, problem documents for unrouted requests — so the
//! document at `/v1/openapi.json` is generated from the same routes the
//! router serves.
//!
//! - `/healthz`, `/readyz`, `/v1/version`, `/metrics`: [`crate::ops`].
//! - `/v1/auth/*`: sign-in and tokens ([`crate::auth`]).
//! - `/v1/me`, `/v1/users/*`: accounts ([`crate::accounts`]).
//! - `/v1/videos*`: the catalog ([`crate::catalog`]).
//! - `/v1/uploads*`, `/v1/videos/{id}/source`: uploads ([`crate::uploads`]).
//! - `/v1/views*`: the live views ([`crate::views`]); `/v1/sql`: SQL over
//!   them ([`crate::sql`]).
//! - `/v1/videos/{id}/hls/*`, `poster.jpg`, `storyboard.jpg`,
//!   `/v1/videos/{id}/playback-token`, `POST /v1/playback/events`,
//!   `/watch/{id}`: playback ([`crate::playback`]).
//! - `/` and `/assets/*`: the web console ([`crate::console`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::problem::Problem;
use crate::state::AppState;
use crate::{accounts, auth, catalog, console, ops, playback, sql, uploads, views};

#[derive(OpenApi)]
#[openapi(
    info(title = "Reelflow API", description = "Accounts, the video catalog and the platform's health."),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Register, sign in, refresh and sign out"),
        (name = "accounts", description = "Profiles and, for admins, users"),
        (name = "catalog", description = "Videos"),
        (name = "views", description = "The live views"),
        (name = "playback", description = "HLS delivery, playback tokens, the player page and its beacons"),
        (name = "operations", description = "Health, metrics and version"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every documented route, and the OpenAPI document that describes them:
/// the API (CORS from `http.cors_origins`), and media and beacons (open to
/// players on any origin).
pub fn api() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::routes())
        .merge(views::routes())
        .merge(sql::routes())
        .merge(auth::routes())
        .merge(accounts::routes())
        .merge(catalog::routes())
        .merge(playback::routes())
        .merge(console::routes())
        .merge(uploads::routes())
        .split_for_parts();
    let (media, media_doc) = playback::media_routes().split_for_parts();
    doc.merge(media_doc);
    (api, media, doc)
}

/// Whether a response is a playlist (gzipped when the client accepts it;
/// segments and pictures are compressed already).
fn is_playlist(
    _: StatusCode,
    _: axum::http::Version,
    headers: &axum::http::HeaderMap,
    _: &axum::http::Extensions,
) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/vnd.apple.mpegurl"))
}

/// The router.
pub fn app(state: AppState) -> Router {
    let (router, media, openapi) = api();
    let openapi = Arc::new(openapi);
    let mut router = router
        .route(
            "/v1/openapi.json",
            get(move || async move { Json(openapi.as_ref().clone()) }),
        )
        .method_not_allowed_fallback(method_not_allowed);
    if !state.config.http.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = state
            .config
            .http
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PATCH,
                    Method::PUT,
                    Method::DELETE,
                    Method::HEAD,
                ])
                .allow_headers(
                    [header::AUTHORIZATION, header::CONTENT_TYPE]
                        .into_iter()
                        .chain(TUS_REQUEST_HEADERS.iter().map(|h| header::HeaderName::from_static(h)))
                        .collect::<Vec<_>>(),
                )
                .expose_headers(
                    [header::RETRY_AFTER, header::LOCATION]
                        .into_iter()
                        .chain(TUS_RESPONSE_HEADERS.iter().map(|h| header::HeaderName::from_static(h)))
                        .collect::<Vec<_>>(),
                )
                .max_age(Duration::from_secs(600)),
        );
    }
    let media = media
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CompressionLayer::new().gzip(true).compress_when(is_playlist))
        .layer(
            CorsLayer::new()
                .allow_origin(tower_http::cors::Any)
                .allow_methods([Method::GET, Method::HEAD, Method::POST])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::RANGE,
                    header::IF_NONE_MATCH,
                    header::IF_RANGE,
                ])
                .expose_headers([
                    header::CONTENT_LENGTH,
                    header::CONTENT_RANGE,
                    header::ACCEPT_RANGES,
                    header::ETAG,
                    header::RETRY_AFTER,
                ])
                .max_age(Duration::from_secs(600)),
        );
    router
        .merge(media)
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(state.config.http.max_body_bytes))
        .with_state(state)
}

/// Headers tus clients send, which browsers must be allowed to send.
const TUS_REQUEST_HEADERS: [&str; 6] = [
    "tus-resumable",
    "upload-length",
    "upload-metadata",
    "upload-offset",
    "upload-checksum",
    "upload-defer-length",
];
/// Headers tus clients read, which browsers must be allowed to show them.
const TUS_RESPONSE_HEADERS: [&str; 8] = [
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "upload-offset",
    "upload-length",
    "upload-metadata",
    "upload-expires",
];

async fn fallback(request: Request) -> Problem {
    Problem::not_found(request.uri().path())
}

async fn method_not_allowed(request: Request) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method Not Allowed",
    )
    .detail(format!(
        "{} is not allowed on {}",
        request.method(),
        request.uri().path()
    ))
}
