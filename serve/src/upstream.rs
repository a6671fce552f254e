//! The dataflow service as the public API reaches it. An API process
//! without dataflows of its own (`reelflow serve`) forwards `POST /v1/sql`
//! and `GET /v1/views*` to the service named by `sql.upstream`; both go
//! through one [`Upstream`], so both get the same timeouts and the same
//! errors.
//!
//! What it promises callers of the API:
//! - a service that cannot be reached answers 503 (with `Retry-After`), as
//!   any other failing dependency does ([`crate::problem`]);
//! - a service that accepts the request but does not begin its answer in
//!   time answers 504;
//! - the dataflow service's own answers (rows, problems, SQL errors) are
//!   relayed with their status and the headers a client reads;
//! - no error a caller sees names the service's address: the address and
//!   the transport's error go to the log only.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::{IntoResponse, Response};

use crate::problem::{ApiError, ApiResult};

/// How long opening a connection may take. The service is inside the
/// cluster network: it accepts at once or is not there.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much longer than a statement may run (`sql.timeout_s`) the service
/// may take to begin its answer: time to plan, queue and send.
const ANSWER_MARGIN: Duration = Duration::from_secs(10);

/// Headers of a SQL request the service needs: the token (it checks it
/// again), the format asked for and the body's type.
const SQL_REQUEST_HEADERS: [HeaderName; 3] = [header::AUTHORIZATION, header::ACCEPT, header::CONTENT_TYPE];

/// Headers of a SQL answer the caller needs.
const SQL_ANSWER_HEADERS: [&str; 6] = [
    "content-type",
    "cache-control",
    "x-accel-buffering",
    "reelflow-as-of",
    "reelflow-truncated",
    "retry-after",
];

/// What a forwarded request asks for, as its errors name it.
#[derive(Debug, Clone, Copy)]
enum Asked {
    Sql,
    Views,
}

impl Asked {
    fn unavailable(self) -> ApiError {
        ApiError::Unavailable(
            match self {
                Self::Sql => "the SQL service is unavailable; try again shortly",
                Self::Views => "the views are unavailable; try again shortly",
            }
            .into(),
        )
    }

    fn too_slow(self) -> ApiError {
        ApiError::UpstreamTimeout(
            match self {
                Self::Sql => "the SQL service did not answer in time; try again shortly",
                Self::Views => "the views did not answer in time; try again shortly",
            }
            .into(),
        )
    }
}

/// A client of the dataflow service's listener.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http://host:port`, without a trailing slash.
    base: String,
    http: reqwest::Client,
    /// How long the service may take to begin an answer.
    answer_within: Duration,
}

impl Upstream {
    /// A client of the service at `base`, whose statements may run for
    /// `statement_timeout`.
    pub fn new(base: &str, statement_timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!(e).context("building the client of sql.upstream"))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http,
            answer_within: statement_timeout + ANSWER_MARGIN,
        })
    }

    /// Sends `request` and waits for the head of the answer.
    async fn send(&self, request: reqwest::RequestBuilder, asked: Asked) -> ApiResult<reqwest::Response> {
        match tokio::time::timeout(self.answer_within, request.send()).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, upstream = %self.base, "the dataflow service did not answer");
                Err(asked.unavailable())
            }
            Err(_) => Err(self.too_slow(asked)),
        }
    }

    /// Forwards a `POST /v1/sql` (already authenticated here; the service
    /// checks the token again). The answer is relayed as it comes, so a
    /// subscription's events stream through: only its head has a deadline.
    pub async fn sql(&self, headers: &HeaderMap, body: Bytes) -> ApiResult<Response> {
        let mut request = self.http.post(format!("{}/v1/sql", self.base)).body(body);
        for name in SQL_REQUEST_HEADERS {
            if let Some(v) = headers.get(&name) {
                request = request.header(&name, v);
            }
        }
        let answer = self.send(request, Asked::Sql).await?;
        let status = answer.status();
        let mut relayed = HeaderMap::new();
        for name in SQL_ANSWER_HEADERS {
            if let Some(v) = answer.headers().get(name) {
                relayed.insert(HeaderName::from_static(name), v.clone());
            }
        }
        let mut response = (status, Body::from_stream(answer.bytes_stream())).into_response();
        response.headers_mut().extend(relayed);
        Ok(response)
    }

    /// Reads `path_and_query` (a `/v1/views` read), relaying the status and
    /// the JSON body. The whole answer has the deadline.
    pub async fn view(&self, path_and_query: &str) -> ApiResult<Response> {
        let request = self.http.get(format!("{}{path_and_query}", self.base));
        let read = async {
            let answer = self.send(request, Asked::Views).await?;
            let status = answer.status();
            let content_type = answer
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_string();
            let body = answer.bytes().await.map_err(|e| {
                tracing::warn!(error = %e, upstream = %self.base, "reading the dataflow service's answer");
                Asked::Views.unavailable()
            })?;
            Ok((status, [(header::CONTENT_TYPE, content_type)], body).into_response())
        };
        tokio::time::timeout(self.answer_within, read)
            .await
            .unwrap_or_else(|_| Err(self.too_slow(Asked::Views)))
    }

    fn too_slow(&self, asked: Asked) -> ApiError {
        tracing::warn!(upstream = %self.base, after = ?self.answer_within, "the dataflow service did not answer in time");
        asked.too_slow()
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use axum::http::StatusCode;

    use super::*;

    /// A client of `base` that waits `answer_within` for an answer.
    fn upstream(base: &str, answer_within: Duration) -> Upstream {
        let mut upstream = Upstream::new(base, Duration::ZERO).expect("client");
        upstream.answer_within = answer_within;
        upstream
    }

    /// The problem a caller would get, as (status, body).
    async fn problem(result: ApiResult<Response>) -> (StatusCode, String) {
        let response = result.expect_err("a failure").into_response();
        let status = response.status();
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_service_that_is_not_there_is_a_503_that_does_not_name_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let up = upstream(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5));
        for result in [
            up.sql(&HeaderMap::new(), Bytes::new()).await,
            up.view("/v1/views").await,
        ] {
            let (status, body) = problem(result).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert!(body.contains("unavailable"), "{body}");
            assert!(
                !body.contains("127.0.0.1") && !body.contains(&port.to_string()),
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn a_service_that_does_not_answer_in_time_is_a_504_that_does_not_name_it() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let _held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let up = upstream(&format!("http://127.0.0.1:{port}"), Duration::from_millis(300));
        for result in [
            up.sql(&HeaderMap::new(), Bytes::new()).await,
            up.view("/v1/views").await,
        ] {
            let (status, body) = problem(result).await;
            assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
            assert!(body.contains("gateway-timeout") && body.contains("in time"), "{body}");
            assert!(
                !body.contains("127.0.0.1") && !body.contains(&port.to_string()),
                "{body}"
            );
        }
    }
}
