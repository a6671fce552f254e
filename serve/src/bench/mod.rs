//! `reelflow bench …`: benchmarks run beside the peer each capability is
//! measured against, printing readable results or, with `--json`, one JSON
//! object with every figure (the peer's included).

pub mod api;
pub mod dataflow;
pub mod hls;
pub mod log;
pub mod scale;
pub mod sql;
pub mod transcode;
pub mod upload;

use anyhow::Context;
use serde_json::{Value, json};

/// Appends `traffic`'s catalog, then `events` playback events, to `log`.
/// The events are generated and appended in slices, so memory stays flat
/// however many there are.
async fn append_traffic(
    log: &reelflow_ingest::log::AnyLog,
    traffic: &mut reelflow_dataflows::traffic::Traffic,
    events: usize,
) {
    use reelflow_dataflows::workload;
    for chunk in traffic.catalog().chunks(5000) {
        workload::append(log, chunk).await;
    }
    let mut left = events;
    while left > 0 {
        let batch = traffic.playback(left.min(100_000));
        for chunk in batch.chunks(5000) {
            workload::append(log, chunk).await;
        }
        left -= batch.len();
    }
}

/// Prints a bench's report: one JSON object with `--json`, else its table.
pub fn print_report<R: serde::Serialize>(json: bool, report: &R, render: fn(&R) -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{}", render(report));
    }
    Ok(())
}

/// Registers the bench's creator on a running app; returns its access token.
async fn register_creator(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let session: Value = http
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({"email": "bench@example.org", "password": "bench password 123"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(session["access_token"].as_str().context("no access token")?.to_string())
}

/// Creates a video from `body`; returns its id.
async fn create_video(http: &reqwest::Client, base: &str, token: &str, body: &Value) -> anyhow::Result<String> {
    let video: Value = http
        .post(format!("{base}/v1/videos"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(video["id"].as_str().context("no video id")?.to_string())
}
