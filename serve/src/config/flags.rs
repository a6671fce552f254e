//! The settings a deployment varies per process or per run, as flags and
//! `REELFLOW_*` variables.
//!
//! Each is an `Option`: unset leaves what the file (or the default) said,
//! so a flag's `[default: …]` in `--help` only repeats the default, it
//! never sets it. clap reads the variable when the flag is absent, which
//! gives the order file → environment → flag.

use std::net::SocketAddr;
use std::path::PathBuf;

use reelflow_ingest::log::FsyncPolicy;

use super::{Config, LogBackend, StorageBackend};

/// Settings from flags and `REELFLOW_*` variables; each overrides the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Timely workers per dataflow process [default: one per core].
    #[arg(long, env = "REELFLOW_DATAFLOW_WORKERS", global = true)]
    pub dataflow_workers: Option<usize>,
    /// This dataflow process's index among the peers [default: 0].
    #[arg(long, env = "REELFLOW_DATAFLOW_PROCESS", global = true)]
    pub dataflow_process: Option<usize>,
    /// host:port of every dataflow process, comma-separated, same order everywhere.
    #[arg(
        long,
        env = "REELFLOW_DATAFLOW_PEERS",
        global = true,
        value_delimiter = ',',
        value_name = "LIST"
    )]
    pub dataflow_peers: Option<Vec<String>>,
    /// File listing the dataflow processes, one host:port per line.
    #[arg(long, env = "REELFLOW_DATAFLOW_HOSTFILE", global = true, value_name = "FILE")]
    pub dataflow_hostfile: Option<PathBuf>,
    /// StatefulSet peer address with {i} for the pod ordinal.
    #[arg(
        long,
        env = "REELFLOW_DATAFLOW_STATEFULSET_PEERS",
        global = true,
        value_name = "TEMPLATE"
    )]
    pub dataflow_statefulset_peers: Option<String>,
    /// Dataflow processes in the StatefulSet [default: 1].
    #[arg(long, env = "REELFLOW_DATAFLOW_REPLICAS", global = true)]
    pub dataflow_replicas: Option<usize>,
    /// Address `reelflow dataflow` serves views and metrics on [default: 127.0.0.1:8081].
    #[arg(long, env = "REELFLOW_DATAFLOW_LISTEN", global = true, value_name = "ADDR")]
    pub dataflow_listen: Option<SocketAddr>,
    /// Address the PostgreSQL wire protocol listens on [default: 127.0.0.1:6875].
    #[arg(long, env = "REELFLOW_SQL_PGWIRE_LISTEN", global = true, value_name = "ADDR")]
    pub sql_pgwire_listen: Option<SocketAddr>,
    /// The dataflow service an API process without dataflows forwards `/v1/sql` to.
    #[arg(long, env = "REELFLOW_SQL_UPSTREAM", global = true, value_name = "URL")]
    pub sql_upstream: Option<String>,
    /// Address `/metrics` is served on without accounts [default: none; admins read it on the API].
    #[arg(long, env = "REELFLOW_HTTP_METRICS_LISTEN", global = true, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Address `reelflow transcode` serves health and metrics on [default: none].
    #[arg(long, env = "REELFLOW_TRANSCODE_LISTEN", global = true, value_name = "ADDR")]
    pub transcode_listen: Option<SocketAddr>,
    /// TOML configuration file.
    #[arg(long = "config", env = "REELFLOW_CONFIG", global = true, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Directory for the SQLite file, the objects and the embedded log [default: ./reelflow-data].
    #[arg(long, env = "REELFLOW_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address the HTTP server listens on [default: 127.0.0.1:8080].
    #[arg(long, env = "REELFLOW_HTTP_LISTEN", global = true, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Event log implementation [default: embedded].
    #[arg(long, env = "REELFLOW_LOG_BACKEND", global = true, value_enum)]
    pub log_backend: Option<LogBackend>,
    /// Partitions per topic when creating topics [default: 8].
    #[arg(long, env = "REELFLOW_LOG_PARTITIONS", global = true, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub log_partitions: Option<u32>,
    /// Embedded log fsync policy: always or never [default: always].
    #[arg(long, env = "REELFLOW_LOG_FSYNC", global = true)]
    pub log_fsync: Option<FsyncPolicy>,
    /// Kafka bootstrap brokers, host:port[,host:port…] [default: 127.0.0.1:9092].
    #[arg(long, env = "REELFLOW_KAFKA_BROKERS", global = true, value_name = "LIST")]
    pub kafka_brokers: Option<String>,
    /// Replication factor of created Kafka topics [default: 1].
    #[arg(long, env = "REELFLOW_KAFKA_REPLICATION_FACTOR", global = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub kafka_replication_factor: Option<u16>,
    /// Object store implementation [default: local].
    #[arg(long, env = "REELFLOW_STORAGE_BACKEND", global = true, value_enum)]
    pub storage_backend: Option<StorageBackend>,
    /// S3 endpoint URL (for S3-compatible services).
    #[arg(long, env = "REELFLOW_S3_ENDPOINT", global = true, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: us-east-1].
    #[arg(long, env = "REELFLOW_S3_REGION", global = true)]
    pub s3_region: Option<String>,
    /// S3 bucket [default: reelflow].
    #[arg(long, env = "REELFLOW_S3_BUCKET", global = true)]
    pub s3_bucket: Option<String>,
    /// S3 access key id (unset: the AWS default credential chain).
    #[arg(long, env = "REELFLOW_S3_ACCESS_KEY_ID", global = true)]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key.
    #[arg(long, env = "REELFLOW_S3_SECRET_ACCESS_KEY", global = true, hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Browser origins allowed by CORS, comma-separated.
    #[arg(
        long,
        env = "REELFLOW_HTTP_CORS_ORIGINS",
        global = true,
        value_delimiter = ',',
        value_name = "ORIGINS"
    )]
    pub cors_origins: Option<Vec<String>>,
    /// Database URL, sqlite://… or postgres://… [default: sqlite file under the data dir].
    #[arg(
        long,
        env = "REELFLOW_DATABASE_URL",
        global = true,
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,
}

