//! `reelflow-bench hls`: segment delivery and beacon ingestion under wrk.
//!
//! - **Delivery**: a clip is uploaded and transcoded by the real pipeline
//!   into the local store; wrk (Debian's) then requests the hot set (every
//!   media segment of every rendition, round robin) from Reelflow and, in
//!   the same run, from nginx (Debian's) serving the very same files from
//!   disk with `sendfile`. Rounds alternate between the two; the report
//!   gives each round and the ratio of the medians.
//! - **Beacons**: wrk posts batches of player events (a session start, a
//!   first frame and heartbeats) to `POST /v1/playback/events`; every 202
//!   means the log acknowledged the batch. Measured on the embedded log and,
//!   when `REELFLOW_BENCH_KAFKA` names a broker, on Kafka.
//!
//! The server runs in this process (tokio, one worker thread per core);
//! wrk and nginx are separate processes on the same cores, so both servers
//! share the machine with the same load generator.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use reelflow_ingest::ObjectStore;
use reelflow_ingest::storage::ObjectKey;
use reelflow_ingest::transcode::test_pattern::TestPattern;
use serde::{Deserialize, Serialize};
use serde_json::json;

use reelflow_serve::config::{Config, ConfigArgs, LogBackend};
use reelflow_serve::state::AppState;

/// Flags of `reelflow-bench hls`.
#[derive(Debug, Clone, clap::Args)]
pub struct HlsBenchArgs {
    /// Seconds of each wrk run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// Open connections.
    #[arg(long, default_value_t = 64)]
    pub connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    pub threads: u32,
    /// Rounds per server (alternating).
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Length of the transcoded clip, seconds.
    #[arg(long, default_value_t = 20)]
    pub clip_seconds: u32,
    /// Frame size of the clip.
    #[arg(long, default_value = "1280x720")]
    pub size: String,
    /// Player events per beacon batch.
    #[arg(long, default_value_t = 10)]
    pub batch: usize,
    /// Kafka brokers for the beacon run on Kafka (skipped when unset).
    #[arg(long, env = "REELFLOW_BENCH_KAFKA")]
    pub kafka: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What wrk measured in one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrkRun {
    /// Requests completed.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Megabytes (10^6) per second of responses.
    pub mb_per_s: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Socket errors and non-2xx/3xx answers.
    pub errors: u64,
}

/// A beacon run on one log.
#[derive(Debug, Clone, Serialize)]
pub struct BeaconRun {
    /// `embedded` or `kafka`.
    pub log: String,
    /// The wrk run (a request is one batch).
    pub wrk: WrkRun,
    /// Events accepted (acknowledged by the log) per second.
    pub events_per_s: f64,
}

/// Everything `reelflow-bench hls` measured.
#[derive(Debug, Clone, Serialize)]
pub struct HlsBenchReport {
    /// Segments in the hot set.
    pub segments: usize,
    /// Their mean size, bytes.
    pub mean_segment_bytes: u64,
    /// wrk connections and seconds per run.
    pub connections: u32,
    /// Seconds per run.
    pub seconds: u32,
    /// Reelflow's rounds.
    pub reelflow: Vec<WrkRun>,
    /// nginx's rounds.
    pub nginx: Vec<WrkRun>,
    /// Median requests/s of Reelflow over nginx's.
    pub reelflow_vs_nginx: f64,
    /// Beacon ingestion runs.
    pub beacons: Vec<BeaconRun>,
    /// Events per beacon batch.
    pub batch: usize,
}

/// Reports wrk's own figures as one JSON line.
const WRK_DONE: &str = r#"
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p99_us":%d,"errors":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), errors))
end
"#;

#[derive(Deserialize)]
struct WrkJson {
    requests: u64,
    duration_us: u64,
    bytes: u64,
    p50_us: u64,
    p99_us: u64,
    errors: u64,
}

fn lua_string(s: &str) -> String {
    format!("{s:?}")
}

/// Runs wrk with `script` against `url`.
async fn wrk(url: &str, script: &Path, args: &HlsBenchArgs) -> anyhow::Result<WrkRun> {
    let out = tokio::process::Command::new("wrk")
        .arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", args.seconds))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .await
        .context("running wrk (install Debian's wrk: scripts/bench.sh does)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRKJSON "))
        .with_context(|| format!("no summary from wrk: {stdout}"))?;
    let j: WrkJson = serde_json::from_str(line)?;
    let secs = j.duration_us as f64 / 1e6;
    Ok(WrkRun {
        requests: j.requests,
        rps: j.requests as f64 / secs,
        mb_per_s: j.bytes as f64 / secs / 1e6,
        p50_ms: j.p50_us as f64 / 1000.0,
        p99_ms: j.p99_us as f64 / 1000.0,
        errors: j.errors,
    })
}

