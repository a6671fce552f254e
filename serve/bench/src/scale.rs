//! `reelflow-bench scale`: how the dataflow cluster scales in processes,
//! started the way the Kubernetes StatefulSet starts them.
//!
//! The playback traffic of `reelflow-bench dataflow` (Zipf popularity,
//! realistic sessions) is appended to Kafka once. Then, for 1, 2 and 3
//! processes, `reelflow dataflow` is started as pods are — `$HOSTNAME`
//! `reelflow-dataflow-<i>`, the cluster size in
//! `REELFLOW_DATAFLOW_REPLICAS`, the peers from the StatefulSet template
//! with each pod on its own loopback address — and the clock runs from the
//! spawn until the cluster's views are complete past the last event. That
//! time is what a user waits after changing the replica count: the
//! rebuild from the log. Throughput is the records read over that time.
//! Each process's peak resident memory is read from `/proc` before it is
//! stopped: added up per record, it is what a pod's memory limit is sized
//! by (k8s/README.md).

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use reelflow_dataflows::traffic::Traffic;
use reelflow_dataflows::workload;
use reelflow_ingest::log::{AnyLog, EventLog, KafkaConfig, KafkaLog};
use serde::Serialize;

/// Options of `reelflow-bench scale`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScaleBenchArgs {
    /// Playback events in the log the cluster rebuilds from.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: usize,
    /// Videos in the catalog (popularity is Zipf over them).
    #[arg(long, default_value_t = 100_000)]
    pub videos: usize,
    /// Players watching at once.
    #[arg(long, default_value_t = 20_000)]
    pub concurrent: usize,
    /// Cluster sizes to run, in processes.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub processes: Vec<usize>,
    /// Timely workers per process.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Partitions per topic.
    #[arg(long, default_value_t = 12)]
    pub partitions: u32,
    /// Kafka brokers (the cluster runs over Kafka, as in production).
    #[arg(long, env = "REELFLOW_BENCH_KAFKA")]
    pub kafka: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One cluster size.
#[derive(Debug, Serialize)]
pub struct Run {
    /// Processes in the cluster.
    pub processes: usize,
    /// Workers in the whole cluster.
    pub workers: usize,
    /// Seconds from starting the pods to views complete past the last event.
    pub rebuild_s: f64,
    /// Records read per second over that time.
    pub records_per_s: f64,
    /// Each process's peak resident memory, in MiB.
    pub peak_rss_mib: Vec<f64>,
    /// The processes' peaks added up, per record in the log: what the
    /// views take in memory, for sizing the pods.
    pub bytes_per_record: f64,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Cores of this machine.
    pub cores: usize,
    /// Records in the log (catalog and playback).
    pub records: u64,
    /// Seconds appending them to Kafka took.
    pub append_s: f64,
    /// One entry per cluster size.
    pub runs: Vec<Run>,
}

struct Pod(Child);

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `reelflow` binary the pods run: the one beside this benchmark's.
fn reelflow_binary() -> anyhow::Result<std::path::PathBuf> {
    let bench = std::env::current_exe().context("finding the benchmark's own binary")?;
    let exe = bench.with_file_name("reelflow");
    anyhow::ensure!(
        exe.is_file(),
        "{} is missing: build the reelflow binary beside reelflow-bench (cargo build --release --bin reelflow)",
        exe.display()
    );
    Ok(exe)
}

