//! `reelflow.catalog`: what the catalog says about each video. Keyed by video
//! id; the latest event of a video is its current metadata.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TopicEvent;

/// Who may see a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Listed and playable by anyone.
    Public,
    /// Playable by anyone with the link, never listed.
    Unlisted,
    /// Only the owner and admins.
    Private,
}

/// The catalog fields of a video as they stand after a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VideoMeta {
    /// Account that owns the video.
    pub owner_id: Uuid,
    /// Title shown to viewers.
    pub title: String,
    /// Free-form description.
    #[serde(default)]
    pub description: String,
    /// Genre, if the creator gave one.
    #[serde(default)]
    pub genre: Option<String>,
    /// BCP 47 language tag, if known.
    #[serde(default)]
    pub language: Option<String>,
    /// Who may see it.
    pub visibility: Visibility,
    /// Creator-chosen tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A change to the video catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CatalogEvent {
    /// A video entered the catalog.
    VideoCreated {
        /// The video.
        video_id: Uuid,
        /// Its metadata.
        video: VideoMeta,
    },
    /// A video's metadata changed; `video` is the whole new state.
    VideoUpdated {
        /// The video.
        video_id: Uuid,
        /// Its metadata after the change.
        video: VideoMeta,
    },
    /// A video left the catalog, with its objects.
    VideoDeleted {
        /// The video.
        video_id: Uuid,
        /// Who owned it.
        owner_id: Uuid,
    },
}

impl CatalogEvent {
    /// The video this event is about.
    pub fn video_id(&self) -> Uuid {
        match self {
            Self::VideoCreated { video_id, .. }
            | Self::VideoUpdated { video_id, .. }
            | Self::VideoDeleted { video_id, .. } => *video_id,
        }
    }
}

impl TopicEvent for CatalogEvent {
    const TOPIC: &'static str = "reelflow.catalog";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.video_id().to_string()
    }
}
