//! SQL behaviour as golden files: every `tests/slt/*.slt` file runs, with
//! the `sqllogictest` crate, against the live views of one fixed fixture of
//! events (two videos, their uploads and processing, four playback
//! sessions) kept by the real dataflows on an embedded log, over each of
//! the three front ends a user has: the engine in process, the PostgreSQL
//! wire protocol (tokio-postgres, the extended protocol, binary values)
//! and HTTP (`POST /v1/sql`, JSON). Every front end must give the same rows
//! and the same errors.
//!
//! The files are standard sqllogictest, with one statement the harness
//! reads itself (never sent to Reelflow): who the caller is from there on.
//!
//! ```text
//! statement ok
//! principal creator <user uuid> <video uuid>,…   (or: admin, viewer <uuid>)
//!
//! query TI rowsort                                (T text, I integer, R float)
//! SELECT …
//! ----
//! value value …                                   (one line per row)
//!
//! statement error ^<SQLSTATE>: .*<what the message says>
//! SELECT …
//! ```
//!
//! Values are written the same whatever the front end: `NULL`, `(empty)`
//! for an empty string, spaces as `_`, lists as `[a,b]`, numbers and
//! booleans as JSON writes them (`100.0`, `true`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::response::IntoResponse;
use reelflow_dataflows::workload::{create_topics, embedded, stamped};
use reelflow_dataflows::{ClusterConfig, DataflowOptions, Dataflows};
use reelflow_ingest::EventLog;
use reelflow_ingest::events::{
    CatalogEvent, Envelope, PlaybackEvent, PlaybackKind, ProcessingEvent, Rendition, TopicEvent, UploadEvent,
    VideoMeta, Visibility,
};
use reelflow_sql::{Authenticator, PgServer, Principal, SqlEngine, SqlLimits};
use serde_json::Value;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use uuid::Uuid;

const ALICE: Uuid = Uuid::from_u128(0xa11c3);
const BOB: Uuid = Uuid::from_u128(0xb0b);
const VIEWER: Uuid = Uuid::from_u128(0x71e3e3);
const JAZZ: Uuid = Uuid::from_u128(0x1a22);
const ROCK: Uuid = Uuid::from_u128(0x20c4);

fn session(n: u128) -> Uuid {
    Uuid::from_u128(0x5e55_0000 + n)
}

async fn put<T: TopicEvent>(log: &reelflow_ingest::log::AnyLog, event: T) {
    let e = Envelope::new(event);
    log.append(T::TOPIC, e.key().as_bytes(), &e.to_bytes())
        .await
        .expect("append");
}

async fn play(log: &reelflow_ingest::log::AnyLog, s: Uuid, video: Uuid, user: Option<Uuid>, kinds: Vec<PlaybackKind>) {
    for kind in kinds {
        put(
            log,
            PlaybackEvent {
                session_id: s,
                video_id: video,
                user_id: user,
                kind,
            },
        )
        .await;
    }
}

