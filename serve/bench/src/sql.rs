//! `reelflow-bench sql`: SQL over the live views through the PostgreSQL
//! wire protocol, beside PostgreSQL answering the same queries from tables
//! of the same size.
//!
//! The dataflows run in this process over an embedded log holding the
//! playback traffic of `reelflow-bench dataflow` (a catalog of 100,000
//! videos, Zipf popularity); the pgwire server runs beside them. Clients
//! (tokio-postgres, the extended protocol with a prepared statement, as
//! drivers do) run in the same process, `--connections` at once, each
//! sending its next query when the last one answered:
//!
//! - **point**: `SELECT * FROM video_stats WHERE video_id = $1`, the id
//!   drawn uniformly from the videos that have stats;
//! - **top 10**: the first ten of `trending` for the 1 h window.
//!
//! The peer gets the same rows in tables `video_stats` (primary key
//! `video_id`) and `trending` (primary key `window, rank`), read back from
//! the views, and the same clients run the same statements against it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use reelflow_dataflows::traffic::Traffic;
use reelflow_dataflows::workload;
use reelflow_dataflows::{ClusterConfig, DataflowOptions, Dataflows, Datum, Selector, View};
use reelflow_ingest::log::{AnyLog, EmbeddedLog, EmbeddedOptions, FsyncPolicy};
use serde::Serialize;

