//! The event log: the one place every event of Reelflow is appended to and
//! read back from.
//!
//! [`EventLog`] is the interface; [`KafkaLog`] (Apache Kafka through
//! librdkafka) runs in production and [`EmbeddedLog`] (segment files under
//! the data dir) on one machine. Both pass one contract test suite
//! (`ingest/tests/log_contract.rs`) and promise the same things:
//!
//! - **Durability**: `append` returns only once the record is durable (Kafka:
//!   acknowledged by all in-sync replicas; embedded: fsynced), so a crash
//!   after an acknowledgement loses nothing.
//! - **Order and offsets**: records of one partition keep their append order;
//!   offsets start at 0 and grow by one per record.
//! - **Partitioning**: a record goes to the partition chosen by [`partition_for`]
//!   from its key (Kafka's murmur2 partitioner), identically in both logs, so
//!   all events of one entity are read in order by one worker.
//! - **Time**: every record carries its log time in milliseconds, assigned
//!   when the log accepted it and never decreasing within a partition; the
//!   dataflows derive their timestamps from it, so replays are deterministic.
//! - **Reading**: a [`PartitionReader`] reads assigned partitions from given
//!   offsets (what the dataflows need); a [`GroupConsumer`] shares a topic's
//!   partitions among the members of a consumer group and commits manually
//!   (what the transcoders need).
//!
//! The log carries bytes. Whether a value is a valid event is the reader's
//! business (see [`crate::events::decode`]).

mod any;
pub mod embedded;
pub mod kafka;
mod partitioner;

pub use any::{AnyConsumer, AnyLog, AnyReader};
pub use embedded::{EmbeddedLog, EmbeddedOptions, FsyncPolicy, LogClock};
pub use kafka::{KafkaConfig, KafkaLog};
pub use partitioner::{murmur2, partition_for};

use std::future::Future;
use std::time::Duration;

/// One record as read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Topic it was appended to.
    pub topic: String,
    /// Partition within the topic.
    pub partition: u32,
    /// Position within the partition.
    pub offset: u64,
    /// Log time: milliseconds since the Unix epoch when the log accepted it.
    pub timestamp_ms: i64,
    /// The record key (the entity id).
    pub key: Vec<u8>,
    /// The record value (an event's JSON).
    pub value: Vec<u8>,
}

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Partition it went to.
    pub partition: u32,
    /// Its offset there.
    pub offset: u64,
}

/// Errors of either log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The topic does not exist.
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    /// The partition does not exist in the topic.
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
    },
    /// A name or argument the log cannot accept.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The on-disk log is damaged in a way recovery must not paper over.
    #[error("log data is corrupt: {0}")]
    Corrupt(String),
    /// The disk said no.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The Kafka client or broker said no.
    #[error("kafka: {context}: {source}")]
    Kafka {
        /// What we were doing.
        context: String,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
    /// Timed out waiting for the log.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl LogError {
    /// Whether trying the same call again may succeed (the log was
    /// unreachable or slow), as opposed to a caller's or data error.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout(_) | Self::Io { .. } => true,
            Self::Kafka { source, .. } => source.rdkafka_error_code().is_some_and(|code| {
                use rdkafka::types::RDKafkaErrorCode as C;
                matches!(
                    code,
                    C::BrokerTransportFailure
                        | C::AllBrokersDown
                        | C::RequestTimedOut
                        | C::MessageTimedOut
                        | C::NotEnoughReplicas
                        | C::NotEnoughReplicasAfterAppend
                        | C::LeaderNotAvailable
                        | C::NotLeaderForPartition
                        | C::OperationTimedOut
                )
            }),
            _ => false,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result of log operations.
pub type LogResult<T> = Result<T, LogError>;

/// The event log's interface. See the module doc for what every
/// implementation promises.
pub trait EventLog: Send + Sync + 'static {
    /// Reader type of this log.
    type Reader: PartitionReader;
    /// Consumer-group member type of this log.
    type Consumer: GroupConsumer;

    /// Creates `topic` with `partitions` partitions; does nothing if it
    /// already exists (whatever its partition count).
    fn create_topic(&self, topic: &str, partitions: u32) -> impl Future<Output = LogResult<()>> + Send;

    /// Number of partitions of `topic`.
    fn partition_count(&self, topic: &str) -> impl Future<Output = LogResult<u32>> + Send;

    /// Appends one record to the partition its key maps to and returns once
    /// it is durable.
    fn append(&self, topic: &str, key: &[u8], value: &[u8]) -> impl Future<Output = LogResult<Appended>> + Send {
        async move {
            let mut landed = self.append_batch(topic, &[(key, value)]).await?;
            landed
                .pop()
                .ok_or_else(|| LogError::Invalid("empty append result".into()))
        }
    }

    /// Appends records (key, value) and returns, once every one of them is
    /// durable, where each landed, in input order. Records with the same key
    /// keep their relative order. A batch is not a transaction: on error,
    /// some of its records may have been appended (each at most once), so
    /// callers retry with the same event ids and readers drop duplicates.
    fn append_batch(
        &self,
        topic: &str,
        records: &[(&[u8], &[u8])],
    ) -> impl Future<Output = LogResult<Vec<Appended>>> + Send;

    /// The offset the next record appended to the partition will get.
    fn high_watermark(&self, topic: &str, partition: u32) -> impl Future<Output = LogResult<u64>> + Send;

    /// The first offset the partition still holds: records before it have
    /// expired (0 while none has).
    fn low_watermark(&self, topic: &str, partition: u32) -> impl Future<Output = LogResult<u64>> + Send;

    /// Lets the records of the partition before `offset` expire now, as
    /// its retention would, and returns the new low watermark. Kafka
    /// deletes exactly up to `offset`; the embedded log deletes the whole
    /// sealed segments before it, so its low watermark may stay lower.
    fn expire_before(&self, topic: &str, partition: u32, offset: u64) -> impl Future<Output = LogResult<u64>> + Send;

    /// A reader of the given (partition, start offset) pairs of `topic`.
    fn reader(&self, topic: &str, assignment: &[(u32, u64)]) -> impl Future<Output = LogResult<Self::Reader>> + Send;

    /// Joins consumer group `group` on `topic`. Members of one group share the
    /// partitions; a member resumes from the group's committed offsets.
    fn consumer(&self, group: &str, topic: &str) -> impl Future<Output = LogResult<Self::Consumer>> + Send;
}

/// Reads assigned partitions from given offsets.
pub trait PartitionReader: Send + 'static {
    /// Waits up to `timeout` for records and returns at most `max` of them,
    /// in offset order per partition. An empty result means nothing new.
    fn poll(&mut self, max: usize, timeout: Duration) -> impl Future<Output = LogResult<Vec<Record>>> + Send;
}

/// A member of a consumer group.
pub trait GroupConsumer: Send + 'static {
    /// Waits up to `timeout` for the next record of this member's partitions.
    fn next(&mut self, timeout: Duration) -> impl Future<Output = LogResult<Option<Record>>> + Send;

    /// Records that every record of `record`'s partition up to and including
    /// it has been handled: a restarted group resumes after it.
    fn commit(&mut self, record: &Record) -> impl Future<Output = LogResult<()>> + Send;
}

/// Checks a topic name the way Kafka does: 1–249 characters of
/// `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn validate_topic(topic: &str) -> LogResult<()> {
    let ok = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(LogError::Invalid(format!(
            "topic name {topic:?} must be 1-249 characters of letters, digits, '.', '_' and '-'"
        )))
    }
}
