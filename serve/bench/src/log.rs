//! `reelflow-bench log`: append and read throughput of both logs with
//! ~200-byte events, and, in the same run against the same broker, Kafka's
//! own tools as peers: `org.apache.kafka.tools.ProducerPerformance` with the
//! same producer settings as ours (idempotent, `acks=all`, lz4), and
//! `org.apache.kafka.tools.ConsumerPerformance` reading the very topic our
//! reader read.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reelflow_ingest::log::{EmbeddedLog, EmbeddedOptions, FsyncPolicy, KafkaConfig, KafkaLog};
use reelflow_ingest::{EventLog, PartitionReader};
use serde::Serialize;

/// Flags of `reelflow-bench log`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogBenchArgs {
    /// Events appended (and read back) per log.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Size of each event's value in bytes.
    #[arg(long, default_value_t = 200)]
    pub event_bytes: usize,
    /// Events per append call.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Concurrent appenders (like concurrent requests of the serving layer).
    #[arg(long, default_value_t = 8)]
    pub producers: usize,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 8)]
    pub partitions: u32,
    /// Kafka brokers; without it only the embedded log is measured.
    #[arg(long, env = "REELFLOW_BENCH_KAFKA")]
    pub kafka: Option<String>,
    /// Java classpath holding kafka-tools (for the peer); without it the
    /// peer is not run.
    #[arg(long, env = "REELFLOW_KAFKA_CLASSPATH")]
    pub kafka_classpath: Option<String>,
    /// Directory for the embedded logs (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One measured figure set.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// What was measured.
    pub name: String,
    /// Events moved.
    pub events: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Events per second.
    pub events_per_s: f64,
    /// Payload megabytes (10^6) per second.
    pub mb_per_s: f64,
}

impl Throughput {
    fn new(name: &str, events: usize, event_bytes: usize, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64();
        Self {
            name: name.to_string(),
            events,
            seconds,
            events_per_s: events as f64 / seconds,
            mb_per_s: (events * event_bytes) as f64 / 1e6 / seconds,
        }
    }
}

/// Everything `reelflow-bench log` measured.
#[derive(Debug, Clone, Serialize)]
pub struct LogBenchReport {
    /// Events per run.
    pub events: usize,
    /// Bytes per event value.
    pub event_bytes: usize,
    /// Events per append call.
    pub batch: usize,
    /// Concurrent appenders.
    pub producers: usize,
    /// Our figures.
    pub results: Vec<Throughput>,
    /// Kafka's own ProducerPerformance against the same broker.
    pub peer: Option<Throughput>,
    /// Our Kafka append rate over the peer's.
    pub kafka_append_vs_peer: Option<f64>,
    /// Kafka's own ConsumerPerformance reading our Kafka topic.
    pub read_peer: Option<Throughput>,
    /// Our Kafka read rate over that peer's.
    pub kafka_read_vs_peer: Option<f64>,
}

/// A JSON-ish value of exactly `len` bytes, shaped like a playback event.
fn event_value(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!(
        "{{\"schema_version\":1,\"event_id\":\"{:032x}\",\"type\":\"heartbeat\",\"position_s\":{}.5,\"pad\":\"",
        i,
        i % 3600
    )
    .into_bytes();
    while v.len() + 2 < len {
        v.push(b'a' + (i % 26) as u8);
    }
    v.extend_from_slice(b"\"}");
    v.truncate(len);
    v
}

