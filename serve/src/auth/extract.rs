//! Request → caller. [`Caller`] requires a valid access token of a live
//! account and counts the request against that user's API rate limit;
//! [`MaybeCaller`] is the same for endpoints anonymous visitors may use
//! (a missing token is anonymous, a bad one is still a 401).
//!
//! They work on any state that gives a [`Gate`] (`Gate: FromRef<S>`), so
//! this is the only place an access token is checked, whichever listener
//! the request came to.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{API_AUDIENCE, AccessClaims, Gate};
use crate::accounts::{self, Role, User};
use crate::problem::ApiError;

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

async fn authenticate(gate: &Gate, token: &str) -> Result<Caller, ApiError> {
    let claims: AccessClaims = gate
        .keys
        .verify(token, API_AUDIENCE)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    let user = accounts::find_by_id(&gate.db, claims.sub)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the account of this token no longer exists".into()))?;
    if claims.iat * 1000 < user.password_changed_at - 999 {
        return Err(ApiError::Unauthorized(
            "the password changed after this token was issued; sign in again".into(),
        ));
    }
    gate.limits
        .api_per_user
        .check(&user.id.to_string())
        .map_err(|retry_after_s| ApiError::RateLimited { retry_after_s })?;
    Ok(Caller { user })
}

impl<S> FromRequestParts<S> for Caller
where
    Gate: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let gate = Gate::from_ref(state);
        let token =
            bearer(parts)?.ok_or_else(|| ApiError::Unauthorized("this endpoint needs an access token".into()))?;
        authenticate(&gate, token).await
    }
}

impl<S> FromRequestParts<S> for MaybeCaller
where
    Gate: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let gate = Gate::from_ref(state);
        match bearer(parts)? {
            Some(token) => Ok(Self(Some(authenticate(&gate, token).await?))),
            None => Ok(Self(None)),
        }
    }
}

/// The client's IP address, for rate limits: the socket's peer, or the
/// first `X-Forwarded-For` hop when `http.trust_forwarded_for` is on.
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl<S> FromRequestParts<S> for ClientIp
where
    Gate: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let gate = Gate::from_ref(state);
        if gate.trust_forwarded_for
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
