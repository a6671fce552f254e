//! `reelflow.uploads`: an upload finished and its object is durable. This is
//! the transcoder's input, so it is only appended after the object store
//! acknowledged the last byte.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TopicEvent;

/// Hash algorithms a client may vouch for an upload with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumAlgorithm {
    /// SHA-1 (tus checksum extension).
    Sha1,
    /// SHA-256.
    Sha256,
}

/// A verified checksum of the whole uploaded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Checksum {
    /// Which hash.
    pub algorithm: ChecksumAlgorithm,
    /// Lower-case hex digest.
    pub hex: String,
}

/// Upload lifecycle events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UploadEvent {
    /// Every byte arrived, the size (and checksum, if given) verified, and the
    /// object is durable in object storage.
    UploadCompleted {
        /// The catalog video the upload belongs to.
        video_id: Uuid,
        /// The upload's own id.
        upload_id: Uuid,
        /// Account that uploaded.
        owner_id: Uuid,
        /// Key of the source object in object storage.
        object_key: String,
        /// Size of the object in bytes.
        size_bytes: u64,
        /// Verified checksum, if the client sent one.
        #[serde(default)]
        checksum: Option<Checksum>,
        /// File name the client gave.
        #[serde(default)]
        file_name: Option<String>,
        /// Content type the client gave.
        #[serde(default)]
        content_type: Option<String>,
    },
}

impl UploadEvent {
    /// The video this event is about.
    pub fn video_id(&self) -> Uuid {
        match self {
            Self::UploadCompleted { video_id, .. } => *video_id,
        }
    }
}

impl TopicEvent for UploadEvent {
    const TOPIC: &'static str = "reelflow.uploads";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.video_id().to_string()
    }
}