/// The fixture: Alice's jazz video is ready and watched three times, Bob's
/// rock video failed processing and was tried once.
async fn fixture(log: &reelflow_ingest::log::AnyLog) {
    let meta = |owner: Uuid, title: &str, genre: &str| VideoMeta {
        owner_id: owner,
        title: title.into(),
        description: String::new(),
        genre: Some(genre.into()),
        language: Some("en".into()),
        visibility: Visibility::Public,
        tags: vec![],
    };
    put(
        log,
        CatalogEvent::VideoCreated {
            video_id: JAZZ,
            video: meta(ALICE, "Blue in Green", "jazz"),
        },
    )
    .await;
    put(
        log,
        CatalogEvent::VideoCreated {
            video_id: ROCK,
            video: meta(BOB, "Riff", "rock"),
        },
    )
    .await;
    for (video, owner, size) in [(JAZZ, ALICE, 1_000_000u64), (ROCK, BOB, 2_500_000)] {
        put(
            log,
            UploadEvent::UploadCompleted {
                video_id: video,
                upload_id: Uuid::from_u128(video.as_u128() + 1),
                owner_id: owner,
                object_key: format!("videos/{video}/source"),
                size_bytes: size,
                checksum: None,
                file_name: None,
                content_type: None,
            },
        )
        .await;
    }
    put(log, ProcessingEvent::Queued { video_id: JAZZ }).await;
    put(
        log,
        ProcessingEvent::Ready {
            video_id: JAZZ,
            renditions: ["720p", "360p"]
                .iter()
                .map(|n| Rendition {
                    name: (*n).into(),
                    width: 0,
                    height: 0,
                    bandwidth_bps: 1_000_000,
                })
                .collect(),
            duration_s: 100.0,
            poster_key: None,
            storyboard_key: None,
            output_bytes: 0,
            first_playable_s: None,
        },
    )
    .await;
    put(
        log,
        ProcessingEvent::Failed {
            video_id: ROCK,
            reason: "not a video".into(),
        },
    )
    .await;
    use PlaybackKind as K;
    let hb = |position_s: f64, played_ms: u64| K::Heartbeat {
        position_s,
        played_ms,
        rendition: Some("720p".into()),
        bitrate_kbps: Some(2000),
    };
    // The viewer watches jazz to the end.
    play(
        log,
        session(1),
        JAZZ,
        Some(VIEWER),
        vec![
            K::SessionStart { player: None },
            K::FirstFrame { startup_ms: 800 },
            hb(50.0, 50_000),
            hb(100.0, 50_000),
            K::End { position_s: 100.0 },
        ],
    )
    .await;
    // Someone watches 20 s of jazz with a 2 s stall, then pauses.
    play(
        log,
        session(2),
        JAZZ,
        None,
        vec![
            K::SessionStart { player: None },
            K::FirstFrame { startup_ms: 1200 },
            K::RebufferStart { position_s: 10.0 },
            K::RebufferEnd { duration_ms: 2000 },
            hb(20.0, 20_000),
            K::Pause { position_s: 20.0 },
        ],
    )
    .await;
    // Someone leaves jazz before it starts.
    play(
        log,
        session(3),
        JAZZ,
        None,
        vec![K::SessionStart { player: None }, K::End { position_s: 0.0 }],
    )
    .await;
    // Rock fails for its only viewer.
    play(
        log,
        session(4),
        ROCK,
        None,
        vec![
            K::SessionStart { player: None },
            K::Error {
                code: "manifestLoadError".into(),
                message: "404".into(),
                fatal: true,
            },
        ],
    )
    .await;
}

