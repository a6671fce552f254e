//! ONE contract suite for the event log, run against both implementations:
//! the embedded log (in a temporary directory) and Kafka (the real broker
//! that `scripts/services.sh` starts; its address comes from
//! `REELFLOW_TEST_KAFKA`). A case is written once, generic over
//! [`EventLog`], and instantiated for each log by the macro at the bottom.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reelflow_ingest::events::{Envelope, PlaybackEvent, PlaybackKind, decode};
use reelflow_ingest::log::{
    EmbeddedLog, EmbeddedOptions, EventLog, GroupConsumer, KafkaConfig, KafkaLog, LogError, PartitionReader, Record,
    partition_for,
};
use uuid::Uuid;

/// Opens a log for one test case; `open` again gives the same log after a
/// restart of the client (the previous handle must be dropped first).
trait Harness {
    type Log: EventLog + Clone;
    async fn open(&self) -> Self::Log;
    /// A topic name no other case or run uses.
    fn topic(&self, name: &str) -> String;
}

struct Embedded {
    dir: tempfile::TempDir,
}

impl Embedded {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
}

impl Harness for Embedded {
    type Log = EmbeddedLog;
    async fn open(&self) -> EmbeddedLog {
        // Small segments, so reads cross them and records can expire.
        let options = EmbeddedOptions {
            segment_bytes: 4096,
            ..EmbeddedOptions::default()
        };
        EmbeddedLog::open(self.dir.path(), options).expect("open embedded log")
    }
    fn topic(&self, name: &str) -> String {
        format!("contract.{name}")
    }
}

struct Kafka {
    brokers: String,
    run: String,
}

impl Kafka {
    fn new() -> Self {
        let brokers = std::env::var("REELFLOW_TEST_KAFKA").expect(
            "REELFLOW_TEST_KAFKA is not set: these tests need the real Kafka broker; run scripts/test.sh \
             (or scripts/services.sh start, then eval \"$(scripts/services.sh env)\")",
        );
        Self {
            brokers,
            run: Uuid::new_v4().simple().to_string(),
        }
    }
}

impl Harness for Kafka {
    type Log = KafkaLog;
    async fn open(&self) -> KafkaLog {
        KafkaLog::connect(KafkaConfig {
            brokers: self.brokers.clone(),
            ..KafkaConfig::default()
        })
        .expect("connect to Kafka")
    }
    fn topic(&self, name: &str) -> String {
        format!("contract.{name}.{}", self.run)
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// Reads until `n` records arrived (failing after 30 s).
async fn read_n<R: PartitionReader>(reader: &mut R, n: usize) -> Vec<Record> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records arrived within 30 s",
            out.len()
        );
        out.extend(
            reader
                .poll(n - out.len(), Duration::from_millis(500))
                .await
                .expect("poll"),
        );
    }
    assert_eq!(out.len(), n, "read more records than were appended");
    out
}

fn by_partition(records: &[Record]) -> BTreeMap<u32, Vec<&Record>> {
    let mut map: BTreeMap<u32, Vec<&Record>> = BTreeMap::new();
    for r in records {
        map.entry(r.partition).or_default().push(r);
    }
    map
}

/// Appends `upload-{i}` keyed by `video-{i}` for each i.
async fn append_uploads<L: EventLog>(log: &L, topic: &str, range: std::ops::Range<u32>) {
    for i in range {
        let (key, value) = (format!("video-{i}"), format!("upload-{i}"));
        log.append(topic, key.as_bytes(), value.as_bytes())
            .await
            .expect("append");
    }
}

mod cases {
    use super::*;

