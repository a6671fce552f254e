//! Seeded random event logs for testing the views against
//! [`crate::reference`]: catalog changes, uploads, processing runs and
//! playback sessions, with events that reach the log late (out of
//! producer-time order), duplicates (the same event id appended twice, or
//! once more with other content) and malformed records in every topic. Used by this crate's tests and by the
//! multi-process tests of the `reelflow` command.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::Time;
use crate::facts::Fact;
use crate::reference;
use chrono::DateTime;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reelflow_ingest::events::{
    CatalogEvent, Envelope, PlaybackEvent, PlaybackKind, ProcessingEvent, Rendition, TopicEvent, UploadEvent,
    VideoMeta, Visibility,
};
use reelflow_ingest::log::{AnyLog, EmbeddedLog, EmbeddedOptions, EventLog, FsyncPolicy, PartitionReader, Record};
use uuid::Uuid;

/// One record to append: topic, key, value.
pub type Raw = (&'static str, String, Vec<u8>);

/// Records to append in phases, with a pause between phases so log times
/// spread out.
pub struct Workload {
    /// Records per phase.
    pub phases: Vec<Vec<Raw>>,
    /// How many of them are malformed.
    pub malformed: usize,
}

struct Gen {
    rng: StdRng,
    now_ms: i64,
}

impl Gen {
    fn id(&mut self) -> Uuid {
        Uuid::from_u128(self.rng.random())
    }

    fn raw<T: TopicEvent>(&mut self, event: T, occurred_ms: i64) -> Raw {
        raw_as(self.id(), event, occurred_ms)
    }
}

/// The record of `event` with this id and time.
fn raw_as<T: TopicEvent>(event_id: Uuid, event: T, occurred_ms: i64) -> Raw {
    let e = Envelope {
        schema_version: T::SCHEMA_VERSION,
        event_id,
        occurred_at: DateTime::from_timestamp_millis(occurred_ms).expect("valid time"),
        event,
    };
    (T::TOPIC, e.key(), e.to_bytes())
}

impl Gen {}

/// Windows for these workloads: short, so a test sees them retract, and
/// sessions that close between a workload's phases (100 ms or more
/// apart), so a session's later records start another session of the
/// same id.
pub fn short_windows() -> crate::Windows {
    crate::Windows {
        concurrent: Duration::from_millis(100),
        trending: vec![
            ("1h".into(), Duration::from_millis(250)),
            ("24h".into(), Duration::from_millis(900)),
        ],
        trending_top: 5,
        session_idle: Duration::from_millis(100),
    }
}

/// A workload of `phases` phases from `seed`.
pub fn workload(seed: u64, phases: usize) -> Workload {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        now_ms: 1_790_000_000_000 + seed as i64 * 1000,
    };
    let mut out: Vec<Vec<Raw>> = vec![Vec::new(); phases];
    let owners: Vec<Uuid> = (0..4).map(|_| g.id()).collect();
    let users: Vec<Uuid> = (0..6).map(|_| g.id()).collect();
    let genres = [Some("drama"), Some("comedy"), Some("music"), None];
    let videos: Vec<Uuid> = (0..10).map(|_| g.id()).collect();
    let last = phases - 1;

    for (i, &v) in videos.iter().enumerate() {
        let owner = owners[g.rng.random_range(0..owners.len())];
        let meta = |g: &mut Gen| VideoMeta {
            owner_id: owner,
            title: format!("video {i}"),
            description: String::new(),
            genre: genres[g.rng.random_range(0..genres.len())].map(str::to_string),
            language: None,
            visibility: Visibility::Public,
            tags: vec![],
        };
        let t = g.now_ms + i as i64;
        let video = meta(&mut g);
        let created = g.raw(CatalogEvent::VideoCreated { video_id: v, video }, t);
        out[0].push(created);
        if g.rng.random_bool(0.3) {
            let video = meta(&mut g);
            let p = g.rng.random_range(1..phases);
            let updated = g.raw(CatalogEvent::VideoUpdated { video_id: v, video }, t + 1000 * p as i64);
            out[p].push(updated);
        }
        if i == 9 {
            let deleted = g.raw(
                CatalogEvent::VideoDeleted {
                    video_id: v,
                    owner_id: owner,
                },
                t + 5000,
            );
            out[last].push(deleted);
        }
        // Media: upload, then a pipeline run over the next phases.
        let size_bytes = g.rng.random_range(1_000..50_000_000);
        let upload = g.raw(
            UploadEvent::UploadCompleted {
                video_id: v,
                upload_id: Uuid::nil(),
                owner_id: owner,
                object_key: format!("videos/{v}/source"),
                size_bytes,
                checksum: None,
                file_name: None,
                content_type: None,
            },
            t + 10,
        );
        out[0].push(upload);
        if i == 8 {
            continue; // never picked up
        }
        let p1 = 1.min(last);
        let queued = g.raw(ProcessingEvent::Queued { video_id: v }, t + 20);
        let probing = g.raw(ProcessingEvent::Probing { video_id: v }, t + 30);
        let transcoding = g.raw(
            ProcessingEvent::Transcoding {
                video_id: v,
                percent: 42.5,
            },
            t + 40,
        );
        out[p1].extend([queued, probing, transcoding]);
        let p2 = 2.min(last);
        let end = if g.rng.random_bool(0.8) {
            ProcessingEvent::Ready {
                video_id: v,
                renditions: vec![
                    Rendition {
                        name: "720p".into(),
                        width: 1280,
                        height: 720,
                        bandwidth_bps: 3_000_000,
                    },
                    Rendition {
                        name: "360p".into(),
                        width: 640,
                        height: 360,
                        bandwidth_bps: 800_000,
                    },
                ],
                duration_s: g.rng.random_range(20.0..120.0),
                poster_key: None,
                storyboard_key: None,
                output_bytes: g.rng.random_range(1_000..80_000_000),
                first_playable_s: None,
            }
        } else {
            ProcessingEvent::Failed {
                video_id: v,
                reason: "ffmpeg exited with status 1".into(),
            }
        };
        let end = g.raw(end, t + 60);
        out[p2].push(end);
        // Late: progress produced before the end, reaching the log after it.
        let late = g.raw(
            ProcessingEvent::Transcoding {
                video_id: v,
                percent: 90.0,
            },
            t + 50,
        );
        out[(p2 + 1).min(last)].push(late);
    }

    // Playback sessions, popular videos first.
    for _ in 0..40 {
        let session = g.id();
        let video = videos[(g.rng.random_range(0.0f64..1.0).powi(2) * videos.len() as f64) as usize];
        let user = g
            .rng
            .random_bool(0.6)
            .then(|| users[g.rng.random_range(0..users.len())]);
        let start_phase = g.rng.random_range(0..phases);
        let mut t = g.now_ms + 2000 * start_phase as i64 + g.rng.random_range(0..1000);
        let mut kinds = vec![PlaybackKind::SessionStart { player: None }];
        let started = g.rng.random_bool(0.8);
        if started {
            kinds.push(PlaybackKind::FirstFrame {
                startup_ms: g.rng.random_range(80..3000),
            });
            let mut position = 0.0;
            for _ in 0..g.rng.random_range(1..8) {
                let played = g.rng.random_range(0..10_000u64);
                position += played as f64 / 1000.0;
                kinds.push(PlaybackKind::Heartbeat {
                    position_s: position,
                    played_ms: played,
                    rendition: Some("720p".into()),
                    bitrate_kbps: g.rng.random_bool(0.9).then(|| g.rng.random_range(300..6000)),
                });
                match g.rng.random_range(0..10) {
                    0 => kinds.push(PlaybackKind::Pause { position_s: position }),
                    1 => {
                        let to = position + g.rng.random_range(-5.0..60.0);
                        kinds.push(PlaybackKind::Seek {
                            from_s: position,
                            to_s: to,
                        });
                        position = to.max(0.0);
                    }
                    2 => {
                        kinds.push(PlaybackKind::RebufferStart { position_s: position });
                        kinds.push(PlaybackKind::RebufferEnd {
                            duration_ms: g.rng.random_range(10..4000),
                        });
                    }
                    3 => kinds.push(PlaybackKind::RenditionChange {
                        from: Some("720p".into()),
                        to: "360p".into(),
                        bitrate_kbps: Some(800),
                    }),
                    _ => {}
                }
            }
            if g.rng.random_bool(0.1) {
                kinds.push(PlaybackKind::Error {
                    code: "networkError".into(),
                    message: String::new(),
                    fatal: g.rng.random_bool(0.5),
                });
            }
            if g.rng.random_bool(0.5) {
                kinds.push(PlaybackKind::End { position_s: position });
            }
        } else if g.rng.random_bool(0.5) {
            kinds.push(PlaybackKind::End { position_s: 0.0 });
        } else if g.rng.random_bool(0.5) {
            kinds.push(PlaybackKind::Error {
                code: "manifestLoadError".into(),
                message: String::new(),
                fatal: true,
            });
        }
        let event = |kind| PlaybackEvent {
            session_id: session,
            video_id: video,
            user_id: user,
            kind,
        };
        for (k, kind) in kinds.into_iter().enumerate() {
            t += g.rng.random_range(1..3000);
            let id = g.id();
            let raw = raw_as(id, event(kind), t);
            let mut phase = (start_phase + k / 3).min(last);
            let next = (phase + 1).min(last);
            if g.rng.random_bool(0.05) {
                out[next].push(raw.clone());
            }
            if g.rng.random_bool(0.03) {
                // The same event id and time with other content: only the
                // record logged first counts.
                let other = raw_as(id, event(PlaybackKind::Pause { position_s: 0.5 }), t);
                out[if g.rng.random_bool(0.5) { phase } else { next }].push(other);
            }
            if g.rng.random_bool(0.05) {
                // Late: logged after the session's later events.
                phase = next;
            }
            out[phase].push(raw);
        }
    }

    // Late within a phase: shuffle each phase's order.
    for phase in &mut out {
        for i in (1..phase.len()).rev() {
            let j = g.rng.random_range(0..=i);
            phase.swap(i, j);
        }
    }
    // Malformed records in every topic.
    let mut malformed = 0;
    for (i, topic) in crate::TOPICS.into_iter().enumerate() {
        let phase = i % phases;
        out[phase].push((topic, "junk".into(), b"{not json".to_vec()));
        out[phase].push((
            topic,
            "future".into(),
            br#"{"schema_version":99,"event_id":"00000000-0000-0000-0000-000000000001","occurred_at":"2026-01-01T00:00:00Z","type":"x"}"#.to_vec(),
        ));
        malformed += 2;
    }
    Workload { phases: out, malformed }
}