async fn append_all<L: EventLog + Clone>(log: &L, topic: &str, args: &LogBenchArgs) -> anyhow::Result<Duration> {
    let per_producer = args.events.div_ceil(args.producers);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..args.producers {
        let log = log.clone();
        let topic = topic.to_string();
        let (batch, bytes, total) = (args.batch, args.event_bytes, args.events);
        tasks.spawn(async move {
            let from = p * per_producer;
            let to = ((p + 1) * per_producer).min(total);
            let mut i = from;
            while i < to {
                let end = (i + batch).min(to);
                let owned: Vec<(Vec<u8>, Vec<u8>)> = (i..end)
                    .map(|j| (format!("session-{}", j % 10_000).into_bytes(), event_value(j, bytes)))
                    .collect();
                let records: Vec<(&[u8], &[u8])> = owned.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
                log.append_batch(&topic, &records).await?;
                i = end;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(start.elapsed())
}

async fn read_all<L: EventLog>(log: &L, topic: &str, args: &LogBenchArgs) -> anyhow::Result<Duration> {
    let assignment: Vec<(u32, u64)> = (0..args.partitions).map(|p| (p, 0)).collect();
    let start = Instant::now();
    let mut reader = log.reader(topic, &assignment).await?;
    let mut seen = 0;
    while seen < args.events {
        let got = reader.poll(10_000, Duration::from_secs(10)).await?;
        if got.is_empty() {
            bail!("reading stalled after {seen} of {} events", args.events);
        }
        seen += got.len();
    }
    Ok(start.elapsed())
}

async fn bench_log<L: EventLog + Clone>(
    name: &str,
    log: &L,
    topic: &str,
    args: &LogBenchArgs,
) -> anyhow::Result<Vec<Throughput>> {
    log.create_topic(topic, args.partitions).await?;
    let appended = append_all(log, topic, args)
        .await
        .with_context(|| format!("appending to the {name} log"))?;
    let read = read_all(log, topic, args)
        .await
        .with_context(|| format!("reading the {name} log"))?;
    Ok(vec![
        Throughput::new(&format!("{name} append"), args.events, args.event_bytes, appended),
        Throughput::new(&format!("{name} read"), args.events, args.event_bytes, read),
    ])
}

/// Runs `org.apache.kafka.tools.{tool}` with `tool_args` and returns its
/// standard output, or its whole output in the error if it failed.
async fn run_kafka_tool(classpath: &str, tool: &str, tool_args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::process::Command::new("java")
        .args(["-Xmx1g", "-cp", classpath, &format!("org.apache.kafka.tools.{tool}")])
        .args(tool_args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("starting java for {tool}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{tool} failed ({}): {}\n{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// Runs Kafka's ProducerPerformance and parses its summary line:
/// `N records sent, X records/sec (Y MB/sec), …`.
async fn run_peer(classpath: &str, brokers: &str, topic: &str, args: &LogBenchArgs) -> anyhow::Result<Throughput> {
    let (events, bytes) = (args.events.to_string(), args.event_bytes.to_string());
    let servers = format!("bootstrap.servers={brokers}");
    let tool_args = [
        "--topic",
        topic,
        "--num-records",
        &events,
        "--record-size",
        &bytes,
        "--throughput",
        "-1",
        "--producer-props",
        &servers,
        "acks=all",
        "enable.idempotence=true",
        "compression.type=lz4",
        "linger.ms=5",
    ];
    let stdout = run_kafka_tool(classpath, "ProducerPerformance", &tool_args).await?;
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.contains("records sent") && l.contains("records/sec"))
        .with_context(|| format!("no summary line in ProducerPerformance output:\n{stdout}"))?;
    let rate: f64 = summary
        .split(',')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("cannot parse {summary:?}"))?;
    let seconds = args.events as f64 / rate;
    Ok(Throughput::new(
        "kafka ProducerPerformance (peer)",
        args.events,
        args.event_bytes,
        Duration::from_secs_f64(seconds),
    ))
}

/// Runs Kafka's ConsumerPerformance over `topic` (which holds `args.events`
/// records) and parses the line under its header. The rate taken is
/// `fetch.nMsg.sec`, which leaves out the time the tool spends joining its
/// consumer group; our reader is assigned its partitions and joins none.
async fn run_read_peer(classpath: &str, brokers: &str, topic: &str, args: &LogBenchArgs) -> anyhow::Result<Throughput> {
    let events = args.events.to_string();
    let tool_args = [
        "--bootstrap-server",
        brokers,
        "--topic",
        topic,
        "--messages",
        &events,
        "--timeout",
        "30000",
    ];
    let stdout = run_kafka_tool(classpath, "ConsumerPerformance", &tool_args).await?;
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("start.time"));
    let (header, values) = (lines.next(), lines.next());
    let (Some(header), Some(values)) = (header, values) else {
        bail!("no statistics in ConsumerPerformance output:\n{stdout}");
    };
    let field = |name: &str| -> anyhow::Result<f64> {
        let i = header
            .split(',')
            .position(|h| h.trim() == name)
            .with_context(|| format!("no {name} in {header:?}"))?;
        values
            .split(',')
            .nth(i)
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("cannot parse {name} in {values:?}"))
    };
    let consumed = field("data.consumed.in.nMsg")?;
    if consumed as usize != args.events {
        bail!("ConsumerPerformance read {consumed} of {} records", args.events);
    }
    let rate = field("fetch.nMsg.sec")?;
    Ok(Throughput::new(
        "kafka ConsumerPerformance (peer)",
        args.events,
        args.event_bytes,
        Duration::from_secs_f64(args.events as f64 / rate),
    ))
}

/// Runs the benchmark and prints its report.
pub async fn run(args: LogBenchArgs) -> anyhow::Result<LogBenchReport> {
    if args.producers == 0 || args.batch == 0 || args.events == 0 {
        bail!("--events, --batch and --producers must be at least 1");
    }
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut results = Vec::new();

    for (label, fsync) in [
        ("embedded (fsync always)", FsyncPolicy::Always),
        ("embedded (fsync never)", FsyncPolicy::Never),
    ] {
        let path = dir.join(format!("bench-{run_id}-{fsync:?}"));
        let log = EmbeddedLog::open(
            &path,
            EmbeddedOptions {
                fsync,
                ..EmbeddedOptions::default()
            },
        )?;
        results.extend(bench_log(label, &log, "bench.log", &args).await?);
        drop(log);
        let _ = std::fs::remove_dir_all(&path);
    }

    let (mut peer, mut read_peer) = (None, None);
    if let Some(brokers) = &args.kafka {
        let log = KafkaLog::connect(KafkaConfig {
            brokers: brokers.clone(),
            ..KafkaConfig::default()
        })?;
        let ours = format!("bench.log.{run_id}");
        results.extend(bench_log("kafka", &log, &ours, &args).await?);
        if let Some(cp) = &args.kafka_classpath {
            read_peer = Some(run_read_peer(cp, brokers, &ours, &args).await?);
            let topic = format!("bench.peer.{run_id}");
            log.create_topic(&topic, args.partitions).await?;
            peer = Some(run_peer(cp, brokers, &topic, &args).await?);
        }
    }
    let ratio = |name: &str, peer: &Option<Throughput>| {
        let ours = results.iter().find(|r| r.name == name).map(|r| r.events_per_s);
        ours.zip(peer.as_ref().map(|p| p.events_per_s)).map(|(a, b)| a / b)
    };
    let kafka_append_vs_peer = ratio("kafka append", &peer);
    let kafka_read_vs_peer = ratio("kafka read", &read_peer);
    Ok(LogBenchReport {
        events: args.events,
        event_bytes: args.event_bytes,
        batch: args.batch,
        producers: args.producers,
        results,
        peer,
        kafka_append_vs_peer,
        read_peer,
        kafka_read_vs_peer,
    })
}

/// The report as a table.
pub fn render(report: &LogBenchReport) -> String {
    let mut out = format!(
        "reelflow-bench log: {} events of {} bytes, batches of {}, {} producers\n\n{:<36} {:>12} {:>10} {:>9}\n",
        report.events, report.event_bytes, report.batch, report.producers, "", "events/s", "MB/s", "seconds"
    );
    for r in report.results.iter().chain(&report.peer).chain(&report.read_peer) {
        out.push_str(&format!(
            "{:<36} {:>12.0} {:>10.1} {:>9.2}\n",
            r.name, r.events_per_s, r.mb_per_s, r.seconds
        ));
    }
    if let Some(ratio) = report.kafka_append_vs_peer {
        out.push_str(&format!(
            "\nkafka append / ProducerPerformance = {ratio:.2}x (target >= 0.8x)\n"
        ));
    }
    if let Some(ratio) = report.kafka_read_vs_peer {
        out.push_str(&format!("kafka read / ConsumerPerformance = {ratio:.2}x\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_values_have_the_asked_size() {
        for len in [120, 200, 1000] {
            assert_eq!(super::event_value(7, len).len(), len);
        }
    }
}
