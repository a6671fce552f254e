//! Realistic playback traffic for `reelflow-bench dataflow`: a catalog of
//! videos (with genres, uploads and finished transcodes, so the joins have
//! something to join), and playback sessions over them with Zipf
//! popularity (s = 1), interleaved the way thousands of concurrent players
//! interleave. A session: a start; a first frame for 97 % (startup about
//! 300 ms plus an exponential tail); heartbeats every 10 s of play for a
//! geometric number of them (mean 18, three minutes); seeks (5 % per
//! heartbeat), stalls (3 %), a fatal error for 1 % of sessions; an `end` for
//! 70 % (the others just close the page).
//!
//! [`Shape`] bends it for `reelflow-bench state`: signed-in viewers who
//! each watch from a personal set of videos, so the population of keys
//! (videos, viewers, viewer × video pairs) stops growing early while the
//! log grows, and a simulated clock, so a log written at full speed still
//! spans hours of log time (one event every `10 s / concurrent`, the pace
//! of `concurrent` players with a heartbeat every 10 s).

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

/// How [`Traffic::shaped`] departs from the default traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Share of sessions by a signed-in viewer (the rest are anonymous).
    pub signed_in: f64,
    /// Each signed-in viewer watches only from a personal set of videos
    /// (drawn by popularity once), of a geometric size with this mean,
    /// capped at 50; `None`: any video, by popularity.
    pub personal_set_mean: Option<f64>,
    /// Simulated time from this instant (ms since the epoch): events are
    /// dated by [`Traffic::clock_ms`], not the wall clock.
    pub simulated_from_ms: Option<i64>,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            signed_in: 0.4,
            personal_set_mean: None,
            simulated_from_ms: None,
        }
    }
}

/// The largest personal set.
pub const PERSONAL_SET_MAX: usize = 50;

/// Generates the benchmark's events.
pub struct Traffic {
    rng: StdRng,
    videos: Vec<Uuid>,
    /// Cumulative Zipf weights over `videos`.
    cdf: Vec<f64>,
    users: Vec<Uuid>,
    /// Per user, the videos (indices) it watches from, if sets are on.
    personal: Option<Vec<Vec<u32>>>,
    signed_in: f64,
    /// Simulated time and how much one event advances it.
    clock: Option<(f64, f64)>,
    active: Vec<Session>,
    /// The keys sessions were started with so far.
    watched: Watched,
}

#[derive(Default)]
struct Watched {
    videos: foldhash::HashSet<u32>,
    viewers: foldhash::HashSet<u32>,
    pairs: foldhash::HashSet<(u32, u32)>,
    sessions: u64,
}

