//! `/v1/auth/*`: register, login, refresh, logout, change password.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{API_AUDIENCE, AccessClaims, Caller, ClientIp, password, refresh};
use crate::accounts::{self, Profile, Role, User};
use crate::problem::{ApiError, ApiJson, ApiResult, FieldError, Problem};
use crate::state::AppState;
use crate::validate;

/// The routes of `/v1/auth`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh_tokens))
        .routes(routes!(logout))
        .routes(routes!(change_password))
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Email address; the login name.
    pub email: String,
    /// At least 10 characters.
    pub password: String,
    /// Name shown to others (default: the part of the email before `@`).
    #[serde(default)]
    pub display_name: Option<String>,
    /// `creator` (default: may upload) or `viewer`. Admins are made by admins.
    #[serde(default)]
    pub role: Option<Role>,
}

/// Email and password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email address.
    pub email: String,
    /// Password.
    pub password: String,
}

/// A refresh token to spend or revoke.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    pub refresh_token: String,
}

/// Old and new password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The current password.
    pub current_password: String,
    /// The new one, at least 10 characters.
    pub new_password: String,
}

/// Tokens for an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// The account.
    pub user: Profile,
    /// Send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Spend at `/v1/auth/refresh` for new tokens; single use.
    pub refresh_token: String,
}

async fn session(state: &AppState, user: &User, family: Uuid) -> ApiResult<Session> {
    let now = chrono::Utc::now().timestamp();
    let ttl = state.config.auth.access_ttl_s;
    let claims = AccessClaims {
        sub: user.id,
        aud: API_AUDIENCE.into(),
        iat: now,
        exp: now + ttl as i64,
        jti: Uuid::now_v7(),
    };
    let refresh_token = refresh::issue(&state.db, user.id, family, state.config.auth.refresh_ttl_s).await?;
    Ok(Session {
        user: Profile::from(user),
        access_token: state.keys.sign(&claims),
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token,
    })
}

/// Creates an account and signs it in.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = Session), (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<Session>)> {
    state
        .limits
        .register_per_ip
        .check(&ip)
        .map_err(|retry_after_s| ApiError::RateLimited { retry_after_s })?;
    let mut errors = Vec::new();
    validate::email(&mut errors, "email", &req.email);
    if let Some(msg) = password::check_policy(&req.password) {
        errors.push(FieldError::new("password", msg));
    }
    if let Some(name) = &req.display_name {
        validate::text(&mut errors, "display_name", name, 1, 80);
    }
    if req.role == Some(Role::Admin) {
        errors.push(FieldError::new(
            "role",
            "must be viewer or creator; admins are appointed by an admin",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let display_name = match &req.display_name {
        Some(n) => n.trim().to_string(),
        None => req.email.trim().split('@').next().unwrap_or_default().to_string(),
    };
    let hash = password::hash(req.password).await?;
    let user = accounts::create(
        &state.db,
        &req.email,
        hash,
        req.role.unwrap_or(Role::Creator),
        &display_name,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(session(&state, &user, Uuid::now_v7()).await?)))
}

/// Signs in with email and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Session), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<Session>> {
    let limited = |retry_after_s| ApiError::RateLimited { retry_after_s };
    state.limits.login_per_ip.check(&ip).map_err(limited)?;
    state
        .limits
        .login_per_account
        .check(&req.email.trim().to_lowercase())
        .map_err(limited)?;
    let user = accounts::find_by_email(&state.db, &req.email).await?;
    let ok = password::verify(req.password, user.as_ref().map(|u| u.password_hash.clone())).await;
    match user {
        Some(user) if ok => Ok(Json(session(&state, &user, Uuid::now_v7()).await?)),
        // The same answer whether the account exists or not.
        _ => Err(ApiError::Unauthorized("wrong email or password".into())),
    }
}

/// Spends a refresh token for a new pair of tokens.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Session), (status = 401, body = Problem)))]
pub async fn refresh_tokens(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<Json<Session>> {
    let (user_id, family) = refresh::spend(&state.db, &req.refresh_token).await?;
    let user = accounts::find_by_id(&state.db, user_id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the account of this token no longer exists".into()))?;
    Ok(Json(session(&state, &user, family).await?))
}

/// Signs out: revokes the refresh token's whole family. Idempotent.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "signed out")))]
pub async fn logout(State(state): State<AppState>, ApiJson(req): ApiJson<RefreshRequest>) -> ApiResult<StatusCode> {
    if let Some(family) = refresh::family_of(&state.db, &req.refresh_token).await? {
        refresh::revoke_family(&state.db, family).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the caller's password and signs out every session.
#[utoipa::path(post, path = "/v1/auth/password", tag = "auth", security(("bearer" = [])), request_body = PasswordChange,
    responses((status = 204, description = "changed"), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    if let Some(msg) = password::check_policy(&req.new_password) {
        return Err(ApiError::field("new_password", msg));
    }
    if !password::verify(req.current_password, Some(caller.user.password_hash.clone())).await {
        return Err(ApiError::field("current_password", "is not the current password"));
    }
    let hash = password::hash(req.new_password).await?;
    crate::accounts::set_password(&state.db, caller.user.id, hash).await?;
    refresh::revoke_user(&state.db, caller.user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
