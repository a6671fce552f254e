//! Playback: everything between a transcoded video and a viewer's screen.
//!
//! - [`delivery`]: the HLS ladder, poster and storyboard from object
//!   storage, with the types, ranges, validators, caching and CORS players
//!   and CDNs expect, and a bounded in-memory cache of hot objects.
//! - [`token`]: signed playback tokens, which open private videos and ride
//!   in every URI of the playlists.
//! - [`beacons`]: the player's events, validated and appended to
//!   `reelflow.playback`.
//! - [`player`]: Reelflow's player page (hls.js), which sends those beacons.
//!
//! Media and beacon routes answer cross-origin requests from anywhere (no
//! credentials), so a player on another site works; the rest of the API
//! keeps `http.cors_origins`.

pub mod beacons;
pub mod delivery;
pub mod player;
pub mod token;

pub use delivery::Delivery;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Playback's routes under the API's CORS: playback tokens and the player.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token::playback_token))
        .routes(routes!(player::watch))
        .routes(routes!(player::player_js))
        .routes(routes!(player::hls_js))
}

/// Media and beacons, which players on any origin may use.
pub fn media_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(delivery::master))
        .routes(routes!(delivery::rendition))
        .routes(routes!(delivery::poster))
        .routes(routes!(delivery::storyboard))
        .routes(routes!(beacons::post_events))
}

/// Counters of playback, rendered on `/metrics`.
#[derive(Debug, Default)]
pub struct PlaybackMetrics {
    /// Media answers served from the in-memory cache.
    pub cache_hits: AtomicU64,
    /// Media answers that had to read object storage.
    pub cache_misses: AtomicU64,
    /// Body bytes of media answers (ranges counted as sent).
    pub bytes_sent: AtomicU64,
    /// Player events acknowledged by the log.
    pub beacon_events: AtomicU64,
    /// Beacon batches refused as malformed.
    pub beacon_batches_refused: AtomicU64,
}

impl PlaybackMetrics {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// Prometheus text, with the cache's current size.
    pub fn render(&self, cache_bytes: u64) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        metric(
            "reelflow_delivery_cache_bytes",
            "gauge",
            "Bytes of media held in memory.",
            cache_bytes,
        );
        metric(
            "reelflow_delivery_cache_hits_total",
            "counter",
            "Media answers served from memory.",
            get(&self.cache_hits),
        );
        metric(
            "reelflow_delivery_cache_misses_total",
            "counter",
            "Media answers read from object storage.",
            get(&self.cache_misses),
        );
        metric(
            "reelflow_delivery_bytes_total",
            "counter",
            "Body bytes of media answers.",
            get(&self.bytes_sent),
        );
        metric(
            "reelflow_beacon_events_total",
            "counter",
            "Player events acknowledged by the log.",
            get(&self.beacon_events),
        );
        metric(
            "reelflow_beacon_batches_refused_total",
            "counter",
            "Beacon batches refused as malformed.",
            get(&self.beacon_batches_refused),
        );
        out
    }
}
