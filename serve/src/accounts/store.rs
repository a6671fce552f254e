//! Account queries. Every query names its columns and binds its values;
//! the email search escapes `%`, `_` and `\` so it matches literally.

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::model::{Role, User};
use crate::db::{Db, now_ms};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

const USER_COLUMNS: &str =
    "id, email, password_hash, role, display_name, bio, country, language, avatar_url, password_changed_at, created_at";

fn user_from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    let bad = |col: &str, e: String| sqlx::Error::ColumnDecode {
        index: col.into(),
        source: e.into(),
    };
    Ok(User {
        id: Uuid::parse_str(&row.try_get::<String, _>("id")?).map_err(|e| bad("id", e.to_string()))?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        role: row.try_get::<String, _>("role")?.parse().map_err(|e| bad("role", e))?,
        display_name: row.try_get("display_name")?,
        bio: row.try_get("bio")?,
        country: row.try_get("country")?,
        language: row.try_get("language")?,
        avatar_url: row.try_get("avatar_url")?,
        password_changed_at: row.try_get("password_changed_at")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The account with id `id`.
pub async fn find_by_id(db: &Db, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(user_from_row).transpose()
}

/// The account with `email` (any case).
pub async fn find_by_email(db: &Db, email: &str) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1"))
        .bind(email.trim().to_lowercase())
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(user_from_row).transpose()
}

/// Creates an account; 409 if the email is taken.
pub async fn create(db: &Db, email: &str, password_hash: String, role: Role, display_name: &str) -> ApiResult<User> {
    let now = now_ms();
    let user = User {
        id: Uuid::now_v7(),
        email: email.trim().to_lowercase(),
        password_hash,
        role,
        display_name: display_name.to_string(),
        bio: String::new(),
        country: None,
        language: None,
        avatar_url: None,
        password_changed_at: now,
        created_at: now,
    };
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, password_hash, role, display_name, bio, password_changed_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, '', $6, $6, $6)",
    )
    .bind(user.id.to_string())
    .bind(&user.email)
    .bind(&user.password_hash)
    .bind(role.as_str())
    .bind(&user.display_name)
    .bind(now)
    .execute(&db.pool)
    .await;
    match inserted {
        Ok(_) => Ok(user),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(ApiError::Conflict("an account with this email already exists".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Stores the profile fields of `user` (name, bio, country, language,
/// avatar).
pub async fn update_profile(db: &Db, user: &User) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET display_name = $1, bio = $2, country = $3, language = $4, avatar_url = $5, updated_at = $6 WHERE id = $7",
    )
    .bind(&user.display_name)
    .bind(&user.bio)
    .bind(&user.country)
    .bind(&user.language)
    .bind(&user.avatar_url)
    .bind(now_ms())
    .bind(user.id.to_string())
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// At most `limit` accounts whose email contains `needle` (already
/// lower-cased), newest first.
pub async fn search(db: &Db, needle: &str, limit: u32) -> Result<Vec<User>, sqlx::Error> {
    // The search is literal: LIKE's wildcards in it match themselves.
    let escaped = needle.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let pattern = format!("%{escaped}%");
    let rows = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email LIKE $1 ESCAPE '\\' ORDER BY created_at DESC, id LIMIT $2"
    ))
    .bind(pattern)
    .bind(i64::from(limit))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(user_from_row).collect()
}

/// Stores `password_hash` as account `id`'s password, and when it changed:
/// access tokens issued before then stop working.
pub async fn set_password(db: &Db, id: Uuid, password_hash: String) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query("UPDATE users SET password_hash = $1, password_changed_at = $2, updated_at = $2 WHERE id = $3")
        .bind(password_hash)
        .bind(now)
        .bind(id.to_string())
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Gives account `id` the role `role`; `false` if there is no such account.
pub async fn set_role(db: &Db, id: Uuid, role: Role) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
        .bind(role.as_str())
        .bind(now_ms())
        .bind(id.to_string())
        .execute(&db.pool)
        .await?;
    Ok(updated.rows_affected() > 0)
}

/// Deletes account `id` with every video it owns (their objects and
/// events included, see [`crate::catalog::delete_video_and_objects`]).
pub async fn delete(state: &AppState, id: Uuid) -> ApiResult<()> {
    let owned: Vec<String> = sqlx::query_scalar("SELECT id FROM videos WHERE owner_id = $1")
        .bind(id.to_string())
        .fetch_all(&state.db.pool)
        .await?;
    for video in owned {
        let video = Uuid::parse_str(&video).map_err(|e| ApiError::Internal(e.into()))?;
        crate::catalog::delete_video_and_objects(state, video).await?;
    }
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id.to_string())
        .execute(&state.db.pool)
        .await?;
    Ok(())
}
