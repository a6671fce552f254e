//! Writing snapshots: the log read since the last one, folded, and stored.
//!
//! A [`Writer`] keeps its [`Compactor`] between snapshots, so each one
//! reads only the log since the one before. Where it may fold up to is the
//! sources' rule for an idle partition: once a partition is read to the
//! high watermark it had at a moment, no record it gets later is stamped
//! before that moment, less the grace for records accepted but not yet
//! visible. So the frontier is the earliest, over all partitions, of that
//! bound and the last record read.
//!
//! It also keeps the log's retention: playback records older than the
//! retention are deleted once the oldest snapshot kept covers them, so a
//! start from any snapshot kept still finds every record after it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reelflow_ingest::events::{PlaybackEvent, TopicEvent};
use reelflow_ingest::log::{AnyLog, EventLog, LogError, PartitionReader, Record};

use super::{Compactor, FoldedWith, Manifest, Snapshot, SnapshotError, SnapshotStore};
use crate::source::stamp;
use crate::time::{Time, now_ms};
use crate::views::Windows;

/// Records asked for per poll of the log.
const POLL: usize = 8192;

/// Records read before a fold, while catching up.
const CHUNK: usize = 1 << 20;

/// How long a partition may give nothing below its high watermark.
const STALLED: Duration = Duration::from_secs(30);

/// Folds the log into snapshots and writes them.
pub struct Writer {
    log: AnyLog,
    store: SnapshotStore,
    /// Taken while a blocking thread folds with it.
    compactor: Option<Compactor>,
    with: FoldedWith,
    grace: Duration,
    keep: usize,
    expire_playback: Option<Duration>,
}

impl Writer {
    /// Deletes the playback records older than `after` that the oldest
    /// snapshot kept covers (whole segments of the embedded log; Kafka
    /// deletes up to the offset). The catalog and media topics keep
    /// everything: their facts are few, and a video's are needed for as
    /// long as it exists.
    async fn expire(&self, after: Duration) -> Result<(), SnapshotError> {
        let Some(oldest) = self.store.manifests().await?.pop() else {
            return Ok(());
        };
        let cutoff = now_ms().saturating_sub(after.as_millis() as Time);
        let topic = PlaybackEvent::TOPIC;
        for partition in 0..self.log.partition_count(topic).await? {
            let (Some(now), Some(kept)) = (
                self.compactor.as_ref().and_then(|c| c.mark(topic, partition)),
                oldest
                    .partitions
                    .iter()
                    .find(|m| m.topic == topic && m.partition == partition),
            ) else {
                continue;
            };
            let upto = now.offset_before(cutoff).min(kept.offset);
            if upto > 0 {
                self.log.expire_before(topic, partition, upto).await?;
            }
        }
        Ok(())
    }
}

/// A partition as [`Writer::catch_up`] reads it.
struct Part {
    /// The next offset to read.
    next: u64,
    /// Its high watermark, asked at `observed`.
    high: u64,
    /// The stamp of the last record read (or where the snapshot left it).
    last: Time,
    observed: Time,
}

/// What writing one snapshot took.
#[derive(Clone, Debug)]
pub struct Written {
    /// Its manifest.
    pub manifest: Manifest,
    /// Records of the log read and folded for it.
    pub records: usize,
    /// Reading and folding the log.
    pub fold: Duration,
    /// Encoding and storing it.
    pub write: Duration,
}

impl Writer {
    /// A writer of `log`'s snapshots into `store`, carrying on from
    /// `from` (the log's start without one), keeping the newest `keep`.
    pub fn new(
        log: AnyLog,
        store: SnapshotStore,
        windows: &Windows,
        tick_ms: Time,
        from: Option<&Snapshot>,
        grace: Duration,
        keep: usize,
    ) -> Self {
        let compactor = match from {
            Some(s) => Compactor::resume(s, windows),
            None => Compactor::new(windows, tick_ms),
        };
        Self {
            log,
            store,
            compactor: Some(compactor),
            with: FoldedWith::of(windows, tick_ms),
            grace,
            keep,
            expire_playback: None,
        }
    }

    /// Deletes playback records from the log once they are older than
    /// `after` (in log time) and every snapshot kept covers them.
    pub fn expire_playback_after(mut self, after: Duration) -> Self {
        self.expire_playback = Some(after);
        self
    }

