//! What every number means. The dataflows apply these folds incrementally
//! (a reduce per entity, or for sessions an accumulator that takes the
//! events in any order: [`SessionAccumulator`]); the reference
//! implementation applies them once to all of an entity's events.
//! Definitions follow Mux Data and PeerTube:
//!
//! - **Session**: one page load of the player for one video (the
//!   `session_id` of the beacons). Its events are folded in [`Order`]
//!   (producer time, then event id); an event counts once, however often
//!   it was logged (the record logged first counts).
//! - **View**: a session that attempted playback, i.e. any session with at
//!   least one event (Mux: "a view is any attempt to play").
//! - **Unique viewers**: distinct signed-in users, plus one per anonymous
//!   session (an anonymous viewer cannot be told apart across sessions).
//! - **Watch time**: the sum of `played_ms` of the heartbeats — content
//!   actually played, not wall time, not stalls.
//! - **Completion**: a session whose furthest played position (heartbeat,
//!   pause or end position; a seek alone does not count) reached 90 % of the
//!   video's duration. Unknown until the video is `ready`.
//! - **Startup time**: `startup_ms` of the session's first `first_frame`.
//!   p95 is the nearest-rank percentile: the value at rank ⌈0.95·n⌉.
//! - **Rebuffer %**: stall time (sum of `rebuffer_end` durations) over watch
//!   time, × 100 (Mux's rebuffer percentage).
//! - **Failure %**: sessions with a fatal error over sessions, × 100.
//! - **EBVS % (exits before video start)**: sessions that ended (an `end`
//!   event) without a first frame and without a fatal error, over sessions.
//! - **Average bitrate**: mean of the heartbeats' reported bitrates.
//! - **Concurrent viewers**: sessions with an event in the last 60 s of log
//!   time, except sessions whose latest state is paused or ended.
//! - **Trending**: sessions whose `session_start` reached the log in the
//!   window (1 h, 24 h), ranked by that count, ties by video id.
//! - **Retention** (PeerTube's "audience retention"): for each 1 % bucket of
//!   the duration, the share of sessions with a first frame whose furthest
//!   played position reached the bucket's start.
//! - **Processing status**: the latest media event of a video (upload
//!   completed, queued, probing, transcoding, ready, failed).
//! - **Storage**: per owner, the source bytes of the latest upload plus the
//!   output bytes of the latest ready, over the videos still in the catalog.
//!
//! [`Order`]: crate::facts::Order

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::datum::{Datum, F64, Row};
use crate::facts::{Beacon, MediaChange, Order};
use crate::total::Accumulator;
use crate::views::Time;

/// How far into the video a session must play to count as completed, in
/// percent of the duration.
pub const COMPLETION_PCT: u64 = 90;

/// Retention buckets per video (1 % each).
pub const RETENTION_BUCKETS: u64 = 100;

/// What a playback session amounts to, folded from its events.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionSummary {
    /// The video.
    pub video_id: Uuid,
    /// The signed-in viewer, if any.
    pub user_id: Option<Uuid>,
    /// Producer time of its first event.
    pub started_ms: i64,
    /// Producer time of its latest event.
    pub last_ms: i64,
    /// Startup time of its first `first_frame`.
    pub startup_ms: Option<u64>,
    /// Content played.
    pub played_ms: u64,
    /// Furthest position played to.
    pub max_position_ms: u64,
    /// Position of the latest event that carries one.
    pub last_position_ms: u64,
    /// Stall time.
    pub rebuffer_ms: u64,
    /// Sum of heartbeat bitrates.
    pub bitrate_sum_kbps: u64,
    /// Heartbeats that reported a bitrate.
    pub bitrate_samples: u64,
    /// Ended by a fatal error.
    pub fatal: bool,
    /// An `end` event arrived.
    pub ended: bool,
    /// Its latest state is paused.
    pub paused: bool,
}

