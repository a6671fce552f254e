//! What only the embedded log has to prove beyond the shared contract: its
//! recovery from torn writes, its refusal to hide damage, segment rolling,
//! and that one process at a time owns the directory.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reelflow_ingest::log::{
    EmbeddedLog, EmbeddedOptions, EventLog, FsyncPolicy, LogClock, LogError, PartitionReader, Record,
};

fn segments(dir: &Path, topic: &str, partition: u32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join(topic).join(partition.to_string()))
        .expect("partition dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

async fn read_all(log: &EmbeddedLog, topic: &str) -> Vec<Record> {
    let hw = log.high_watermark(topic, 0).await.expect("hw");
    let mut reader = log.reader(topic, &[(0, 0)]).await.expect("reader");
    let mut out = Vec::new();
    while (out.len() as u64) < hw {
        let got = reader.poll(1000, Duration::from_secs(5)).await.expect("poll");
        assert!(!got.is_empty(), "stalled at {} of {hw}", out.len());
        out.extend(got);
    }
    out
}

fn small_segments() -> EmbeddedOptions {
    EmbeddedOptions {
        segment_bytes: 4 * 1024,
        ..EmbeddedOptions::default()
    }
}

#[tokio::test]
async fn a_torn_write_at_the_end_is_truncated_and_appends_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).expect("open");
        log.create_topic("t", 1).await.expect("create");
        for i in 0..10 {
            log.append("t", b"k", format!("value-{i}").as_bytes())
                .await
                .expect("append");
        }
    }
    let seg = segments(dir.path(), "t", 0).pop().expect("a segment");
    let valid_len = fs::metadata(&seg).expect("stat").len();
    // Half of a record header and body, as a crash mid-write leaves it.
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .expect("open segment")
        .write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 5, 6])
        .expect("write");

    let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).expect("recovers");
    assert_eq!(
        fs::metadata(&seg).expect("stat").len(),
        valid_len,
        "torn bytes must be cut off"
    );
    assert_eq!(log.high_watermark("t", 0).await.expect("hw"), 10);
    let at = log.append("t", b"k", b"after").await.expect("append");
    assert_eq!(at.offset, 10);
    let all = read_all(&log, "t").await;
    assert_eq!(all.len(), 11);
    assert_eq!(all[10].value, b"after");
}

#[tokio::test]
async fn a_bit_flip_in_the_last_record_is_a_torn_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).expect("open");
        log.create_topic("t", 1).await.expect("create");
        for i in 0..5 {
            log.append("t", b"k", format!("value-{i}").as_bytes())
                .await
                .expect("append");
        }
    }
    let seg = segments(dir.path(), "t", 0).pop().expect("segment");
    let mut bytes = fs::read(&seg).expect("read");
    let last = bytes.len() - 2;
    bytes[last] ^= 0x01;
    fs::write(&seg, &bytes).expect("write");
    let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).expect("recovers");
    let all = read_all(&log, "t").await;
    assert_eq!(
        all.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
        (0..4).map(|i| format!("value-{i}").into_bytes()).collect::<Vec<_>>()
    );
}

/// A log of several sealed segments, with the first one's byte 100 flipped.
async fn damaged_log(dir: &Path) -> Vec<PathBuf> {
    {
        let log = EmbeddedLog::open(dir, small_segments()).expect("open");
        log.create_topic("t", 1).await.expect("create");
        for i in 0..200 {
            log.append("t", b"k", format!("value-{i}-{}", "p".repeat(50)).as_bytes())
                .await
                .expect("append");
        }
    }
    let segs = segments(dir, "t", 0);
    assert!(segs.len() > 2, "expected several segments, got {}", segs.len());
    let mut bytes = fs::read(&segs[0]).expect("read");
    bytes[100] ^= 0xff;
    fs::write(&segs[0], &bytes).expect("write");
    segs
}