/// How many distinct keys the sessions started so far have: what the
/// views' state should follow, rather than the number of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct KeyCounts {
    /// Sessions started.
    pub sessions: u64,
    /// Videos watched at least once.
    pub videos: usize,
    /// Signed-in viewers who watched.
    pub viewers: usize,
    /// (viewer, video) pairs watched.
    pub viewer_videos: usize,
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
        Self::shaped(seed, videos, concurrent, Shape::default())
    }

    /// Like [`Traffic::new`], shaped by `shape`.
    pub fn shaped(seed: u64, videos: usize, concurrent: usize, shape: Shape) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let ids: Vec<Uuid> = (0..videos).map(|_| Uuid::from_u128(rng.random())).collect();
        let mut total = 0.0;
        let cdf = (1..=videos)
            .map(|k| {
                total += 1.0 / k as f64;
                total
            })
            .collect();
        let users: Vec<Uuid> = (0..videos.max(10) / 2).map(|_| Uuid::from_u128(rng.random())).collect();
        let mut t = Self {
            rng,
            videos: ids,
            cdf,
            personal: None,
            signed_in: shape.signed_in,
            clock: shape
                .simulated_from_ms
                .map(|at| (at as f64, 10_000.0 / concurrent.max(1) as f64)),
            users,
            active: Vec::new(),
            watched: Watched::default(),
        };
        if let Some(mean) = shape.personal_set_mean {
            let sets = (0..t.users.len())
                .map(|_| {
                    let mut size = 1;
                    while size < PERSONAL_SET_MAX && t.rng.random_bool(1.0 - 1.0 / mean.max(1.0)) {
                        size += 1;
                    }
                    let mut set: Vec<u32> = (0..size).map(|_| t.popular() as u32).collect();
                    set.sort_unstable();
                    set.dedup();
                    set
                })
                .collect();
            t.personal = Some(sets);
        }
        t.active = (0..concurrent).map(|_| t.new_session()).collect();
        t
    }

    /// The time events are dated at: the simulated clock, or the wall clock.
    pub fn clock_ms(&self) -> i64 {
        match self.clock {
            Some((at, _)) => at as i64,
            None => chrono::Utc::now().timestamp_millis(),
        }
    }

    /// The distinct keys of the sessions started so far.
    pub fn keys(&self) -> KeyCounts {
        KeyCounts {
            sessions: self.watched.sessions,
            videos: self.watched.videos.len(),
            viewers: self.watched.viewers.len(),
            viewer_videos: self.watched.pairs.len(),
        }
    }

    /// A video index by Zipf popularity.
    fn popular(&mut self) -> usize {
        let u: f64 = self.rng.random_range(0.0..self.cdf[self.cdf.len() - 1]);
        self.cdf.partition_point(|c| *c < u).min(self.videos.len() - 1)
    }

    /// The catalog: each video created, uploaded and transcoded.
    pub fn catalog(&mut self) -> Vec<Raw> {
        let now = self.clock_ms();
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
        // The draws stay in the order the default traffic always made them
        // (video, length, id, viewer), so its figures compare across runs.
        let popular = self.personal.is_none().then(|| self.popular());
        // Geometric with mean 18.
        let mut heartbeats = 1;
        while self.rng.random_bool(17.0 / 18.0) && heartbeats < 2000 {
            heartbeats += 1;
        }
        let id = Uuid::from_u128(self.rng.random());
        let user = self
            .rng
            .random_bool(self.signed_in)
            .then(|| self.rng.random_range(0..self.users.len()));
        let k = match (popular, &self.personal, user) {
            (Some(k), _, _) => k,
            (None, Some(sets), Some(u)) => sets[u][self.rng.random_range(0..sets[u].len())] as usize,
            (None, _, _) => self.popular(),
        };
        self.watched.sessions += 1;
        self.watched.videos.insert(k as u32);
        if let Some(u) = user {
            self.watched.viewers.insert(u as u32);
            self.watched.pairs.insert((u as u32, k as u32));
        }
        Session {
            id,
            video: self.videos[k],
            user: user.map(|u| self.users[u]),
            clock_ms: self.clock_ms(),
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
            if let Some((clock, step)) = &mut self.clock {
                *clock += *step;
            }
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

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use reelflow_ingest::events::{PlaybackEvent, decode};

    use super::*;

    fn shaped() -> Traffic {
        Traffic::shaped(
            3,
            1000,
            100,
            Shape {
                signed_in: 0.8,
                personal_set_mean: Some(3.0),
                simulated_from_ms: Some(1_600_000_000_000),
            },
        )
    }

    #[test]
    fn signed_in_viewers_watch_only_from_their_personal_set() {
        let mut traffic = shaped();
        let sets = traffic.personal.clone().expect("personal sets");
        let index: HashMap<Uuid, usize> = traffic.users.iter().enumerate().map(|(i, u)| (*u, i)).collect();
        let videos: HashMap<Uuid, u32> = traffic.videos.iter().enumerate().map(|(i, v)| (*v, i as u32)).collect();
        let mut pairs = HashSet::new();
        let (mut signed, mut all) = (0, 0);
        for (_, _, bytes) in traffic.playback(50_000) {
            let e = decode::<PlaybackEvent>(&bytes).expect("a playback event");
            all += 1;
            if let Some(user) = e.event.user_id {
                signed += 1;
                let u = index[&user];
                assert!(sets[u].contains(&videos[&e.event.video_id]), "outside the personal set");
                pairs.insert((u, e.event.video_id));
            }
        }
        assert!(sets.iter().all(|s| !s.is_empty() && s.len() <= PERSONAL_SET_MAX));
        let bound: usize = sets.iter().map(Vec::len).sum();
        assert!(pairs.len() <= bound, "{} pairs, at most {bound}", pairs.len());
        // The traffic's own count includes the sessions still under way.
        assert!(traffic.keys().viewer_videos >= pairs.len());
        assert!(traffic.keys().viewer_videos <= bound);
        let share = signed as f64 / all as f64;
        assert!((0.7..0.9).contains(&share), "signed-in share {share}");
    }

    #[test]
    fn a_simulated_clock_dates_events_at_the_pace_of_the_players() {
        let mut traffic = shaped();
        let start = traffic.clock_ms();
        let events = traffic.playback(10_000);
        // 100 players, one event each per 10 s: 10,000 events are 1,000 s.
        assert_eq!(traffic.clock_ms() - start, 1_000_000);
        let last = decode::<PlaybackEvent>(&events.last().expect("events").2).expect("decodes");
        let lag = (traffic.clock_ms() - last.occurred_at.timestamp_millis()).abs();
        assert!(
            lag < 300_000,
            "a session's own clock drifted {lag} ms from the traffic's"
        );
    }
}
