//! The checks that types alone cannot make: ranges, settings that go
//! together, and strings that must have a shape. Each error names the
//! setting (as `section.key`) and, where it helps, the value given.

use anyhow::bail;

use super::{Config, LogBackend, StorageBackend};

impl Config {
    /// Checks what types alone cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.data_dir.as_os_str().is_empty() {
            bail!("data_dir must not be empty");
        }
        if self.log.partitions == 0 || self.log.partitions > 10_000 {
            bail!(
                "log.partitions must be between 1 and 10000, not {}",
                self.log.partitions
            );
        }
        if self.log.backend == LogBackend::Kafka {
            if self.kafka.brokers.trim().is_empty() {
                bail!("kafka.brokers must name at least one host:port when log.backend = \"kafka\"");
            }
            for broker in self.kafka.brokers.split(',') {
                let ok = broker
                    .trim()
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !ok {
                    bail!("kafka.brokers entry {broker:?} is not host:port");
                }
            }
        }
        for origin in &self.http.cors_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) || origin.ends_with('/') {
                bail!("http.cors_origins entry {origin:?} must be an origin like https://app.example.com");
            }
        }
        if self.http.header_read_timeout_s == 0 || self.http.body_idle_timeout_s == 0 {
            bail!("http.header_read_timeout_s and http.body_idle_timeout_s must be positive");
        }
        if self.sql.timeout_s == 0
            || self.sql.memory_mib == 0
            || self.sql.http_row_limit == 0
            || self.sql.max_statement_bytes == 0
            || self.sql.max_expression_depth == 0
            || self.sql.max_value_mib == 0
            || self.sql.statements_per_user == 0
        {
            bail!(
                "sql.timeout_s, sql.memory_mib, sql.http_row_limit, sql.max_statement_bytes, \
                 sql.max_expression_depth, sql.max_value_mib and sql.statements_per_user must be positive"
            );
        }
        if self.playback.token_ttl_s < 60 {
            bail!("playback.token_ttl_s must be at least 60");
        }
        if !(1..=1000).contains(&self.playback.max_batch_events) {
            bail!("playback.max_batch_events must be between 1 and 1000");
        }
        if self.playback.cache_object_max_bytes > self.playback.cache_bytes {
            bail!("playback.cache_object_max_bytes must not exceed playback.cache_bytes");
        }
        if self.http.max_body_bytes < 1024 {
            bail!("http.max_body_bytes must be at least 1024");
        }
        if self.auth.access_ttl_s < 30 || self.auth.refresh_ttl_s < self.auth.access_ttl_s {
            bail!("auth.access_ttl_s must be at least 30 and auth.refresh_ttl_s at least as long");
        }
        if self.uploads.part_size_bytes < 5 * 1024 * 1024 {
            bail!("uploads.part_size_bytes must be at least 5242880 (S3's minimum part)");
        }
        if self.dataflow.workers > 1024 || self.dataflow.replicas == 0 {
            bail!("dataflow.workers must be at most 1024 and dataflow.replicas at least 1");
        }
        if self.dataflow.history_s == 0 {
            bail!("dataflow.history_s must be at least 1");
        }
        // A session must outlast the concurrent-viewers window (60 s), and
        // a day of silence is another visit.
        if !(60..=86_400).contains(&self.dataflow.session_idle_s) {
            bail!(
                "dataflow.session_idle_s must be between 60 and 86400, not {}",
                self.dataflow.session_idle_s
            );
        }
        let d = &self.dataflow;
        // Every snapshot reads the log since the one before and writes the
        // whole state: more often than every 10 s is mostly writing.
        if !(10..=86_400).contains(&d.snapshot_interval_s) {
            bail!(
                "dataflow.snapshot_interval_s must be between 10 and 86400, not {}",
                d.snapshot_interval_s
            );
        }
        // The previous one is what a start falls back to when the latest is
        // damaged, and what a process starting a moment later still finds.
        if !(2..=100).contains(&d.snapshots_kept) {
            bail!(
                "dataflow.snapshots_kept must be between 2 and 100, not {}",
                d.snapshots_kept
            );
        }
        if !(1..=1000).contains(&d.idle_check_ms) {
            bail!(
                "dataflow.idle_check_ms must be between 1 and 1000, not {}",
                d.idle_check_ms
            );
        }
        if !(1..=1000).contains(&d.tick_ms) {
            bail!("dataflow.tick_ms must be between 1 and 1000, not {}", d.tick_ms);
        }
        if d.catch_up_tick_ms < d.tick_ms || d.catch_up_tick_ms > 60_000 {
            bail!(
                "dataflow.catch_up_tick_ms must be between tick_ms ({}) and 60000, not {}",
                d.tick_ms,
                d.catch_up_tick_ms
            );
        }
        if self.transcode.workers == 0 || self.transcode.workers > 64 {
            bail!("transcode.workers must be between 1 and 64");
        }
        if self.uploads.max_size_bytes == 0 || self.uploads.expire_after_s < 60 {
            bail!("uploads.max_size_bytes must be positive and uploads.expire_after_s at least 60");
        }
        if self.kafka.replication_factor == 0 {
            bail!("kafka.replication_factor must be at least 1");
        }
        if self.storage.backend == StorageBackend::S3 {
            if self.s3.bucket.is_empty() {
                bail!("s3.bucket must be set when storage.backend = \"s3\"");
            }
            if let Some(endpoint) = &self.s3.endpoint
                && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
            {
                bail!("s3.endpoint {endpoint:?} must start with http:// or https://");
            }
            if self.s3.access_key_id.is_some() != self.s3.secret_access_key.is_some() {
                bail!("s3.access_key_id and s3.secret_access_key must be set together");
            }
        }
        if self.s3.part_size_bytes < 5 * 1024 * 1024 {
            bail!(
                "s3.part_size_bytes must be at least 5242880 (S3's minimum part), not {}",
                self.s3.part_size_bytes
            );
        }
        if let Some(url) = &self.database.url
            && !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            bail!("database.url must start with sqlite:, postgres:// or postgresql://");
        }
        Ok(())
    }
}
