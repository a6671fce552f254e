//! `[uploads]`: how large an upload may be, and how long an unfinished one
//! is kept.

use serde::{Deserialize, Serialize};

/// Uploads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadsConfig {
    /// Largest file accepted, bytes.
    pub max_size_bytes: u64,
    /// Bytes a user may have uploaded in all, bytes.
    pub quota_bytes_per_user: u64,
    /// Seconds an unfinished upload is kept.
    pub expire_after_s: u64,
    /// Bytes per stored part (at least 5 MiB); also the most an upload in
    /// progress holds in memory.
    pub part_size_bytes: usize,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        Self {
            max_size_bytes: 8 << 30,
            quota_bytes_per_user: 50 << 30,
            expire_after_s: 24 * 3600,
            part_size_bytes: 8 << 20,
        }
    }
}
