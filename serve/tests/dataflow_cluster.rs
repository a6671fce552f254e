//! `reelflow dataflow` as a cluster of two OS processes, started the way a
//! StatefulSet starts them (pod name in `$HOSTNAME`, peers from a template
//! with the ordinal), over the real Kafka broker: every view read over HTTP
//! from either process equals the from-scratch reference at several times,
//! and after both are killed (SIGKILL) and restarted they replay the log to
//! identical contents.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use reelflow_dataflows::Windows;
use reelflow_dataflows::{Time, VIEWS, View, reference};
use serde_json::Value;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: these tests need the real services; run scripts/test.sh"))
}

struct Process {
    child: Child,
    addr: String,
    /// Port of its PostgreSQL wire protocol.
    pg_port: u16,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Starts pod `ordinal` of a two-pod set whose peers talk on `port`; its
/// address arrives on the receiver once the cluster has formed.
fn start(ordinal: usize, port: u16, data: &std::path::Path) -> (Child, std::sync::mpsc::Receiver<(String, u16)>) {
    let mut child = common::reelflow()
        .arg("dataflow")
        .env("HOSTNAME", format!("reelflow-dataflow-{ordinal}"))
        .env("REELFLOW_DATAFLOW_REPLICAS", "2")
        // Each pod its own loopback address, all on one port, as pods are.
        .env("REELFLOW_DATAFLOW_STATEFULSET_PEERS", format!("127.0.{{i}}.1:{port}"))
        .env("REELFLOW_DATAFLOW_WORKERS", "2")
        .env("REELFLOW_DATAFLOW_LISTEN", "127.0.0.1:0")
        .env("REELFLOW_LOG_BACKEND", "kafka")
        .env("REELFLOW_KAFKA_BROKERS", env("REELFLOW_TEST_KAFKA"))
        .env("REELFLOW_LOG_PARTITIONS", "3")
        .env("REELFLOW_DATA_DIR", data.join(ordinal.to_string()))
        .env("REELFLOW_SQL_PGWIRE_LISTEN", "127.0.0.1:0")
        // Each pod has a data dir of its own, so no shared object store for
        // snapshots: every start replays the whole log.
        .env("REELFLOW_DATAFLOW_SNAPSHOTS", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start reelflow dataflow");
    let rx = common::watch_banner(&mut child);
    (child, rx)
}

/// Starts both pods and waits for their addresses.
fn start_pods(port: u16, data: &std::path::Path) -> Vec<Process> {
    let started: Vec<_> = (0..2).map(|i| start(i, port, data)).collect();
    started
        .into_iter()
        .map(|(child, rx)| {
            let (addr, pg_port) = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the process prints where it serves");
            Process { child, addr, pg_port }
        })
        .collect()
}

const ADMIN: &str = "ops@example.org";
const ADMIN_PASSWORD: &str = "a long admin password";

fn get(http: &reqwest::blocking::Client, addr: &str, path: &str) -> (u16, Value) {
    let r = http.get(format!("http://{addr}{path}")).send().expect("request");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn wait_ready(http: &reqwest::blocking::Client, p: &Process) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(http, &p.addr, "/readyz");
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_all(http: &reqwest::blocking::Client, p: &Process, at: Time) -> Vec<(View, Vec<Value>)> {
    View::ALL
        .into_iter()
        .filter(|v| *v != View::SourceProgress)
        .map(|view| {
            let path = format!("/v1/views/{}?as_of={at}&limit=100000", view.def().name);
            let (status, body) = get(http, &p.addr, &path);
            assert_eq!(status, 200, "{path}: {body}");
            assert_eq!(body["as_of"], at);
            (view, body["rows"].as_array().expect("rows").clone())
        })
        .collect()
}

#[test]
fn two_statefulset_pods_over_kafka_match_the_reference_and_replay_after_a_kill() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let log = common::test_kafka();
    let (facts, times) = runtime.block_on(common::append_workload(&log, 31, 4, Duration::from_millis(150)));
    let windows = Windows::default();
    let expected: Vec<_> = times
        .iter()
        .map(|&t| {
            let views = reference::views_at(&facts, t, &windows);
            let rows: Vec<(View, Vec<Value>)> = View::ALL
                .into_iter()
                .filter(|v| *v != View::SourceProgress)
                .map(|v| (v, common::view_as_json(v, &views[&v])))
                .collect();
            (t, rows)
        })
        .collect();
    assert!(
        expected.last().is_some_and(|(_, views)| views
            .iter()
            .all(|(v, rows)| !rows.is_empty() || *v == View::ConcurrentViewers)),
        "the workload fills every view"
    );

    let data = tempfile::tempdir().expect("tempdir");
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let port = free_port();
    // The accounts SQL is answered for: an admin in each pod's database.
    let admin_ids: Vec<uuid::Uuid> = (0..2)
        .map(|i| common::create_admin(&data.path().join(i.to_string()), ADMIN, ADMIN_PASSWORD))
        .collect();
    let (last, last_rows) = expected.last().expect("times");
    let stats = &last_rows
        .iter()
        .find(|(v, _)| *v == View::VideoStats)
        .expect("video_stats")
        .1;
    let total: i64 = stats.iter().map(|r| r["views"].as_i64().expect("views")).sum();
    let want_sql = format!("{}|{total}", stats.len());
    let mut runs = Vec::new();
    for run in 0..2 {
        let pods = start_pods(port, data.path());
        for p in &pods {
            wait_ready(&http, p);
        }
        let (status, body) = get(&http, &pods[1].addr, "/v1/views");
        assert_eq!(status, 200);
        assert_eq!(body["views"].as_array().map(Vec::len), Some(VIEWS.len()));
        let mut seen = Vec::new();
        for (t, want) in &expected {
            for (i, p) in pods.iter().enumerate() {
                let got = read_all(&http, p, *t);
                for ((view, rows), (_, want_rows)) in got.iter().zip(want) {
                    assert_eq!(
                        rows,
                        want_rows,
                        "run {run}, pod {i}: view {} at {t} differs from the reference",
                        view.def().name
                    );
                }
                seen.push(got);
            }
        }
        let metrics = http
            .get(format!("http://{}/metrics", pods[0].addr))
            .send()
            .and_then(|r| r.text())
            .expect("metrics");
        assert!(
            metrics.contains("reelflow_dataflow_partition_lag{topic=\"reelflow.playback\""),
            "{metrics}"
        );
        assert!(
            metrics.contains("reelflow_dataflow_arrangement_updates{view=\"video_stats\"}"),
            "{metrics}"
        );
        // SQL: every pod answers for the whole cluster, over the wire
        // protocol and over HTTP with a token.
        let query = format!("SELECT count(*), coalesce(sum(views), 0) FROM video_stats AS OF {last}");
        for (i, p) in pods.iter().enumerate() {
            let out = std::process::Command::new("psql")
                .env("PGPASSWORD", ADMIN_PASSWORD)
                .args([
                    "-X",
                    "-A",
                    "-t",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &p.pg_port.to_string(),
                    "-U",
                    ADMIN,
                    "-d",
                    "reelflow",
                    "-c",
                    &query,
                ])
                .output()
                .expect("psql");
            assert!(
                out.status.success(),
                "psql on pod {i}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want_sql, "pod {i}");
            let keys =
                reelflow_serve::auth::Keyring::load_or_create(&data.path().join(i.to_string()).join("auth-keys.json"))
                    .expect("the pod's keys");
            let now = chrono::Utc::now().timestamp();
            let token = keys.sign(&reelflow_serve::auth::AccessClaims {
                sub: admin_ids[i],
                aud: reelflow_serve::auth::API_AUDIENCE.into(),
                iat: now,
                exp: now + 600,
                jti: uuid::Uuid::new_v4(),
            });
            let r = http
                .post(format!("http://{}/v1/sql", p.addr))
                .bearer_auth(&token)
                .json(&serde_json::json!({"query": query}))
                .send()
                .expect("POST /v1/sql");
            assert_eq!(r.status(), 200);
            let body: Value = r.json().expect("json");
            assert_eq!(
                body["rows"],
                serde_json::json!([[stats.len(), total]]),
                "pod {i}: {body}"
            );
            let anonymous = http
                .post(format!("http://{}/v1/sql", p.addr))
                .json(&serde_json::json!({"query": "SELECT 1"}))
                .send()
                .expect("POST /v1/sql");
            assert_eq!(anonymous.status(), 401);
        }
        runs.push(seen);
        // SIGKILL both; the next run replays the log from the start.
        drop(pods);
    }
    assert_eq!(runs[0], runs[1], "a replay after a kill gives identical contents");
}

/// The public API forwards `/v1/sql` and `/v1/views` to the dataflow
/// service named by `sql.upstream`, which checks the same token against the
/// same accounts and answers for the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_forwards_sql_to_the_dataflow_service() {
    let port = free_port();
    let app = common::TestApp::with(common::Database::Sqlite, |c| {
        c.sql.upstream = Some(format!("http://127.0.0.1:{port}"));
    })
    .await;
    let admin = app.admin("ops@example.org").await;
    // One dataflow process over Kafka, sharing the API's accounts database
    // and keys file (as they share a database and a Secret in production).
    let mut child = common::reelflow()
        .arg("dataflow")
        .env("REELFLOW_DATAFLOW_WORKERS", "1")
        .env("REELFLOW_DATAFLOW_LISTEN", format!("127.0.0.1:{port}"))
        .env("REELFLOW_SQL_PGWIRE_LISTEN", "127.0.0.1:0")
        .env("REELFLOW_LOG_BACKEND", "kafka")
        .env("REELFLOW_KAFKA_BROKERS", env("REELFLOW_TEST_KAFKA"))
        .env("REELFLOW_LOG_PARTITIONS", "3")
        .env("REELFLOW_DATA_DIR", app.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start reelflow dataflow");
    let http = reqwest::Client::new();
    let direct = format!("http://127.0.0.1:{port}/v1/sql");
    let query = "SELECT count(*) AS partitions FROM source_progress";
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer: Value = loop {
        let r = http
            .post(&direct)
            .bearer_auth(&admin.access)
            .json(&serde_json::json!({"query": query}))
            .send()
            .await;
        if let Ok(r) = r
            && r.status() == 200
        {
            break r.json().await.expect("json");
        }
        assert!(Instant::now() < deadline, "the dataflow service never answered SQL");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let as_of = answer["as_of"].as_u64().expect("as_of");
    let forwarded = app
        .post(
            "/v1/sql",
            Some(&admin.access),
            serde_json::json!({"query": format!("{query} AS OF {as_of}")}),
        )
        .await;
    assert_eq!(forwarded.status, axum::http::StatusCode::OK, "{}", forwarded.body);
    assert_eq!(forwarded.body["rows"], answer["rows"]);
    assert_eq!(forwarded.body["as_of"], as_of);
    assert!(forwarded.headers.contains_key("reelflow-as-of"));
    assert!(answer["rows"][0][0].as_i64().is_some_and(|n| n >= 4), "{answer}");
    // Errors come back as they are; anonymous callers never get through.
    let bad = app
        .post(
            "/v1/sql",
            Some(&admin.access),
            serde_json::json!({"query": "DROP TABLE qoe"}),
        )
        .await;
    assert_eq!(bad.status, axum::http::StatusCode::FORBIDDEN, "{}", bad.body);
    assert_eq!(bad.body["sqlstate"], "25006");
    let anonymous = app.post("/v1/sql", None, serde_json::json!({"query": query})).await;
    assert_eq!(anonymous.status, axum::http::StatusCode::UNAUTHORIZED);
    // The views' HTTP reads, for admins only.
    let path = format!("/v1/views/source_progress?as_of={as_of}&limit=100");
    let direct: Value = http
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let forwarded = app.get(&path, Some(&admin.access)).await;
    assert_eq!(forwarded.status, axum::http::StatusCode::OK, "{}", forwarded.body);
    assert_eq!(forwarded.body, direct);
    assert_eq!(
        forwarded.body["rows"].as_array().map(Vec::len),
        answer["rows"][0][0].as_u64().map(|n| n as usize)
    );
    let missing = app.get("/v1/views/no_such_view", Some(&admin.access)).await;
    assert_eq!(missing.status, axum::http::StatusCode::NOT_FOUND, "{}", missing.body);
    let creator = app.register("creator@example.org", Some("creator")).await;
    let refused = app.get(&path, Some(&creator.access)).await;
    assert_eq!(refused.status, axum::http::StatusCode::FORBIDDEN);
    let _ = child.kill();
    let _ = child.wait();
}
