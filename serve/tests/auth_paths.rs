//! Regression (issue 28): the dataflow service's SQL listener had its own
//! copy of the access-token check, which drifted from the public API's — it
//! parsed `Authorization` differently and skipped the per-user rate limit.
//! Both listeners now take the caller from the same extractor; this test
//! holds them to the same rules, as a client sees them: the status, the
//! problem document and its words.
//!
//! The API runs in process (as in every other test); the dataflow service
//! is the real `reelflow dataflow` over the test Kafka broker, sharing the
//! API's accounts database and keys file as it does in production, with
//! the API's `sql.upstream` pointing at it.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use common::{Database, Response, TestApp, assert_problem};
use serde_json::{Value, json};

/// Requests each account may make per minute, on each listener.
const PER_MINUTE: u32 = 4;

/// A statement every role may run.
const QUERY: &str = "SELECT 1+1+1 AS three";

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: these tests need the real services; run scripts/test.sh"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The two listeners that accept access tokens.
#[derive(Debug, Clone, Copy)]
enum Listener {
    /// The public API (`POST /v1/sql`, forwarded to the dataflow service).
    Api,
    /// The dataflow service's own listener.
    Dataflow,
}

const LISTENERS: [Listener; 2] = [Listener::Api, Listener::Dataflow];

struct Platform {
    app: TestApp,
    dataflow: std::process::Child,
    /// `http://127.0.0.1:PORT` of the dataflow listener.
    dataflow_base: String,
    http: reqwest::Client,
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = self.dataflow.kill();
        let _ = self.dataflow.wait();
    }
}

