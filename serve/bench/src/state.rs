//! `reelflow-bench state`: whether the views' state lives for years —
//! memory that follows keys rather than events, a restart that does not
//! grow with history, and snapshots that cost little — measured with the
//! `reelflow` binary the way an operator runs it.
//!
//! The traffic is `bench dataflow`'s, shaped so its key population stops
//! growing early ([`Shape`]): 100,000 videos, 50,000 signed-in viewers each
//! watching from a personal set of videos, plus anonymous sessions. Its
//! clock is simulated, and the embedded log stamps each slice of records
//! with it ([`LogClock::Set`]), so a log written at full speed spans the
//! hours of log time that many records take on a real platform (20,000
//! players, a heartbeat every 10 s: 100 M records are 14 hours), and
//! sessions close, windows slide and snapshots cut as they do live.
//!
//! For each log size (10 M, then 100 M playback records, each in a log of
//! its own from the same seed, so the larger log starts with the smaller):
//!
//! 1. `reelflow dataflow snapshot` folds the whole log into a snapshot
//!    (the standalone command, no dataflow running);
//! 2. `reelflow dataflow` with snapshots off replays the whole log: the
//!    time until its views are complete past the last record, and its peak
//!    resident memory (what the views take after that much history);
//! 3. `reelflow dataflow` with snapshots on starts from that snapshot:
//!    the time until complete, its peak memory (the views plus the
//!    snapshot writer's own copy of the state), then `POST /v1/snapshots`
//!    twice (the second is a steady-state snapshot: the fold of what came
//!    since, and the whole state written), then SIGTERM.
//!
//! Then, from the larger log's snapshot, the dataflows run in this process
//! with traffic appended live at a fixed rate, and freshness (append →
//! visible in a peek) is measured for a while with no snapshot, then while
//! snapshots are written back to back beside the dataflows, as process 0
//! writes them.

use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use reelflow_dataflows::snapshot::{FoldedWith, SnapshotStore, Writer};
use reelflow_dataflows::traffic::{KeyCounts, Shape, Traffic};
use reelflow_dataflows::{DataflowOptions, Dataflows, workload};
use reelflow_ingest::log::{AnyLog, EmbeddedLog, EmbeddedOptions, FsyncPolicy, LogClock};
use reelflow_ingest::storage::{AnyStore, LocalStore};
use serde::Serialize;

use crate::harness::{percentile, sample_freshness};

