//! The embedded log: Kafka's model (topics, partitions, offsets, log time) in
//! append-only segment files under the data dir, for one machine.
//!
//! # Layout
//!
//! ```text
//! <root>/LOCK                              held while a process has the log open
//! <root>/<topic>/topic.json                {"partitions": N}
//! <root>/<topic>/<partition>/<base>.log    segments, named by their first offset
//! <root>/<topic>/<partition>/<base>.index  a sealed segment's length, offsets and sparse index
//! <root>/<topic>/groups/<group>.json       committed offsets of a consumer group
//! ```
//!
//! Each record is framed as `len:u32 crc32:u32 body` where the CRC-32 covers
//! the body (`offset:u64 log_time_ms:i64 key_len:u32 key value`); see
//! [`record`]. A segment is sealed when it passes the configured size and a
//! new one starts at the next offset.
//!
//! # Fsync policy
//!
//! With [`FsyncPolicy::Always`] (the default) an append returns only after
//! `fdatasync` of the segment covered it, so an acknowledged record survives
//! a power cut. Concurrent appenders share syncs (group commit): whoever
//! syncs first makes every record written before it durable, and the others
//! return without a sync of their own. Readers see a record only once it is
//! durable, like Kafka's high watermark. [`FsyncPolicy::Never`] leaves
//! flushing to the OS: acknowledged records survive a crash of the process
//! but not of the machine; it exists for benchmarks and scratch setups.
//!
//! # Recovery
//!
//! Opening the log checks every record's length, CRC and offset in the
//! *last* segment of each partition, the only one a crash can tear: an
//! invalid record there is a torn write, and the segment is truncated to
//! the last valid record, which can only drop records that were never
//! acknowledged. A sealed segment is described by its index file
//! (`<base>.index`, written when it was sealed; see [`segment`]), so an
//! open reads kilobytes, not the log's whole history. A sealed segment
//! without a valid index is scanned like the last one, and an invalid
//! record in it is damage that recovery must not hide: opening fails with
//! an error naming the file and position. Damage behind a valid index is
//! found by the reader, which checks every record it returns and fails
//! with the same error.

mod group;
mod partition;
pub mod record;
mod segment;

pub use group::EmbeddedConsumer;
pub use partition::EmbeddedReader;

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use partition::Partition;
use serde::{Deserialize, Serialize};

use super::{Appended, EventLog, LogError, LogResult, partition_for, validate_topic};

/// When appends are flushed to stable storage. See the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// fdatasync before an append returns (group commit).
    #[default]
    Always,
    /// Never fsync; the OS flushes when it likes.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => Err(format!(
                "unknown fsync policy {other:?}: expected \"always\" or \"never\""
            )),
        }
    }
}

/// Settings of the embedded log.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// A segment is sealed once it grows past this many bytes.
    pub segment_bytes: u64,
    /// Where records' log times come from.
    pub clock: LogClock,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::Always,
            segment_bytes: 128 * 1024 * 1024,
            clock: LogClock::Wall,
        }
    }
}

/// Where the embedded log's record times come from. Whatever the clock
/// says, log time never goes backwards within a partition.
#[derive(Debug, Clone, Default)]
pub enum LogClock {
    /// The wall clock: a record's time is when it was appended, like
    /// Kafka's `LogAppendTime`. What the platform runs with.
    #[default]
    Wall,
    /// Milliseconds since the epoch that the writer sets, like a Kafka
    /// producer setting `CreateTime`: to write in minutes a log that spans
    /// hours of history, as `reelflow-bench state` does.
    Set(Arc<std::sync::atomic::AtomicI64>),
}

impl LogClock {
    /// The time a record appended now gets (before the partition's own
    /// never-backwards rule).
    pub fn now_ms(&self) -> i64 {
        match self {
            Self::Wall => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Self::Set(at) => at.load(std::sync::atomic::Ordering::Acquire),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct TopicMeta {
    partitions: u32,
}

pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) partitions: Vec<Arc<Partition>>,
    /// Bumped after every durable append to any partition; readers wait on it.
    pub(crate) appended: tokio::sync::watch::Sender<u64>,
    pub(crate) groups: Mutex<HashMap<String, Arc<group::Group>>>,
}

impl Topic {
    /// One of the topic's partitions, or the error that names it.
    pub(crate) fn partition(&self, partition: u32) -> LogResult<&Arc<Partition>> {
        self.partitions
            .get(partition as usize)
            .ok_or_else(|| LogError::UnknownPartition {
                topic: self.name.clone(),
                partition,
            })
    }
}

struct Inner {
    root: PathBuf,
    options: EmbeddedOptions,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Held for the life of the log so a second process cannot open it.
    _lock: File,
}

/// The embedded log. Cheap to clone; clones share the open files.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog").field("root", &self.inner.root).finish()
    }
}

