//! The transcoding pipeline on real ffmpeg: generated clips of several
//! shapes end `ready` with a ladder ffprobe reads back, or `failed` with a
//! reason a person can act on; progress is reported in order on
//! `reelflow.processing`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reelflow_ingest::events::{ProcessingEvent, TopicEvent, decode};
use reelflow_ingest::log::{EmbeddedLog, EmbeddedOptions};
use reelflow_ingest::storage::{LocalStore, ObjectKey};
use reelflow_ingest::transcode::test_pattern::TestPattern;
use reelflow_ingest::transcode::{JobLimits, transcode};
use reelflow_ingest::{EventLog, ObjectStore, PartitionReader};
use uuid::Uuid;

/// Makes a clip with ffmpeg's test sources.
fn clip(dir: &Path, name: &str, video: Option<&'static str>, audio: bool, seconds: u32) -> PathBuf {
    let path = dir.join(name);
    TestPattern::new(video, audio, seconds)
        .write(&path)
        .expect("generating a clip");
    path
}

struct Run {
    events: Vec<ProcessingEvent>,
    store: LocalStore,
    video_id: Uuid,
    _dir: tempfile::TempDir,
}

async fn run(source: &Path) -> Run {
    run_in(tempfile::tempdir().expect("tempdir"), source).await
}

/// Transcodes `source` with the objects in `dir/objects` and the job in
/// `dir/work`.
async fn run_in(dir: tempfile::TempDir, source: &Path) -> Run {
    let store = LocalStore::open(dir.path().join("objects")).expect("store");
    let log = EmbeddedLog::open(dir.path().join("log"), EmbeddedOptions::default()).expect("log");
    log.create_topic(ProcessingEvent::TOPIC, 1).await.expect("topic");
    let video_id = Uuid::now_v7();
    let key = ObjectKey::parse(&format!("videos/{video_id}/source")).expect("key");
    store
        .put_stream(&key, tokio::fs::File::open(source).await.expect("clip"))
        .await
        .expect("upload");
    let limits = JobLimits {
        timeout: Duration::from_secs(300),
        ..JobLimits::default()
    };
    transcode(
        &log,
        &store,
        video_id,
        &key,
        &dir.path().join("work"),
        limits,
        chrono::Utc::now(),
    )
    .await;
    let mut reader = log.reader(ProcessingEvent::TOPIC, &[(0, 0)]).await.expect("reader");
    let mut events = Vec::new();
    loop {
        let got = reader.poll(1000, Duration::from_millis(200)).await.expect("poll");
        if got.is_empty() {
            break;
        }
        events.extend(
            got.iter()
                .map(|r| decode::<ProcessingEvent>(&r.value).expect("event").event),
        );
    }
    Run {
        events,
        store,
        video_id,
        _dir: dir,
    }
}

/// (width, height, codec) of the first video stream ffprobe finds.
fn ffprobe_video(path: &Path) -> (u32, u32, String) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    // A playlist shows its stream once per program: the first line will do.
    let f: Vec<&str> = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .split(',')
        .collect();
    assert_eq!(
        f.len(),
        3,
        "ffprobe of {}: {text} {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    (f[1].parse().expect("w"), f[2].parse().expect("h"), f[0].to_string())
}

