//! Reelflow's one typed configuration.
//!
//! Every setting has a documented default and can be set, from weakest to
//! strongest, in a TOML file (`--config FILE` or `REELFLOW_CONFIG`), in a
//! `REELFLOW_*` environment variable, or by a command-line flag. Unknown keys
//! in the file and malformed values anywhere are errors that name the
//! setting; nothing is silently ignored. `reelflow config` prints the
//! effective configuration with secrets masked.
//!
//! ```toml
//! data_dir = "./reelflow-data"     # SQLite file, objects and the embedded log
//!
//! [http]
//! listen = "127.0.0.1:8080"
//! cors_origins = []                # browser origins allowed to call the API
//! trust_forwarded_for = false      # client IP from X-Forwarded-For (behind a proxy)
//! max_body_bytes = 65536           # largest JSON request body
//! header_read_timeout_s = 10       # a request's head must arrive within this
//! body_idle_timeout_s = 30         # a request body may send nothing for this long
//! max_connections_per_ip = 256     # open connections per client address; 0 = no limit
//! metrics_listen = "0.0.0.0:9090"  # /metrics without accounts; unset = admins only, on listen
//!
//! [log]
//! backend = "embedded"             # or "kafka"
//! partitions = 8                   # partitions per topic when creating topics
//! fsync = "always"                 # embedded log: "always" or "never"
//!
//! [kafka]
//! brokers = "127.0.0.1:9092"
//! replication_factor = 1
//!
//! [storage]
//! backend = "local"                # or "s3"
//!
//! [s3]
//! endpoint = "http://127.0.0.1:9000"
//! region = "us-east-1"
//! bucket = "reelflow"
//! access_key_id = "…"
//! secret_access_key = "…"
//! force_path_style = true
//! part_size_bytes = 8388608
//!
//! [database]
//! url = "sqlite://./reelflow-data/reelflow.db"   # default: under data_dir
//!
//! [auth]
//! access_ttl_s = 900               # access tokens: 15 minutes
//! refresh_ttl_s = 2592000          # refresh tokens: 30 days
//! keys_file = "…"                  # default: <data_dir>/auth-keys.json
//!
//! [uploads]
//! max_size_bytes = 8589934592      # 8 GiB per file
//! quota_bytes_per_user = 53687091200  # 50 GiB per account
//! expire_after_s = 86400           # unfinished uploads are dropped after a day
//! part_size_bytes = 8388608        # stored part size, and memory per upload in progress
//!
//! [transcode]
//! workers = 1                      # ffmpeg jobs at once per process
//! max_duration_s = 14400.0         # longer sources fail before decoding
//! max_dimension = 7680             # larger frames fail before decoding
//! timeout_s = 10800                # a job running longer is stopped
//! seconds_per_source_second = 20.0 # and one running longer than 60 s + this x the source's length
//! max_frame_repeat = 8.0           # sources with fewer frames than 1 per 8 output frames are refused
//! work_dir = "…"                   # default: <data_dir>/transcode
//! listen = "0.0.0.0:8082"          # `reelflow transcode`: /healthz, /readyz, /metrics; unset = none
//!
//! [dataflow]                       # `reelflow dataflow` and `reelflow up`
//! workers = 0                      # timely workers per process; 0 = one per core
//! process = 0                      # this process's index in `peers`
//! peers = []                       # host:port of every process, same order everywhere; [] = one process
//! hostfile = "…"                   # or: a file with one host:port per line
//! statefulset_peers = "…"          # or: "reelflow-dataflow-{i}.reelflow-dataflow:2101"; the index comes
//!                                  # from the pod name ($HOSTNAME), the count from `replicas`
//! replicas = 1
//! listen = "127.0.0.1:8081"        # `reelflow dataflow`: views, /metrics, /healthz, /readyz
//! history_s = 300                  # past times readable with as_of
//! idle_grace_ms = 25               # idle partitions' frontier trails the clock by this much
//! idle_check_ms = 5                # how often idle partitions are checked; longer: less idle CPU, staler views
//! tick_ms = 10                     # records' times are rounded up to this; longer: less work, staler views
//! catch_up_tick_ms = 1000          # the same for records older than the history, read on a restart
//!
//! [limits]                         # per process
//! register_per_ip_per_hour = 20
//! login_per_ip_per_minute = 30
//! login_per_account_per_minute = 10
//! api_per_user_per_minute = 1200
//! beacons_per_session_per_minute = 60   # player beacon batches
//! beacons_per_ip_per_minute = 3000
//! sessions_per_ip_per_minute = 30  # new playback sessions (views) per address
//!
//! [playback]
//! token_ttl_s = 21600              # signed playback tokens: 6 hours
//! cache_bytes = 268435456          # hot segments kept in memory
//! cache_object_max_bytes = 16777216  # larger objects are streamed, not cached
//! access_ttl_ms = 2000             # a video's visibility is remembered this long
//! max_batch_events = 100           # player events per beacon batch
//!
//! [sql]                            # where the dataflows run (`reelflow up`, `reelflow dataflow`)
//! pgwire_listen = "127.0.0.1:6875" # psql -h 127.0.0.1 -p 6875 -U you@example.org
//! timeout_s = 30                   # per statement
//! memory_mib = 256                 # per statement (sorts, joins, aggregates)
//! http_row_limit = 10000           # rows per POST /v1/sql answer
//! max_statement_bytes = 262144     # longer statements are refused before planning
//! max_statement_operators = 2000   # +, AND, ||, UNION … per statement
//! max_expression_depth = 200       # a chain of n operators is n deep
//! max_value_mib = 16               # largest string or list a function may build
//! statements_per_user = 4          # running at once per account (admins excepted)
//! tls_cert = "/etc/reelflow/tls/tls.crt"   # TLS on the wire protocol (PEM), with tls_key
//! tls_key = "/etc/reelflow/tls/tls.key"
//! allow_plaintext_passwords = false  # passwords over plaintext from other hosts; loopback always may
//! upstream = "http://reelflow-dataflow:8081"   # API without dataflows: where /v1/sql and /v1/views go
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use reelflow_ingest::log::{FsyncPolicy, KafkaConfig};
use reelflow_ingest::storage::S3Config;
use serde::{Deserialize, Serialize};

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