impl SessionSummary {
    /// Folds a session's events, given in [`Order`] (duplicates removed).
    /// `None` for no events.
    pub fn fold<'a>(events: impl IntoIterator<Item = (&'a Order, Uuid, Option<Uuid>, &'a Beacon)>) -> Option<Self> {
        let mut s = None;
        for (order, video_id, user_id, beacon) in events {
            Self::step(&mut s, order, video_id, user_id, beacon);
        }
        s
    }

    /// One step of [`SessionSummary::fold`]: the summary `s` of the events
    /// so far with the next one.
    pub fn step(s: &mut Option<Self>, order: &Order, video_id: Uuid, user_id: Option<Uuid>, beacon: &Beacon) {
        s.get_or_insert_with(|| Self::begin(order, video_id, user_id))
            .apply(order, user_id, beacon);
    }

    /// A session's summary before its first event, `order`, is applied.
    pub fn begin(order: &Order, video_id: Uuid, user_id: Option<Uuid>) -> Self {
        SessionSummary {
            video_id,
            user_id,
            started_ms: order.occurred_ms,
            last_ms: order.occurred_ms,
            startup_ms: None,
            played_ms: 0,
            max_position_ms: 0,
            last_position_ms: 0,
            rebuffer_ms: 0,
            bitrate_sum_kbps: 0,
            bitrate_samples: 0,
            fatal: false,
            ended: false,
            paused: false,
        }
    }

    /// Applies the session's next event.
    pub fn apply(&mut self, order: &Order, user_id: Option<Uuid>, beacon: &Beacon) {
        if self.user_id.is_none() {
            self.user_id = user_id;
        }
        let e = Effect::of(beacon);
        self.add(order, &e);
        if let Some(ms) = e.startup_ms {
            self.startup_ms.get_or_insert(ms);
        }
        if let Some(p) = e.position_ms {
            self.last_position_ms = p;
        }
        if let Some(p) = e.paused {
            self.paused = p;
        }
    }

    /// Adds what does not depend on where among the session's events
    /// `order` falls: sums, maxima and flags.
    fn add(&mut self, order: &Order, e: &Effect) {
        self.last_ms = self.last_ms.max(order.occurred_ms);
        self.played_ms += e.played_ms;
        if let Some(p) = e.played_to_ms {
            self.max_position_ms = self.max_position_ms.max(p);
        }
        self.rebuffer_ms += e.rebuffer_ms;
        if let Some(b) = e.bitrate_kbps {
            self.bitrate_sum_kbps += b;
            self.bitrate_samples += 1;
        }
        self.fatal |= e.fatal;
        self.ended |= e.ended;
    }

    /// Whether it counts as completed for a video of `duration_ms`.
    pub fn completed(&self, duration_ms: Option<u64>) -> bool {
        duration_ms.is_some_and(|d| d > 0 && self.max_position_ms * 100 >= d * COMPLETION_PCT)
    }

    /// Exited before the video started (EBVS).
    pub fn exited_before_start(&self) -> bool {
        self.ended && self.startup_ms.is_none() && !self.fatal
    }

    /// Whether it counts toward concurrent viewers when it had recent
    /// activity.
    pub fn watching(&self) -> bool {
        !self.paused && !self.ended
    }

    /// The last retention bucket it reached for a video of `duration_ms`.
    pub fn retention_bucket(&self, duration_ms: u64) -> u64 {
        if duration_ms == 0 {
            return RETENTION_BUCKETS - 1;
        }
        (self.max_position_ms.saturating_mul(RETENTION_BUCKETS) / duration_ms).min(RETENTION_BUCKETS - 1)
    }
}

/// What one event does to its session's summary.
#[derive(Default)]
struct Effect {
    /// Startup time, from a first frame: the first one counts.
    startup_ms: Option<u64>,
    /// A position played to, toward the furthest one.
    played_to_ms: Option<u64>,
    /// Where the playhead is after it: the latest one counts.
    position_ms: Option<u64>,
    /// Paused or playing after it: the latest one counts.
    paused: Option<bool>,
    /// Content played.
    played_ms: u64,
    /// Stall time.
    rebuffer_ms: u64,
    /// A bitrate sample.
    bitrate_kbps: Option<u64>,
    /// A fatal error.
    fatal: bool,
    /// The session ended.
    ended: bool,
}

