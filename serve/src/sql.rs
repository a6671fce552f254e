//! SQL for Reelflow's accounts: `POST /v1/sql` on the public API (any
//! signed-in account; what it reads depends on its role), and the
//! accounts behind the PostgreSQL wire protocol (sign in with your email
//! and password). The engine and the wire server live in `reelflow-sql`.

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
}

#[async_trait]
impl reelflow_sql::Authenticator for Accounts {
    async fn verify(&self, user: &str, presented: &str) -> bool {
        let account = users::find_by_email(&self.db, user).await.ok().flatten();
        password::verify(presented.to_string(), account.map(|a| a.password_hash)).await
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
        return Err(ApiError::Unavailable(
            "SQL runs where the dataflows run: use `reelflow up`, or the dataflow service".into(),
        ));
    };
    let principal = principal_of(&state.db, &caller.user).await?;
    Ok(reelflow_sql::http::answer(engine, principal, &headers, &body, state.config.sql.http_row_limit).await)
}
