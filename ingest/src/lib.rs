//! How data gets into Reelflow.
//!
//! - [`events`]: the Rust types of the four topics and their JSON Schemas.
//! - [`log`]: the event log, on Apache Kafka or embedded in the data dir,
//!   behind one interface.
//! - `storage` (feature `storage`): object storage, on S3 or a local
//!   directory, behind one interface.
//! - `transcode` (feature `transcode`): the transcoding pipeline, from an uploaded source to an
//!   HLS ladder, reporting on `reelflow.processing`.

pub mod events;
pub mod log;
#[cfg(feature = "storage")]
pub mod storage;
#[cfg(feature = "transcode")]
pub mod transcode;

pub use log::{EventLog, GroupConsumer, PartitionReader, Record};
#[cfg(feature = "storage")]
pub use storage::{ObjectKey, ObjectStore};
