//! The HTTP application: `fn app(state) -> Router`, so tests drive it without
//! a socket. Today it answers the operational endpoints; the API grows here
//! as capabilities land.
//!
//! - `GET /healthz`: liveness. 200 while the process can answer at all.
//! - `GET /readyz`: readiness. 200 when the log and object storage answer,
//!   503 with the failing check otherwise (a load balancer stops sending
//!   traffic, nothing restarts).
//! - `GET /v1/version`: what is running.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use reelflow_ingest::events::CatalogEvent;
use reelflow_ingest::events::TopicEvent;
use reelflow_ingest::{EventLog, ObjectStore};
use serde_json::json;

use crate::platform::Platform;
use crate::problem::Problem;

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The log and the store.
    pub platform: Platform,
}

/// The router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/version", get(version))
        .fallback(fallback)
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// How long a readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

async fn readyz(State(state): State<AppState>) -> Response {
    let log = tokio::time::timeout(CHECK_TIMEOUT, state.platform.log.high_watermark(CatalogEvent::TOPIC, 0)).await;
    let log = match log {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_string()),
    };
    let store = tokio::time::timeout(CHECK_TIMEOUT, state.platform.store.list("readyz/")).await;
    let store = match store {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_string()),
    };
    let show = |r: &Result<(), String>| match r {
        Ok(()) => json!({"status": "ok"}),
        Err(e) => json!({"status": "failing", "error": e}),
    };
    let ready = log.is_ok() && store.is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "log": show(&log),
            "storage": show(&store),
        }
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn version(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "name": "reelflow",
        "version": env!("CARGO_PKG_VERSION"),
        "log": state.platform.log.backend(),
        "storage": state.platform.store.backend(),
    }))
}

async fn fallback(request: Request) -> Problem {
    Problem::not_found(request.uri().path())
}
