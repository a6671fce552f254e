//! Fast paths for decoding records: each topic's fields read at one level.
//!
//! The schema's types put the envelope and an internally tagged event in
//! one flattened object, which serde can only read by buffering every field
//! first (`flatten` and `tag` both go through its `Content` tree). Here
//! each topic's fields, all variants together, are read straight into one
//! flat struct (strings borrowed where the views do not keep them), and the
//! variant is picked by its `type` afterwards: several times faster. The
//! envelope's fields are repeated in every struct rather than flattened
//! in, since `flatten` is the slow path this avoids. The JSON is read by
//! sonic-rs, with SIMD: with serde_json, reading it was half of the
//! source's time, and a tenth of the dataflows'. `benches/decode.rs`
//! measures this decoder against the schema's.
//!
//! A fast path answers `Some` only when the record is certainly valid and
//! means what it would mean to the schema's types; anything else (another
//! kind, a missing field, a string with escapes, a newer schema) gets
//! `None` and goes through the schema's decoder, which has the last word.
//! The tests check both agree on every generated record and on odd ones,
//! odd JSON included.

use chrono::{DateTime, NaiveDate, Utc};
use reelflow_ingest::events::{
    CatalogEvent, Checksum, PlaybackEvent, ProcessingEvent, Rendition, TopicEvent, UploadEvent, VideoMeta,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{Beacon, Fact, Order, PlaybackFact, from_catalog, from_processing, from_upload, ms};

/// The fact `value` holds, if a fast path can read it.
pub(super) fn decode(topic: &str, value: &[u8]) -> Option<Fact> {
    match topic {
        PlaybackEvent::TOPIC => playback(value).map(Fact::Playback),
        CatalogEvent::TOPIC => catalog(value),
        UploadEvent::TOPIC => upload(value),
        ProcessingEvent::TOPIC => processing(value),
        _ => None,
    }
}

/// The envelope's fields, as every flat struct reads them.
fn order<T: TopicEvent>(schema_version: u32, event_id: Uuid, occurred_at: &str) -> Option<Order> {
    if schema_version == 0 || schema_version > T::SCHEMA_VERSION {
        return None;
    }
    Some(Order {
        occurred_ms: occurred_ms(occurred_at)?,
        event_id,
    })
}

/// `occurred_at` in milliseconds since the epoch. The form producers write
/// (`2026-01-02T03:04:05.678Z`, any number of fraction digits) is read
/// here; any other RFC 3339 form as chrono reads it, which is what the
/// schema's `DateTime<Utc>` does.
fn occurred_ms(text: &str) -> Option<i64> {
    utc_ms(text).or_else(|| text.parse::<DateTime<Utc>>().ok().map(|t| t.timestamp_millis()))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, or `None` for anything else.
fn utc_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |from: usize, to: usize| -> Option<u32> {
        b.get(from..to)?
            .iter()
            .try_fold(0u32, |n, c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let mut rest = &b[19..];
    let mut millis = 0;
    if let Some((b'.', fraction)) = rest.split_first() {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        // The first three digits, as if padded with zeros.
        millis = fraction[..n]
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(3)
            .fold(0, |m, c| m * 10 + i64::from(c - b'0'));
        rest = &fraction[n..];
    }
    if rest != b"Z" || second > 59 {
        return None;
    }
    let at = NaiveDate::from_ymd_opt(year as i32, month, day)?.and_hms_opt(hour, minute, second)?;
    Some(at.and_utc().timestamp() * 1000 + millis)
}

/// A player event's fields, all at one level: what the common kinds carry.
#[derive(Deserialize)]
struct FlatPlayback<'a> {
    schema_version: u32,
    event_id: Uuid,
    #[serde(borrow)]
    occurred_at: &'a str,
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

/// `reelflow.playback`, for the common kinds.
fn playback(value: &[u8]) -> Option<PlaybackFact> {
    let f: FlatPlayback = sonic_rs::from_slice(value).ok()?;
    let order = order::<PlaybackEvent>(f.schema_version, f.event_id, f.occurred_at)?;
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
        order,
        beacon,
        logged_at: 0,
    })
}

/// A catalog event's fields, all at one level.
#[derive(Deserialize)]
struct FlatCatalog<'a> {
    schema_version: u32,
    event_id: Uuid,
    #[serde(borrow)]
    occurred_at: &'a str,
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    video_id: Uuid,
    #[serde(default)]
    video: Option<VideoMeta>,
    #[serde(default)]
    owner_id: Option<Uuid>,
}

