//! The HTTP application: `fn app(state) -> Router`, so tests drive it without
//! a socket. Routes are declared with their OpenAPI description
//! (utoipa-axum), so the document at `/v1/openapi.json` is generated from
//! the same list the router is built from.
//!
//! - `GET /healthz`: liveness. 200 while the process can answer at all.
//! - `GET /readyz`: readiness. 200 when the database, the log and object
//!   storage answer, 503 with the failing check otherwise.
//! - `GET /v1/version`: what is running.
//! - `/v1/auth/*`, `/v1/me`, `/v1/users/*`: accounts ([`crate::auth`]).
//! - `/v1/videos*`: the catalog ([`crate::catalog`]).
//! - `/v1/views*`: the live views, when the dataflows run here ([`crate::views`]).
//! - `/v1/videos/{id}/hls/*`, `poster.jpg`, `storyboard.jpg`,
//!   `/v1/videos/{id}/playback-token`, `POST /v1/playback/events`,
//!   `/watch/{id}`: playback ([`crate::playback`]).
//! - `GET /metrics`: Prometheus metrics of the dataflows in this process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use reelflow_ingest::events::{CatalogEvent, TopicEvent};
use reelflow_ingest::{EventLog, ObjectStore};
use serde_json::json;
use tokio::sync::Notify;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Keyring;
use crate::config::Config;
use crate::db::Db;
use crate::platform::Platform;
use crate::problem::{ApiResult, Problem};
use crate::ratelimit::Limits;
use crate::{auth, catalog, playback, sql, uploads, users, views};

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// The log and the store.
    pub platform: Platform,
    /// The metadata database.
    pub db: Db,
    /// Token signing keys.
    pub keys: Arc<Keyring>,
    /// Rate limits.
    pub limits: Arc<Limits>,
    /// Wakes the outbox publisher after a commit.
    pub outbox_wake: Arc<Notify>,
    /// The live views, when the dataflows run in this process (`reelflow up`).
    pub views: Option<reelflow_dataflows::PeekClient>,
    /// HLS delivery's caches.
    pub delivery: playback::Delivery,
    /// SQL over the live views, when the dataflows run in this process.
    pub sql: Option<reelflow_sql::SqlEngine>,
}

impl AppState {
    /// Opens the database (migrating it) and the signing keys.
    pub async fn open(config: Config, platform: Platform) -> anyhow::Result<Self> {
        let db = Db::open(&config.database_url()).await?;
        let keys_file = config.keys_file();
        let keys = tokio::task::spawn_blocking(move || Keyring::load_or_create(&keys_file)).await??;
        Ok(Self {
            limits: Arc::new(Limits::new(&config.limits)),
            delivery: playback::Delivery::new(&config.playback),
            sql: None,
            config: Arc::new(config),
            platform,
            db,
            keys: Arc::new(keys),
            outbox_wake: Arc::new(Notify::new()),
            views: None,
        })
    }
}

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
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(version))
        .routes(routes!(metrics))
        .routes(routes!(views::list_views))
        .routes(routes!(views::get_view))
        .routes(routes!(sql::post_sql))
        .routes(routes!(auth::routes::register))
        .routes(routes!(auth::routes::login))
        .routes(routes!(auth::routes::refresh_tokens))
        .routes(routes!(auth::routes::logout))
        .routes(routes!(auth::routes::change_password))
        .routes(routes!(users::get_me, users::patch_me, users::delete_me))
        .routes(routes!(users::list_users))
        .routes(routes!(users::set_role))
        .routes(routes!(users::delete_user))
        .routes(routes!(catalog::create_video, catalog::list_videos))
        .routes(routes!(
            catalog::get_video,
            catalog::update_video,
            catalog::delete_video
        ))
        .routes(routes!(playback::token::playback_token))
        .routes(routes!(playback::player::watch))
        .routes(routes!(playback::player::player_js))
        .routes(routes!(playback::player::hls_js))
        .routes(routes!(crate::console::index))
        .routes(routes!(crate::console::console_js))
        .routes(routes!(crate::console::console_css))
        .routes(routes!(crate::console::tus_js))
        .routes(routes!(crate::console::chart_js))
        .routes(routes!(uploads::tus_options, uploads::create_upload))
        .routes(routes!(
            uploads::head_upload,
            uploads::patch_upload,
            uploads::delete_upload
        ))
        .routes(routes!(uploads::put_source))
        .split_for_parts();
    let (media, media_doc) = OpenApiRouter::new()
        .routes(routes!(playback::delivery::master))
        .routes(routes!(playback::delivery::rendition))
        .routes(routes!(playback::delivery::poster))
        .routes(routes!(playback::delivery::storyboard))
        .routes(routes!(playback::beacons::post_events))
        .split_for_parts();
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

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive", body = String)))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// How long a readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