/// A value as the golden files write it: `NULL`, `(empty)`, spaces as
/// underscores, lists in brackets, numbers and booleans as JSON writes them.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) if s.is_empty() => "(empty)".into(),
        Value::String(s) => s.replace(' ', "_"),
        Value::Array(items) => format!("[{}]", items.iter().map(text).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// The fixture's events in an embedded log, the dataflows over them caught
/// up with the last, and an engine over the views.
async fn fixture_engine() -> (tempfile::TempDir, Dataflows, SqlEngine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = embedded(dir.path());
    create_topics(&log, 3).await;
    fixture(&log).await;
    let dataflows = Dataflows::start(
        log.clone(),
        DataflowOptions {
            cluster: ClusterConfig::single(2),
            partitions: 3,
            ..DataflowOptions::default()
        },
    )
    .await
    .expect("dataflows");
    let client = dataflows.client();
    // Wait for the time of the fixture's last event as the sources stamp it.
    let (facts, _, _) = stamped(&log, DataflowOptions::default().source.tick.as_millis() as u64).await;
    let last = facts.iter().map(|(t, _)| *t).max().expect("facts");
    client
        .wait_until_readable(last, Duration::from_secs(30))
        .await
        .expect("the views catch up with the fixture");
    let engine = SqlEngine::new(client, SqlLimits::default()).expect("engine");
    (dir, dataflows, engine)
}

/// The fast path (a prepared `SELECT … FROM view WHERE key = $1`, and the
/// same with a literal) answers exactly what DataFusion answers, for every
/// view with a one-column key, every kind of caller and keys that exist,
/// do not, and cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_path_answers_as_datafusion_does() {
    let (_dir, dataflows, engine) = fixture_engine().await;
    let principals = [
        Principal::Admin,
        Principal::Creator {
            user_id: ALICE,
            videos: Arc::new(HashSet::from([JAZZ])),
        },
        Principal::Viewer { user_id: VIEWER },
    ];
    let keys = [
        JAZZ.to_string(),
        ROCK.to_string(),
        ALICE.to_string(),
        VIEWER.to_string(),
        Uuid::from_u128(7).to_string(),
        "not a uuid".to_string(),
    ];
    let mut fast = 0;
    let mut non_empty = 0;
    for view in reelflow_dataflows::View::ALL {
        let def = view.def();
        if def.key.len() != 1 {
            continue;
        }
        let key = def.key[0].name;
        let columns: Vec<&str> = def.columns().map(|c| c.name).collect();
        // A subset of the columns, in another order, and all of them.
        let picked = format!("{}, {key}", columns[columns.len() - 1]);
        for select in ["*".to_string(), picked] {
            let prepared = format!("SELECT {select} FROM {} WHERE {key} = $1", def.name);
            // Not the fast path's shape: DataFusion answers it.
            let planned = format!("SELECT {select} FROM {} WHERE {key} = $1 AND TRUE", def.name);
            for principal in &principals {
                for value in &keys {
                    let param = vec![datafusion::common::ScalarValue::Utf8(Some(value.clone()))];
                    let want = engine
                        .query_with_params(&planned, param.clone(), principal.clone())
                        .await
                        .expect("DataFusion");
                    let want = table_rows(&want);
                    non_empty += usize::from(!want.is_empty());
                    // The first run plans; the next ones take the fast path.
                    for _ in 0..3 {
                        let got = engine
                            .query_with_params(&prepared, param.clone(), principal.clone())
                            .await
                            .expect("fast path");
                        assert_eq!(
                            got.schema,
                            want_schema(&engine, &planned, &param, principal).await,
                            "{prepared}"
                        );
                        assert_eq!(table_rows(&got), want, "{prepared} with {value} as {principal:?}");
                    }
                    fast += 2;
                    let literal = prepared.replace("$1", &format!("'{value}'"));
                    for _ in 0..2 {
                        let got = engine.query(&literal, principal.clone()).await.expect("fast path");
                        assert_eq!(table_rows(&got), want, "{literal} as {principal:?}");
                    }
                    fast += 1;
                }
            }
        }
    }
    assert!(non_empty >= 10, "the fixture has rows for these keys ({non_empty})");
    assert!(
        engine.fast_path_answers() >= fast,
        "the fast path answered {} of the {fast} statements it should have",
        engine.fast_path_answers()
    );
    dataflows.shutdown();
}

async fn want_schema(
    engine: &SqlEngine,
    sql: &str,
    params: &[datafusion::common::ScalarValue],
    principal: &Principal,
) -> datafusion::arrow::datatypes::SchemaRef {
    engine
        .query_with_params(sql, params.to_vec(), principal.clone())
        .await
        .expect("DataFusion")
        .schema
}

fn table_rows(out: &reelflow_sql::QueryOutput) -> Vec<String> {
    let mut rows = Vec::new();
    for b in &out.batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| text(&reelflow_sql::http::cell(c, r)))
                .collect();
            rows.push(cells.join(" "));
        }
    }
    rows
}

/// The caller a golden file names, as the harness's `principal` statement
/// writes it; also the user name over pgwire and the token over HTTP.
fn principal(caller: &str) -> Result<Principal, String> {
    let words: Vec<&str> = caller.split_whitespace().collect();
    let uuid = |i: usize| -> Result<Uuid, String> {
        words
            .get(i)
            .ok_or_else(|| format!("{caller:?} needs a user id"))?
            .parse()
            .map_err(|e| format!("{caller:?}: {e}"))
    };
    match words.first().copied() {
        Some("admin") => Ok(Principal::Admin),
        Some("viewer") => Ok(Principal::Viewer { user_id: uuid(1)? }),
        Some("creator") => Ok(Principal::Creator {
            user_id: uuid(1)?,
            videos: Arc::new(
                words
                    .get(2)
                    .map_or(Ok(HashSet::new()), |v| v.split(',').map(str::parse).collect())
                    .map_err(|e| format!("{caller:?}: {e}"))?,
            ),
        }),
        other => Err(format!("unknown principal {other:?}")),
    }
}

