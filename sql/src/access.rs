//! Who may read which rows. Authorization is applied inside the table
//! providers, on the rows a peek returns, so no query — joins, subqueries,
//! aggregates — can see a row its caller may not.
//!
//! - **Admins** read every row of every view.
//! - **Creators** read the rows of their own videos in the per-video views
//!   (`video_status`, `video_stats`, `concurrent_viewers`, `trending`,
//!   `qoe`, `retention`), and their own rows of the per-user views
//!   (`watch_history`, `storage_usage`).
//! - **Viewers** read only their own rows of the per-user views.
//! - Platform-wide views (`genre_stats`, `source_progress`) are for admins.
//!
//! A view a caller may not read at all is empty for them, as a table under
//! row-level security is.

use std::collections::HashSet;
use std::sync::Arc;

use reelflow_dataflows::{Datum, Row, View};
use uuid::Uuid;

/// The caller of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Reads everything.
    Admin,
    /// A creator, with the videos they own.
    Creator {
        /// Their account.
        user_id: Uuid,
        /// The videos they own.
        videos: Arc<HashSet<Uuid>>,
    },
    /// A viewer.
    Viewer {
        /// Their account.
        user_id: Uuid,
    },
}

/// What a view's rows belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// A video, named by the column at this index of the row.
    Video(usize),
    /// A user, named by the column at this index of the row.
    User(usize),
    /// The whole platform.
    Platform,
}

fn scope(view: View) -> Scope {
    let def = view.def();
    let index = |name: &str| {
        def.columns()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("view {} has no column {name}", def.name))
    };
    match view {
        View::WatchHistory | View::StorageUsage => Scope::User(index("user_id")),
        View::GenreStats | View::SourceProgress => Scope::Platform,
        View::VideoStatus
        | View::VideoStats
        | View::ConcurrentViewers
        | View::Trending
        | View::Qoe
        | View::Retention => Scope::Video(index("video_id")),
    }
}

fn uuid_at(key: &Row, value: &Row, index: usize) -> Option<Uuid> {
    let datum = if index < key.len() {
        key.get(index)
    } else {
        value.get(index - key.len())
    };
    match datum {
        Some(Datum::Uuid(u)) => Some(*u),
        _ => None,
    }
}

impl Principal {
    /// Whether this caller may read the row `(key, value)` of `view`.
    pub fn may_read(&self, view: View, key: &Row, value: &Row) -> bool {
        match (self, scope(view)) {
            (Principal::Admin, _) => true,
            (_, Scope::Platform) => false,
            (Principal::Creator { videos, .. }, Scope::Video(i)) => {
                uuid_at(key, value, i).is_some_and(|v| videos.contains(&v))
            }
            (Principal::Viewer { .. }, Scope::Video(_)) => false,
            (Principal::Creator { user_id, .. } | Principal::Viewer { user_id }, Scope::User(i)) => {
                uuid_at(key, value, i) == Some(*user_id)
            }
        }
    }

    /// Whether this caller can read nothing of `view` (so it need not be
    /// read at all).
    pub fn sees_nothing_of(&self, view: View) -> bool {
        match (self, scope(view)) {
            (Principal::Admin, _) => false,
            (_, Scope::Platform) | (Principal::Viewer { .. }, Scope::Video(_)) => true,
            (Principal::Creator { videos, .. }, Scope::Video(_)) => videos.is_empty(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_has_a_scope_and_rows_follow_it() {
        for view in View::ALL {
            let _ = scope(view);
        }
        let (me, other, mine, theirs) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let creator = Principal::Creator {
            user_id: me,
            videos: Arc::new([mine].into_iter().collect()),
        };
        let viewer = Principal::Viewer { user_id: me };
        let stats = |v: Uuid| (vec![Datum::Uuid(v)], vec![Datum::Int(1)]);
        let (k, v) = stats(mine);
        assert!(creator.may_read(View::VideoStats, &k, &v));
        assert!(!viewer.may_read(View::VideoStats, &k, &v));
        assert!(Principal::Admin.may_read(View::VideoStats, &k, &v));
        let (k, v) = stats(theirs);
        assert!(!creator.may_read(View::VideoStats, &k, &v));
        // trending names the video in a value column.
        let trending = (
            vec![Datum::text("1h"), Datum::Int(1)],
            vec![Datum::Uuid(mine), Datum::Int(3)],
        );
        assert!(creator.may_read(View::Trending, &trending.0, &trending.1));
        let history = |u: Uuid| (vec![Datum::Uuid(u), Datum::Uuid(theirs)], vec![Datum::Int(1)]);
        let (k, v) = history(me);
        assert!(viewer.may_read(View::WatchHistory, &k, &v) && creator.may_read(View::WatchHistory, &k, &v));
        let (k, v) = history(other);
        assert!(!viewer.may_read(View::WatchHistory, &k, &v));
        assert!(viewer.sees_nothing_of(View::GenreStats) && creator.sees_nothing_of(View::SourceProgress));
        assert!(!Principal::Admin.sees_nothing_of(View::SourceProgress));
    }
}