/// A fresh embedded log in `dir` (no fsync: the tests are not about
/// durability), in small segments, so reads cross them and records can
/// expire.
pub fn embedded(dir: &std::path::Path) -> AnyLog {
    AnyLog::Embedded(
        EmbeddedLog::open(
            dir,
            EmbeddedOptions {
                fsync: FsyncPolicy::Never,
                segment_bytes: 16 * 1024,
                ..EmbeddedOptions::default()
            },
        )
        .expect("open embedded log"),
    )
}

/// Creates the topics with `partitions` each.
pub async fn create_topics(log: &AnyLog, partitions: u32) {
    for topic in crate::TOPICS {
        log.create_topic(topic, partitions).await.expect("create topic");
    }
}

/// Appends one phase, topic by topic.
pub async fn append(log: &AnyLog, phase: &[Raw]) {
    type Records<'a> = Vec<(&'a [u8], &'a [u8])>;
    let mut by_topic: BTreeMap<&str, Records> = BTreeMap::new();
    for (topic, key, value) in phase {
        by_topic
            .entry(topic)
            .or_default()
            .push((key.as_bytes(), value.as_slice()));
    }
    for (topic, records) in by_topic {
        log.append_batch(topic, &records).await.expect("append");
    }
}

/// Appends every phase with `pause` between them.
pub async fn append_all(log: &AnyLog, w: &Workload, pause: Duration) {
    for phase in &w.phases {
        append(log, phase).await;
        tokio::time::sleep(pause).await;
    }
}

