//! A viewer's history of a video (`watch_history`), folded from the
//! viewer's sessions of it in any order.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::session::SessionSummary;
use crate::operators::Accumulator;

/// What `watch_history` takes of one session: its latest producer time,
/// its id, its last position, its watch time and whether it completed.
pub type WatchedSession = (i64, Uuid, u64, u64, bool);

impl SessionSummary {
    /// What `watch_history` takes of this session, `sid`, for a video of
    /// `duration_ms`.
    pub fn watched(&self, sid: Uuid, duration_ms: Option<u64>) -> WatchedSession {
        (
            self.last_ms,
            sid,
            self.last_position_ms,
            self.played_ms,
            self.completed(duration_ms),
        )
    }
}

/// A viewer's sessions of a video, added up: the last position of the
/// latest session (by latest producer time, then id), the watch time of
/// all, and whether any completed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct History {
    /// The latest session's latest producer time and id.
    pub latest: Option<(i64, Uuid)>,
    /// Where the latest session's playhead was last.
    pub last_position_ms: u64,
    /// Content played, over all sessions.
    pub played_ms: u64,
    /// Whether any session completed.
    pub completed: bool,
}

impl History {
    /// Adds a session; the result does not depend on the order.
    pub fn add(&mut self, &(last_ms, sid, position_ms, played_ms, completed): &WatchedSession) {
        if self.latest.is_none_or(|latest| (last_ms, sid) > latest) {
            self.latest = Some((last_ms, sid));
            self.last_position_ms = position_ms;
        }
        self.played_ms += played_ms;
        self.completed |= completed;
    }

    /// The latest session's latest producer time (0 without sessions).
    pub fn last_ms(&self) -> i64 {
        self.latest.map_or(0, |(ms, _)| ms)
    }
}

/// The sessions of a viewer and a video that have closed, added up.
#[derive(Default)]
pub struct HistoryFold(Option<History>);

impl Accumulator<WatchedSession> for HistoryFold {
    type Total = History;

    fn add(&mut self, session: &WatchedSession) -> bool {
        self.0.get_or_insert_default().add(session);
        true
    }

    fn total(&self) -> Option<&History> {
        self.0.as_ref()
    }
}
