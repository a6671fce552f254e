//! `[storage]`: which object store holds the videos. The `[s3]` section is
//! the storage crate's own [`S3Config`].
//!
//! [`S3Config`]: reelflow_ingest::storage::S3Config

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Config;

/// Which object store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `local` or `s3`.
    pub backend: StorageBackend,
}

/// The object store implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum StorageBackend {
    /// `<data_dir>/objects`.
    #[default]
    Local,
    /// An S3 bucket.
    S3,
}

impl Config {
    /// Where local objects live.
    pub fn objects_dir(&self) -> PathBuf {
        self.data_dir.join("objects")
    }
}
