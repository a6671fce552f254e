//! Transcoders as a consumer group on the real Kafka broker, with sources in
//! the real S3 server: a transcoder killed in the middle of a job leaves the
//! upload to the next one, which finishes it, and the video is announced
//! `ready` exactly once.

use std::sync::Arc;
use std::time::Duration;

use reelflow_ingest::events::{Envelope, ProcessingEvent, TopicEvent, UploadEvent, decode};
use reelflow_ingest::log::{KafkaConfig, KafkaLog};
use reelflow_ingest::storage::{ObjectKey, S3Config, S3Store};
use reelflow_ingest::transcode::test_pattern::TestPattern;
use reelflow_ingest::transcode::{JobLimits, WorkerSettings, WorkerStats, run_worker};
use reelflow_ingest::{EventLog, ObjectStore, PartitionReader};
use uuid::Uuid;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: these tests need the real services; run scripts/test.sh"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_transcoders_job_is_finished_by_the_next_and_published_once() {
    let log = KafkaLog::connect(KafkaConfig {
        brokers: env("REELFLOW_TEST_KAFKA"),
        ..KafkaConfig::default()
    })
    .expect("kafka");
    // The real topic names (the worker reads them); the test looks only at
    // its own video's events, after the offsets it starts from.
    for topic in [UploadEvent::TOPIC, ProcessingEvent::TOPIC] {
        log.create_topic(topic, 4).await.expect("topic");
    }
    let store = S3Store::connect(&S3Config {
        endpoint: Some(env("REELFLOW_TEST_S3_ENDPOINT")),
        access_key_id: Some(env("REELFLOW_TEST_S3_ACCESS_KEY_ID")),
        secret_access_key: Some(env("REELFLOW_TEST_S3_SECRET_ACCESS_KEY")),
        bucket: "reelflow-transcode-test".into(),
        ..S3Config::default()
    })
    .await
    .expect("s3");
    store.ensure_bucket().await.expect("bucket");

    let dir = tempfile::tempdir().expect("tempdir");
    let clip = dir.path().join("clip.mp4");
    TestPattern::new(Some("1280x720"), false, 8)
        .write(&clip)
        .expect("generating a clip");
    let video_id = Uuid::now_v7();
    let key = ObjectKey::parse(&format!("videos/{video_id}/source")).expect("key");
    let meta = store
        .put_stream(&key, tokio::fs::File::open(&clip).await.expect("clip"))
        .await
        .expect("put");

    // Where the processing partitions of this video stand before the job.
    let partitions = log.partition_count(ProcessingEvent::TOPIC).await.expect("partitions");
    let mut start = Vec::new();
    for p in 0..partitions {
        start.push((p, log.high_watermark(ProcessingEvent::TOPIC, p).await.expect("hw")));
    }
    let event = Envelope::new(UploadEvent::UploadCompleted {
        video_id,
        upload_id: Uuid::now_v7(),
        owner_id: Uuid::now_v7(),
        object_key: key.to_string(),
        size_bytes: meta.size,
        checksum: None,
        file_name: None,
        content_type: None,
    });
    log.append(UploadEvent::TOPIC, event.key().as_bytes(), &event.to_bytes())
        .await
        .expect("append upload");

    let settings = |name: &str| WorkerSettings {
        work_root: dir.path().join(name),
        limits: JobLimits {
            timeout: Duration::from_secs(300),
            ..JobLimits::default()
        },
    };
    let mut reader = log.reader(ProcessingEvent::TOPIC, &start).await.expect("reader");
    let mut mine = Vec::new();
    let wait_for = |mine: &Vec<ProcessingEvent>, f: fn(&ProcessingEvent) -> bool| mine.iter().any(f);

    // The first transcoder starts the job and is killed once ffmpeg runs.
    let first = tokio::spawn(run_worker(
        log.clone(),
        store.clone(),
        settings("a"),
        Arc::new(WorkerStats::default()),
        std::future::pending(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !wait_for(&mine, |e| matches!(e, ProcessingEvent::Transcoding { .. })) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first transcoder never started: {mine:?}"
        );
        for r in reader.poll(100, Duration::from_millis(200)).await.expect("poll") {
            let e = decode::<ProcessingEvent>(&r.value).expect("event").event;
            if e.video_id() == video_id {
                mine.push(e);
            }
        }
    }
    first.abort();
    let _ = first.await;
    assert!(
        !wait_for(&mine, |e| matches!(e, ProcessingEvent::Ready { .. })),
        "killed before it finished"
    );

    // The next member of the group gets the uncommitted upload and finishes it.
    let stats = Arc::new(WorkerStats::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let second = tokio::spawn(run_worker(
        log.clone(),
        store.clone(),
        settings("b"),
        Arc::clone(&stats),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while !wait_for(&mine, |e| {
        matches!(e, ProcessingEvent::Ready { .. } | ProcessingEvent::Failed { .. })
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job was never finished: {mine:?}"
        );
        for r in reader.poll(100, Duration::from_millis(500)).await.expect("poll") {
            let e = decode::<ProcessingEvent>(&r.value).expect("event").event;
            if e.video_id() == video_id {
                mine.push(e);
            }
        }
    }
    // Give a duplicate every chance to show up before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for r in reader.poll(1000, Duration::from_millis(500)).await.expect("poll") {
        let e = decode::<ProcessingEvent>(&r.value).expect("event").event;
        if e.video_id() == video_id {
            mine.push(e);
        }
    }
    stop_tx.send(()).expect("stop");
    second.await.expect("task").expect("worker");
    let ready = mine
        .iter()
        .filter(|e| matches!(e, ProcessingEvent::Ready { .. }))
        .count();
    assert_eq!(ready, 1, "{mine:?}");
    assert!(
        !mine.iter().any(|e| matches!(e, ProcessingEvent::Failed { .. })),
        "{mine:?}"
    );
    assert!(
        store
            .head(&ObjectKey::parse(&format!("videos/{video_id}/hls/master.m3u8")).expect("key"))
            .await
            .expect("head")
            .is_some()
    );
}
