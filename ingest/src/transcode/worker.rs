//! A transcoder: a member of the consumer group on `reelflow.uploads`. Each
//! `upload_completed` becomes a job; the record's offset is committed only
//! after the job reported `ready` or `failed`, so a transcoder killed
//! mid-job leaves the upload to be done again by the next member (outputs
//! are overwritten, the master playlist last). Records that are not valid
//! upload events are logged, counted and skipped.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::events::TopicEvent;
use crate::events::{ProcessingEvent, UploadEvent, decode};
use crate::log::{EventLog, GroupConsumer, LogResult};
use crate::storage::{ObjectKey, ObjectStore};
use crate::transcode::job::{JobLimits, report, transcode};

/// The consumer group every transcoder joins.
pub const GROUP: &str = "reelflow-transcoders";

/// Settings of one transcoder.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Where jobs keep their files while they run.
    pub work_root: PathBuf,
    /// Limits of each job.
    pub limits: JobLimits,
}

/// What a transcoder has done, for metrics and tests.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Jobs that ended ready.
    pub ready: AtomicU64,
    /// Jobs that ended failed.
    pub failed: AtomicU64,
    /// Records skipped because they were not upload events.
    pub malformed: AtomicU64,
}

/// Runs one transcoder until `stop` resolves (between jobs).
pub async fn run_worker<L: EventLog, S: ObjectStore>(
    log: L,
    store: S,
    settings: WorkerSettings,
    stats: Arc<WorkerStats>,
    stop: impl std::future::Future<Output = ()>,
) -> LogResult<()> {
    let mut consumer = log.consumer(GROUP, UploadEvent::TOPIC).await?;
    tokio::pin!(stop);
    loop {
        let record = tokio::select! {
            () = &mut stop => return Ok(()),
            r = consumer.next(Duration::from_secs(1)) => r?,
        };
        let Some(record) = record else { continue };
        match decode::<UploadEvent>(&record.value) {
            Err(e) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(offset = record.offset, partition = record.partition, error = %e, "skipping a malformed upload event");
            }
            Ok(envelope) => {
                let UploadEvent::UploadCompleted {
                    video_id, object_key, ..
                } = envelope.event;
                tracing::info!(%video_id, "transcoding");
                report(&log, ProcessingEvent::Queued { video_id }).await;
                let outcome = match ObjectKey::parse(&object_key) {
                    Ok(key) => {
                        let dir = settings
                            .work_root
                            .join(format!("{video_id}-{}", envelope.event_id.simple()));
                        transcode(
                            &log,
                            &store,
                            video_id,
                            &key,
                            &dir,
                            settings.limits,
                            envelope.occurred_at,
                        )
                        .await
                    }
                    Err(e) => {
                        let failed = ProcessingEvent::Failed {
                            video_id,
                            reason: format!("the upload names no valid object: {e}"),
                        };
                        report(&log, failed.clone()).await;
                        failed
                    }
                };
                match outcome {
                    ProcessingEvent::Ready { .. } => stats.ready.fetch_add(1, Ordering::Relaxed),
                    _ => stats.failed.fetch_add(1, Ordering::Relaxed),
                };
                tracing::info!(%video_id, topic = ProcessingEvent::TOPIC, "job done");
            }
        }
        consumer.commit(&record).await?;
    }
}