impl Effect {
    fn of(beacon: &Beacon) -> Self {
        let played_to = |p: u64| Effect {
            played_to_ms: Some(p),
            position_ms: Some(p),
            ..Effect::default()
        };
        match *beacon {
            Beacon::Start => Effect {
                paused: Some(false),
                ..Effect::default()
            },
            Beacon::FirstFrame { startup_ms } => Effect {
                startup_ms: Some(startup_ms),
                paused: Some(false),
                ..Effect::default()
            },
            Beacon::Heartbeat {
                position_ms,
                played_ms,
                bitrate_kbps,
            } => Effect {
                played_ms,
                bitrate_kbps,
                // A heartbeat that played nothing says nothing about pause.
                paused: (played_ms > 0).then_some(false),
                ..played_to(position_ms)
            },
            Beacon::Pause { position_ms } => Effect {
                paused: Some(true),
                ..played_to(position_ms)
            },
            Beacon::Seek { to_ms } => Effect {
                position_ms: Some(to_ms),
                ..Effect::default()
            },
            Beacon::RebufferStart { position_ms } => Effect {
                paused: Some(false),
                ..played_to(position_ms)
            },
            Beacon::RebufferEnd { duration_ms } => Effect {
                rebuffer_ms: duration_ms,
                paused: Some(false),
                ..Effect::default()
            },
            Beacon::RenditionChange => Effect::default(),
            Beacon::Error { fatal } => Effect {
                fatal,
                ..Effect::default()
            },
            Beacon::End { position_ms } => Effect {
                ended: true,
                ..played_to(position_ms)
            },
        }
    }
}

/// A playback record as the session fold takes it: its place, the exact
/// stamp it was logged at, video, viewer and beacon.
pub type SessionEvent = (Order, Time, Uuid, Option<Uuid>, Beacon);

/// A session's summary, built from its events in whatever order they
/// arrive: the same as [`SessionSummary::fold`] of them in [`Order`].
///
/// Sums, maxima and flags do not depend on the order. Each field taken
/// from the first or the latest event of a kind keeps the place of the
/// event it came from, and a late event replaces it only if it comes
/// before (or after) that place. So a late event costs one step, like the
/// next one, and the events themselves are not kept: only their places, to
/// tell a duplicate. A record whose event id and time were already counted
/// is a duplicate, even if the rest of it differs; the one logged first
/// counts (by the exact stamp, then by content), so the choice does not
/// depend on how the records' times were coarsened.
#[derive(Default)]
pub struct SessionAccumulator {
    /// The places of the events counted, in order.
    seen: Vec<Order>,
    summary: Option<Arc<SessionSummary>>,
    /// Where the viewer, the startup time, the playhead and the pause
    /// state were taken from.
    user_at: Option<Order>,
    startup_at: Option<Order>,
    position_at: Option<Order>,
    paused_at: Option<Order>,
}

impl Accumulator<SessionEvent> for SessionAccumulator {
    type Total = Arc<SessionSummary>;

    fn add(&mut self, (order, _, video_id, user_id, beacon): &SessionEvent) -> bool {
        let at = match self.seen.last() {
            Some(last) if last >= order => match self.seen.binary_search(order) {
                Ok(_) => return false,
                Err(at) => at,
            },
            _ => self.seen.len(),
        };
        self.seen.insert(at, *order);
        // Copied only while a reader still holds the last one.
        let s = Arc::make_mut(
            self.summary
                .get_or_insert_with(|| Arc::new(SessionSummary::begin(order, *video_id, None))),
        );
        if at == 0 {
            s.video_id = *video_id;
            s.started_ms = order.occurred_ms;
        }
        let e = Effect::of(beacon);
        s.add(order, &e);
        if user_id.is_some() && first(order, &mut self.user_at) {
            s.user_id = *user_id;
        }
        if let Some(ms) = e.startup_ms.filter(|_| first(order, &mut self.startup_at)) {
            s.startup_ms = Some(ms);
        }
        if let Some(p) = e.position_ms.filter(|_| latest(order, &mut self.position_at)) {
            s.last_position_ms = p;
        }
        if let Some(p) = e.paused.filter(|_| latest(order, &mut self.paused_at)) {
            s.paused = p;
        }
        true
    }

    fn total(&self) -> Option<&Arc<SessionSummary>> {
        self.summary.as_ref()
    }
}

/// Whether `order` comes before the place `at` (or there is none), moving
/// `at` to it if so.
fn first(order: &Order, at: &mut Option<Order>) -> bool {
    let earlier = at.is_none_or(|a| *order < a);
    if earlier {
        *at = Some(*order);
    }
    earlier
}