    /// Records keep their order per partition, offsets count from 0 without
    /// gaps, keys land where `partition_for` says, and log time never goes
    /// backwards within a partition.
    pub async fn order_and_offsets<H: Harness>(h: &H) {
        let log = h.open().await;
        let topic = h.topic("order");
        log.create_topic(&topic, 3).await.expect("create topic");
        assert_eq!(log.partition_count(&topic).await.expect("count"), 3);
        let before = now_ms();
        let mut appended = Vec::new();
        for round in 0..10 {
            // Single appends and batches, mixed.
            for k in 0..5 {
                let key = format!("video-{k}");
                let value = format!("{{\"round\":{round},\"k\":{k},\"single\":true}}");
                let at = log
                    .append(&topic, key.as_bytes(), value.as_bytes())
                    .await
                    .expect("append");
                appended.push((key, value, at));
            }
            let owned: Vec<(String, String)> = (0..20)
                .map(|k| {
                    (
                        format!("video-{}", k % 7),
                        format!("{{\"round\":{round},\"k\":{k},\"batch\":true}}"),
                    )
                })
                .collect();
            let batch: Vec<(&[u8], &[u8])> = owned.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
            let at = log.append_batch(&topic, &batch).await.expect("append batch");
            assert_eq!(at.len(), owned.len());
            for ((k, v), a) in owned.into_iter().zip(at) {
                appended.push((k, v, a));
            }
        }
        let after = now_ms();

        let mut expected: BTreeMap<u32, Vec<(String, String, u64)>> = BTreeMap::new();
        for (key, value, at) in &appended {
            assert_eq!(
                at.partition,
                partition_for(key.as_bytes(), 3),
                "key {key} went to the wrong partition"
            );
            expected
                .entry(at.partition)
                .or_default()
                .push((key.clone(), value.clone(), at.offset));
        }
        for (p, records) in &expected {
            let offsets: Vec<u64> = records.iter().map(|r| r.2).collect();
            assert_eq!(
                offsets,
                (0..records.len() as u64).collect::<Vec<_>>(),
                "offsets of partition {p}"
            );
            assert_eq!(log.high_watermark(&topic, *p).await.expect("hw"), records.len() as u64);
        }

        let mut reader = log.reader(&topic, &[(0, 0), (1, 0), (2, 0)]).await.expect("reader");
        let read = read_n(&mut reader, appended.len()).await;
        for (p, records) in by_partition(&read) {
            let want = &expected[&p];
            let got: Vec<(String, String, u64)> = records
                .iter()
                .map(|r| {
                    (
                        String::from_utf8(r.key.clone()).expect("utf8"),
                        String::from_utf8(r.value.clone()).expect("utf8"),
                        r.offset,
                    )
                })
                .collect();
            assert_eq!(&got, want, "partition {p} read back differently");
            for pair in records.windows(2) {
                assert!(
                    pair[0].timestamp_ms <= pair[1].timestamp_ms,
                    "log time went backwards in partition {p}"
                );
            }
            for r in records {
                assert!(
                    r.timestamp_ms >= before - 1_000 && r.timestamp_ms <= after + 1_000,
                    "log time {} is not the append time ({before}..{after})",
                    r.timestamp_ms
                );
                assert_eq!(r.topic, topic);
            }
        }
    }

    /// A reader from an offset gets exactly the records from there on, and
    /// reading again gives the same records, timestamps included.
    pub async fn replay_from_offset<H: Harness>(h: &H) {
        let log = h.open().await;
        let topic = h.topic("replay");
        log.create_topic(&topic, 1).await.expect("create topic");
        for i in 0..50 {
            log.append(&topic, b"k", format!("event-{i}").as_bytes())
                .await
                .expect("append");
        }
        let mut from_20 = log.reader(&topic, &[(0, 20)]).await.expect("reader");
        let got = read_n(&mut from_20, 30).await;
        let values: Vec<String> = got
            .iter()
            .map(|r| String::from_utf8(r.value.clone()).expect("utf8"))
            .collect();
        assert_eq!(values, (20..50).map(|i| format!("event-{i}")).collect::<Vec<_>>());
        assert_eq!(
            got.iter().map(|r| r.offset).collect::<Vec<_>>(),
            (20..50).collect::<Vec<_>>()
        );
        // Nothing more is there.
        assert!(
            from_20
                .poll(10, Duration::from_millis(300))
                .await
                .expect("poll")
                .is_empty()
        );

        let mut again = log.reader(&topic, &[(0, 20)]).await.expect("reader");
        assert_eq!(read_n(&mut again, 30).await, got, "a replay must be identical");

        // A reader that waits sees a record appended later.
        log.append(&topic, b"k", b"late").await.expect("append");
        let late = read_n(&mut from_20, 1).await;
        assert_eq!((late[0].offset, late[0].value.as_slice()), (50, &b"late"[..]));
    }

