//! `POST /v1/playback/events`: good batches are recorded under one session
//! with the caller attached by the server; malformed batches get a 400 that
//! says what is wrong, and nothing of them reaches the log; limits hold.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Database, TestApp, assert_problem};
use reelflow_ingest::events::{PlaybackEvent, PlaybackKind};
use serde_json::{Value, json};

/// Every `reelflow.playback` event in the app's log.
async fn logged(app: &TestApp) -> Vec<PlaybackEvent> {
    common::topic_events(&app.state.platform.log).await
}

async fn video(app: &TestApp, token: &str, visibility: &str) -> String {
    let r = app
        .post(
            "/v1/videos",
            Some(token),
            json!({"title": "Clip", "visibility": visibility}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().expect("id").to_string()
}

async fn post(app: &TestApp, token: Option<&str>, body: Value) -> common::Response {
    app.post("/v1/playback/events", token, body).await
}

#[tokio::test]
async fn good_batches_are_recorded_in_order_under_one_session() {
    let app = TestApp::new(Database::Sqlite).await;
    let owner = app.register("owner@example.org", None).await;
    let viewer = app.register("viewer@example.org", Some("viewer")).await;
    let id = video(&app, &owner.access, "public").await;

    // An anonymous player's first batch gets a session id.
    let first = post(
        &app,
        None,
        json!({"video_id": id, "events": [
            {"type": "session_start", "player": "hls.js 1.7.4"},
            {"type": "first_frame", "startup_ms": 840},
            {"type": "heartbeat", "position_s": 9.5, "played_ms": 9000, "rendition": "720p", "bitrate_kbps": 2800},
        ]}),
    )
    .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert_eq!(first.body["accepted"], 3);
    let session = first.body["session_id"].as_str().expect("session").to_string();
    let session_token = first.body["session_token"].as_str().expect("session token").to_string();
    let second = post(
        &app,
        None,
        json!({"video_id": id, "session_token": session_token, "events": [
            {"type": "rebuffer_start", "position_s": 10.0},
            {"type": "rebuffer_end", "duration_ms": 1200},
            {"type": "rendition_change", "from": "720p", "to": "480p", "bitrate_kbps": 1400},
            {"type": "seek", "from_s": 12.0, "to_s": 40.0},
            {"type": "error", "code": "fragLoadError", "message": "timeout", "fatal": false},
            {"type": "pause", "position_s": 41.0},
            {"type": "end", "position_s": 41.0},
        ]}),
    )
    .await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{}", second.body);
    assert_eq!(second.body["session_id"], session.as_str());

    // A signed-in viewer is attached by the server.
    let signed = post(
        &app,
        Some(&viewer.access),
        json!({"video_id": id, "events": [{"type": "session_start"}]}),
    )
    .await;
    assert_eq!(signed.status, StatusCode::ACCEPTED, "{}", signed.body);

    let events = logged(&app).await;
    assert_eq!(events.len(), 11);
    let anonymous: Vec<&PlaybackEvent> = events.iter().filter(|e| e.session_id.to_string() == session).collect();
    assert_eq!(anonymous.len(), 10, "one session, in one partition, in order");
    assert!(
        anonymous
            .iter()
            .all(|e| e.user_id.is_none() && e.video_id.to_string() == id)
    );
    assert!(matches!(anonymous[0].kind, PlaybackKind::SessionStart { .. }));
    assert!(matches!(
        anonymous[1].kind,
        PlaybackKind::FirstFrame { startup_ms: 840 }
    ));
    assert!(matches!(anonymous[9].kind, PlaybackKind::End { .. }));
    let viewer_event = events
        .iter()
        .find(|e| e.session_id.to_string() != session)
        .expect("the viewer's event");
    assert_eq!(
        viewer_event.user_id.map(|u| u.to_string()),
        Some(viewer.user_id.clone())
    );
}

#[tokio::test]
async fn malformed_batches_get_a_400_saying_what_is_wrong_and_nothing_is_logged() {
    let app = TestApp::with(Database::Sqlite, |c| c.playback.max_batch_events = 10).await;
    let owner = app.register("owner@example.org", None).await;
    let id = video(&app, &owner.access, "public").await;
    let good = json!({"type": "heartbeat", "position_s": 1.0, "played_ms": 1000});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"events": [good]}), "video_id"),
        (json!({"video_id": "nope", "events": [good]}), "UUID"),
        (json!({"video_id": id, "events": []}), "1 to 10 events"),
        (
            json!({"video_id": id, "events": vec![good.clone(); 11]}),
            "1 to 10 events",
        ),
        (
            json!({"video_id": id, "user_id": owner.user_id, "events": [good]}),
            "user_id",
        ),
        (
            json!({"video_id": id, "events": [good, {"type": "teleport"}]}),
            "events[1]",
        ),
        (
            json!({"video_id": id, "events": [{"type": "heartbeat", "position_s": -3.0, "played_ms": 5}]}),
            "events[0].position_s",
        ),
        (
            json!({"video_id": id, "events": [{"type": "heartbeat", "position_s": 1.0, "played_ms": 99999999}]}),
            "events[0].played_ms",
        ),
        (
            json!({"video_id": id, "events": [{"type": "first_frame"}]}),
            "startup_ms",
        ),
        (
            json!({"video_id": id, "events": [good, {"type": "pause", "position_s": 2.0, "user_id": owner.user_id}]}),
            "events[1].user_id",
        ),
        (
            json!({"video_id": id, "events": [{"type": "rendition_change", "to": ""}]}),
            "events[0].to",
        ),
        (
            json!({"video_id": id, "events": [{"type": "error", "code": "x", "fatal": "yes"}]}),
            "events[0]",
        ),
        (json!({"video_id": id, "events": ["heartbeat"]}), "must be an object"),
    ];
    for (batch, says) in cases {
        let r = post(&app, None, batch.clone()).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-beacons");
        assert!(
            r.body.to_string().contains(says),
            "{batch} should say {says:?}: {}",
            r.body
        );
    }
    // Not JSON at all, and the wrong media type.
    let raw = |content_type: &'static str, body: &'static str| {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/v1/playback/events")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .expect("request");
        req.extensions_mut().insert(axum::extract::ConnectInfo(app.ip));
        req
    };
    let r = app.send(raw("application/json", "{\"video_id\": ")).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-beacons");
    let r = app.send(raw("application/xml", "<events/>")).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(logged(&app).await.is_empty(), "nothing of a refused batch is logged");

    // sendBeacon's text/plain is accepted.
    let body = format!("{{\"video_id\": \"{id}\", \"events\": [{{\"type\": \"session_start\"}}]}}");
    let mut req = raw("text/plain;charset=UTF-8", "");
    *req.body_mut() = Body::from(body);
    assert_eq!(app.send(req).await.status, StatusCode::ACCEPTED);
    assert_eq!(logged(&app).await.len(), 1);
}