fn ready(events: &[ProcessingEvent]) -> &ProcessingEvent {
    let last = events.last().expect("events");
    assert!(matches!(last, ProcessingEvent::Ready { .. }), "{events:?}");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_720p_clip_becomes_a_playable_ladder() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Long enough that segments are finished well before the pass is.
    let r = run(&clip(dir.path(), "hd.mp4", Some("1280x720"), true, 12)).await;
    assert!(matches!(r.events[0], ProcessingEvent::Probing { .. }), "{:?}", r.events);
    assert!(matches!(r.events[1], ProcessingEvent::Transcoding { percent, .. } if percent == 0.0));
    let ProcessingEvent::Ready {
        renditions,
        duration_s,
        poster_key,
        storyboard_key,
        output_bytes,
        first_playable_s,
        ..
    } = ready(&r.events)
    else {
        unreachable!()
    };
    let names: Vec<&str> = renditions.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["720p", "480p", "360p", "240p"], "never upscaled");
    assert!((duration_s - 12.0).abs() < 0.2, "{duration_s}");
    assert!(*output_bytes > 0);
    // ffmpeg's progress became percentages along the way.
    let progress: Vec<f64> = r
        .events
        .iter()
        .filter_map(|e| match e {
            ProcessingEvent::Transcoding { percent, .. } => Some(*percent),
            _ => None,
        })
        .collect();
    assert!(progress.iter().any(|&p| p > 0.0 && p < 100.0), "{progress:?}");
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress goes forward: {progress:?}"
    );
    // The master playlist went out while ffmpeg still ran.
    let playable = first_playable_s.expect("playable before the pass ended");
    assert!(playable > 0.0, "{playable}");
    let root = r.store.root().join(format!("videos/{}", r.video_id));
    for rendition in renditions {
        let (w, h, codec) = ffprobe_video(&root.join(format!("hls/{}/index.m3u8", rendition.name)));
        assert_eq!(
            (w, h, codec.as_str()),
            (rendition.width, rendition.height, "h264"),
            "{}",
            rendition.name
        );
        let playlist =
            std::fs::read_to_string(root.join(format!("hls/{}/index.m3u8", rendition.name))).expect("playlist");
        assert!(
            playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD") && playlist.contains("#EXT-X-ENDLIST"),
            "{playlist}"
        );
        assert!(playlist.contains("#EXT-X-MAP:URI="), "fMP4 init segment: {playlist}");
    }
    let master = std::fs::read_to_string(root.join("hls/master.m3u8")).expect("master");
    assert_eq!(master.matches("#EXT-X-STREAM-INF:").count(), 4, "{master}");
    for attr in [
        "BANDWIDTH=",
        "AVERAGE-BANDWIDTH=",
        "RESOLUTION=1280x720",
        "CODECS=\"avc1.4d401f,mp4a.40.2\"",
        "FRAME-RATE=30.000",
    ] {
        assert!(master.contains(attr), "{attr} missing from {master}");
    }
    // The whole ladder plays through ffprobe from the master playlist.
    let (w, h, _) = ffprobe_video(&root.join("hls/master.m3u8"));
    assert!(w > 0 && h > 0);
    for key in [poster_key, storyboard_key] {
        let path = r.store.root().join(key.as_deref().expect("image key"));
        assert_eq!(ffprobe_video(&path).2, "mjpeg");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_odd_sized_silent_25fps_clip_keeps_its_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 641x361: odd in both directions, which only 4:4:4 H.264 can store.
    let odd = dir.path().join("odd.mp4");
    TestPattern {
        rate: 25,
        pix_fmt: "yuv444p",
        ..TestPattern::new(Some("641x361"), false, 3)
    }
    .write(&odd)
    .expect("generating a clip");
    let r = run(&odd).await;
    let ProcessingEvent::Ready { renditions, .. } = ready(&r.events) else {
        unreachable!()
    };
    let shapes: Vec<(u32, u32)> = renditions.iter().map(|x| (x.width, x.height)).collect();
    assert_eq!(shapes, [(640, 360), (426, 240)], "even sizes, the source aspect kept");
    let top = r
        .store
        .root()
        .join(format!("videos/{}/hls/360p/index.m3u8", r.video_id));
    assert_eq!(ffprobe_video(&top), (640, 360, "h264".to_string()));
    let master =
        std::fs::read_to_string(r.store.root().join(format!("videos/{}/hls/master.m3u8", r.video_id))).expect("master");
    assert!(
        master.contains("CODECS=\"avc1.4d401e\"") && master.contains("FRAME-RATE=25.000"),
        "{master}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_media_fails_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "these are my notes, not a video\n".repeat(100)).expect("write");
    let r = run(&text).await;
    match r.events.last() {
        Some(ProcessingEvent::Failed { reason, .. }) => {
            assert!(reason.contains("not a video or audio file"), "{reason}")
        }
        other => panic!("expected failed, got {other:?}"),
    }
    assert!(
        r.store
            .list(&format!("videos/{}/hls", r.video_id))
            .await
            .expect("list")
            .is_empty(),
        "nothing published"
    );

    let full = std::fs::read(clip(dir.path(), "whole.mp4", Some("320x240"), true, 3)).expect("clip");
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &full[..full.len() / 3]).expect("write");
    let r = run(&cut).await;
    assert!(
        matches!(r.events.last(), Some(ProcessingEvent::Failed { reason, .. }) if !reason.is_empty()),
        "{:?}",
        r.events
    );
    assert!(
        r.store
            .list(&format!("videos/{}/hls/master.m3u8", r.video_id))
            .await
            .expect("list")
            .is_empty()
    );
}

