//! The real tus-js-client (from npm) uploads a file to `reelflow up`
//! through a proxy that cuts the connection half-way; the client resumes,
//! and the stored object is byte for byte the file.

use std::process::Command;

mod common;

use serde_json::{Value, json};
use sha2::Digest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_resumes_after_the_connection_is_cut() {
    let js = common::manifest_dir().join("tests/js");
    assert!(
        js.join("node_modules/tus-js-client").is_dir(),
        "tus-js-client is not installed: run scripts/test.sh (it runs npm ci in serve/tests/js)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let up = common::Up::start(dir.path());
    let base = format!("http://{}", up.addr);

    let http = reqwest::Client::new();
    let session: Value = http
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({"email": "js@example.org", "password": "correct horse battery"}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let token = session["access_token"].as_str().expect("token").to_string();
    let video: Value = http
        .post(format!("{base}/v1/videos"))
        .bearer_auth(&token)
        .json(&json!({"title": "From the browser client"}))
        .send()
        .await
        .expect("create video")
        .json()
        .await
        .expect("json");
    let video_id = video["id"].as_str().expect("id").to_string();

    // 12 MiB: more than one stored part, and a tail.
    let data: Vec<u8> = (0..12 * 1024 * 1024 + 777u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    let file = dir.path().join("clip.bin");
    std::fs::write(&file, &data).expect("write");
    let out = Command::new("node")
        .current_dir(&js)
        .arg("tus_upload.mjs")
        .arg(format!("{base}/v1/uploads"))
        .arg(&token)
        .arg(&video_id)
        .arg(&file)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "tus-js-client failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(out.stdout.trim_ascii()).expect("json from the script");
    assert_eq!(result["cuts"], 1, "the connection was cut once: {result}");
    assert!(
        result["forwarded"].as_u64().expect("bytes") > data.len() as u64 / 2,
        "{result}"
    );

    let stored = std::fs::read(dir.path().join(format!("objects/videos/{video_id}/source"))).expect("source object");
    assert_eq!(
        sha2::Sha256::digest(&stored),
        sha2::Sha256::digest(&data),
        "the stored object is not the file"
    );
    let v: Value = http
        .get(format!("{base}/v1/videos/{video_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_ne!(v["status"], "awaiting_upload", "{v}");
}
