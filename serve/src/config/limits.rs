//! `[limits]`: the rate limits, counted per process.

use serde::{Deserialize, Serialize};

/// Rate limits (per process).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Registrations per client IP per hour.
    pub register_per_ip_per_hour: u32,
    /// Login attempts per client IP per minute.
    pub login_per_ip_per_minute: u32,
    /// Login attempts per account (email) per minute.
    pub login_per_account_per_minute: u32,
    /// Authenticated API requests per user per minute.
    pub api_per_user_per_minute: u32,
    /// Beacon batches per playback session per minute.
    pub beacons_per_session_per_minute: u32,
    /// Beacon batches per client IP per minute.
    pub beacons_per_ip_per_minute: u32,
    /// New playback sessions (views) per client IP.
    pub sessions_per_ip_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            register_per_ip_per_hour: 20,
            login_per_ip_per_minute: 30,
            login_per_account_per_minute: 10,
            api_per_user_per_minute: 1200,
            beacons_per_session_per_minute: 60,
            beacons_per_ip_per_minute: 3000,
            sessions_per_ip_per_minute: 30,
        }
    }
}