fn failure(events: &[ProcessingEvent]) -> &str {
    match events.last() {
        Some(ProcessingEvent::Failed { reason, .. }) => reason,
        other => panic!("expected failed, got {other:?}"),
    }
}

/// Security finding 2: an uploaded HLS playlist (or concat list) made
/// ffmpeg read the files it named, another tenant's private segments
/// included, and publish them as the uploader's video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_an_uploaded_playlist_cannot_read_another_tenants_media() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let victim = clip(scratch.path(), "victim.ts", Some("320x240"), true, 3);
    // What the upload holds, given where the objects are.
    type Attack = Box<dyn Fn(&Path) -> String>;
    let attacks: Vec<(&str, Attack)> = vec![
        (
            "a relative playlist",
            Box::new(|_| {
                "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:3,\n../objects/videos/private/hls/240p/seg_00000.ts\n#EXT-X-ENDLIST\n".into()
            }),
        ),
        (
            "an absolute file:// playlist",
            Box::new(|objects: &Path| {
                format!(
                    "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:3,\nfile://{}/videos/private/hls/240p/seg_00000.ts\n#EXT-X-ENDLIST\n",
                    objects.display()
                )
            }),
        ),
        (
            "a concat list",
            Box::new(|objects: &Path| {
                format!(
                    "ffconcat version 1.0\nfile '{}/videos/private/hls/240p/seg_00000.ts'\n",
                    objects.display()
                )
            }),
        ),
    ];
    for (what, attack) in attacks {
        let dir = tempfile::tempdir().expect("tempdir");
        let objects = dir.path().join("objects");
        let private = objects.join("videos/private/hls/240p");
        std::fs::create_dir_all(&private).expect("mkdir");
        std::fs::copy(&victim, private.join("seg_00000.ts")).expect("victim's segment");
        let upload = scratch.path().join(format!("attack-{}.m3u8", what.len()));
        std::fs::write(&upload, attack(&objects)).expect("write");
        let r = run_in(dir, &upload).await;
        let reason = failure(&r.events);
        assert!(
            reason.contains("containers accepted") || reason.contains("Reelflow accepts"),
            "{what}: {reason}"
        );
        assert!(
            !reason.contains(&*objects.display().to_string()),
            "{what}: a server path in {reason}"
        );
        assert!(
            r.store
                .list(&format!("videos/{}/", r.video_id))
                .await
                .expect("list")
                .iter()
                .all(|o| o.key.ends_with("/source")),
            "{what}: nothing of the attacker's video is published"
        );
    }
}

