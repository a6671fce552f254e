//! Playback end to end on `reelflow up`: a clip uploaded and transcoded by
//! real ffmpeg is served the way players and CDNs expect (checked with a
//! real HTTP client), private videos need a signed playback token, Debian's
//! Chromium (driven by playwright-core) plays it with hls.js on the player
//! page, and the page's beacons land in the log. Malformed beacon batches
//! are refused whole.

use std::io::Read;
use std::time::{Duration, Instant};

mod common;

use reelflow_ingest::events::{PlaybackEvent, PlaybackKind};
use reelflow_ingest::transcode::test_pattern::TestPattern;
use reqwest::blocking::Client;
use reqwest::header;
use serde_json::{Value, json};

/// A creator on a running `reelflow up`, with one transcoded video.
struct Fixture {
    _dir: tempfile::TempDir,
    data_dir: std::path::PathBuf,
    up: Option<common::Up>,
    base: String,
    http: Client,
    access: String,
    video_id: String,
}

impl Fixture {
    /// Starts `reelflow up`, registers a creator, creates a video with
    /// `visibility`, uploads `seconds` of a `size` test pattern with sound
    /// and waits until the pipeline made it ready.
    fn transcoded(size: &'static str, seconds: u32, visibility: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let up = common::Up::start(&data_dir);
        let base = format!("http://{}", up.addr);
        let http = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let session: Value = http
            .post(format!("{base}/v1/auth/register"))
            .json(&json!({"email": "maker@example.org", "password": "a long creator password"}))
            .send()
            .and_then(|r| r.json())
            .expect("register");
        let access = session["access_token"].as_str().expect("token").to_string();
        let video: Value = http
            .post(format!("{base}/v1/videos"))
            .bearer_auth(&access)
            .json(&json!({"title": "Test pattern", "visibility": visibility}))
            .send()
            .and_then(|r| r.json())
            .expect("create video");
        let video_id = video["id"].as_str().expect("id").to_string();
        let clip = dir.path().join("clip.mp4");
        TestPattern::new(Some(size), true, seconds)
            .write(&clip)
            .expect("ffmpeg writes the clip");
        let bytes = std::fs::read(&clip).expect("clip");
        let r = http
            .put(format!("{base}/v1/videos/{video_id}/source"))
            .bearer_auth(&access)
            .header(header::CONTENT_TYPE, "video/mp4")
            .body(bytes)
            .send()
            .expect("put source");
        assert_eq!(r.status(), 201, "{}", r.text().unwrap_or_default());
        let fixture = Self {
            _dir: dir,
            data_dir,
            up: Some(up),
            base,
            http,
            access,
            video_id,
        };
        fixture.wait_until_ready();
        fixture
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let video: Value = self
                .http
                .get(format!("{}/v1/videos/{}", self.base, self.video_id))
                .bearer_auth(&self.access)
                .send()
                .and_then(|r| r.json())
                .expect("get video");
            match video["status"].as_str() {
                Some("ready") => return,
                Some("failed") => panic!("the transcode failed: {video}"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "the video never became ready: {video}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/videos/{}/{path}", self.base, self.video_id)
    }

    fn get(&self, url: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
        let mut req = self.http.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().expect("GET")
    }

    /// A fresh playback token, as the owner.
    fn playback_token(&self) -> Value {
        let r = self
            .http
            .post(self.url("playback-token"))
            .bearer_auth(&self.access)
            .send()
            .expect("playback token");
        assert_eq!(r.status(), 200);
        r.json().expect("json")
    }

    /// Stops `reelflow up` and returns every `reelflow.playback` event of
    /// the video in the log it left behind.
    fn stop_and_read_playback(&mut self) -> Vec<PlaybackEvent> {
        drop(self.up.take());
        let log_dir = self.data_dir.join("log");
        let video_id = self.video_id.clone();
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async move { playback_events(&log_dir, &video_id).await })
    }
}

async fn playback_events(log_dir: &std::path::Path, video_id: &str) -> Vec<PlaybackEvent> {
    use reelflow_ingest::log::{EmbeddedLog, EmbeddedOptions};
    let log = EmbeddedLog::open(log_dir, EmbeddedOptions::default()).expect("open the log");
    common::topic_events::<PlaybackEvent, _>(&log)
        .await
        .into_iter()
        .filter(|e| e.video_id.to_string() == video_id)
        .collect()
}