#[tokio::test]
async fn private_videos_need_a_token_and_limits_hold() {
    let app = TestApp::with(Database::Sqlite, |c| c.limits.beacons_per_session_per_minute = 3).await;
    let owner = app.register("owner@example.org", None).await;
    let private = video(&app, &owner.access, "private").await;
    let batch = |token: Option<&str>| {
        let mut b = json!({"video_id": private, "events": [{"type": "session_start"}]});
        if let Some(t) = token {
            b["token"] = json!(t);
        }
        b
    };
    let r = post(&app, None, batch(None)).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = post(
        &app,
        None,
        json!({"video_id": uuid::Uuid::new_v4(), "events": [{"type": "session_start"}]}),
    )
    .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = post(&app, None, batch(Some("not.a.token"))).await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    assert!(logged(&app).await.is_empty());

    let grant = app
        .post(
            &format!("/v1/videos/{private}/playback-token"),
            Some(&owner.access),
            json!({}),
        )
        .await;
    assert_eq!(grant.status, StatusCode::OK, "{}", grant.body);
    let token = grant.body["token"].as_str().expect("token").to_string();
    // Nobody else gets a token for it.
    let stranger = app.register("stranger@example.org", None).await;
    let r = app
        .post(
            &format!("/v1/videos/{private}/playback-token"),
            Some(&stranger.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = post(&app, None, batch(Some(&token))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let session = r.body["session_token"].clone();
    for _ in 0..2 {
        let mut b = batch(Some(&token));
        b["session_token"] = session.clone();
        assert_eq!(post(&app, None, b).await.status, StatusCode::ACCEPTED);
    }
    let mut b = batch(Some(&token));
    b["session_token"] = session.clone();
    let r = post(&app, None, b).await;
    assert_problem(&r, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(logged(&app).await.len(), 3);
}

#[tokio::test]
async fn batches_are_limited_per_client_ip() {
    let app = TestApp::with(Database::Sqlite, |c| c.limits.beacons_per_ip_per_minute = 2).await;
    let owner = app.register("owner@example.org", None).await;
    let id = video(&app, &owner.access, "public").await;
    let batch = json!({"video_id": id, "events": [{"type": "session_start"}]});
    for _ in 0..2 {
        assert_eq!(post(&app, None, batch.clone()).await.status, StatusCode::ACCEPTED);
    }
    // A new session from the same address is still over the address's limit.
    let r = post(&app, None, batch).await;
    assert_problem(&r, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert_eq!(logged(&app).await.len(), 2);
}

/// Security finding 11: anyone could append events to any session id,
/// another signed-in viewer's included. A session now goes on only with the
/// token its first batch returned, from the same viewer, for the same video.
#[tokio::test]
async fn regression_a_session_belongs_to_whoever_opened_it() {
    let app = TestApp::new(Database::Sqlite).await;
    let owner = app.register("owner@example.org", None).await;
    let alice = app.register("alice@example.org", Some("viewer")).await;
    let mallory = app.register("mallory@example.org", Some("viewer")).await;
    let id = video(&app, &owner.access, "public").await;
    let other = video(&app, &owner.access, "public").await;
    let start = |video: &str| json!({"video_id": video, "events": [{"type": "session_start"}]});
    let opened = post(&app, Some(&alice.access), start(&id)).await;
    assert_eq!(opened.status, StatusCode::ACCEPTED, "{}", opened.body);
    let session = opened.body["session_id"].clone();
    let token = opened.body["session_token"].clone();
    let heartbeat = json!([{"type": "heartbeat", "position_s": 5.0, "played_ms": 5000}]);

    // Her session id alone, from anyone: refused.
    for who in [None, Some(mallory.access.as_str()), Some(alice.access.as_str())] {
        let r = post(
            &app,
            who,
            json!({"video_id": id, "session_id": session, "events": heartbeat}),
        )
        .await;
        assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    }
    // Her token, from someone else or for another video: refused.
    let r = post(
        &app,
        Some(&mallory.access),
        json!({"video_id": id, "session_token": token, "events": heartbeat}),
    )
    .await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = post(
        &app,
        None,
        json!({"video_id": id, "session_token": token, "events": heartbeat}),
    )
    .await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = post(
        &app,
        Some(&alice.access),
        json!({"video_id": other, "session_token": token, "events": heartbeat}),
    )
    .await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    // A forged token: refused.
    let r = post(
        &app,
        Some(&alice.access),
        json!({"video_id": id, "session_token": "a.b.c", "events": heartbeat}),
    )
    .await;
    assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    // Alice goes on.
    let r = post(
        &app,
        Some(&alice.access),
        json!({"video_id": id, "session_token": token, "events": heartbeat}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["session_id"], session);

    let events = logged(&app).await;
    assert_eq!(events.len(), 2, "only Alice's own events: {events:?}");
    assert!(
        events
            .iter()
            .all(|e| e.user_id.map(|u| u.to_string()) == Some(alice.user_id.clone()))
    );
}

/// Security finding 11: 50 batches from one address made 52 anonymous
/// views. New sessions (each a view once it attempts playback) are limited
/// per address.
#[tokio::test]
async fn regression_one_address_cannot_open_sessions_without_bound() {
    let app = TestApp::with(Database::Sqlite, |c| c.limits.sessions_per_ip_per_minute = 5).await;
    let owner = app.register("owner@example.org", None).await;
    let id = video(&app, &owner.access, "public").await;
    let mut opened = 0;
    let mut refused = 0;
    for _ in 0..50 {
        let r = post(
            &app,
            None,
            json!({"video_id": id, "events": [{"type": "session_start"}]}),
        )
        .await;
        match r.status {
            StatusCode::ACCEPTED => opened += 1,
            _ => {
                assert_problem(&r, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
                refused += 1;
            }
        }
    }
    assert_eq!((opened, refused), (5, 45));
    let sessions: std::collections::HashSet<_> = logged(&app).await.iter().map(|e| e.session_id).collect();
    assert_eq!(sessions.len(), 5);
}
