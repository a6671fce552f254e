//! `[http]`: the API's listener and what one client may hold of it.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// HTTP settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Origins allowed to call the API from a browser (CORS); empty allows
    /// none but the API's own.
    pub cors_origins: Vec<String>,
    /// Take the client IP (for rate limits) from `X-Forwarded-For`; only
    /// behind a proxy that sets it.
    pub trust_forwarded_for: bool,
    /// Largest JSON request body, bytes.
    pub max_body_bytes: usize,
    /// Longest a request's head may take to arrive, seconds.
    pub header_read_timeout_s: u64,
    /// Longest a request body may send nothing, seconds.
    pub body_idle_timeout_s: u64,
    /// Open connections one client address may hold; 0 for no limit (behind
    /// a proxy every connection comes from the proxy).
    pub max_connections_per_ip: usize,
    /// Where `/metrics` is served without accounts (for a scraper inside the
    /// cluster network); unset means only admins read it, on `listen`.
    pub metrics_listen: Option<SocketAddr>,
}

impl HttpConfig {
    /// The limits of the HTTP listeners.
    pub fn listen_limits(&self) -> crate::listener::ListenLimits {
        crate::listener::ListenLimits {
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_s),
            body_idle_timeout: std::time::Duration::from_secs(self.body_idle_timeout_s),
            max_connections_per_ip: self.max_connections_per_ip,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            cors_origins: Vec::new(),
            trust_forwarded_for: false,
            max_body_bytes: 64 * 1024,
            header_read_timeout_s: 10,
            body_idle_timeout_s: 30,
            max_connections_per_ip: 256,
            metrics_listen: None,
        }
    }
}