fn header<'a>(r: &'a reqwest::blocking::Response, name: &str) -> &'a str {
    r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn body(r: reqwest::blocking::Response) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = r;
    r.read_to_end(&mut out).expect("body");
    out
}

/// The URI lines of a playlist.
fn uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// What `URI="…"` of the `EXT-X-MAP` tag says.
fn map_uri(playlist: &str) -> String {
    let line = playlist
        .lines()
        .find(|l| l.starts_with("#EXT-X-MAP:"))
        .expect("EXT-X-MAP");
    line.split("URI=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("URI")
        .to_string()
}

/// Types, caching, validators, ranges, CORS, gzip, pictures, path tricks,
/// and the access rules of private videos, with a real HTTP client.
#[test]
fn the_ladder_is_served_the_way_players_and_cdns_expect() {
    let f = Fixture::transcoded("640x360", 6, "public");

    // The master playlist: its type, short caching, a validator, gzip.
    let master = f.get(&f.url("hls/master.m3u8"), &[]);
    assert_eq!(master.status(), 200);
    assert_eq!(header(&master, "content-type"), "application/vnd.apple.mpegurl");
    assert_eq!(header(&master, "cache-control"), "public, max-age=2");
    let master_etag = header(&master, "etag").to_string();
    assert!(master_etag.starts_with("W/\""), "{master_etag}");
    let master_text = master.text().expect("text");
    let variants = uris(&master_text);
    assert!(variants.len() >= 2, "a ladder of renditions: {master_text}");
    assert!(master_text.contains("BANDWIDTH="), "{master_text}");
    let gz = f.get(&f.url("hls/master.m3u8"), &[("accept-encoding", "gzip")]);
    assert_eq!(header(&gz, "content-encoding"), "gzip");
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&body(gz)[..])
        .read_to_string(&mut unzipped)
        .expect("gunzip");
    assert_eq!(unzipped, master_text);
    let again = f.get(&f.url("hls/master.m3u8"), &[("if-none-match", &master_etag)]);
    assert_eq!(again.status(), 304);

    // Every rendition plays: its playlist, init segment and segments.
    for variant in &variants {
        let rendition = variant.split('/').next().expect("rendition");
        let r = f.get(&f.url(&format!("hls/{variant}")), &[]);
        assert_eq!(r.status(), 200, "{variant}");
        let playlist = r.text().expect("text");
        assert!(
            playlist.contains("#EXT-X-ENDLIST"),
            "a finished VOD playlist: {playlist}"
        );
        let init = f.get(&f.url(&format!("hls/{rendition}/{}", map_uri(&playlist))), &[]);
        assert_eq!(init.status(), 200, "{playlist}");
        assert_eq!(header(&init, "content-type"), "video/mp4");
        let init_bytes = body(init);
        assert_eq!(&init_bytes[4..8], b"ftyp", "an fMP4 init segment");
        let segments = uris(&playlist);
        assert!(segments.len() >= 2, "6 s in 4 s segments: {playlist}");
        for s in &segments {
            let seg = f.get(&f.url(&format!("hls/{rendition}/{s}")), &[]);
            assert_eq!(seg.status(), 200, "{rendition}/{s}");
            assert_eq!(header(&seg, "content-type"), "video/iso.segment");
        }
    }

    // A segment: immutable, ranges, validators.
    let rendition = variants[0].split('/').next().expect("rendition").to_string();
    let playlist = f
        .get(&f.url(&format!("hls/{}", variants[0])), &[])
        .text()
        .expect("text");
    let segment_url = f.url(&format!("hls/{rendition}/{}", uris(&playlist)[0]));
    let whole = f.get(&segment_url, &[]);
    assert_eq!(header(&whole, "cache-control"), "public, max-age=31536000, immutable");
    assert_eq!(header(&whole, "accept-ranges"), "bytes");
    let etag = header(&whole, "etag").to_string();
    assert!(etag.starts_with('"') && etag.len() > 2, "{etag}");
    let whole = body(whole);
    let size = whole.len();
    assert!(size > 1000);
    let part = f.get(&segment_url, &[("range", "bytes=100-199")]);
    assert_eq!(part.status(), 206);
    assert_eq!(header(&part, "content-range"), format!("bytes 100-199/{size}"));
    assert_eq!(body(part), whole[100..200]);
    let tail = f.get(&segment_url, &[("range", "bytes=-10")]);
    assert_eq!(tail.status(), 206);
    assert_eq!(body(tail), whole[size - 10..]);
    let past = f.get(&segment_url, &[("range", &format!("bytes={size}-"))]);
    assert_eq!(past.status(), 416);
    assert_eq!(header(&past, "content-range"), format!("bytes */{size}"));
    assert_eq!(header(&past, "content-type"), "application/problem+json");
    let stale = f.get(&segment_url, &[("range", "bytes=0-9"), ("if-range", "\"other\"")]);
    assert_eq!(stale.status(), 200, "a stale If-Range gets the whole object");
    let cached = f.get(&segment_url, &[("if-none-match", &etag)]);
    assert_eq!(cached.status(), 304);
    assert!(body(cached).is_empty());
    let head = f.http.head(&segment_url).send().expect("HEAD");
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length"), size.to_string());

    // CORS: hls.js on another origin may read everything it needs.
    let cross = f.get(&segment_url, &[("origin", "https://player.example.net")]);
    assert_eq!(header(&cross, "access-control-allow-origin"), "*");
    assert!(header(&cross, "access-control-expose-headers").contains("content-range"));
    let preflight = f
        .http
        .request(reqwest::Method::OPTIONS, &segment_url)
        .header("origin", "https://player.example.net")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range")
        .send()
        .expect("preflight");
    assert!(preflight.status().is_success());
    assert!(header(&preflight, "access-control-allow-headers").contains("range"));

    // Pictures.
    for picture in ["poster.jpg", "storyboard.jpg"] {
        let r = f.get(&f.url(picture), &[]);
        assert_eq!(r.status(), 200, "{picture}");
        assert_eq!(header(&r, "content-type"), "image/jpeg");
        assert_eq!(&body(r)[..2], [0xFF, 0xD8], "{picture} is a JPEG");
    }

    // Path tricks reach nothing but the ladder.
    for (path, status) in [
        ("hls/..%2F..%2Fsource/index.m3u8", 404),
        (&format!("hls/{rendition}/..%2F..%2Fsource") as &str, 404),
        (&format!("hls/{rendition}/source"), 404),
        (&format!("hls/{rendition}/seg_00000.m4s.bak"), 404),
        ("hls/%2E%2E/master.m3u8", 404),
    ] {
        let r = f.get(&f.url(path), &[]);
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(header(&r, "content-type"), "application/problem+json", "{path}");
    }
    let r = f.get(&format!("{}/v1/videos/not-a-uuid/hls/master.m3u8", f.base), &[]);
    assert_eq!(r.status(), 400);
    let r = f.get(
        &format!("{}/v1/videos/{}/hls/master.m3u8", f.base, uuid::Uuid::new_v4()),
        &[],
    );
    assert_eq!(r.status(), 404);

    // Private: nothing without a token; forged, expired, misused or foreign
    // tokens get 403; a valid one opens every URI the playlists list.
    let grant_public = f.playback_token();
    // Unlisted: playable by anyone with the link, no token needed.
    let r = f
        .http
        .patch(format!("{}/v1/videos/{}", f.base, f.video_id))
        .bearer_auth(&f.access)
        .json(&json!({"visibility": "unlisted"}))
        .send()
        .expect("patch");
    assert_eq!(r.status(), 200);
    assert_eq!(f.get(&f.url("hls/master.m3u8"), &[]).status(), 200);
    assert_eq!(f.get(&segment_url, &[]).status(), 200);
    let r = f
        .http
        .patch(format!("{}/v1/videos/{}", f.base, f.video_id))
        .bearer_auth(&f.access)
        .json(&json!({"visibility": "private"}))
        .send()
        .expect("patch");
    assert_eq!(r.status(), 200);
    assert_eq!(f.get(&f.url("hls/master.m3u8"), &[]).status(), 404);
    assert_eq!(f.get(&segment_url, &[]).status(), 404);
    let owner = f
        .http
        .get(f.url("hls/master.m3u8"))
        .bearer_auth(&f.access)
        .send()
        .expect("owner");
    assert_eq!(owner.status(), 200, "the owner's bearer token opens it");

    let grant = f.playback_token();
    let token = grant["token"].as_str().expect("token").to_string();
    let mut forged = token.clone();
    let last = forged.pop().expect("char");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let keys = reelflow_serve::auth::Keyring::load_or_create(&f.data_dir.join("auth-keys.json")).expect("keys");
    let video_uuid: uuid::Uuid = f.video_id.parse().expect("uuid");
    let now = chrono::Utc::now().timestamp();
    let expired = keys.sign(&reelflow_serve::playback::token::PlaybackClaims {
        sub: video_uuid,
        aud: reelflow_serve::playback::token::PLAYBACK_AUDIENCE.into(),
        iat: now - 7200,
        exp: now - 3600,
        r#gen: 0,
    });
    let other_video = reelflow_serve::playback::token::issue(&keys, uuid::Uuid::new_v4(), 0, 600).0;
    for (what, bad) in [
        ("forged", forged.as_str()),
        ("expired", expired.as_str()),
        ("for another video", other_video.as_str()),
        ("an access token", f.access.as_str()),
        ("not a token", "x.y.z"),
    ] {
        let r = f.get(&format!("{}?token={bad}", f.url("hls/master.m3u8")), &[]);
        assert_eq!(r.status(), 403, "{what}");
        let problem: Value = r.json().expect("problem");
        assert!(
            problem["detail"].as_str().is_some_and(|d| d.contains("token")),
            "{what}: {problem}"
        );
    }
    assert!(
        grant_public["token"].as_str().is_some(),
        "public videos give tokens too"
    );

    let master = f.get(
        &format!("{}{}", f.base, grant["master_url"].as_str().expect("url")),
        &[],
    );
    assert_eq!(master.status(), 200);
    assert_eq!(header(&master, "cache-control"), "private, max-age=2");
    let text = master.text().expect("text");
    for variant in uris(&text) {
        assert!(variant.ends_with(&format!("?token={token}")), "{variant}");
        let playlist = f.get(&f.url(&format!("hls/{variant}")), &[]);
        assert_eq!(playlist.status(), 200, "{variant}");
        let playlist = playlist.text().expect("text");
        let rendition = variant.split('/').next().expect("rendition");
        let init = map_uri(&playlist);
        assert!(init.ends_with(&format!("?token={token}")), "{init}");
        assert_eq!(f.get(&f.url(&format!("hls/{rendition}/{init}")), &[]).status(), 200);
        for s in uris(&playlist) {
            assert!(s.ends_with(&format!("?token={token}")), "{s}");
            let seg = f.get(&f.url(&format!("hls/{rendition}/{s}")), &[]);
            assert_eq!(seg.status(), 200, "{s}");
            assert_eq!(header(&seg, "cache-control"), "private, max-age=31536000, immutable");
        }
    }
    let poster = f.get(
        &format!("{}{}", f.base, grant["poster_url"].as_str().expect("url")),
        &[],
    );
    assert_eq!(poster.status(), 200);
}

