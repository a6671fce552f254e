//! `reelflow-bench dataflow`: the dataflows under realistic playback traffic
//! (see `reelflow_dataflows::traffic`), driving every view.
//!
//! - **Throughput**: the events are appended first, at a steady rate
//!   (`--append-rate`, 50,000/s, 10 ms of events per append, as they
//!   arrive), then the dataflows start and read the log
//!   from the beginning; the clock stops when every view is complete past
//!   the last event (the views' frontier passed it). From the embedded log
//!   with 1 and 2 workers, and from Kafka. The rate matters: log time is
//!   the timestamp, so a log written as fast as possible puts a million
//!   records into a few dozen 10 ms ticks, and a replay of it does far
//!   less work per record than one of a log written as traffic arrives.
//!   Each run also reports the CPU the whole process used (workers, log
//!   readers, the Kafka client's threads; not a broker on the same
//!   machine), so records per CPU second compare the logs without the
//!   machine's other tenants, and its peak resident memory (which holds
//!   the generated traffic too, and whatever the allocator had not yet
//!   returned from the run before).
//! - **Restart**: the embedded log again, 1 and 2 workers, once all of it
//!   is older than the retained history (30 s): what a restarted worker
//!   replays. The sources stamp such records in 1 s ticks
//!   (`reelflow_dataflows::source`), which no read can tell apart.
//! - **Freshness**: with the dataflows running, events are appended at a
//!   fixed rate; for sampled batches, the time from the append call to the
//!   moment a peek at the latest readable time includes the batch.
//! - **Peer**: PostgreSQL with the playback events in a table: its insert
//!   rate, and the time `video_stats` and the 1 h `trending` take as SQL
//!   queries over it.

use std::time::{Duration, Instant};

use anyhow::Context;
use reelflow_dataflows::SourceOptions;
use reelflow_dataflows::traffic::Traffic;
use reelflow_dataflows::workload::{self, Raw};
use reelflow_dataflows::{ClusterConfig, DataflowOptions, Dataflows, Selector, View};
use reelflow_ingest::log::{AnyLog, EmbeddedLog, EmbeddedOptions, FsyncPolicy, KafkaConfig, KafkaLog};
use serde::Serialize;

