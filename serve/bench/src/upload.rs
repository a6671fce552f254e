//! `reelflow-bench upload`: a large file sent through our tus endpoint into
//! S3, against a plain PUT of the same bytes straight to the S3 server (a
//! multipart upload with the same part size), and the server's peak memory
//! while it streams.
//!
//! The server runs in this process, with S3 storage; the client sends the
//! file in `--chunk-mib` PATCH requests, generating the bytes as it goes so
//! the client holds no copy of the file. Peak memory is the process's high
//! water mark (`VmHWM`), which covers server and client together: an upper
//! bound on what the server needs.

use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use reelflow_ingest::ObjectStore;
use reelflow_ingest::storage::{ObjectKey, S3Config, S3Store};
use serde::Serialize;
use serde_json::json;

use reelflow_serve::config::{Config, ConfigArgs, StorageBackend};

/// Flags of `reelflow-bench upload`.
#[derive(Debug, Clone, clap::Args)]
pub struct UploadBenchArgs {
    /// Size of the file, MiB.
    #[arg(long, default_value_t = 2048)]
    pub size_mib: u64,
    /// Bytes per PATCH request, MiB.
    #[arg(long, default_value_t = 64)]
    pub chunk_mib: u64,
    /// S3 endpoint of the server to store into.
    #[arg(long, env = "REELFLOW_TEST_S3_ENDPOINT")]
    pub s3_endpoint: String,
    /// S3 access key.
    #[arg(long, env = "REELFLOW_TEST_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: String,
    /// S3 secret key.
    #[arg(long, env = "REELFLOW_TEST_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Everything `reelflow-bench upload` measured.
#[derive(Debug, Clone, Serialize)]
pub struct UploadBenchReport {
    /// File size, bytes.
    pub bytes: u64,
    /// Our tus endpoint into S3, MB/s.
    pub tus_mb_per_s: f64,
    /// A plain multipart PUT straight to the S3 server, MB/s.
    pub plain_put_mb_per_s: f64,
    /// Ours over the plain PUT.
    pub tus_vs_plain: f64,
    /// Peak resident memory of the process during the tus upload, MiB.
    pub peak_rss_mib: f64,
}

/// Deterministic bytes of the file, `len` from `offset`, made on the fly.
fn bytes_at(offset: u64, len: u64) -> Bytes {
    (offset..offset + len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// A body of `len` bytes from `offset`, in 1 MiB pieces.
fn body(offset: u64, len: u64) -> reqwest::Body {
    let piece = 1 << 20;
    let stream = futures::stream::iter((0..len.div_ceil(piece)).map(move |i| {
        let start = offset + i * piece;
        let n = piece.min(offset + len - start);
        Ok::<_, std::io::Error>(bytes_at(start, n))
    }));
    reqwest::Body::wrap_stream(stream)
}

/// Runs the benchmark.
pub async fn run(args: UploadBenchArgs) -> anyhow::Result<UploadBenchReport> {
    let size = args.size_mib << 20;
    let chunk = args.chunk_mib.max(1) << 20;
    let dir = tempfile::tempdir()?;
    let mut config = Config::load(&ConfigArgs {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })?;
    config.storage.backend = StorageBackend::S3;
    config.s3 = S3Config {
        endpoint: Some(args.s3_endpoint.clone()),
        access_key_id: Some(args.s3_access_key_id.clone()),
        secret_access_key: Some(args.s3_secret_access_key.clone()),
        bucket: "reelflow-bench-upload".into(),
        ..S3Config::default()
    };
    config.uploads.max_size_bytes = size.max(1);
    config.uploads.quota_bytes_per_user = size * 4;
    config.limits.api_per_user_per_minute = 1_000_000;
    let state = reelflow_serve::state::open(config.clone()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let service = reelflow_serve::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, service).await;
    });

    let http = reqwest::Client::new();
    let token = crate::harness::register_creator(&http, &base).await?;
    let video_id = crate::harness::create_video(&http, &base, &token, &json!({"title": "big"})).await?;

    use base64::Engine;
    let metadata = format!(
        "video_id {}",
        base64::engine::general_purpose::STANDARD.encode(&video_id)
    );
    let t = Instant::now();
    let created = http
        .post(format!("{base}/v1/uploads"))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", size)
        .header("upload-metadata", metadata)
        .send()
        .await?;
    if created.status().as_u16() != 201 {
        bail!("creating the upload: {}", created.text().await?);
    }
    let location = created
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .context("no Location")?
        .to_string();
    let mut offset = 0;
    while offset < size {
        let n = chunk.min(size - offset);
        let r = http
            .patch(format!("{base}{location}"))
            .bearer_auth(&token)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset)
            .header("content-type", "application/offset+octet-stream")
            .header("content-length", n)
            .body(body(offset, n))
            .send()
            .await?;
        if r.status().as_u16() != 204 {
            bail!("PATCH at {offset}: {} {}", r.status(), r.text().await?);
        }
        offset += n;
    }
    let tus_s = t.elapsed().as_secs_f64();
    let peak_rss_mib = crate::harness::peak_rss_kib() as f64 / 1024.0;
    server.abort();

    // The same bytes straight to the S3 server, multipart, same part size.
    let store = S3Store::connect(&config.s3).await?;
    let key = ObjectKey::parse("bench/plain-put")?;
    let reader = tokio_util::io::StreamReader::new(
        futures::stream::iter((0..size.div_ceil(1 << 20)).map(move |i| {
            let start = i << 20;
            Ok::<_, std::io::Error>(bytes_at(start, (1u64 << 20).min(size - start)))
        }))
        .boxed(),
    );
    let t = Instant::now();
    let meta = store.put_stream(&key, reader).await?;
    let plain_s = t.elapsed().as_secs_f64();
    if meta.size != size {
        bail!("the plain PUT stored {} bytes of {size}", meta.size);
    }
    let _ = store.delete(&key).await;
    let _ = store.delete_prefix(&format!("videos/{video_id}/")).await;
    let mb = size as f64 / 1e6;
    Ok(UploadBenchReport {
        bytes: size,
        tus_mb_per_s: mb / tus_s,
        plain_put_mb_per_s: mb / plain_s,
        tus_vs_plain: plain_s / tus_s,
        peak_rss_mib,
    })
}

/// The report as a table.
pub fn render(r: &UploadBenchReport) -> String {
    format!(
        "reelflow-bench upload: {:.0} MiB into S3\n\n{:<44} {:>8.1} MB/s\n{:<44} {:>8.1} MB/s\n\ntus / plain PUT = {:.2}x\npeak RSS during the tus upload: {:.1} MiB (target < 100 MiB)\n",
        r.bytes as f64 / 1048576.0,
        "tus through reelflow (PATCH chunks)",
        r.tus_mb_per_s,
        "plain multipart PUT to the S3 server",
        r.plain_put_mb_per_s,
        r.tus_vs_plain,
        r.peak_rss_mib
    )
}
