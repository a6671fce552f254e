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
