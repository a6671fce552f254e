//! The event log on Apache Kafka, through librdkafka.
//!
//! Appends go through one idempotent producer with `acks=all`; an append's
//! future resolves only when the broker acknowledged the record. We choose
//! the partition ourselves with [`partition_for`] (Kafka's murmur2) so the
//! embedded log and Java clients agree on where a key lives. Topics are
//! created with `message.timestamp.type=LogAppendTime`: a record's timestamp
//! is the broker's clock when it was written, which is what the dataflows
//! use as time, so replays are deterministic and producers' clocks do not
//! matter. Readers take fetched records off the client's queue in batches
//! ([`batch`]).

mod batch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use self::batch::FetchQueue;
use super::{
    Appended, EventLog, GroupConsumer, LogError, LogResult, PartitionReader, Record, partition_for, validate_topic,
};

/// How to reach the Kafka cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of bootstrap brokers.
    pub brokers: String,
    /// Replication factor of topics Reelflow creates (3 in production).
    pub replication_factor: u16,
    /// Client id sent to the brokers, for their logs and quotas.
    pub client_id: String,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            replication_factor: 1,
            client_id: "reelflow".into(),
        }
    }
}

/// Timeout for metadata calls (partition counts, watermarks, commits).
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

impl KafkaConfig {
    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id);
        c
    }

    fn producer(&self) -> ClientConfig {
        let mut c = self.base();
        // No duplicates and no reordering when the client retries a batch.
        c.set("enable.idempotence", "true");
        // Acknowledged means written to every in-sync replica: a broker crash
        // after the ack loses nothing (idempotence implies it; said for clarity).
        c.set("acks", "all");
        // Events are small JSON documents that compress several-fold; lz4 is
        // the cheapest codec for the CPU.
        c.set("compression.type", "lz4");
        // An append that cannot be acknowledged within 30 s fails, so an HTTP
        // request waiting on it can answer instead of hanging (default 300 s).
        c.set("delivery.timeout.ms", "30000");
        c
    }

    fn consumer(&self, group: &str) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", group);
        // Offsets are committed by the caller after it has handled a record,
        // never behind its back.
        c.set("enable.auto.commit", "false");
        // A new group starts at the beginning of the topic: no upload that
        // arrived before the first transcoder started is skipped.
        c.set("auto.offset.reset", "earliest");
        // Only read records whose transaction committed (none today; keeps
        // readers correct if producers become transactional).
        c.set("isolation.level", "read_committed");
        // When a partition's queue of fetched records is full, fetch again
        // 10 ms later, not 1 s: a reader catching up drains 100,000 records
        // far sooner than that, and then waited for the rest of the second.
        // Reading a backlog went from about 360,000 records a second to
        // 1,000,000 (1.3 million with batches; BENCHMARKS.md, "Reading Kafka
        // in batches").
        c.set("fetch.queue.backoff.ms", "10");
        c
    }
}

/// The event log on a Kafka cluster. Cheap to clone.
#[derive(Clone)]
pub struct KafkaLog {
    config: KafkaConfig,
    producer: FutureProducer,
    admin: Arc<AdminClient<DefaultClientContext>>,
    /// Metadata-only consumer for partition counts and watermarks.
    meta: Arc<StreamConsumer>,
    partitions: Arc<Mutex<HashMap<String, u32>>>,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("brokers", &self.config.brokers)
            .finish()
    }
}

fn kafka(context: impl Into<String>) -> impl FnOnce(KafkaError) -> LogError {
    let context = context.into();
    move |source| LogError::Kafka { context, source }
}

impl KafkaLog {
    /// Connects to the cluster (lazily: the first call that needs a broker
    /// waits for one).
    pub fn connect(config: KafkaConfig) -> LogResult<Self> {
        let producer: FutureProducer = config.producer().create().map_err(kafka("creating producer"))?;
        let admin = config.base().create().map_err(kafka("creating admin client"))?;
        let meta = config
            .consumer(&format!("{}-metadata", config.client_id))
            .create()
            .map_err(kafka("creating metadata client"))?;
        Ok(Self {
            config,
            producer,
            admin: Arc::new(admin),
            meta: Arc::new(meta),
            partitions: Arc::default(),
        })
    }

    /// The configuration this log was opened with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// Waits until every queued record is acknowledged.
    pub fn flush(&self, timeout: Duration) -> LogResult<()> {
        self.producer.flush(timeout).map_err(kafka("flushing producer"))
    }

    async fn cached_partition_count(&self, topic: &str) -> LogResult<u32> {
        if let Some(&n) = self.partitions.lock().expect("partition cache").get(topic) {
            return Ok(n);
        }
        let n = self.partition_count(topic).await?;
        self.partitions
            .lock()
            .expect("partition cache")
            .insert(topic.to_string(), n);
        Ok(n)
    }
}

fn to_record(m: &BorrowedMessage<'_>) -> Record {
    Record {
        topic: m.topic().to_string(),
        partition: m.partition() as u32,
        offset: m.offset() as u64,
        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
        key: m.key().unwrap_or_default().to_vec(),
        value: m.payload().unwrap_or_default().to_vec(),
    }
}

