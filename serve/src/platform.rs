//! Opens the platform's shared pieces — the event log and the object store —
//! as the configuration says, and makes sure Reelflow's topics exist.

use anyhow::Context;
use reelflow_ingest::EventLog;
use reelflow_ingest::events::TOPICS;
use reelflow_ingest::log::{AnyLog, EmbeddedLog, EmbeddedOptions, KafkaLog};
use reelflow_ingest::storage::{AnyStore, LocalStore, S3Store};

use crate::config::{Config, LogBackend, StorageBackend};

/// The log and the store, opened.
#[derive(Debug, Clone)]
pub struct Platform {
    /// The event log.
    pub log: AnyLog,
    /// Object storage.
    pub store: AnyStore,
}

impl Platform {
    /// Opens both, creating the data dir, the topics and (for S3) the bucket.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        private_dir(&config.data_dir)?;
        let log = open_log(config).await?;
        for topic in TOPICS {
            log.create_topic(topic, config.log.partitions)
                .await
                .with_context(|| format!("creating topic {topic}"))?;
        }
        let store = open_store(config).await?;
        Ok(Self { log, store })
    }
}

/// Makes every file and directory this process creates from now on
/// readable by its own user only (umask 077).
pub fn keep_state_private() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Creates `dir` (and its parents) if missing and makes it private (0700),
/// also when an older version created it open to others.
pub fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private", dir.display()))
}

/// Opens the configured log.
pub async fn open_log(config: &Config) -> anyhow::Result<AnyLog> {
    Ok(match config.log.backend {
        LogBackend::Embedded => {
            let dir = config.log_dir();
            let options = EmbeddedOptions {
                fsync: config.log.fsync,
                ..EmbeddedOptions::default()
            };
            let log = tokio::task::spawn_blocking(move || EmbeddedLog::open(&dir, options))
                .await?
                .with_context(|| format!("opening the embedded log in {}", config.log_dir().display()))?;
            AnyLog::Embedded(log)
        }
        LogBackend::Kafka => AnyLog::Kafka(
            KafkaLog::connect(config.kafka.clone())
                .with_context(|| format!("connecting to Kafka at {}", config.kafka.brokers))?,
        ),
    })
}

/// Opens the configured object store.
pub async fn open_store(config: &Config) -> anyhow::Result<AnyStore> {
    Ok(match config.storage.backend {
        StorageBackend::Local => AnyStore::Local(
            LocalStore::open(config.objects_dir())
                .with_context(|| format!("opening object storage in {}", config.objects_dir().display()))?,
        ),
        StorageBackend::S3 => {
            let store = S3Store::connect(&config.s3).await.context("configuring S3")?;
            store
                .ensure_bucket()
                .await
                .with_context(|| format!("reaching S3 bucket {}", config.s3.bucket))?;
            AnyStore::S3(store)
        }
    })
}