/// Security finding 5: a 1.4 KB Matroska file holding three frames 1,500 s
/// apart, declared at 60 frames/s, was encoded as 3,000 s of video (400 s
/// of work, 2,250 segments); it is refused after the probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_tiny_file_cannot_ask_for_hours_of_encoding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sparse = dir.path().join("sparse.mkv");
    let made = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=64x64:r=1:d=3",
        ])
        .args([
            "-vf",
            "setpts=N*1500/TB",
            "-fps_mode",
            "passthrough",
            "-c:v",
            "libx264",
            "-r",
            "60",
        ])
        .arg(&sparse)
        .status()
        .expect("ffmpeg");
    assert!(made.success());
    assert!(std::fs::metadata(&sparse).expect("made").len() < 4000);
    let started = std::time::Instant::now();
    let r = run(&sparse).await;
    let reason = failure(&r.events);
    assert!(reason.contains("3 video frames over 3000 s"), "{reason}");
    assert!(
        !r.events
            .iter()
            .any(|e| matches!(e, ProcessingEvent::Transcoding { .. })),
        "refused before encoding: {:?} after {:?}",
        r.events,
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_becomes_a_video_with_a_still_picture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = run(&clip(dir.path(), "song.m4a", None, true, 4)).await;
    let ProcessingEvent::Ready {
        renditions, duration_s, ..
    } = ready(&r.events)
    else {
        unreachable!()
    };
    assert_eq!(
        renditions.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
        ["360p", "240p"]
    );
    assert!((duration_s - 4.0).abs() < 0.3, "{duration_s}");
    let playlist = r
        .store
        .root()
        .join(format!("videos/{}/hls/360p/index.m3u8", r.video_id));
    assert_eq!(ffprobe_video(&playlist), (640, 360, "h264".to_string()));
    let audio = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=codec_name,channels",
            "-of",
            "csv=p=0",
        ])
        .arg(&playlist)
        .output()
        .expect("ffprobe");
    assert_eq!(String::from_utf8_lossy(&audio.stdout).lines().next(), Some("aac,2"));
}