/// A wrk script that requests `paths` round robin, each thread starting
/// at another place.
fn get_script(paths: &[String]) -> String {
    let list: Vec<String> = paths.iter().map(|p| lua_string(p)).collect();
    format!(
        "local paths = {{{}}}\nlocal i = 0\nsetup = function(thread) end\n\
         init = function(args) i = math.random(#paths) end\n\
         request = function()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n{WRK_DONE}",
        list.join(",")
    )
}

/// A wrk script that posts one beacon batch per request.
fn beacon_script(body: &str) -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.path = \"/v1/playback/events\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.body = {}\n{WRK_DONE}",
        lua_string(body)
    )
}

/// The in-process server of a run.
struct Server {
    base: String,
    state: AppState,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(dir: &Path, kafka: Option<&str>) -> anyhow::Result<Server> {
    let mut config = Config::load(&ConfigArgs {
        data_dir: Some(dir.to_path_buf()),
        ..Default::default()
    })?;
    if let Some(brokers) = kafka {
        config.log.backend = LogBackend::Kafka;
        config.kafka.brokers = brokers.to_string();
    }
    // The load generator is one client: no limits in its way.
    config.limits.beacons_per_ip_per_minute = u32::MAX / 2;
    config.limits.sessions_per_ip_per_minute = u32::MAX / 2;
    config.limits.beacons_per_session_per_minute = u32::MAX / 2;
    config.limits.api_per_user_per_minute = u32::MAX / 2;
    config.limits.register_per_ip_per_hour = u32::MAX / 2;
    let state = reelflow_serve::state::open(config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = reelflow_serve::app(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, service).await;
    });
    Ok(Server {
        base: format!("http://{addr}"),
        state,
        task,
    })
}

/// Uploads and transcodes a clip; returns the video id.
async fn transcoded_video(server: &Server, dir: &Path, args: &HlsBenchArgs) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let token = crate::harness::register_creator(&http, &server.base).await?;
    let id = crate::harness::create_video(&http, &server.base, &token, &json!({"title": "Bench clip"})).await?;
    let clip = dir.join("clip.mp4");
    let size: &'static str = Box::leak(args.size.clone().into_boxed_str());
    let pattern = TestPattern::new(Some(size), true, args.clip_seconds);
    tokio::task::spawn_blocking(move || pattern.write(&clip).map_err(anyhow::Error::msg)).await??;
    let bytes = tokio::fs::read(dir.join("clip.mp4")).await?;
    http.put(format!("{}/v1/videos/{id}/source", server.base))
        .bearer_auth(&token)
        .header("content-type", "video/mp4")
        .body(bytes)
        .send()
        .await?
        .error_for_status()?;
    let video_id: uuid::Uuid = id.parse()?;
    let source = ObjectKey::parse(&format!("videos/{id}/source"))?;
    let work_dir = dir.join("transcode");
    let event = reelflow_ingest::transcode::transcode(
        &server.state.platform.log,
        &server.state.platform.store,
        video_id,
        &source,
        &work_dir,
        reelflow_ingest::transcode::JobLimits::default(),
        chrono::Utc::now(),
    )
    .await;
    if !matches!(event, reelflow_ingest::events::ProcessingEvent::Ready { .. }) {
        bail!("the bench clip did not transcode: {event:?}");
    }
    Ok(id)
}

