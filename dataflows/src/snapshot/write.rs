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
use std::time::{Duration, Instant};

use reelflow_ingest::events::{PlaybackEvent, TopicEvent};
use reelflow_ingest::log::{AnyLog, EventLog, LogError, PartitionReader, Record};

use super::{Compactor, FoldedWith, Manifest, Snapshot, SnapshotError, SnapshotStore};
use crate::source::stamp;
use crate::time::{Time, now_ms};
use crate::views::Windows;

/// Records asked for per poll of the log.
const POLL: usize = 8192;

/// How long a partition may give nothing below its high watermark.
const STALLED: Duration = Duration::from_secs(30);

/// Folds the log into snapshots and writes them.
pub struct Writer {
    log: AnyLog,
    store: SnapshotStore,
    compactor: Compactor,
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
                self.compactor.mark(topic, partition),
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
            compactor,
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
    pub async fn catch_up(&mut self) -> Result<usize, LogError> {
        let tick = self.with.tick_ms;
        let grace = self.grace.as_millis() as Time;
        let mut records: Vec<Record> = Vec::new();
        let mut frontier = Time::MAX;
        for topic in crate::TOPICS {
            // Per partition: where to read from, its watermark, the stamp
            // of the last record read, and when the watermark was asked.
            let mut parts: BTreeMap<u32, Part> = BTreeMap::new();
            for partition in 0..self.log.partition_count(topic).await? {
                let (next, last) = self
                    .compactor
                    .mark(topic, partition)
                    .map_or((0, 0), |m| (m.offset, m.last));
                // The clock before the watermark: anything it misses was
                // accepted after this moment.
                let observed = now_ms();
                let high = self.log.high_watermark(topic, partition).await?;
                parts.insert(
                    partition,
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
                .filter(|(_, p)| p.next < p.high)
                .map(|(partition, p)| (*partition, p.next))
                .collect();
            if !assignment.is_empty() {
                let mut reader = self.log.reader(topic, &assignment).await?;
                let mut moved = Instant::now();
                while let Some((partition, p)) = parts.iter().find(|(_, p)| p.next < p.high) {
                    if moved.elapsed() > STALLED {
                        return Err(LogError::Invalid(format!(
                            "{topic} partition {partition} gave no records for {STALLED:?} at offset {}, short of its \
                             high watermark {}",
                            p.next, p.high
                        )));
                    }
                    let batch = reader.poll(POLL, Duration::from_millis(500)).await?;
                    if !batch.is_empty() {
                        moved = Instant::now();
                    }
                    for r in batch {
                        let Some(p) = parts.get_mut(&r.partition) else {
                            continue;
                        };
                        p.next = p.next.max(r.offset + 1);
                        if r.offset < p.high {
                            p.last = stamp(r.timestamp_ms, p.last, tick);
                            records.push(r);
                        }
                    }
                }
            }
            for p in parts.values() {
                frontier = frontier.min(p.last.max(p.observed.saturating_sub(grace)));
            }
        }
        if frontier != Time::MAX {
            self.compactor.advance(&records, frontier);
        }
        Ok(records.len())
    }

    /// Catches up with the log, writes a snapshot, and deletes the ones
    /// no longer kept.
    pub async fn snapshot(&mut self) -> Result<Written, SnapshotError> {
        let started = Instant::now();
        let records = self.catch_up().await?;
        let fold = started.elapsed();
        let snapshot = self.compactor.snapshot();
        let manifest = self.store.write(&snapshot, self.with.clone()).await?;
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
