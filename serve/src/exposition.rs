//! `/metrics` of every Reelflow process, in the OpenMetrics text format
//! that Prometheus scrapes, written by `prometheus-client`.
//!
//! The counters themselves are plain atomics where the work happens
//! (playback's, the transcoders', the dataflows' [`Metrics`]); a scrape
//! takes one reading of each into a fresh registry and encodes it, so
//! the hot paths never touch the exposition library and the names, help
//! texts and label sets are written in this one place. Counters are
//! registered without their `_total` suffix, which the format adds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use reelflow_dataflows::Metrics;

use crate::playback::cache::PlaybackMetrics;
use reelflow_ingest::transcode::WorkerStats;

/// What a scrape is answered with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label set, in the order it is written.
type Labels = Vec<(&'static str, String)>;

/// One scrape's readings.
#[derive(Default)]
pub struct Scrape {
    registry: Registry,
}

impl Scrape {
    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.registry.register(name, help, ConstCounter::new(value));
    }

    fn gauge(&mut self, name: &str, help: &str, value: i64) {
        self.registry.register(name, help, ConstGauge::new(value));
    }

    fn labelled_gauges(&mut self, name: &str, help: &str, samples: impl IntoIterator<Item = (Labels, i64)>) {
        let family = Family::<Labels, Gauge>::default();
        for (labels, value) in samples {
            family.get_or_create(&labels).set(value);
        }
        self.registry.register(name, help, family);
    }

    /// Playback's counters, with the media cache's current size.
    pub fn playback(&mut self, m: &PlaybackMetrics, cache_bytes: u64) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        self.gauge(
            "reelflow_delivery_cache_bytes",
            "Bytes of media held in memory.",
            saturating(cache_bytes),
        );
        self.counter(
            "reelflow_delivery_cache_hits",
            "Media answers served from memory.",
            get(&m.cache_hits),
        );
        self.counter(
            "reelflow_delivery_cache_misses",
            "Media answers read from object storage.",
            get(&m.cache_misses),
        );
        self.counter(
            "reelflow_delivery_bytes",
            "Body bytes of media answers.",
            get(&m.bytes_sent),
        );
        self.counter(
            "reelflow_beacon_events",
            "Player events acknowledged by the log.",
            get(&m.beacon_events),
        );
        self.counter(
            "reelflow_beacon_batches_refused",
            "Beacon batches refused as malformed.",
            get(&m.beacon_batches_refused),
        );
    }

    /// The transcoders of this process.
    pub fn transcoders(&mut self, stats: &WorkerStats, workers: usize) {
        let jobs = Family::<Labels, Counter>::default();
        for (outcome, n) in [("ready", &stats.ready), ("failed", &stats.failed)] {
            jobs.get_or_create(&vec![("outcome", outcome.to_string())])
                .inc_by(n.load(Ordering::Relaxed));
        }
        self.registry.register(
            "reelflow_transcode_jobs",
            "Transcoding jobs finished, by outcome.",
            jobs,
        );
        self.counter(
            "reelflow_transcode_malformed",
            "Records on reelflow.uploads skipped as malformed.",
            stats.malformed.load(Ordering::Relaxed),
        );
        self.gauge(
            "reelflow_transcode_workers",
            "Transcoders in this process (ffmpeg jobs it runs at once).",
            saturating(workers as u64),
        );
    }

    /// The dataflows of this process.
    pub fn dataflows(&mut self, m: &Metrics) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        self.gauge(
            "reelflow_dataflow_subscriptions",
            "Subscriptions served by this process.",
            saturating(get(&m.subscriptions)),
        );
        self.counter(
            "reelflow_dataflow_subscriptions_dropped",
            "Subscriptions dropped because their consumer fell behind.",
            get(&m.subscriptions_dropped),
        );
        self.counter(
            "reelflow_dataflow_records",
            "Records read from the log.",
            get(&m.records),
        );
        self.counter(
            "reelflow_dataflow_malformed",
            "Records skipped as malformed.",
            get(&m.malformed),
        );
        self.counter(
            "reelflow_dataflow_reclocked",
            "Records stamped later than their log time.",
            get(&m.reclocked),
        );
        let rate = m.records_per_second.lock().expect("metrics lock").1;
        self.registry.register(
            "reelflow_dataflow_records_per_second",
            "Records read per second, over the last second.",
            ConstGauge::new(rate),
        );
        let partitions = m.partitions.lock().expect("metrics lock").clone();
        let labels =
            |topic: &str, partition: u32| vec![("topic", topic.to_string()), ("partition", partition.to_string())];
        self.labelled_gauges(
            "reelflow_dataflow_partition_offset",
            "Next offset to read.",
            partitions
                .iter()
                .map(|((t, p), s)| (labels(t, *p), saturating(s.offset))),
        );
        self.labelled_gauges(
            "reelflow_dataflow_partition_lag",
            "Records behind the high watermark.",
            partitions
                .iter()
                .map(|((t, p), s)| (labels(t, *p), saturating(s.high_watermark.saturating_sub(s.offset)))),
        );
        let mut per_view: BTreeMap<&'static str, usize> = BTreeMap::new();
        for ((view, _), n) in m.arrangement_updates.lock().expect("metrics lock").iter() {
            *per_view.entry(view.def().name).or_default() += n;
        }
        self.labelled_gauges(
            "reelflow_dataflow_arrangement_updates",
            "Updates held by each view's arrangement (video_stats and qoe share one).",
            per_view
                .into_iter()
                .map(|(view, n)| (vec![("view", view.to_string())], saturating(n as u64))),
        );
        if let Some(f) = m.frontier.lock().expect("metrics lock").values().min() {
            self.gauge(
                "reelflow_dataflow_frontier_ms",
                "Time up to which the views are complete.",
                saturating(*f),
            );
        }
        self.counter(
            "reelflow_dataflow_snapshots_written",
            "Snapshots this process wrote.",
            get(&m.snapshots_written),
        );
        self.counter(
            "reelflow_dataflow_snapshot_failures",
            "Snapshots this process failed to write.",
            get(&m.snapshot_failures),
        );
        if let Some(s) = *m.last_snapshot.lock().expect("metrics lock") {
            let now = reelflow_dataflows::now_ms();
            self.gauge(
                "reelflow_dataflow_snapshot_bytes",
                "Bytes of the latest snapshot this process started from or wrote.",
                saturating(s.bytes),
            );
            self.gauge(
                "reelflow_dataflow_snapshot_frontier_ms",
                "Log time the latest snapshot covers up to.",
                saturating(s.frontier),
            );
            self.gauge(
                "reelflow_dataflow_snapshot_age_seconds",
                "Seconds since the latest snapshot was written.",
                saturating(now.saturating_sub(s.written_at_ms) / 1000),
            );
            self.gauge(
                "reelflow_dataflow_snapshot_duration_ms",
                "How long writing the latest snapshot took, folding the log included (0 if only loaded).",
                saturating(s.duration_ms),
            );
        }
    }
}

