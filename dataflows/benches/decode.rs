//! Reading the log's records: the dataflows' decoder (`facts::decode`)
//! against the schema's own serde decoder (`events::decode`), over the
//! traffic `reelflow-bench dataflow` generates. Run with
//! `cargo bench -p reelflow-dataflows --bench decode`; the figures are in
//! BENCHMARKS.md.

use std::hint::black_box;
use std::time::Instant;

use reelflow_dataflows::facts::decode;
use reelflow_dataflows::traffic::Traffic;
use reelflow_dataflows::workload::Raw;
use reelflow_ingest::events::{self, CatalogEvent, PlaybackEvent, ProcessingEvent, TopicEvent, UploadEvent};

/// Nanoseconds per record of `read` over `records`, the best of five passes.
fn ns_per_record(records: &[Raw], read: impl Fn(&str, &[u8]) -> bool) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            let valid = records.iter().filter(|r| read(r.0, black_box(&r.2))).count();
            assert_eq!(valid, records.len(), "every generated record is valid");
            start.elapsed().as_nanos() as f64 / records.len() as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// The schema's decoder of `topic`.
fn schema(topic: &str, value: &[u8]) -> bool {
    match topic {
        PlaybackEvent::TOPIC => black_box(events::decode::<PlaybackEvent>(value)).is_ok(),
        CatalogEvent::TOPIC => black_box(events::decode::<CatalogEvent>(value)).is_ok(),
        UploadEvent::TOPIC => black_box(events::decode::<UploadEvent>(value)).is_ok(),
        ProcessingEvent::TOPIC => black_box(events::decode::<ProcessingEvent>(value)).is_ok(),
        other => panic!("the traffic has no {other} records"),
    }
}

fn main() {
    let mut traffic = Traffic::new(7, 100_000, 20_000);
    // The catalog, each video's upload and its processing.
    let videos = traffic.catalog();
    let playback = traffic.playback(1_000_000);
    println!("decoding the benchmark traffic, best of 5 passes");
    println!(
        "{:<10} {:>9} {:>8} {:>14} {:>14} {:>8}",
        "topic", "records", "bytes", "ns/rec (ours)", "ns/rec (schema)", "speedup"
    );
    for (topic, records) in [("playback", &playback), ("videos", &videos)] {
        let bytes = records.iter().map(|r| r.2.len()).sum::<usize>() / records.len();
        let ours = ns_per_record(records, |t, v| black_box(decode(t, v)).is_ok());
        let theirs = ns_per_record(records, schema);
        println!(
            "{topic:<10} {:>9} {bytes:>8} {ours:>14.0} {theirs:>14.0} {:>7.1}x",
            records.len(),
            theirs / ours
        );
    }
}
