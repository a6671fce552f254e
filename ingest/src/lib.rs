//! How data gets into Reelflow.
//!
//! - [`events`]: the Rust types of the four topics and their JSON Schemas.
//! - [`log`]: the event log, on Apache Kafka or embedded in the data dir,
//!   behind one interface.
//! - [`storage`]: object storage, on S3 or a local directory, behind one
//!   interface.
//!
//! The transcoding pipeline will live here too; it reads `reelflow.uploads`
//! and writes `reelflow.processing` through these same pieces.

pub mod events;
pub mod log;
pub mod storage;

pub use log::{EventLog, GroupConsumer, PartitionReader, Record};
pub use storage::{ObjectKey, ObjectStore};
