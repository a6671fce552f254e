//! Keeps each video's catalog `status` in step with the pipeline.
//!
//! The serving layer sets `uploaded` itself when an upload completes; from
//! there the transcoders report on `reelflow.processing`. A member of the
//! consumer group [`GROUP`] reads those events and moves the catalog row
//! forward — queued, processing, then ready or failed — committing each
//! event only after the row is written, so a crash replays rather than
//! loses a change. A status only moves forward in that order (and from
//! failed to ready, when a later run succeeds): a late or duplicated event
//! (at-least-once producers, a transcoder that restarted) never takes a
//! ready video back to processing. The live `video_status`
//! view has the same facts with progress and stage; this column is what
//! catalog listings filter on.

use std::time::Duration;

use reelflow_ingest::events::{self, ProcessingEvent, TopicEvent};
use reelflow_ingest::log::{AnyLog, EventLog, GroupConsumer};

use crate::db::Db;

/// The consumer group of the catalog's status followers.
pub const GROUP: &str = "reelflow-catalog-status";

/// The status an event moves a video to, and the statuses it may move from.
fn transition(event: &ProcessingEvent) -> (&'static str, &'static str) {
    match event {
        ProcessingEvent::Queued { .. } => ("queued", "('uploaded')"),
        ProcessingEvent::Probing { .. } | ProcessingEvent::Transcoding { .. } => {
            ("processing", "('uploaded', 'queued')")
        }
        // A run that succeeds after an earlier one failed makes the video
        // playable all the same.
        ProcessingEvent::Ready { .. } => ("ready", "('uploaded', 'queued', 'processing', 'failed')"),
        ProcessingEvent::Failed { .. } => ("failed", "('uploaded', 'queued', 'processing')"),
    }
}

/// Applies one event to the catalog; `true` if a row changed.
pub async fn apply(db: &Db, event: &ProcessingEvent) -> Result<bool, sqlx::Error> {
    let (status, from) = transition(event);
    // `from` is one of the fixed lists above, never input.
    let sql = format!("UPDATE videos SET status = $1, updated_at = $2 WHERE id = $3 AND status IN {from}");
    let done = sqlx::query(&sql)
        .bind(status)
        .bind(crate::db::now_ms())
        .bind(event.video_id().to_string())
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Follows `reelflow.processing` until the task is dropped; errors are
/// logged and retried.
pub async fn follow(db: Db, log: AnyLog) {
    loop {
        if let Err(e) = follow_once(&db, &log).await {
            tracing::warn!(error = %e, "following the pipeline's progress failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

async fn follow_once(db: &Db, log: &AnyLog) -> anyhow::Result<()> {
    let mut consumer = log.consumer(GROUP, ProcessingEvent::TOPIC).await?;
    loop {
        let Some(record) = consumer.next(Duration::from_secs(1)).await? else {
            continue;
        };
        match events::decode::<ProcessingEvent>(&record.value) {
            Ok(e) => {
                apply(db, &e.event).await?;
            }
            Err(reason) => {
                tracing::warn!(partition = record.partition, offset = record.offset, %reason, "skipping a malformed processing event");
            }
        }
        consumer.commit(&record).await?;
    }
}
