//! The operational endpoints and the API's shape, driven without a socket:
//! what a load balancer, an operator and an API client generator see.

mod common;

use axum::http::StatusCode;
use common::{Database, TestApp, assert_problem};

#[tokio::test]
async fn health_readiness_and_version() {
    let app = TestApp::new(Database::Sqlite).await;
    let r = app.get("/healthz", None).await;
    assert_eq!(
        (r.status, r.body),
        (StatusCode::OK, serde_json::Value::String("ok\n".into()))
    );

    let r = app.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for check in ["database", "log", "storage"] {
        assert_eq!(r.body["checks"][check]["status"], "ok", "{}", r.body);
    }

    let r = app.get("/v1/version", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r.body["log"], "embedded");
    assert_eq!(r.body["storage"], "local");
    assert_eq!(r.body["database"], "sqlite");

    // The data dir holds the database, the log and the objects.
    assert!(app.dir.path().join("reelflow.db").is_file());
    assert!(app.dir.path().join("log/reelflow.playback/0").is_dir());
    assert!(app.dir.path().join("objects").is_dir());
}

#[tokio::test]
async fn readiness_fails_with_the_broken_check_named() {
    let app = TestApp::new(Database::Sqlite).await;
    // Object storage disappears from under the process.
    std::fs::remove_dir_all(app.dir.path().join("objects")).expect("remove");
    std::fs::write(app.dir.path().join("objects"), b"not a directory").expect("replace with a file");
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.body["checks"]["log"]["status"], "ok");
    assert_eq!(r.body["checks"]["storage"]["status"], "failing");
    assert!(
        r.body["checks"]["storage"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_get_problem_documents() {
    let app = TestApp::new(Database::Sqlite).await;
    let r = app.get("/v1/nothing-here", None).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    assert_eq!(r.body["detail"], "no resource at /v1/nothing-here");
    let r = app.call(axum::http::Method::PUT, "/v1/videos", None, None).await;
    assert_problem(&r, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
}

/// The OpenAPI document is 3.1, and it and the router agree: every
/// documented operation is routed (it answers with something other than
/// "no such route"), and the document describes every route a client
/// uses.
#[tokio::test]
async fn openapi_document_matches_the_router() {
    let app = TestApp::new(Database::Sqlite).await;
    let r = app.get("/v1/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")),
        "{}",
        r.body["openapi"]
    );
    let paths = r.body["paths"].as_object().expect("paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete", "head", "options"] {
            if item.get(method).is_some() {
                operations.push(format!("{} {path}", method.to_uppercase()));
                let uri = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
                let m: axum::http::Method = method.to_uppercase().parse().expect("method");
                let body = matches!(method, "post" | "put" | "patch").then(|| serde_json::json!({}));
                let resp = app.call(m, &uri, None, body).await;
                let unrouted = resp.status == StatusCode::METHOD_NOT_ALLOWED
                    || (resp.status == StatusCode::NOT_FOUND
                        && resp.body["detail"]
                            .as_str()
                            .is_some_and(|d| d.starts_with("no resource at")));
                assert!(!unrouted, "{method} {path} is documented but not routed: {}", resp.body);
            }
        }
    }
    operations.sort();
    let expected = [
        "DELETE /v1/me",
        "DELETE /v1/uploads/{id}",
        "DELETE /v1/users/{id}",
        "DELETE /v1/videos/{id}",
        "GET /",
        "GET /assets/chart-4.5.1.umd.min.js",
        "GET /assets/console.css",
        "GET /assets/console.js",
        "GET /assets/hls-1.7.4.min.js",
        "GET /assets/player.js",
        "GET /assets/tus-4.3.1.min.js",
        "GET /healthz",
        "GET /metrics",
        "GET /readyz",
        "GET /v1/me",
        "GET /v1/users",
        "GET /v1/version",
        "GET /v1/videos",
        "GET /v1/videos/{id}",
        "GET /v1/videos/{id}/hls/master.m3u8",
        "GET /v1/videos/{id}/hls/{rendition}/{file}",
        "GET /v1/videos/{id}/poster.jpg",
        "GET /v1/videos/{id}/storyboard.jpg",
        "GET /v1/views",
        "GET /v1/views/{name}",
        "GET /watch/{id}",
        "HEAD /v1/uploads/{id}",
        "OPTIONS /v1/uploads",
        "PATCH /v1/me",
        "PATCH /v1/uploads/{id}",
        "PATCH /v1/videos/{id}",
        "POST /v1/auth/login",
        "POST /v1/auth/logout",
        "POST /v1/auth/password",
        "POST /v1/auth/refresh",
        "POST /v1/auth/register",
        "POST /v1/playback/events",
        "POST /v1/sql",
        "POST /v1/uploads",
        "POST /v1/videos",
        "POST /v1/videos/{id}/playback-token",
        "PUT /v1/users/{id}/role",
        "PUT /v1/videos/{id}/source",
    ];
    assert_eq!(operations, expected);
}

/// Browsers on a configured origin may call the API; others get no CORS
/// grant.
#[tokio::test]
async fn cors_allows_only_configured_origins() {
    use axum::body::Body;
    use axum::http::{Method, Request, header};
    let app = TestApp::with(Database::Sqlite, |c| {
        c.http.cors_origins = vec!["https://studio.example.org".into()]
    })
    .await;
    let preflight = |origin: &'static str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/v1/videos")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type")
            .body(Body::empty())
            .expect("request")
    };
    let ok = app.send(preflight("https://studio.example.org")).await;
    assert_eq!(
        ok.headers
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|v| v.as_bytes()),
        Some(&b"https://studio.example.org"[..])
    );
    let allowed_methods = ok
        .headers
        .get(header::ACCESS_CONTROL_ALLOW_METHODS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(allowed_methods.contains("POST"), "{allowed_methods}");
    let evil = app.send(preflight("https://evil.example.com")).await;
    assert!(evil.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}
