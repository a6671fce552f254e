//! Snapshots in object storage: written while the log grows, read back
//! as written, and never loaded torn, damaged or from a newer format.

use std::sync::Arc;
use std::time::Duration;

use reelflow_dataflows::reference;
use reelflow_dataflows::snapshot::{Compactor, FORMAT_VERSION, FoldedWith, SnapshotError, SnapshotStore, Writer};
use reelflow_dataflows::workload as common;
use reelflow_dataflows::{DataflowOptions, Dataflows, Selector, View, Windows};
use reelflow_ingest::events::{CatalogEvent, PlaybackEvent, ProcessingEvent, TopicEvent, UploadEvent};
use reelflow_ingest::log::{AnyLog, EmbeddedLog, EmbeddedOptions, EventLog, FsyncPolicy};
use reelflow_ingest::storage::{AnyStore, LocalStore, ObjectKey, ObjectStore};

const TICK_MS: u64 = 7;

/// The workloads' short windows (`workload::short_windows`).
fn windows() -> Windows {
    common::short_windows()
}

fn local_store(dir: &std::path::Path) -> SnapshotStore {
    SnapshotStore::new(Arc::new(AnyStore::Local(LocalStore::open(dir).expect("open store"))))
}

/// Snapshots written between phases of a growing log load back as the
/// writer folded them, each carrying on from the one before, and equal to
/// one fold of the same records from scratch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_written_as_the_log_grows_load_back_as_written() {
    let log_dir = tempfile::tempdir().unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let log = common::embedded(log_dir.path());
    common::create_topics(&log, 3).await;
    let store = local_store(store_dir.path());
    let with = FoldedWith::of(&windows(), TICK_MS);
    let workload = common::workload(31, 4);
    let mut writer = Writer::new(log.clone(), store.clone(), &windows(), TICK_MS, None, Duration::ZERO, 2);
    let mut sequences = Vec::new();
    for phase in &workload.phases {
        common::append(&log, phase).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let written = writer.snapshot().await.expect("snapshot");
        store
            .load(&written.manifest)
            .await
            .expect("the snapshot just written loads");
        let (manifest, loaded) = store.latest(&with).await.expect("latest").expect("a snapshot");
        assert_eq!(manifest, written.manifest);
        assert_eq!(manifest.format_version, FORMAT_VERSION);
        // What was stored is what a fold from scratch of the same records gives.
        let mut fresh = Compactor::new(&windows(), TICK_MS);
        fresh.advance(&common::read_back(&log).await, manifest.frontier);
        assert_eq!(loaded, fresh.snapshot(), "snapshot {} as stored", manifest.sequence);
        sequences.push(manifest.sequence);
    }
    // The whole log is covered once it is idle long enough.
    let records = common::read_back(&log).await.len() as u64;
    let manifest = writer.snapshot().await.expect("snapshot").manifest;
    let covered: u64 = manifest.partitions.iter().map(|m| m.offset).sum();
    assert_eq!(covered, records, "an idle log is covered to its end");
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "sequences increase: {sequences:?}"
    );
    // Two kept: the older ones' objects are gone.
    let kept: Vec<u64> = store.manifests().await.unwrap().iter().map(|m| m.sequence).collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    let objects = AnyStore::Local(LocalStore::open(store_dir.path()).unwrap())
        .list("snapshots/")
        .await
        .unwrap();
    assert!(
        objects
            .iter()
            .all(|o| kept.iter().any(|s| o.key.contains(&format!("{s:020}")))),
        "only the kept snapshots' objects are left: {:?}",
        objects.iter().map(|o| &o.key).collect::<Vec<_>>()
    );
}