    /// A backlog read a few records at a time: no poll hands out more than
    /// it was asked for, and across the polls every record arrives exactly
    /// once, in order within its partition.
    pub async fn small_polls_over_a_backlog<H: Harness>(h: &H) {
        let log = h.open().await;
        let topic = h.topic("small-polls");
        log.create_topic(&topic, 4).await.expect("create topic");
        let owned: Vec<(String, String)> = (0..2_000)
            .map(|i| (format!("video-{}", i % 37), format!("event-{i}")))
            .collect();
        let mut expected: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for chunk in owned.chunks(500) {
            let batch: Vec<(&[u8], &[u8])> = chunk.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
            let at = log.append_batch(&topic, &batch).await.expect("append batch");
            for ((_, v), a) in chunk.iter().zip(at) {
                expected.entry(a.partition).or_default().push(v.clone());
            }
        }
        let mut reader = log
            .reader(&topic, &[(0, 0), (1, 0), (2, 0), (3, 0)])
            .await
            .expect("reader");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut read = Vec::new();
        while read.len() < owned.len() {
            assert!(Instant::now() < deadline, "only {} of 2000 records arrived", read.len());
            let got = reader.poll(7, Duration::from_millis(500)).await.expect("poll");
            assert!(got.len() <= 7, "asked for 7 records, got {}", got.len());
            read.extend(got);
        }
        assert!(
            reader
                .poll(7, Duration::from_millis(300))
                .await
                .expect("poll")
                .is_empty(),
            "records beyond the 2000 appended"
        );
        let got: BTreeMap<u32, Vec<String>> = by_partition(&read)
            .into_iter()
            .map(|(p, rs)| {
                (
                    p,
                    rs.iter()
                        .map(|r| String::from_utf8(r.value.clone()).expect("utf8"))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(got, expected, "the records read differ from those appended");
    }

    /// Many producers at once: every append is acknowledged exactly once with
    /// its own offset, and each producer's records keep their order.
    pub async fn concurrent_producers<H: Harness>(h: &H) {
        let log = h.open().await;
        let topic = h.topic("concurrent");
        log.create_topic(&topic, 4).await.expect("create topic");
        let producers = 8;
        let per = 60;
        let mut tasks = tokio::task::JoinSet::new();
        for p in 0..producers {
            let log = log.clone();
            let topic = topic.clone();
            tasks.spawn(async move {
                let key = format!("producer-{p}");
                let mut acks = Vec::new();
                for i in 0..per {
                    let at = log
                        .append(&topic, key.as_bytes(), format!("{p}:{i}").as_bytes())
                        .await
                        .expect("append");
                    acks.push(at);
                }
                acks
            });
        }
        let mut acked = HashSet::new();
        while let Some(acks) = tasks.join_next().await {
            for a in acks.expect("producer task") {
                assert!(acked.insert((a.partition, a.offset)), "offset {a:?} acknowledged twice");
            }
        }
        assert_eq!(acked.len(), producers * per);

        let mut reader = log
            .reader(&topic, &[(0, 0), (1, 0), (2, 0), (3, 0)])
            .await
            .expect("reader");
        let read = read_n(&mut reader, producers * per).await;
        let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
        for r in &read {
            let v = String::from_utf8(r.value.clone()).expect("utf8");
            let (p, i) = v.split_once(':').expect("p:i");
            assert_eq!(r.key, format!("producer-{p}").into_bytes());
            seen.entry(p.to_string()).or_default().push(i.parse().expect("number"));
        }
        for p in 0..producers {
            assert_eq!(
                seen[&p.to_string()],
                (0..per).collect::<Vec<_>>(),
                "producer {p}'s records out of order or missing"
            );
        }
    }

    /// Everything acknowledged before a restart is there after it, unchanged,
    /// and offsets continue where they stopped.
    pub async fn restart_recovery<H: Harness>(h: &H) {
        let topic = h.topic("restart");
        let before = {
            let log = h.open().await;
            log.create_topic(&topic, 2).await.expect("create topic");
            let owned: Vec<(String, String)> = (0..100).map(|i| (format!("k{}", i % 9), format!("v{i}"))).collect();
            let batch: Vec<(&[u8], &[u8])> = owned.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
            log.append_batch(&topic, &batch).await.expect("append");
            let mut reader = log.reader(&topic, &[(0, 0), (1, 0)]).await.expect("reader");
            read_n(&mut reader, 100).await
        };
        let log = h.open().await;
        let hw: Vec<u64> = vec![
            log.high_watermark(&topic, 0).await.expect("hw"),
            log.high_watermark(&topic, 1).await.expect("hw"),
        ];
        assert_eq!(hw.iter().sum::<u64>(), 100);
        let mut reader = log.reader(&topic, &[(0, 0), (1, 0)]).await.expect("reader");
        let after = read_n(&mut reader, 100).await;
        assert_eq!(
            by_partition(&after),
            by_partition(&before),
            "records changed across a restart"
        );
        let at = log.append(&topic, b"k0", b"after restart").await.expect("append");
        assert_eq!(
            at.offset, hw[at.partition as usize],
            "offsets must continue after a restart"
        );
    }

    /// The log stores bytes: a corrupt event is kept byte for byte between
    /// valid ones, and it is the decoder that reports it, so readers can
    /// count and skip it without losing its neighbours.
    pub async fn corrupt_record<H: Harness>(h: &H) {
        let log = h.open().await;
        let topic = h.topic("corrupt");
        log.create_topic(&topic, 1).await.expect("create topic");
        let event = |i: u32| {
            Envelope::new(PlaybackEvent {
                session_id: Uuid::now_v7(),
                video_id: Uuid::now_v7(),
                user_id: None,
                kind: PlaybackKind::FirstFrame {
                    startup_ms: u64::from(i),
                },
            })
            .to_bytes()
        };
        let garbage: Vec<u8> = vec![0xff, 0x00, b'{', 0xfe, b'"', 0x80];
        let big = vec![b'x'; 512 * 1024];
        let values: Vec<Vec<u8>> = vec![event(1), garbage.clone(), Vec::new(), big.clone(), event(2)];
        for v in &values {
            log.append(&topic, b"session", v).await.expect("append");
        }
        let mut reader = log.reader(&topic, &[(0, 0)]).await.expect("reader");
        let read = read_n(&mut reader, values.len()).await;
        let got: Vec<Vec<u8>> = read.iter().map(|r| r.value.clone()).collect();
        assert_eq!(got, values, "values must come back byte for byte");
        let decoded: Vec<bool> = read.iter().map(|r| decode::<PlaybackEvent>(&r.value).is_ok()).collect();
        assert_eq!(decoded, vec![true, false, false, false, true]);
    }

    /// Consumer groups: members together see every record; a committed
    /// offset is where the group resumes, exactly.
    pub async fn consumer_group<H: Harness>(h: &H) {
        let log = h.open().await;
        let topic = h.topic("group");
        let group = format!("{topic}-workers");
        log.create_topic(&topic, 4).await.expect("create topic");
        append_uploads(&log, &topic, 0..40).await;
        {
            let mut a = log.consumer(&group, &topic).await.expect("join a");
            let mut b = log.consumer(&group, &topic).await.expect("join b");
            let mut seen = HashSet::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while seen.len() < 40 {
                assert!(Instant::now() < deadline, "group saw only {} of 40 records", seen.len());
                for member in [&mut a, &mut b] {
                    if let Some(r) = member.next(Duration::from_millis(200)).await.expect("next") {
                        seen.insert(String::from_utf8(r.value.clone()).expect("utf8"));
                        member.commit(&r).await.expect("commit");
                    }
                }
            }
            assert_eq!(seen, (0..40).map(|i| format!("upload-{i}")).collect::<HashSet<_>>());
        }
        // Everything was committed: a new member gets only what comes next.
        append_uploads(&log, &topic, 40..45).await;
        let mut c = log.consumer(&group, &topic).await.expect("join c");
        let mut got = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while got.len() < 5 {
            assert!(Instant::now() < deadline, "resumed group saw {got:?}");
            if let Some(r) = c.next(Duration::from_millis(500)).await.expect("next") {
                got.insert(String::from_utf8(r.value).expect("utf8"));
            }
        }
        assert_eq!(got, (40..45).map(|i| format!("upload-{i}")).collect::<HashSet<_>>());
        assert!(
            c.next(Duration::from_millis(500)).await.expect("next").is_none(),
            "a committed record came back"
        );
    }

    /// A commit is precise: the group resumes right after the committed
    /// record, re-delivering what was read but not committed.
    pub async fn commit_is_precise<H: Harness>(h: &H) {
        let log = h.open().await;
        let topic = h.topic("commit");
        let group = format!("{topic}-workers");
        log.create_topic(&topic, 1).await.expect("create topic");
        for i in 0..10 {
            log.append(&topic, b"video", format!("job-{i}").as_bytes())
                .await
                .expect("append");
        }
        {
            let mut first = log.consumer(&group, &topic).await.expect("join");
            let mut read = Vec::new();
            while read.len() < 8 {
                if let Some(r) = first.next(Duration::from_secs(10)).await.expect("next") {
                    read.push(r);
                } else {
                    panic!("no record within 10 s");
                }
            }
            first.commit(&read[4]).await.expect("commit offset 4");
        }
        let mut second = log.consumer(&group, &topic).await.expect("rejoin");
        let next = second
            .next(Duration::from_secs(30))
            .await
            .expect("next")
            .expect("a record");
        assert_eq!((next.offset, next.value.as_slice()), (5, &b"job-5"[..]));
    }

    /// Records before an offset can expire (as retention would make
    /// them): the low watermark moves past them, the rest stay readable
    /// from it, and a reopened log says the same.
    pub async fn expiry<H: Harness>(h: &H) {
        let log = h.open().await;
        let topic = h.topic("expiry");
        log.create_topic(&topic, 1).await.expect("create topic");
        append_uploads(&log, &topic, 0..300).await;
        assert_eq!(
            log.low_watermark(&topic, 0).await.expect("low"),
            0,
            "nothing expired yet"
        );
        let low = log.expire_before(&topic, 0, 200).await.expect("expire");
        assert!(
            low > 0 && low <= 200,
            "the low watermark is {low} after expiring before 200"
        );
        assert_eq!(log.low_watermark(&topic, 0).await.expect("low"), low);
        assert_eq!(log.high_watermark(&topic, 0).await.expect("high"), 300);
        let mut reader = log.reader(&topic, &[(0, low)]).await.expect("reader");
        let records = read_n(&mut reader, (300 - low) as usize).await;
        for (r, offset) in records.iter().zip(low..) {
            assert_eq!(r.offset, offset);
            assert_eq!(r.value, format!("upload-{offset}").into_bytes());
        }
        drop(reader);
        drop(log);
        let log = h.open().await;
        assert_eq!(log.low_watermark(&topic, 0).await.expect("low"), low, "after a reopen");
    }

    /// Asking about what does not exist is an error that says so.
    pub async fn unknown_topics_and_partitions<H: Harness>(h: &H) {
        let log = h.open().await;
        let missing = h.topic("missing");
        assert!(matches!(
            log.partition_count(&missing).await,
            Err(LogError::UnknownTopic(_))
        ));
        assert!(log.append(&missing, b"k", b"v").await.is_err());
        let topic = h.topic("bounds");
        log.create_topic(&topic, 2).await.expect("create topic");
        // Creating again is a no-op, whatever the partition count.
        log.create_topic(&topic, 5).await.expect("create again");
        assert_eq!(log.partition_count(&topic).await.expect("count"), 2);
        assert!(log.reader(&topic, &[(7, 0)]).await.is_err(), "reading partition 7 of 2");
        assert!(log.create_topic("bad/name", 1).await.is_err());
        assert!(log.create_topic(&h.topic("zero"), 0).await.is_err());
    }
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::cases::$case(&super::Embedded::new()).await;
                }
            )*
        }
        mod kafka {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::cases::$case(&super::Kafka::new()).await;
                }
            )*
        }
    };
}

contract!(
    order_and_offsets,
    replay_from_offset,
    small_polls_over_a_backlog,
    concurrent_producers,
    restart_recovery,
    corrupt_record,
    consumer_group,
    commit_is_precise,
    unknown_topics_and_partitions,
    expiry,
);
