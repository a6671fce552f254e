//! `reelflow dataflow`: one process of the timely cluster, with its own
//! small HTTP listener for what the rest of the platform and Kubernetes
//! ask of it — the views (`/v1/views`), `/metrics`, `/healthz`, and
//! `/readyz`, which turns ready only once the views have caught up with
//! the log (their frontier is within a few seconds of the clock), so a
//! rolling restart waits for a rebuilt process before taking the next.
//!
//! The listener is cluster-internal. Its views have no accounts; its
//! `POST /v1/sql` ([`crate::sql`]) checks the caller's access token with
//! the public API's own extractor, keys and rules (see
//! [`crate::auth::Gate`]); the API forwards `/v1/sql` here. The process
//! also serves the PostgreSQL wire protocol on `sql.pgwire_listen`.

use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use reelflow_dataflows::{Dataflows, PeekClient};
use serde_json::json;

use crate::config::Config;
use crate::problem::ApiResult;
use crate::views::{self, ViewQuery};

/// How far behind the clock the views may be and still count as caught up.
pub const CAUGHT_UP: Duration = Duration::from_secs(5);

/// Starts this process's share of the dataflows over the configured log.
pub async fn start(config: &Config, log: reelflow_ingest::log::AnyLog) -> anyhow::Result<Dataflows> {
    let options = config.dataflow_options()?;
    let cluster = options.cluster.clone();
    tracing::info!(
        workers = cluster.workers,
        process = cluster.process,
        processes = cluster.processes(),
        "starting the dataflows"
    );
    Dataflows::start(log, options).await.with_context(|| {
        format!(
            "starting dataflow process {} of {}",
            cluster.process,
            cluster.processes()
        )
    })
}

/// Whether the views have caught up with the log.
pub fn caught_up(client: &PeekClient) -> Result<u64, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    match client.readable_at() {
        None => Err("the views are not readable yet".into()),
        Some(t) if now.saturating_sub(t) > CAUGHT_UP.as_millis() as u64 => Err(format!(
            "the views are {} ms behind the clock; still reading the log",
            now - t
        )),
        Some(t) => Ok(t),
    }
}

/// The internal listener's routes.
pub fn router(client: PeekClient) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/views", get(|| async { Json(views::list()) }))
        .route("/v1/views/{name}", get(view))
        .with_state(client)
}

async fn readyz(State(client): State<PeekClient>) -> Response {
    match caught_up(&client) {
        Ok(t) => (StatusCode::OK, Json(json!({"status": "ready", "readable_at": t}))).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "catching up", "reason": reason})),
        )
            .into_response(),
    }
}

async fn metrics(State(client): State<PeekClient>) -> crate::exposition::Scrape {
    let mut scrape = crate::exposition::Scrape::default();
    scrape.dataflows(client.metrics());
    scrape
}

async fn view(
    State(client): State<PeekClient>,
    Path(name): Path<String>,
    Query(query): Query<ViewQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(views::read(&client, &name, query).await?))
}