/// A snapshot without its manifest (its writer killed before the end) is
/// never loaded; one with a damaged part neither: the one before is. A
/// snapshot of a newer format is refused with an error that says so, and
/// one folded with other windows is passed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_damaged_and_newer_snapshots_are_never_loaded() {
    let log_dir = tempfile::tempdir().unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let log = common::embedded(log_dir.path());
    common::create_topics(&log, 3).await;
    let objects = AnyStore::Local(LocalStore::open(store_dir.path()).unwrap());
    let store = local_store(store_dir.path());
    let with = FoldedWith::of(&windows(), TICK_MS);
    let workload = common::workload(32, 2);
    let mut writer = Writer::new(log.clone(), store.clone(), &windows(), TICK_MS, None, Duration::ZERO, 5);
    common::append(&log, &workload.phases[0]).await;
    let first = writer.snapshot().await.expect("snapshot").manifest;
    common::append(&log, &workload.phases[1]).await;
    let second = writer.snapshot().await.expect("snapshot").manifest;

    // Torn: the newest's manifest never written.
    let manifest_key = |s: u64| ObjectKey::parse(&format!("snapshots/{s:020}/manifest.json")).unwrap();
    let saved = objects
        .get(&manifest_key(second.sequence), None)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    objects.delete(&manifest_key(second.sequence)).await.unwrap();
    let (loaded, _) = store.latest(&with).await.unwrap().expect("the one before");
    assert_eq!(loaded, first, "a snapshot without its manifest is not loaded");

    // Damaged: a part rewritten after the manifest.
    objects.put_bytes(&manifest_key(second.sequence), &saved).await.unwrap();
    let part = ObjectKey::parse(&format!("snapshots/{:020}/viewers.arrow", second.sequence)).unwrap();
    let mut bytes = objects.get(&part, None).await.unwrap().collect().await.unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0xff;
    objects.put_bytes(&part, &bytes).await.unwrap();
    let (loaded, _) = store.latest(&with).await.unwrap().expect("the one before");
    assert_eq!(loaded, first, "a snapshot with a damaged part is not loaded");
    match store.load(&second).await {
        Err(SnapshotError::Part { part, reason, .. }) => {
            assert_eq!(part, "viewers");
            assert!(reason.contains("damaged"), "{reason}");
        }
        other => panic!("a damaged part is an error: {other:?}"),
    }

    // Folded with other windows: passed over.
    let mut other = windows();
    other.session_idle = Duration::from_secs(60);
    assert!(store.latest(&FoldedWith::of(&other, TICK_MS)).await.unwrap().is_none());

    // Newer: refused, with what to do.
    let mut newer: serde_json::Value = serde_json::from_slice(&saved).unwrap();
    newer["format_version"] = (FORMAT_VERSION + 1).into();
    objects
        .put_bytes(&manifest_key(second.sequence), &serde_json::to_vec(&newer).unwrap())
        .await
        .unwrap();
    let err = store.manifests().await.err().map(|e| e.to_string());
    let err = match err {
        Some(e) => e,
        None => match store.latest(&with).await {
            Err(e) => e.to_string(),
            Ok(s) => panic!("a newer snapshot was not refused: {:?}", s.map(|(m, _)| m)),
        },
    };
    assert!(
        err.contains(&format!("format version {}", FORMAT_VERSION + 1)) && err.contains("newer Reelflow"),
        "{err}"
    );
}

/// A log in segments of 2 KiB, so a snapshot covers whole ones.
fn small_segments(dir: &std::path::Path) -> AnyLog {
    AnyLog::Embedded(
        EmbeddedLog::open(
            dir,
            EmbeddedOptions {
                fsync: FsyncPolicy::Never,
                segment_bytes: 2 * 1024,
                ..EmbeddedOptions::default()
            },
        )
        .expect("open embedded log"),
    )
}

/// The lowest offset left of each playback partition.
async fn playback_low_watermarks(log: &AnyLog) -> Vec<u64> {
    let mut out = Vec::new();
    for p in 0..3 {
        out.push(log.low_watermark(PlaybackEvent::TOPIC, p).await.expect("low watermark"));
    }
    out
}

