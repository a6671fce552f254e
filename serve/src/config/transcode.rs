//! `[transcode]`: how many ffmpeg jobs run, and the limits that refuse a
//! source before it costs hours of encoding.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Config;

/// Transcoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranscodeConfig {
    /// Jobs this process runs at once (each is one ffmpeg process).
    pub workers: usize,
    /// Longest source accepted, seconds.
    pub max_duration_s: f64,
    /// Largest frame side accepted, pixels.
    pub max_dimension: u32,
    /// Longest a job may run, seconds.
    pub timeout_s: u64,
    /// Seconds a job may run per second of source, beyond a first minute
    /// (and never past `timeout_s`).
    pub seconds_per_source_second: f64,
    /// Most output frames per frame the source holds: sparser sources are
    /// refused, so a tiny file cannot ask for hours of encoding.
    pub max_frame_repeat: f64,
    /// Where jobs keep their files; unset means `<data_dir>/transcode`.
    pub work_dir: Option<PathBuf>,
    /// Where `reelflow transcode` serves `/healthz`, `/readyz` and
    /// `/metrics`; unset means no listener.
    pub listen: Option<SocketAddr>,
}

impl Default for TranscodeConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            max_duration_s: 4.0 * 3600.0,
            max_dimension: 7680,
            timeout_s: 3 * 3600,
            seconds_per_source_second: 20.0,
            max_frame_repeat: 8.0,
            work_dir: None,
            listen: None,
        }
    }
}

impl Config {
    /// The transcoders' settings.
    pub fn transcoder(&self) -> reelflow_ingest::transcode::WorkerSettings {
        use reelflow_ingest::transcode::{JobLimits, probe::ProbeLimits};
        reelflow_ingest::transcode::WorkerSettings {
            work_root: self
                .transcode
                .work_dir
                .clone()
                .unwrap_or_else(|| self.data_dir.join("transcode")),
            limits: JobLimits {
                probe: ProbeLimits {
                    max_duration_s: self.transcode.max_duration_s,
                    max_dimension: self.transcode.max_dimension,
                    max_frame_repeat: self.transcode.max_frame_repeat,
                },
                timeout: std::time::Duration::from_secs(self.transcode.timeout_s),
                seconds_per_source_second: self.transcode.seconds_per_source_second,
            },
        }
    }
}
