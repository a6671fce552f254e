//! `[log]`: which event log, and how Reelflow creates its topics. The
//! `[kafka]` section is the log crate's own [`KafkaConfig`].
//!
//! [`KafkaConfig`]: reelflow_ingest::log::KafkaConfig

use std::path::PathBuf;

use reelflow_ingest::log::FsyncPolicy;
use serde::{Deserialize, Serialize};

use super::Config;

/// Which log, and how topics are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `embedded` or `kafka`.
    pub backend: LogBackend,
    /// Partitions per topic when Reelflow creates its topics.
    pub partitions: u32,
    /// Fsync policy of the embedded log.
    pub fsync: FsyncPolicy,
    /// Seconds of log time playback records are kept once a snapshot
    /// covers them (0: kept forever). Catalog and media records are kept
    /// forever.
    pub playback_retention_s: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            backend: LogBackend::Embedded,
            // The dataflows create the topics too when they start first:
            // one number for both.
            partitions: reelflow_dataflows::DataflowOptions::default().partitions,
            fsync: FsyncPolicy::Always,
            playback_retention_s: 7 * 86_400,
        }
    }
}

/// The log implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogBackend {
    /// Segment files under the data dir.
    Embedded,
    /// Apache Kafka.
    Kafka,
}

impl Config {
    /// Where the embedded log lives.
    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("log")
    }
}