impl EmbeddedLog {
    /// Opens (creating if needed) the log under `root`, recovering every
    /// topic found there.
    pub fn open(root: impl AsRef<Path>, options: EmbeddedOptions) -> LogResult<Self> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(&root).map_err(|e| LogError::io(format!("creating log directory {}", root.display()), e))?;
        let lock_path = root.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| LogError::io(format!("opening {}", lock_path.display()), e))?;
        lock.try_lock().map_err(|_| {
            LogError::Invalid(format!(
                "the log at {} is in use by another process (its LOCK file is held)",
                root.display()
            ))
        })?;
        let mut topics = HashMap::new();
        let entries = fs::read_dir(&root).map_err(|e| LogError::io(format!("listing {}", root.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| LogError::io(format!("listing {}", root.display()), e))?;
            let meta_path = entry.path().join("topic.json");
            if !meta_path.exists() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let topic = Self::open_topic(&root, &name, &options)?;
            topics.insert(name, Arc::new(topic));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                options,
                topics: RwLock::new(topics),
                _lock: lock,
            }),
        })
    }

    /// The directory this log lives in.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn open_topic(root: &Path, name: &str, options: &EmbeddedOptions) -> LogResult<Topic> {
        let dir = root.join(name);
        let meta_path = dir.join("topic.json");
        let meta: TopicMeta = fs::read(&meta_path)
            .map_err(|e| LogError::io(format!("reading {}", meta_path.display()), e))
            .and_then(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| LogError::Corrupt(format!("{} is not valid: {e}", meta_path.display())))
            })?;
        let partitions = (0..meta.partitions)
            .map(|p| Partition::open(dir.join(p.to_string()), p, options.clone()).map(Arc::new))
            .collect::<LogResult<Vec<_>>>()?;
        Ok(Topic {
            name: name.to_string(),
            dir,
            partitions,
            appended: tokio::sync::watch::Sender::new(0),
            groups: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn topic(&self, topic: &str) -> LogResult<Arc<Topic>> {
        self.inner
            .topics
            .read()
            .expect("topic map lock")
            .get(topic)
            .cloned()
            .ok_or_else(|| LogError::UnknownTopic(topic.to_string()))
    }

    /// Creates a topic; see [`EventLog::create_topic`].
    pub fn create_topic_blocking(&self, topic: &str, partitions: u32) -> LogResult<()> {
        validate_topic(topic)?;
        if partitions == 0 || partitions > 10_000 {
            return Err(LogError::Invalid(format!(
                "a topic needs 1-10000 partitions, not {partitions}"
            )));
        }
        let mut topics = self.inner.topics.write().expect("topic map lock");
        if topics.contains_key(topic) {
            return Ok(());
        }
        let dir = self.inner.root.join(topic);
        fs::create_dir_all(&dir).map_err(|e| LogError::io(format!("creating {}", dir.display()), e))?;
        let meta = serde_json::to_vec(&TopicMeta { partitions }).expect("topic meta serialises");
        segment::write_atomically(&dir.join("topic.json"), &meta)?;
        let opened = Self::open_topic(&self.inner.root, topic, &self.inner.options)?;
        topics.insert(topic.to_string(), Arc::new(opened));
        Ok(())
    }

    /// Appends records synchronously; see [`EventLog::append_batch`].
    pub fn append_batch_blocking(&self, topic: &str, records: &[(&[u8], &[u8])]) -> LogResult<Vec<Appended>> {
        let topic = self.topic(topic)?;
        let n = topic.partitions.len() as u32;
        let mut by_partition: Vec<Vec<usize>> = vec![Vec::new(); n as usize];
        for (i, (key, _)) in records.iter().enumerate() {
            by_partition[partition_for(key, n) as usize].push(i);
        }
        let mut out = vec![
            Appended {
                partition: 0,
                offset: 0
            };
            records.len()
        ];
        for (p, indices) in by_partition.iter().enumerate() {
            if indices.is_empty() {
                continue;
            }
            let batch: Vec<(&[u8], &[u8])> = indices.iter().map(|&i| records[i]).collect();
            let first = topic.partitions[p].append(&batch)?;
            for (k, &i) in indices.iter().enumerate() {
                out[i] = Appended {
                    partition: p as u32,
                    offset: first + k as u64,
                };
            }
        }
        topic.appended.send_modify(|n| *n += 1);
        Ok(out)
    }
}

impl EventLog for EmbeddedLog {
    type Reader = EmbeddedReader;
    type Consumer = EmbeddedConsumer;

    async fn create_topic(&self, topic: &str, partitions: u32) -> LogResult<()> {
        let log = self.clone();
        let topic = topic.to_string();
        blocking(move || log.create_topic_blocking(&topic, partitions)).await
    }

    async fn partition_count(&self, topic: &str) -> LogResult<u32> {
        Ok(self.topic(topic)?.partitions.len() as u32)
    }

    async fn append_batch(&self, topic: &str, records: &[(&[u8], &[u8])]) -> LogResult<Vec<Appended>> {
        let log = self.clone();
        let topic = topic.to_string();
        let owned: Vec<(Vec<u8>, Vec<u8>)> = records.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        blocking(move || {
            let borrowed: Vec<(&[u8], &[u8])> = owned.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
            log.append_batch_blocking(&topic, &borrowed)
        })
        .await
    }

    async fn high_watermark(&self, topic: &str, partition: u32) -> LogResult<u64> {
        Ok(self.topic(topic)?.partition(partition)?.high_watermark())
    }

    async fn low_watermark(&self, topic: &str, partition: u32) -> LogResult<u64> {
        Ok(self.topic(topic)?.partition(partition)?.low_watermark())
    }

    async fn expire_before(&self, topic: &str, partition: u32, offset: u64) -> LogResult<u64> {
        let partition = Arc::clone(self.topic(topic)?.partition(partition)?);
        blocking(move || partition.expire_before(offset)).await
    }

    async fn reader(&self, topic: &str, assignment: &[(u32, u64)]) -> LogResult<EmbeddedReader> {
        EmbeddedReader::new(self.topic(topic)?, assignment)
    }

    async fn consumer(&self, group: &str, topic: &str) -> LogResult<EmbeddedConsumer> {
        let topic = self.topic(topic)?;
        EmbeddedConsumer::join(topic, group)
    }
}

/// Runs blocking file work off the async executor.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> LogResult<T> + Send + 'static) -> LogResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LogError::Invalid(format!("log task panicked: {e}")))?
}