/// Options of `reelflow-bench dataflow`.
#[derive(Debug, Clone, clap::Args)]
pub struct DataflowBenchArgs {
    /// Playback events in the throughput runs.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Videos in the catalog (popularity is Zipf over them).
    #[arg(long, default_value_t = 100_000)]
    pub videos: usize,
    /// Players watching at once.
    #[arg(long, default_value_t = 20_000)]
    pub concurrent: usize,
    /// Events per second offered in the freshness run.
    #[arg(long, default_value_t = 50_000)]
    pub rate: usize,
    /// Seconds the freshness run lasts.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Events per second the throughput runs' logs are written at; 0 writes
    /// as fast as the log takes them. A record's time is its log time, so
    /// this sets how many distinct times the records span, and with them
    /// how much work the dataflows do per record.
    #[arg(long, default_value_t = 50_000)]
    pub append_rate: usize,
    /// Records' times are rounded up to this many milliseconds in every
    /// run, as the `dataflow.tick_ms` setting does: a longer tick means
    /// less work per record and staler views.
    #[arg(long, default_value_t = default_tick_ms(), value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub tick_ms: u64,
    /// Kafka brokers; without it the Kafka run is skipped.
    #[arg(long, env = "REELFLOW_BENCH_KAFKA")]
    pub kafka: Option<String>,
    /// PostgreSQL URL for the peer; without it the peer is skipped.
    #[arg(long, env = "REELFLOW_BENCH_POSTGRES")]
    pub postgres: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One throughput run.
#[derive(Debug, Serialize)]
pub struct Throughput {
    /// Which log.
    pub log: &'static str,
    /// Timely workers.
    pub workers: usize,
    /// Records read (catalog and playback).
    pub records: u64,
    /// Until every view was complete past the last record.
    pub seconds: f64,
    /// Records per second.
    pub records_per_s: f64,
    /// Per worker (one core each).
    pub records_per_s_per_core: f64,
    /// CPU seconds the process used meanwhile: the workers, the log
    /// readers and the log client's own threads (a Kafka broker on the same
    /// machine is not in it).
    pub cpu_seconds: f64,
    /// Records per CPU second of the process.
    pub records_per_cpu_s: f64,
    /// Peak resident memory of the process during the run, MiB (the
    /// generated traffic, kept for the next runs, is in it).
    pub peak_rss_mib: f64,
}

/// The freshness run.
#[derive(Debug, Serialize)]
pub struct Freshness {
    /// Offered rate.
    pub rate: usize,
    /// Rate actually appended.
    pub achieved_rate: f64,
    /// Batches measured.
    pub samples: usize,
    /// Append → visible, median.
    pub p50_ms: f64,
    /// Append → visible, 99th percentile.
    pub p99_ms: f64,
}

/// PostgreSQL beside it.
#[derive(Debug, Serialize)]
pub struct Postgres {
    /// Rows inserted per second (1000-row INSERTs).
    pub insert_rows_per_s: f64,
    /// `video_stats` for every video.
    pub video_stats_ms: f64,
    /// `video_stats` of one video (indexed).
    pub video_stats_point_ms: f64,
    /// Top 100 of the last hour.
    pub trending_ms: f64,
}

/// Everything measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Cores of this machine.
    pub cores: usize,
    /// Playback events per run.
    pub events: usize,
    /// Videos.
    pub videos: usize,
    /// Events per second the throughput logs were written at; 0 for as
    /// fast as possible.
    pub append_rate: usize,
    /// Milliseconds records' times are rounded up to.
    pub tick_ms: u64,
    /// Throughput runs.
    pub throughput: Vec<Throughput>,
    /// 2 workers over 1, embedded log.
    pub speedup_2_over_1: f64,
    /// Freshness run.
    pub freshness: Freshness,
    /// The peer.
    pub postgres: Option<Postgres>,
}

/// History the dataflows keep readable.
const HISTORY: Duration = Duration::from_secs(30);

/// The dataflows' own tick, what `--tick-ms` defaults to.
fn default_tick_ms() -> u64 {
    SourceOptions::default().tick.as_millis() as u64
}

fn options(workers: usize, tick_ms: u64) -> DataflowOptions {
    DataflowOptions {
        cluster: ClusterConfig::single(workers),
        history: HISTORY,
        peek_timeout: Duration::from_secs(600),
        source: SourceOptions {
            tick: Duration::from_millis(tick_ms),
            ..SourceOptions::default()
        },
        ..DataflowOptions::default()
    }
}

fn embedded(dir: &std::path::Path, fsync: FsyncPolicy) -> anyhow::Result<AnyLog> {
    Ok(AnyLog::Embedded(EmbeddedLog::open(
        dir,
        EmbeddedOptions {
            fsync,
            ..EmbeddedOptions::default()
        },
    )?))
}