impl KafkaLog {
    /// A partition's low and high watermarks. A partition whose leader is
    /// still being elected (a topic just created, a broker restarting) is
    /// asked again until the metadata timeout.
    async fn watermarks(&self, topic: &str, partition: u32) -> LogResult<(u64, u64)> {
        let meta = Arc::clone(&self.meta);
        let name = topic.to_string();
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + METADATA_TIMEOUT;
            loop {
                match meta.fetch_watermarks(&name, partition as i32, METADATA_TIMEOUT) {
                    Ok((low, high)) => return Ok((low.max(0) as u64, high.max(0) as u64)),
                    Err(KafkaError::MetadataFetch(
                        RDKafkaErrorCode::NotLeaderForPartition
                        | RDKafkaErrorCode::LeaderNotAvailable
                        | RDKafkaErrorCode::UnknownTopicOrPartition,
                    )) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(e) => return Err(kafka(format!("watermarks of {name}/{partition}"))(e)),
                }
            }
        })
        .await
        .map_err(|e| LogError::Invalid(format!("watermark task panicked: {e}")))?
    }
}

impl EventLog for KafkaLog {
    type Reader = KafkaReader;
    type Consumer = KafkaConsumer;

    async fn create_topic(&self, topic: &str, partitions: u32) -> LogResult<()> {
        validate_topic(topic)?;
        let partitions = i32::try_from(partitions)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| LogError::Invalid(format!("a topic needs at least one partition, not {partitions}")))?;
        let new = NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(i32::from(self.config.replication_factor)),
        )
        // The broker stamps each record with its own clock: see the module doc.
        .set("message.timestamp.type", "LogAppendTime")
        // Nothing expires: the views are rebuilt from every record (the
        // broker's default would drop them after 7 days).
        .set("retention.ms", "-1")
        .set("retention.bytes", "-1");
        let opts = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
        let results = self
            .admin
            .create_topics([&new], &opts)
            .await
            .map_err(kafka(format!("creating topic {topic}")))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(LogError::Kafka {
                        context: format!("creating topic {name}"),
                        source: KafkaError::AdminOp(code),
                    });
                }
            }
        }
        // Wait until the new topic's metadata is visible to our clients.
        let deadline = tokio::time::Instant::now() + METADATA_TIMEOUT;
        loop {
            match self.partition_count(topic).await {
                Ok(n) if n > 0 => return Ok(()),
                _ if tokio::time::Instant::now() > deadline => {
                    return Err(LogError::Timeout(format!("topic {topic} did not appear in metadata")));
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    async fn partition_count(&self, topic: &str) -> LogResult<u32> {
        let meta = Arc::clone(&self.meta);
        let name = topic.to_string();
        tokio::task::spawn_blocking(move || {
            let md = meta
                .fetch_metadata(Some(&name), METADATA_TIMEOUT)
                .map_err(kafka(format!("metadata of {name}")))?;
            let t = md
                .topics()
                .iter()
                .find(|t| t.name() == name)
                .ok_or_else(|| LogError::UnknownTopic(name.clone()))?;
            if let Some(err) = t.error() {
                let code = RDKafkaErrorCode::from(err);
                if code == RDKafkaErrorCode::UnknownTopicOrPartition || code == RDKafkaErrorCode::UnknownTopic {
                    return Err(LogError::UnknownTopic(name));
                }
                return Err(LogError::Kafka {
                    context: format!("metadata of {name}"),
                    source: KafkaError::MetadataFetch(code),
                });
            }
            if t.partitions().is_empty() {
                return Err(LogError::UnknownTopic(name));
            }
            Ok(t.partitions().len() as u32)
        })
        .await
        .map_err(|e| LogError::Invalid(format!("metadata task panicked: {e}")))?
    }

    async fn append_batch(&self, topic: &str, records: &[(&[u8], &[u8])]) -> LogResult<Vec<Appended>> {
        let n = self.cached_partition_count(topic).await?;
        let sends = records.iter().map(|(key, value)| {
            let partition = partition_for(key, n) as i32;
            let record = FutureRecord::to(topic).partition(partition).key(*key).payload(*value);
            // Wait for room in the client's queue for as long as a delivery
            // may take; the delivery timeout bounds the rest.
            self.producer.send(record, Duration::from_secs(30))
        });
        let results = futures::future::join_all(sends).await;
        results
            .into_iter()
            .map(|r| match r {
                Ok(d) => Ok(Appended {
                    partition: d.partition as u32,
                    offset: d.offset as u64,
                }),
                Err((source, _)) => Err(LogError::Kafka {
                    context: format!("appending to {topic}"),
                    source,
                }),
            })
            .collect()
    }

    async fn high_watermark(&self, topic: &str, partition: u32) -> LogResult<u64> {
        Ok(self.watermarks(topic, partition).await?.1)
    }

    async fn low_watermark(&self, topic: &str, partition: u32) -> LogResult<u64> {
        Ok(self.watermarks(topic, partition).await?.0)
    }

    async fn expire_before(&self, topic: &str, partition: u32, offset: u64) -> LogResult<u64> {
        let mut tpl = TopicPartitionList::new();
        let at = i64::try_from(offset).map_err(|_| LogError::Invalid(format!("offset {offset} is too large")))?;
        tpl.add_partition_offset(topic, partition as i32, Offset::Offset(at))
            .map_err(kafka(format!("expiring {topic}/{partition}")))?;
        let opts = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
        let deleted = self
            .admin
            .delete_records(&tpl, &opts)
            .await
            .map_err(kafka(format!("expiring {topic}/{partition} before {offset}")))?;
        for e in deleted.elements() {
            if let Err(source) = e.error() {
                return Err(LogError::Kafka {
                    context: format!("expiring {topic}/{partition} before {offset}"),
                    source,
                });
            }
        }
        self.low_watermark(topic, partition).await
    }

    async fn reader(&self, topic: &str, assignment: &[(u32, u64)]) -> LogResult<KafkaReader> {
        let n = self.partition_count(topic).await?;
        let mut tpl = TopicPartitionList::new();
        for &(p, offset) in assignment {
            if p >= n {
                return Err(LogError::UnknownPartition {
                    topic: topic.to_string(),
                    partition: p,
                });
            }
            tpl.add_partition_offset(topic, p as i32, Offset::Offset(offset as i64))
                .map_err(kafka("building assignment"))?;
        }
        // Readers never join a group: the id only gives the client the
        // consumer queue that batches are popped from.
        let consumer: BaseConsumer = self
            .config
            .consumer(&format!("{}-reader", self.config.client_id))
            .create()
            .map_err(kafka("creating reader"))?;
        consumer
            .assign(&tpl)
            .map_err(kafka(format!("assigning partitions of {topic}")))?;
        let queue = FetchQueue::new(consumer).map_err(kafka("creating reader"))?;
        Ok(KafkaReader {
            topic: topic.to_string(),
            queue: Arc::new(Mutex::new(queue)),
        })
    }

    async fn consumer(&self, group: &str, topic: &str) -> LogResult<KafkaConsumer> {
        let consumer: StreamConsumer = self
            .config
            .consumer(group)
            .create()
            .map_err(kafka("creating group consumer"))?;
        consumer
            .subscribe(&[topic])
            .map_err(kafka(format!("subscribing to {topic}")))?;
        Ok(KafkaConsumer {
            consumer: Arc::new(consumer),
        })
    }
}

/// Reads assigned Kafka partitions from given offsets, a batch of fetched
/// records at a time (see [`batch`]).
pub struct KafkaReader {
    topic: String,
    queue: Arc<Mutex<FetchQueue>>,
}

impl PartitionReader for KafkaReader {
    async fn poll(&mut self, max: usize, timeout: Duration) -> LogResult<Vec<Record>> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        // What the client already fetched, without waiting. The queue is
        // only ever locked elsewhere by the wait below, when an earlier
        // poll was dropped mid-wait; then this one waits on the blocking
        // thread too, never on the runtime's.
        if let Ok(mut queue) = self.queue.try_lock() {
            queue
                .pop(&self.topic, max, Duration::ZERO, &mut out)
                .map_err(kafka("reading"))?;
            if !out.is_empty() || timeout.is_zero() {
                return Ok(out);
            }
        }
        // Nothing yet: wait for the first record on a blocking thread, then
        // take whatever arrived with it.
        let queue = Arc::clone(&self.queue);
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            let mut queue = queue.lock().expect("fetch queue");
            queue.pop(&topic, 1, timeout, &mut out)?;
            if !out.is_empty() {
                queue.pop(&topic, max - 1, Duration::ZERO, &mut out)?;
            }
            Ok(out)
        })
        .await
        .map_err(|e| LogError::Invalid(format!("Kafka read task panicked: {e}")))?
        .map_err(kafka("reading"))
    }
}

/// A member of a Kafka consumer group with manual commits.
pub struct KafkaConsumer {
    consumer: Arc<StreamConsumer>,
}

impl GroupConsumer for KafkaConsumer {
    async fn next(&mut self, timeout: Duration) -> LogResult<Option<Record>> {
        match tokio::time::timeout(timeout, self.consumer.recv()).await {
            Err(_) => Ok(None),
            Ok(m) => Ok(Some(to_record(&m.map_err(kafka("consuming"))?))),
        }
    }

    async fn commit(&mut self, record: &Record) -> LogResult<()> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            &record.topic,
            record.partition as i32,
            Offset::Offset(record.offset as i64 + 1),
        )
        .map_err(kafka("building commit"))?;
        let consumer = Arc::clone(&self.consumer);
        tokio::task::spawn_blocking(move || {
            consumer
                .commit(&tpl, CommitMode::Sync)
                .map_err(kafka("committing offsets"))
        })
        .await
        .map_err(|e| LogError::Invalid(format!("commit task panicked: {e}")))?
    }
}
