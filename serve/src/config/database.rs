//! `[database]`: where the metadata (accounts, videos, uploads) lives, and
//! how its URL is shown without its password.

use serde::{Deserialize, Serialize};

use super::Config;

/// The metadata database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`; unset means a SQLite file under the
    /// data dir.
    pub url: Option<String>,
}

impl Config {
    /// The database URL, defaulting to a SQLite file under the data dir.
    pub fn database_url(&self) -> String {
        self.database
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join("reelflow.db").display()))
    }
}

/// Replaces the password of `scheme://user:password@host…` with `****`.
pub fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:****@{host}"),
        None => url.to_string(),
    }
}
