//! Timely/differential dataflows that keep Reelflow's live views over the
//! event log, and the reads that serve them at one time or as changes.
//!
//! # How an event becomes a row
//!
//! 1. **Source** (`source`): each worker reads its share of the log's
//!    partitions. A record's log time, made monotone per partition, is its
//!    timestamp ([`Time`]); idle partitions advance with the clock.
//! 2. **Facts** ([`facts`]): each record is decoded once into a small
//!    ordered value (a catalog entry, a media change, a beacon). A record
//!    that does not decode is counted in `source_progress` and skipped.
//! 3. **Views** (`views`): one dataflow folds each entity's facts as
//!    [`definitions`] says (a session, a video's media state, a catalog
//!    entry) with the view-agnostic [`operators`], sums and ranks the
//!    folds, and ends each view in an arrangement per worker.
//! 4. **Read** (`read`): a [`PeekClient`] reads any view at one time
//!    across every worker and process (a peek), or from one time on as its
//!    changes happen (a [`Subscription`]); `history` says which past times
//!    every process keeps readable.
//! 5. **Rows**: keys and values come out as [`Row`]s of [`Datum`]s, typed
//!    by the view's [`ViewDef`], which the SQL layer turns into Arrow.
//! 6. **Snapshots** ([`snapshot`]): the log up to exact offsets, folded by
//!    the same definitions into what the views need of it, in object
//!    storage; a start feeds the latest into the views and reads the log
//!    only after it.
//!
//! # Adding a view
//!
//! 1. Name it and its columns: a [`View`] variant and its [`ViewDef`] in
//!    `schema.rs` (the SQL contract; `VIEWS` is in enum order).
//! 2. Say what it means: the fold in [`definitions`] and its rows in
//!    [`definitions::rows`], shared with the reference.
//! 3. Recompute it from scratch in `reference.rs` (the oracle the tests
//!    compare against).
//! 4. Build it incrementally in `views.rs` from the facts, with the
//!    [`operators`]; end it as `(key row, value row)`, or in its own types
//!    with a `Shape` in `read/shapes.rs` if it changes with every heartbeat.
//! 5. Arrange it in `runtime.rs` (`Arranging::arrange`).
//! 6. Let the SQL layer show it (`sql/src/tables.rs`) and the row-level
//!    access rule say who may read which rows (`sql/src/access.rs`).
//! 7. Add it to the golden SQL files and the randomized tests
//!    (`dataflows/tests/views.rs`), which compare every view with the
//!    reference at every time on 1, 2 and 4 workers.
//!
//! # Layers
//!
//! Each module imports only those listed before it:
//! `time`, `datum`, `cluster` → `schema`, `metrics`, [`facts`] →
//! `history`, `source` → [`operators`] → [`definitions`] → `read` →
//! `views` → [`snapshot`] → `runtime`; the test support (`reference`, `workload`,
//! `traffic`, behind the `test-support` feature) sits on top.

mod cluster;
mod datum;
pub mod definitions;
pub mod facts;
mod history;
mod metrics;
pub mod operators;
mod read;
mod runtime;
mod schema;
pub mod snapshot;
mod source;
mod time;
mod views;

#[cfg(any(test, feature = "test-support"))]
pub mod reference;
#[cfg(any(test, feature = "test-support"))]
pub mod traffic;
#[cfg(any(test, feature = "test-support"))]
pub mod workload;

pub use cluster::{ClusterConfig, ClusterError};
pub use datum::{ColumnType, Datum, F64, Row, format_timestamp};
pub use history::Retained;
pub use metrics::{Metrics, PartitionStatus, SnapshotStatus};
pub use read::{PeekClient, PeekError, Peeked, Selector, SubscribeEvent, Subscription, Update};
pub use runtime::{DataflowOptions, Dataflows, StartError};
pub use schema::{Column, VIEWS, View, ViewDef};
pub use source::{SourceOptions, stamp};
pub use time::{Coll, Time, now_ms};
pub use views::Windows;

/// The topics the dataflows read, in the order partitions are dealt.
pub const TOPICS: [&str; 4] = reelflow_ingest::events::TOPICS;