/// Whether `order` comes after the place `at` (or there is none), moving
/// `at` to it if so.
fn latest(order: &Order, at: &mut Option<Order>) -> bool {
    let later = at.is_none_or(|a| *order > a);
    if later {
        *at = Some(*order);
    }
    later
}

/// Sums over a video's sessions; a difference type, so differential adds
/// them up as updates arrive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VideoTotals {
    /// Sessions (views).
    pub sessions: i64,
    /// Watch time.
    pub played_ms: i64,
    /// Completed sessions.
    pub completed: i64,
    /// Sum of startup times.
    pub startup_sum_ms: i64,
    /// Sessions with a first frame.
    pub startups: i64,
    /// Stall time.
    pub rebuffer_ms: i64,
    /// Sessions ended by a fatal error.
    pub fatal: i64,
    /// Exits before video start.
    pub ebvs: i64,
    /// Sum of heartbeat bitrates.
    pub bitrate_sum_kbps: i64,
    /// Heartbeats with a bitrate.
    pub bitrate_samples: i64,
}

impl VideoTotals {
    /// One session's contribution.
    pub fn of(s: &SessionSummary, duration_ms: Option<u64>) -> Self {
        Self {
            sessions: 1,
            played_ms: s.played_ms as i64,
            completed: i64::from(s.completed(duration_ms)),
            startup_sum_ms: s.startup_ms.unwrap_or(0) as i64,
            startups: i64::from(s.startup_ms.is_some()),
            rebuffer_ms: s.rebuffer_ms as i64,
            fatal: i64::from(s.fatal),
            ebvs: i64::from(s.exited_before_start()),
            bitrate_sum_kbps: s.bitrate_sum_kbps as i64,
            bitrate_samples: s.bitrate_samples as i64,
        }
    }

    fn zip(&mut self, o: &Self, f: impl Fn(i64, i64) -> i64) {
        self.sessions = f(self.sessions, o.sessions);
        self.played_ms = f(self.played_ms, o.played_ms);
        self.completed = f(self.completed, o.completed);
        self.startup_sum_ms = f(self.startup_sum_ms, o.startup_sum_ms);
        self.startups = f(self.startups, o.startups);
        self.rebuffer_ms = f(self.rebuffer_ms, o.rebuffer_ms);
        self.fatal = f(self.fatal, o.fatal);
        self.ebvs = f(self.ebvs, o.ebvs);
        self.bitrate_sum_kbps = f(self.bitrate_sum_kbps, o.bitrate_sum_kbps);
        self.bitrate_samples = f(self.bitrate_samples, o.bitrate_samples);
    }

    /// Adds another's sums.
    pub fn add(&mut self, o: &Self) {
        self.zip(o, |a, b| a + b);
    }
}

/// Makes a `Copy + Default` sum type a differential difference.
macro_rules! difference {
    ($t:ty) => {
        impl differential_dataflow::difference::IsZero for $t {
            fn is_zero(&self) -> bool {
                *self == <$t>::default()
            }
        }
        impl differential_dataflow::difference::Semigroup for $t {
            fn plus_equals(&mut self, rhs: &Self) {
                self.add(rhs);
            }
        }
        impl differential_dataflow::difference::Monoid for $t {
            fn zero() -> Self {
                <$t>::default()
            }
        }
        impl differential_dataflow::difference::Abelian for $t {
            fn negate(&mut self) {
                self.scale(-1);
            }
        }
        impl differential_dataflow::difference::Multiply<isize> for $t {
            type Output = $t;
            fn multiply(mut self, rhs: &isize) -> $t {
                self.scale(*rhs as i64);
                self
            }
        }
    };
}

impl VideoTotals {
    fn scale(&mut self, k: i64) {
        let copy = *self;
        self.zip(&copy, |a, _| a * k);
    }
}
difference!(VideoTotals);

/// Everything `video_stats` and `qoe` show of a video: its sums, and what
/// changes only when one of its sessions starts or first shows a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VideoFigures {
    /// Sums over its sessions.
    pub totals: VideoTotals,
    /// Distinct viewers.
    pub unique_viewers: i64,
    /// Producer time of its latest session's start.
    pub last_view_ms: i64,
    /// p95 of its sessions' startup times.
    pub startup_p95_ms: Option<u64>,
}

