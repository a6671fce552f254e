//! The rows of each view, made the same way by the dataflows and the
//! reference, so both are compared value for value.

use uuid::Uuid;

use super::video::pct;
use super::{GroupSums, MediaState, VideoSums};
use crate::datum::{Datum, Row};

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
pub fn video_stats(video_id: Uuid, t: &VideoSums, unique_viewers: i64, last_view_ms: i64) -> (Row, Row) {
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
pub fn qoe(video_id: Uuid, t: &VideoSums, startup_p95_ms: Option<u64>) -> (Row, Row) {
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
pub fn genre_stats(genre: &str, t: &GroupSums) -> (Row, Row) {
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
pub fn storage_usage(user_id: Uuid, t: &GroupSums) -> (Row, Row) {
    (
        vec![Datum::Uuid(user_id)],
        vec![Datum::Int(t.videos), Datum::Int(t.bytes)],
    )
}
