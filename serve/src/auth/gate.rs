//! The part of a listener's state that checking a caller needs, and only
//! that: the token keys, the accounts database, the per-user rate limit and
//! whether to believe `X-Forwarded-For`.
//!
//! The extractors ([`super::Caller`], [`super::MaybeCaller`],
//! [`super::ClientIp`]) take a [`Gate`] from any state that provides one
//! through [`FromRef`](axum::extract::FromRef), as axum's `FromRef` docs
//! show. The public API ([`crate::AppState`]) and the dataflow service's SQL
//! listener ([`crate::sql::SqlService`]) both do, so one check serves every
//! listener that accepts access tokens: a deleted account, a changed
//! password and the per-user rate limit are refused the same way on each.

use std::sync::Arc;

use anyhow::Context;

use super::Keyring;
use crate::config::Config;
use crate::db::Db;
use crate::ratelimit::Limits;

/// What the extractors need to turn a request into a caller.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Verifies access tokens.
    pub keys: Arc<Keyring>,
    /// The accounts, re-read on every request.
    pub db: Db,
    /// Counts each caller's requests (`limits.api_per_user_per_minute`).
    pub limits: Arc<Limits>,
    /// Take the client's address from `X-Forwarded-For`
    /// (`http.trust_forwarded_for`).
    pub trust_forwarded_for: bool,
}

impl Gate {
    /// Opens what `config` names for a process without the public API (the
    /// dataflow service): the accounts database, the keys file (the same
    /// ones `reelflow serve` uses) and fresh rate limits. The limits are
    /// this process's own, as every process's are (see
    /// [`crate::ratelimit`]).
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let db = Db::open(&config.database_url())
            .await
            .context("opening the accounts database")?;
        let keys_file = config.keys_file();
        let keys = tokio::task::spawn_blocking(move || Keyring::load_or_create(&keys_file))
            .await
            .context("reading the token keys")??;
        Ok(Self {
            keys: Arc::new(keys),
            db,
            limits: Arc::new(Limits::new(&config.limits)),
            trust_forwarded_for: config.http.trust_forwarded_for,
        })
    }
}