/// nginx serving `root` on a loopback port, as a child process.
struct Nginx {
    child: tokio::process::Child,
    port: u16,
    prefix: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // A killed master leaves its workers running: ask it to stop them.
        let conf = self.prefix.join("nginx.conf");
        let stopped = std::process::Command::new("nginx")
            .arg("-p")
            .arg(&self.prefix)
            .arg("-c")
            .arg(&conf)
            .args(["-s", "stop"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if stopped {
            for _ in 0..100 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.start_kill();
    }
}

async fn start_nginx(dir: &Path, root: &Path) -> anyhow::Result<Nginx> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let prefix = dir.join("nginx");
    tokio::fs::create_dir_all(prefix.join("tmp")).await?;
    // Same as our server: one worker per core; files from the page cache
    // with sendfile; no access log.
    // As root, nginx's workers would drop to `nobody`, who cannot read the
    // bench's private temporary directory.
    let root_user = if current_uid() == 0 { "user root;\n" } else { "" };
    let conf = format!(
        "{root_user}worker_processes auto;\ndaemon off;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  tcp_nodelay on;\n\
         keepalive_requests 1000000;\n  open_file_cache max=10000 inactive=60s;\n\
         client_body_temp_path {p}/tmp;\n  proxy_temp_path {p}/tmp;\n\
         types {{ video/iso.segment m4s; video/mp4 mp4; application/vnd.apple.mpegurl m3u8; image/jpeg jpg; }}\n\
         server {{ listen 127.0.0.1:{port}; root {root}; }}\n}}\n",
        p = prefix.display(),
        root = root.display(),
    );
    let conf_path = prefix.join("nginx.conf");
    tokio::fs::write(&conf_path, conf).await?;
    let child = tokio::process::Command::new("nginx")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting nginx (install Debian's nginx: scripts/bench.sh does)")?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(Nginx { child, port, prefix });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("nginx did not start; see {}", prefix.join("error.log").display())
}

fn current_uid() -> u32 {
    // The owner of /proc/self is this process's user.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(u32::MAX)
}

fn median(runs: &[WrkRun]) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(|r| r.rps).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

async fn beacon_run(dir: &Path, kafka: Option<&str>, args: &HlsBenchArgs) -> anyhow::Result<BeaconRun> {
    let server = start(dir, kafka).await?;
    let http = reqwest::Client::new();
    let token = crate::harness::register_creator(&http, &server.base).await?;
    let id = crate::harness::create_video(&http, &server.base, &token, &json!({"title": "Beacon bench"})).await?;
    let mut events = vec![
        json!({"type": "session_start", "player": "hls.js 1.7.4"}),
        json!({"type": "first_frame", "startup_ms": 850}),
    ];
    for i in 0..args.batch.saturating_sub(2) {
        events.push(
            json!({"type": "heartbeat", "position_s": 10.0 * (i + 1) as f64, "played_ms": 10_000,
            "rendition": "720p", "bitrate_kbps": 2800}),
        );
    }
    events.truncate(args.batch.max(1));
    let body = json!({"video_id": id, "events": events}).to_string();
    // Check the batch is accepted before measuring.
    http.post(format!("{}/v1/playback/events", server.base))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await?
        .error_for_status()?;
    let script = dir.join("beacons.lua");
    tokio::fs::write(&script, beacon_script(&body)).await?;
    let run = wrk(&server.base, &script, args).await?;
    Ok(BeaconRun {
        log: if kafka.is_some() { "kafka" } else { "embedded" }.into(),
        events_per_s: run.rps * events.len() as f64,
        wrk: run,
    })
}

/// Runs the benchmark.
pub async fn run(args: HlsBenchArgs) -> anyhow::Result<HlsBenchReport> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let server = start(&data, None).await?;
    eprintln!("transcoding a {}s {} clip…", args.clip_seconds, args.size);
    let id = transcoded_video(&server, dir.path(), &args).await?;
    let listed = server.state.platform.store.list(&format!("videos/{id}/hls/")).await?;
    let segments: Vec<_> = listed.iter().filter(|o| o.key.ends_with(".m4s")).collect();
    if segments.is_empty() {
        bail!("the transcode stored no segments");
    }
    let mean_segment_bytes = segments.iter().map(|o| o.size).sum::<u64>() / segments.len() as u64;
    let paths: Vec<String> = segments.iter().map(|o| format!("/{}", o.key)).collect();
    let ours: Vec<String> = paths.iter().map(|p| format!("/v1{p}")).collect();

    // Both serve the same files: nginx from the store's directory.
    let objects: PathBuf = server.state.config.objects_dir();
    let nginx = start_nginx(dir.path(), &objects).await?;
    let nginx_url = format!("http://127.0.0.1:{}", nginx.port);
    let http = reqwest::Client::new();
    for (ours, theirs) in ours.iter().zip(&paths) {
        let a = http
            .get(format!("{}{ours}", server.base))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let b = http
            .get(format!("{nginx_url}{theirs}"))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        if a != b {
            bail!("Reelflow and nginx serve different bytes for {theirs}");
        }
    }
    let ours_script = dir.path().join("ours.lua");
    let theirs_script = dir.path().join("theirs.lua");
    tokio::fs::write(&ours_script, get_script(&ours)).await?;
    tokio::fs::write(&theirs_script, get_script(&paths)).await?;
    let mut reelflow = Vec::new();
    let mut nginx_runs = Vec::new();
    for round in 0..args.rounds {
        eprintln!("round {}: nginx, then Reelflow ({} s each)…", round + 1, args.seconds);
        nginx_runs.push(wrk(&nginx_url, &theirs_script, &args).await?);
        reelflow.push(wrk(&server.base, &ours_script, &args).await?);
    }
    drop(nginx);
    drop(server);

    eprintln!("beacons on the embedded log…");
    let mut beacons = vec![beacon_run(&dir.path().join("beacons-embedded"), None, &args).await?];
    if let Some(brokers) = args.kafka.as_deref() {
        eprintln!("beacons on Kafka…");
        beacons.push(beacon_run(&dir.path().join("beacons-kafka"), Some(brokers), &args).await?);
    }
    Ok(HlsBenchReport {
        segments: segments.len(),
        mean_segment_bytes,
        connections: args.connections,
        seconds: args.seconds,
        reelflow_vs_nginx: median(&reelflow) / median(&nginx_runs).max(f64::MIN_POSITIVE),
        reelflow,
        nginx: nginx_runs,
        beacons,
        batch: args.batch,
    })
}

/// The report as a table.
pub fn render(r: &HlsBenchReport) -> String {
    let mut out = format!(
        "hot set: {} segments, {} KiB on average; wrk {} connections, {} s per run\n\n\
         {:<10} {:>10} {:>10} {:>9} {:>9} {:>7}\n",
        r.segments,
        r.mean_segment_bytes / 1024,
        r.connections,
        r.seconds,
        "server",
        "req/s",
        "MB/s",
        "p50 ms",
        "p99 ms",
        "errors"
    );
    let row = |out: &mut String, name: &str, w: &WrkRun| {
        out.push_str(&format!(
            "{name:<10} {:>10.0} {:>10.0} {:>9.2} {:>9.2} {:>7}\n",
            w.rps, w.mb_per_s, w.p50_ms, w.p99_ms, w.errors
        ));
    };
    for (ours, theirs) in r.reelflow.iter().zip(&r.nginx) {
        row(&mut out, "nginx", theirs);
        row(&mut out, "reelflow", ours);
    }
    out.push_str(&format!(
        "\nReelflow / nginx (median req/s): {:.2}x (target >= 0.9x)\n\nbeacons ({} events per batch):\n",
        r.reelflow_vs_nginx, r.batch
    ));
    for b in &r.beacons {
        out.push_str(&format!(
            "  {:<9} {:>9.0} batches/s  {:>10.0} events/s  p50 {:.2} ms  p99 {:.2} ms  errors {}\n",
            b.log, b.wrk.rps, b.events_per_s, b.wrk.p50_ms, b.wrk.p99_ms, b.wrk.errors
        ));
    }
    out
}
