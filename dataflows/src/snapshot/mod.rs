//! Snapshots: the views' state at one time, so a start reads the log only
//! after it.
//!
//! # What a snapshot holds
//!
//! A snapshot covers every record of the log stamped before its
//! `frontier` (per partition: the offset to read next, the last stamp and
//! the malformed count, [`PartitionMark`]), in the smallest form the views
//! can be rebuilt from exactly:
//!
//! - **facts still needed as facts**: each video's latest catalog entry,
//!   each video's media events, and every record of the playback sessions
//!   still open, each at its own time;
//! - **what the closed sessions amount to** ([`Closed`]): per video its
//!   sums, anonymous sessions, startup histogram, retention buckets and
//!   latest start; per video and signed-in viewer a session count; per
//!   viewer and video its history; and the starts still inside a trending
//!   window. These grow with videos and viewers, never with events.
//!
//! A start from a snapshot feeds all of it into the same dataflow, where
//! the readers of closed sessions take it (the exchanges re-shard it for
//! any number of workers and processes), and reads the log from the marks
//! on. From `frontier` on, every view equals a full replay of the log.
//!
//! # Why a fold of the log, not a dump of the operators
//!
//! A snapshot is made by [`Compactor`]: the definitions' own folds,
//! applied to the log in time order, outside the dataflow. So writing one
//! never pauses the dataflow, needs no agreement between workers on a
//! time, and is consistent by construction: it is the log up to exact
//! offsets, folded. It also needs no running dataflow at all
//! (`reelflow dataflow snapshot`). The price is a second pass over the
//! log's records, at a fraction of the dataflow's cost per record (a fold
//! of plain maps, no differential updates).

mod compact;
mod feed;
mod store;
mod write;

pub use compact::Compactor;
pub(crate) use feed::feed;
pub use store::{FORMAT_VERSION, FoldedWith, Manifest, PartFile, SnapshotError, SnapshotStore};
pub use write::{Writer, Written};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::definitions::{History, VideoSums};
use crate::facts::{CatalogFact, MediaFact, PlaybackFact};
use crate::time::Time;

/// Where a snapshot left one partition of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMark {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The first offset not covered: where a start reads from.
    pub offset: u64,
    /// The least stamp the next record can get: the frontier (the last
    /// record covered is before it).
    pub last: Time,
    /// Records covered that did not decode.
    pub malformed: u64,
    /// The first offset stamped in each hour of log time (the hour's
    /// start, ms), for the last [`HOURS_KEPT`] hours: what the log's
    /// retention needs to find records older than it.
    pub hours: Vec<(Time, u64)>,
}

/// Hours of log time a [`PartitionMark`] indexes: over a year.
pub const HOURS_KEPT: usize = 24 * 400;

/// An hour of log time, in ms.
const HOUR_MS: Time = 3_600_000;

impl PartitionMark {
    /// An offset below which every record is stamped before `time`: the
    /// mark itself if `time` is past everything covered, else the first
    /// offset of the latest hour that starts at or before it (0 if none
    /// does).
    pub fn offset_before(&self, time: Time) -> u64 {
        if self.last <= time {
            return self.offset;
        }
        self.hours
            .iter()
            .take_while(|(hour, _)| *hour <= time)
            .last()
            .map_or(0, |(_, offset)| *offset)
    }

    /// Notes a record at `offset` stamped `ts`.
    fn index(&mut self, offset: u64, ts: Time) {
        let hour = ts - ts % HOUR_MS;
        if self.hours.last().is_none_or(|(h, _)| *h < hour) {
            self.hours.push((hour, offset));
            if self.hours.len() > HOURS_KEPT {
                self.hours.remove(0);
            }
        }
    }
}

/// What the sessions closed before a snapshot's frontier amount to, per
/// key, as the views' readers fold them (`crate::views`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    /// Per video, its closed sessions' sums.
    pub totals: Vec<(Uuid, VideoSums)>,
    /// Per video and signed-in viewer, how many closed sessions.
    pub viewers: Vec<((Uuid, Uuid), i64)>,
    /// Per video, how many anonymous closed sessions.
    pub anonymous: Vec<(Uuid, i64)>,
    /// Per video and startup bucket (`None`: no first frame), how many.
    pub startups: Vec<((Uuid, Option<u64>), i64)>,
    /// Per video and retention bucket, how many.
    pub retention: Vec<((Uuid, u64), i64)>,
    /// Per video and spread of session ids, the latest start.
    pub last_view: Vec<((Uuid, u8), i64)>,
    /// Per signed-in viewer and video, their closed sessions' history.
    pub history: Vec<((Uuid, Uuid), History)>,
    /// Session starts still inside the longest trending window: their
    /// exact stamp, video and session.
    pub starts: Vec<(Time, (Uuid, Uuid))>,
}

/// The views' state covering the log before `frontier`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Every record stamped before it is covered, and every session whose
    /// deadline is at or before it is closed.
    pub frontier: Time,
    /// The tick the stamps were rounded to.
    pub tick: Time,
    /// Where each partition was left.
    pub partitions: Vec<PartitionMark>,
    /// Each video's latest catalog change, at its time.
    pub catalog: Vec<(Time, CatalogFact)>,
    /// Every media event, at its time.
    pub media: Vec<(Time, MediaFact)>,
    /// Every record of the sessions open at the frontier, at its time.
    pub playback: Vec<(Time, PlaybackFact)>,
    /// What the closed sessions amount to.
    pub closed: Closed,
}

impl Snapshot {
    /// The mark of `topic`'s `partition`, if the snapshot covers it.
    pub fn mark(&self, topic: &str, partition: u32) -> Option<&PartitionMark> {
        self.partitions
            .iter()
            .find(|m| m.topic == topic && m.partition == partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(hours: Vec<(Time, u64)>) -> PartitionMark {
        PartitionMark {
            topic: "t".into(),
            partition: 0,
            offset: 500,
            last: 10 * HOUR_MS,
            malformed: 0,
            hours,
        }
    }

    #[test]
    fn offset_before_names_only_records_stamped_before_the_time() {
        let mut m = mark(Vec::new());
        for (offset, ts) in [
            (0, HOUR_MS + 5),
            (3, HOUR_MS + 9),
            (100, 2 * HOUR_MS + 1),
            (400, 5 * HOUR_MS),
        ] {
            m.index(offset, ts);
        }
        assert_eq!(m.hours, vec![(HOUR_MS, 0), (2 * HOUR_MS, 100), (5 * HOUR_MS, 400)]);
        assert_eq!(m.offset_before(HOUR_MS - 1), 0, "nothing known before the first hour");
        assert_eq!(m.offset_before(2 * HOUR_MS - 1), 0, "the first hour is not over");
        assert_eq!(m.offset_before(2 * HOUR_MS), 100);
        assert_eq!(m.offset_before(4 * HOUR_MS), 100);
        assert_eq!(m.offset_before(5 * HOUR_MS + 7), 400);
        assert_eq!(m.offset_before(10 * HOUR_MS), 500, "past everything covered: all of it");
    }

    #[test]
    fn the_hours_kept_are_bounded() {
        let mut m = mark(Vec::new());
        for h in 0..(HOURS_KEPT as u64 + 10) {
            m.index(h, h * HOUR_MS);
        }
        assert_eq!(m.hours.len(), HOURS_KEPT);
        assert_eq!(m.hours[0], (10 * HOUR_MS, 10));
    }
}