#[tokio::test]
async fn damage_in_a_sealed_segment_fails_its_reader_not_hidden() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segs = damaged_log(dir.path()).await;
    // Opening trusts the sealed segments' index files, so it does not read
    // them; reading the damaged record fails, naming the file.
    let log = EmbeddedLog::open(dir.path(), small_segments()).expect("open");
    let mut reader = log.reader("t", &[(0, 0)]).await.expect("reader");
    let mut read = 0;
    let err = loop {
        match reader.poll(1000, Duration::from_secs(5)).await {
            Ok(batch) => {
                assert!(!batch.is_empty(), "the reader stalled instead of failing");
                read += batch.len();
            }
            Err(e) => break e,
        }
    };
    assert!(read < 200, "the damaged record was read");
    match err {
        LogError::Corrupt(msg) => assert!(msg.contains(&segs[0].display().to_string()), "{msg}"),
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[tokio::test]
async fn damage_in_a_sealed_segment_without_its_index_is_refused_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segs = damaged_log(dir.path()).await;
    fs::remove_file(segs[0].with_extension("index")).expect("the sealed segment has an index");
    match EmbeddedLog::open(dir.path(), small_segments()) {
        Err(LogError::Corrupt(msg)) => {
            assert!(msg.contains(&segs[0].display().to_string()), "{msg}")
        }
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_or_stale_segment_index_is_rebuilt_by_a_scan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let values: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("value-{i}-{}", "s".repeat(40)).into_bytes())
        .collect();
    {
        let log = EmbeddedLog::open(dir.path(), small_segments()).expect("open");
        log.create_topic("t", 1).await.expect("create");
        for v in &values {
            log.append("t", b"k", v).await.expect("append");
        }
    }
    let segs = segments(dir.path(), "t", 0);
    let sealed = &segs[..segs.len() - 1];
    assert!(
        sealed.iter().all(|s| s.with_extension("index").is_file()),
        "every sealed segment has an index"
    );
    assert!(
        !segs[segs.len() - 1].with_extension("index").exists(),
        "the active segment has none"
    );
    // One index gone, one describing another length, one damaged.
    fs::remove_file(sealed[0].with_extension("index")).expect("rm");
    let mut stale = fs::read(sealed[1].with_extension("index")).expect("read");
    stale[16] ^= 1;
    let crc = crc32fast::hash(&stale[..stale.len() - 4]);
    let n = stale.len();
    stale[n - 4..].copy_from_slice(&crc.to_le_bytes());
    fs::write(sealed[1].with_extension("index"), stale).expect("write");
    let mut damaged = fs::read(sealed[2].with_extension("index")).expect("read");
    damaged[20] ^= 0xff;
    fs::write(sealed[2].with_extension("index"), damaged).expect("write");
    let log = EmbeddedLog::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!(
        read_all(&log, "t")
            .await
            .iter()
            .map(|r| r.value.clone())
            .collect::<Vec<_>>(),
        values
    );
    assert!(
        sealed[0].with_extension("index").is_file(),
        "the scan wrote the index again"
    );
}

#[tokio::test]
async fn reads_cross_segment_boundaries_from_any_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = EmbeddedLog::open(dir.path(), small_segments()).expect("open");
    log.create_topic("t", 1).await.expect("create");
    let values: Vec<Vec<u8>> = (0..500)
        .map(|i| format!("value-{i}-{}", "q".repeat(i % 97)).into_bytes())
        .collect();
    for chunk in values.chunks(7) {
        let batch: Vec<(&[u8], &[u8])> = chunk.iter().map(|v| (&b"k"[..], v.as_slice())).collect();
        log.append_batch("t", &batch).await.expect("append");
    }
    assert!(segments(dir.path(), "t", 0).len() > 10);
    for start in [0u64, 1, 57, 250, 499] {
        let mut reader = log.reader("t", &[(0, start)]).await.expect("reader");
        let mut got = Vec::new();
        while got.len() < 500 - start as usize {
            let batch = reader.poll(100, Duration::from_secs(5)).await.expect("poll");
            assert!(!batch.is_empty());
            got.extend(batch);
        }
        assert_eq!(
            got.iter().map(|r| r.offset).collect::<Vec<_>>(),
            (start..500).collect::<Vec<_>>()
        );
        assert_eq!(
            got.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
            values[start as usize..].to_vec()
        );
    }
    // And the same after reopening, when the index is rebuilt by scanning.
    drop(log);
    let log = EmbeddedLog::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!(
        read_all(&log, "t")
            .await
            .iter()
            .map(|r| r.value.clone())
            .collect::<Vec<_>>(),
        values
    );
}

#[tokio::test]
async fn one_process_owns_the_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).expect("open");
    let err = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).expect_err("second open must fail");
    assert!(err.to_string().contains("in use by another process"), "{err}");
    drop(first);
    EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).expect("open after the first closed");
}

#[tokio::test]
async fn fsync_never_still_survives_a_restart_of_the_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = EmbeddedOptions {
        fsync: FsyncPolicy::Never,
        ..EmbeddedOptions::default()
    };
    {
        let log = EmbeddedLog::open(dir.path(), options.clone()).expect("open");
        log.create_topic("t", 1).await.expect("create");
        for i in 0..100 {
            log.append("t", b"k", format!("{i}").as_bytes()).await.expect("append");
        }
    }
    let log = EmbeddedLog::open(dir.path(), options).expect("reopen");
    assert_eq!(read_all(&log, "t").await.len(), 100);
}

#[tokio::test]
async fn a_set_clock_stamps_records_with_its_time_and_never_backwards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(1_600_000_000_000));
    let options = EmbeddedOptions {
        clock: LogClock::Set(at.clone()),
        ..EmbeddedOptions::default()
    };
    let log = EmbeddedLog::open(dir.path(), options).expect("open");
    log.create_topic("t", 1).await.expect("create");
    log.append("t", b"k", b"first").await.expect("append");
    at.store(1_600_003_600_000, std::sync::atomic::Ordering::Release);
    log.append("t", b"k", b"an hour later").await.expect("append");
    // A clock set back does not move log time back.
    at.store(1_600_000_000_000, std::sync::atomic::Ordering::Release);
    log.append("t", b"k", b"set back").await.expect("append");
    let times: Vec<i64> = read_all(&log, "t").await.iter().map(|r| r.timestamp_ms).collect();
    assert_eq!(times, [1_600_000_000_000, 1_600_003_600_000, 1_600_003_600_000]);
}
