//! Events as the dataflows hold them: decoded from the log's JSON once, at
//! the source, into small ordered values.
//!
//! Every fact carries its [`Order`] (the producer's `occurred_at`, then the
//! event id): folds over an entity's events sort by it, so an event that
//! reaches the log late still lands in its place, and a duplicate (the same
//! event id appended twice, as at-least-once producers do) is the same value
//! and counts once. Playhead positions become whole milliseconds here, so no
//! float is ever summed inside a dataflow.

use reelflow_ingest::events::{
    self, CatalogEvent, Envelope, PlaybackEvent, PlaybackKind, ProcessingEvent, TopicEvent, UploadEvent,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::datum::F64;

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
fn ms(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1000.0).round() as u64
    } else {
        0
    }
}

/// Decodes one record's value from `topic`; `Err` says why it is malformed.
pub fn decode(topic: &str, value: &[u8]) -> Result<Fact, String> {
    let err = |e: events::DecodeError| e.to_string();
    Ok(match topic {
        CatalogEvent::TOPIC => {
            let e = events::decode::<CatalogEvent>(value).map_err(err)?;
            let order = Order::of(&e);
            let (video_id, entry) = match e.event {
                CatalogEvent::VideoCreated { video_id, video } | CatalogEvent::VideoUpdated { video_id, video } => (
                    video_id,
                    Some(CatalogEntry {
                        owner_id: video.owner_id,
                        genre: video.genre,
                    }),
                ),
                CatalogEvent::VideoDeleted { video_id, .. } => (video_id, None),
            };
            Fact::Catalog(CatalogFact { video_id, order, entry })
        }
        UploadEvent::TOPIC => {
            let e = events::decode::<UploadEvent>(value).map_err(err)?;
            let order = Order::of(&e);
            let UploadEvent::UploadCompleted {
                video_id, size_bytes, ..
            } = e.event;
            Fact::Media(MediaFact {
                video_id,
                order,
                change: MediaChange::Uploaded { size_bytes },
            })
        }
        ProcessingEvent::TOPIC => {
            let e = events::decode::<ProcessingEvent>(value).map_err(err)?;
            let order = Order::of(&e);
            let video_id = e.event.video_id();
            let change = match e.event {
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
            Fact::Media(MediaFact {
                video_id,
                order,
                change,
            })
        }
        PlaybackEvent::TOPIC => {
            if let Some(fact) = fast_playback(value) {
                return Ok(Fact::Playback(fact));
            }
            Fact::Playback(from_playback(events::decode::<PlaybackEvent>(value).map_err(err)?))
        }
        other => return Err(format!("topic {other:?} is not one the dataflows read")),
    })
}

/// A player event as the schema's own types read it.
fn from_playback(e: Envelope<PlaybackEvent>) -> PlaybackFact {
    let order = Order::of(&e);
    let beacon = match e.event.kind {
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
        session_id: e.event.session_id,
        video_id: e.event.video_id,
        user_id: e.event.user_id,
        order,
        beacon,
    }
}

/// A player event's fields, all at one level: what the common kinds carry.
/// Deserialised without serde's `flatten` (which buffers every field), this
/// reads a heartbeat several times faster than the schema's own types.
#[derive(serde::Deserialize)]
struct FlatPlayback<'a> {
    schema_version: u32,
    event_id: Uuid,
    occurred_at: chrono::DateTime<chrono::Utc>,
    session_id: Uuid,
    video_id: Uuid,
    #[serde(default)]
    user_id: Option<Uuid>,
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default, borrow)]
    player: Option<&'a str>,
    #[serde(default)]
    startup_ms: Option<u64>,
    #[serde(default)]
    position_s: Option<f64>,
    #[serde(default)]
    played_ms: Option<u64>,
    #[serde(default, borrow)]
    rendition: Option<&'a str>,
    #[serde(default)]
    bitrate_kbps: Option<u64>,
    #[serde(default)]
    from_s: Option<f64>,
    #[serde(default)]
    to_s: Option<f64>,
    #[serde(default)]
    duration_ms: Option<u64>,
}

