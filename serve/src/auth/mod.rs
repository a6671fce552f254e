//! Accounts' credentials: password hashing, signed access tokens, rotating
//! refresh tokens, and the extractors that turn a request into a caller.
//!
//! - An **access token** is a JWT (HS256, with `kid`) for audience
//!   `reelflow-api`, valid for `auth.access_ttl_s` (15 min by default).
//!   Every request re-reads the account, so a deleted account, a changed
//!   role or a changed password take effect at once.
//! - A **refresh token** is 32 random bytes, stored only as its SHA-256. It
//!   belongs to a family (one login); each use spends it and returns a new
//!   one of the same family. Presenting a spent token means it was stolen
//!   or replayed: the whole family is revoked, so the thief's copy dies too.
//! - Every listener that accepts access tokens checks them with the same
//!   extractors, over its state's [`Gate`].

mod extract;
mod gate;
pub mod keys;
pub mod password;
mod refresh;
pub mod routes;

pub use extract::{Caller, ClientIp, MaybeCaller};
pub use gate::Gate;
pub use keys::{Keyring, TokenError};
pub use routes::routes;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Audience of access tokens.
pub const API_AUDIENCE: &str = "reelflow-api";

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The account id.
    pub sub: Uuid,
    /// Always [`API_AUDIENCE`].
    pub aud: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Unique id of this token.
    pub jti: Uuid,
}
