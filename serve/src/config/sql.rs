//! `[sql]`: SQL over the live views, where the dataflows run: the wire
//! protocol's listener and TLS, and the limits one statement and one account
//! are held to.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// SQL over the live views (where the dataflows run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlConfig {
    /// Where the PostgreSQL wire protocol listens.
    pub pgwire_listen: SocketAddr,
    /// Longest a statement may run, seconds.
    pub timeout_s: u64,
    /// Memory one statement's operators may hold, MiB.
    pub memory_mib: usize,
    /// Most rows an HTTP answer carries.
    pub http_row_limit: usize,
    /// Changes a `SUBSCRIBE` may have waiting for its client before it is dropped as too slow.
    pub subscribe_buffer: usize,
    /// Longest statement accepted, bytes.
    pub max_statement_bytes: usize,
    /// Most operators (`+`, `AND`, `||`, `UNION` …) in one statement.
    pub max_statement_operators: usize,
    /// Deepest expression in one statement (a chain of n operators is n deep).
    pub max_expression_depth: usize,
    /// Largest value (a string, a list) one function may build, MiB.
    pub max_value_mib: usize,
    /// Statements one account (admins excepted) may run at once.
    pub statements_per_user: usize,
    /// PEM certificate chain for TLS on the wire protocol (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS on the wire protocol.
    pub tls_key: Option<PathBuf>,
    /// Accept passwords over plaintext connections from other hosts (a
    /// trusted network, or a proxy that terminates TLS); loopback always may.
    pub allow_plaintext_passwords: bool,
    /// Where an API process without dataflows forwards `/v1/sql`: the dataflow service's
    /// listener, such as `http://reelflow-dataflow:8081`.
    pub upstream: Option<String>,
}

impl Default for SqlConfig {
    fn default() -> Self {
        // The engine's limits are the engine's to choose; the config only
        // spells them in whole seconds and MiB.
        let engine = reelflow_sql::SqlLimits::default();
        Self {
            pgwire_listen: SocketAddr::from(([127, 0, 0, 1], 6875)),
            timeout_s: engine.timeout.as_secs(),
            memory_mib: engine.memory_bytes >> 20,
            http_row_limit: 10_000,
            subscribe_buffer: engine.subscribe_buffer,
            max_statement_bytes: engine.statement.max_bytes,
            max_statement_operators: engine.statement.max_operators,
            max_expression_depth: engine.statement.max_depth,
            max_value_mib: engine.max_value_bytes >> 20,
            statements_per_user: engine.statements_per_user,
            tls_cert: None,
            tls_key: None,
            allow_plaintext_passwords: false,
            upstream: None,
        }
    }
}

impl SqlConfig {
    /// TLS for the wire protocol, as configured.
    pub fn pg_tls(&self) -> anyhow::Result<reelflow_sql::PgTls> {
        let mut tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => reelflow_sql::PgTls::from_pem_files(cert, key).map_err(anyhow::Error::msg)?,
            (None, None) => reelflow_sql::PgTls::default(),
            _ => bail!("sql.tls_cert and sql.tls_key go together: set both, or neither"),
        };
        tls.allow_plaintext_passwords = self.allow_plaintext_passwords;
        Ok(tls)
    }

    /// The engine's limits.
    pub fn limits(&self) -> reelflow_sql::SqlLimits {
        reelflow_sql::SqlLimits {
            timeout: std::time::Duration::from_secs(self.timeout_s),
            memory_bytes: self.memory_mib << 20,
            subscribe_buffer: self.subscribe_buffer,
            statement: reelflow_sql::StatementLimits {
                max_bytes: self.max_statement_bytes,
                max_operators: self.max_statement_operators,
                max_depth: self.max_expression_depth,
                ..reelflow_sql::StatementLimits::default()
            },
            max_value_bytes: self.max_value_mib << 20,
            statements_per_user: self.statements_per_user,
        }
    }
}