/// The golden files' accounts over pgwire: the user name is the caller,
/// and any password will do (the accounts and their passwords are
/// `serve`'s, tested there).
#[derive(Debug)]
struct GoldenCallers;

#[async_trait::async_trait]
impl Authenticator for GoldenCallers {
    async fn verify(&self, user: &str, _password: &str, _client: &str) -> Result<bool, String> {
        Ok(principal(user).is_ok())
    }

    async fn principal(&self, user: &str) -> Result<Principal, String> {
        principal(user)
    }
}

/// A statement's failure, as every front end reports it: its SQLSTATE
/// and its message.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
struct Failed {
    code: String,
    message: String,
}

impl From<reelflow_sql::SqlError> for Failed {
    fn from(e: reelflow_sql::SqlError) -> Self {
        Failed {
            code: e.code.to_string(),
            message: e.message,
        }
    }
}

/// The front ends the files run over.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Front {
    InProcess,
    Wire,
    Http,
}

/// Where the front ends listen.
#[derive(Clone)]
struct Servers {
    engine: SqlEngine,
    pg: std::net::SocketAddr,
    http: String,
}

/// One connection of the runner, over one front end, as the caller the
/// file names last (the admin until it names one).
struct Golden {
    front: Front,
    servers: Servers,
    caller: String,
    pg: Option<tokio_postgres::Client>,
    http: reqwest::Client,
}

impl Golden {
    fn new(front: Front, servers: Servers) -> Self {
        Golden {
            front,
            servers,
            caller: "admin".into(),
            pg: None,
            http: reqwest::Client::new(),
        }
    }

    async fn in_process(&self, sql: &str) -> Result<Output, Failed> {
        let principal = principal(&self.caller).expect("checked when named");
        let out = self.servers.engine.query(sql, principal).await?;
        let types = out
            .schema
            .fields()
            .iter()
            .map(|f| arrow_column_type(f.data_type()))
            .collect();
        Ok(DBOutput::Rows {
            types,
            rows: table_cells(&out),
        })
    }

    async fn wire(&mut self, sql: &str) -> Result<Output, Failed> {
        if self.pg.is_none() {
            let mut config = tokio_postgres::Config::new();
            config
                .host(self.servers.pg.ip().to_string())
                .port(self.servers.pg.port())
                .user(&self.caller)
                .password("any")
                .dbname("reelflow");
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(wire_error)?;
            tokio::spawn(connection);
            self.pg = Some(client);
        }
        let client = self.pg.as_ref().expect("connected");
        let statement = client.prepare(sql).await.map_err(wire_error)?;
        let rows = client.query(&statement, &[]).await.map_err(wire_error)?;
        let types = statement.columns().iter().map(|c| pg_column_type(c.type_())).collect();
        let rows = rows
            .iter()
            .map(|row| (0..row.len()).map(|i| pg_cell(row, i)).collect())
            .collect::<Result<_, _>>()?;
        Ok(DBOutput::Rows { types, rows })
    }

    async fn over_http(&self, sql: &str) -> Result<Output, Failed> {
        let response = self
            .http
            .post(format!("{}/v1/sql", self.servers.http))
            .bearer_auth(&self.caller)
            .json(&serde_json::json!({ "query": sql }))
            .send()
            .await
            .expect("the HTTP front end answers");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON body");
        if !status.is_success() {
            return Err(Failed {
                code: body["sqlstate"].as_str().unwrap_or("no sqlstate").to_string(),
                message: body["detail"].as_str().unwrap_or("no detail").to_string(),
            });
        }
        let types = body["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| match c["type"].as_str() {
                Some("int2" | "int4" | "int8") => DefaultColumnType::Integer,
                Some("float4" | "float8") => DefaultColumnType::FloatingPoint,
                _ => DefaultColumnType::Text,
            })
            .collect();
        let rows = body["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r.as_array().expect("a row").iter().map(text).collect())
            .collect();
        Ok(DBOutput::Rows { types, rows })
    }
}

type Output = DBOutput<DefaultColumnType>;

