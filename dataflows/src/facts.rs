//! Events as the dataflows hold them: decoded from the log's JSON once, at
//! the source, into small ordered values.
//!
//! Every fact carries its [`Order`] (the producer's `occurred_at`, then the
//! event id): folds over an entity's events sort by it, so an event that
//! reaches the log late still lands in its place, and a duplicate (the same
//! event id appended twice, as at-least-once producers do) counts once: a
//! catalog or media duplicate is the same value, and a session counts only
//! the first record of each place
//! ([`crate::definitions::SessionAccumulator`]). Playhead positions become
//! whole milliseconds here, so no float is ever summed inside a dataflow.

use reelflow_ingest::events::{
    self, CatalogEvent, Envelope, PlaybackEvent, PlaybackKind, ProcessingEvent, TopicEvent, UploadEvent,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::datum::F64;
use crate::time::Time;

mod fast;

/// Where an event sits among its entity's events: `occurred_at` in
/// milliseconds, then the event id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Order {
    /// When the producer saw it happen, ms since the epoch.
    pub occurred_ms: i64,
    /// The event's unique id.
    pub event_id: Uuid,
}

impl Order {
    fn of<T>(envelope: &Envelope<T>) -> Self {
        Self {
            occurred_ms: envelope.occurred_at.timestamp_millis(),
            event_id: envelope.event_id,
        }
    }
}

/// The catalog fields the views need.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// Owner account.
    pub owner_id: Uuid,
    /// Genre, if given.
    pub genre: Option<String>,
}

/// A catalog change: the entry after it, `None` once deleted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CatalogFact {
    /// The video.
    pub video_id: Uuid,
    /// Its place among the video's events.
    pub order: Order,
    /// The entry after the change; `None` when the video was deleted.
    pub entry: Option<CatalogEntry>,
}

/// What happened to a video's media: uploads and the processing pipeline.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MediaChange {
    /// The source object is stored.
    Uploaded {
        /// Its size.
        size_bytes: u64,
    },
    /// A transcoder took it.
    Queued,
    /// ffprobe is reading it.
    Probing,
    /// ffmpeg is encoding; share done, 0–100.
    Transcoding {
        /// Percent done.
        percent: F64,
    },
    /// Playable.
    Ready {
        /// Rendition names, highest first.
        renditions: Vec<String>,
        /// Duration of the source.
        duration_ms: u64,
        /// Bytes of all renditions.
        output_bytes: u64,
    },
    /// Given up.
    Failed {
        /// Why, for the owner.
        reason: String,
    },
}

/// One media event of a video.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MediaFact {
    /// The video.
    pub video_id: Uuid,
    /// Its place among the video's events.
    pub order: Order,
    /// What happened.
    pub change: MediaChange,
}

/// A player event, reduced to what the metrics use.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Beacon {
    /// Play was pressed: a view attempt.
    Start,
    /// First frame shown after `startup_ms`.
    FirstFrame {
        /// Play to first frame.
        startup_ms: u64,
    },
    /// Periodic progress.
    Heartbeat {
        /// Playhead.
        position_ms: u64,
        /// Content played since the previous heartbeat.
        played_ms: u64,
        /// Bitrate of the rendition playing.
        bitrate_kbps: Option<u64>,
    },
    /// Paused at a position.
    Pause {
        /// Playhead.
        position_ms: u64,
    },
    /// Jumped.
    Seek {
        /// Playhead after.
        to_ms: u64,
    },
    /// Stalled.
    RebufferStart {
        /// Playhead.
        position_ms: u64,
    },
    /// Resumed after a stall of `duration_ms`.
    RebufferEnd {
        /// Stall length.
        duration_ms: u64,
    },
    /// Switched rendition.
    RenditionChange,
    /// An error; `fatal` if playback stopped.
    Error {
        /// Whether it stopped playback.
        fatal: bool,
    },
    /// The session ended at a position.
    End {
        /// Playhead.
        position_ms: u64,
    },
}

/// One player event of one session.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PlaybackFact {
    /// The session.
    pub session_id: Uuid,
    /// The video played.
    pub video_id: Uuid,
    /// The signed-in viewer, if any.
    pub user_id: Option<Uuid>,
    /// Its place among the session's events.
    pub order: Order,
    /// What happened.
    pub beacon: Beacon,
    /// The record's exact stamp, where windows count from: the source may
    /// emit it at a coarser time while catching up (see [`crate::source`]).
    /// 0 until the source sets it.
    pub logged_at: Time,
}

/// A decoded record of any topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Fact {
    /// From `reelflow.catalog`.
    Catalog(CatalogFact),
    /// From `reelflow.uploads` or `reelflow.processing`.
    Media(MediaFact),
    /// From `reelflow.playback`.
    Playback(PlaybackFact),
}