/// Per-group sums of videos: count, views, watch time and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupTotals {
    /// Videos in the group.
    pub videos: i64,
    /// Views of them.
    pub views: i64,
    /// Watch time of them.
    pub played_ms: i64,
    /// Bytes stored for them.
    pub bytes: i64,
}

impl GroupTotals {
    /// Adds another's sums.
    pub fn add(&mut self, o: &Self) {
        self.videos += o.videos;
        self.views += o.views;
        self.played_ms += o.played_ms;
        self.bytes += o.bytes;
    }
    fn scale(&mut self, k: i64) {
        self.videos *= k;
        self.views *= k;
        self.played_ms *= k;
        self.bytes *= k;
    }
}
difference!(GroupTotals);

/// Where a video is in the pipeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// The source is stored, no transcoder has it yet.
    #[default]
    Upload,
    /// A transcoder took it.
    Queued,
    /// ffprobe is reading it.
    Probing,
    /// ffmpeg is encoding it.
    Transcoding,
    /// Playable.
    Ready,
    /// Given up.
    Failed,
}

impl Stage {
    /// The `status` column: uploaded, queued, processing, ready or failed.
    pub fn status(self) -> &'static str {
        match self {
            Stage::Upload => "uploaded",
            Stage::Queued => "queued",
            Stage::Probing | Stage::Transcoding => "processing",
            Stage::Ready => "ready",
            Stage::Failed => "failed",
        }
    }

    /// The `stage` column.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Upload => "upload",
            Stage::Queued => "queued",
            Stage::Probing => "probing",
            Stage::Transcoding => "transcoding",
            Stage::Ready => "ready",
            Stage::Failed => "failed",
        }
    }
}

/// A video's media state, folded from its upload and processing events.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MediaState {
    /// The pipeline stage.
    pub stage: Stage,
    /// Percent of the transcode done.
    pub progress_pct: F64,
    /// Why it failed.
    pub error: Option<String>,
    /// Renditions once ready.
    pub renditions: Vec<String>,
    /// Duration once ready.
    pub duration_ms: Option<u64>,
    /// Producer time of the latest event.
    pub updated_ms: i64,
    /// Size of the latest source upload.
    pub source_bytes: u64,
    /// Bytes of the renditions of the latest ready.
    pub output_bytes: u64,
}

impl MediaState {
    /// Folds a video's media events, given in [`Order`]. `None` for none.
    pub fn fold<'a>(events: impl IntoIterator<Item = (&'a Order, &'a MediaChange)>) -> Option<Self> {
        let mut state: Option<MediaState> = None;
        for (order, change) in events {
            let s = state.get_or_insert_with(MediaState::default);
            s.updated_ms = order.occurred_ms;
            match change {
                MediaChange::Uploaded { size_bytes } => {
                    *s = MediaState {
                        stage: Stage::Upload,
                        source_bytes: *size_bytes,
                        updated_ms: order.occurred_ms,
                        ..MediaState::default()
                    };
                }
                MediaChange::Queued => (s.stage, s.progress_pct, s.error) = (Stage::Queued, F64(0.0), None),
                MediaChange::Probing => (s.stage, s.progress_pct, s.error) = (Stage::Probing, F64(0.0), None),
                MediaChange::Transcoding { percent } => {
                    (s.stage, s.progress_pct, s.error) = (Stage::Transcoding, *percent, None)
                }
                MediaChange::Ready {
                    renditions,
                    duration_ms,
                    output_bytes,
                } => {
                    (s.stage, s.progress_pct, s.error) = (Stage::Ready, F64(100.0), None);
                    s.renditions = renditions.clone();
                    s.duration_ms = Some(*duration_ms);
                    s.output_bytes = *output_bytes;
                }
                MediaChange::Failed { reason } => {
                    (s.stage, s.error) = (Stage::Failed, Some(reason.clone()));
                }
            }
        }
        state
    }
}

