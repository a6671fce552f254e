//! A transcoder: a member of the consumer group on `reelflow.uploads`. Each
//! `upload_completed` becomes a job, queued (and reported `queued`) as it is
//! read and started owner by owner ([`super::fair`]); a record's offset is
//! committed only after its job, and every job before it in its partition,
//! reported `ready` or `failed`, so a transcoder killed mid-job leaves the
//! upload to be done again by the next member (outputs are overwritten, the
//! master playlist last). Records that are not valid upload events are
//! logged, counted and skipped.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::events::TopicEvent;
use crate::events::{ProcessingEvent, UploadEvent, decode};
use crate::log::{EventLog, GroupConsumer, LogResult};
use crate::storage::{ObjectKey, ObjectStore};
use crate::transcode::fair::{FairQueue, LOOKAHEAD, Outstanding, Waiting};
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

/// What a record of `reelflow.uploads` asks of a transcoder.
struct Job {
    video_id: uuid::Uuid,
    object_key: String,
    event_id: uuid::Uuid,
    uploaded_at: chrono::DateTime<chrono::Utc>,
}

/// Runs one transcoder until `stop` resolves (between jobs). Jobs are taken
/// owner by owner from the records read ahead ([`super::fair`]).
pub async fn run_worker<L: EventLog, S: ObjectStore>(
    log: L,
    store: S,
    settings: WorkerSettings,
    stats: Arc<WorkerStats>,
    stop: impl std::future::Future<Output = ()>,
) -> LogResult<()> {
    let mut consumer = log.consumer(GROUP, UploadEvent::TOPIC).await?;
    let mut queue: FairQueue<Job> = FairQueue::default();
    let mut outstanding = Outstanding::default();
    tokio::pin!(stop);
    loop {
        // Read ahead what is there; wait for a record only when idle.
        while queue.len() < LOOKAHEAD {
            let wait = if queue.is_empty() {
                Duration::from_secs(1)
            } else {
                Duration::ZERO
            };
            let record = tokio::select! {
                () = &mut stop => return Ok(()),
                r = consumer.next(wait) => r?,
            };
            let Some(record) = record else { break };
            outstanding.read(&record);
            match decode::<UploadEvent>(&record.value) {
                Err(e) => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(offset = record.offset, partition = record.partition, error = %e, "skipping a malformed upload event");
                    if let Some(done) = outstanding.done(record) {
                        consumer.commit(&done).await?;
                    }
                }
                Ok(envelope) => {
                    let UploadEvent::UploadCompleted {
                        video_id,
                        object_key,
                        owner_id,
                        ..
                    } = envelope.event;
                    report(&log, ProcessingEvent::Queued { video_id }).await;
                    queue.push(Waiting {
                        owner: owner_id,
                        job: Job {
                            video_id,
                            object_key,
                            event_id: envelope.event_id,
                            uploaded_at: envelope.occurred_at,
                        },
                        record,
                    });
                }
            }
        }
        // Stopping: between jobs, never in one.
        if futures::FutureExt::now_or_never(&mut stop).is_some() {
            return Ok(());
        }
        let Some(Waiting { job, record, .. }) = queue.pop() else {
            continue;
        };
        let video_id = job.video_id;
        tracing::info!(%video_id, "transcoding");
        let outcome = match ObjectKey::parse(&job.object_key) {
            Ok(key) => {
                let dir = settings.work_root.join(format!("{video_id}-{}", job.event_id.simple()));
                transcode(&log, &store, video_id, &key, &dir, settings.limits, job.uploaded_at).await
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
        if let Some(done) = outstanding.done(record) {
            consumer.commit(&done).await?;
        }
    }
}