/// Appends `parts` in order, at `rate` events per second, 10 ms of them at
/// a time as they would arrive (0: as fast as the log takes them, 5,000 at
/// a time).
async fn append_paced(log: &AnyLog, parts: &[&[Raw]], rate: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut appended = 0;
    let slice = if rate > 0 { (rate / 100).max(1) } else { 5000 };
    for chunk in parts.iter().flat_map(|p| p.chunks(slice)) {
        workload::append(log, chunk).await;
        appended += chunk.len();
        if rate > 0 {
            let due = started + Duration::from_secs_f64(appended as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
    }
    Ok(())
}

/// Starts the dataflows over `log` and times them until complete past now.
async fn time_catch_up(log: &AnyLog, label: &'static str, workers: usize, tick_ms: u64) -> anyhow::Result<Throughput> {
    let records = crate::harness::records_in(log).await?;
    let end = crate::harness::complete_now(tick_ms);
    crate::harness::reset_peak_rss();
    let cpu_before = crate::harness::process_cpu_s();
    let started = Instant::now();
    let dataflows = Dataflows::start(log.clone(), options(workers, tick_ms)).await?;
    let client = dataflows.client();
    client
        .wait_until_readable(end, Duration::from_secs(3600))
        .await
        .context("waiting for the dataflows to catch up")?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = crate::harness::process_cpu_s() - cpu_before;
    let peak_rss_mib = crate::harness::peak_rss_kib() as f64 / 1024.0;
    // A real read of the result, to be sure it is there.
    let top = client.peek(View::Trending, Selector::All, None).await?;
    anyhow::ensure!(!top.rows.is_empty(), "trending is empty after the run");
    tokio::task::spawn_blocking(move || dataflows.shutdown()).await?;
    let records_per_s = records as f64 / seconds;
    Ok(Throughput {
        log: label,
        workers,
        records,
        seconds,
        records_per_s,
        records_per_s_per_core: records_per_s / workers as f64,
        cpu_seconds,
        records_per_cpu_s: records as f64 / cpu_seconds,
        peak_rss_mib,
    })
}

async fn freshness(args: &DataflowBenchArgs, traffic: &mut Traffic, catalog: &[Raw]) -> anyhow::Result<Freshness> {
    let dir = tempfile::tempdir()?;
    // What users run: fsync with group commit.
    let log = embedded(dir.path(), FsyncPolicy::Always)?;
    workload::create_topics(&log, 8).await;
    append_paced(&log, &[catalog], 0).await?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dataflows = Dataflows::start(log.clone(), options(cores, args.tick_ms)).await?;
    let client = dataflows.client();
    client
        .wait_until_readable(crate::harness::complete_now(args.tick_ms), Duration::from_secs(600))
        .await?;
    let started = Instant::now();
    let (latencies, appended) =
        crate::harness::sample_freshness(&log, &client, traffic, args.rate, args.seconds, args.tick_ms).await?;
    let achieved_rate = appended as f64 / started.elapsed().as_secs_f64();
    tokio::task::spawn_blocking(move || dataflows.shutdown()).await?;
    Ok(Freshness {
        rate: args.rate,
        achieved_rate,
        samples: latencies.len(),
        p50_ms: crate::harness::percentile(&latencies, 0.50),
        p99_ms: crate::harness::percentile(&latencies, 0.99),
    })
}

async fn postgres(url: &str, playback: &[Raw]) -> anyhow::Result<Postgres> {
    use reelflow_ingest::events::{PlaybackEvent, PlaybackKind, decode};
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query("DROP TABLE IF EXISTS bench_playback")
        .execute(&pool)
        .await?;
    sqlx::query(
        "CREATE TABLE bench_playback (session_id uuid NOT NULL, video_id uuid NOT NULL, user_id uuid, \
         kind text NOT NULL, occurred_ms bigint NOT NULL, logged_at timestamptz NOT NULL DEFAULT now(), \
         played_ms bigint NOT NULL DEFAULT 0, position_ms bigint, startup_ms bigint)",
    )
    .execute(&pool)
    .await?;
    sqlx::query("CREATE INDEX ON bench_playback (video_id)")
        .execute(&pool)
        .await?;
    let rows: Vec<_> = playback
        .iter()
        .filter_map(|(_, _, v)| decode::<PlaybackEvent>(v).ok())
        .collect();
    let started = Instant::now();
    for chunk in rows.chunks(1000) {
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "INSERT INTO bench_playback (session_id, video_id, user_id, kind, occurred_ms, played_ms, position_ms, startup_ms) ",
        );
        q.push_values(chunk, |mut b, e| {
            let (kind, played, position, startup) = match &e.event.kind {
                PlaybackKind::SessionStart { .. } => ("session_start", 0, None, None),
                PlaybackKind::FirstFrame { startup_ms } => ("first_frame", 0, None, Some(*startup_ms as i64)),
                PlaybackKind::Heartbeat {
                    position_s, played_ms, ..
                } => (
                    "heartbeat",
                    *played_ms as i64,
                    Some((*position_s * 1000.0) as i64),
                    None,
                ),
                PlaybackKind::End { position_s } => ("end", 0, Some((*position_s * 1000.0) as i64), None),
                PlaybackKind::Pause { position_s } => ("pause", 0, Some((*position_s * 1000.0) as i64), None),
                PlaybackKind::Seek { to_s, .. } => ("seek", 0, Some((*to_s * 1000.0) as i64), None),
                PlaybackKind::Error { .. } => ("error", 0, None, None),
                _ => ("other", 0, None, None),
            };
            b.push_bind(e.event.session_id.to_string())
                .push_unseparated("::uuid")
                .push_bind(e.event.video_id.to_string())
                .push_unseparated("::uuid")
                .push_bind(e.event.user_id.map(|u| u.to_string()))
                .push_unseparated("::uuid")
                .push_bind(kind)
                .push_bind(e.occurred_at.timestamp_millis())
                .push_bind(played)
                .push_bind(position)
                .push_bind(startup);
        });
        q.build().execute(&pool).await?;
    }
    let insert_rows_per_s = rows.len() as f64 / started.elapsed().as_secs_f64();
    sqlx::query("ANALYZE bench_playback").execute(&pool).await?;
    let stats_sql = "SELECT video_id, count(DISTINCT session_id) AS views, \
        count(DISTINCT coalesce(user_id, session_id)) AS unique_viewers, sum(played_ms) / 1000.0 AS watch_time_s, \
        max(occurred_ms) AS last_view_ms FROM bench_playback";
    let timed = |sql: String, bind: Option<String>| {
        let pool = pool.clone();
        async move {
            let started = Instant::now();
            let mut q = sqlx::query(&sql);
            if let Some(v) = bind {
                q = q.bind(v);
            }
            let rows = q.fetch_all(&pool).await?;
            anyhow::ensure!(!rows.is_empty(), "no rows from {sql}");
            Ok::<f64, anyhow::Error>(started.elapsed().as_secs_f64() * 1000.0)
        }
    };
    let video_stats_ms = timed(format!("{stats_sql} GROUP BY video_id"), None).await?;
    let video_stats_point_ms = timed(
        format!("{stats_sql} WHERE video_id = $1::uuid GROUP BY video_id"),
        Some(rows[0].event.video_id.to_string()),
    )
    .await?;
    let trending_ms = timed(
        "SELECT video_id, count(DISTINCT session_id) AS views FROM bench_playback \
         WHERE kind = 'session_start' AND logged_at > now() - interval '1 hour' \
         GROUP BY video_id ORDER BY views DESC, video_id LIMIT 100"
            .into(),
        None,
    )
    .await?;
    sqlx::query("DROP TABLE bench_playback").execute(&pool).await?;
    Ok(Postgres {
        insert_rows_per_s,
        video_stats_ms,
        video_stats_point_ms,
        trending_ms,
    })
}

/// Runs the benchmark.
pub async fn run(args: DataflowBenchArgs) -> anyhow::Result<Report> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut traffic = Traffic::new(42, args.videos, args.concurrent);
    eprintln!("generating {} videos and {} playback events…", args.videos, args.events);
    let catalog = traffic.catalog();
    let playback = traffic.playback(args.events);

    let mut throughput = Vec::new();
    let dir = tempfile::tempdir()?;
    let log = embedded(dir.path(), FsyncPolicy::Never)?;
    workload::create_topics(&log, 8).await;
    eprintln!("writing the log at {} events/s…", args.append_rate);
    append_paced(&log, &[&catalog, &playback], args.append_rate).await?;
    let written = Instant::now();
    for workers in [1, 2] {
        eprintln!("embedded log, {workers} worker(s)…");
        throughput.push(time_catch_up(&log, "embedded", workers, args.tick_ms).await?);
    }
    let wait = HISTORY.saturating_sub(written.elapsed());
    eprintln!(
        "waiting {:.0} s, until the log is older than the history…",
        wait.as_secs_f64()
    );
    tokio::time::sleep(wait).await;
    for workers in [1, 2] {
        eprintln!("restart on the embedded log, {workers} worker(s)…");
        throughput.push(time_catch_up(&log, "restart", workers, args.tick_ms).await?);
    }
    drop(log);
    if let Some(brokers) = &args.kafka {
        eprintln!("Kafka, {cores} worker(s)…");
        let log = AnyLog::Kafka(KafkaLog::connect(KafkaConfig {
            brokers: brokers.clone(),
            ..KafkaConfig::default()
        })?);
        workload::create_topics(&log, 8).await;
        append_paced(&log, &[&catalog, &playback], args.append_rate).await?;
        throughput.push(time_catch_up(&log, "kafka", cores, args.tick_ms).await?);
    }
    let speedup_2_over_1 = throughput[1].records_per_s / throughput[0].records_per_s;
    eprintln!("freshness at {} events/s for {} s…", args.rate, args.seconds);
    let freshness = freshness(&args, &mut traffic, &catalog).await?;
    let postgres = match &args.postgres {
        Some(url) => {
            eprintln!("PostgreSQL…");
            Some(postgres(url, &playback).await?)
        }
        None => None,
    };
    Ok(Report {
        cores,
        events: args.events,
        videos: args.videos,
        append_rate: args.append_rate,
        tick_ms: args.tick_ms,
        throughput,
        speedup_2_over_1,
        freshness,
        postgres,
    })
}

