//! Reelflow's one typed configuration.
//!
//! Every setting has one default, in the code: each section's `Default`,
//! which takes what another crate already decides (the dataflows' history
//! and ticks, the SQL engine's limits, the log's and storage's clients)
//! from that crate's own default rather than repeating it.
//! `serve/reelflow.sample.toml`, shown below, names every key with that
//! default; the tests in `sample.rs` keep it equal to the code, so it can be
//! read as the reference.
//!
//! A setting is taken, from weakest to strongest, from the default, a TOML
//! file (`--config FILE` or `REELFLOW_CONFIG`), a `REELFLOW_*` environment
//! variable, or a command-line flag ([`ConfigArgs`]; not every setting has
//! one). The order runs from what a deployment shares to what one run
//! asks for: the file is the installation's (a ConfigMap in `k8s/`), the
//! environment is what differs per process or comes from a secret, and a
//! flag is what a person types for this run. Unknown keys in the file and
//! malformed values anywhere are errors that name the setting
//! ([`Config::validate`] checks what types alone cannot); nothing is
//! silently ignored. `reelflow config` prints the effective configuration
//! with secrets masked.
//!
//! One file per section (`http.rs`, `log.rs`, …), with the helpers that
//! turn it into what its consumer takes; `flags.rs` for flags and
//! variables, `validate.rs` for the checks.
//!
//! The sample:
//!
#![doc = concat!("```toml\n", include_str!("../../reelflow.sample.toml"), "```")]

mod auth;
mod database;
mod dataflow;
mod flags;
mod http;
mod limits;
mod log;
mod playback;
#[cfg(test)]
mod sample;
mod sql;
mod storage;
mod transcode;
mod uploads;
mod validate;

use std::path::{Path, PathBuf};

use anyhow::Context;
use reelflow_ingest::log::KafkaConfig;
use reelflow_ingest::storage::S3Config;
use serde::{Deserialize, Serialize};

pub use auth::AuthConfig;
pub use database::{DatabaseConfig, mask_url_password};
pub use dataflow::DataflowConfig;
pub use flags::ConfigArgs;
pub use http::HttpConfig;
pub use limits::LimitsConfig;
pub use log::{LogBackend, LogConfig};
pub use playback::PlaybackConfig;
pub use sql::SqlConfig;
pub use storage::{StorageBackend, StorageConfig};
pub use transcode::TranscodeConfig;
pub use uploads::UploadsConfig;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where `reelflow up` keeps its state.
    pub data_dir: PathBuf,
    /// The HTTP server.
    pub http: HttpConfig,
    /// The event log.
    pub log: LogConfig,
    /// Kafka, when `log.backend = "kafka"`.
    pub kafka: KafkaConfig,
    /// Object storage.
    pub storage: StorageConfig,
    /// S3, when `storage.backend = "s3"`.
    pub s3: S3Config,
    /// The metadata database.
    pub database: DatabaseConfig,
    /// Accounts and tokens.
    pub auth: AuthConfig,
    /// Rate limits.
    pub limits: LimitsConfig,
    /// Uploads.
    pub uploads: UploadsConfig,
    /// Transcoding.
    pub transcode: TranscodeConfig,
    /// The dataflows.
    pub dataflow: DataflowConfig,
    /// HLS delivery, playback tokens and the player's beacons.
    pub playback: PlaybackConfig,
    /// SQL over the live views.
    pub sql: SqlConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./reelflow-data"),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            kafka: KafkaConfig::default(),
            storage: StorageConfig::default(),
            s3: S3Config::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            uploads: UploadsConfig::default(),
            transcode: TranscodeConfig::default(),
            dataflow: DataflowConfig::default(),
            playback: PlaybackConfig::default(),
            sql: SqlConfig::default(),
        }
    }
}

impl Config {
    /// Loads the file named by `args` (if any), applies `args` over it and
    /// validates the result.
    pub fn load(args: &ConfigArgs) -> anyhow::Result<Self> {
        let mut config = match &args.file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.apply(args);
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))
    }

    /// The configuration as TOML with every secret replaced by `****`.
    pub fn to_masked_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.s3.secret_access_key.is_some() {
            shown.s3.secret_access_key = Some("****".into());
        }
        shown.database.url = Some(mask_url_password(&self.database_url()));
        toml::to_string_pretty(&shown).expect("the config serialises to TOML")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("reelflow.toml");
        std::fs::write(
            &file,
            "data_dir = \"/srv/rf\"\n[http]\nlisten = \"0.0.0.0:9000\"\n[log]\npartitions = 4\n",
        )
        .expect("write");
        let args = ConfigArgs {
            file: Some(file),
            log_partitions: Some(16),
            ..Default::default()
        };
        let c = Config::load(&args).expect("valid config");
        assert_eq!(c.data_dir, PathBuf::from("/srv/rf"));
        assert_eq!(c.http.listen, "0.0.0.0:9000".parse().expect("addr"));
        assert_eq!(c.log.partitions, 16);
        assert_eq!(c.log.backend, LogBackend::Embedded);
        assert_eq!(c.database_url(), "sqlite:///srv/rf/reelflow.db?mode=rwc");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[log]\npartitons = 4\n").expect("write");
        let err = format!(
            "{:#}",
            Config::load(&ConfigArgs {
                file: Some(file.clone()),
                ..Default::default()
            })
            .expect_err("typo")
        );
        assert!(err.contains("partitons"), "{err}");

        std::fs::write(&file, "[http]\nlisten = \"nowhere\"\n").expect("write");
        let err = format!(
            "{:#}",
            Config::load(&ConfigArgs {
                file: Some(file),
                ..Default::default()
            })
            .expect_err("bad addr")
        );
        assert!(err.contains("listen") || err.contains("socket address"), "{err}");

        let args = ConfigArgs {
            log_backend: Some(LogBackend::Kafka),
            kafka_brokers: Some("no-port".into()),
            ..Default::default()
        };
        let err = format!("{:#}", Config::load(&args).expect_err("bad brokers"));
        assert!(err.contains("\"no-port\" is not host:port"), "{err}");
    }

    #[test]
    fn secrets_are_masked() {
        let args = ConfigArgs {
            s3_access_key_id: Some("AKIA".into()),
            s3_secret_access_key: Some("hunter2".into()),
            database_url: Some("postgres://rf:s3cret@db:5432/reelflow".into()),
            ..Default::default()
        };
        let shown = Config::load(&args).expect("valid").to_masked_toml();
        assert!(!shown.contains("hunter2") && !shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("postgres://rf:****@db:5432/reelflow"), "{shown}");
        assert!(shown.contains("secret_access_key = \"****\""), "{shown}");
    }
}
