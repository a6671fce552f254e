//! The log chosen at run time: [`AnyLog`] is the embedded log or Kafka, as the
//! configuration says, behind the same [`EventLog`] interface.

use std::time::Duration;

use super::{
    Appended, EmbeddedLog, EventLog, GroupConsumer, KafkaLog, LogResult, PartitionReader, Record,
    embedded::{EmbeddedConsumer, EmbeddedReader},
    kafka::{KafkaConsumer, KafkaReader},
};

/// Either log.
#[derive(Debug, Clone)]
pub enum AnyLog {
    /// Segment files under the data dir.
    Embedded(EmbeddedLog),
    /// An Apache Kafka cluster.
    Kafka(KafkaLog),
}

impl AnyLog {
    /// `"embedded"` or `"kafka"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Embedded(_) => "embedded",
            Self::Kafka(_) => "kafka",
        }
    }
}

/// A reader of either log.
pub enum AnyReader {
    /// Embedded.
    Embedded(EmbeddedReader),
    /// Kafka.
    Kafka(KafkaReader),
}

/// A consumer-group member of either log.
pub enum AnyConsumer {
    /// Embedded.
    Embedded(EmbeddedConsumer),
    /// Kafka.
    Kafka(KafkaConsumer),
}

impl EventLog for AnyLog {
    type Reader = AnyReader;
    type Consumer = AnyConsumer;

    async fn create_topic(&self, topic: &str, partitions: u32) -> LogResult<()> {
        match self {
            Self::Embedded(l) => l.create_topic(topic, partitions).await,
            Self::Kafka(l) => l.create_topic(topic, partitions).await,
        }
    }

    async fn partition_count(&self, topic: &str) -> LogResult<u32> {
        match self {
            Self::Embedded(l) => l.partition_count(topic).await,
            Self::Kafka(l) => l.partition_count(topic).await,
        }
    }

    async fn append_batch(&self, topic: &str, records: &[(&[u8], &[u8])]) -> LogResult<Vec<Appended>> {
        match self {
            Self::Embedded(l) => l.append_batch(topic, records).await,
            Self::Kafka(l) => l.append_batch(topic, records).await,
        }
    }

    async fn high_watermark(&self, topic: &str, partition: u32) -> LogResult<u64> {
        match self {
            Self::Embedded(l) => l.high_watermark(topic, partition).await,
            Self::Kafka(l) => l.high_watermark(topic, partition).await,
        }
    }

    async fn low_watermark(&self, topic: &str, partition: u32) -> LogResult<u64> {
        match self {
            Self::Embedded(l) => l.low_watermark(topic, partition).await,
            Self::Kafka(l) => l.low_watermark(topic, partition).await,
        }
    }

    async fn expire_before(&self, topic: &str, partition: u32, offset: u64) -> LogResult<u64> {
        match self {
            Self::Embedded(l) => l.expire_before(topic, partition, offset).await,
            Self::Kafka(l) => l.expire_before(topic, partition, offset).await,
        }
    }

    async fn reader(&self, topic: &str, assignment: &[(u32, u64)]) -> LogResult<AnyReader> {
        Ok(match self {
            Self::Embedded(l) => AnyReader::Embedded(l.reader(topic, assignment).await?),
            Self::Kafka(l) => AnyReader::Kafka(l.reader(topic, assignment).await?),
        })
    }

    async fn consumer(&self, group: &str, topic: &str) -> LogResult<AnyConsumer> {
        Ok(match self {
            Self::Embedded(l) => AnyConsumer::Embedded(l.consumer(group, topic).await?),
            Self::Kafka(l) => AnyConsumer::Kafka(l.consumer(group, topic).await?),
        })
    }
}

impl PartitionReader for AnyReader {
    async fn poll(&mut self, max: usize, timeout: Duration) -> LogResult<Vec<Record>> {
        match self {
            Self::Embedded(r) => r.poll(max, timeout).await,
            Self::Kafka(r) => r.poll(max, timeout).await,
        }
    }
}

impl GroupConsumer for AnyConsumer {
    async fn next(&mut self, timeout: Duration) -> LogResult<Option<Record>> {
        match self {
            Self::Embedded(c) => c.next(timeout).await,
            Self::Kafka(c) => c.next(timeout).await,
        }
    }

    async fn commit(&mut self, record: &Record) -> LogResult<()> {
        match self {
            Self::Embedded(c) => c.commit(record).await,
            Self::Kafka(c) => c.commit(record).await,
        }
    }
}
