//! The views' names and columns: the contract the SQL layer and its users
//! rely on (see the architecture brief). A view's rows are its key columns
//! followed by its value columns, in the order listed here.

use serde::Serialize;

use crate::datum::ColumnType::{self, Bool, Float, Int, Text, TextList, Timestamp, Uuid};

/// One column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Column {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// Whether it may be NULL.
    pub nullable: bool,
}

const fn col(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        nullable: false,
    }
}

const fn null(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        nullable: true,
    }
}

/// One live view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ViewDef {
    /// Its SQL name.
    pub name: &'static str,
    /// What it holds.
    pub doc: &'static str,
    /// Key columns: a row's identity.
    pub key: &'static [Column],
    /// The other columns.
    pub value: &'static [Column],
}

impl ViewDef {
    /// Key columns then value columns.
    pub fn columns(&self) -> impl Iterator<Item = &Column> {
        self.key.iter().chain(self.value)
    }
}

/// Index of each view in [`VIEWS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[allow(missing_docs)]
pub enum View {
    VideoStatus,
    VideoStats,
    ConcurrentViewers,
    Trending,
    Qoe,
    Retention,
    WatchHistory,
    GenreStats,
    StorageUsage,
    SourceProgress,
}

impl View {
    /// Every view, in [`VIEWS`] order.
    pub const ALL: [View; 10] = [
        View::VideoStatus,
        View::VideoStats,
        View::ConcurrentViewers,
        View::Trending,
        View::Qoe,
        View::Retention,
        View::WatchHistory,
        View::GenreStats,
        View::StorageUsage,
        View::SourceProgress,
    ];

    /// Its definition.
    pub fn def(self) -> &'static ViewDef {
        &VIEWS[self as usize]
    }

    /// The view called `name`.
    pub fn named(name: &str) -> Option<View> {
        View::ALL.into_iter().find(|v| v.def().name == name)
    }
}

/// Every view, in [`View`] order.
pub static VIEWS: [ViewDef; 10] = [
    ViewDef {
        name: "video_status",
        doc: "Where each video is in the processing pipeline.",
        key: &[col("video_id", Uuid)],
        value: &[
            col("status", Text),
            col("progress_pct", Float),
            col("stage", Text),
            null("error", Text),
            col("renditions", TextList),
            null("duration_s", Float),
            col("updated_at", Timestamp),
        ],
    },
    ViewDef {
        name: "video_stats",
        doc: "Views, viewers and watch time of each video.",
        key: &[col("video_id", Uuid)],
        value: &[
            col("views", Int),
            col("unique_viewers", Int),
            col("watch_time_s", Float),
            null("avg_watch_time_s", Float),
            null("completion_rate", Float),
            col("last_view_at", Timestamp),
        ],
    },
    ViewDef {
        name: "concurrent_viewers",
        doc: "Sessions of each video active in the last 60 s, not paused.",
        key: &[col("video_id", Uuid)],
        value: &[col("viewers", Int)],
    },
    ViewDef {
        name: "trending",
        doc: "The most viewed videos of the last hour and day.",
        key: &[col("window", Text), col("rank", Int)],
        value: &[col("video_id", Uuid), col("views", Int)],
    },
    ViewDef {
        name: "qoe",
        doc: "Quality of experience of each video's sessions.",
        key: &[col("video_id", Uuid)],
        value: &[
            col("sessions", Int),
            null("startup_ms_avg", Float),
            null("startup_ms_p95", Int),
            null("rebuffer_pct", Float),
            null("failure_pct", Float),
            null("ebvs_pct", Float),
            null("avg_bitrate_kbps", Float),
        ],
    },
    ViewDef {
        name: "retention",
        doc: "Share of sessions still watching at each percent of the video.",
        key: &[col("video_id", Uuid), col("bucket", Int)],
        value: &[null("viewers_pct", Float)],
    },
    ViewDef {
        name: "watch_history",
        doc: "What each signed-in user watched, and how far.",
        key: &[col("user_id", Uuid), col("video_id", Uuid)],
        value: &[
            col("last_position_s", Float),
            col("watched_s", Float),
            col("completed", Bool),
            col("last_watched_at", Timestamp),
        ],
    },
    ViewDef {
        name: "genre_stats",
        doc: "Videos, views and watch time per genre of the catalog.",
        key: &[col("genre", Text)],
        value: &[col("videos", Int), col("views", Int), col("watch_time_s", Float)],
    },
    ViewDef {
        name: "storage_usage",
        doc: "Videos and bytes stored per owner.",
        key: &[col("user_id", Uuid)],
        value: &[col("videos", Int), col("bytes", Int)],
    },
    ViewDef {
        name: "source_progress",
        doc: "How far the dataflows have read each log partition.",
        key: &[col("topic", Text), col("partition", Int)],
        value: &[
            col("offset", Int),
            col("high_watermark", Int),
            col("lag", Int),
            col("ts", Timestamp),
            col("malformed", Int),
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_listed_in_enum_order() {
        for v in View::ALL {
            assert_eq!(View::named(v.def().name), Some(v));
        }
    }
}
