//! `reelflow.playback`: what a player experienced, one event at a time, keyed
//! by playback session so a session's events stay in order. The kinds follow
//! the beacons of Mux Data and hls.js's own events.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TopicEvent;

/// One player event of one playback session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlaybackEvent {
    /// The playback session (one page load of the player for one video).
    pub session_id: Uuid,
    /// The video being played.
    pub video_id: Uuid,
    /// The signed-in viewer, attached by the server; `null` for anonymous.
    #[serde(default)]
    pub user_id: Option<Uuid>,
    /// What happened.
    #[serde(flatten)]
    pub kind: PlaybackKind,
}

/// What happened in a playback session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PlaybackKind {
    /// The viewer pressed play (or autoplay started): a view attempt.
    SessionStart {
        /// Player software, such as `hls.js 1.6`.
        #[serde(default)]
        player: Option<String>,
    },
    /// The first frame was shown.
    FirstFrame {
        /// Milliseconds from play to the first frame.
        startup_ms: u64,
    },
    /// Periodic progress while the session is open.
    Heartbeat {
        /// Playhead position in seconds.
        position_s: f64,
        /// Milliseconds of content played since the previous heartbeat.
        played_ms: u64,
        /// Rendition being played, such as `720p`.
        #[serde(default)]
        rendition: Option<String>,
        /// Bitrate of that rendition in kbit/s.
        #[serde(default)]
        bitrate_kbps: Option<u64>,
    },
    /// The viewer paused.
    Pause {
        /// Playhead position in seconds.
        position_s: f64,
    },
    /// The viewer seeked.
    Seek {
        /// Position before the seek, seconds.
        from_s: f64,
        /// Position after the seek, seconds.
        to_s: f64,
    },
    /// Playback stalled waiting for data.
    RebufferStart {
        /// Playhead position in seconds.
        position_s: f64,
    },
    /// Playback resumed after a stall.
    RebufferEnd {
        /// How long the stall lasted, milliseconds.
        duration_ms: u64,
    },
    /// The player switched renditions.
    RenditionChange {
        /// Rendition before, if any.
        #[serde(default)]
        from: Option<String>,
        /// Rendition after.
        to: String,
        /// Bitrate of the new rendition in kbit/s.
        #[serde(default)]
        bitrate_kbps: Option<u64>,
    },
    /// The player reported an error.
    Error {
        /// Player error code or type.
        code: String,
        /// Human-readable detail.
        #[serde(default)]
        message: String,
        /// Whether playback stopped because of it.
        fatal: bool,
    },
    /// The session ended (played to the end, or the page was closed).
    End {
        /// Playhead position in seconds.
        position_s: f64,
    },
}

impl TopicEvent for PlaybackEvent {
    const TOPIC: &'static str = "reelflow.playback";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.session_id.to_string()
    }
}