/// SQL over the live views (where the dataflows run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlConfig {
    /// Where the PostgreSQL wire protocol listens.
    pub pgwire_listen: SocketAddr,
    /// Longest a statement may run, seconds.
    pub timeout_s: u64,
    /// Memory one statement's operators may hold, MiB.
    pub memory_mib: usize,
    /// Most rows an HTTP answer carries.
    pub http_row_limit: usize,
    /// Changes a `SUBSCRIBE` may have waiting for its client before it is dropped as too slow.
    pub subscribe_buffer: usize,
    /// Longest statement accepted, bytes.
    pub max_statement_bytes: usize,
    /// Most operators (`+`, `AND`, `||`, `UNION` …) in one statement.
    pub max_statement_operators: usize,
    /// Deepest expression in one statement (a chain of n operators is n deep).
    pub max_expression_depth: usize,
    /// Largest value (a string, a list) one function may build, MiB.
    pub max_value_mib: usize,
    /// Statements one account (admins excepted) may run at once.
    pub statements_per_user: usize,
    /// PEM certificate chain for TLS on the wire protocol (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS on the wire protocol.
    pub tls_key: Option<PathBuf>,
    /// Accept passwords over plaintext connections from other hosts (a
    /// trusted network, or a proxy that terminates TLS); loopback always may.
    pub allow_plaintext_passwords: bool,
    /// Where an API process without dataflows forwards `/v1/sql`: the dataflow service's
    /// listener, such as `http://reelflow-dataflow:8081`.
    pub upstream: Option<String>,
}