/// A phone video: stored 1280x720 with a 90 degree display rotation, so it
/// plays as 720x1280 portrait. Sets the rotation matrix in the track header
/// (`tkhd`) the way phones write it.
fn rotate_mp4(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = bytes.windows(4).position(|w| w == b"tkhd").expect("a tkhd box");
    // version 0: version+flags 4, times 8, track 4, reserved 4, duration 4,
    // reserved 8, layer/group/volume/reserved 8, then the 3x3 matrix.
    let matrix = at + 4 + 4 + 8 + 4 + 4 + 4 + 8 + 8;
    let values: [i32; 9] = [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30];
    for (i, v) in values.iter().enumerate() {
        bytes[matrix + i * 4..matrix + i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    std::fs::write(path, bytes).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_phone_video_stays_portrait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = clip(dir.path(), "phone.mp4", Some("1280x720"), true, 2);
    rotate_mp4(&source);
    let r = run(&source).await;
    let ProcessingEvent::Ready { renditions, .. } = ready(&r.events) else {
        unreachable!()
    };
    assert_eq!(
        (renditions[0].name.as_str(), renditions[0].width, renditions[0].height),
        ("720p", 720, 1280),
        "{renditions:?}"
    );
    let top = r
        .store
        .root()
        .join(format!("videos/{}/hls/720p/index.m3u8", r.video_id));
    assert_eq!(ffprobe_video(&top), (720, 1280, "h264".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_frame_rate_1080p_clip_gets_the_full_ladder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vfr.mkv");
    // Frames at uneven times: 30 fps with every third frame dropped.
    let extra = ["-vf", "select='not(eq(mod(n\\,3)\\,2))'", "-fps_mode", "vfr"]
        .map(String::from)
        .to_vec();
    TestPattern {
        extra,
        ..TestPattern::new(Some("1920x1080"), false, 2)
    }
    .write(&path)
    .expect("generating a clip");
    let r = run(&path).await;
    let ProcessingEvent::Ready { renditions, .. } = ready(&r.events) else {
        unreachable!()
    };
    assert_eq!(
        renditions.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
        ["1080p", "720p", "480p", "360p", "240p"]
    );
    let playlist = std::fs::read_to_string(
        r.store
            .root()
            .join(format!("videos/{}/hls/1080p/index.m3u8", r.video_id)),
    )
    .expect("playlist");
    assert!(playlist.contains("#EXT-X-ENDLIST"));
}

/// Security finding 5: one account's uploads held everyone else's behind
/// them (a 3 s clip waited 399 s). A transcoder takes jobs owner by owner:
/// the other owner's upload, queued behind three, is done second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_one_owners_uploads_do_not_hold_anothers_behind_them() {
    use reelflow_ingest::events::{Envelope, UploadEvent};
    use reelflow_ingest::transcode::{WorkerSettings, WorkerStats, run_worker};

    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path().join("objects")).expect("store");
    let log = EmbeddedLog::open(dir.path().join("log"), EmbeddedOptions::default()).expect("log");
    log.create_topic(UploadEvent::TOPIC, 1).await.expect("topic");
    log.create_topic(ProcessingEvent::TOPIC, 1).await.expect("topic");
    let (flooder, other) = (Uuid::now_v7(), Uuid::now_v7());
    let mut videos = Vec::new();
    for owner in [flooder, flooder, flooder, other] {
        let video_id = Uuid::now_v7();
        // Not media: each job fails at its probe, quickly.
        let key = ObjectKey::parse(&format!("videos/{video_id}/source")).expect("key");
        store.put_bytes(&key, b"not a video at all").await.expect("put");
        let event = Envelope::new(UploadEvent::UploadCompleted {
            video_id,
            upload_id: Uuid::now_v7(),
            owner_id: owner,
            object_key: key.to_string(),
            size_bytes: 18,
            checksum: None,
            file_name: None,
            content_type: None,
        });
        log.append(UploadEvent::TOPIC, event.key().as_bytes(), &event.to_bytes())
            .await
            .expect("append");
        videos.push(video_id);
    }
    let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run_worker(
        log.clone(),
        store.clone(),
        WorkerSettings {
            work_root: dir.path().join("work"),
            limits: JobLimits::default(),
        },
        std::sync::Arc::new(WorkerStats::default()),
        async move {
            let _ = stopping.await;
        },
    ));
    let mut reader = log.reader(ProcessingEvent::TOPIC, &[(0, 0)]).await.expect("reader");
    let mut finished = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while finished.len() < 4 {
        assert!(std::time::Instant::now() < deadline, "jobs finished: {finished:?}");
        for r in reader.poll(100, Duration::from_millis(200)).await.expect("poll") {
            if let ProcessingEvent::Failed { video_id, .. } = decode::<ProcessingEvent>(&r.value).expect("event").event
            {
                finished.push(video_id);
            }
        }
    }
    let _ = stop.send(());
    worker.await.expect("worker").expect("worker ran");
    assert_eq!(finished, [videos[0], videos[3], videos[1], videos[2]]);
}

/// A valid one-frame clip (a picture lasting a second, as a slideshow or a
/// still writes it) encoded, then failed with `making …/poster.jpg: ` and
/// an empty cause: the poster was taken at a tenth of the duration, after
/// the only frame, where ffmpeg writes nothing and says nothing. The poster
/// comes from a frame that exists, and the video is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_one_frame_clip_is_ready_with_a_poster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("one-frame.mp4");
    let made = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc=s=320x240:r=1:d=1")
        .args(["-frames:v", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&source)
        .output()
        .expect("ffmpeg");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let r = run(&source).await;
    let ProcessingEvent::Ready {
        poster_key, renditions, ..
    } = ready(&r.events)
    else {
        unreachable!()
    };
    assert!(!renditions.is_empty(), "{:?}", r.events);
    let poster = r.store.root().join(poster_key.as_deref().expect("a poster"));
    let bytes = std::fs::read(&poster).expect("the poster is stored");
    assert!(bytes.starts_with(&[0xFF, 0xD8]), "the poster is a JPEG");
}
