//! `reelflow transcode`: the transcoders of one process, and the small HTTP
//! listener (`transcode.listen`) an orchestrator needs beside them —
//! `/healthz`, `/readyz` (the log answers) and `/metrics` (jobs done,
//! failed, running).
//!
//! Each transcoder is a member of the consumer group on `reelflow.uploads`.
//! On shutdown a transcoder finishes the job it is running and stops before
//! taking the next, so a rolling update or a scale-down does not throw away
//! half-done ffmpeg work when the grace period allows it; a job cut short
//! anyway is done again by the next member of the group, as its offset was
//! not committed.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use reelflow_ingest::EventLog;
use reelflow_ingest::events::{TopicEvent, UploadEvent};
use reelflow_ingest::transcode::WorkerStats;
use serde_json::json;
use tokio::sync::watch;

use crate::config::Config;
use crate::platform::Platform;

/// The transcoders of this process.
pub struct Transcoders {
    stats: Arc<WorkerStats>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Transcoders {
    /// Starts `transcode.workers` transcoders on the platform's log and store.
    pub fn start(config: &Config, platform: &Platform) -> Self {
        let stats = Arc::new(WorkerStats::default());
        let (stop, stopping) = watch::channel(false);
        let workers = (0..config.transcode.workers)
            .map(|_| {
                let (log, store, settings, stats) = (
                    platform.log.clone(),
                    platform.store.clone(),
                    config.transcoder(),
                    Arc::clone(&stats),
                );
                let mut stopping = stopping.clone();
                tokio::spawn(async move {
                    let stop = async move {
                        let _ = stopping.wait_for(|stop| *stop).await;
                    };
                    if let Err(e) = reelflow_ingest::transcode::run_worker(log, store, settings, stats, stop).await {
                        tracing::error!(error = %e, "a transcoder stopped");
                    }
                })
            })
            .collect();
        Self { stats, workers, stop }
    }

    /// What the transcoders have done.
    pub fn stats(&self) -> Arc<WorkerStats> {
        Arc::clone(&self.stats)
    }

    /// Asks every transcoder to stop after its current job and waits for
    /// them.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for worker in std::mem::take(&mut self.workers) {
            let _ = worker.await;
        }
    }
}

impl Drop for Transcoders {
    fn drop(&mut self) {
        for worker in &self.workers {
            worker.abort();
        }
    }
}

#[derive(Clone)]
struct Ops {
    platform: Platform,
    stats: Arc<WorkerStats>,
    workers: usize,
}

/// The listener's routes.
pub fn router(config: &Config, platform: Platform, stats: Arc<WorkerStats>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Ops {
            platform,
            stats,
            workers: config.transcode.workers,
        })
}

/// Ready when the log answers: a transcoder that cannot reach it takes no
/// jobs.
async fn readyz(State(ops): State<Ops>) -> Response {
    let check = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        ops.platform.log.high_watermark(UploadEvent::TOPIC, 0),
    )
    .await;
    match check {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({"status": "ready"}))).into_response(),
        Ok(Err(e)) => unavailable(&e.to_string()),
        Err(_) => unavailable("the log did not answer within 3 s"),
    }
}

fn unavailable(reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "not ready", "reason": reason})),
    )
        .into_response()
}

async fn metrics(State(ops): State<Ops>) -> crate::exposition::Scrape {
    let mut scrape = crate::exposition::Scrape::default();
    scrape.transcoders(&ops.stats, ops.workers);
    scrape
}