impl Platform {
    async fn start() -> Self {
        let port = free_port();
        let app = TestApp::with(Database::Sqlite, |c| {
            c.limits.api_per_user_per_minute = PER_MINUTE;
            c.sql.upstream = Some(format!("http://127.0.0.1:{port}"));
        })
        .await;
        // The dataflow service reads the same limits, from its own file.
        let config = app.dir.path().join("dataflow.toml");
        std::fs::write(&config, format!("[limits]\napi_per_user_per_minute = {PER_MINUTE}\n")).expect("config");
        let dataflow = common::reelflow()
            .arg("dataflow")
            .env("REELFLOW_CONFIG", &config)
            .env("REELFLOW_DATAFLOW_WORKERS", "1")
            .env("REELFLOW_DATAFLOW_LISTEN", format!("127.0.0.1:{port}"))
            .env("REELFLOW_SQL_PGWIRE_LISTEN", "127.0.0.1:0")
            .env("REELFLOW_LOG_BACKEND", "kafka")
            .env("REELFLOW_KAFKA_BROKERS", env("REELFLOW_TEST_KAFKA"))
            .env("REELFLOW_LOG_PARTITIONS", "3")
            .env("REELFLOW_DATA_DIR", app.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start reelflow dataflow");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let platform = Self {
            app,
            dataflow,
            dataflow_base: format!("http://127.0.0.1:{port}"),
            http,
        };
        // Ready once its views have caught up; no account is spent on it.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let ready = platform
                .http
                .get(format!("{}/readyz", platform.dataflow_base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                break platform;
            }
            assert!(Instant::now() < deadline, "the dataflow service never became ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `POST /v1/sql` on `listener` with `authorization` as the header.
    async fn sql(&self, listener: Listener, authorization: Option<&str>) -> Response {
        let body = serde_json::to_vec(&json!({ "query": QUERY })).expect("json");
        match listener {
            Listener::Api => {
                let mut req = Request::builder()
                    .method(Method::POST)
                    .uri("/v1/sql")
                    .header(header::CONTENT_TYPE, "application/json");
                if let Some(a) = authorization {
                    req = req.header(header::AUTHORIZATION, a);
                }
                let mut req = req.body(Body::from(body)).expect("request");
                req.extensions_mut().insert(ConnectInfo(self.app.ip));
                self.app.send(req).await
            }
            Listener::Dataflow => {
                let mut req = self
                    .http
                    .post(format!("{}/v1/sql", self.dataflow_base))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body);
                if let Some(a) = authorization {
                    req = req.header(header::AUTHORIZATION, a);
                }
                let r = req.send().await.expect("POST /v1/sql");
                let status = r.status();
                let headers = r.headers().clone();
                let bytes = r.bytes().await.expect("body");
                let body = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
                Response { status, headers, body }
            }
        }
    }

    /// `POST /v1/sql` on `listener` with `token`.
    async fn sql_as(&self, listener: Listener, token: &str) -> Response {
        self.sql(listener, Some(&format!("Bearer {token}"))).await
    }
}

/// The same refusal, in the same words, on every listener.
async fn refused_alike(p: &Platform, authorization: Option<&str>, status: StatusCode, slug: &str, says: &str) {
    let mut bodies = Vec::new();
    for listener in LISTENERS {
        let r = p.sql(listener, authorization).await;
        assert_problem(&r, status, slug);
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{listener:?}: {}", r.body);
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(
                r.headers.get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()),
                Some("Bearer"),
                "{listener:?}"
            );
        }
        bodies.push(r.body);
    }
    assert_eq!(bodies[0], bodies[1], "the API and the dataflow listener disagree");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_applies_the_same_auth_rules() {
    let p = Platform::start().await;

    // A live account's token is accepted on both, and the answer is the
    // statement's. (Each request to the API is forwarded, so it counts
    // against the account's limit on both listeners; every account below
    // stays within PER_MINUTE on each until the rate-limit check.)
    let alive = p.app.register("alive@example.org", Some("viewer")).await;
    for listener in LISTENERS {
        let r = p.sql_as(listener, &alive.access).await;
        assert_eq!(r.status, StatusCode::OK, "{listener:?}: {}", r.body);
        assert_eq!(r.body["rows"][0][0], 3, "{listener:?}: {}", r.body);
    }

    // The header is read alike: any case of the scheme, and one problem for
    // anything else.
    for listener in LISTENERS {
        let r = p.sql(listener, Some(&format!("BEARER {}", alive.access))).await;
        assert_eq!(r.status, StatusCode::OK, "{listener:?}: {}", r.body);
    }
    refused_alike(
        &p,
        None,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this endpoint needs an access token",
    )
    .await;
    refused_alike(
        &p,
        Some(&format!("Token {}", alive.access)),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Authorization: Bearer",
    )
    .await;

    // A deleted account's token is refused.
    let deleted = p.app.register("deleted@example.org", Some("viewer")).await;
    let r = p.app.delete("/v1/me", Some(&deleted.access)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    refused_alike(
        &p,
        Some(&format!("Bearer {}", deleted.access)),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "no longer exists",
    )
    .await;

    // A token issued before a password change is refused; one issued after
    // is not.
    let changed = p.app.register("changed@example.org", Some("viewer")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // token times have one-second resolution
    let r = p
        .app
        .post(
            "/v1/auth/password",
            Some(&changed.access),
            json!({"current_password": "correct horse battery", "new_password": "a new long password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    refused_alike(
        &p,
        Some(&format!("Bearer {}", changed.access)),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "the password changed",
    )
    .await;
    let r = p
        .app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "changed@example.org", "password": "a new long password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let fresh = r.body["access_token"].as_str().expect("access token").to_string();
    for listener in LISTENERS {
        let r = p.sql_as(listener, &fresh).await;
        assert_eq!(r.status, StatusCode::OK, "{listener:?}: {}", r.body);
    }

    // The per-user rate limit: each listener lets an account make
    // PER_MINUTE requests, then answers 429 with Retry-After. Each listener
    // gets an account of its own.
    let bystander = p.app.register("bystander@example.org", Some("viewer")).await;
    for listener in LISTENERS {
        let busy = p
            .app
            .register(&format!("busy-{listener:?}@example.org").to_lowercase(), Some("viewer"))
            .await;
        for i in 0..PER_MINUTE {
            let r = p.sql_as(listener, &busy.access).await;
            assert_eq!(r.status, StatusCode::OK, "{listener:?} request {i}: {}", r.body);
        }
        let r = p.sql_as(listener, &busy.access).await;
        assert_problem(&r, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
        let retry: u64 = r
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{listener:?}: a Retry-After in seconds"));
        assert!((1..=60).contains(&retry), "{listener:?}: retry after {retry} s");
        // Another account is not held back by this one.
        let r = p.sql_as(listener, &bystander.access).await;
        assert_eq!(r.status, StatusCode::OK, "{listener:?}: {}", r.body);
    }
}

/// A view's name is put into the dataflow service's path only once it is
/// known to be a view: `..%2Fmetrics` arrives decoded as `../metrics`, and
/// forwarded as it was, it read the dataflow listener's other routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_view_name_cannot_reach_other_routes_of_the_dataflow_service() {
    let p = Platform::start().await;
    let admin = p.app.admin("root@example.org").await;
    // Four requests in all: the per-user limit of this platform.
    for name in ["..%2Fmetrics", "video_stats%2F..%2F..%2Freadyz", "nope"] {
        let r = p.app.get(&format!("/v1/views/{name}"), Some(&admin.access)).await;
        common::assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
        assert!(
            r.body["detail"].as_str().is_some_and(|d| d.contains("the views are")),
            "{name}: {}",
            r.body
        );
    }
    // A view's own name still reaches the service.
    let r = p.app.get("/v1/views/video_stats?limit=1", Some(&admin.access)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["view"], "video_stats", "{}", r.body);
}
