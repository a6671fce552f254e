//! The video catalog through HTTP, on SQLite and on a real PostgreSQL:
//! permissions, visibility, listing against a from-scratch filter of the
//! same videos, injection attempts, object removal and the outbox.

mod common;

mod cases {
    use std::collections::HashSet;
    use std::time::Duration;

    use axum::http::StatusCode;
    use reelflow_ingest::events::{CatalogEvent, TopicEvent, decode};
    use reelflow_ingest::storage::ObjectKey;
    use reelflow_ingest::{EventLog, ObjectStore, PartitionReader};
    use serde_json::{Value, json};

    use super::common::{Database, Session, TestApp, assert_problem};

    async fn create(app: &TestApp, s: &Session, body: Value) -> Value {
        let r = app.post("/v1/videos", Some(&s.access), body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    /// Every event on `reelflow.catalog` so far.
    async fn catalog_events(app: &TestApp) -> Vec<CatalogEvent> {
        let log = &app.state.platform.log;
        let n = log.partition_count(CatalogEvent::TOPIC).await.expect("partitions");
        let mut assignment = Vec::new();
        let mut total = 0;
        for p in 0..n {
            assignment.push((p, 0));
            total += log.high_watermark(CatalogEvent::TOPIC, p).await.expect("hw");
        }
        let mut reader = log.reader(CatalogEvent::TOPIC, &assignment).await.expect("reader");
        let mut out = Vec::new();
        while (out.len() as u64) < total {
            for r in reader.poll(1000, Duration::from_secs(5)).await.expect("poll") {
                out.push(decode::<CatalogEvent>(&r.value).expect("valid event").event);
            }
        }
        out
    }

    /// Create, read, change and delete, with who may do what.
    pub async fn owners_and_admins_manage_videos(db: Database) {
        let app = TestApp::new(db).await;
        let owner = app.register("owner@example.org", None).await;
        let other = app.register("other@example.org", None).await;
        let viewer = app.register("viewer@example.org", Some("viewer")).await;
        let admin = app.admin("admin@example.org").await;

        let r = app
            .post("/v1/videos", Some(&viewer.access), json!({"title": "Mine"}))
            .await;
        assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
        assert_problem(
            &app.post("/v1/videos", None, json!({"title": "anon"})).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );

        let v = create(
            &app,
            &owner,
            json!({"title": "  Sunset  ", "description": "Filmed on a phone.", "genre": "travel",
            "language": "en", "tags": ["Sea", "sunset", "sea"], "visibility": "public"}),
        )
        .await;
        assert_eq!(v["title"], "Sunset");
        assert_eq!(v["tags"], json!(["sea", "sunset"]));
        assert_eq!(v["status"], "awaiting_upload");
        assert_eq!(v["owner_id"], owner.user_id.as_str());
        let id = v["id"].as_str().expect("id").to_string();
        let url = format!("/v1/videos/{id}");

        assert_eq!(app.get(&url, None).await.body["title"], "Sunset");
        let r = app.patch(&url, Some(&other.access), json!({"title": "Hijacked"})).await;
        assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
        let r = app
            .patch(
                &url,
                Some(&owner.access),
                json!({"title": "Sunset over the bay", "genre": null, "tags": ["bay"]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(
            (r.body["title"].as_str(), r.body["genre"].is_null()),
            (Some("Sunset over the bay"), true)
        );
        assert_eq!(r.body["tags"], json!(["bay"]));
        assert_eq!(r.body["description"], "Filmed on a phone.", "absent fields stay");
        let r = app
            .patch(
                &url,
                Some(&owner.access),
                json!({"title": "", "tags": ["a,b"], "language": "??", "visbility": "x"}),
            )
            .await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");

        // Private: invisible to others, exactly like a missing video.
        let r = app
            .patch(&url, Some(&admin.access), json!({"visibility": "private"}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "admins may change any video: {}", r.body);
        let missing = app
            .get(&format!("/v1/videos/{}", uuid::Uuid::new_v4()), Some(&other.access))
            .await;
        for r in [
            app.get(&url, Some(&other.access)).await,
            app.get(&url, None).await,
            app.patch(&url, Some(&other.access), json!({"title": "x"})).await,
            app.delete(&url, Some(&other.access)).await,
        ] {
            assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
            assert_eq!(
                r.body["detail"].as_str().map(|d| d.starts_with("no video ")),
                missing.body["detail"].as_str().map(|d| d.starts_with("no video "))
            );
        }
        assert_eq!(app.get(&url, Some(&owner.access)).await.status, StatusCode::OK);
        assert_eq!(app.get(&url, Some(&admin.access)).await.status, StatusCode::OK);
        // Unlisted: readable by link.
        app.patch(&url, Some(&owner.access), json!({"visibility": "unlisted"}))
            .await;
        assert_eq!(app.get(&url, None).await.status, StatusCode::OK);

        // Deleting removes the video's objects, and only them.
        let store = &app.state.platform.store;
        for key in [
            format!("videos/{id}/source"),
            format!("videos/{id}/hls/720p/seg_1.m4s"),
            "videos/someone-else/source".into(),
        ] {
            store
                .put_bytes(&ObjectKey::parse(&key).expect("key"), b"bytes")
                .await
                .expect("put");
        }
        assert_eq!(
            app.delete(&url, Some(&owner.access)).await.status,
            StatusCode::NO_CONTENT
        );
        assert_problem(
            &app.get(&url, Some(&owner.access)).await,
            StatusCode::NOT_FOUND,
            "not-found",
        );
        assert!(store.list(&format!("videos/{id}/")).await.expect("list").is_empty());
        assert_eq!(store.list("videos/someone-else/").await.expect("list").len(), 1);
        assert_problem(
            &app.get("/v1/videos/not-a-uuid", None).await,
            StatusCode::BAD_REQUEST,
            "bad-request",
        );
    }

    /// Listings equal a from-scratch filter of the same videos, for several
    /// callers and filters, and cursor paging returns each exactly once.
    pub async fn listings_match_a_plain_filter(db: Database) {
        let app = TestApp::new(db).await;
        let alice = app.register("alice@example.org", None).await;
        let bob = app.register("bob@example.org", None).await;
        let admin = app.admin("admin@example.org").await;
        let genres = ["music", "travel", "news"];
        let visibilities = ["public", "public", "unlisted", "private"];
        let mut all: Vec<Value> = Vec::new();
        for i in 0..26 {
            let who = if i % 3 == 0 { &bob } else { &alice };
            let body = json!({
                "title": format!("Clip {i} {}", if i % 5 == 0 { "100% real" } else { "ordinary" }),
                "description": if i % 4 == 0 { "about the SEA" } else { "about land" },
                "genre": genres[i % 3],
                "language": if i % 2 == 0 { "en" } else { "fr" },
                "tags": if i % 6 == 0 { json!(["cats", "fun"]) } else { json!(["fun"]) },
                "visibility": visibilities[i % 4],
            });
            all.push(create(&app, who, body).await);
        }
        let visible_to = |v: &Value, who: Option<&Session>| match who {
            Some(s) if s.user_id == admin.user_id => true,
            Some(s) => v["visibility"] == "public" || v["owner_id"] == s.user_id.as_str(),
            None => v["visibility"] == "public",
        };
        type Pred = Box<dyn Fn(&Value) -> bool>;
        let filters: Vec<(&str, Pred)> = vec![
            ("", Box::new(|_| true)),
            ("genre=travel", Box::new(|v| v["genre"] == "travel")),
            (
                "language=fr&genre=music",
                Box::new(|v| v["language"] == "fr" && v["genre"] == "music"),
            ),
            (
                "tag=CATS",
                Box::new(|v| v["tags"].as_array().is_some_and(|t| t.contains(&json!("cats")))),
            ),
            (
                "q=sea",
                Box::new(|v| {
                    v["description"]
                        .as_str()
                        .is_some_and(|d| d.to_lowercase().contains("sea"))
                }),
            ),
            (
                "q=100%25",
                Box::new(|v| v["title"].as_str().is_some_and(|t| t.contains("100%"))),
            ),
            ("status=awaiting_upload", Box::new(|_| true)),
            ("status=ready", Box::new(|_| false)),
        ];
        let owner_filter = format!("owner={}", bob.user_id);
        let bob_id = bob.user_id.clone();
        let mut filters = filters;
        filters.push((&owner_filter, Box::new(move |v| v["owner_id"] == bob_id.as_str())));
        for who in [None, Some(&alice), Some(&bob), Some(&admin)] {
            for (query, pred) in &filters {
                let mut expected: Vec<String> = all
                    .iter()
                    .filter(|v| visible_to(v, who) && pred(v))
                    .map(|v| v["id"].as_str().expect("id").to_string())
                    .collect();
                expected.reverse(); // newest first
                let mut got = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    let mut uri = format!("/v1/videos?limit=4&{query}");
                    if let Some(c) = &cursor {
                        uri.push_str(&format!("&cursor={c}"));
                    }
                    let r = app.get(&uri, who.map(|s| s.access.as_str())).await;
                    assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.body);
                    let items = r.body["items"].as_array().expect("items");
                    assert!(items.len() <= 4);
                    got.extend(items.iter().map(|v| v["id"].as_str().expect("id").to_string()));
                    match r.body["next_cursor"].as_str() {
                        Some(c) => cursor = Some(c.to_string()),
                        None => break,
                    }
                }
                assert_eq!(got, expected, "listing {query:?} as {:?}", who.map(|s| &s.user_id));
                assert_eq!(
                    got.iter().collect::<HashSet<_>>().len(),
                    got.len(),
                    "a video appeared twice"
                );
            }
        }
        for bad in ["limit=0", "limit=101", "status=done", "cursor=zzz", "colour=red"] {
            let r = app.get(&format!("/v1/videos?{bad}"), None).await;
            assert!(
                r.status == StatusCode::UNPROCESSABLE_ENTITY || r.status == StatusCode::BAD_REQUEST,
                "{bad}: {}",
                r.body
            );
            assert!(
                r.body["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("https://reelflow.dev/problems/"))
            );
        }
    }

    /// Filters and search are data, never SQL.
    pub async fn injection_attempts_are_just_strings(db: Database) {
        let app = TestApp::new(db).await;
        let s = app.register("robert@example.org", None).await;
        create(
            &app,
            &s,
            json!({"title": "Robert'); DROP TABLE videos;--", "genre": "o'reilly"}),
        )
        .await;
        create(&app, &s, json!({"title": "plain", "description": "under_score"})).await;
        for (query, expected) in [
            ("q=%27%29%3B%20DROP%20TABLE%20videos%3B--", 1),
            ("genre=o%27reilly", 1),
            ("genre=%27%20OR%20%271%27%3D%271", 0),
            ("q=%25", 0),
            ("q=_", 1),
            ("q=%5C", 0),
            ("tag=%27%3B--", 0),
        ] {
            let r = app.get(&format!("/v1/videos?{query}"), Some(&s.access)).await;
            assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
            assert_eq!(
                r.body["items"].as_array().map(Vec::len),
                Some(expected),
                "{query}: {}",
                r.body
            );
        }
        assert_eq!(
            app.get("/v1/videos", Some(&s.access)).await.body["items"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
    }

    /// Every change reaches `reelflow.catalog`, in order, through the outbox.
    pub async fn changes_are_published_in_order(db: Database) {
        let app = TestApp::new(db).await;
        let s = app.register("pub@example.org", None).await;
        let v = create(&app, &s, json!({"title": "First", "tags": ["x"]})).await;
        let url = format!("/v1/videos/{}", v["id"].as_str().expect("id"));
        app.patch(
            &url,
            Some(&s.access),
            json!({"title": "Second", "visibility": "private"}),
        )
        .await;
        app.delete(&url, Some(&s.access)).await;
        assert_eq!(
            catalog_events(&app).await.len(),
            0,
            "nothing is published before the publisher runs"
        );
        let published = reelflow_serve::outbox::publish_pending(&app.state.db, &app.state.platform.log)
            .await
            .expect("publish");
        assert_eq!(published, 3);
        let events = catalog_events(&app).await;
        let id: uuid::Uuid = v["id"].as_str().expect("id").parse().expect("uuid");
        match &events[..] {
            [
                CatalogEvent::VideoCreated {
                    video_id: a,
                    video: created,
                },
                CatalogEvent::VideoUpdated {
                    video_id: b,
                    video: updated,
                },
                CatalogEvent::VideoDeleted { video_id: c, owner_id },
            ] => {
                assert_eq!((*a, *b, *c), (id, id, id));
                assert_eq!((created.title.as_str(), updated.title.as_str()), ("First", "Second"));
                assert_eq!(created.tags, vec!["x".to_string()]);
                assert_eq!(updated.visibility, reelflow_ingest::events::Visibility::Private);
                assert_eq!(owner_id.to_string(), s.user_id);
            }
            other => panic!("unexpected events {other:?}"),
        }
        assert_eq!(
            reelflow_serve::outbox::publish_pending(&app.state.db, &app.state.platform.log)
                .await
                .expect("publish"),
            0
        );
    }

    /// The process dies after committing a change and before appending its
    /// event; the next process publishes it.
    pub async fn the_outbox_survives_a_crash_between_commit_and_publish(db: Database) {
        let dir;
        let database_url;
        let video_id;
        {
            let app = TestApp::new(db).await;
            let s = app.register("crash@example.org", None).await;
            video_id = create(&app, &s, json!({"title": "Committed"})).await["id"]
                .as_str()
                .expect("id")
                .to_string();
            // No publisher ran: the "process" ends here with the event only
            // in the outbox table.
            database_url = app.config.database_url();
            dir = app.dir;
            drop(app.state);
        }
        let config = reelflow_serve::config::Config::load(&reelflow_serve::config::ConfigArgs {
            data_dir: Some(dir.path().to_path_buf()),
            database_url: Some(database_url),
            ..Default::default()
        })
        .expect("config");
        let platform = reelflow_serve::platform::Platform::open(&config)
            .await
            .expect("platform");
        let state = reelflow_serve::AppState::open(config, platform).await.expect("restart");
        let publisher = reelflow_serve::background::spawn_background(&state);
        let log = state.platform.log.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let found = loop {
            let mut events = Vec::new();
            let n = log.partition_count(CatalogEvent::TOPIC).await.expect("partitions");
            let assignment: Vec<(u32, u64)> = (0..n).map(|p| (p, 0)).collect();
            let mut reader = log.reader(CatalogEvent::TOPIC, &assignment).await.expect("reader");
            for r in reader.poll(100, Duration::from_millis(200)).await.expect("poll") {
                events.push(decode::<CatalogEvent>(&r.value).expect("event").event);
            }
            if !events.is_empty() || tokio::time::Instant::now() > deadline {
                break events;
            }
        };
        publisher.abort();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].video_id().to_string(), video_id);
        assert_eq!(CatalogEvent::TOPIC, "reelflow.catalog");
    }

    /// The catalog's status follows the pipeline's events, forward only: a
    /// late progress event does not take a ready video back.
    pub async fn processing_moves_the_catalog_status_forward_only(db: Database) {
        use axum::body::Body;
        use axum::http::{Method, Request, header};
        use reelflow_ingest::events::{Envelope, ProcessingEvent};

        let app = TestApp::new(db).await;
        let _background = reelflow_serve::background::spawn_background(&app.state);
        let s = app.register("status@example.org", Some("creator")).await;
        let r = app
            .post("/v1/videos", Some(&s.access), json!({"title": "Status"}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let id: uuid::Uuid = r.body["id"].as_str().expect("id").parse().expect("uuid");
        let data = vec![7u8; 1000];
        let put = Request::builder()
            .method(Method::PUT)
            .uri(format!("/v1/videos/{id}/source"))
            .header(header::AUTHORIZATION, format!("Bearer {}", s.access))
            .header(header::CONTENT_TYPE, "video/mp4")
            .header(header::CONTENT_LENGTH, data.len())
            .body(Body::from(data))
            .expect("request");
        assert_eq!(app.send(put).await.status, StatusCode::CREATED);

        let status = || async { app.get(&format!("/v1/videos/{id}"), Some(&s.access)).await.body["status"].clone() };
        let wait_for = |want: &'static str| async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let got = status().await;
                if got == want {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "status stayed {got}, wanted {want}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        assert_eq!(status().await, "uploaded");
        let log = &app.state.platform.log;
        let append = |event: ProcessingEvent| async move {
            let e = Envelope::new(event);
            log.append(ProcessingEvent::TOPIC, e.key().as_bytes(), &e.to_bytes())
                .await
                .expect("append");
        };
        append(ProcessingEvent::Queued { video_id: id }).await;
        wait_for("queued").await;
        append(ProcessingEvent::Transcoding {
            video_id: id,
            percent: 50.0,
        })
        .await;
        wait_for("processing").await;
        append(ProcessingEvent::Failed {
            video_id: id,
            reason: "ffmpeg exited with status 1".into(),
        })
        .await;
        wait_for("failed").await;
        // Late and duplicated progress changes nothing now.
        let late = ProcessingEvent::Transcoding {
            video_id: id,
            percent: 90.0,
        };
        assert!(
            !reelflow_serve::catalog::status::apply(&app.state.db, &late)
                .await
                .expect("apply")
        );
        assert_eq!(status().await, "failed");
        let listed = app.get("/v1/videos?status=failed", Some(&s.access)).await;
        assert_eq!(listed.body["items"][0]["id"], id.to_string(), "{}", listed.body);
        // A later run that succeeds makes it ready; nothing takes it back.
        append(ProcessingEvent::Ready {
            video_id: id,
            renditions: vec![],
            duration_s: 10.0,
            poster_key: None,
            storyboard_key: None,
            output_bytes: 1,
            first_playable_s: None,
        })
        .await;
        wait_for("ready").await;
        for late in [
            ProcessingEvent::Queued { video_id: id },
            ProcessingEvent::Failed {
                video_id: id,
                reason: "late".into(),
            },
        ] {
            assert!(
                !reelflow_serve::catalog::status::apply(&app.state.db, &late)
                    .await
                    .expect("apply")
            );
        }
        assert_eq!(status().await, "ready");
    }
}

on_both_databases!(
    processing_moves_the_catalog_status_forward_only,
    owners_and_admins_manage_videos,
    listings_match_a_plain_filter,
    injection_attempts_are_just_strings,
    changes_are_published_in_order,
    the_outbox_survives_a_crash_between_commit_and_publish,
);
