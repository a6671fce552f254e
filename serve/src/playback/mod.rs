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
pub mod cache;
pub mod delivery;
pub mod player;
pub mod token;

pub use cache::{Delivery, PlaybackMetrics};

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
