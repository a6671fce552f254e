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
//!
//! It starts from the latest snapshot in object storage, and process 0
//! writes a new one every `dataflow.snapshot_interval_s` and when it stops
//! ([`Snapshots`]). `GET /v1/snapshots` lists the complete snapshots in
//! the store, newest first, with their size and age; `POST /v1/snapshots`
//! has process 0 write one now (an operator before a deploy, or a
//! benchmark), answering once it is stored.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use reelflow_dataflows::snapshot::{FoldedWith, Manifest, SnapshotStore, Writer, Written};
use reelflow_dataflows::{Dataflows, Metrics, PeekClient, SnapshotStatus};
use serde_json::json;

use crate::config::Config;
use crate::problem::{ApiError, ApiResult};
use crate::views::{self, ViewQuery};

/// How far behind the clock the views may be and still count as caught up.
pub const CAUGHT_UP: Duration = Duration::from_secs(5);

/// Starts this process's share of the dataflows over the configured log,
/// from the latest snapshot unless `dataflow.snapshots` is off; process 0
/// keeps writing snapshots ([`Snapshots`]).
pub async fn start(
    config: &Config,
    log: reelflow_ingest::log::AnyLog,
) -> anyhow::Result<(Dataflows, Option<Snapshots>)> {
    let mut options = config.dataflow_options()?;
    let cluster = options.cluster.clone();
    let store = if config.dataflow.snapshots {
        let store = crate::platform::open_store(config).await?;
        Some(SnapshotStore::new(Arc::new(store)))
    } else {
        None
    };
    let with = FoldedWith::of(&options.windows, options.source.tick.as_millis() as u64);
    let mut loaded = None;
    if let Some(store) = &store {
        let latest = store.latest(&with).await.context("loading the latest snapshot")?;
        if let Some((manifest, snapshot)) = latest {
            tracing::info!(
                sequence = manifest.sequence,
                frontier = manifest.frontier,
                bytes = manifest.bytes(),
                "starting from a snapshot: the log is read after it"
            );
            loaded = Some((manifest, Arc::new(snapshot)));
        }
    }
    options.snapshot = loaded.as_ref().map(|(_, s)| Arc::clone(s));
    tracing::info!(
        workers = cluster.workers,
        process = cluster.process,
        processes = cluster.processes(),
        "starting the dataflows"
    );
    let dataflows = Dataflows::start(log.clone(), options.clone()).await.with_context(|| {
        format!(
            "starting dataflow process {} of {}",
            cluster.process,
            cluster.processes()
        )
    })?;
    let metrics = Arc::clone(dataflows.client().metrics());
    if let Some((manifest, _)) = &loaded {
        *metrics.last_snapshot.lock().expect("metrics lock") = Some(status(manifest, 0));
    }
    let snapshots = match store {
        Some(store) if cluster.process == 0 => {
            let writer = Writer::new(
                log,
                store,
                &options.windows,
                with.tick_ms,
                loaded.as_ref().map(|(_, s)| s.as_ref()),
                options.source.idle_grace,
                config.dataflow.snapshots_kept,
            );
            Some(Snapshots::start(
                retention(writer, config),
                Duration::from_secs(config.dataflow.snapshot_interval_s),
                metrics,
            ))
        }
        _ => None,
    };
    Ok((dataflows, snapshots))
}

/// Folds the log since the latest snapshot into a new one, as process 0
/// does periodically (`reelflow dataflow snapshot`).
pub async fn snapshot_now(config: &Config) -> anyhow::Result<Written> {
    let options = config.dataflow_options()?;
    let log = crate::platform::open_log(config).await?;
    let store = SnapshotStore::new(Arc::new(crate::platform::open_store(config).await?));
    let tick_ms = options.source.tick.as_millis() as u64;
    let with = FoldedWith::of(&options.windows, tick_ms);
    let latest = store.latest(&with).await.context("loading the latest snapshot")?;
    let writer = Writer::new(
        log,
        store,
        &options.windows,
        tick_ms,
        latest.as_ref().map(|(_, s)| s),
        options.source.idle_grace,
        config.dataflow.snapshots_kept,
    );
    retention(writer, config).snapshot().await.context("writing a snapshot")
}

/// `writer`, deleting playback records after `log.playback_retention_s`.
fn retention(writer: Writer, config: &Config) -> Writer {
    match config.log.playback_retention_s {
        0 => writer,
        s => writer.expire_playback_after(Duration::from_secs(s)),
    }
}

/// What `/metrics` shows of a snapshot.
fn status(manifest: &Manifest, duration_ms: u64) -> SnapshotStatus {
    SnapshotStatus {
        sequence: manifest.sequence,
        frontier: manifest.frontier,
        bytes: manifest.bytes(),
        written_at_ms: manifest.written_at_ms,
        duration_ms,
    }
}

/// Process 0's snapshots: one every `dataflow.snapshot_interval_s`, and a
/// last one when the process stops ([`Snapshots::stop`]). Each folds only
/// the log since the one before (`reelflow_dataflows::snapshot`), beside
/// the dataflows rather than inside them, so the views never pause for it.
pub struct Snapshots {
    writer: Arc<tokio::sync::Mutex<Writer>>,
    metrics: Arc<Metrics>,
    task: tokio::task::JoinHandle<()>,
}

/// What the listener's `/v1/snapshots` needs: the store every process
/// reads, and on process 0 the writer.
#[derive(Clone, Default)]
pub struct SnapshotRoutes {
    store: Option<SnapshotStore>,
    with: Option<FoldedWith>,
    writer: Option<(Arc<tokio::sync::Mutex<Writer>>, Arc<Metrics>)>,
}