/// Nearest-rank percentile `p` (0–100) of values given ascending with their
/// multiplicities.
pub fn percentile(sorted: &[(u64, i64)], p: u64) -> Option<u64> {
    let n: i64 = sorted.iter().map(|(_, c)| *c).sum();
    if n <= 0 {
        return None;
    }
    let rank = ((n * p as i64 + 99) / 100).max(1);
    let mut seen = 0;
    for (v, c) in sorted {
        seen += c;
        if seen >= rank {
            return Some(*v);
        }
    }
    sorted.last().map(|(v, _)| *v)
}

fn pct(part: i64, whole: i64) -> Datum {
    if whole == 0 {
        Datum::Null
    } else {
        Datum::float(part as f64 * 100.0 / whole as f64)
    }
}

/// The rows of each view, made the same way by the dataflows and the
/// reference, so both are compared value for value.
pub mod rows {
    use super::*;

    /// `video_status`.
    pub fn video_status(video_id: Uuid, s: &MediaState) -> (Row, Row) {
        (
            vec![Datum::Uuid(video_id)],
            vec![
                Datum::text(s.stage.status()),
                Datum::Float(s.progress_pct),
                Datum::text(s.stage.name()),
                Datum::opt(s.error.clone(), Datum::Text),
                Datum::List(s.renditions.clone()),
                Datum::opt(s.duration_ms, |d| Datum::float(d as f64 / 1000.0)),
                Datum::Timestamp(s.updated_ms),
            ],
        )
    }

    /// `video_stats`.
    pub fn video_stats(video_id: Uuid, t: &VideoTotals, unique_viewers: i64, last_view_ms: i64) -> (Row, Row) {
        let watch_s = t.played_ms as f64 / 1000.0;
        (
            vec![Datum::Uuid(video_id)],
            vec![
                Datum::Int(t.sessions),
                Datum::Int(unique_viewers),
                Datum::float(watch_s),
                if t.sessions == 0 {
                    Datum::Null
                } else {
                    Datum::float(watch_s / t.sessions as f64)
                },
                if t.sessions == 0 {
                    Datum::Null
                } else {
                    Datum::float(t.completed as f64 / t.sessions as f64)
                },
                Datum::Timestamp(last_view_ms),
            ],
        )
    }

    /// `qoe`.
    pub fn qoe(video_id: Uuid, t: &VideoTotals, startup_p95_ms: Option<u64>) -> (Row, Row) {
        (
            vec![Datum::Uuid(video_id)],
            vec![
                Datum::Int(t.sessions),
                if t.startups == 0 {
                    Datum::Null
                } else {
                    Datum::float(t.startup_sum_ms as f64 / t.startups as f64)
                },
                Datum::opt(startup_p95_ms, |v| Datum::Int(v as i64)),
                pct(t.rebuffer_ms, t.played_ms),
                pct(t.fatal, t.sessions),
                pct(t.ebvs, t.sessions),
                if t.bitrate_samples == 0 {
                    Datum::Null
                } else {
                    Datum::float(t.bitrate_sum_kbps as f64 / t.bitrate_samples as f64)
                },
            ],
        )
    }

    /// `concurrent_viewers`.
    pub fn concurrent_viewers(video_id: Uuid, viewers: i64) -> (Row, Row) {
        (vec![Datum::Uuid(video_id)], vec![Datum::Int(viewers)])
    }

    /// `trending`.
    pub fn trending(window: &str, rank: i64, video_id: Uuid, views: i64) -> (Row, Row) {
        (
            vec![Datum::text(window), Datum::Int(rank)],
            vec![Datum::Uuid(video_id), Datum::Int(views)],
        )
    }

    /// `retention`: `reached` sessions of `sessions` reached `bucket`.
    pub fn retention(video_id: Uuid, bucket: u64, reached: i64, sessions: i64) -> (Row, Row) {
        (
            vec![Datum::Uuid(video_id), Datum::Int(bucket as i64)],
            vec![pct(reached, sessions)],
        )
    }

    /// `watch_history`.
    pub fn watch_history(
        user_id: Uuid,
        video_id: Uuid,
        last_position_ms: u64,
        played_ms: u64,
        completed: bool,
        last_watched_ms: i64,
    ) -> (Row, Row) {
        (
            vec![Datum::Uuid(user_id), Datum::Uuid(video_id)],
            vec![
                Datum::float(last_position_ms as f64 / 1000.0),
                Datum::float(played_ms as f64 / 1000.0),
                Datum::Bool(completed),
                Datum::Timestamp(last_watched_ms),
            ],
        )
    }