impl Config {
    /// Sets what `a` names over what the file (or the defaults) said.
    pub(super) fn apply(&mut self, a: &ConfigArgs) {
        fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *slot = v.clone();
            }
        }
        set(&mut self.data_dir, &a.data_dir);
        set(&mut self.http.listen, &a.listen);
        set(&mut self.log.backend, &a.log_backend);
        set(&mut self.log.partitions, &a.log_partitions);
        set(&mut self.log.fsync, &a.log_fsync);
        set(&mut self.kafka.brokers, &a.kafka_brokers);
        set(&mut self.kafka.replication_factor, &a.kafka_replication_factor);
        set(&mut self.storage.backend, &a.storage_backend);
        if a.s3_endpoint.is_some() {
            self.s3.endpoint = a.s3_endpoint.clone();
        }
        set(&mut self.s3.region, &a.s3_region);
        set(&mut self.s3.bucket, &a.s3_bucket);
        if a.s3_access_key_id.is_some() {
            self.s3.access_key_id = a.s3_access_key_id.clone();
        }
        if a.s3_secret_access_key.is_some() {
            self.s3.secret_access_key = a.s3_secret_access_key.clone();
        }
        if a.database_url.is_some() {
            self.database.url = a.database_url.clone();
        }
        set(&mut self.http.cors_origins, &a.cors_origins);
        set(&mut self.dataflow.workers, &a.dataflow_workers);
        set(&mut self.dataflow.process, &a.dataflow_process);
        set(&mut self.dataflow.peers, &a.dataflow_peers);
        set(&mut self.dataflow.replicas, &a.dataflow_replicas);
        set(&mut self.dataflow.listen, &a.dataflow_listen);
        set(&mut self.sql.pgwire_listen, &a.sql_pgwire_listen);
        if a.metrics_listen.is_some() {
            self.http.metrics_listen = a.metrics_listen;
        }
        if a.transcode_listen.is_some() {
            self.transcode.listen = a.transcode_listen;
        }
        if a.sql_upstream.is_some() {
            self.sql.upstream.clone_from(&a.sql_upstream);
        }
        if a.dataflow_hostfile.is_some() {
            self.dataflow.hostfile = a.dataflow_hostfile.clone();
        }
        if a.dataflow_statefulset_peers.is_some() {
            self.dataflow.statefulset_peers = a.dataflow_statefulset_peers.clone();
        }
    }
}