/// Playback records older than the retention are deleted once the oldest
/// snapshot kept covers them, and only then; the views started from the
/// snapshot still equal the reference over every record ever logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playback_expires_once_older_than_the_retention_and_covered() {
    for (retention, expires) in [(Duration::from_secs(3600), false), (Duration::ZERO, true)] {
        let log_dir = tempfile::tempdir().unwrap();
        let store_dir = tempfile::tempdir().unwrap();
        let log = small_segments(log_dir.path());
        common::create_topics(&log, 3).await;
        common::append_all(&log, &common::workload(33, 4), Duration::from_millis(100)).await;
        let records = common::read_back(&log).await;
        let (facts, _) = reference::stamp(&records, TICK_MS);
        let store = local_store(store_dir.path());
        let mut writer = Writer::new(log.clone(), store.clone(), &windows(), TICK_MS, None, Duration::ZERO, 2)
            .expire_playback_after(retention);
        let manifest = writer.snapshot().await.expect("snapshot").manifest;
        let low = playback_low_watermarks(&log).await;
        if !expires {
            assert_eq!(low, vec![0, 0, 0], "records younger than the retention are kept");
            continue;
        }
        assert!(low.iter().any(|l| *l > 0), "covered playback expired: {low:?}");
        for (p, l) in low.iter().enumerate() {
            let mark = manifest
                .partitions
                .iter()
                .find(|m| m.topic == PlaybackEvent::TOPIC && m.partition == p as u32)
                .expect("a mark");
            assert!(*l <= mark.offset, "only what the snapshot covers expired");
        }
        for topic in [CatalogEvent::TOPIC, ProcessingEvent::TOPIC, UploadEvent::TOPIC] {
            for p in 0..3 {
                assert_eq!(
                    log.low_watermark(topic, p).await.unwrap(),
                    0,
                    "{topic} keeps everything"
                );
            }
        }
        // A start from the snapshot has what it needs; the views are the
        // reference's over everything, expired records included.
        let (_, snapshot) = store
            .latest(&FoldedWith::of(&windows(), TICK_MS))
            .await
            .unwrap()
            .expect("snapshot");
        let mut options = DataflowOptions {
            windows: windows(),
            history: Duration::from_secs(3600),
            partitions: 3,
            snapshot: Some(Arc::new(snapshot)),
            ..DataflowOptions::default()
        };
        options.source.tick = Duration::from_millis(TICK_MS);
        let dataflows = Dataflows::start(log.clone(), options).await.expect("start");
        let at = manifest.frontier;
        let client = dataflows.client();
        client.wait_until_readable(at, Duration::from_secs(30)).await.unwrap();
        let expected = reference::views_at(&facts, at, &windows());
        for view in View::ALL.into_iter().filter(|v| *v != View::SourceProgress) {
            let got = client.peek(view, Selector::All, Some(at)).await.expect("peek");
            assert_eq!(got.rows, expected[&view], "{} at {at}", view.def().name);
        }
        dataflows.shutdown();
    }
}

/// Snapshots taken while records keep arriving are each exactly the fold
/// of the records before their frontier: none is missed, none is counted
/// twice, whatever a pass caught in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_taken_under_load_are_the_fold_of_the_log_before_them() {
    let log_dir = tempfile::tempdir().unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let log = common::embedded(log_dir.path());
    common::create_topics(&log, 3).await;
    let store = local_store(store_dir.path());
    let workload = common::workload(34, 6);
    let appending = {
        let log = log.clone();
        tokio::spawn(async move { common::append_all(&log, &workload, Duration::from_millis(60)).await })
    };
    // The sources' grace: records accepted but not yet visible.
    let grace = Duration::from_millis(25);
    let mut writer = Writer::new(log.clone(), store.clone(), &windows(), TICK_MS, None, grace, 100);
    let mut written = Vec::new();
    while !appending.is_finished() {
        written.push(writer.snapshot().await.expect("snapshot").manifest);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    appending.await.unwrap();
    tokio::time::sleep(grace * 2).await;
    written.push(writer.snapshot().await.expect("snapshot").manifest);
    assert!(written.len() >= 5, "snapshots taken while appending: {}", written.len());
    let records = common::read_back(&log).await;
    for manifest in &written {
        let loaded = store.load(manifest).await.expect("load");
        let mut fresh = Compactor::new(&windows(), TICK_MS);
        fresh.advance(&records, manifest.frontier);
        assert_eq!(loaded, fresh.snapshot(), "snapshot {} under load", manifest.sequence);
    }
    let covered: u64 = written.last().unwrap().partitions.iter().map(|m| m.offset).sum();
    assert_eq!(covered, records.len() as u64, "the last covers everything");
}
