//! `[auth]`: how long tokens live and where their signing keys are kept.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Config;

/// Accounts and tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Lifetime of access tokens, seconds.
    pub access_ttl_s: u64,
    /// Lifetime of refresh tokens, seconds.
    pub refresh_ttl_s: u64,
    /// The signing key file; unset means `<data_dir>/auth-keys.json`.
    pub keys_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_ttl_s: 15 * 60,
            refresh_ttl_s: 30 * 24 * 3600,
            keys_file: None,
        }
    }
}

impl Config {
    /// The token signing key file.
    pub fn keys_file(&self) -> PathBuf {
        self.auth
            .keys_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("auth-keys.json"))
    }
}
