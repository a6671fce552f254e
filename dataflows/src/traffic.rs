//! Realistic playback traffic for `reelflow-bench dataflow`: a catalog of
//! videos (with genres, uploads and finished transcodes, so the joins have
//! something to join), and playback sessions over them with Zipf
//! popularity (s = 1), interleaved the way thousands of concurrent players
//! interleave. A session: a start; a first frame for 97 % (startup about
//! 300 ms plus an exponential tail); heartbeats every 10 s of play for a
//! geometric number of them (mean 18, three minutes); seeks (5 % per
//! heartbeat), stalls (3 %), a fatal error for 1 % of sessions; an `end` for
//! 70 % (the others just close the page).

use chrono::DateTime;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reelflow_ingest::events::{
    CatalogEvent, Envelope, PlaybackEvent, PlaybackKind, ProcessingEvent, Rendition, TopicEvent, UploadEvent,
    VideoMeta, Visibility,
};
use uuid::Uuid;

use crate::workload::Raw;

const GENRES: [&str; 8] = ["drama", "comedy", "music", "sport", "news", "kids", "gaming", "science"];

/// Generates the benchmark's events.
pub struct Traffic {
    rng: StdRng,
    videos: Vec<Uuid>,
    /// Cumulative Zipf weights over `videos`.
    cdf: Vec<f64>,
    users: Vec<Uuid>,
    active: Vec<Session>,
}

struct Session {
    id: Uuid,
    video: Uuid,
    user: Option<Uuid>,
    clock_ms: i64,
    position_s: f64,
    heartbeats_left: u32,
    step: u32,
    done: bool,
}

fn raw<T: TopicEvent>(rng: &mut StdRng, event: T, occurred_ms: i64) -> Raw {
    let e = Envelope {
        schema_version: T::SCHEMA_VERSION,
        event_id: Uuid::from_u128(rng.random()),
        occurred_at: DateTime::from_timestamp_millis(occurred_ms).unwrap_or_default(),
        event,
    };
    (T::TOPIC, e.key(), e.to_bytes())
}

impl Traffic {
    /// `videos` videos, `concurrent` players at a time, from `seed`.
    pub fn new(seed: u64, videos: usize, concurrent: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let ids: Vec<Uuid> = (0..videos).map(|_| Uuid::from_u128(rng.random())).collect();
        let mut total = 0.0;
        let cdf = (1..=videos)
            .map(|k| {
                total += 1.0 / k as f64;
                total
            })
            .collect();
        let users = (0..videos.max(10) / 2).map(|_| Uuid::from_u128(rng.random())).collect();
        let mut t = Self {
            rng,
            videos: ids,
            cdf,
            users,
            active: Vec::new(),
        };
        t.active = (0..concurrent).map(|_| t.new_session()).collect();
        t
    }

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    /// The catalog: each video created, uploaded and transcoded.
    pub fn catalog(&mut self) -> Vec<Raw> {
        let now = Self::now_ms();
        let mut out = Vec::with_capacity(self.videos.len() * 3);
        for i in 0..self.videos.len() {
            let video_id = self.videos[i];
            let owner_id = self.users[i % self.users.len()];
            let genre = GENRES[self.rng.random_range(0..GENRES.len())].to_string();
            let video = VideoMeta {
                owner_id,
                title: format!("video {i}"),
                description: String::new(),
                genre: Some(genre),
                language: Some("en".into()),
                visibility: Visibility::Public,
                tags: vec![],
            };
            out.push(raw(&mut self.rng, CatalogEvent::VideoCreated { video_id, video }, now));
            let size_bytes = self.rng.random_range(10_000_000..2_000_000_000);
            out.push(raw(
                &mut self.rng,
                UploadEvent::UploadCompleted {
                    video_id,
                    upload_id: Uuid::nil(),
                    owner_id,
                    object_key: format!("videos/{video_id}/source"),
                    size_bytes,
                    checksum: None,
                    file_name: None,
                    content_type: None,
                },
                now,
            ));
            let duration_s = self.rng.random_range(30.0..1800.0);
            let ready = ProcessingEvent::Ready {
                video_id,
                renditions: ["1080p", "720p", "480p", "360p"]
                    .iter()
                    .map(|n| Rendition {
                        name: n.to_string(),
                        width: 0,
                        height: 0,
                        bandwidth_bps: 0,
                    })
                    .collect(),
                duration_s,
                poster_key: None,
                storyboard_key: None,
                output_bytes: size_bytes / 2,
                first_playable_s: None,
            };
            out.push(raw(&mut self.rng, ready, now));
        }
        out
    }

