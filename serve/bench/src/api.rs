//! `reelflow-bench api`: authenticated catalog reads over loopback — a video
//! by id, and a filtered page — per second with their latency percentiles,
//! against SQLite and (given a server) PostgreSQL, with the cost of one
//! Argon2id password hash beside them.
//!
//! The server is the real `reelflow` app on a socket; the load comes from
//! concurrent HTTP/1.1 keep-alive clients in the same process. Rate limits
//! are raised for the run: this measures the API, not the limiter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;

use reelflow_serve::config::{Config, ConfigArgs};

/// Flags of `reelflow-bench api`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiBenchArgs {
    /// Seconds of load per scenario.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Videos in the catalog.
    #[arg(long, default_value_t = 1000)]
    pub videos: usize,
    /// A PostgreSQL URL of a server where the bench may create a database;
    /// without it only SQLite is measured.
    #[arg(long, env = "REELFLOW_BENCH_POSTGRES")]
    pub postgres: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Throughput and latency of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// Database and request.
    pub name: String,
    /// Requests completed.
    pub requests: usize,
    /// Requests per second.
    pub per_second: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
}

/// Everything `reelflow-bench api` measured.
#[derive(Debug, Clone, Serialize)]
pub struct ApiBenchReport {
    /// Concurrent clients.
    pub clients: usize,
    /// Videos in the catalog.
    pub videos: usize,
    /// Milliseconds per Argon2id hash (the cost of a login).
    pub argon2_ms_per_hash: f64,
    /// The scenarios.
    pub scenarios: Vec<Scenario>,
}

async fn fresh_postgres(admin_url: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = format!("rf_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .context("creating the bench database")?;
    let (base, _) = admin_url
        .rsplit_once('/')
        .context("the PostgreSQL URL needs a database path")?;
    Ok(format!("{base}/{name}"))
}

/// Starts the app on a loopback port; returns its base URL.
async fn start(
    database_url: Option<String>,
    dir: &std::path::Path,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let mut config = Config::load(&ConfigArgs {
        data_dir: Some(dir.to_path_buf()),
        database_url,
        ..Default::default()
    })?;
    config.limits.api_per_user_per_minute = u32::MAX / 2;
    config.limits.register_per_ip_per_hour = u32::MAX / 2;
    let state = reelflow_serve::state::open(config).await?;
    let publisher = reelflow_serve::background::spawn_background(&state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = reelflow_serve::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, service).await;
        publisher.abort();
    });
    Ok((format!("http://{addr}"), server))
}

/// Registers a creator and fills the catalog; returns (token, video ids).
async fn seed(client: &reqwest::Client, base: &str, videos: usize) -> anyhow::Result<(String, Vec<String>)> {
    let token = crate::harness::register_creator(client, base).await?;
    let genres = ["music", "travel", "news", "sport", "science"];
    let mut ids = Vec::with_capacity(videos);
    for i in 0..videos {
        let body = json!({"title": format!("Video {i}"), "description": "a benchmark video", "genre": genres[i % genres.len()],
            "language": "en", "tags": [format!("t{}", i % 50)]});
        ids.push(crate::harness::create_video(client, base, &token, &body).await?);
    }
    Ok((token, ids))
}

async fn load(
    name: String,
    client: reqwest::Client,
    token: Arc<String>,
    urls: Arc<Vec<String>>,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Scenario> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (client, token, urls) = (client.clone(), Arc::clone(&token), Arc::clone(&urls));
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut i = c * 7919;
            while Instant::now() < deadline {
                let url = &urls[i % urls.len()];
                i += 1;
                let t = Instant::now();
                let r = client.get(url).bearer_auth(token.as_str()).send().await?;
                let status = r.status();
                r.bytes().await?;
                if !status.is_success() {
                    bail!("GET {url} answered {status}");
                }
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(0.0)
    };
    Ok(Scenario {
        name,
        requests: all.len(),
        per_second: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}

/// Runs the benchmark.
pub async fn run(args: ApiBenchArgs) -> anyhow::Result<ApiBenchReport> {
    if args.clients == 0 || args.videos == 0 || args.seconds == 0 {
        bail!("--clients, --videos and --seconds must be at least 1");
    }
    let started = Instant::now();
    let hashes = 10;
    for _ in 0..hashes {
        reelflow_serve::auth::password::hash("a benchmark password".into()).await?;
    }
    let argon2_ms_per_hash = started.elapsed().as_secs_f64() * 1e3 / hashes as f64;

    let mut databases: Vec<(&str, Option<String>)> = vec![("sqlite", None)];
    if let Some(pg) = &args.postgres {
        databases.push(("postgres", Some(fresh_postgres(pg).await?)));
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let mut scenarios = Vec::new();
    for (db, url) in databases {
        let dir = tempfile::tempdir()?;
        let (base, server) = start(url, dir.path())
            .await
            .with_context(|| format!("starting the app on {db}"))?;
        let (token, ids) = seed(&client, &base, args.videos)
            .await
            .with_context(|| format!("seeding {db}"))?;
        let token = Arc::new(token);
        let by_id: Vec<String> = ids.iter().map(|id| format!("{base}/v1/videos/{id}")).collect();
        let pages: Vec<String> = ["music", "travel", "news", "sport", "science"]
            .iter()
            .flat_map(|g| (0..10).map(move |t| (g, t)))
            .map(|(g, t)| format!("{base}/v1/videos?genre={g}&tag=t{}&limit=20", t * 5))
            .collect();
        scenarios.push(
            load(
                format!("{db}: GET /v1/videos/{{id}}"),
                client.clone(),
                Arc::clone(&token),
                Arc::new(by_id),
                args.clients,
                args.seconds,
            )
            .await?,
        );
        scenarios.push(
            load(
                format!("{db}: GET /v1/videos?genre&tag&limit=20"),
                client.clone(),
                token,
                Arc::new(pages),
                args.clients,
                args.seconds,
            )
            .await?,
        );
        server.abort();
    }
    Ok(ApiBenchReport {
        clients: args.clients,
        videos: args.videos,
        argon2_ms_per_hash,
        scenarios,
    })
}

/// The report as a table.
pub fn render(r: &ApiBenchReport) -> String {
    let mut out = format!(
        "reelflow-bench api: {} clients, {} videos; argon2id: {:.1} ms per hash\n\n{:<48} {:>10} {:>9} {:>9}\n",
        r.clients, r.videos, r.argon2_ms_per_hash, "", "req/s", "p50 ms", "p99 ms"
    );
    for s in &r.scenarios {
        out.push_str(&format!(
            "{:<48} {:>10.0} {:>9.2} {:>9.2}\n",
            s.name, s.per_second, s.p50_ms, s.p99_ms
        ));
    }
    out
}
