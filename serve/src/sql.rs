//! SQL for Reelflow's accounts: `POST /v1/sql` on the public API (any
//! signed-in account; what it reads depends on its role), and the
//! accounts behind the PostgreSQL wire protocol (sign in with your email
//! and password). The engine and the wire server live in `reelflow-sql`.
//!
//! Where the dataflows run (`reelflow up`, `reelflow dataflow`) the engine
//! answers here; an API process without dataflows of its own forwards
//! `/v1/sql` to the dataflow service named by `sql.upstream`, which checks
//! the token again.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use reelflow_sql::Principal;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Caller, password};
use crate::db::Db;
use crate::problem::ApiError;
use crate::users::{self, Role, User};

/// The videos `owner` owns.
async fn owned_videos(db: &Db, owner: Uuid) -> Result<HashSet<Uuid>, sqlx::Error> {
    use sqlx::Row;
    let rows = sqlx::query("SELECT id FROM videos WHERE owner_id = $1")
        .bind(owner.to_string())
        .fetch_all(&db.pool)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get::<String, _>("id").ok()?.parse().ok())
        .collect())
}

/// What `user` may read.
pub async fn principal_of(db: &Db, user: &User) -> Result<Principal, sqlx::Error> {
    Ok(match user.role {
        Role::Admin => Principal::Admin,
        Role::Creator => Principal::Creator {
            user_id: user.id,
            videos: Arc::new(owned_videos(db, user.id).await?),
        },
        Role::Viewer => Principal::Viewer { user_id: user.id },
    })
}

/// Accounts for the wire protocol.
#[derive(Debug, Clone)]
pub struct Accounts {
    /// The accounts database.
    pub db: Db,
    /// The login limits, the same the HTTP login counts against (in
    /// `reelflow up`, the very same counters).
    pub limits: std::sync::Arc<crate::ratelimit::Limits>,
}

#[async_trait]
impl reelflow_sql::Authenticator for Accounts {
    async fn verify(&self, user: &str, presented: &str, client: &str) -> Result<bool, String> {
        // Past the login limits (the HTTP login's), a try is refused before
        // it costs an Argon2 hash. Failed tries count against them; a right
        // password does not, since drivers and psql log in per connection.
        let limited = |retry_after_s: u64| format!("too many login attempts; try again in {retry_after_s} s");
        let account_key = user.trim().to_lowercase();
        self.limits.login_per_ip.peek(client).map_err(limited)?;
        self.limits.login_per_account.peek(&account_key).map_err(limited)?;
        let account = users::find_by_email(&self.db, user).await.ok().flatten();
        let ok = password::verify(presented.to_string(), account.map(|a| a.password_hash)).await;
        if !ok {
            let _ = self.limits.login_per_ip.check(client);
            let _ = self.limits.login_per_account.check(&account_key);
        }
        Ok(ok)
    }

    async fn principal(&self, user: &str) -> Result<Principal, String> {
        let account = users::find_by_email(&self.db, user)
            .await
            .map_err(|e| format!("reading the account: {e}"))?
            .ok_or_else(|| "the account no longer exists".to_string())?;
        principal_of(&self.db, &account)
            .await
            .map_err(|e| format!("reading the account's videos: {e}"))
    }
}

/// Runs one read-only SQL statement over the live views. The body is
/// `{"query": "…"}` (or the bare statement as text/plain); `Accept` picks
/// JSON (default), CSV or an Arrow IPC stream. Admins read every row,
/// creators the rows of their own videos, viewers their own watch history.
#[utoipa::path(post, path = "/v1/sql", tag = "views", security(("bearer" = [])),
    request_body(content = String, description = r#"{"query": "SELECT * FROM video_stats LIMIT 10"}"#),
    responses((status = 200, description = "rows, and the time they were read at"),
        (status = 400, body = crate::problem::Problem), (status = 401, body = crate::problem::Problem),
        (status = 503, body = crate::problem::Problem)))]
pub async fn post_sql(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(engine) = &state.sql else {
        return match &state.config.sql.upstream {
            Some(upstream) => forward(upstream, &headers, body).await,
            None => Err(ApiError::Unavailable(
                "SQL runs where the dataflows run: use `reelflow up`, or set sql.upstream to the dataflow service"
                    .into(),
            )),
        };
    };
    let principal = principal_of(&state.db, &caller.user).await?;
    let refresh = refresher(&state.db, caller.user.id);
    Ok(reelflow_sql::http::answer(
        engine,
        principal,
        Some(refresh),
        &headers,
        &body,
        state.config.sql.http_row_limit,
    )
    .await)
}

