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