impl SnapshotRoutes {
    /// The routes of a process whose snapshots (if any) are `snapshots`,
    /// over `config`'s object store.
    pub async fn new(config: &Config, snapshots: Option<&Snapshots>) -> anyhow::Result<Self> {
        if !config.dataflow.snapshots {
            return Ok(Self::default());
        }
        let options = config.dataflow_options()?;
        Ok(Self {
            store: Some(SnapshotStore::new(Arc::new(crate::platform::open_store(config).await?))),
            with: Some(FoldedWith::of(&options.windows, options.source.tick.as_millis() as u64)),
            writer: snapshots.map(|s| (Arc::clone(&s.writer), Arc::clone(&s.metrics))),
        })
    }
}

impl Snapshots {
    fn start(writer: Writer, every: Duration, metrics: Arc<Metrics>) -> Self {
        let writer = Arc::new(tokio::sync::Mutex::new(writer));
        let task = {
            let (writer, metrics) = (Arc::clone(&writer), Arc::clone(&metrics));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    write(&writer, &metrics).await;
                }
            })
        };
        Self { writer, metrics, task }
    }

    /// Stops the periodic snapshots and writes a last one, so the next
    /// start reads as little of the log as possible.
    pub async fn stop(self) {
        self.task.abort();
        write(&self.writer, &self.metrics).await;
    }
}

async fn write(writer: &tokio::sync::Mutex<Writer>, metrics: &Metrics) {
    let _ = write_locked(&mut *writer.lock().await, metrics).await;
}

/// Writes a snapshot with `writer`, counting it in `metrics`.
async fn write_locked(writer: &mut Writer, metrics: &Metrics) -> Option<(Written, u64)> {
    let started = std::time::Instant::now();
    match writer.snapshot().await {
        Ok(w) => {
            let ms = started.elapsed().as_millis() as u64;
            tracing::info!(
                sequence = w.manifest.sequence,
                frontier = w.manifest.frontier,
                bytes = w.manifest.bytes(),
                records = w.records,
                fold_ms = w.fold.as_millis() as u64,
                write_ms = w.write.as_millis() as u64,
                "wrote a snapshot"
            );
            metrics.snapshots_written.fetch_add(1, Ordering::Relaxed);
            *metrics.last_snapshot.lock().expect("metrics lock") = Some(status(&w.manifest, ms));
            Some((w, ms))
        }
        Err(e) => {
            metrics.snapshot_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "writing a snapshot failed; the next one will try again");
            None
        }
    }
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
pub fn router(client: PeekClient, snapshots: SnapshotRoutes) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/views", get(|| async { Json(views::list()) }))
        .route("/v1/views/{name}", get(view))
        .with_state(client)
        .merge(
            Router::new()
                .route("/v1/snapshots", get(list_snapshots).post(snapshot_now_route))
                .with_state(snapshots),
        )
}

/// A manifest as `/v1/snapshots` shows it.
fn described(m: &Manifest, now_ms: u64) -> serde_json::Value {
    json!({
        "sequence": m.sequence,
        "frontier": m.frontier,
        "written_at_ms": m.written_at_ms,
        "age_s": now_ms.saturating_sub(m.written_at_ms) as f64 / 1000.0,
        "bytes": m.bytes(),
        "rows": m.parts.iter().map(|p| p.rows).sum::<u64>(),
        "partitions": m.partitions.len(),
        "format_version": m.format_version,
    })
}

fn disabled() -> ApiError {
    ApiError::Unavailable("snapshots are off on this cluster (dataflow.snapshots = false)".into())
}

async fn list_snapshots(State(routes): State<SnapshotRoutes>) -> ApiResult<Json<serde_json::Value>> {
    let (Some(store), Some(with)) = (&routes.store, &routes.with) else {
        return Err(disabled());
    };
    let manifests = store
        .manifests()
        .await
        .map_err(|e| ApiError::Unavailable(format!("listing the snapshots: {e}")))?;
    let now = reelflow_dataflows::now_ms();
    let listed: Vec<_> = manifests
        .iter()
        .map(|m| {
            let mut v = described(m, now);
            v["usable"] = json!(&m.folded_with == with);
            v
        })
        .collect();
    Ok(Json(json!({ "snapshots": listed })))
}

async fn snapshot_now_route(State(routes): State<SnapshotRoutes>) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    if routes.store.is_none() {
        return Err(disabled());
    }
    let Some((writer, metrics)) = &routes.writer else {
        return Err(ApiError::Conflict(
            "snapshots are written by process 0 of the cluster (reelflow-dataflow-0); ask it".into(),
        ));
    };
    let Ok(mut writer) = writer.try_lock() else {
        return Err(ApiError::Conflict(
            "a snapshot is being written now; list /v1/snapshots once it is done".into(),
        ));
    };
    match write_locked(&mut writer, metrics).await {
        Some((w, ms)) => {
            let mut v = described(&w.manifest, reelflow_dataflows::now_ms());
            v["records_folded"] = json!(w.records);
            v["fold_ms"] = json!(w.fold.as_millis() as u64);
            v["write_ms"] = json!(w.write.as_millis() as u64);
            v["duration_ms"] = json!(ms);
            Ok((StatusCode::CREATED, Json(v)))
        }
        None => Err(ApiError::Unavailable(
            "writing the snapshot failed; the process log says why, and the next one will try again".into(),
        )),
    }
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
