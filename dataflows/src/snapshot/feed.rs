//! A snapshot fed into the views' dataflow at a start.
//!
//! Every worker feeds an equal share of each part, whatever the number of
//! workers that wrote it: the operators' exchanges take each key to the
//! worker that keeps it, as they do the log's records. Facts go in at
//! their own times, so the sessions they open close when a replay would
//! close them; what closed sessions amount to goes in at time 0.

use differential_dataflow::AsCollection;
use timely::dataflow::Scope;
use timely::dataflow::operators::ToStream;

use super::Snapshot;
use crate::facts::{CatalogFact, MediaFact, PlaybackFact};
use crate::operators::Phase;
use crate::time::{Coll, Time};
use crate::views::Seeds;

/// The facts a snapshot holds, as collections.
pub struct Facts<'s> {
    /// Latest catalog changes.
    pub catalog: Coll<'s, CatalogFact>,
    /// Media events.
    pub media: Coll<'s, MediaFact>,
    /// Records of open sessions.
    pub playback: Coll<'s, PlaybackFact>,
}

/// This worker's share of `snapshot` (none without one), as the views'
/// [`Seeds`] and [`Facts`].
pub fn feed<'s>(scope: Scope<'s, Time>, snapshot: Option<&Snapshot>) -> (Seeds<'s>, Facts<'s>) {
    let (index, peers) = (scope.index(), scope.peers());
    let empty = Snapshot::default();
    let s = snapshot.unwrap_or(&empty);
    let mine = move |i: &usize| i % peers == index;
    // `items` of this worker, each as `(data, time, diff)`.
    macro_rules! share {
        ($items:expr, $f:expr) => {
            $items
                .iter()
                .enumerate()
                .filter(|(i, _)| mine(i))
                .map(|(_, x)| $f(x))
                .collect::<Vec<_>>()
                .to_stream(scope)
                .as_collection()
        };
    }
    let c = &s.closed;
    let seeds = Seeds {
        totals: share!(c.totals, |(v, sums): &(_, _)| (*v, 0, *sums)),
        viewers: share!(c.viewers, |(k, n): &(_, i64)| (*k, 0, *n as isize)),
        anonymous: share!(c.anonymous, |(v, n): &(_, i64)| (*v, 0, *n as isize)),
        startups: share!(c.startups, |(k, n): &(_, i64)| (*k, 0, *n as isize)),
        retention: share!(c.retention, |(k, n): &(_, i64)| (*k, 0, *n as isize)),
        last_view: share!(c.last_view, |(k, ms): &(_, i64)| ((*k, (Phase::Closed, *ms)), 0, 1)),
        history: share!(c.history, |(k, h): &(_, crate::definitions::History)| {
            let (last_ms, sid) = h.latest.unwrap_or_default();
            let one = (last_ms, sid, h.last_position_ms, h.played_ms, h.completed);
            ((*k, (Phase::Closed, one)), 0, 1)
        }),
        starts: share!(c.starts, |(t, k): &(Time, _)| ((*k, *t), *t, 1)),
    };
    let facts = Facts {
        catalog: share!(s.catalog, |(t, f): &(Time, CatalogFact)| (f.clone(), *t, 1)),
        media: share!(s.media, |(t, f): &(Time, MediaFact)| (f.clone(), *t, 1)),
        playback: share!(s.playback, |(t, f): &(Time, PlaybackFact)| (f.clone(), *t, 1)),
    };
    (seeds, facts)
}
