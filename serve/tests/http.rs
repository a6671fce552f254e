//! The HTTP application, driven without a socket (axum's `oneshot`), on the
//! embedded default: what a load balancer and an operator see.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use reelflow_serve::config::{Config, ConfigArgs};
use reelflow_serve::platform::Platform;
use reelflow_serve::{AppState, app};
use tower::ServiceExt;

async fn state(dir: &std::path::Path) -> AppState {
    let config = Config::load(&ConfigArgs {
        data_dir: Some(dir.to_path_buf()),
        ..Default::default()
    })
    .expect("config");
    AppState {
        platform: Platform::open(&config).await.expect("platform opens"),
    }
}

async fn get(state: &AppState, uri: &str) -> (StatusCode, Option<String>, serde_json::Value) {
    let response = app(state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().expect("ascii").to_string());
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, content_type, json)
}

#[tokio::test]
async fn health_readiness_and_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(dir.path()).await;
    let (status, _, body) = get(&state, "/healthz").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, serde_json::Value::String("ok\n".into()))
    );

    let (status, _, body) = get(&state, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["log"]["status"], "ok");
    assert_eq!(body["checks"]["storage"]["status"], "ok");

    let (status, _, body) = get(&state, "/v1/version").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        (body["log"].as_str(), body["storage"].as_str()),
        (Some("embedded"), Some("local"))
    );

    // The data dir holds the log and the objects, as `reelflow up` promises.
    assert!(dir.path().join("log/reelflow.playback/0").is_dir());
    assert!(dir.path().join("objects").is_dir());
}

#[tokio::test]
async fn readiness_fails_with_the_broken_check_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(dir.path()).await;
    // Object storage disappears from under the process.
    std::fs::remove_dir_all(dir.path().join("objects")).expect("remove");
    std::fs::write(dir.path().join("objects"), b"not a directory").expect("replace with a file");
    let (status, _, body) = get(&state, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["checks"]["log"]["status"], "ok");
    assert_eq!(body["checks"]["storage"]["status"], "failing");
    assert!(
        body["checks"]["storage"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
}

#[tokio::test]
async fn unknown_paths_get_a_problem_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(dir.path()).await;
    let (status, content_type, body) = get(&state, "/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(body["type"], "https://reelflow.dev/problems/not-found");
    assert_eq!(body["status"], 404);
    assert_eq!(body["detail"], "no resource at /v1/nothing-here");
}
