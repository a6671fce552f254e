//! Refresh tokens: issued with an access token, spent on use, revoked by
//! family. See the module doc of [`crate::auth`].

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_08::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use uuid::Uuid;

use crate::db::{Db, now_ms};
use crate::problem::{ApiError, ApiResult};

/// A fresh random token and the hash that is stored.
fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand_08::rngs::OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&token);
    (token, hash)
}

fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Stores a new refresh token of `family` for `user` and returns it.
pub async fn issue(db: &Db, user: Uuid, family: Uuid, ttl_s: u64) -> ApiResult<String> {
    let (token, token_hash) = new_token();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(family.to_string())
    .bind(user.to_string())
    .bind(now)
    .bind(now + (ttl_s as i64) * 1000)
    .execute(&db.pool)
    .await?;
    Ok(token)
}

/// Spends `token`: returns its (user, family) if it was live. A token that
/// was already spent revokes its whole family.
pub async fn spend(db: &Db, token: &str) -> ApiResult<(Uuid, Uuid)> {
    let token_hash = hash(token);
    let invalid = || ApiError::Unauthorized("the refresh token is invalid, expired or revoked; sign in again".into());
    let row = sqlx::query(
        "SELECT family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(&token_hash)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(invalid)?;
    let family = Uuid::parse_str(&row.try_get::<String, _>("family_id")?).map_err(|e| ApiError::Internal(e.into()))?;
    let user = Uuid::parse_str(&row.try_get::<String, _>("user_id")?).map_err(|e| ApiError::Internal(e.into()))?;
    let now = now_ms();
    if row.try_get::<Option<i64>, _>("used_at")?.is_some() {
        tracing::warn!(%user, %family, "a spent refresh token was presented again: revoking its family");
        revoke_family(db, family).await?;
        return Err(invalid());
    }
    if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() || row.try_get::<i64, _>("expires_at")? <= now {
        return Err(invalid());
    }
    // Spend it only if nobody else spent it in the meantime: of two
    // concurrent uses, exactly one wins and the other is a reuse.
    let spent = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(&token_hash)
    .execute(&db.pool)
    .await?;
    if spent.rows_affected() != 1 {
        revoke_family(db, family).await?;
        return Err(invalid());
    }
    Ok((user, family))
}

/// Revokes every token of a family.
pub async fn revoke_family(db: &Db, family: Uuid) -> ApiResult<()> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
        .bind(now_ms())
        .bind(family.to_string())
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// The family of a token, if the token exists.
pub async fn family_of(db: &Db, token: &str) -> ApiResult<Option<Uuid>> {
    let family: Option<String> = sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(hash(token))
        .fetch_optional(&db.pool)
        .await?;
    family
        .map(|f| Uuid::parse_str(&f).map_err(|e| ApiError::Internal(e.into())))
        .transpose()
}

/// Revokes every refresh token of a user (password change).
pub async fn revoke_user(db: &Db, user: Uuid) -> ApiResult<()> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now_ms())
        .bind(user.to_string())
        .execute(&db.pool)
        .await?;
    Ok(())
}