/// Options of `reelflow-bench state`.
#[derive(Debug, Clone, clap::Args)]
pub struct StateBenchArgs {
    /// Playback records of each log, in order.
    #[arg(long, value_delimiter = ',', default_value = "10000000,100000000")]
    pub events: Vec<usize>,
    /// Videos in the catalog (popularity is Zipf over them); half as many
    /// signed-in viewers.
    #[arg(long, default_value_t = 100_000)]
    pub videos: usize,
    /// Players watching at once: the pace of the simulated clock.
    #[arg(long, default_value_t = 20_000)]
    pub concurrent: usize,
    /// Share of sessions by a signed-in viewer.
    #[arg(long, default_value_t = 0.8)]
    pub signed_in: f64,
    /// Mean size of a viewer's personal set of videos (at most 50).
    #[arg(long, default_value_t = 3.0)]
    pub personal_set_mean: f64,
    /// Partitions per topic.
    #[arg(long, default_value_t = 8)]
    pub partitions: u32,
    /// Timely workers of the `reelflow dataflow` process.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Events per second appended in the freshness runs.
    #[arg(long, default_value_t = 20_000)]
    pub rate: usize,
    /// Seconds of each freshness run.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Where the logs are written (a disk with room for them: about 300
    /// bytes per record); a temporary directory by default.
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A run of `reelflow dataflow` until its views were complete.
#[derive(Debug, Serialize)]
pub struct Start {
    /// Seconds from the spawn until the views were complete past the
    /// last record.
    pub ready_s: f64,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: f64,
}

/// A snapshot `POST /v1/snapshots` wrote.
#[derive(Debug, Serialize)]
pub struct Snap {
    /// Its size in the object store.
    pub bytes: u64,
    /// Records folded into it since the one before.
    pub records_folded: u64,
    /// Whole duration, ms.
    pub duration_ms: u64,
    /// Reading and folding the log, ms.
    pub fold_ms: u64,
    /// Encoding and storing it, ms.
    pub write_ms: u64,
    /// Resident memory of the process after it, MiB.
    pub rss_mib: f64,
    /// Seconds per GiB of resident state.
    pub s_per_gib_resident: f64,
}

/// One log size.
#[derive(Debug, Serialize)]
pub struct Size {
    /// Playback records.
    pub events: usize,
    /// Records in the log (catalog and playback).
    pub records: u64,
    /// Log time the records span, hours.
    pub log_hours: f64,
    /// Bytes of the log on disk.
    pub log_bytes: u64,
    /// Seconds generating and appending it took.
    pub append_s: f64,
    /// The keys its sessions have.
    pub keys: KeyCounts,
    /// `reelflow dataflow snapshot` over the whole log: seconds.
    pub cli_snapshot_s: f64,
    /// Its size.
    pub snapshot_bytes: u64,
    /// Full replay with snapshots off.
    pub replay: Start,
    /// Start from the snapshot, snapshots on.
    pub restart: Start,
    /// The two snapshots written on demand after it.
    pub snapshots: Vec<Snap>,
    /// Peak memory of the replay per record of the log.
    pub bytes_per_record: f64,
    /// Peak memory of the replay per key (videos + viewers + viewer × video).
    pub bytes_per_key: f64,
}

/// Freshness beside snapshots.
#[derive(Debug, Serialize)]
pub struct Freshness {
    /// Offered rate, events/s.
    pub rate: usize,
    /// Without a snapshot: append → visible, p50 and p99 ms.
    pub quiet_p50_ms: f64,
    /// p99.
    pub quiet_p99_ms: f64,
    /// Samples.
    pub quiet_samples: usize,
    /// While snapshots were written back to back.
    pub snapshot_p50_ms: f64,
    /// p99.
    pub snapshot_p99_ms: f64,
    /// Samples.
    pub snapshot_samples: usize,
    /// Snapshots written meanwhile.
    pub snapshots: usize,
    /// Their mean duration, ms.
    pub snapshot_mean_ms: f64,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Cores of this machine.
    pub cores: usize,
    /// Workers of the dataflow process.
    pub workers: usize,
    /// One entry per log size.
    pub sizes: Vec<Size>,
    /// Peak memory after the largest log over the smallest (target ≤ 1.2).
    pub memory_ratio: f64,
    /// Restart time from the largest log's snapshot over the smallest's
    /// (target ≤ 1.5).
    pub restart_ratio: f64,
    /// Freshness on the largest log.
    pub freshness: Freshness,
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The listener of the dataflow process.
const LISTEN: &str = "127.0.0.1:18081";

fn reelflow(data: &std::path::Path, args: &StateBenchArgs) -> anyhow::Result<std::process::Command> {
    let bench = std::env::current_exe().context("finding the benchmark's own binary")?;
    let exe = bench.with_file_name("reelflow");
    anyhow::ensure!(
        exe.is_file(),
        "{} is missing: build the reelflow binary beside reelflow-bench",
        exe.display()
    );
    let mut cmd = std::process::Command::new(exe);
    for (k, _) in std::env::vars() {
        if k.starts_with("REELFLOW_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("REELFLOW_DATA_DIR", data)
        .env("REELFLOW_LOG_FSYNC", "never")
        .env("REELFLOW_LOG_PARTITIONS", args.partitions.to_string())
        .env("REELFLOW_DATAFLOW_WORKERS", args.workers.to_string())
        .env("REELFLOW_DATAFLOW_LISTEN", LISTEN)
        .env("REELFLOW_SQL_PGWIRE_LISTEN", "127.0.0.1:0")
        // Snapshots only when asked for: the on-demand ones are measured.
        .env("REELFLOW_DATAFLOW_SNAPSHOT_INTERVAL_S", "86400")
        .env("REELFLOW_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    Ok(cmd)
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Spawns `reelflow dataflow` and waits until its views are readable at
/// the moment of the spawn (so complete past every record before it).
async fn start(data: &std::path::Path, args: &StateBenchArgs, snapshots: bool) -> anyhow::Result<(Process, Start)> {
    let end = reelflow_dataflows::now_ms();
    let started = Instant::now();
    let child = reelflow(data, args)?
        .arg("dataflow")
        .env("REELFLOW_DATAFLOW_SNAPSHOTS", snapshots.to_string())
        .spawn()
        .context("starting reelflow dataflow")?;
    let mut p = Process(child);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    loop {
        if let Some(status) = p.0.try_wait()? {
            anyhow::bail!("reelflow dataflow exited ({status}) before its views were complete");
        }
        if let Ok(r) = http.get(format!("http://{LISTEN}/readyz")).send().await
            && let Ok(body) = r.json::<serde_json::Value>().await
            && body["readable_at"].as_u64().is_some_and(|t| t >= end)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready_s = started.elapsed().as_secs_f64();
    let peak_rss_mib = mib(rss_kib(p.0.id(), "VmHWM:"));
    Ok((p, Start { ready_s, peak_rss_mib }))
}

/// `POST /v1/snapshots` on the running process.
async fn snapshot_on_demand(p: &Process) -> anyhow::Result<Snap> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(3600)).build()?;
    let r = http.post(format!("http://{LISTEN}/v1/snapshots")).send().await?;
    let status = r.status();
    let body: serde_json::Value = r.json().await?;
    anyhow::ensure!(status.as_u16() == 201, "POST /v1/snapshots answered {status}: {body}");
    let n = |k: &str| body[k].as_u64().unwrap_or(0);
    let rss = rss_kib(p.0.id(), "VmRSS:");
    Ok(Snap {
        bytes: n("bytes"),
        records_folded: n("records_folded"),
        duration_ms: n("duration_ms"),
        fold_ms: n("fold_ms"),
        write_ms: n("write_ms"),
        rss_mib: mib(rss),
        s_per_gib_resident: n("duration_ms") as f64 / 1000.0 / (rss as f64 / (1024.0 * 1024.0)),
    })
}

fn du(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The bench's traffic, with its clock from `from_ms` (`None`: the wall clock).
fn traffic(args: &StateBenchArgs, from_ms: Option<i64>) -> Traffic {
    Traffic::shaped(
        42,
        args.videos,
        args.concurrent,
        Shape {
            signed_in: args.signed_in,
            personal_set_mean: Some(args.personal_set_mean),
            simulated_from_ms: from_ms,
        },
    )
}

/// Writes the log of `events` playback records into `data`, its clock
/// simulated so that it ends a minute ago.
async fn write_log(data: &std::path::Path, args: &StateBenchArgs, events: usize) -> anyhow::Result<(f64, KeyCounts)> {
    let span_ms = (events as f64 * 10_000.0 / args.concurrent as f64) as i64;
    let from = reelflow_dataflows::now_ms() as i64 - span_ms - 60_000;
    let mut traffic = traffic(args, Some(from));
    let clock = Arc::new(AtomicI64::new(from));
    let log = AnyLog::Embedded(EmbeddedLog::open(
        data.join("log"),
        EmbeddedOptions {
            fsync: FsyncPolicy::Never,
            clock: LogClock::Set(Arc::clone(&clock)),
            ..EmbeddedOptions::default()
        },
    )?);
    workload::create_topics(&log, args.partitions).await;
    for chunk in traffic.catalog().chunks(5000) {
        workload::append(&log, chunk).await;
    }
    let mut left = events;
    while left > 0 {
        // One second of the simulated clock at a time, stamped with it.
        let n = left.min(args.concurrent / 10).max(1);
        clock.store(traffic.clock_ms(), Ordering::Release);
        let batch = traffic.playback(n);
        workload::append(&log, &batch).await;
        left -= n;
    }
    let hours = (traffic.clock_ms() - from) as f64 / 3_600_000.0;
    Ok((hours, traffic.keys()))
}

async fn measure(root: &std::path::Path, args: &StateBenchArgs, events: usize) -> anyhow::Result<Size> {
    let data = root.join(format!("log-{events}"));
    eprintln!("writing {events} playback records with a simulated clock…");
    let started = Instant::now();
    let (log_hours, keys) = write_log(&data, args, events).await?;
    let append_s = started.elapsed().as_secs_f64();
    let log_bytes = du(&data.join("log"));
    let records = {
        let log = AnyLog::Embedded(EmbeddedLog::open(data.join("log"), EmbeddedOptions::default())?);
        crate::harness::records_in(&log).await?
    };
    eprintln!(
        "  {records} records, {:.1} h of log time, {:.1} GB, in {append_s:.0} s; keys {keys:?}",
        log_hours,
        log_bytes as f64 / 1e9
    );

    eprintln!("reelflow dataflow snapshot (the whole log)…");
    let started = Instant::now();
    let out = reelflow(&data, args)?
        .args(["dataflow", "snapshot"])
        .stdout(Stdio::piped())
        .output()
        .context("reelflow dataflow snapshot")?;
    anyhow::ensure!(
        out.status.success(),
        "reelflow dataflow snapshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli_snapshot_s = started.elapsed().as_secs_f64();
    let store = SnapshotStore::new(Arc::new(AnyStore::Local(LocalStore::open(data.join("objects"))?)));
    let snapshot_bytes = store
        .manifests()
        .await?
        .first()
        .context("no snapshot was written")?
        .bytes();

    eprintln!("full replay, snapshots off…");
    let (p, replay) = start(&data, args, false).await?;
    drop(p);

    eprintln!("start from the snapshot…");
    let (p, restart) = start(&data, args, true).await?;
    let mut snapshots = Vec::new();
    for _ in 0..2 {
        snapshots.push(snapshot_on_demand(&p).await?);
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status()?;
    anyhow::ensure!(term.success(), "kill -TERM failed");
    let mut p = p;
    let status = p.0.wait()?;
    anyhow::ensure!(status.success(), "reelflow dataflow exited with {status} on SIGTERM");

    let peak = replay.peak_rss_mib * 1024.0 * 1024.0;
    let key_count = keys.videos + keys.viewers + keys.viewer_videos;
    Ok(Size {
        events,
        records,
        log_hours,
        log_bytes,
        append_s,
        keys,
        cli_snapshot_s,
        snapshot_bytes,
        bytes_per_record: peak / records as f64,
        bytes_per_key: peak / key_count as f64,
        replay,
        restart,
        snapshots,
    })
}

async fn freshness(root: &std::path::Path, args: &StateBenchArgs, events: usize) -> anyhow::Result<Freshness> {
    let data = root.join(format!("log-{events}"));
    // What users run: fsync with group commit, the wall clock.
    let log = AnyLog::Embedded(EmbeddedLog::open(data.join("log"), EmbeddedOptions::default())?);
    let store = SnapshotStore::new(Arc::new(AnyStore::Local(LocalStore::open(data.join("objects"))?)));
    let options = DataflowOptions {
        cluster: reelflow_dataflows::ClusterConfig::single(args.workers),
        peek_timeout: Duration::from_secs(600),
        ..DataflowOptions::default()
    };
    let tick_ms = options.source.tick.as_millis() as u64;
    let with = FoldedWith::of(&options.windows, tick_ms);
    let (_, snapshot) = store.latest(&with).await?.context("no snapshot to start from")?;
    let mut writer = Writer::new(
        log.clone(),
        store,
        &options.windows,
        tick_ms,
        Some(&snapshot),
        options.source.idle_grace,
        3,
    );
    let dataflows = Dataflows::start(
        log.clone(),
        DataflowOptions {
            snapshot: Some(Arc::new(snapshot)),
            ..options
        },
    )
    .await?;
    let client = dataflows.client();
    client
        .wait_until_readable(crate::harness::complete_now(tick_ms), Duration::from_secs(600))
        .await?;
    let mut traffic = traffic(args, None);
    eprintln!("freshness at {} events/s, no snapshot…", args.rate);
    let (quiet, _) = sample_freshness(&log, &client, &mut traffic, args.rate, args.seconds, tick_ms).await?;
    eprintln!("freshness at {} events/s, snapshots back to back…", args.rate);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let snapshots = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut took = Vec::new();
            while !stop.load(Ordering::Acquire) {
                let started = Instant::now();
                writer.snapshot().await?;
                took.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>(took)
        })
    };
    let (during, _) = sample_freshness(&log, &client, &mut traffic, args.rate, args.seconds, tick_ms).await?;
    stop.store(true, Ordering::Release);
    let took = snapshots.await??;
    tokio::task::spawn_blocking(move || dataflows.shutdown()).await?;
    Ok(Freshness {
        rate: args.rate,
        quiet_p50_ms: percentile(&quiet, 0.5),
        quiet_p99_ms: percentile(&quiet, 0.99),
        quiet_samples: quiet.len(),
        snapshot_p50_ms: percentile(&during, 0.5),
        snapshot_p99_ms: percentile(&during, 0.99),
        snapshot_samples: during.len(),
        snapshots: took.len(),
        snapshot_mean_ms: took.iter().sum::<f64>() / took.len().max(1) as f64,
    })
}

/// Runs the benchmark.
pub async fn run(args: StateBenchArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(!args.events.is_empty(), "--events needs at least one size");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let temp;
    let root = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let mut sizes = Vec::new();
    let last = *args.events.last().expect("checked");
    for &events in &args.events {
        sizes.push(measure(&root, &args, events).await?);
        if events != last {
            // Room on the disk for the next log.
            let _ = std::fs::remove_dir_all(root.join(format!("log-{events}")).join("log"));
        }
    }
    let freshness = freshness(&root, &args, last).await?;
    let _ = std::fs::remove_dir_all(root.join(format!("log-{last}")));
    let (first, largest) = (&sizes[0], &sizes[sizes.len() - 1]);
    Ok(Report {
        cores,
        workers: args.workers,
        memory_ratio: largest.replay.peak_rss_mib / first.replay.peak_rss_mib,
        restart_ratio: largest.restart.ready_s / first.restart.ready_s,
        sizes,
        freshness,
    })
}

/// The report as a table.
pub fn render(r: &Report) -> String {
    let mut out = format!(
        "state benchmark: `reelflow dataflow`, {} worker(s), embedded log, {} cores\n\n",
        r.workers, r.cores
    );
    out += "records      log h  log GB  videos  viewers  viewer×video  replay s  replay MiB  B/record  B/key  CLI snapshot s  snapshot MiB  restart s  restart MiB\n";
    for s in &r.sizes {
        out += &format!(
            "{:>11}  {:>5.1}  {:>6.1}  {:>6}  {:>7}  {:>12}  {:>8.1}  {:>10.0}  {:>8.1}  {:>5.0}  {:>14.1}  {:>12.1}  {:>9.2}  {:>11.0}\n",
            s.records,
            s.log_hours,
            s.log_bytes as f64 / 1e9,
            s.keys.videos,
            s.keys.viewers,
            s.keys.viewer_videos,
            s.replay.ready_s,
            s.replay.peak_rss_mib,
            s.bytes_per_record,
            s.bytes_per_key,
            s.cli_snapshot_s,
            s.snapshot_bytes as f64 / (1024.0 * 1024.0),
            s.restart.ready_s,
            s.restart.peak_rss_mib
        );
    }
    out += "\nsnapshots on demand (POST /v1/snapshots) after the restart:\n";
    for s in &r.sizes {
        for (i, snap) in s.snapshots.iter().enumerate() {
            out += &format!(
                "  {} records, #{}: {} records folded, {:.1} MiB, {} ms (fold {} ms, write {} ms), RSS {:.0} MiB: {:.2} s per GiB resident\n",
                s.records,
                i + 1,
                snap.records_folded,
                snap.bytes as f64 / (1024.0 * 1024.0),
                snap.duration_ms,
                snap.fold_ms,
                snap.write_ms,
                snap.rss_mib,
                snap.s_per_gib_resident
            );
        }
    }
    out += &format!(
        "\npeak memory, largest log / smallest: {:.2}x (target <= 1.2); restart, largest / smallest: {:.2}x (target <= 1.5)\n",
        r.memory_ratio, r.restart_ratio
    );
    let f = &r.freshness;
    out += &format!(
        "freshness at {} events/s: no snapshot p50 {:.1} ms p99 {:.1} ms ({} samples); snapshots back to back ({}, mean {:.0} ms) p50 {:.1} ms p99 {:.1} ms ({} samples)\n",
        f.rate,
        f.quiet_p50_ms,
        f.quiet_p99_ms,
        f.quiet_samples,
        f.snapshots,
        f.snapshot_mean_ms,
        f.snapshot_p50_ms,
        f.snapshot_p99_ms,
        f.snapshot_samples
    );
    out
}
