//! How each view's arrangement is read as rows: its [`Shape`], and which
//! worker holds a key ([`route`]).
//!
//! Views that change seldom are arranged as their rows ([`ROWS`]); the
//! ones that change with every heartbeat are arranged in the dataflow's
//! own types (a video's figures, a retention bucket's sessions, a viewer's
//! history of a video), and their shapes make rows only when they are
//! read. Keys are ordered as their rows are, so a key lookup seeks and a
//! range seeks its lower bound and scans in order.

use differential_dataflow::Hashable;
use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::trace::implementations::ValSpine;
use uuid::Uuid;

use super::retention::retention_key;
use crate::datum::{Datum, Row};
use crate::definitions::{VideoFigures, rows};
use crate::schema::View;
use crate::time::Time;

/// An arrangement of a view's keys and values.
pub(crate) type ViewTrace<K, V> = TraceAgent<ValSpine<K, V, Time, isize>>;

/// How a view reads its arrangement's keys and values as rows.
pub(crate) struct Shape<K, V> {
    /// The key a key row names; `None` if no key has that row.
    pub key: fn(&Row) -> Option<K>,
    /// A key at or before the first key whose row is at or after `row`
    /// (a range's lower bound, often a prefix of a key's row); `None` to
    /// start from the first key.
    pub seek: fn(&Row) -> Option<K>,
    /// A key's row. Keys must be ordered as their rows are.
    pub key_row: fn(&K) -> Row,
    /// A value's row.
    pub val_row: fn(&K, &V) -> Row,
}

impl<K, V> Clone for Shape<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Shape<K, V> {}

/// Views arranged as their rows.
pub(crate) const ROWS: Shape<Row, Row> = Shape {
    key: |row| Some(row.clone()),
    seek: |row| Some(row.clone()),
    key_row: Row::clone,
    val_row: |_, v| v.clone(),
};

/// What `watch_history` shows of a viewer and a video: the last position,
/// the time played, whether any session completed it, the last time.
pub type Watched = (u64, u64, bool, i64);

/// The key of a view keyed by a video's id.
fn video_key(row: &Row) -> Option<Uuid> {
    match row.as_slice() {
        [Datum::Uuid(v)] => Some(*v),
        _ => None,
    }
}

/// Where to start looking for the keys of a view keyed by a video's id
/// from `row` on.
fn video_seek(row: &Row) -> Option<Uuid> {
    match row.as_slice() {
        [Datum::Uuid(v), ..] => Some(*v),
        _ => None,
    }
}

/// The key row of a view keyed by a video's id.
fn video_key_row(video: &Uuid) -> Row {
    vec![Datum::Uuid(*video)]
}

/// `video_stats`, read from the videos' figures.
pub(crate) const VIDEO_STATS: Shape<Uuid, VideoFigures> = Shape {
    key: video_key,
    seek: video_seek,
    key_row: video_key_row,
    val_row: |v, f| rows::video_stats(*v, &f.totals, f.unique_viewers, f.last_view_ms).1,
};

/// `qoe`, read from the videos' figures.
pub(crate) const QOE: Shape<Uuid, VideoFigures> = Shape {
    key: video_key,
    seek: video_seek,
    key_row: video_key_row,
    val_row: |v, f| rows::qoe(*v, &f.totals, f.startup_p95_ms).1,
};

/// `retention`'s stored rows ([`super::retention`]): sessions per video and
/// bucket.
pub(crate) const RETENTION: Shape<(Uuid, u64), i64> = Shape {
    key: |row| match row.as_slice() {
        [Datum::Uuid(v), Datum::Int(b)] => u64::try_from(*b).ok().map(|b| (*v, b)),
        _ => None,
    },
    // A video's buckets are read by its id alone.
    seek: |row| match row.as_slice() {
        [Datum::Uuid(v), Datum::Int(b), ..] => Some((*v, u64::try_from(*b).unwrap_or(0))),
        [Datum::Uuid(v), ..] => Some((*v, 0)),
        _ => None,
    },
    key_row: |(v, b)| retention_key(*v, *b),
    val_row: |_, sessions| vec![Datum::Int(*sessions)],
};

/// `watch_history`, keyed by viewer and video.
pub(crate) const WATCH_HISTORY: Shape<(Uuid, Uuid), Watched> = Shape {
    key: |row| match row.as_slice() {
        [Datum::Uuid(u), Datum::Uuid(v)] => Some((*u, *v)),
        _ => None,
    },
    // A viewer's history is read by their id alone.
    seek: |row| match row.as_slice() {
        [Datum::Uuid(u), Datum::Uuid(v), ..] => Some((*u, *v)),
        [Datum::Uuid(u), ..] => Some((*u, Uuid::nil())),
        _ => None,
    },
    key_row: |(u, v)| vec![Datum::Uuid(*u), Datum::Uuid(*v)],
    val_row: |(u, v), (pos, played, completed, last)| rows::watch_history(*u, *v, *pos, *played, *completed, *last).1,
};

/// The worker that holds the rows of `view` with `key`: what its
/// arrangement is keyed by, hashed as the arrangement routes its updates.
pub(crate) fn route(view: View, key: &Row) -> u64 {
    let typed = match view {
        View::VideoStats | View::Qoe => video_key(key).map(|v| v.hashed()),
        View::Retention => (RETENTION.key)(key).map(|k| k.hashed()),
        View::WatchHistory => (WATCH_HISTORY.key)(key).map(|k| k.hashed()),
        _ => None,
    };
    typed.unwrap_or_else(|| key.hashed())
}