/// Every record of the log, read back.
pub async fn read_back(log: &AnyLog) -> Vec<Record> {
    let mut all = Vec::new();
    for topic in crate::TOPICS {
        let n = log.partition_count(topic).await.expect("partitions");
        let mut expected = 0;
        for p in 0..n {
            expected += log.high_watermark(topic, p).await.expect("watermark");
        }
        let assignment: Vec<(u32, u64)> = (0..n).map(|p| (p, 0)).collect();
        let mut reader = log.reader(topic, &assignment).await.expect("reader");
        let mut got = 0;
        while got < expected {
            let batch = reader.poll(10_000, Duration::from_millis(200)).await.expect("poll");
            got += batch.len() as u64;
            all.extend(batch);
        }
    }
    all
}

/// The facts as the sources stamp them, and the times worth checking:
/// the first and last stamps, some between, and times after the last when
/// the windows have retracted.
pub async fn stamped(log: &AnyLog, tick_ms: Time) -> (Vec<(Time, Fact)>, usize, Vec<Time>) {
    let records = read_back(log).await;
    let (facts, malformed) = reference::stamp(&records, tick_ms);
    let mut times: Vec<Time> = facts.iter().map(|(t, _)| *t).collect();
    times.sort();
    times.dedup();
    let n = times.len();
    let last = times[n - 1];
    let mut check = vec![times[0], times[n / 4], times[n / 2], times[3 * n / 4], last];
    check.extend([last + 200, last + 1_000]);
    check.dedup();
    (facts, malformed, check)
}