    fn new_session(&mut self) -> Session {
        let u: f64 = self.rng.random_range(0.0..self.cdf[self.cdf.len() - 1]);
        let k = self.cdf.partition_point(|c| *c < u).min(self.videos.len() - 1);
        // Geometric with mean 18.
        let mut heartbeats = 1;
        while self.rng.random_bool(17.0 / 18.0) && heartbeats < 2000 {
            heartbeats += 1;
        }
        Session {
            id: Uuid::from_u128(self.rng.random()),
            video: self.videos[k],
            user: self
                .rng
                .random_bool(0.4)
                .then(|| self.users[self.rng.random_range(0..self.users.len())]),
            clock_ms: Self::now_ms(),
            position_s: 0.0,
            heartbeats_left: heartbeats,
            step: 0,
            done: false,
        }
    }

    /// The next `n` player events, interleaved across concurrent sessions.
    pub fn playback(&mut self, n: usize) -> Vec<Raw> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let slot = self.rng.random_range(0..self.active.len());
            let kind = self.next_kind(slot);
            let s = &self.active[slot];
            let event = PlaybackEvent {
                session_id: s.id,
                video_id: s.video,
                user_id: s.user,
                kind,
            };
            let at = s.clock_ms;
            out.push(raw(&mut self.rng, event, at));
            if self.active[slot].done {
                self.active[slot] = self.new_session();
            }
        }
        out
    }

    fn next_kind(&mut self, slot: usize) -> PlaybackKind {
        let rng = &mut self.rng;
        let s = &mut self.active[slot];
        s.step += 1;
        s.clock_ms += 10_000;
        match s.step {
            1 => PlaybackKind::SessionStart {
                player: Some("hls.js 1.6".into()),
            },
            2 if rng.random_bool(0.03) => {
                s.done = true;
                PlaybackKind::End { position_s: 0.0 }
            }
            2 => PlaybackKind::FirstFrame {
                startup_ms: 300 + (-(1.0 - rng.random_range(0.0..1.0f64)).ln() * 800.0) as u64,
            },
            _ if s.heartbeats_left == 0 => {
                s.done = true;
                if rng.random_bool(0.01) {
                    PlaybackKind::Error {
                        code: "networkError".into(),
                        message: "fragment load timed out".into(),
                        fatal: true,
                    }
                } else if rng.random_bool(0.7) {
                    PlaybackKind::End {
                        position_s: s.position_s,
                    }
                } else {
                    PlaybackKind::Pause {
                        position_s: s.position_s,
                    }
                }
            }
            _ => {
                let roll: f64 = rng.random_range(0.0..1.0);
                if roll < 0.05 {
                    let to = (s.position_s + rng.random_range(-30.0..120.0)).max(0.0);
                    let from = s.position_s;
                    s.position_s = to;
                    PlaybackKind::Seek { from_s: from, to_s: to }
                } else if roll < 0.08 {
                    PlaybackKind::RebufferEnd {
                        duration_ms: rng.random_range(100..5000),
                    }
                } else {
                    s.heartbeats_left -= 1;
                    s.position_s += 10.0;
                    let (rendition, bitrate) =
                        [("1080p", 5000), ("720p", 2800), ("480p", 1400), ("360p", 800)][rng.random_range(0..4)];
                    PlaybackKind::Heartbeat {
                        position_s: s.position_s,
                        played_ms: 10_000,
                        rendition: Some(rendition.into()),
                        bitrate_kbps: Some(bitrate),
                    }
                }
            }
        }
    }
}