/// The report as a table.
pub fn render(r: &Report) -> String {
    let mut out = format!(
        "dataflow benchmark: {} playback events over {} videos (+{} catalog records), logs written at {}, {} ms ticks, {} cores\n\n",
        r.events,
        r.videos,
        r.videos * 3,
        match r.append_rate {
            0 => "full speed".to_string(),
            rate => format!("{rate} events/s"),
        },
        r.tick_ms,
        r.cores
    );
    out += "log       workers  records     seconds  records/s   records/s/core  CPU s  records/CPU s  peak MiB\n";
    for t in &r.throughput {
        out += &format!(
            "{:<9} {:>7}  {:>10}  {:>7.2}  {:>10.0}  {:>14.0}  {:>5.1}  {:>13.0}  {:>8.0}\n",
            t.log,
            t.workers,
            t.records,
            t.seconds,
            t.records_per_s,
            t.records_per_s_per_core,
            t.cpu_seconds,
            t.records_per_cpu_s,
            t.peak_rss_mib
        );
    }
    out += &format!(
        "restart: the embedded log again, once older than the retained history ({} s)\n",
        HISTORY.as_secs()
    );
    out += &format!("\n2 workers / 1 worker (embedded): {:.2}x\n", r.speedup_2_over_1);
    let f = &r.freshness;
    out += &format!(
        "freshness at {} events/s offered ({:.0} achieved): append -> visible in a peek p50 {:.1} ms, p99 {:.1} ms ({} samples)\n",
        f.rate, f.achieved_rate, f.p50_ms, f.p99_ms, f.samples
    );
    if let Some(p) = &r.postgres {
        out += &format!(
            "PostgreSQL: insert {:.0} rows/s; video_stats (all videos) {:.1} ms, (one video) {:.2} ms; trending 1h top 100 {:.1} ms\n",
            p.insert_rows_per_s, p.video_stats_ms, p.video_stats_point_ms, p.trending_ms
        );
    }
    out
}
