//! What a reader asks the workers for: which rows of a view, read how, at
//! what time; and why it may get no answer.

use serde::{Deserialize, Serialize};

use super::shapes::route;
use crate::datum::{Datum, Row};
use crate::schema::View;
use crate::time::Time;

/// Which rows of a view to read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selector {
    /// Every row.
    All,
    /// Rows with these keys (full key rows).
    Keys(Vec<Row>),
    /// Rows whose key is in `[from, to)`; an open end is unbounded. Keys
    /// compare column by column (see [`Selector::prefix`]).
    Range {
        /// Inclusive lower bound.
        from: Option<Row>,
        /// Exclusive upper bound.
        to: Option<Row>,
    },
}

impl Selector {
    /// Whether the row with `key` is one this selector picks.
    pub fn matches(&self, key: &Row) -> bool {
        match self {
            Selector::All => true,
            Selector::Keys(keys) => keys.contains(key),
            Selector::Range { from, to } => {
                from.as_ref().is_none_or(|from| key >= from) && to.as_ref().is_none_or(|to| key < to)
            }
        }
    }

    /// Rows whose key starts with `prefix` (the leading key columns).
    pub fn prefix(prefix: Row) -> Self {
        let to = after_prefix(&prefix);
        Selector::Range {
            from: Some(prefix),
            to: Some(to),
        }
    }
}

/// A key above every key that starts with `prefix`: keys never hold lists,
/// and lists sort after every other datum.
pub(crate) fn after_prefix(prefix: &[Datum]) -> Row {
    let mut to = prefix.to_vec();
    to.push(Datum::List(Vec::new()));
    to
}

/// What a request to the workers asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestKind {
    /// The rows at `as_of`.
    Peek,
    /// The rows at `as_of`, the updates after it, and a tap for the rest.
    Subscribe,
    /// Remove the tap of an earlier `Subscribe` with the same id and origin.
    Unsubscribe,
}

/// A peek on its way to the workers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeekRequest {
    /// Which worker it goes to: a key's hash, or a worker's index.
    pub(crate) route: u64,
    /// What is asked.
    pub kind: RequestKind,
    /// Unique per origin worker.
    pub id: u64,
    /// The worker that took the request and will answer.
    pub origin: usize,
    /// The view.
    pub view: View,
    /// Which rows.
    pub selector: Selector,
    /// The time to read at.
    pub as_of: Time,
}

impl PeekRequest {
    /// The requests that carry `kind` of `selector` of `view` from worker
    /// `origin` to the `peers` workers that hold the rows: a lookup of keys
    /// to the owners of the keys, one request per key; anything else to
    /// every worker.
    pub(crate) fn routed(
        kind: RequestKind,
        id: u64,
        origin: usize,
        view: View,
        selector: Selector,
        as_of: Time,
        peers: usize,
    ) -> Vec<PeekRequest> {
        let request = |route, selector| PeekRequest {
            route,
            kind,
            id,
            origin,
            view,
            selector,
            as_of,
        };
        match selector {
            Selector::Keys(mut keys) if kind != RequestKind::Unsubscribe => {
                keys.sort();
                keys.dedup();
                keys.into_iter()
                    .map(|key| request(route(view, &key), Selector::Keys(vec![key])))
                    .collect()
            }
            // A worker's index routes to that worker.
            selector => (0..peers).map(|w| request(w as u64, selector.clone())).collect(),
        }
    }
}

/// Why a peek has no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PeekError {
    /// `as_of` is before the retained history.
    #[error("{as_of} is before the retained history, which starts at {since}")]
    Compacted {
        /// Asked for.
        as_of: Time,
        /// Oldest readable time.
        since: Time,
    },
    /// `as_of` is too far in the future to wait for.
    #[error("{as_of} is in the future")]
    Future {
        /// Asked for.
        as_of: Time,
    },
    /// No view is complete at any time yet (the sources are starting).
    #[error("the views are not readable yet: the dataflows are still starting")]
    NotReady,
    /// The dataflows did not answer in time.
    #[error("the dataflows did not answer within {0} ms")]
    Timeout(u64),
    /// The dataflows are shutting down.
    #[error("the dataflows are shut down")]
    ShutDown,
    /// A subscriber fell too far behind and was dropped.
    #[error(
        "the subscriber fell {buffered} updates behind (the limit is {limit}) and was dropped; read faster or narrow the subscription"
    )]
    TooSlow {
        /// Updates waiting for it.
        buffered: usize,
        /// The most that may wait.
        limit: usize,
    },
    /// A view's arrangement broke an invariant.
    #[error("view {view} is inconsistent: {detail}")]
    Internal {
        /// The view.
        view: String,
        /// What is wrong.
        detail: String,
    },
}
