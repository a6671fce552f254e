//! The checked-in JSON Schemas under `ingest/schemas/` are the contract other
//! languages build against. This test keeps them equal to what the Rust
//! types generate, and checks that an example of every event variant
//! round-trips through JSON and validates against the checked-in file, and
//! that malformed records are rejected by both the schema and the decoder.
//!
//! After changing an event type, regenerate with
//! `REELFLOW_BLESS=1 cargo test -p reelflow-ingest --test event_schemas`.

use std::path::PathBuf;

use reelflow_ingest::events::{
    CatalogEvent, Checksum, ChecksumAlgorithm, DecodeError, Envelope, PlaybackEvent, PlaybackKind, ProcessingEvent,
    Rendition, TopicEvent, UploadEvent, VideoMeta, Visibility, decode, schema_of,
};
use serde_json::json;
use uuid::Uuid;

fn schema_path(topic: &str) -> PathBuf {
    // As `cargo test` gives it when it runs the test: the path compiled in
    // is where the binary was built, which a shared build cache can hand
    // to another checkout.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("schemas")
        .join(format!("{topic}.schema.json"))
}

/// Compares (or, when blessing, writes) the checked-in schema of `T` and
/// returns a validator built from the checked-in file.
fn checked_in_schema<T: TopicEvent>() -> jsonschema::Validator {
    let path = schema_path(T::TOPIC);
    let generated = serde_json::to_string_pretty(&schema_of::<T>()).expect("schema serialises") + "\n";
    if std::env::var_os("REELFLOW_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("schemas dir")).expect("create schemas dir");
        std::fs::write(&path, &generated).expect("write schema");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(
        on_disk,
        generated,
        "{} is out of date with the Rust types; run REELFLOW_BLESS=1 cargo test -p reelflow-ingest --test event_schemas",
        path.display()
    );
    let schema: serde_json::Value = serde_json::from_str(&on_disk).expect("schema is JSON");
    // Formats (uuid, date-time) are asserted, not just annotations: a
    // consumer in another language should check them too.
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid JSON Schema: {e}", path.display()))
}

fn check_examples<T: TopicEvent + PartialEq + std::fmt::Debug>(examples: Vec<T>) {
    let validator = checked_in_schema::<T>();
    for event in examples {
        let envelope = Envelope::new(event);
        let bytes = envelope.to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} example does not validate: {errors:?}\n{value:#}",
            T::TOPIC
        );
        assert_eq!(value["schema_version"], json!(T::SCHEMA_VERSION));
        let back = decode::<T>(&bytes).expect("decodes");
        assert_eq!(back, envelope, "round trip of {}", T::TOPIC);
    }
}

fn meta() -> VideoMeta {
    VideoMeta {
        owner_id: Uuid::now_v7(),
        title: "Sunset over the bay".into(),
        description: "Filmed on a phone.".into(),
        genre: Some("travel".into()),
        language: Some("en".into()),
        visibility: Visibility::Public,
        tags: vec!["sunset".into(), "sea".into()],
    }
}

#[test]
fn catalog_events_match_their_schema() {
    let video_id = Uuid::now_v7();
    check_examples(vec![
        CatalogEvent::VideoCreated {
            video_id,
            video: meta(),
        },
        CatalogEvent::VideoUpdated {
            video_id,
            video: VideoMeta {
                visibility: Visibility::Private,
                genre: None,
                ..meta()
            },
        },
        CatalogEvent::VideoDeleted {
            video_id,
            owner_id: Uuid::now_v7(),
        },
    ]);
}

#[test]
fn upload_events_match_their_schema() {
    check_examples(vec![
        UploadEvent::UploadCompleted {
            video_id: Uuid::now_v7(),
            upload_id: Uuid::now_v7(),
            owner_id: Uuid::now_v7(),
            object_key: "videos/x/source".into(),
            size_bytes: 123_456_789,
            checksum: Some(Checksum {
                algorithm: ChecksumAlgorithm::Sha256,
                hex: "ab".repeat(32),
            }),
            file_name: Some("clip.mp4".into()),
            content_type: Some("video/mp4".into()),
        },
        UploadEvent::UploadCompleted {
            video_id: Uuid::now_v7(),
            upload_id: Uuid::now_v7(),
            owner_id: Uuid::now_v7(),
            object_key: "videos/y/source".into(),
            size_bytes: 1,
            checksum: None,
            file_name: None,
            content_type: None,
        },
    ]);
}

