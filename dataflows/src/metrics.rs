//! What a dataflow process reports on `/metrics`: records read, malformed
//! and reclocked records, each partition's offset and lag, the size of
//! every view's arrangement, and its snapshots. `serve` writes them out for Prometheus.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::schema::View;

/// Where a partition's reader stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionStatus {
    /// Next offset to read.
    pub offset: u64,
    /// The log's high watermark when last checked.
    pub high_watermark: u64,
    /// The partition's frontier (ms).
    pub ts: u64,
    /// Records skipped as malformed.
    pub malformed: u64,
}

/// The latest snapshot this process started from or wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// Its sequence number.
    pub sequence: u64,
    /// Every record stamped before it is covered (ms).
    pub frontier: u64,
    /// Bytes of its parts.
    pub bytes: u64,
    /// When it was written (ms since the epoch).
    pub written_at_ms: u64,
    /// How long writing it took, folding the log included (ms; 0 when this
    /// process only loaded it).
    pub duration_ms: u64,
}

/// Counters of one dataflow process, shared by its workers.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Records read from the log.
    pub records: AtomicU64,
    /// Records skipped as malformed.
    pub malformed: AtomicU64,
    /// Records stamped later than their log time (they arrived below their
    /// partition's idle floor).
    pub reclocked: AtomicU64,
    /// Per `(topic, partition)` read by this process.
    pub partitions: Mutex<BTreeMap<(String, u32), PartitionStatus>>,
    /// Updates held per view arrangement, per local worker. `video_stats`
    /// and `qoe` share one arrangement, and both show its size.
    pub arrangement_updates: Mutex<BTreeMap<(View, usize), usize>>,
    /// Frontier of the views (ms), per local worker.
    pub frontier: Mutex<BTreeMap<usize, u64>>,
    /// Subscriptions this process serves.
    pub subscriptions: AtomicU64,
    /// Subscriptions dropped because their consumer fell behind.
    pub subscriptions_dropped: AtomicU64,
    /// Records read per second over the last measured second.
    pub records_per_second: Mutex<(Option<(std::time::Instant, u64)>, f64)>,
    /// Snapshots this process wrote.
    pub snapshots_written: AtomicU64,
    /// Snapshots this process failed to write.
    pub snapshot_failures: AtomicU64,
    /// The latest snapshot it started from or wrote.
    pub last_snapshot: Mutex<Option<SnapshotStatus>>,
}

impl Metrics {
    /// Updates the records-per-second gauge; called about once a second.
    pub fn sample_rate(&self) {
        let now = std::time::Instant::now();
        let records = self.records.load(Ordering::Relaxed);
        let mut rate = self.records_per_second.lock().expect("metrics lock");
        if let Some((then, before)) = rate.0 {
            let secs = now.duration_since(then).as_secs_f64();
            if secs < 0.5 {
                return;
            }
            rate.1 = records.saturating_sub(before) as f64 / secs;
        }
        rate.0 = Some((now, records));
    }
}
