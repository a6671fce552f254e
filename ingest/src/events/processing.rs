//! `reelflow.processing`: the transcoding pipeline's progress for a video,
//! from queued to ready or failed. `video_status` is the latest of these.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TopicEvent;

/// One rung of the HLS ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Rendition {
    /// Name, such as `720p`.
    pub name: String,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Peak bandwidth in bits per second, as in the master playlist.
    pub bandwidth_bps: u64,
}

/// Pipeline progress of one video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProcessingEvent {
    /// A transcoder took the upload.
    Queued {
        /// The video.
        video_id: Uuid,
    },
    /// ffprobe is looking at the source.
    Probing {
        /// The video.
        video_id: Uuid,
    },
    /// The ffmpeg pass is running.
    Transcoding {
        /// The video.
        video_id: Uuid,
        /// Share of the source's duration encoded so far, 0–100.
        percent: f64,
    },
    /// Every rendition is written and the master playlist is in place.
    Ready {
        /// The video.
        video_id: Uuid,
        /// The ladder, highest first.
        renditions: Vec<Rendition>,
        /// Duration of the source in seconds.
        duration_s: f64,
        /// Object key of the poster image.
        #[serde(default)]
        poster_key: Option<String>,
        /// Object key of the storyboard sprite.
        #[serde(default)]
        storyboard_key: Option<String>,
        /// Bytes written to object storage for this video (all renditions).
        #[serde(default)]
        output_bytes: u64,
        /// Seconds from the upload's completion until the video was first
        /// playable (every rendition had a segment stored), if that was
        /// before the pass ended.
        #[serde(default)]
        first_playable_s: Option<f64>,
    },
    /// The pipeline gave up on this video.
    Failed {
        /// The video.
        video_id: Uuid,
        /// What went wrong, for the owner to read.
        reason: String,
    },
}

impl ProcessingEvent {
    /// The video this event is about.
    pub fn video_id(&self) -> Uuid {
        match self {
            Self::Queued { video_id }
            | Self::Probing { video_id }
            | Self::Transcoding { video_id, .. }
            | Self::Ready { video_id, .. }
            | Self::Failed { video_id, .. } => *video_id,
        }
    }
}

impl TopicEvent for ProcessingEvent {
    const TOPIC: &'static str = "reelflow.processing";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.video_id().to_string()
    }
}
