//! The platform's own health, for orchestrators, scrapers and operators:
//! liveness (`/healthz`: the process answers), readiness (`/readyz`: the
//! database, the log and object storage answer), `/v1/version`, and
//! `/metrics` — on the API for admins only, since the figures describe the
//! whole platform, and without accounts on `http.metrics_listen`, a
//! listener meant for a scraper inside the cluster network.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use reelflow_ingest::events::{CatalogEvent, TopicEvent};
use reelflow_ingest::{EventLog, ObjectStore};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::exposition::Scrape;
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;

/// The operations routes of the API.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(version))
        .routes(routes!(metrics))
}

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
    responses((status = 200, description = "OpenMetrics text format", content_type = "application/openmetrics-text"),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn metrics(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
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
    let mut scrape = Scrape::default();
    scrape.playback(&state.delivery.metrics, state.delivery.cache_bytes());
    if let Some(views) = &state.views {
        scrape.dataflows(views.metrics());
    }
    scrape.into_response()
}
