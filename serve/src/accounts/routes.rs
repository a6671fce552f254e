//! `/v1/me` (the caller's own account) and `/v1/users` (every account,
//! for admins).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model::{Profile, ProfilePatch, RoleChange, UserQuery};
use super::store;
use crate::auth::Caller;
use crate::problem::{ApiError, ApiJson, ApiPath, ApiResult, FieldError, Problem};
use crate::state::AppState;

/// The routes of `/v1/me` and `/v1/users`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, patch_me, delete_me))
        .routes(routes!(list_users))
        .routes(routes!(set_role))
        .routes(routes!(delete_user))
}

/// The caller's profile.
#[utoipa::path(get, path = "/v1/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Profile), (status = 401, body = Problem)))]
pub async fn get_me(caller: Caller) -> Json<Profile> {
    Json(Profile::from(&caller.user))
}

/// Changes some fields of the caller's profile.
#[utoipa::path(patch, path = "/v1/me", tag = "accounts", security(("bearer" = [])), request_body = ProfilePatch,
    responses((status = 200, body = Profile), (status = 422, body = Problem)))]
pub async fn patch_me(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(patch): ApiJson<ProfilePatch>,
) -> ApiResult<Json<Profile>> {
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
    store::update_profile(&state.db, &u).await?;
    Ok(Json(Profile::from(&u)))
}

/// Deletes the caller's account, with every video it owns.
#[utoipa::path(delete, path = "/v1/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 204, description = "deleted")))]
pub async fn delete_me(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    store::delete(&state, caller.user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists accounts, newest first (admins only).
#[utoipa::path(get, path = "/v1/users", tag = "accounts", security(("bearer" = [])), params(UserQuery),
    responses((status = 200, body = Vec<Profile>), (status = 403, body = Problem)))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<UserQuery>,
) -> ApiResult<Json<Vec<Profile>>> {
    caller.require_admin()?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::Validation(vec![FieldError::new("limit", "must be 1 to 500")]));
    }
    let needle = query.q.unwrap_or_default().trim().to_lowercase();
    let users = store::search(&state.db, &needle, limit).await?;
    Ok(Json(users.iter().map(Profile::from).collect()))
}

/// Changes a user's role (admins only).
#[utoipa::path(put, path = "/v1/users/{id}/role", tag = "accounts", security(("bearer" = [])), request_body = RoleChange,
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = Profile), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn set_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(change): ApiJson<RoleChange>,
) -> ApiResult<Json<Profile>> {
    caller.require_admin()?;
    if !store::set_role(&state.db, id, change.role).await? {
        return Err(ApiError::NotFound(format!("no user {id}")));
    }
    let user = store::find_by_id(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {id}")))?;
    Ok(Json(Profile::from(&user)))
}

/// Deletes a user and their videos (admins only).
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "accounts", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 204, description = "deleted"), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if store::find_by_id(&state.db, id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no user {id}")));
    }
    store::delete(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