/// Chromium plays a private video on the player page with its playback
/// token (and not without), switches rendition when the viewer picks one,
/// and the page's beacons reach the log with plausible values.
/// Security finding 3: a playback token minted anonymously while a video
/// was public still opened its playlists, poster and segments after the
/// owner made it private.
#[test]
fn regression_a_token_minted_while_public_stops_working_when_private() {
    let f = Fixture::transcoded("320x240", 2, "public");
    let anonymous: Value = f
        .http
        .post(f.url("playback-token"))
        .send()
        .and_then(|r| r.json())
        .expect("an anonymous token for a public video");
    let token = anonymous["token"].as_str().expect("token").to_string();
    let with = |path: &str, token: &str| format!("{}?token={token}", f.url(path));
    let master = f.get(&with("hls/master.m3u8", &token), &[]);
    assert_eq!(master.status(), 200);
    let variant = uris(&master.text().expect("master"))[0].clone();
    let variant = variant.split('?').next().expect("uri").to_string();
    let set = |visibility: &str| {
        let r = f
            .http
            .patch(format!("{}/v1/videos/{}", f.base, f.video_id))
            .bearer_auth(&f.access)
            .json(&json!({ "visibility": visibility }))
            .send()
            .expect("patch");
        assert_eq!(r.status(), 200);
    };
    set("private");
    for path in [
        "hls/master.m3u8",
        &format!("hls/{variant}"),
        "poster.jpg",
        "storyboard.jpg",
    ] {
        let r = f.get(&with(path, &token), &[]);
        assert_eq!(r.status(), 403, "{path} with a token from before");
        let problem: Value = r.json().expect("problem");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("visibility last changed")),
            "{path}: {problem}"
        );
    }
    // The owner's new token opens it, until the visibility changes again.
    let fresh = f.playback_token()["token"].as_str().expect("token").to_string();
    assert_eq!(f.get(&with("hls/master.m3u8", &fresh), &[]).status(), 200);
    set("unlisted");
    set("private");
    assert_eq!(f.get(&with("hls/master.m3u8", &fresh), &[]).status(), 403);
    // A title change alone revokes nothing.
    let newest = f.playback_token()["token"].as_str().expect("token").to_string();
    let r = f
        .http
        .patch(format!("{}/v1/videos/{}", f.base, f.video_id))
        .bearer_auth(&f.access)
        .json(&json!({"title": "Renamed"}))
        .send()
        .expect("patch");
    assert_eq!(r.status(), 200);
    assert_eq!(f.get(&with("hls/master.m3u8", &newest), &[]).status(), 200);
}