impl Default for SqlConfig {
    fn default() -> Self {
        Self {
            pgwire_listen: SocketAddr::from(([127, 0, 0, 1], 6875)),
            timeout_s: 30,
            memory_mib: 256,
            http_row_limit: 10_000,
            subscribe_buffer: 100_000,
            max_statement_bytes: 256 << 10,
            max_statement_operators: 2_000,
            max_expression_depth: 200,
            max_value_mib: 16,
            statements_per_user: 4,
            tls_cert: None,
            tls_key: None,
            allow_plaintext_passwords: false,
            upstream: None,
        }
    }
}

impl SqlConfig {
    /// TLS for the wire protocol, as configured.
    pub fn pg_tls(&self) -> anyhow::Result<reelflow_sql::PgTls> {
        let mut tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => reelflow_sql::PgTls::from_pem_files(cert, key).map_err(anyhow::Error::msg)?,
            (None, None) => reelflow_sql::PgTls::default(),
            _ => bail!("sql.tls_cert and sql.tls_key go together: set both, or neither"),
        };
        tls.allow_plaintext_passwords = self.allow_plaintext_passwords;
        Ok(tls)
    }

    /// The engine's limits.
    pub fn limits(&self) -> reelflow_sql::SqlLimits {
        reelflow_sql::SqlLimits {
            timeout: std::time::Duration::from_secs(self.timeout_s),
            memory_bytes: self.memory_mib << 20,
            subscribe_buffer: self.subscribe_buffer,
            statement: reelflow_sql::StatementLimits {
                max_bytes: self.max_statement_bytes,
                max_operators: self.max_statement_operators,
                max_depth: self.max_expression_depth,
                ..reelflow_sql::StatementLimits::default()
            },
            max_value_bytes: self.max_value_mib << 20,
            statements_per_user: self.statements_per_user,
        }
    }
}

/// HLS delivery, playback tokens and the player's beacons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlaybackConfig {
    /// Lifetime of signed playback tokens, seconds.
    pub token_ttl_s: u64,
    /// Bytes of hot segments, init segments and pictures kept in memory.
    pub cache_bytes: u64,
    /// Objects larger than this are streamed from storage, never cached.
    pub cache_object_max_bytes: u64,
    /// How long a video's visibility is remembered between requests, ms.
    /// A change made on another replica takes at most this long to apply.
    pub access_ttl_ms: u64,
    /// Most player events in one beacon batch.
    pub max_batch_events: usize,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        Self {
            token_ttl_s: 6 * 3600,
            cache_bytes: 256 << 20,
            cache_object_max_bytes: 16 << 20,
            access_ttl_ms: 2000,
            max_batch_events: 100,
        }
    }
}

/// The dataflows: the timely cluster and how the views are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataflowConfig {
    /// Timely workers per process; 0 means one per core.
    pub workers: usize,
    /// This process's index among the peers.
    pub process: usize,
    /// `host:port` of every process of the cluster.
    pub peers: Vec<String>,
    /// A file listing the peers, one `host:port` per line.
    pub hostfile: Option<PathBuf>,
    /// StatefulSet peer address with `{i}` for the ordinal.
    pub statefulset_peers: Option<String>,
    /// Processes of the StatefulSet.
    pub replicas: usize,
    /// Where `reelflow dataflow` serves views and metrics.
    pub listen: SocketAddr,
    /// Seconds of past times that stay readable with `as_of`.
    pub history_s: u64,
    /// How far an idle partition's frontier trails the clock, ms.
    pub idle_grace_ms: u64,
    /// How often an idle partition is checked against its high watermark,
    /// ms: what an idle process spends its CPU on, and how soon the views
    /// pass a moment nothing happened in.
    pub idle_check_ms: u64,
    /// Records' times are rounded up to a multiple of this, ms: the
    /// views' granularity, which their work is counted in.
    pub tick_ms: u64,
    /// The same for records older than the retained history, ms.
    pub catch_up_tick_ms: u64,
}

impl Default for DataflowConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            process: 0,
            peers: Vec::new(),
            hostfile: None,
            statefulset_peers: None,
            replicas: 1,
            listen: "127.0.0.1:8081".parse().expect("valid address"),
            history_s: 300,
            idle_grace_ms: 25,
            idle_check_ms: 5,
            tick_ms: 10,
            catch_up_tick_ms: 1000,
        }
    }
}

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