/// Options of `reelflow-bench sql`.
#[derive(Debug, Clone, clap::Args)]
pub struct SqlBenchArgs {
    /// Videos in the catalog.
    #[arg(long, default_value_t = 100_000)]
    pub videos: usize,
    /// Playback events behind the views.
    #[arg(long, default_value_t = 2_000_000)]
    pub events: usize,
    /// Players watching at once while the events were made.
    #[arg(long, default_value_t = 20_000)]
    pub concurrent: usize,
    /// Client connections at once.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Seconds each query runs.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// PostgreSQL URL for the peer; without it the peer is skipped.
    #[arg(long, env = "REELFLOW_BENCH_POSTGRES")]
    pub postgres: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One query under load.
#[derive(Debug, Serialize)]
pub struct Load {
    /// Who answered: "reelflow" or "postgresql".
    pub server: &'static str,
    /// Which query.
    pub query: &'static str,
    /// Answers per second.
    pub qps: f64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Answers in all.
    pub answers: usize,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Cores of this machine.
    pub cores: usize,
    /// Rows of `video_status` (every video of the catalog).
    pub videos: usize,
    /// Rows of `video_stats` (videos with views).
    pub video_stats_rows: usize,
    /// Client connections.
    pub connections: usize,
    /// The runs.
    pub loads: Vec<Load>,
}

const POINT: &str = "SELECT * FROM video_stats WHERE video_id = $1";
const TOP10: &str = "SELECT video_id, views FROM trending WHERE \"window\" = '1h' ORDER BY rank LIMIT 10";

/// The one account of the bench's pgwire server, an admin.
#[derive(Debug)]
struct BenchAccount;

const USER: &str = "bench@example.org";
const PASSWORD: &str = "bench password";

#[async_trait]
impl reelflow_sql::Authenticator for BenchAccount {
    async fn verify(&self, user: &str, password: &str, _client: &str) -> Result<bool, String> {
        Ok(user == USER && password == PASSWORD)
    }
    async fn principal(&self, _user: &str) -> Result<reelflow_sql::Principal, String> {
        Ok(reelflow_sql::Principal::Admin)
    }
}

/// Runs `query` from `connections` clients for `seconds`.
async fn load(
    config: &tokio_postgres::Config,
    server: &'static str,
    name: &'static str,
    query: &'static str,
    ids: Arc<Vec<String>>,
    args: &SqlBenchArgs,
) -> anyhow::Result<Load> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {server}"))?;
        tokio::spawn(connection);
        let ids = Arc::clone(&ids);
        tasks.push(tokio::spawn(async move {
            let statement = client.prepare(query).await?;
            let takes_id = !statement.params().is_empty();
            let mut latencies = Vec::new();
            // A small xorshift: uniform enough, and no shared state.
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (c as u64 + 1);
            while Instant::now() < deadline {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let sent = Instant::now();
                let rows = if takes_id {
                    let id = &ids[(x % ids.len() as u64) as usize];
                    client.query(&statement, &[id]).await?
                } else {
                    client.query(&statement, &[]).await?
                };
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                anyhow::ensure!(!rows.is_empty(), "{query} answered no rows");
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    Ok(Load {
        server,
        query: name,
        qps: all.len() as f64 / seconds,
        p50_ms: crate::harness::percentile(&all, 0.50),
        p99_ms: crate::harness::percentile(&all, 0.99),
        answers: all.len(),
    })
}

/// Copies the views' rows into PostgreSQL tables of the same shape.
async fn fill_postgres(
    url: &str,
    stats: &[reelflow_dataflows::Row],
    trending: &[reelflow_dataflows::Row],
) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(connection);
    client
        .batch_execute(
            "DROP TABLE IF EXISTS video_stats, trending;
             CREATE TABLE video_stats (video_id text PRIMARY KEY, views int8, unique_viewers int8,
               watch_time_s float8, avg_watch_time_s float8, completion_rate float8, last_view_at timestamptz);
             CREATE TABLE trending (\"window\" text, rank int8, video_id text, views int8, PRIMARY KEY (\"window\", rank));",
        )
        .await?;
    // Each value as a quoted literal, which PostgreSQL casts to its column's type.
    let literal = |d: &Datum| match d.to_json() {
        serde_json::Value::Null => "NULL".to_string(),
        serde_json::Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        other => format!("'{other}'"),
    };
    for (table, rows) in [("video_stats", stats), ("trending", trending)] {
        for chunk in rows.chunks(1000) {
            let values: Vec<String> = chunk
                .iter()
                .map(|row| format!("({})", row.iter().map(literal).collect::<Vec<_>>().join(",")))
                .collect();
            client
                .batch_execute(&format!("INSERT INTO {table} VALUES {}", values.join(",")))
                .await
                .with_context(|| format!("filling {table}"))?;
        }
    }
    client.batch_execute("ANALYZE video_stats; ANALYZE trending;").await?;
    Ok(())
}

/// Runs the benchmark.
pub async fn run(args: SqlBenchArgs) -> anyhow::Result<Report> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = tempfile::tempdir()?;
    let log = AnyLog::Embedded(EmbeddedLog::open(
        dir.path(),
        EmbeddedOptions {
            fsync: FsyncPolicy::Never,
            ..EmbeddedOptions::default()
        },
    )?);
    workload::create_topics(&log, 8).await;
    let mut traffic = Traffic::new(42, args.videos, args.concurrent);
    eprintln!(
        "{} videos and {} playback events into the views…",
        args.videos, args.events
    );
    crate::harness::append_traffic(&log, &mut traffic, args.events).await;
    let options = DataflowOptions {
        cluster: ClusterConfig::single(cores),
        peek_timeout: Duration::from_secs(600),
        ..DataflowOptions::default()
    };
    let end = crate::harness::complete_now(options.source.tick.as_millis() as u64);
    let dataflows = Dataflows::start(log, options).await?;
    let client = dataflows.client();
    client.wait_until_readable(end, Duration::from_secs(3600)).await?;
    let status = client.peek(View::VideoStatus, Selector::All, None).await?;
    let stats = client.peek(View::VideoStats, Selector::All, None).await?;
    let trending = client.peek(View::Trending, Selector::All, None).await?;
    let join = |rows: Vec<(reelflow_dataflows::Row, reelflow_dataflows::Row)>| -> Vec<reelflow_dataflows::Row> {
        rows.into_iter()
            .map(|(mut k, v)| {
                k.extend(v);
                k
            })
            .collect()
    };
    let videos = status.rows.len();
    let stats = join(stats.rows);
    let trending = join(trending.rows);
    anyhow::ensure!(!stats.is_empty() && !trending.is_empty(), "the views are empty");
    let ids: Arc<Vec<String>> = Arc::new(
        stats
            .iter()
            .filter_map(|r| r[0].to_json().as_str().map(str::to_string))
            .collect(),
    );

    let engine = reelflow_sql::SqlEngine::new(client.clone(), reelflow_sql::SqlLimits::default())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let server = tokio::spawn(reelflow_sql::PgServer::new(engine, Arc::new(BenchAccount)).serve(listener));
    let mut ours = tokio_postgres::Config::new();
    ours.host("127.0.0.1")
        .port(port)
        .user(USER)
        .password(PASSWORD)
        .dbname("reelflow");

    let mut loads = Vec::new();
    eprintln!(
        "Reelflow over pgwire: {} connections, {} s per query…",
        args.connections, args.seconds
    );
    loads.push(load(&ours, "reelflow", "point", POINT, Arc::clone(&ids), &args).await?);
    loads.push(load(&ours, "reelflow", "top 10", TOP10, Arc::clone(&ids), &args).await?);
    server.abort();
    tokio::task::spawn_blocking(move || dataflows.shutdown()).await?;
    if let Some(url) = &args.postgres {
        eprintln!("PostgreSQL with the same rows…");
        fill_postgres(url, &stats, &trending).await?;
        let peer: tokio_postgres::Config = url.parse().context("parsing the PostgreSQL URL")?;
        loads.push(load(&peer, "postgresql", "point", POINT, Arc::clone(&ids), &args).await?);
        loads.push(load(&peer, "postgresql", "top 10", TOP10, Arc::clone(&ids), &args).await?);
    }
    Ok(Report {
        cores,
        videos,
        video_stats_rows: stats.len(),
        connections: args.connections,
        loads,
    })
}

/// The report as a table.
pub fn render(r: &Report) -> String {
    let mut out = format!(
        "SQL benchmark: {} videos ({} with stats), {} connections, {} cores\n\n",
        r.videos, r.video_stats_rows, r.connections, r.cores
    );
    out += "server      query    QPS       p50 ms  p99 ms  answers\n";
    for l in &r.loads {
        out += &format!(
            "{:<11} {:<7} {:>8.0}  {:>7.3}  {:>6.3}  {:>7}\n",
            l.server, l.query, l.qps, l.p50_ms, l.p99_ms, l.answers
        );
    }
    out
}
