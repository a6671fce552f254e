//! A playback session, folded from its events: in order by the reference,
//! in whatever order they arrive by the dataflows ([`SessionAccumulator`]),
//! to the same summary.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{COMPLETION_PCT, RETENTION_BUCKETS};
use crate::facts::{Beacon, Order};
use crate::operators::Accumulator;
use crate::time::Time;

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
    /// activity: not paused, not ended, not stopped by a fatal error (the
    /// player sends no `end` after one).
    pub fn watching(&self) -> bool {
        !self.paused && !self.ended && !self.fatal
    }

    /// How long after its latest record it closes, in log time: `grace`
    /// once it has ended or failed (time for the records sent just before
    /// that to arrive), `idle` otherwise.
    pub fn linger(&self, idle: Time, grace: Time) -> Time {
        if self.ended || self.fatal { grace } else { idle }
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
}