/// Accounts and tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Lifetime of access tokens, seconds.
    pub access_ttl_s: u64,
    /// Lifetime of refresh tokens, seconds.
    pub refresh_ttl_s: u64,
    /// The signing key file; unset means `<data_dir>/auth-keys.json`.
    pub keys_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_ttl_s: 15 * 60,
            refresh_ttl_s: 30 * 24 * 3600,
            keys_file: None,
        }
    }
}

/// Rate limits (per process).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Registrations per client IP per hour.
    pub register_per_ip_per_hour: u32,
    /// Login attempts per client IP per minute.
    pub login_per_ip_per_minute: u32,
    /// Login attempts per account (email) per minute.
    pub login_per_account_per_minute: u32,
    /// Authenticated API requests per user per minute.
    pub api_per_user_per_minute: u32,
    /// Beacon batches per playback session per minute.
    pub beacons_per_session_per_minute: u32,
    /// Beacon batches per client IP per minute.
    pub beacons_per_ip_per_minute: u32,
    /// New playback sessions (views) per client IP.
    pub sessions_per_ip_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            register_per_ip_per_hour: 20,
            login_per_ip_per_minute: 30,
            login_per_account_per_minute: 10,
            api_per_user_per_minute: 1200,
            beacons_per_session_per_minute: 60,
            beacons_per_ip_per_minute: 3000,
            sessions_per_ip_per_minute: 30,
        }
    }
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

/// HTTP settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Origins allowed to call the API from a browser (CORS); empty allows
    /// none but the API's own.
    pub cors_origins: Vec<String>,
    /// Take the client IP (for rate limits) from `X-Forwarded-For`; only
    /// behind a proxy that sets it.
    pub trust_forwarded_for: bool,
    /// Largest JSON request body, bytes.
    pub max_body_bytes: usize,
    /// Longest a request's head may take to arrive, seconds.
    pub header_read_timeout_s: u64,
    /// Longest a request body may send nothing, seconds.
    pub body_idle_timeout_s: u64,
    /// Open connections one client address may hold; 0 for no limit (behind
    /// a proxy every connection comes from the proxy).
    pub max_connections_per_ip: usize,
    /// Where `/metrics` is served without accounts (for a scraper inside the
    /// cluster network); unset means only admins read it, on `listen`.
    pub metrics_listen: Option<SocketAddr>,
}

impl HttpConfig {
    /// The limits of the HTTP listeners.
    pub fn listen_limits(&self) -> crate::listener::ListenLimits {
        crate::listener::ListenLimits {
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_s),
            body_idle_timeout: std::time::Duration::from_secs(self.body_idle_timeout_s),
            max_connections_per_ip: self.max_connections_per_ip,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            cors_origins: Vec::new(),
            trust_forwarded_for: false,
            max_body_bytes: 64 * 1024,
            header_read_timeout_s: 10,
            body_idle_timeout_s: 30,
            max_connections_per_ip: 256,
            metrics_listen: None,
        }
    }
}

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
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            backend: LogBackend::Embedded,
            partitions: 8,
            fsync: FsyncPolicy::Always,
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