#[async_trait::async_trait]
impl AsyncDB for Golden {
    type Error = Failed;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<Output, Failed> {
        if let Some(caller) = sql.trim().strip_prefix("principal ") {
            principal(caller).map_err(|message| Failed {
                code: "harness".into(),
                message,
            })?;
            self.caller = caller.trim().to_string();
            self.pg = None;
            return Ok(DBOutput::StatementComplete(0));
        }
        match self.front {
            Front::InProcess => self.in_process(sql).await,
            Front::Wire => self.wire(sql).await,
            Front::Http => self.over_http(sql).await,
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        match self.front {
            Front::InProcess => "in-process",
            Front::Wire => "pgwire",
            Front::Http => "http",
        }
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }

    fn error_sql_state(err: &Failed) -> Option<String> {
        Some(err.code.clone())
    }
}

fn wire_error(e: tokio_postgres::Error) -> Failed {
    match e.as_db_error() {
        Some(db) => Failed {
            code: db.code().code().to_string(),
            message: db.message().to_string(),
        },
        None => Failed {
            code: "connection".into(),
            message: e.to_string(),
        },
    }
}

fn arrow_column_type(ty: &datafusion::arrow::datatypes::DataType) -> DefaultColumnType {
    use datafusion::arrow::datatypes::DataType;
    match ty {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DefaultColumnType::Integer,
        DataType::Float32 | DataType::Float64 => DefaultColumnType::FloatingPoint,
        _ => DefaultColumnType::Text,
    }
}

fn pg_column_type(ty: &tokio_postgres::types::Type) -> DefaultColumnType {
    use tokio_postgres::types::Type;
    match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 => DefaultColumnType::Integer,
        Type::FLOAT4 | Type::FLOAT8 => DefaultColumnType::FloatingPoint,
        _ => DefaultColumnType::Text,
    }
}

/// A value read over pgwire in its binary form, written as the files write
/// values; a value the client cannot read as its column's type fails the
/// statement.
fn pg_cell(row: &tokio_postgres::Row, i: usize) -> Result<String, Failed> {
    use tokio_postgres::types::Type;
    let ty = row.columns()[i].type_().clone();
    let unreadable = |e: tokio_postgres::Error| Failed {
        code: "client".into(),
        message: format!("column {i} ({ty}) does not read as its type: {e:?}"),
    };
    let json = match ty {
        Type::INT2 => serde_json::json!(row.try_get::<_, Option<i16>>(i).map_err(unreadable)?),
        Type::INT4 => serde_json::json!(row.try_get::<_, Option<i32>>(i).map_err(unreadable)?),
        Type::INT8 => serde_json::json!(row.try_get::<_, Option<i64>>(i).map_err(unreadable)?),
        Type::FLOAT4 => serde_json::json!(row.try_get::<_, Option<f32>>(i).map_err(unreadable)?),
        Type::FLOAT8 => serde_json::json!(row.try_get::<_, Option<f64>>(i).map_err(unreadable)?),
        Type::BOOL => serde_json::json!(row.try_get::<_, Option<bool>>(i).map_err(unreadable)?),
        Type::TIMESTAMPTZ => serde_json::json!(
            row.try_get::<_, Option<chrono::DateTime<chrono::Utc>>>(i)
                .map_err(unreadable)?
                .map(|t| reelflow_dataflows::format_timestamp(t.timestamp_millis()))
        ),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => {
            serde_json::json!(row.try_get::<_, Option<Vec<Option<String>>>>(i).map_err(unreadable)?)
        }
        Type::INT8_ARRAY => serde_json::json!(row.try_get::<_, Option<Vec<Option<i64>>>>(i).map_err(unreadable)?),
        Type::FLOAT8_ARRAY => serde_json::json!(row.try_get::<_, Option<Vec<Option<f64>>>>(i).map_err(unreadable)?),
        Type::BOOL_ARRAY => serde_json::json!(row.try_get::<_, Option<Vec<Option<bool>>>>(i).map_err(unreadable)?),
        _ => serde_json::json!(row.try_get::<_, Option<String>>(i).map_err(unreadable)?),
    };
    Ok(text(&json))
}

/// Each row's values, written as the files write them.
fn table_cells(out: &reelflow_sql::QueryOutput) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for b in &out.batches {
        for r in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| text(&reelflow_sql::http::cell(c, r)))
                    .collect(),
            );
        }
    }
    rows
}

