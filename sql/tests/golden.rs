//! SQL behaviour as golden files: every `tests/slt/*.slt` file runs against
//! the live views of one fixed fixture of events (two videos, their uploads
//! and processing, four playback sessions), kept by the real dataflows on an
//! embedded log.
//!
//! The files use the sqllogictest layout:
//!
//! ```text
//! # a comment
//! principal creator <user uuid> <video uuid>,…   (or: admin, viewer <uuid>)
//!
//! query [rowsort]
//! SELECT …
//! ----
//! value value …                                   (one line per row; NULL)
//!
//! statement error <SQLSTATE> <text the message contains>
//! SELECT …
//! ```
//!
//! `REELFLOW_SLT_REWRITE=1` rewrites the expected rows with the actual ones
//! (review the diff before committing it).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use reelflow_dataflows::workload::{create_topics, embedded, stamped};
use reelflow_dataflows::{ClusterConfig, DataflowOptions, Dataflows};
use reelflow_ingest::EventLog;
use reelflow_ingest::events::{
    CatalogEvent, Envelope, PlaybackEvent, PlaybackKind, ProcessingEvent, Rendition, TopicEvent, UploadEvent,
    VideoMeta, Visibility,
};
use reelflow_sql::{Principal, SqlEngine, SqlLimits};
use serde_json::Value;
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

/// One record of a file.
#[derive(Debug)]
enum Record {
    Principal(Principal),
    Query {
        sql: String,
        rowsort: bool,
        expected: Vec<String>,
        line: usize,
    },
    Error {
        sql: String,
        code: String,
        contains: String,
        line: usize,
    },
}

fn parse(text: &str) -> Vec<Record> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i + 1;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[0] {
            "principal" => {
                out.push(Record::Principal(match words.get(1).copied() {
                    Some("admin") => Principal::Admin,
                    Some("viewer") => Principal::Viewer {
                        user_id: words[2].parse().expect("uuid"),
                    },
                    Some("creator") => Principal::Creator {
                        user_id: words[2].parse().expect("uuid"),
                        videos: Arc::new(words.get(3).map_or(HashSet::new(), |v| {
                            v.split(',').map(|v| v.parse().expect("uuid")).collect()
                        })),
                    },
                    other => panic!("line {start}: unknown principal {other:?}"),
                }));
                i += 1;
            }
            "query" => {
                let rowsort = words.contains(&"rowsort");
                i += 1;
                let mut sql = Vec::new();
                while i < lines.len() && lines[i].trim() != "----" {
                    sql.push(lines[i]);
                    i += 1;
                }
                i += 1;
                let mut expected = Vec::new();
                while i < lines.len() && !lines[i].trim().is_empty() {
                    expected.push(lines[i].trim().to_string());
                    i += 1;
                }
                out.push(Record::Query {
                    sql: sql.join("\n"),
                    rowsort,
                    expected,
                    line: start,
                });
            }
            "statement" => {
                assert_eq!(
                    words.get(1),
                    Some(&"error"),
                    "line {start}: only `statement error` is supported"
                );
                let code = words.get(2).expect("SQLSTATE").to_string();
                let contains = words[3..].join(" ");
                i += 1;
                let mut sql = Vec::new();
                while i < lines.len() && !lines[i].trim().is_empty() {
                    sql.push(lines[i]);
                    i += 1;
                }
                out.push(Record::Error {
                    sql: sql.join("\n"),
                    code,
                    contains,
                    line: start,
                });
            }
            other => panic!("line {start}: unknown record {other:?}"),
        }
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) if s.is_empty() => "(empty)".into(),
        Value::String(s) => s.replace(' ', "_"),
        Value::Array(items) => format!("[{}]", items.iter().map(text).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

async fn rows(engine: &SqlEngine, sql: &str, principal: Principal) -> Result<Vec<String>, reelflow_sql::SqlError> {
    Ok(table_rows(&engine.query(sql, principal).await?))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_files() {
    let (_dir, dataflows, engine) = fixture_engine().await;
    let rewrite = std::env::var("REELFLOW_SLT_REWRITE").is_ok_and(|v| v == "1");
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
    assert!(!files.is_empty(), "no .slt files in {}", slt_dir.display());
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read");
        let mut principal = Principal::Admin;
        let mut rewritten = source.clone();
        for record in parse(&source) {
            match record {
                Record::Principal(p) => principal = p,
                Record::Query {
                    sql,
                    rowsort,
                    expected,
                    line,
                } => {
                    checked += 1;
                    let mut actual = match rows(&engine, &sql, principal.clone()).await {
                        Ok(r) => r,
                        Err(e) => {
                            failures.push(format!(
                                "{}:{line}: {sql}\n  failed: {} {}",
                                file.display(),
                                e.code,
                                e.message
                            ));
                            continue;
                        }
                    };
                    if rowsort {
                        actual.sort();
                    }
                    if actual != expected {
                        if rewrite {
                            let old = format!("{sql}\n----\n{}", expected.join("\n"));
                            let new = format!("{sql}\n----\n{}", actual.join("\n"));
                            rewritten = rewritten.replacen(old.trim_end(), new.trim_end(), 1);
                        } else {
                            failures.push(format!(
                                "{}:{line}: {sql}\n  expected: {expected:?}\n  actual:   {actual:?}",
                                file.display()
                            ));
                        }
                    }
                }
                Record::Error {
                    sql,
                    code,
                    contains,
                    line,
                } => {
                    checked += 1;
                    match engine.query(&sql, principal.clone()).await {
                        Ok(_) => failures.push(format!(
                            "{}:{line}: {sql}\n  succeeded, expected {code}",
                            file.display()
                        )),
                        Err(e) if e.code != code || !e.message.contains(&contains) => failures.push(format!(
                            "{}:{line}: {sql}\n  expected {code} containing {contains:?}, got {} {}",
                            file.display(),
                            e.code,
                            e.message
                        )),
                        Err(_) => {}
                    }
                }
            }
        }
        if rewrite && rewritten != source {
            std::fs::write(file, rewritten).expect("rewrite");
        }
    }
    dataflows.shutdown();
    assert!(
        failures.is_empty(),
        "{} of {checked} records failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 10, "only {checked} records checked");
}