/// The metadata database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`; unset means a SQLite file under the
    /// data dir.
    pub url: Option<String>,
}

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

    fn apply(&mut self, a: &ConfigArgs) {
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

    /// The dataflow cluster this process belongs to. A StatefulSet pod
    /// takes its index from its name (`$HOSTNAME`).
    pub fn dataflow_cluster(&self) -> anyhow::Result<reelflow_dataflows::ClusterConfig> {
        use reelflow_dataflows::ClusterConfig;
        let d = &self.dataflow;
        let workers = if d.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            d.workers
        };
        let cluster = if let Some(template) = &d.statefulset_peers {
            if d.replicas == 0 {
                bail!("dataflow.replicas is 0: set it (REELFLOW_DATAFLOW_REPLICAS) to the StatefulSet's replica count");
            }
            let pod = std::env::var("HOSTNAME")
                .context("dataflow.statefulset_peers is set but $HOSTNAME (the pod name) is not")?;
            ClusterConfig::statefulset(workers, &pod, d.replicas, template)?
        } else if let Some(file) = &d.hostfile {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading dataflow.hostfile {}", file.display()))?;
            ClusterConfig::explicit(workers, d.process, ClusterConfig::parse_hostfile(&text))?
        } else {
            ClusterConfig::explicit(workers, d.process, d.peers.clone())?
        };
        Ok(cluster)
    }

    /// How to run the dataflows.
    pub fn dataflow_options(&self) -> anyhow::Result<reelflow_dataflows::DataflowOptions> {
        let mut options = reelflow_dataflows::DataflowOptions {
            cluster: self.dataflow_cluster()?,
            history: std::time::Duration::from_secs(self.dataflow.history_s),
            partitions: self.log.partitions,
            ..Default::default()
        };
        let ms = std::time::Duration::from_millis;
        options.source.idle_grace = ms(self.dataflow.idle_grace_ms);
        options.source.idle_check = ms(self.dataflow.idle_check_ms);
        options.source.tick = ms(self.dataflow.tick_ms);
        options.source.catch_up_tick = ms(self.dataflow.catch_up_tick_ms);
        Ok(options)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.data_dir.as_os_str().is_empty() {
            bail!("data_dir must not be empty");
        }
        if self.log.partitions == 0 || self.log.partitions > 10_000 {
            bail!(
                "log.partitions must be between 1 and 10000, not {}",
                self.log.partitions
            );
        }
        if self.log.backend == LogBackend::Kafka {
            if self.kafka.brokers.trim().is_empty() {
                bail!("kafka.brokers must name at least one host:port when log.backend = \"kafka\"");
            }
            for broker in self.kafka.brokers.split(',') {
                let ok = broker
                    .trim()
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !ok {
                    bail!("kafka.brokers entry {broker:?} is not host:port");
                }
            }
        }
        for origin in &self.http.cors_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) || origin.ends_with('/') {
                bail!("http.cors_origins entry {origin:?} must be an origin like https://app.example.com");
            }
        }
        if self.http.header_read_timeout_s == 0 || self.http.body_idle_timeout_s == 0 {
            bail!("http.header_read_timeout_s and http.body_idle_timeout_s must be positive");
        }
        if self.sql.timeout_s == 0
            || self.sql.memory_mib == 0
            || self.sql.http_row_limit == 0
            || self.sql.max_statement_bytes == 0
            || self.sql.max_expression_depth == 0
            || self.sql.max_value_mib == 0
            || self.sql.statements_per_user == 0
        {
            bail!(
                "sql.timeout_s, sql.memory_mib, sql.http_row_limit, sql.max_statement_bytes, \
                 sql.max_expression_depth, sql.max_value_mib and sql.statements_per_user must be positive"
            );
        }
        if self.playback.token_ttl_s < 60 {
            bail!("playback.token_ttl_s must be at least 60");
        }
        if !(1..=1000).contains(&self.playback.max_batch_events) {
            bail!("playback.max_batch_events must be between 1 and 1000");
        }
        if self.playback.cache_object_max_bytes > self.playback.cache_bytes {
            bail!("playback.cache_object_max_bytes must not exceed playback.cache_bytes");
        }
        if self.http.max_body_bytes < 1024 {
            bail!("http.max_body_bytes must be at least 1024");
        }
        if self.auth.access_ttl_s < 30 || self.auth.refresh_ttl_s < self.auth.access_ttl_s {
            bail!("auth.access_ttl_s must be at least 30 and auth.refresh_ttl_s at least as long");
        }
        if self.uploads.part_size_bytes < 5 * 1024 * 1024 {
            bail!("uploads.part_size_bytes must be at least 5242880 (S3's minimum part)");
        }
        if self.dataflow.workers > 1024 || self.dataflow.replicas == 0 {
            bail!("dataflow.workers must be at most 1024 and dataflow.replicas at least 1");
        }
        if self.dataflow.history_s == 0 {
            bail!("dataflow.history_s must be at least 1");
        }
        let d = &self.dataflow;
        if !(1..=1000).contains(&d.idle_check_ms) {
            bail!(
                "dataflow.idle_check_ms must be between 1 and 1000, not {}",
                d.idle_check_ms
            );
        }
        if !(1..=1000).contains(&d.tick_ms) {
            bail!("dataflow.tick_ms must be between 1 and 1000, not {}", d.tick_ms);
        }
        if d.catch_up_tick_ms < d.tick_ms || d.catch_up_tick_ms > 60_000 {
            bail!(
                "dataflow.catch_up_tick_ms must be between tick_ms ({}) and 60000, not {}",
                d.tick_ms,
                d.catch_up_tick_ms
            );
        }
        if self.transcode.workers == 0 || self.transcode.workers > 64 {
            bail!("transcode.workers must be between 1 and 64");
        }
        if self.uploads.max_size_bytes == 0 || self.uploads.expire_after_s < 60 {
            bail!("uploads.max_size_bytes must be positive and uploads.expire_after_s at least 60");
        }
        if self.kafka.replication_factor == 0 {
            bail!("kafka.replication_factor must be at least 1");
        }
        if self.storage.backend == StorageBackend::S3 {
            if self.s3.bucket.is_empty() {
                bail!("s3.bucket must be set when storage.backend = \"s3\"");
            }
            if let Some(endpoint) = &self.s3.endpoint
                && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
            {
                bail!("s3.endpoint {endpoint:?} must start with http:// or https://");
            }
            if self.s3.access_key_id.is_some() != self.s3.secret_access_key.is_some() {
                bail!("s3.access_key_id and s3.secret_access_key must be set together");
            }
        }
        if self.s3.part_size_bytes < 5 * 1024 * 1024 {
            bail!(
                "s3.part_size_bytes must be at least 5242880 (S3's minimum part), not {}",
                self.s3.part_size_bytes
            );
        }
        if let Some(url) = &self.database.url
            && !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            bail!("database.url must start with sqlite:, postgres:// or postgresql://");
        }
        Ok(())
    }

    /// The database URL, defaulting to a SQLite file under the data dir.
    pub fn database_url(&self) -> String {
        self.database
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join("reelflow.db").display()))
    }

    /// Where the embedded log lives.
    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("log")
    }

    /// The token signing key file.
    pub fn keys_file(&self) -> PathBuf {
        self.auth
            .keys_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("auth-keys.json"))
    }

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

    /// Where local objects live.
    pub fn objects_dir(&self) -> PathBuf {
        self.data_dir.join("objects")
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

/// Replaces the password of `scheme://user:password@host…` with `****`.
pub fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:****@{host}"),
        None => url.to_string(),
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
    fn the_dataflows_ticks_come_from_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("reelflow.toml");
        std::fs::write(
            &file,
            "[dataflow]\nidle_check_ms = 20\ntick_ms = 50\ncatch_up_tick_ms = 5000\n",
        )
        .expect("write");
        let args = ConfigArgs {
            file: Some(file.clone()),
            ..Default::default()
        };
        let source = Config::load(&args)
            .expect("valid")
            .dataflow_options()
            .expect("options")
            .source;
        assert_eq!(source.idle_check, std::time::Duration::from_millis(20));
        assert_eq!(source.tick, std::time::Duration::from_millis(50));
        assert_eq!(source.catch_up_tick, std::time::Duration::from_secs(5));

        for (text, named) in [
            ("tick_ms = 0", "dataflow.tick_ms"),
            ("idle_check_ms = 0", "dataflow.idle_check_ms"),
            ("tick_ms = 100\ncatch_up_tick_ms = 50", "dataflow.catch_up_tick_ms"),
        ] {
            std::fs::write(&file, format!("[dataflow]\n{text}\n")).expect("write");
            let err = format!("{:#}", Config::load(&args).expect_err(text));
            assert!(err.contains(named), "{text}: {err}");
        }
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