impl IntoResponse for Scrape {
    fn into_response(self) -> Response {
        let mut body = String::new();
        match encode(&mut body, &self.registry) {
            Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "encoding the metrics");
                axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// A reading as a gauge's value.
fn saturating(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names, types, labels and values a scraper sees, in the format
    /// it negotiates.
    #[test]
    fn a_scrape_is_openmetrics_text_with_every_reading() {
        let playback = PlaybackMetrics::default();
        PlaybackMetrics::inc(&playback.cache_hits, 3);
        let metrics = Metrics::default();
        metrics.records.store(42, Ordering::Relaxed);
        metrics.partitions.lock().expect("lock").insert(
            ("reelflow.playback".into(), 2),
            reelflow_dataflows::PartitionStatus {
                offset: 10,
                high_watermark: 15,
                ..Default::default()
            },
        );
        let mut scrape = Scrape::default();
        scrape.playback(&playback, 4096);
        scrape.dataflows(&metrics);
        let mut text = String::new();
        encode(&mut text, &scrape.registry).expect("encode");
        for line in [
            "# TYPE reelflow_delivery_cache_hits counter",
            "reelflow_delivery_cache_hits_total 3",
            "reelflow_delivery_cache_bytes 4096",
            "reelflow_dataflow_records_total 42",
            "reelflow_dataflow_partition_lag{topic=\"reelflow.playback\",partition=\"2\"} 5",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
        }
    }
}
