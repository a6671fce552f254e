//! The transactional outbox: how a catalog change and its event on
//! `reelflow.catalog` never disagree.
//!
//! A handler writes the change and the event (into the `outbox` table) in
//! one database transaction. A publisher appends pending rows to the log in
//! order and deletes them only after the log acknowledged them. If the
//! process dies between the commit and the append, the rows are still there
//! and the next publisher (on restart, or another replica) appends them. An
//! event can therefore be appended twice, never lost; it keeps its
//! `event_id`, so consumers drop the duplicate.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use reelflow_ingest::EventLog;
use reelflow_ingest::events::{Envelope, TopicEvent};
use reelflow_ingest::log::AnyLog;
use sqlx::Row;
use tokio::sync::Notify;

use crate::db::{Db, now_ms};

/// Rows published per round trip to the log.
const BATCH: i64 = 200;

/// Adds `event` to the outbox inside the caller's transaction.
pub async fn enqueue<T: TopicEvent>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: &Envelope<T>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO outbox (topic, record_key, payload, created_at) VALUES ($1, $2, $3, $4)")
        .bind(T::TOPIC)
        .bind(event.key())
        .bind(String::from_utf8(event.to_bytes()).expect("events are UTF-8 JSON"))
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Appends every pending row to the log, oldest first; returns how many.
pub async fn publish_pending(db: &Db, log: &AnyLog) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        let rows = sqlx::query("SELECT seq, topic, record_key, payload FROM outbox ORDER BY seq LIMIT $1")
            .bind(BATCH)
            .fetch_all(&db.pool)
            .await
            .context("reading the outbox")?;
        if rows.is_empty() {
            return Ok(total);
        }
        let mut last_seq = 0i64;
        // Consecutive rows of one topic go in one batch; order is kept.
        let mut i = 0;
        while i < rows.len() {
            let topic: String = rows[i].try_get("topic")?;
            let mut j = i;
            let mut records = Vec::new();
            while j < rows.len() && rows[j].try_get::<String, _>("topic")? == topic {
                records.push((
                    rows[j].try_get::<String, _>("record_key")?,
                    rows[j].try_get::<String, _>("payload")?,
                ));
                last_seq = rows[j].try_get("seq")?;
                j += 1;
            }
            let batch: Vec<(&[u8], &[u8])> = records.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
            log.append_batch(&topic, &batch)
                .await
                .with_context(|| format!("appending outbox rows to {topic}"))?;
            i = j;
        }
        sqlx::query("DELETE FROM outbox WHERE seq <= $1")
            .bind(last_seq)
            .execute(&db.pool)
            .await
            .context("clearing published outbox rows")?;
        total += rows.len();
    }
}

/// Publishes in the background: at once when `wake` is notified (after a
/// commit), and every second anyway (rows left by a crashed process).
pub fn spawn_publisher(db: Db, log: AnyLog, wake: Arc<Notify>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match publish_pending(&db, &log).await {
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
                }
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "outbox publishing failed; will retry");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    })
}