#[test]
fn processing_events_match_their_schema() {
    let video_id = Uuid::now_v7();
    check_examples(vec![
        ProcessingEvent::Queued { video_id },
        ProcessingEvent::Probing { video_id },
        ProcessingEvent::Transcoding {
            video_id,
            percent: 42.5,
        },
        ProcessingEvent::Ready {
            video_id,
            renditions: vec![
                Rendition {
                    name: "720p".into(),
                    width: 1280,
                    height: 720,
                    bandwidth_bps: 3_000_000,
                },
                Rendition {
                    name: "360p".into(),
                    width: 640,
                    height: 360,
                    bandwidth_bps: 800_000,
                },
            ],
            duration_s: 12.04,
            poster_key: Some("videos/x/poster.jpg".into()),
            storyboard_key: None,
            output_bytes: 9_000_000,
            first_playable_s: Some(3.5),
        },
        ProcessingEvent::Failed {
            video_id,
            reason: "not a media file".into(),
        },
    ]);
}

#[test]
fn playback_events_match_their_schema() {
    let kinds = vec![
        PlaybackKind::SessionStart {
            player: Some("hls.js".into()),
        },
        PlaybackKind::FirstFrame { startup_ms: 840 },
        PlaybackKind::Heartbeat {
            position_s: 10.0,
            played_ms: 10_000,
            rendition: Some("720p".into()),
            bitrate_kbps: Some(3000),
        },
        PlaybackKind::Pause { position_s: 11.5 },
        PlaybackKind::Seek {
            from_s: 11.5,
            to_s: 60.0,
        },
        PlaybackKind::RebufferStart { position_s: 60.0 },
        PlaybackKind::RebufferEnd { duration_ms: 1200 },
        PlaybackKind::RenditionChange {
            from: Some("720p".into()),
            to: "360p".into(),
            bitrate_kbps: Some(800),
        },
        PlaybackKind::Error {
            code: "networkError".into(),
            message: "fragLoadError".into(),
            fatal: true,
        },
        PlaybackKind::End { position_s: 61.0 },
    ];
    let session_id = Uuid::now_v7();
    let video_id = Uuid::now_v7();
    check_examples(
        kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| PlaybackEvent {
                session_id,
                video_id,
                user_id: (i % 2 == 0).then(Uuid::now_v7),
                kind,
            })
            .collect(),
    );
}

#[test]
fn malformed_records_are_rejected_by_schema_and_decoder() {
    let validator = checked_in_schema::<PlaybackEvent>();
    let session = Uuid::now_v7().to_string();
    let bad = [
        // not JSON at all
        None,
        // unknown type
        Some(
            json!({"schema_version": 1, "event_id": session, "occurred_at": "2026-01-01T00:00:00Z",
            "session_id": session, "video_id": session, "type": "teleport"}),
        ),
        // missing a required field of its type
        Some(
            json!({"schema_version": 1, "event_id": session, "occurred_at": "2026-01-01T00:00:00Z",
            "session_id": session, "video_id": session, "type": "first_frame"}),
        ),
        // wrong field type
        Some(
            json!({"schema_version": 1, "event_id": session, "occurred_at": "2026-01-01T00:00:00Z",
            "session_id": "not-a-uuid", "video_id": session, "type": "pause", "position_s": 1.0}),
        ),
    ];
    for doc in bad {
        let bytes = match &doc {
            Some(v) => {
                assert!(!validator.is_valid(v), "schema accepted {v}");
                serde_json::to_vec(v).expect("json")
            }
            None => b"\x00\xffnot json".to_vec(),
        };
        assert!(
            matches!(decode::<PlaybackEvent>(&bytes), Err(DecodeError::Malformed { .. })),
            "decoder accepted {doc:?}"
        );
    }

    // A record from a newer producer is refused with the versions named.
    let mut future = serde_json::to_value(Envelope::new(PlaybackEvent {
        session_id: Uuid::now_v7(),
        video_id: Uuid::now_v7(),
        user_id: None,
        kind: PlaybackKind::End { position_s: 1.0 },
    }))
    .expect("json");
    future["schema_version"] = json!(99);
    let err = decode::<PlaybackEvent>(&serde_json::to_vec(&future).expect("json")).expect_err("newer version");
    assert_eq!(
        err.to_string(),
        "reelflow.playback event has schema version 99, this build reads up to 1"
    );
}