#[test]
fn chromium_plays_with_hls_js_and_the_beacons_reach_the_log() {
    let mut f = Fixture::transcoded("854x480", 14, "private");
    let grant = f.playback_token();
    let token = grant["token"].as_str().expect("token");
    let report = common::node_report("play_hls.mjs", &[f.base.as_ref(), f.video_id.as_ref(), token.as_ref()]);
    assert!(report["error"].is_null(), "{report:#}");

    let without = &report["without_token"];
    assert_eq!(without["state"], "error", "{report:#}");
    assert_eq!(without["current_time"], 0.0, "{report:#}");

    let with = &report["with_token"];
    assert!(with["current_time"].as_f64().is_some_and(|t| t > 6.0), "{report:#}");
    let levels = with["levels"].as_array().expect("levels");
    assert!(levels.len() >= 2, "a ladder to switch between: {report:#}");
    assert_ne!(with["level_before"], with["level_after"], "{report:#}");
    assert!(with["rejected"].as_array().is_some_and(Vec::is_empty), "{report:#}");
    let switched_to = format!("{}p", with["switched_to"]["height"]);
    let session: uuid::Uuid = with["session_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("session");

    let events = f.stop_and_read_playback();
    assert!(!events.is_empty(), "no beacon reached the log");
    assert!(
        events.iter().all(|e| e.session_id == session),
        "one session: {events:#?}"
    );
    assert!(events.iter().all(|e| e.user_id.is_none()), "an anonymous viewer");
    let kinds: Vec<&PlaybackKind> = events.iter().map(|e| &e.kind).collect();
    assert!(
        matches!(kinds.first(), Some(PlaybackKind::SessionStart { player: Some(p) }) if p.starts_with("hls.js 1.")),
        "{kinds:#?}"
    );
    let startup: Vec<u64> = kinds
        .iter()
        .filter_map(|k| match k {
            PlaybackKind::FirstFrame { startup_ms } => Some(*startup_ms),
            _ => None,
        })
        .collect();
    assert_eq!(startup.len(), 1, "{kinds:#?}");
    assert!((1..30_000).contains(&startup[0]), "startup {} ms", startup[0]);
    let played: u64 = kinds
        .iter()
        .filter_map(|k| match k {
            PlaybackKind::Heartbeat { played_ms, .. } => Some(*played_ms),
            _ => None,
        })
        .sum();
    // About 6 s of content was played before the pause.
    assert!((4_000..=15_000).contains(&played), "played {played} ms: {kinds:#?}");
    assert!(
        kinds.iter().any(
            |k| matches!(k, PlaybackKind::Heartbeat { rendition: Some(_), bitrate_kbps: Some(b), position_s, .. }
            if *b > 0 && *position_s > 5.0)
        ),
        "{kinds:#?}"
    );
    assert!(
        kinds.iter().any(
            |k| matches!(k, PlaybackKind::RenditionChange { to, bitrate_kbps: Some(b), .. }
            if *to == switched_to && *b > 0)
        ),
        "a switch to {switched_to}: {kinds:#?}"
    );
    assert!(
        matches!(kinds.last(), Some(PlaybackKind::Pause { position_s }) if *position_s > 6.0),
        "{kinds:#?}"
    );
}