    /// `genre_stats`.
    pub fn genre_stats(genre: &str, t: &GroupTotals) -> (Row, Row) {
        (
            vec![Datum::text(genre)],
            vec![
                Datum::Int(t.videos),
                Datum::Int(t.views),
                Datum::float(t.played_ms as f64 / 1000.0),
            ],
        )
    }

    /// `storage_usage`.
    pub fn storage_usage(user_id: Uuid, t: &GroupTotals) -> (Row, Row) {
        (
            vec![Datum::Uuid(user_id)],
            vec![Datum::Int(t.videos), Datum::Int(t.bytes)],
        )
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{RngExt, SeedableRng};

    use super::*;

    /// A seeded session's events, a few sharing a producer time, in
    /// [`Order`], each with its video and viewer: sometimes another video
    /// or no viewer, so the first event and the first viewer matter.
    fn session(seed: u64) -> Vec<(Order, Uuid, Option<Uuid>, Beacon)> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut events: Vec<(Order, Uuid, Option<Uuid>, Beacon)> = (0..rng.random_range(1..30))
            .map(|_| {
                let order = Order {
                    occurred_ms: rng.random_range(0..20),
                    event_id: Uuid::from_u128(rng.random()),
                };
                let p = rng.random_range(0..100_000);
                let beacon = match rng.random_range(0..10) {
                    0 => Beacon::Start,
                    1 => Beacon::FirstFrame { startup_ms: p },
                    2 => Beacon::Heartbeat {
                        position_ms: p,
                        played_ms: rng.random_range(0..2) * p / 10,
                        bitrate_kbps: rng.random_bool(0.5).then_some(p / 20),
                    },
                    3 => Beacon::Pause { position_ms: p },
                    4 => Beacon::Seek { to_ms: p },
                    5 => Beacon::RebufferStart { position_ms: p },
                    6 => Beacon::RebufferEnd { duration_ms: p / 50 },
                    7 => Beacon::RenditionChange,
                    8 => Beacon::Error { fatal: rng.random() },
                    _ => Beacon::End { position_ms: p },
                };
                let video = Uuid::from_u128(rng.random_range(0..2));
                let user = rng.random_bool(0.5).then(|| Uuid::from_u128(rng.random_range(0..3)));
                (order, video, user, beacon)
            })
            .collect();
        events.sort();
        events
    }

    #[test]
    fn a_session_accumulated_in_any_order_is_its_fold_in_order() {
        for seed in 0..500 {
            let events = session(seed);
            let folded = SessionSummary::fold(events.iter().map(|(o, v, u, b)| (o, *v, *u, b)));
            let mut rng = StdRng::seed_from_u64(seed);
            for _ in 0..4 {
                // Shuffled, some twice, the second time maybe with another
                // beacon: the first record of a place counts.
                let mut arrivals: Vec<SessionEvent> =
                    events.iter().map(|(o, v, u, b)| (*o, 0, *v, *u, b.clone())).collect();
                for i in 0..events.len() {
                    if rng.random_bool(0.2) {
                        let (o, _, v, u, _) = arrivals[i].clone();
                        arrivals.push((o, 1, v, u, Beacon::Pause { position_ms: 1 }));
                    }
                }
                arrivals[..events.len()].shuffle(&mut rng);
                let mut acc = SessionAccumulator::default();
                let mut counted = 0;
                for event in &arrivals {
                    if acc.add(event) {
                        counted += 1;
                    }
                }
                assert_eq!(counted, events.len(), "seed {seed}");
                assert_eq!(acc.total().map(|s| s.as_ref()), folded.as_ref(), "seed {seed}");
            }
        }
    }

    #[test]
    fn nearest_rank_percentile() {
        let v: Vec<(u64, i64)> = (1..=20).map(|x| (x, 1)).collect();
        assert_eq!(percentile(&v, 95), Some(19));
        assert_eq!(percentile(&v, 100), Some(20));
        assert_eq!(percentile(&[(7, 3)], 95), Some(7));
        assert_eq!(percentile(&[], 95), None);
        assert_eq!(percentile(&[(1, 1), (100, 1)], 50), Some(1));
    }
}
