//! Timely/differential dataflows that keep Reelflow's live views over the
//! event log: sources reading log partitions, the views, peeks at a
//! timestamp, and the cluster configuration.
//!
//! - [`source`]: each worker reads its partitions; log time, made monotone
//!   per partition, is the timestamp; idle partitions advance with the clock.
//! - [`facts`]: records decoded once into small ordered values.
//! - [`definitions`]: what every metric means, as folds over an entity's
//!   events (Mux Data and PeerTube definitions, written down there).
//! - [`views`]: the dataflow that maintains every view incrementally.
//! - [`peek`] and [`runtime`]: reading any view at a timestamp across all
//!   workers and processes.
//! - [`history`]: which past times stay readable, agreed by every process.
//! - [`subscribe`]: a view's rows, then its changes as they happen.
//! - `store`: a view's arrangement in its dataflow's types, read as rows.
//! - [`stored`]: views arranged in a smaller form than they are read.
//! - [`total`]: `reduce` for a totally ordered time, as the views use it.
//! - [`changes`]: what a reader takes of a session's change.
//! - [`window`]: what was seen in the last window, retracted once it has passed.
//! - [`cluster`]: workers and processes, from flags or a StatefulSet.
//! - [`reference`](mod@reference): every view recomputed from scratch, for the tests and
//!   the benchmark to check the dataflows against.
//! - [`traffic`]: realistic playback traffic for the benchmark.
//! - [`workload`]: seeded random logs with late, duplicated and malformed
//!   events, for checking the views against the reference.
//! - [`schema`] and [`datum`]: the views' names, columns and values, shared
//!   with the SQL layer.

pub mod changes;
pub mod cluster;
pub mod datum;
pub mod definitions;
pub mod facts;
pub mod history;
pub mod metrics;
pub mod peek;
pub mod reference;
pub mod runtime;
pub mod schema;
pub mod source;
mod store;
pub mod stored;
pub mod subscribe;
pub mod total;
pub mod traffic;
pub mod views;
pub mod window;
pub mod workload;

pub use cluster::ClusterConfig;
pub use datum::{Datum, Row};
pub use peek::{PeekError, Selector};
pub use runtime::{DataflowOptions, Dataflows, PeekClient, Peeked};
pub use schema::{VIEWS, View, ViewDef};
pub use subscribe::{SubscribeEvent, Subscription, Update};
pub use views::Time;

/// The topics the dataflows read, in the order partitions are dealt.
pub const TOPICS: [&str; 4] = reelflow_ingest::events::TOPICS;