/// The HTTP front end: the statement of the body, answered as the caller
/// the bearer token names.
async fn http_sql(
    axum::extract::State(engine): axum::extract::State<SqlEngine>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> axum::response::Response {
    let caller = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    match principal(caller) {
        Ok(principal) => reelflow_sql::http::answer(&engine, principal, None, &headers, &body, 10_000).await,
        Err(e) => (axum::http::StatusCode::UNAUTHORIZED, e).into_response(),
    }
}

/// Starts the pgwire and HTTP front ends over `engine` on loopback.
async fn serve_front_ends(engine: SqlEngine) -> Servers {
    let pg = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind pgwire");
    let pg_addr = pg.local_addr().expect("pgwire address");
    tokio::spawn(PgServer::new(engine.clone(), Arc::new(GoldenCallers)).serve(pg));
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let http_addr = http.local_addr().expect("http address");
    let app = axum::Router::new()
        .route("/v1/sql", axum::routing::post(http_sql))
        .with_state(engine.clone());
    tokio::spawn(async move { axum::serve(http, app).await });
    Servers {
        engine,
        pg: pg_addr,
        http: format!("http://{http_addr}"),
    }
}

/// Every golden file, over every front end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_files_over_every_front_end() {
    let (_dir, dataflows, engine) = fixture_engine().await;
    let servers = serve_front_ends(engine).await;
    // As `cargo test` gives it when it runs the test: the path compiled in
    // is where the binary was built, which a shared build cache can hand
    // to another checkout.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from);
    let slt_dir = manifest_dir.join("tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&slt_dir)
        .expect("tests/slt")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "the golden files in {}", slt_dir.display());
    let mut failures = Vec::new();
    for front in [Front::InProcess, Front::Wire, Front::Http] {
        for file in &files {
            let servers = servers.clone();
            let mut runner = sqllogictest::Runner::new(move || {
                let servers = servers.clone();
                async move { Ok::<_, Failed>(Golden::new(front, servers)) }
            });
            // The files say each column's type; every front end must
            // give the same.
            runner.with_column_validator(sqllogictest::strict_column_validator);
            if let Err(e) = runner.run_file_async(file).await {
                failures.push(format!("{front:?}: {}", e.display(false)));
            }
            runner.shutdown_async().await;
        }
    }
    dataflows.shutdown();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every integer width and every list a statement can compute reads in
/// binary over pgwire as the type it is described as: an unsigned result
/// (`array_length`) was described as int8 and sent as text, which a binary
/// client (tokio-postgres, asyncpg) could not read; lists of numbers and
/// booleans were the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_unsigned_and_list_results_read_in_binary_over_pgwire() {
    let (_dir, dataflows, engine) = fixture_engine().await;
    let servers = serve_front_ends(engine).await;
    let mut wire = Golden::new(Front::Wire, servers.clone());
    let mut here = Golden::new(Front::InProcess, servers);
    for sql in [
        "SELECT array_length(renditions, 1) FROM video_status WHERE status = 'ready'",
        "SELECT arrow_cast(7, 'Int8'), arrow_cast(7, 'UInt8'), arrow_cast(7, 'UInt16'), arrow_cast(7, 'UInt32'), arrow_cast(7, 'UInt64')",
        "SELECT make_array(1, NULL, 3), make_array(0.5, 2.0), make_array(true, NULL)",
    ] {
        let over_the_wire = wire.run(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let in_process = here.run(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        match (over_the_wire, in_process) {
            (DBOutput::Rows { rows: a, types: ta }, DBOutput::Rows { rows: b, types: tb }) => {
                assert_eq!(a, b, "{sql}");
                assert_eq!(ta, tb, "{sql}");
                assert!(!a.is_empty(), "{sql}");
            }
            _ => panic!("{sql}: no rows"),
        }
    }
    // A value no bigint can hold is an error, not a wrong number.
    let e = match wire.run("SELECT arrow_cast(18446744073709551615, 'UInt64')").await {
        Err(e) => e,
        Ok(_) => panic!("a u64 above i64::MAX was sent as a bigint"),
    };
    assert_eq!(e.code, "22003", "{e}");
    dataflows.shutdown();
}
