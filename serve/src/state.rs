//! What every handler of the public API shares ([`AppState`]), and the
//! parts of it that code shared with other listeners asks for instead of
//! the whole: the auth extractors take a [`Gate`] through `FromRef`, so the
//! dataflow service's listener, whose state is not an `AppState`, checks
//! tokens with the very same code.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::FromRef;
use tokio::sync::Notify;

use crate::auth::{Gate, Keyring};
use crate::config::Config;
use crate::db::Db;
use crate::platform::Platform;
use crate::playback::cache::Delivery;
use crate::ratelimit::Limits;
use crate::upstream::Upstream;

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// The log and the store.
    pub platform: Platform,
    /// The metadata database.
    pub db: Db,
    /// Token signing keys.
    pub keys: Arc<Keyring>,
    /// Rate limits.
    pub limits: Arc<Limits>,
    /// Wakes the outbox publisher after a commit.
    pub outbox_wake: Arc<Notify>,
    /// The live views, when the dataflows run in this process (`reelflow up`).
    pub views: Option<reelflow_dataflows::PeekClient>,
    /// HLS delivery's caches.
    pub delivery: Delivery,
    /// SQL over the live views, when the dataflows run in this process.
    pub sql: Option<reelflow_sql::SqlEngine>,
    /// The dataflow service (`sql.upstream`), for `/v1/sql` and `/v1/views`
    /// when the dataflows run elsewhere.
    pub upstream: Option<Upstream>,
}

impl AppState {
    /// Opens the database (migrating it) and the signing keys.
    pub async fn open(config: Config, platform: Platform) -> anyhow::Result<Self> {
        let db = Db::open(&config.database_url()).await?;
        let keys_file = config.keys_file();
        let keys = tokio::task::spawn_blocking(move || Keyring::load_or_create(&keys_file)).await??;
        let upstream = config
            .sql
            .upstream
            .as_deref()
            .map(|base| Upstream::new(base, Duration::from_secs(config.sql.timeout_s)))
            .transpose()?;
        Ok(Self {
            limits: Arc::new(Limits::new(&config.limits)),
            delivery: Delivery::new(&config.playback),
            sql: None,
            upstream,
            config: Arc::new(config),
            platform,
            db,
            keys: Arc::new(keys),
            outbox_wake: Arc::new(Notify::new()),
            views: None,
        })
    }
}

impl FromRef<AppState> for Gate {
    fn from_ref(state: &AppState) -> Self {
        Self {
            keys: Arc::clone(&state.keys),
            db: state.db.clone(),
            limits: Arc::clone(&state.limits),
            trust_forwarded_for: state.config.http.trust_forwarded_for,
        }
    }
}

/// Opens everything `config` names.
pub async fn open(config: Config) -> anyhow::Result<AppState> {
    let platform = Platform::open(&config).await?;
    AppState::open(config, platform)
        .await
        .context("opening accounts and the catalog")
}
