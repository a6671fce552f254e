//! The events that flow through Reelflow's log, one Rust type per topic.
//!
//! Every event is wrapped in an [`Envelope`] that carries the schema version,
//! a unique event id and the time the producer saw the event happen. The
//! envelope is flattened into one JSON object, so a record on
//! `reelflow.playback` reads like
//! `{"schema_version":1,"event_id":"…","occurred_at":"…","type":"heartbeat",…}`.
//!
//! The JSON Schema of each topic is generated from these types and checked in
//! under `ingest/schemas/`; a test keeps the two in step and validates every
//! variant against the checked-in file, so other languages can rely on it.
//!
//! Decoding never panics: [`decode`] returns a [`DecodeError`] that readers
//! count and skip ("bad data is data").

mod catalog;
mod playback;
mod processing;
mod uploads;

pub use catalog::{CatalogEvent, VideoMeta, Visibility};
pub use playback::{PlaybackEvent, PlaybackKind};
pub use processing::{ProcessingEvent, Rendition};
pub use uploads::{Checksum, ChecksumAlgorithm, UploadEvent};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event type that lives on one topic of the log.
pub trait TopicEvent: Serialize + DeserializeOwned + JsonSchema + Clone + Send + 'static {
    /// The topic this event is appended to.
    const TOPIC: &'static str;
    /// The schema version written by this build; readers accept this and older.
    const SCHEMA_VERSION: u32;
    /// The record key: the id of the entity the event is about, so all events
    /// of one entity land in one partition, in order.
    fn key(&self) -> String;
}

/// The four topics of the log, in the order the brief lists them.
pub const TOPICS: [&str; 4] = [
    CatalogEvent::TOPIC,
    UploadEvent::TOPIC,
    ProcessingEvent::TOPIC,
    PlaybackEvent::TOPIC,
];

/// The common header of every event, flattened with the event's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope<T> {
    /// Version of the topic's schema this event was written with.
    pub schema_version: u32,
    /// Unique id of this event; consumers use it to drop duplicates.
    pub event_id: Uuid,
    /// When the producer saw the event happen (RFC 3339, UTC).
    pub occurred_at: DateTime<Utc>,
    /// The event itself.
    #[serde(flatten)]
    pub event: T,
}

impl<T: TopicEvent> Envelope<T> {
    /// Wraps `event` with a fresh time-ordered id and the current time.
    pub fn new(event: T) -> Self {
        Self {
            schema_version: T::SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            event,
        }
    }

    /// The record key of the wrapped event.
    pub fn key(&self) -> String {
        self.event.key()
    }

    /// The JSON bytes that go into the log.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising these types cannot fail: every field is a plain value
        // with a string key.
        serde_json::to_vec(self).expect("events serialise to JSON")
    }
}

/// Why a record could not be read as an event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or JSON that does not match the topic's schema.
    #[error("malformed {topic} event: {source}")]
    Malformed {
        /// Topic the record came from.
        topic: &'static str,
        /// What serde found wrong.
        source: serde_json::Error,
    },
    /// Written by a newer producer than this reader understands.
    #[error("{topic} event has schema version {found}, this build reads up to {supported}")]
    UnsupportedVersion {
        /// Topic the record came from.
        topic: &'static str,
        /// Version in the record.
        found: u32,
        /// Newest version this build understands.
        supported: u32,
    },
}

/// Reads one record's value as an event of topic `T`.
pub fn decode<T: TopicEvent>(bytes: &[u8]) -> Result<Envelope<T>, DecodeError> {
    let envelope: Envelope<T> = serde_json::from_slice(bytes).map_err(|source| DecodeError::Malformed {
        topic: T::TOPIC,
        source,
    })?;
    if envelope.schema_version == 0 || envelope.schema_version > T::SCHEMA_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            topic: T::TOPIC,
            found: envelope.schema_version,
            supported: T::SCHEMA_VERSION,
        });
    }
    Ok(envelope)
}

/// The JSON Schema (draft 2020-12) of topic `T`'s records, as checked in
/// under `ingest/schemas/<topic>.schema.json`.
pub fn schema_of<T: TopicEvent>() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Envelope<T>);
    schema.insert(
        "$id".into(),
        format!("urn:reelflow:schema:{}:v{}", T::TOPIC, T::SCHEMA_VERSION).into(),
    );
    schema.insert("title".into(), format!("{} event", T::TOPIC).into());
    schema.to_value()
}
