//! SQL for Reelflow's accounts: `POST /v1/sql` on the public API (any
//! signed-in account; what it reads depends on its role), and the
//! accounts behind the PostgreSQL wire protocol (sign in with your email
//! and password). The engine and the wire server live in `reelflow-sql`.
//!
//! Where the dataflows run (`reelflow up`, `reelflow dataflow`) the engine
//! answers here; an API process without dataflows of its own forwards
//! `/v1/sql` to the dataflow service named by `sql.upstream` (through
//! [`crate::upstream`]), which checks the token again.
//!
//! Both listeners that answer `/v1/sql` — the public API and the dataflow
//! service's own — take the caller from the same [`Caller`] extractor: the
//! dataflow listener's [`SqlService`] gives it a [`Gate`] as the API's
//! state does, so a deleted account, a password changed after the token
//! was issued and the per-user rate limit are refused alike on both.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::http::HeaderMap;
use axum::response::Response;
use reelflow_sql::Principal;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::accounts::{self, Role, User};
use crate::auth::{Caller, Gate, password};
use crate::db::Db;
use crate::problem::ApiError;
use crate::state::AppState;

/// `POST /v1/sql` on the public API.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_sql))
}

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
        let account = accounts::find_by_email(&self.db, user).await.ok().flatten();
        let ok = password::verify(presented.to_string(), account.map(|a| a.password_hash)).await;
        if !ok {
            let _ = self.limits.login_per_ip.check(client);
            let _ = self.limits.login_per_account.check(&account_key);
        }
        Ok(ok)
    }

    async fn principal(&self, user: &str) -> Result<Principal, String> {
        let account = accounts::find_by_email(&self.db, user)
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
        return match &state.upstream {
            Some(upstream) => upstream.sql(&headers, body).await,
            None => Err(ApiError::Unavailable(
                "SQL runs where the dataflows run: use `reelflow up`, or set sql.upstream to the dataflow service"
                    .into(),
            )),
        };
    };
    answer(
        engine,
        &state.db,
        &caller,
        &headers,
        &body,
        state.config.sql.http_row_limit,
    )
    .await
}

/// Runs the statement in `body` for `caller`, reading what their role lets
/// them read.
async fn answer(
    engine: &reelflow_sql::SqlEngine,
    db: &Db,
    caller: &Caller,
    headers: &HeaderMap,
    body: &Bytes,
    row_limit: usize,
) -> Result<Response, ApiError> {
    let principal = principal_of(db, &caller.user).await?;
    let refresh = refresher(db, caller.user.id);
    Ok(reelflow_sql::http::answer(engine, principal, Some(refresh), headers, body, row_limit).await)
}

/// Re-reads what the account `user_id` may read, for a running
/// subscription (a creator's new videos join it).
fn refresher(db: &Db, user_id: Uuid) -> reelflow_sql::RefreshPrincipal {
    let db = db.clone();
    Arc::new(move || {
        let db = db.clone();
        Box::pin(async move {
            let user = accounts::find_by_id(&db, user_id)
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
/// accounts on its own listener: the engine, and the [`Gate`] that checks
/// callers (the same accounts database and keys file as `reelflow serve`).
#[derive(Clone)]
pub struct SqlService {
    /// The engine over this cluster's views.
    pub engine: reelflow_sql::SqlEngine,
    /// Checks access tokens, as the public API does.
    pub gate: Gate,
    /// Most rows an answer carries.
    pub row_limit: usize,
}

impl FromRef<SqlService> for Gate {
    fn from_ref(service: &SqlService) -> Self {
        service.gate.clone()
    }
}

/// `POST /v1/sql` of the dataflow listener.
pub fn router(service: SqlService) -> axum::Router {
    axum::Router::new()
        .route("/v1/sql", axum::routing::post(dataflow_sql))
        .with_state(service)
}

async fn dataflow_sql(
    State(service): State<SqlService>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    answer(
        &service.engine,
        &service.gate.db,
        &caller,
        &headers,
        &body,
        service.row_limit,
    )
    .await
}
