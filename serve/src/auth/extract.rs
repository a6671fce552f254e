//! Request → caller. [`Caller`] requires a valid access token of a live
//! account and counts the request against that user's API rate limit;
//! [`MaybeCaller`] is the same for endpoints anonymous visitors may use
//! (a missing token is anonymous, a bad one is still a 401).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{API_AUDIENCE, AccessClaims};
use crate::app::AppState;
use crate::problem::ApiError;
use crate::users::{self, Role, User};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Their account, as it is now.
    pub user: User,
}

impl Caller {
    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.user.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("only admins may do this".into()))
        }
    }

    /// Whether the caller may act on something `owner` owns.
    pub fn may_manage(&self, owner: uuid::Uuid) -> bool {
        self.user.id == owner || self.user.role == Role::Admin
    }
}

/// A caller, if the request carried a token.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not text".into()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::Unauthorized(
            "use Authorization: Bearer <access token>".into(),
        )),
    }
}

async fn authenticate(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let claims: AccessClaims = state
        .keys
        .verify(token, API_AUDIENCE)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    let user = users::find_by_id(&state.db, claims.sub)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the account of this token no longer exists".into()))?;
    if claims.iat * 1000 < user.password_changed_at - 999 {
        return Err(ApiError::Unauthorized(
            "the password changed after this token was issued; sign in again".into(),
        ));
    }
    state
        .limits
        .api_per_user
        .check(&user.id.to_string())
        .map_err(|retry_after_s| ApiError::RateLimited { retry_after_s })?;
    Ok(Caller { user })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token =
            bearer(parts)?.ok_or_else(|| ApiError::Unauthorized("this endpoint needs an access token".into()))?;
        authenticate(state, token).await
    }
}

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match bearer(parts)? {
            Some(token) => Ok(Self(Some(authenticate(state, token).await?))),
            None => Ok(Self(None)),
        }
    }
}

/// The client's IP address, for rate limits: the socket's peer, or the
/// first `X-Forwarded-For` hop when `http.trust_forwarded_for` is on.
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if state.config.http.trust_forwarded_for
            && let Some(first) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        {
            return Ok(Self(first.to_string()));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Ok(Self(peer.unwrap_or_else(|| "unknown".into())))
    }
}
