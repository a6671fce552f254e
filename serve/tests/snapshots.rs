//! Snapshots through the `reelflow` command, over the real Kafka broker:
//! `reelflow dataflow snapshot` writes one, `reelflow dataflow` starts from
//! it (and says so on `/metrics`) with views equal to the from-scratch
//! reference, writes another when it is stopped with SIGTERM, and the next
//! start takes that one.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use reelflow_dataflows::Windows;
use reelflow_dataflows::{Time, View, reference, workload};
use serde_json::Value;

/// The tests here share the Kafka topics and compare the views with
/// everything in them, so they take turns.
static TOPICS: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Process {
    child: Child,
    addr: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kafka() -> String {
    std::env::var("REELFLOW_TEST_KAFKA")
        .expect("REELFLOW_TEST_KAFKA is not set: these tests need the real services; run scripts/test.sh")
}

/// `reelflow` with the settings every run here shares.
fn reelflow(data: &std::path::Path) -> std::process::Command {
    let mut cmd = common::reelflow();
    cmd.env("REELFLOW_LOG_BACKEND", "kafka")
        .env("REELFLOW_KAFKA_BROKERS", kafka())
        .env("REELFLOW_LOG_PARTITIONS", "3")
        .env("REELFLOW_DATA_DIR", data)
        .env("REELFLOW_DATAFLOW_WORKERS", "2")
        .env("REELFLOW_DATAFLOW_LISTEN", "127.0.0.1:0")
        .env("REELFLOW_SQL_PGWIRE_LISTEN", "127.0.0.1:0");
    cmd
}

fn start(data: &std::path::Path) -> Process {
    let mut child = reelflow(data)
        .arg("dataflow")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start reelflow dataflow");
    let rx = common::watch_banner(&mut child);
    let (addr, _) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the process prints where it serves");
    Process { child, addr }
}

fn get(http: &reqwest::blocking::Client, addr: &str, path: &str) -> (u16, String) {
    let r = http.get(format!("http://{addr}{path}")).send().expect("request");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// A reading of `/metrics`, if there.
fn metric(http: &reqwest::blocking::Client, p: &Process, name: &str) -> Option<u64> {
    let (_, text) = get(http, &p.addr, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

fn wait_ready(http: &reqwest::blocking::Client, p: &Process) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(http, &p.addr, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every view at `at` equals the reference over `facts`.
fn check(http: &reqwest::blocking::Client, p: &Process, facts: &[(Time, reelflow_dataflows::facts::Fact)], at: Time) {
    let expected = reference::views_at(facts, at, &Windows::default());
    for view in View::ALL.into_iter().filter(|v| *v != View::SourceProgress) {
        let path = format!("/v1/views/{}?as_of={at}&limit=100000", view.def().name);
        let (status, body) = get(http, &p.addr, &path);
        assert_eq!(status, 200, "{path}: {body}");
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            body["rows"].as_array().expect("rows"),
            &common::view_as_json(view, &expected[&view]),
            "{} at {at} differs from the reference",
            view.def().name
        );
    }
}

/// The sequences of the complete snapshots in `data`'s object store.
fn snapshots(data: &std::path::Path) -> Vec<u64> {
    let dir = data.join("objects").join("snapshots");
    let mut out: Vec<u64> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().join("manifest.json").exists())
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn a_dataflow_starts_from_the_latest_snapshot_and_writes_one_when_stopped() {
    let _turn = TOPICS.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let log = common::test_kafka();
    runtime.block_on(common::append_workload(&log, 41, 3, Duration::from_millis(150)));
    let data = tempfile::tempdir().expect("tempdir");
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let tick = reelflow_dataflows::SourceOptions::default().tick.as_millis() as Time;

    // On demand, with no dataflow running.
    let out = reelflow(data.path())
        .args(["dataflow", "snapshot"])
        .output()
        .expect("reelflow dataflow snapshot");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("snapshot 1 written"), "{stdout}");
    assert_eq!(snapshots(data.path()), vec![1]);

    // A start takes it: nothing before its frontier is read again.
    let p = start(data.path());
    wait_ready(&http, &p);
    let frontier = metric(&http, &p, "reelflow_dataflow_snapshot_frontier_ms").expect("a snapshot on /metrics");
    let (facts, _, _) = runtime.block_on(workload::stamped(&log, tick));
    let last = facts.iter().map(|(t, _)| *t).max().expect("facts");
    check(&http, &p, &facts, frontier.max(last));

    // More traffic, then SIGTERM: a last snapshot covers it.
    runtime.block_on(async {
        let w = workload::workload(42, 2);
        workload::append_all(&log, &w, Duration::from_millis(150)).await;
    });
    let (facts, _, _) = runtime.block_on(workload::stamped(&log, tick));
    let last = facts.iter().map(|(t, _)| *t).max().expect("facts");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let mut p = p;
    let status = p.child.wait().expect("wait");
    assert!(status.success(), "a stopped dataflow exits cleanly: {status}");
    assert_eq!(snapshots(data.path()), vec![1, 2], "stopping wrote a snapshot");

    let p = start(data.path());
    wait_ready(&http, &p);
    let second = metric(&http, &p, "reelflow_dataflow_snapshot_frontier_ms").expect("a snapshot on /metrics");
    assert!(
        second > last,
        "the last snapshot covers the traffic before the stop: {second} <= {last}"
    );
    check(&http, &p, &facts, second);
}

fn kill_9(p: &mut Process) {
    let _ = p.child.kill();
    let _ = p.child.wait();
}

#[test]
fn a_dataflow_killed_during_a_snapshot_or_a_replay_restarts_with_identical_views() {
    let _turn = TOPICS.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let log = common::test_kafka();
    runtime.block_on(common::append_workload(&log, 43, 3, Duration::from_millis(150)));
    let data = tempfile::tempdir().expect("tempdir");
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let tick = reelflow_dataflows::SourceOptions::default().tick.as_millis() as Time;

    // Killed while it replays the log, before its views are complete.
    let mut p = start(data.path());
    std::thread::sleep(Duration::from_millis(300));
    kill_9(&mut p);

    // Started again, it is asked for a snapshot and lists it.
    let p = start(data.path());
    wait_ready(&http, &p);
    let (facts, _, _) = runtime.block_on(workload::stamped(&log, tick));
    let last = facts.iter().map(|(t, _)| *t).max().expect("facts");
    check(&http, &p, &facts, last);
    let r = http
        .post(format!("http://{}/v1/snapshots", p.addr))
        .send()
        .expect("POST /v1/snapshots");
    assert_eq!(r.status().as_u16(), 201);
    let written: Value = r.json().expect("json");
    assert_eq!(written["sequence"], 1, "{written}");
    assert!(written["bytes"].as_u64().is_some_and(|b| b > 0), "{written}");
    assert!(written["frontier"].as_u64().is_some_and(|f| f > last), "{written}");
    let (status, listed) = get(&http, &p.addr, "/v1/snapshots");
    assert_eq!(status, 200, "{listed}");
    let listed: Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed["snapshots"][0]["sequence"], 1, "{listed}");
    assert_eq!(listed["snapshots"][0]["usable"], true, "{listed}");
    assert_eq!(listed["snapshots"][0]["bytes"], written["bytes"], "{listed}");

    // More traffic, then SIGKILL at moments during the next snapshots:
    // whatever was torn is never loaded, and the views after a restart
    // equal the reference over the whole log.
    runtime.block_on(async {
        let w = workload::workload(44, 2);
        workload::append_all(&log, &w, Duration::from_millis(150)).await;
    });
    let (facts, _, _) = runtime.block_on(workload::stamped(&log, tick));
    let last = facts.iter().map(|(t, _)| *t).max().expect("facts");
    let mut p = p;
    for delay_ms in [5, 30, 120] {
        let addr = p.addr.clone();
        let asking = std::thread::spawn(move || {
            let _ = reqwest::blocking::Client::new()
                .post(format!("http://{addr}/v1/snapshots"))
                .send();
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        kill_9(&mut p);
        asking.join().expect("the asking thread");
        p = start(data.path());
        wait_ready(&http, &p);
        let frontier = metric(&http, &p, "reelflow_dataflow_snapshot_frontier_ms").expect("a snapshot on /metrics");
        check(&http, &p, &facts, frontier.max(last));
    }
    assert!(!snapshots(data.path()).is_empty());
}