/// Starts pod `i` of `n` as the StatefulSet does, on address 127.0.1<i>.1.
fn start_pod(args: &ScaleBenchArgs, i: usize, n: usize, dir: &std::path::Path) -> anyhow::Result<Pod> {
    let mut cmd = std::process::Command::new(reelflow_binary()?);
    for (k, _) in std::env::vars() {
        if k.starts_with("REELFLOW_") {
            cmd.env_remove(k);
        }
    }
    let child = cmd
        .arg("dataflow")
        .env("HOSTNAME", format!("reelflow-dataflow-{i}"))
        .env("REELFLOW_DATAFLOW_REPLICAS", n.to_string())
        .env("REELFLOW_DATAFLOW_STATEFULSET_PEERS", "127.0.1{i}.1:2101")
        .env("REELFLOW_DATAFLOW_WORKERS", args.workers.to_string())
        .env("REELFLOW_DATAFLOW_LISTEN", format!("127.0.1{i}.1:8081"))
        .env("REELFLOW_SQL_PGWIRE_LISTEN", format!("127.0.1{i}.1:6875"))
        .env("REELFLOW_LOG_BACKEND", "kafka")
        .env("REELFLOW_KAFKA_BROKERS", &args.kafka)
        .env("REELFLOW_LOG_PARTITIONS", args.partitions.to_string())
        .env("REELFLOW_DATA_DIR", dir.join(format!("pod-{i}")))
        .env("REELFLOW_LOG", "warn")
        // Each pod has a data dir of its own, so no shared object store:
        // every start is a full rebuild from the log, which is what is measured.
        .env("REELFLOW_DATAFLOW_SNAPSHOTS", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting reelflow dataflow")?;
    Ok(Pod(child))
}

/// Polls pod 0's `/readyz` until its views are readable at `end`.
async fn wait_complete(end: u64, pods: &mut [Pod]) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    loop {
        for pod in pods.iter_mut() {
            if let Some(status) = pod.0.try_wait()? {
                anyhow::bail!("a dataflow process exited ({status}) before the views were complete");
            }
        }
        if let Ok(r) = http.get("http://127.0.10.1:8081/readyz").send().await
            && let Ok(body) = r.json::<serde_json::Value>().await
            && body["readable_at"].as_u64().is_some_and(|t| t >= end)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the benchmark.
pub async fn run(args: ScaleBenchArgs) -> anyhow::Result<Report> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let log = AnyLog::Kafka(KafkaLog::connect(KafkaConfig {
        brokers: args.kafka.clone(),
        ..KafkaConfig::default()
    })?);
    workload::create_topics(&log, args.partitions).await;
    let mut traffic = Traffic::new(42, args.videos, args.concurrent);
    eprintln!(
        "appending {} videos and {} playback events to Kafka…",
        args.videos, args.events
    );
    let started = Instant::now();
    crate::harness::append_traffic(&log, &mut traffic, args.events).await;
    let append_s = started.elapsed().as_secs_f64();
    let mut records = 0;
    for topic in reelflow_dataflows::TOPICS {
        for p in 0..log.partition_count(topic).await? {
            records += log.high_watermark(topic, p).await?;
        }
    }
    let end = reelflow_dataflows::now_ms();
    let mut runs = Vec::new();
    for &n in &args.processes {
        eprintln!("{n} process(es) × {} worker(s), rebuilding from the log…", args.workers);
        let dir = tempfile::tempdir()?;
        let started = Instant::now();
        let mut pods = (0..n)
            .map(|i| start_pod(&args, i, n, dir.path()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        wait_complete(end, &mut pods).await?;
        let rebuild_s = started.elapsed().as_secs_f64();
        let peak_kib: Vec<u64> = pods
            .iter()
            .map(|p| crate::harness::peak_rss_kib_of(&p.0.id().to_string()))
            .collect();
        drop(pods);
        runs.push(Run {
            processes: n,
            workers: n * args.workers,
            rebuild_s,
            records_per_s: records as f64 / rebuild_s,
            peak_rss_mib: peak_kib.iter().map(|k| *k as f64 / 1024.0).collect(),
            bytes_per_record: peak_kib.iter().sum::<u64>() as f64 * 1024.0 / records.max(1) as f64,
        });
    }
    Ok(Report {
        cores,
        records,
        append_s,
        runs,
    })
}

/// The report as a table.
pub fn render(r: &Report) -> String {
    let mut out = format!(
        "scale benchmark: {} records in Kafka (appended in {:.1} s), {} cores\n\n",
        r.records, r.append_s, r.cores
    );
    out += "processes  workers  rebuild s  records/s  vs 1 process  peak MiB per process  bytes per record\n";
    let base = r.runs.first().map_or(f64::NAN, |b| b.records_per_s);
    for run in &r.runs {
        let peaks: Vec<String> = run.peak_rss_mib.iter().map(|m| format!("{m:.0}")).collect();
        out += &format!(
            "{:>9}  {:>7}  {:>9.1}  {:>9.0}  {:>11.2}x  {:>20}  {:>16.0}\n",
            run.processes,
            run.workers,
            run.rebuild_s,
            run.records_per_s,
            run.records_per_s / base,
            peaks.join(" / "),
            run.bytes_per_record
        );
    }
    out
}
