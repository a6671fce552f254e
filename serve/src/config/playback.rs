//! `[playback]`: HLS delivery, playback tokens and the player's beacons.

use serde::{Deserialize, Serialize};

/// HLS delivery, playback tokens and the player's beacons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlaybackConfig {
    /// Lifetime of signed playback tokens, seconds.
    pub token_ttl_s: u64,
    /// Bytes of hot segments, init segments and pictures kept in memory.
    pub cache_bytes: u64,
    /// Objects larger than this are streamed from storage, never cached.
    pub cache_object_max_bytes: u64,
    /// How long a video's visibility is remembered between requests, ms.
    /// A change made on another replica takes at most this long to apply.
    pub access_ttl_ms: u64,
    /// Most player events in one beacon batch.
    pub max_batch_events: usize,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        Self {
            token_ttl_s: 6 * 3600,
            cache_bytes: 256 << 20,
            cache_object_max_bytes: 16 << 20,
            access_ttl_ms: 2000,
            max_batch_events: 100,
        }
    }
}
