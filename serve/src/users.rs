//! Accounts as stored, the caller's profile (`/v1/me`) and the admin's view
//! of users (`/v1/users/{id}`).

use std::str::FromStr;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Caller;
use crate::db::{Db, now_ms};
use crate::problem::{ApiError, ApiJson, ApiPath, ApiResult, FieldError};
use crate::validate;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watches videos.
    Viewer,
    /// Also uploads and manages their own videos.
    Creator,
    /// Manages everything.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Creator => "creator",
            Self::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "creator" => Ok(Self::Creator),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown role {other:?}: expected viewer, creator or admin")),
        }
    }
}

/// An account as stored.
#[derive(Debug, Clone)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// Lower-cased email, unique.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Name shown to others.
    pub display_name: String,
    /// Free text.
    pub bio: String,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// BCP 47 tag.
    pub language: Option<String>,
    /// http(s) URL of a picture.
    pub avatar_url: Option<String>,
    /// When the password last changed (ms); older access tokens are refused.
    pub password_changed_at: i64,
    /// Created (ms).
    pub created_at: i64,
}

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

/// The caller's own view of their account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Profile {
    /// Account id.
    pub id: Uuid,
    /// Email.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Name shown to others.
    pub display_name: String,
    /// Free text.
    pub bio: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// BCP 47 language tag.
    pub language: Option<String>,
    /// Picture URL.
    pub avatar_url: Option<String>,
    /// When the account was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<&User> for Profile {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            role: u.role,
            display_name: u.display_name.clone(),
            bio: u.bio.clone(),
            country: u.country.clone(),
            language: u.language.clone(),
            avatar_url: u.avatar_url.clone(),
            created_at: chrono::DateTime::from_timestamp_millis(u.created_at).unwrap_or_default(),
        }
    }
}

/// `Some(None)` for an explicit `null` (clear the field), `None` when the
/// field is absent (leave it alone).
pub fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A partial update of the caller's profile: absent fields stay as they
/// are, `null` clears an optional field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// 1–80 characters.
    pub display_name: Option<String>,
    /// Up to 2000 characters.
    pub bio: Option<String>,
    /// ISO 3166-1 alpha-2, such as `FR`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub country: Option<Option<String>>,
    /// BCP 47, such as `en` or `pt-BR`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub language: Option<Option<String>>,
    /// An http(s) URL.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
}

impl ProfilePatch {
    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(name) = &self.display_name {
            validate::text(&mut errors, "display_name", name, 1, 80);
        }
        if let Some(bio) = &self.bio {
            validate::text(&mut errors, "bio", bio, 0, 2000);
        }
        if let Some(Some(country)) = &self.country
            && !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()))
        {
            errors.push(FieldError::new(
                "country",
                "must be an ISO 3166-1 alpha-2 code such as FR",
            ));
        }
        if let Some(Some(language)) = &self.language {
            validate::language(&mut errors, "language", language);
        }
        if let Some(Some(url)) = &self.avatar_url {
            validate::http_url(&mut errors, "avatar_url", url);
        }
        errors
    }
}

/// The caller's profile.
#[utoipa::path(get, path = "/v1/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Profile), (status = 401, body = crate::problem::Problem)))]
pub async fn get_me(caller: Caller) -> axum::Json<Profile> {
    axum::Json(Profile::from(&caller.user))
}

/// Changes some fields of the caller's profile.
#[utoipa::path(patch, path = "/v1/me", tag = "accounts", security(("bearer" = [])), request_body = ProfilePatch,
    responses((status = 200, body = Profile), (status = 422, body = crate::problem::Problem)))]
pub async fn patch_me(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(patch): ApiJson<ProfilePatch>,
) -> ApiResult<axum::Json<Profile>> {
    let errors = patch.validate();
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut u = caller.user;
    if let Some(v) = patch.display_name {
        u.display_name = v.trim().to_string();
    }
    if let Some(v) = patch.bio {
        u.bio = v;
    }
    if let Some(v) = patch.country {
        u.country = v;
    }
    if let Some(v) = patch.language {
        u.language = v;
    }
    if let Some(v) = patch.avatar_url {
        u.avatar_url = v;
    }
    sqlx::query(
        "UPDATE users SET display_name = $1, bio = $2, country = $3, language = $4, avatar_url = $5, updated_at = $6 WHERE id = $7",
    )
    .bind(&u.display_name)
    .bind(&u.bio)
    .bind(&u.country)
    .bind(&u.language)
    .bind(&u.avatar_url)
    .bind(now_ms())
    .bind(u.id.to_string())
    .execute(&state.db.pool)
    .await?;
    Ok(axum::Json(Profile::from(&u)))
}

/// Deletes the caller's account, with every video it owns.
#[utoipa::path(delete, path = "/v1/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 204, description = "deleted")))]
pub async fn delete_me(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    delete_account(&state, caller.user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A role change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// The new role.
    pub role: Role,
}

/// Which accounts to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct UserQuery {
    /// Only accounts whose email contains this (case-insensitive).
    pub q: Option<String>,
    /// At most this many, 1–500 (default 100), newest first.
    pub limit: Option<u32>,
}

/// Lists accounts, newest first (admins only).
#[utoipa::path(get, path = "/v1/users", tag = "accounts", security(("bearer" = [])), params(UserQuery),
    responses((status = 200, body = Vec<Profile>), (status = 403, body = crate::problem::Problem)))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Query(query): axum::extract::Query<UserQuery>,
) -> ApiResult<axum::Json<Vec<Profile>>> {
    caller.require_admin()?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::Validation(vec![FieldError::new("limit", "must be 1 to 500")]));
    }
    // The search is literal: LIKE's wildcards in it match themselves.
    let needle = query.q.unwrap_or_default().trim().to_lowercase();
    let escaped = needle.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let pattern = format!("%{escaped}%");
    let rows = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email LIKE $1 ESCAPE '\\' ORDER BY created_at DESC, id LIMIT $2"
    ))
    .bind(pattern)
    .bind(i64::from(limit))
    .fetch_all(&state.db.pool)
    .await?;
    let users = rows.iter().map(user_from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(axum::Json(users.iter().map(Profile::from).collect()))
}

/// Changes a user's role (admins only).
#[utoipa::path(put, path = "/v1/users/{id}/role", tag = "accounts", security(("bearer" = [])), request_body = RoleChange,
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = Profile), (status = 403, body = crate::problem::Problem), (status = 404, body = crate::problem::Problem)))]
pub async fn set_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(change): ApiJson<RoleChange>,
) -> ApiResult<axum::Json<Profile>> {
    caller.require_admin()?;
    let updated = sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
        .bind(change.role.as_str())
        .bind(now_ms())
        .bind(id.to_string())
        .execute(&state.db.pool)
        .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::NotFound(format!("no user {id}")));
    }
    let user = find_by_id(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {id}")))?;
    Ok(axum::Json(Profile::from(&user)))
}

/// Deletes a user and their videos (admins only).
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "accounts", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 204, description = "deleted"), (status = 403, body = crate::problem::Problem), (status = 404, body = crate::problem::Problem)))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if find_by_id(&state.db, id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no user {id}")));
    }
    delete_account(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_account(state: &AppState, id: Uuid) -> ApiResult<()> {
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