/// `reelflow.catalog`.
fn catalog(value: &[u8]) -> Option<Fact> {
    let f: FlatCatalog = sonic_rs::from_slice(value).ok()?;
    let order = order::<CatalogEvent>(f.schema_version, f.event_id, f.occurred_at)?;
    let video_id = f.video_id;
    let event = match f.kind {
        "video_created" => CatalogEvent::VideoCreated {
            video_id,
            video: f.video?,
        },
        "video_updated" => CatalogEvent::VideoUpdated {
            video_id,
            video: f.video?,
        },
        "video_deleted" => CatalogEvent::VideoDeleted {
            video_id,
            owner_id: f.owner_id?,
        },
        _ => return None,
    };
    Some(Fact::Catalog(from_catalog(order, event)))
}

/// An upload event's fields, all at one level.
#[derive(Deserialize)]
struct FlatUpload<'a> {
    schema_version: u32,
    event_id: Uuid,
    #[serde(borrow)]
    occurred_at: &'a str,
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    video_id: Uuid,
    upload_id: Uuid,
    owner_id: Uuid,
    object_key: String,
    size_bytes: u64,
    #[serde(default)]
    checksum: Option<Checksum>,
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
}

/// `reelflow.uploads`.
fn upload(value: &[u8]) -> Option<Fact> {
    let f: FlatUpload = sonic_rs::from_slice(value).ok()?;
    let order = order::<UploadEvent>(f.schema_version, f.event_id, f.occurred_at)?;
    if f.kind != "upload_completed" {
        return None;
    }
    let event = UploadEvent::UploadCompleted {
        video_id: f.video_id,
        upload_id: f.upload_id,
        owner_id: f.owner_id,
        object_key: f.object_key,
        size_bytes: f.size_bytes,
        checksum: f.checksum,
        file_name: f.file_name,
        content_type: f.content_type,
    };
    Some(Fact::Media(from_upload(order, event)))
}

/// A processing event's fields, all variants at one level. A field only
/// some variants have is optional here and required below; one that the
/// schema defaults (`output_bytes`) is defaulted the same way, so a `null`
/// fails here as it fails there.
#[derive(Deserialize)]
struct FlatProcessing<'a> {
    schema_version: u32,
    event_id: Uuid,
    #[serde(borrow)]
    occurred_at: &'a str,
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    video_id: Uuid,
    #[serde(default)]
    percent: Option<f64>,
    #[serde(default)]
    renditions: Option<Vec<Rendition>>,
    #[serde(default)]
    duration_s: Option<f64>,
    #[serde(default)]
    poster_key: Option<String>,
    #[serde(default)]
    storyboard_key: Option<String>,
    #[serde(default)]
    output_bytes: u64,
    #[serde(default)]
    first_playable_s: Option<f64>,
    #[serde(default)]
    reason: Option<String>,
}

