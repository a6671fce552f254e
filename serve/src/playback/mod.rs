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

/// Counters of playback, read on `/metrics` ([`crate::exposition`]).
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
}