/// The fast path for `reelflow.playback`: `Some` only when the record is
/// certainly valid and one of the common kinds; anything else (another
/// kind, a missing field, a string with escapes, a newer schema) goes
/// through [`events::decode`], which has the last word. A test checks both
/// agree on every generated record.
fn fast_playback(value: &[u8]) -> Option<PlaybackFact> {
    let f: FlatPlayback = serde_json::from_slice(value).ok()?;
    if f.schema_version == 0 || f.schema_version > PlaybackEvent::SCHEMA_VERSION {
        return None;
    }
    // Read only so that a value of the wrong type sends the record down
    // the schema decoder's path, as it would be read there.
    let _ = (f.player, f.rendition);
    let beacon = match f.kind {
        "session_start" => Beacon::Start,
        "first_frame" => Beacon::FirstFrame {
            startup_ms: f.startup_ms?,
        },
        "heartbeat" => Beacon::Heartbeat {
            position_ms: ms(f.position_s?),
            played_ms: f.played_ms?,
            bitrate_kbps: f.bitrate_kbps,
        },
        "pause" => Beacon::Pause {
            position_ms: ms(f.position_s?),
        },
        "seek" => {
            f.from_s?;
            Beacon::Seek { to_ms: ms(f.to_s?) }
        }
        "rebuffer_start" => Beacon::RebufferStart {
            position_ms: ms(f.position_s?),
        },
        "rebuffer_end" => Beacon::RebufferEnd {
            duration_ms: f.duration_ms?,
        },
        "end" => Beacon::End {
            position_ms: ms(f.position_s?),
        },
        _ => return None,
    };
    Some(PlaybackFact {
        session_id: f.session_id,
        video_id: f.video_id,
        user_id: f.user_id,
        order: Order {
            occurred_ms: f.occurred_at.timestamp_millis(),
            event_id: f.event_id,
        },
        beacon,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canonical decoder's reading of a playback record.
    fn canonical(value: &[u8]) -> Option<Fact> {
        events::decode::<PlaybackEvent>(value)
            .ok()
            .map(|e| Fact::Playback(from_playback(e)))
    }

    #[test]
    fn the_fast_path_agrees_with_the_schema_decoder() {
        let mut records: Vec<Vec<u8>> = Vec::new();
        for seed in 0..5 {
            for phase in crate::workload::workload(seed, 4).phases {
                records.extend(phase.into_iter().filter(|r| r.0 == PlaybackEvent::TOPIC).map(|r| r.2));
            }
        }
        records.extend(
            crate::traffic::Traffic::new(1, 100, 50)
                .playback(20_000)
                .into_iter()
                .map(|r| r.2),
        );
        let id = "00000000-0000-0000-0000-000000000001";
        let head = format!(
            r#""schema_version":1,"event_id":"{id}","occurred_at":"2026-01-01T00:00:00Z","session_id":"{id}","video_id":"{id}""#
        );
        for odd in [
            r#""type":"heartbeat","position_s":1.5,"played_ms":100,"rendition":"720\u0070""#,
            r#""type":"heartbeat","position_s":1.5"#,
            r#""type":"heartbeat","position_s":"x","played_ms":1"#,
            r#""type":"heartbeat","position_s":1,"played_ms":1.5"#,
            r#""type":"heartbeat","position_s":1,"played_ms":-1"#,
            r#""type":"seek","to_s":3"#,
            r#""type":"end","position_s":1,"user_id":null"#,
            r#""type":"end","position_s":1,"user_id":"nope""#,
            r#""type":"pause","position_s":2,"fatal":"yes""#,
            r#""type":"first_frame","startup_ms":12,"player":7"#,
            r#""type":"warp","position_s":1"#,
        ] {
            records.push(format!("{{{head},{odd}}}").into_bytes());
        }
        records.push(
            format!(r#"{{"schema_version":2,"event_id":"{id}","occurred_at":"2026-01-01T00:00:00Z","session_id":"{id}","video_id":"{id}","type":"end","position_s":1}}"#)
                .into_bytes(),
        );
        let mut fast = 0;
        for r in &records {
            let got = decode(PlaybackEvent::TOPIC, r).ok();
            assert_eq!(got, canonical(r), "{}", String::from_utf8_lossy(r));
            fast += usize::from(fast_playback(r).is_some());
        }
        assert!(
            fast > records.len() / 2,
            "the fast path took only {fast} of {}",
            records.len()
        );
    }
}
