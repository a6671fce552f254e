//! A Reelflow app for tests: the real router over a real database (a fresh
//! SQLite file, or a fresh database on the PostgreSQL server that
//! `scripts/services.sh` starts), the embedded log and a local object
//! store in a temporary directory. Requests go through `oneshot`, with the
//! client address set as a socket would set it.

#![allow(dead_code)]

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use reelflow_serve::config::{Config, ConfigArgs};
use reelflow_serve::platform::Platform;
use reelflow_serve::{AppState, app};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Database {
    Sqlite,
    Postgres,
}

/// Points `config` at the real S3 server of the test services, in a bucket
/// of its own.
pub fn use_s3(config: &mut Config) {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test.sh"));
    config.storage.backend = reelflow_serve::config::StorageBackend::S3;
    config.s3.endpoint = Some(var("REELFLOW_TEST_S3_ENDPOINT"));
    config.s3.access_key_id = Some(var("REELFLOW_TEST_S3_ACCESS_KEY_ID"));
    config.s3.secret_access_key = Some(var("REELFLOW_TEST_S3_SECRET_ACCESS_KEY"));
    config.s3.bucket = format!("rf-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
}

pub struct TestApp {
    pub state: AppState,
    pub config: Config,
    pub dir: tempfile::TempDir,
    pub ip: SocketAddr,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// A URL of a new, empty database on the test PostgreSQL server.
pub async fn fresh_postgres_url() -> String {
    use sqlx::Connection;
    let admin = std::env::var("REELFLOW_TEST_DATABASE_URL").expect(
        "REELFLOW_TEST_DATABASE_URL is not set: these tests need the real PostgreSQL; run scripts/test.sh \
         (or scripts/services.sh start, then eval \"$(scripts/services.sh env)\")",
    );
    let name = format!("rf_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let (base, _) = admin.rsplit_once('/').expect("database URL has a path");
    format!("{base}/{name}")
}

impl TestApp {
    pub async fn new(db: Database) -> Self {
        Self::with(db, |_| {}).await
    }

    /// An app whose configuration `adjust` may change first.
    pub async fn with(db: Database, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = match db {
            Database::Sqlite => None,
            Database::Postgres => Some(fresh_postgres_url().await),
        };
        let args = ConfigArgs {
            data_dir: Some(dir.path().to_path_buf()),
            database_url,
            ..Default::default()
        };
        let mut config = Config::load(&args).expect("config");
        // Tests register many accounts from one address; the rate-limit
        // tests lower these again.
        config.limits.register_per_ip_per_hour = 10_000;
        config.limits.login_per_ip_per_minute = 10_000;
        config.limits.login_per_account_per_minute = 10_000;
        adjust(&mut config);
        let platform = Platform::open(&config).await.expect("platform");
        let state = AppState::open(config.clone(), platform).await.expect("app state");
        Self {
            state,
            config,
            dir,
            ip: "203.0.113.7:40000".parse().expect("addr"),
        }
    }

    /// The same app after a restart: a new process state over the same data
    /// dir, database and object store.
    pub async fn restart(self) -> Self {
        let Self { state, config, dir, ip } = self;
        drop(state);
        let platform = Platform::open(&config).await.expect("platform");
        let state = AppState::open(config.clone(), platform).await.expect("app state");
        Self { state, config, dir, ip }
    }

    pub async fn call(&self, method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> Response {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(&v).expect("json"))
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).expect("request");
        req.extensions_mut().insert(ConnectInfo(self.ip));
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> Response {
        let response = app(self.state.clone()).oneshot(req).await.expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Response { status, headers, body }
    }

    pub async fn get(&self, uri: &str, token: Option<&str>) -> Response {
        self.call(Method::GET, uri, token, None).await
    }

    pub async fn post(&self, uri: &str, token: Option<&str>, body: Value) -> Response {
        self.call(Method::POST, uri, token, Some(body)).await
    }

    pub async fn patch(&self, uri: &str, token: Option<&str>, body: Value) -> Response {
        self.call(Method::PATCH, uri, token, Some(body)).await
    }

    pub async fn delete(&self, uri: &str, token: Option<&str>) -> Response {
        self.call(Method::DELETE, uri, token, None).await
    }

    /// Registers `email` (role creator unless given) and returns the session.
    pub async fn register(&self, email: &str, role: Option<&str>) -> Session {
        let mut body = json!({"email": email, "password": "correct horse battery"});
        if let Some(r) = role {
            body["role"] = json!(r);
        }
        let r = self.post("/v1/auth/register", None, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "register {email}: {}", r.body);
        Session::from(&r.body)
    }

    /// Makes `email` an admin the way an operator does (`reelflow user create --admin`
    /// writes the same row) and returns its session.
    pub async fn admin(&self, email: &str) -> Session {
        let hash = reelflow_serve::auth::password::hash("admin password 123".into())
            .await
            .expect("hash");
        reelflow_serve::accounts::create(
            &self.state.db,
            email,
            hash,
            reelflow_serve::accounts::Role::Admin,
            "Admin",
        )
        .await
        .expect("create admin");
        let r = self
            .post(
                "/v1/auth/login",
                None,
                json!({"email": email, "password": "admin password 123"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        Session::from(&r.body)
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub access: String,
    pub refresh: String,
}

impl From<&Value> for Session {
    fn from(v: &Value) -> Self {
        Self {
            user_id: v["user"]["id"].as_str().expect("user id").to_string(),
            access: v["access_token"].as_str().expect("access token").to_string(),
            refresh: v["refresh_token"].as_str().expect("refresh token").to_string(),
        }
    }
}

/// Asserts a problem document of `status` whose type ends with `slug`.
pub fn assert_problem(r: &Response, status: StatusCode, slug: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(
        r.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{}",
        r.body
    );
    assert_eq!(
        r.body["type"],
        format!("https://reelflow.dev/problems/{slug}"),
        "{}",
        r.body
    );
    assert_eq!(r.body["status"], status.as_u16());
}

/// Runs each named case against SQLite and PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::cases::$case(super::common::Database::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::cases::$case(super::common::Database::Postgres).await;
                }
            )*
        }
    };
}

/// The `reelflow` binary, configured only by what the test sets.
pub fn reelflow() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_reelflow"));
    for (k, _) in std::env::vars() {
        if k.starts_with("REELFLOW_") {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(std::process::Stdio::null());
    cmd
}

/// `reelflow up` as a separate process on `data_dir`, on a free port;
/// killed when dropped.
pub struct Up {
    child: std::process::Child,
    /// `host:port` it listens on.
    pub addr: String,
    /// `(host, port)` of its PostgreSQL wire protocol.
    pub pg: (String, u16),
}

impl Up {
    pub fn start(data_dir: &std::path::Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// `reelflow up` with more arguments (such as `--config FILE`).
    pub fn start_with(data_dir: &std::path::Path, extra: &[&str]) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = up_command(data_dir)
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start reelflow up");
        // "Reelflow is up at http://127.0.0.1:PORT/ (open it for the web console; data in …; SQL: psql -h HOST -p PORT -U <email>)"
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("banner");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .map(|a| a.trim_end_matches('/'))
            .expect("address in banner");
        let after = |flag: &str| {
            line.split(flag)
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .unwrap_or_else(|| panic!("{flag} in banner: {line}"))
                .to_string()
        };
        let pg = (after(" -h "), after(" -p ").parse().expect("pgwire port"));
        Self {
            addr: addr.to_string(),
            pg,
            child,
        }
    }
}

impl Up {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `reelflow up` on `data_dir`, on ports of its own choosing.
pub fn up_command(data_dir: &std::path::Path) -> std::process::Command {
    let mut cmd = reelflow();
    cmd.args([
        "up",
        "--listen",
        "127.0.0.1:0",
        "--sql-pgwire-listen",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(data_dir);
    cmd
}

/// Runs `cmd`, typing `password` and a newline on its standard input.
pub fn run_with_password(mut cmd: std::process::Command, password: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("password");
    child.wait_with_output().expect("wait")
}

/// Creates an admin in the database under `data_dir` with `reelflow user
/// create` (the password on standard input); returns its id.
pub fn create_admin(data_dir: &std::path::Path, email: &str, password: &str) -> uuid::Uuid {
    std::fs::create_dir_all(data_dir).expect("data dir");
    let mut cmd = reelflow();
    cmd.args(["user", "create", "--data-dir"]).arg(data_dir);
    create_admin_with(cmd, email, password)
}

/// Creates an admin account in the database at `database_url` with
/// `reelflow user create`; returns its id.
pub fn create_admin_at(database_url: &str, email: &str, password: &str) -> uuid::Uuid {
    let mut cmd = reelflow();
    cmd.args(["user", "create", "--database-url", database_url]);
    create_admin_with(cmd, email, password)
}

fn create_admin_with(mut cmd: std::process::Command, email: &str, password: &str) -> uuid::Uuid {
    cmd.args(["--email", email, "--admin"]);
    let out = run_with_password(cmd, password);
    assert!(
        out.status.success(),
        "user create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "created admin account EMAIL (ID)"
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .rsplit('(')
        .next()
        .and_then(|s| s.trim().trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("an id in {stdout}"))
}

/// Every event on `T`'s topic of `log`, each partition in order.
pub async fn topic_events<T: reelflow_ingest::events::TopicEvent, L: reelflow_ingest::EventLog>(log: &L) -> Vec<T> {
    use reelflow_ingest::PartitionReader;
    let n = log.partition_count(T::TOPIC).await.expect("partitions");
    let mut total = 0;
    for p in 0..n {
        total += log.high_watermark(T::TOPIC, p).await.expect("hw");
    }
    let assignment: Vec<(u32, u64)> = (0..n).map(|p| (p, 0)).collect();
    let mut reader = log.reader(T::TOPIC, &assignment).await.expect("reader");
    let mut out = Vec::new();
    while (out.len() as u64) < total {
        for r in reader
            .poll(1000, std::time::Duration::from_secs(5))
            .await
            .expect("poll")
        {
            out.push(
                reelflow_ingest::events::decode::<T>(&r.value)
                    .expect("a valid event")
                    .event,
            );
        }
    }
    out
}

/// The test services' Kafka broker as a log.
pub fn test_kafka() -> reelflow_ingest::log::AnyLog {
    let brokers = std::env::var("REELFLOW_TEST_KAFKA")
        .expect("REELFLOW_TEST_KAFKA is not set: these tests need the real Kafka broker; run scripts/test.sh");
    reelflow_ingest::log::AnyLog::Kafka(
        reelflow_ingest::log::KafkaLog::connect(reelflow_ingest::log::KafkaConfig {
            brokers,
            ..Default::default()
        })
        .expect("kafka"),
    )
}

/// Appends the seeded workload to `log` (3 partitions per topic, a pause
/// between phases) and reads the whole topics back as the sources stamp
/// them: the facts and their distinct times. Other tests share the topics,
/// so the facts are everything in them.
pub async fn append_workload(
    log: &reelflow_ingest::log::AnyLog,
    seed: u64,
    phases: usize,
    pause: std::time::Duration,
) -> (
    Vec<(reelflow_dataflows::Time, reelflow_dataflows::facts::Fact)>,
    Vec<reelflow_dataflows::Time>,
) {
    use reelflow_dataflows::workload;
    let w = workload::workload(seed, phases);
    workload::create_topics(log, 3).await;
    workload::append_all(log, &w, pause).await;
    let tick = reelflow_dataflows::SourceOptions::default().tick.as_millis() as reelflow_dataflows::Time;
    let (facts, _, times) = workload::stamped(log, tick).await;
    (facts, times)
}

/// Watches a `reelflow dataflow` process's standard output for its banner
/// ("… serving views at http://ADDR/v1/views; SQL: psql -h HOST -p PORT"),
/// printed once the cluster has formed; sends its HTTP address and
/// PostgreSQL port.
pub fn watch_banner(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<(String, u16)> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let addr = line.split("http://").nth(1).and_then(|s| s.split('/').next());
            let pg = line
                .split(" -p ")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|p| p.parse().ok());
            if let (Some(addr), Some(pg)) = (addr, pg) {
                let _ = tx.send((addr.to_string(), pg));
            }
        }
    });
    rx
}

/// Runs `script` (in `serve/tests/js`, with the locked playwright-core and
/// tus-js-client) with `args` under node, and returns the one JSON line it
/// prints.
#[allow(dead_code)]
pub fn node_report(script: &str, args: &[&std::ffi::OsStr]) -> Value {
    let js = manifest_dir().join("tests/js");
    assert!(
        js.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run scripts/test.sh (it runs npm ci in serve/tests/js)"
    );
    let out = std::process::Command::new("node")
        .current_dir(&js)
        .arg(script)
        .args(args)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node {script} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// This package's directory, as `cargo test` gives it when it runs the
/// test. The one compiled in is where the binary was built, which a build
/// cache shared between checkouts can hand to another checkout.
#[allow(dead_code)]
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}

/// `reelflow up` started with an admin account made beforehand (from the
/// command line, as an operator makes the first one) and `config` as its
/// file, with a blocking HTTP client for it: where the end-to-end SQL and
/// security tests begin.
pub struct UpWithAdmin {
    /// Holds the data directory (`data/`) and the config file.
    pub dir: tempfile::TempDir,
    /// The running process.
    pub up: Up,
    /// `http://ADDR` of its API.
    pub base: String,
    /// A client with a generous timeout.
    pub http: reqwest::blocking::Client,
}

impl UpWithAdmin {
    /// Creates the admin `email` with `password`, writes `config`, starts.
    pub fn start(email: &str, password: &str, config: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        create_admin(&data, email, password);
        let config_file = dir.path().join("reelflow.toml");
        std::fs::write(&config_file, config).expect("config");
        let up = Up::start_with(&data, &["--config", config_file.to_str().expect("path")]);
        let base = format!("http://{}", up.addr);
        let http = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("client");
        Self { dir, up, base, http }
    }

    /// Its data directory.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }
}

/// The reference's rows of `view` as the HTTP interface shows them, and as
/// a client reads them back (through JSON text, so floats parse the same
/// way on both sides).
pub fn view_as_json(
    view: reelflow_dataflows::View,
    rows: &[(reelflow_dataflows::Row, reelflow_dataflows::Row)],
) -> Vec<Value> {
    let def = view.def();
    let rows: Vec<Value> = rows
        .iter()
        .map(|(k, v)| {
            Value::Object(
                def.columns()
                    .zip(k.iter().chain(v))
                    .map(|(c, d)| (c.name.to_string(), d.to_json()))
                    .collect(),
            )
        })
        .collect();
    serde_json::from_str(&serde_json::to_string(&rows).expect("json")).expect("json")
}