async fn check<E: std::fmt::Display>(f: impl Future<Output = Result<(), E>>) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, f).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Readiness: the database, the log and object storage answer.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, description = "a dependency is failing")))]
async fn readyz(State(state): State<AppState>) -> Response {
    let db = check(async { sqlx::query("SELECT 1").execute(&state.db.pool).await.map(|_| ()) }).await;
    let log = check(async {
        state
            .platform
            .log
            .high_watermark(CatalogEvent::TOPIC, 0)
            .await
            .map(|_| ())
    })
    .await;
    let store = check(async { state.platform.store.list("readyz/").await.map(|_| ()) }).await;
    let show = |r: &Result<(), String>| match r {
        Ok(()) => json!({"status": "ok"}),
        Err(e) => json!({"status": "failing", "error": e}),
    };
    let ready = db.is_ok() && log.is_ok() && store.is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": { "database": show(&db), "log": show(&log), "storage": show(&store) }
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// What is running.
#[utoipa::path(get, path = "/v1/version", tag = "operations", responses((status = 200, description = "name, version and backends")))]
async fn version(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "name": "reelflow",
        "version": env!("CARGO_PKG_VERSION"),
        "log": state.platform.log.backend(),
        "storage": state.platform.store.backend(),
        "database": match state.db.kind { crate::db::DbKind::Sqlite => "sqlite", crate::db::DbKind::Postgres => "postgres" },
    }))
}

/// Prometheus metrics (text format): playback (the media cache, bytes
/// served, beacons) and, when they run here, the dataflows (records read,
/// lag per partition, arrangement sizes, the views' frontier).
/// On the API listener, for admins only (the figures describe the whole
/// platform); `http.metrics_listen` serves them without accounts, for a
/// scraper inside the cluster network.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(("bearer" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn metrics(State(state): State<AppState>, caller: crate::auth::Caller) -> ApiResult<Response> {
    caller.require_admin()?;
    Ok(render_metrics(&state))
}

/// The router of `http.metrics_listen`: `/metrics` and nothing else, no
/// accounts.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move { render_metrics(&state) }),
        )
        .with_state(state)
}

fn render_metrics(state: &AppState) -> Response {
    let mut body = state.delivery.render_metrics();
    if let Some(views) = &state.views {
        body.push_str(&views.metrics().render());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

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

/// Starts what runs beside the HTTP server: the outbox publisher, the
/// follower that keeps catalog statuses in step with the pipeline, and the
/// sweeper of expired uploads (once a minute).
pub fn spawn_background(state: &AppState) -> tokio::task::JoinHandle<()> {
    let publisher = crate::outbox::spawn_publisher(
        state.db.clone(),
        state.platform.log.clone(),
        Arc::clone(&state.outbox_wake),
    );
    let sweeper_state = state.clone();
    let status = catalog::status::follow(state.db.clone(), state.platform.log.clone());
    // Aborting the returned task stops the publisher too.
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let guard = AbortOnDrop(publisher.abort_handle());
    tokio::spawn(async move {
        let _guard = guard;
        let sweeper = async {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                match uploads::sweep_expired(&sweeper_state).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(n, "dropped expired uploads"),
                    Err(e) => tracing::warn!(error = %e, "sweeping expired uploads failed"),
                }
            }
        };
        tokio::select! {
            _ = publisher => {},
            () = sweeper => {},
            () = status => {},
        }
    })
}

/// Opens everything `config` names.
pub async fn open(config: Config) -> anyhow::Result<AppState> {
    let platform = Platform::open(&config).await?;
    AppState::open(config, platform)
        .await
        .context("opening accounts and the catalog")
}