    /// Reads every partition of the log up to its high watermark, from
    /// where the last pass left it, and folds what no partition can still
    /// come before. Returns the records read.
    ///
    /// It folds as it reads, [`CHUNK`] records at a time, up to the
    /// earliest stamp any partition still being read has reached, so a
    /// first snapshot of a long log holds a chunk of it in memory, not
    /// all of it. The fold runs on a blocking thread, off the runtime
    /// that serves the process's requests.
    pub async fn catch_up(&mut self) -> Result<usize, SnapshotError> {
        let tick = self.with.tick_ms;
        let grace = self.grace.as_millis() as Time;
        // Per partition: where to read from, its watermark, the stamp of
        // the last record read, and when the watermark was asked.
        let mut parts: BTreeMap<(&'static str, u32), Part> = BTreeMap::new();
        let mut readers = Vec::new();
        let compactor = self.compactor.as_ref().ok_or(SnapshotError::Lost)?;
        for topic in crate::TOPICS {
            for partition in 0..self.log.partition_count(topic).await? {
                let (next, last) = compactor.mark(topic, partition).map_or((0, 0), |m| (m.offset, m.last));
                // The clock before the watermark: anything it misses was
                // accepted after this moment.
                let observed = now_ms();
                let high = self.log.high_watermark(topic, partition).await?;
                parts.insert(
                    (topic, partition),
                    Part {
                        next,
                        high,
                        last,
                        observed,
                    },
                );
            }
            // One reader for the topic's partitions with records to read.
            let assignment: Vec<(u32, u64)> = parts
                .iter()
                .filter(|((t, _), p)| *t == topic && p.next < p.high)
                .map(|((_, partition), p)| (*partition, p.next))
                .collect();
            if !assignment.is_empty() {
                readers.push((topic, self.log.reader(topic, &assignment).await?, Instant::now()));
            }
        }
        let mut pending: Vec<Record> = Vec::new();
        let mut read = 0;
        loop {
            let mut reading = false;
            for (topic, reader, moved) in &mut readers {
                let Some(((_, partition), p)) = parts.iter().find(|((t, _), p)| t == topic && p.next < p.high) else {
                    continue;
                };
                reading = true;
                if moved.elapsed() > STALLED {
                    return Err(LogError::Invalid(format!(
                        "{topic} partition {partition} gave no records for {STALLED:?} at offset {}, short of its high \
                         watermark {}",
                        p.next, p.high
                    ))
                    .into());
                }
                let batch = reader.poll(POLL, Duration::from_millis(500)).await?;
                if !batch.is_empty() {
                    *moved = Instant::now();
                }
                for r in batch {
                    let Some(p) = parts.get_mut(&(*topic, r.partition)) else {
                        continue;
                    };
                    p.next = p.next.max(r.offset + 1);
                    if r.offset < p.high {
                        p.last = stamp(r.timestamp_ms, p.last, tick);
                        read += 1;
                        pending.push(r);
                    }
                }
            }
            if !reading {
                break;
            }
            if pending.len() >= CHUNK {
                // Nothing still to be read of a partition is stamped
                // before the last record read of it.
                let partial = parts
                    .values()
                    .map(|p| {
                        if p.next < p.high {
                            p.last
                        } else {
                            p.last.max(p.observed.saturating_sub(grace))
                        }
                    })
                    .min()
                    .unwrap_or(0);
                pending = self.fold(pending, partial).await?;
            }
        }
        let frontier = parts
            .values()
            .map(|p| p.last.max(p.observed.saturating_sub(grace)))
            .min();
        if let Some(frontier) = frontier {
            self.fold(pending, frontier).await?;
        }
        Ok(read)
    }

    /// Folds `records` up to `frontier` on a blocking thread; returns those
    /// left for a later pass (stamped at or after it).
    async fn fold(&mut self, mut records: Vec<Record>, frontier: Time) -> Result<Vec<Record>, SnapshotError> {
        let mut compactor = self.compactor.take().ok_or(SnapshotError::Lost)?;
        let (compactor, records) = tokio::task::spawn_blocking(move || {
            compactor.advance(&records, frontier);
            records.retain(|r| {
                compactor
                    .mark(&r.topic, r.partition)
                    .is_none_or(|m| r.offset >= m.offset)
            });
            (compactor, records)
        })
        .await
        .map_err(|_| SnapshotError::Lost)?;
        self.compactor = Some(compactor);
        Ok(records)
    }

    /// Catches up with the log, writes a snapshot, and deletes the ones
    /// no longer kept.
    pub async fn snapshot(&mut self) -> Result<Written, SnapshotError> {
        let started = Instant::now();
        let records = self.catch_up().await?;
        let fold = started.elapsed();
        let compactor = self.compactor.take().ok_or(SnapshotError::Lost)?;
        let (compactor, snapshot) = tokio::task::spawn_blocking(move || {
            let snapshot = compactor.snapshot();
            (compactor, snapshot)
        })
        .await
        .map_err(|_| SnapshotError::Lost)?;
        self.compactor = Some(compactor);
        let manifest = self.store.write(Arc::new(snapshot), self.with.clone()).await?;
        let write = started.elapsed() - fold;
        if let Err(e) = self.store.prune(self.keep).await {
            tracing::warn!(error = %e, "deleting old snapshots failed; they are deleted with the next one");
        }
        if let Some(after) = self.expire_playback {
            self.expire(after).await?;
        }
        Ok(Written {
            manifest,
            records,
            fold,
            write,
        })
    }
}
