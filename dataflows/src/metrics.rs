//! What a dataflow process reports on `/metrics`: records read, malformed
//! and reclocked records, each partition's offset and lag, and the size of
//! every view's arrangement, in Prometheus' text format.

use std::collections::BTreeMap;
use std::fmt::Write;
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

    /// The Prometheus text exposition of these metrics.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            name.to_string()
        };
        let records = metric(
            "reelflow_dataflow_records_total",
            "counter",
            "Records read from the log.",
        );
        let malformed = metric(
            "reelflow_dataflow_malformed_total",
            "counter",
            "Records skipped as malformed.",
        );
        let reclocked = metric(
            "reelflow_dataflow_reclocked_total",
            "counter",
            "Records stamped later than their log time.",
        );
        let rate = metric(
            "reelflow_dataflow_records_per_second",
            "gauge",
            "Records read per second, over the last second.",
        );
        let offset = metric("reelflow_dataflow_partition_offset", "gauge", "Next offset to read.");
        let lag = metric(
            "reelflow_dataflow_partition_lag",
            "gauge",
            "Records behind the high watermark.",
        );
        let updates = metric(
            "reelflow_dataflow_arrangement_updates",
            "gauge",
            "Updates held by each view's arrangement (video_stats and qoe share one).",
        );
        let frontier = metric(
            "reelflow_dataflow_frontier_ms",
            "gauge",
            "Time up to which the views are complete.",
        );
        let subscriptions = metric(
            "reelflow_dataflow_subscriptions",
            "gauge",
            "Subscriptions served by this process.",
        );
        let dropped = metric(
            "reelflow_dataflow_subscriptions_dropped_total",
            "counter",
            "Subscriptions dropped because their consumer fell behind.",
        );
        let _ = writeln!(out, "{subscriptions} {}", self.subscriptions.load(Ordering::Relaxed));
        let _ = writeln!(out, "{dropped} {}", self.subscriptions_dropped.load(Ordering::Relaxed));
        let _ = writeln!(out, "{records} {}", self.records.load(Ordering::Relaxed));
        let _ = writeln!(out, "{malformed} {}", self.malformed.load(Ordering::Relaxed));
        let _ = writeln!(out, "{reclocked} {}", self.reclocked.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "{rate} {:.1}",
            self.records_per_second.lock().expect("metrics lock").1
        );
        for ((topic, partition), s) in self.partitions.lock().expect("metrics lock").iter() {
            let labels = format!("{{topic=\"{topic}\",partition=\"{partition}\"}}");
            let _ = writeln!(out, "{offset}{labels} {}", s.offset);
            let _ = writeln!(out, "{lag}{labels} {}", s.high_watermark.saturating_sub(s.offset));
        }
        let mut per_view: BTreeMap<View, usize> = BTreeMap::new();
        for ((view, _), n) in self.arrangement_updates.lock().expect("metrics lock").iter() {
            *per_view.entry(*view).or_default() += n;
        }
        for (view, n) in per_view {
            let _ = writeln!(out, "{updates}{{view=\"{}\"}} {n}", view.def().name);
        }
        if let Some(f) = self.frontier.lock().expect("metrics lock").values().min() {
            let _ = writeln!(out, "{frontier} {f}");
        }
        out
    }
}