/// Seconds (as players report them) to whole milliseconds; negative or
/// non-finite positions count as 0.
pub(crate) fn ms(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1000.0).round() as u64
    } else {
        0
    }
}

/// Decodes one record's value from `topic`; `Err` says why it is malformed.
pub fn decode(topic: &str, value: &[u8]) -> Result<Fact, String> {
    match fast::decode(topic, value) {
        Some(fact) => Ok(fact),
        None => canonical(topic, value),
    }
}

/// Decodes with the schema's own types, which have the last word on what
/// a record means and whether it is valid.
fn canonical(topic: &str, value: &[u8]) -> Result<Fact, String> {
    fn read<T: events::TopicEvent>(value: &[u8]) -> Result<(Order, T), String> {
        let e = events::decode::<T>(value).map_err(|e| e.to_string())?;
        Ok((Order::of(&e), e.event))
    }
    Ok(match topic {
        CatalogEvent::TOPIC => {
            let (order, event) = read(value)?;
            Fact::Catalog(from_catalog(order, event))
        }
        UploadEvent::TOPIC => {
            let (order, event) = read(value)?;
            Fact::Media(from_upload(order, event))
        }
        ProcessingEvent::TOPIC => {
            let (order, event) = read(value)?;
            Fact::Media(from_processing(order, event))
        }
        PlaybackEvent::TOPIC => {
            let (order, event) = read(value)?;
            Fact::Playback(from_playback(order, event))
        }
        other => return Err(format!("topic {other:?} is not one the dataflows read")),
    })
}

/// A catalog event as the views see it.
fn from_catalog(order: Order, event: CatalogEvent) -> CatalogFact {
    let (video_id, entry) = match event {
        CatalogEvent::VideoCreated { video_id, video } | CatalogEvent::VideoUpdated { video_id, video } => (
            video_id,
            Some(CatalogEntry {
                owner_id: video.owner_id,
                genre: video.genre,
            }),
        ),
        CatalogEvent::VideoDeleted { video_id, .. } => (video_id, None),
    };
    CatalogFact { video_id, order, entry }
}

/// A finished upload as the views see it.
fn from_upload(order: Order, event: UploadEvent) -> MediaFact {
    let UploadEvent::UploadCompleted {
        video_id, size_bytes, ..
    } = event;
    MediaFact {
        video_id,
        order,
        change: MediaChange::Uploaded { size_bytes },
    }
}

/// A processing event as the views see it.
fn from_processing(order: Order, event: ProcessingEvent) -> MediaFact {
    let video_id = event.video_id();
    let change = match event {
        ProcessingEvent::Queued { .. } => MediaChange::Queued,
        ProcessingEvent::Probing { .. } => MediaChange::Probing,
        ProcessingEvent::Transcoding { percent, .. } => MediaChange::Transcoding {
            percent: F64(if percent.is_finite() {
                percent.clamp(0.0, 100.0)
            } else {
                0.0
            }),
        },
        ProcessingEvent::Ready {
            renditions,
            duration_s,
            output_bytes,
            ..
        } => MediaChange::Ready {
            renditions: renditions.into_iter().map(|r| r.name).collect(),
            duration_ms: ms(duration_s),
            output_bytes,
        },
        ProcessingEvent::Failed { reason, .. } => MediaChange::Failed { reason },
    };
    MediaFact {
        video_id,
        order,
        change,
    }
}

/// A player event as the schema's own types read it.
fn from_playback(order: Order, event: PlaybackEvent) -> PlaybackFact {
    let beacon = match event.kind {
        PlaybackKind::SessionStart { .. } => Beacon::Start,
        PlaybackKind::FirstFrame { startup_ms } => Beacon::FirstFrame { startup_ms },
        PlaybackKind::Heartbeat {
            position_s,
            played_ms,
            bitrate_kbps,
            ..
        } => Beacon::Heartbeat {
            position_ms: ms(position_s),
            played_ms,
            bitrate_kbps,
        },
        PlaybackKind::Pause { position_s } => Beacon::Pause {
            position_ms: ms(position_s),
        },
        PlaybackKind::Seek { to_s, .. } => Beacon::Seek { to_ms: ms(to_s) },
        PlaybackKind::RebufferStart { position_s } => Beacon::RebufferStart {
            position_ms: ms(position_s),
        },
        PlaybackKind::RebufferEnd { duration_ms } => Beacon::RebufferEnd { duration_ms },
        PlaybackKind::RenditionChange { .. } => Beacon::RenditionChange,
        PlaybackKind::Error { fatal, .. } => Beacon::Error { fatal },
        PlaybackKind::End { position_s } => Beacon::End {
            position_ms: ms(position_s),
        },
    };
    PlaybackFact {
        session_id: event.session_id,
        video_id: event.video_id,
        user_id: event.user_id,
        order,
        beacon,
        logged_at: 0,
    }
}