/// `reelflow.processing`.
fn processing(value: &[u8]) -> Option<Fact> {
    let f: FlatProcessing = sonic_rs::from_slice(value).ok()?;
    let order = order::<ProcessingEvent>(f.schema_version, f.event_id, f.occurred_at)?;
    let video_id = f.video_id;
    let event = match f.kind {
        "queued" => ProcessingEvent::Queued { video_id },
        "probing" => ProcessingEvent::Probing { video_id },
        "transcoding" => ProcessingEvent::Transcoding {
            video_id,
            percent: f.percent?,
        },
        "ready" => ProcessingEvent::Ready {
            video_id,
            renditions: f.renditions?,
            duration_s: f.duration_s?,
            poster_key: f.poster_key,
            storyboard_key: f.storyboard_key,
            output_bytes: f.output_bytes,
            first_playable_s: f.first_playable_s,
        },
        "failed" => ProcessingEvent::Failed {
            video_id,
            reason: f.reason?,
        },
        _ => return None,
    };
    Some(Fact::Media(from_processing(order, event)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::canonical;

    #[test]
    fn timestamps_read_as_chrono_reads_them() {
        for text in [
            "2026-01-02T03:04:05Z",
            "2026-01-02T03:04:05.6Z",
            "2026-01-02T03:04:05.678Z",
            "2026-01-02T03:04:05.678999999999Z",
            "1969-12-31T23:59:59.999Z",
            "0001-01-01T00:00:00Z",
            "2024-02-29T23:59:59.5Z",
        ] {
            let chrono = text.parse::<DateTime<Utc>>().unwrap().timestamp_millis();
            assert_eq!(utc_ms(text), Some(chrono), "{text}");
        }
        // Not the common form: left to chrono, whatever it makes of them.
        for text in [
            "2026-01-02T03:04:05+02:00",
            "2026-01-02 03:04:05Z",
            "2026-01-02t03:04:05z",
            "2026-01-02T03:04:05.Z",
            "2026-01-02T03:04:60Z",
            "2026-01-02T03:04:05",
            "2026-02-30T03:04:05Z",
            "2026-01-02T24:00:00Z",
            "2026-1-02T03:04:05Z",
            "+2026-01-02T03:04:05Z",
        ] {
            assert_eq!(utc_ms(text), None, "{text}");
            assert_eq!(
                occurred_ms(text),
                text.parse::<DateTime<Utc>>().ok().map(|t| t.timestamp_millis()),
                "{text}"
            );
        }
    }

    /// Records of every topic: generated ones, and ones made odd on
    /// purpose by `odd` field lists after a valid envelope.
    fn records() -> Vec<(&'static str, Vec<u8>)> {
        let mut records: Vec<(&'static str, Vec<u8>)> = Vec::new();
        for seed in 0..5 {
            for phase in crate::workload::workload(seed, 4).phases {
                records.extend(phase.into_iter().map(|r| (r.0, r.2)));
            }
        }
        let mut traffic = crate::traffic::Traffic::new(1, 100, 50);
        records.extend(traffic.catalog().into_iter().map(|r| (r.0, r.2)));
        records.extend(traffic.playback(20_000).into_iter().map(|r| (r.0, r.2)));
        let id = "00000000-0000-0000-0000-000000000001";
        let envelope = |at: &str| format!(r#""schema_version":1,"event_id":"{id}","occurred_at":"{at}""#);
        let head = envelope("2026-01-01T00:00:00Z");
        // Per topic: a valid event's fields, then odd ones.
        let odd: [(&str, &str, &[&str]); 4] = [
            (
                PlaybackEvent::TOPIC,
                r#""type":"end","position_s":1"#,
                &[
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
                ],
            ),
            (
                CatalogEvent::TOPIC,
                r#""type":"video_deleted","owner_id":"00000000-0000-0000-0000-000000000002""#,
                &[
                    r#""type":"video_deleted""#,
                    r#""type":"video_deleted","owner_id":null"#,
                    r#""type":"video_created","owner_id":"00000000-0000-0000-0000-000000000002""#,
                    r#""type":"video_created","video":null"#,
                    r#""type":"video_created","video":{"owner_id":"00000000-0000-0000-0000-000000000002","title":"t","visibility":"public","description":null}"#,
                    r#""type":"video_created","video":{"owner_id":"00000000-0000-0000-0000-000000000002","title":"t","visibility":"secret"}"#,
                    r#""type":"video_updated","video":{"owner_id":"00000000-0000-0000-0000-000000000002","title":"\"q\"","visibility":"private","genre":"a\nb","tags":["x"]}"#,
                    r#""type":"video_deleted","owner_id":"00000000-0000-0000-0000-000000000002","video":7"#,
                    r#""type":"video_renamed","owner_id":"00000000-0000-0000-0000-000000000002""#,
                ],
            ),
            (
                UploadEvent::TOPIC,
                r#""type":"upload_completed","upload_id":"00000000-0000-0000-0000-000000000002","owner_id":"00000000-0000-0000-0000-000000000002","object_key":"k","size_bytes":5"#,
                &[
                    r#""type":"upload_completed","upload_id":"00000000-0000-0000-0000-000000000002","owner_id":"00000000-0000-0000-0000-000000000002","object_key":"k","size_bytes":5"#,
                    r#""type":"upload_completed","upload_id":"00000000-0000-0000-0000-000000000002","owner_id":"00000000-0000-0000-0000-000000000002","object_key":"k","size_bytes":-5"#,
                    r#""type":"upload_completed","upload_id":"00000000-0000-0000-0000-000000000002","owner_id":"00000000-0000-0000-0000-000000000002","object_key":"k","size_bytes":5,"checksum":{"algorithm":"md5","hex":"00"}"#,
                    r#""type":"upload_completed","upload_id":"00000000-0000-0000-0000-000000000002","owner_id":"00000000-0000-0000-0000-000000000002","size_bytes":5"#,
                    r#""type":"queued""#,
                ],
            ),
            (
                ProcessingEvent::TOPIC,
                r#""type":"queued""#,
                &[
                    r#""type":"queued""#,
                    r#""type":"queued","percent":"x""#,
                    r#""type":"transcoding","percent":140"#,
                    r#""type":"transcoding""#,
                    r#""type":"ready","renditions":[],"duration_s":3.5"#,
                    r#""type":"ready","renditions":[],"duration_s":3.5,"output_bytes":null"#,
                    r#""type":"ready","renditions":[{"name":"720p","width":1280,"height":720}],"duration_s":3.5"#,
                    r#""type":"ready","renditions":[{"name":"720p","width":1280,"height":720,"bandwidth_bps":1}],"duration_s":3.5,"output_bytes":9"#,
                    r#""type":"failed""#,
                    r#""type":"failed","reason":"ffmpeg \"exited\"""#,
                    r#""type":"upload_completed","size_bytes":5"#,
                ],
            ),
        ];
        for (topic, valid, fields) in odd {
            for field in fields {
                records.push((
                    topic,
                    format!(r#"{{{head},"video_id":"{id}","session_id":"{id}",{field}}}"#).into_bytes(),
                ));
            }
            let end = valid;
            for at in ["2026-01-01T00:00:00+01:00", "2026-01-01T00:00:00.1234Z", "yesterday"] {
                records.push((
                    topic,
                    format!(r#"{{{},"video_id":"{id}","session_id":"{id}",{end}}}"#, envelope(at)).into_bytes(),
                ));
            }
            records.push((
                topic,
                format!(r#"{{"schema_version":2,"event_id":"{id}","occurred_at":"2026-01-01T00:00:00Z","video_id":"{id}","session_id":"{id}",{end}}}"#).into_bytes(),
            ));
        }
        // Odd JSON, where a reader could be more lenient than the schema's.
        let body = format!(r#"{head},"video_id":"{id}","session_id":"{id}""#);
        for text in [
            format!(r#"{{{body},"type":"end","position_s":1,"position_s":2}}"#),
            format!(r#"{{{body},"type":"end","position_s":1}} x"#),
            format!(r#"{{{body},"type":"end","position_s":1,}}"#),
            format!(r#"{{{body},"type":"end","position_s":01}}"#),
            format!(r#"{{{body},"type":"end","position_s":1e400}}"#),
            format!(r#"{{{body},"type":"end","position_s":NaN}}"#),
            format!(r#"{{{body},"type":"end","position_s":-0}}"#),
            format!(r#"{{{body},"type":"end","position_s":1 /* c */}}"#),
            format!(r#"{{{body},"type":"heartbeat","position_s":1,"played_ms":1.0}}"#),
            format!("{{{body},\"type\":\"heartbeat\",\"position_s\":1,\"played_ms\":1,\"rendition\":\"a\nb\"}}"),
        ] {
            records.push((PlaybackEvent::TOPIC, text.into_bytes()));
        }
        let mut bad_utf8 =
            format!(r#"{{{body},"type":"heartbeat","position_s":1,"played_ms":1,"rendition":"#).into_bytes();
        bad_utf8.extend_from_slice(b"\"\xff\xfe\"}");
        records.push((PlaybackEvent::TOPIC, bad_utf8));
        records
    }

    #[test]
    fn the_fast_paths_agree_with_the_schema_decoder() {
        let records = records();
        let mut fast = std::collections::BTreeMap::<&str, (usize, usize)>::new();
        for (topic, value) in &records {
            let got = decode(topic, value);
            if let Some(fact) = &got {
                assert_eq!(
                    Ok(fact),
                    canonical(topic, value).as_ref(),
                    "{}",
                    String::from_utf8_lossy(value)
                );
            }
            let (taken, all) = fast.entry(topic).or_default();
            *taken += usize::from(got.is_some());
            *all += 1;
        }
        // Most records of every topic take the fast path.
        assert_eq!(fast.len(), 4, "{fast:?}");
        for (topic, (taken, all)) in fast {
            assert!(taken > all / 2, "{topic}: the fast path took only {taken} of {all}");
        }
    }
}