/// Re-reads what the account `user_id` may read, for a running
/// subscription (a creator's new videos join it).
fn refresher(db: &Db, user_id: Uuid) -> reelflow_sql::RefreshPrincipal {
    let db = db.clone();
    Arc::new(move || {
        let db = db.clone();
        Box::pin(async move {
            let user = users::find_by_id(&db, user_id)
                .await
                .map_err(|e| format!("reading the account: {e}"))?
                .ok_or_else(|| "the account no longer exists".to_string())?;
            principal_of(&db, &user)
                .await
                .map_err(|e| format!("reading the account's videos: {e}"))
        })
    })
}

/// What `reelflow dataflow` needs to answer `POST /v1/sql` for Reelflow's
/// accounts on its own listener: the engine, the accounts database and the
/// token keys (the same keys file as `reelflow serve`).
#[derive(Clone)]
pub struct SqlService {
    /// The engine over this cluster's views.
    pub engine: reelflow_sql::SqlEngine,
    /// The accounts database.
    pub db: Db,
    /// Verifies access tokens.
    pub keys: Arc<crate::auth::Keyring>,
    /// Most rows an answer carries.
    pub row_limit: usize,
}

/// `POST /v1/sql` of the dataflow listener.
pub fn router(service: SqlService) -> axum::Router {
    axum::Router::new()
        .route("/v1/sql", axum::routing::post(dataflow_sql))
        .with_state(service)
}

/// The account a bearer token names, checked as the public API checks it.
async fn account(service: &SqlService, headers: &HeaderMap) -> Result<User, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .ok_or_else(|| ApiError::Unauthorized("use Authorization: Bearer <access token>".into()))?;
    let claims: crate::auth::AccessClaims = service
        .keys
        .verify(token.trim(), crate::auth::API_AUDIENCE)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    let user = users::find_by_id(&service.db, claims.sub)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the account of this token no longer exists".into()))?;
    if claims.iat * 1000 < user.password_changed_at - 999 {
        return Err(ApiError::Unauthorized(
            "the password changed after this token was issued; sign in again".into(),
        ));
    }
    Ok(user)
}

async fn dataflow_sql(
    State(service): State<SqlService>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = account(&service, &headers).await?;
    let principal = principal_of(&service.db, &user).await?;
    let refresh = refresher(&service.db, user.id);
    Ok(reelflow_sql::http::answer(
        &service.engine,
        principal,
        Some(refresh),
        &headers,
        &body,
        service.row_limit,
    )
    .await)
}

/// Forwards a `POST /v1/sql` the caller is signed in for to the dataflow
/// service (`sql.upstream`), which checks the token again and answers. The
/// answer is relayed as it comes, so a subscription's events stream
/// through.
async fn forward(upstream: &str, headers: &HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    use axum::http::header;
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(reqwest::Client::new);
    let mut request = client
        .post(format!("{}/v1/sql", upstream.trim_end_matches('/')))
        .body(body);
    for name in [header::AUTHORIZATION, header::ACCEPT, header::CONTENT_TYPE] {
        if let Some(v) = headers.get(&name) {
            request = request.header(name.as_str(), v.as_bytes());
        }
    }
    let answer = request.send().await.map_err(|e| {
        tracing::warn!(error = %e, %upstream, "the dataflow service did not answer");
        ApiError::Unavailable("the SQL service is unavailable; try again shortly".into())
    })?;
    let status =
        axum::http::StatusCode::from_u16(answer.status().as_u16()).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    let mut relayed = axum::http::HeaderMap::new();
    for name in [
        "content-type",
        "cache-control",
        "x-accel-buffering",
        "reelflow-as-of",
        "reelflow-truncated",
        "retry-after",
    ] {
        if let Some(v) = answer.headers().get(name)
            && let Ok(v) = axum::http::HeaderValue::from_bytes(v.as_bytes())
        {
            relayed.insert(axum::http::HeaderName::from_static(name), v);
        }
    }
    let body = axum::body::Body::from_stream(answer.bytes_stream());
    let mut response = axum::response::IntoResponse::into_response((status, body));
    response.headers_mut().extend(relayed);
    Ok(response)
}
