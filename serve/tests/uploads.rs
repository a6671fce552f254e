//! Uploads through HTTP: the tus protocol against a local object directory
//! on SQLite, and against the real S3 server on a real PostgreSQL; resuming
//! after a server restart; checksums; limits; the plain PUT; and the
//! `upload_completed` event that follows the durable object.

mod common;

mod cases {
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode, header};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use reelflow_ingest::events::{TopicEvent, UploadEvent, decode};
    use reelflow_ingest::storage::ObjectKey;
    use reelflow_ingest::{EventLog, ObjectStore, PartitionReader};
    use serde_json::json;
    use sha2::Digest;

    use super::common::{Database, Session, TestApp, assert_problem, use_s3};

    const MIB: usize = 1024 * 1024;

    /// Which pair of database and object store a case runs on.
    #[derive(Clone, Copy, Debug)]
    pub enum Setup {
        SqliteLocal,
        PostgresS3,
    }

    async fn app(setup: Setup, adjust: impl FnOnce(&mut reelflow_serve::Config)) -> TestApp {
        let db = match setup {
            Setup::SqliteLocal => Database::Sqlite,
            Setup::PostgresS3 => Database::Postgres,
        };
        TestApp::with(db, |c| {
            if matches!(setup, Setup::PostgresS3) {
                use_s3(c);
            }
            c.uploads.part_size_bytes = 5 * MIB;
            adjust(c);
        })
        .await
    }

    fn file(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect()
    }

    async fn video(app: &TestApp, s: &Session, visibility: &str) -> String {
        let r = app
            .post(
                "/v1/videos",
                Some(&s.access),
                json!({"title": "Upload me", "visibility": visibility}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().expect("id").to_string()
    }

    fn tus(method: Method, uri: &str, token: &str) -> axum::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("tus-resumable", "1.0.0")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
    }

    fn metadata(video_id: &str) -> String {
        format!(
            "video_id {},filename {}",
            STANDARD.encode(video_id),
            STANDARD.encode("clip.mp4")
        )
    }

    async fn create(app: &TestApp, token: &str, video_id: &str, length: usize) -> super::common::Response {
        app.send(
            tus(Method::POST, "/v1/uploads", token)
                .header("upload-length", length.to_string())
                .header("upload-metadata", metadata(video_id))
                .body(Body::empty())
                .expect("request"),
        )
        .await
    }

    async fn patch(
        app: &TestApp,
        token: &str,
        location: &str,
        offset: usize,
        bytes: &[u8],
        checksum: Option<String>,
    ) -> super::common::Response {
        let mut req = tus(Method::PATCH, location, token)
            .header(header::CONTENT_TYPE, "application/offset+octet-stream")
            .header("upload-offset", offset.to_string());
        if let Some(c) = checksum {
            req = req.header("upload-checksum", c);
        }
        app.send(req.body(Body::from(bytes.to_vec())).expect("request")).await
    }

    async fn head_offset(app: &TestApp, token: &str, location: &str) -> Option<u64> {
        let r = app
            .send(tus(Method::HEAD, location, token).body(Body::empty()).expect("request"))
            .await;
        (r.status == StatusCode::OK).then(|| {
            r.headers["upload-offset"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("number")
        })
    }

    async fn stored(app: &TestApp, video_id: &str) -> Vec<u8> {
        let key = ObjectKey::parse(&format!("videos/{video_id}/source")).expect("key");
        app.state
            .platform
            .store
            .get(&key, None)
            .await
            .expect("source object")
            .collect()
            .await
            .expect("read")
    }

    async fn upload_events(app: &TestApp) -> Vec<UploadEvent> {
        reelflow_serve::outbox::publish_pending(&app.state.db, &app.state.platform.log)
            .await
            .expect("publish");
        let log = &app.state.platform.log;
        let n = log.partition_count(UploadEvent::TOPIC).await.expect("partitions");
        let mut total = 0;
        for p in 0..n {
            total += log.high_watermark(UploadEvent::TOPIC, p).await.expect("hw");
        }
        let assignment: Vec<(u32, u64)> = (0..n).map(|p| (p, 0)).collect();
        let mut reader = log.reader(UploadEvent::TOPIC, &assignment).await.expect("reader");
        let mut out = Vec::new();
        while (out.len() as u64) < total {
            for r in reader.poll(100, std::time::Duration::from_secs(5)).await.expect("poll") {
                out.push(decode::<UploadEvent>(&r.value).expect("event").event);
            }
        }
        out
    }

    /// A file sent in pieces, across a server restart, with a corrupted
    /// chunk along the way, ends up whole in object storage, and only then
    /// is `upload_completed` published.
    pub async fn a_tus_upload_resumes_after_a_restart(setup: Setup) {
        let app = app(setup, |_| {}).await;
        let s = app.register("uploader@example.org", None).await;
        let video_id = video(&app, &s, "private").await;
        let data = file(13 * MIB + 12_345);

        let options = app
            .send(
                Request::builder()
                    .method(Method::OPTIONS)
                    .uri("/v1/uploads")
                    .body(Body::empty())
                    .expect("req"),
            )
            .await;
        assert_eq!(options.status, StatusCode::NO_CONTENT);
        assert_eq!(options.headers["tus-version"], "1.0.0");
        assert!(
            options.headers["tus-extension"]
                .to_str()
                .expect("ascii")
                .contains("checksum")
        );

        let r = create(&app, &s.access, &video_id, data.len()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.headers["tus-resumable"], "1.0.0");
        assert!(r.headers.contains_key("upload-expires"));
        let location = r.headers[header::LOCATION].to_str().expect("ascii").to_string();
        assert!(location.starts_with("/v1/uploads/"), "{location}");

        // 6 MiB: one stored part and 1 MiB of tail.
        let r = patch(&app, &s.access, &location, 0, &data[..6 * MIB], None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        assert_eq!(r.headers["upload-offset"], (6 * MIB).to_string().as_str());
        assert_eq!(head_offset(&app, &s.access, &location).await, Some(6 * MIB as u64));
        assert!(
            upload_events(&app).await.is_empty(),
            "nothing is published before the upload completes"
        );

        let app = app.restart().await;
        assert_eq!(
            head_offset(&app, &s.access, &location).await,
            Some(6 * MIB as u64),
            "the offset survives a restart"
        );

        // A chunk at the wrong offset is refused.
        let r = patch(&app, &s.access, &location, 5 * MIB, &data[5 * MIB..6 * MIB], None).await;
        assert_problem(&r, StatusCode::CONFLICT, "conflict");
        // A chunk whose checksum does not match is discarded.
        let chunk = &data[6 * MIB..10 * MIB];
        let wrong = format!("sha1 {}", STANDARD.encode(sha1::Sha1::digest(b"something else")));
        let r = patch(&app, &s.access, &location, 6 * MIB, chunk, Some(wrong)).await;
        assert_eq!(r.status.as_u16(), 460, "{}", r.body);
        assert_eq!(head_offset(&app, &s.access, &location).await, Some(6 * MIB as u64));
        let right = format!("sha256 {}", STANDARD.encode(sha2::Sha256::digest(chunk)));
        let r = patch(&app, &s.access, &location, 6 * MIB, chunk, Some(right)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let r = patch(&app, &s.access, &location, 10 * MIB, &data[10 * MIB..], None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        assert_eq!(r.headers["upload-offset"], data.len().to_string().as_str());

        assert_eq!(
            sha2::Sha256::digest(stored(&app, &video_id).await),
            sha2::Sha256::digest(&data),
            "stored object differs"
        );
        let v = app.get(&format!("/v1/videos/{video_id}"), Some(&s.access)).await;
        assert_eq!(v.body["status"], "uploaded");
        match &upload_events(&app).await[..] {
            [
                UploadEvent::UploadCompleted {
                    video_id: v,
                    size_bytes,
                    object_key,
                    file_name,
                    owner_id,
                    ..
                },
            ] => {
                assert_eq!(v.to_string(), video_id);
                assert_eq!(*size_bytes, data.len() as u64);
                assert_eq!(object_key, &format!("videos/{video_id}/source"));
                assert_eq!(file_name.as_deref(), Some("clip.mp4"));
                assert_eq!(owner_id.to_string(), s.user_id);
            }
            other => panic!("expected one upload_completed, got {other:?}"),
        }
        // Nothing of the upload's machinery is left in the store.
        let left = app
            .state
            .platform
            .store
            .list(&format!("videos/{video_id}/"))
            .await
            .expect("list");
        assert_eq!(
            left.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
            vec![format!("videos/{video_id}/source").as_str()]
        );
        // The video has its source now: a second upload is refused.
        assert_problem(
            &create(&app, &s.access, &video_id, 10).await,
            StatusCode::CONFLICT,
            "conflict",
        );
    }

    /// A small file in the creation request itself, and a plain PUT.
    pub async fn small_files_upload_in_one_request(setup: Setup) {
        let app = app(setup, |_| {}).await;
        let s = app.register("small@example.org", None).await;
        let first = video(&app, &s, "public").await;
        let data = file(300_000);
        let r = app
            .send(
                tus(Method::POST, "/v1/uploads", &s.access)
                    .header("upload-length", data.len().to_string())
                    .header("upload-metadata", metadata(&first))
                    .header(header::CONTENT_TYPE, "application/offset+octet-stream")
                    .body(Body::from(data.clone()))
                    .expect("request"),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.headers["upload-offset"], data.len().to_string().as_str());
        assert_eq!(stored(&app, &first).await, data);

        let second = video(&app, &s, "public").await;
        let put = |len: Option<usize>| {
            let mut req = Request::builder()
                .method(Method::PUT)
                .uri(format!("/v1/videos/{second}/source"))
                .header(header::AUTHORIZATION, format!("Bearer {}", s.access))
                .header(header::CONTENT_TYPE, "video/mp4");
            if let Some(l) = len {
                req = req.header(header::CONTENT_LENGTH, l);
            }
            req.body(Body::from(data.clone())).expect("request")
        };
        assert_eq!(app.send(put(None)).await.status, StatusCode::LENGTH_REQUIRED);
        let r = app.send(put(Some(data.len()))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["size_bytes"], data.len());
        assert_eq!(stored(&app, &second).await, data);
        let events = upload_events(&app).await;
        assert_eq!(events.len(), 2, "{events:?}");
    }

    /// A whole-file checksum in the metadata is checked against the stored
    /// object: a match travels in the event, a mismatch discards the upload.
    pub async fn whole_file_checksums_are_verified(setup: Setup) {
        let app = app(setup, |_| {}).await;
        let s = app.register("careful@example.org", None).await;
        let data = file(6 * MIB + 5);
        let send = |video: String, claimed: String| {
            let metadata = format!("{},checksum {}", metadata(&video), STANDARD.encode(claimed));
            tus(Method::POST, "/v1/uploads", &s.access)
                .header("upload-length", data.len().to_string())
                .header("upload-metadata", metadata)
                .header(header::CONTENT_TYPE, "application/offset+octet-stream")
                .body(Body::from(data.clone()))
                .expect("request")
        };
        let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let good = video(&app, &s, "public").await;
        let r = app
            .send(send(
                good.clone(),
                format!("sha256:{}", hex(&sha2::Sha256::digest(&data))),
            ))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let bad = video(&app, &s, "public").await;
        let r = app
            .send(send(
                bad.clone(),
                format!("sha1:{}", hex(&sha1::Sha1::digest(b"another file"))),
            ))
            .await;
        assert_eq!(r.status.as_u16(), 460, "{}", r.body);
        assert_eq!(r.body["type"], "https://reelflow.dev/problems/checksum-mismatch");
        assert!(
            app.state
                .platform
                .store
                .list(&format!("videos/{bad}/"))
                .await
                .expect("list")
                .is_empty(),
            "the bad file is gone"
        );
        assert_eq!(
            app.get(&format!("/v1/videos/{bad}"), Some(&s.access)).await.body["status"],
            "awaiting_upload"
        );
        let r = app.send(send(bad, "md5:abc".into())).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        match &upload_events(&app).await[..] {
            [
                UploadEvent::UploadCompleted {
                    video_id,
                    checksum: Some(c),
                    ..
                },
            ] => {
                assert_eq!(video_id.to_string(), good);
                assert_eq!(c.hex, hex(&sha2::Sha256::digest(&data)));
            }
            other => panic!("expected one upload_completed with its checksum, got {other:?}"),
        }
    }

    /// Security finding 6: a PATCH with `Upload-Checksum` was staged whole
    /// on disk before its length was checked (a 100 MiB body on a 1,000-byte
    /// upload staged 83-89 MiB). The server now stops reading at the
    /// upload's end: an endless body gets its 413 at once.
    pub async fn regression_a_checksummed_chunk_is_not_staged_past_the_upload(setup: Setup) {
        let app = app(setup, |_| {}).await;
        let s = app.register("stager@example.org", None).await;
        let video_id = video(&app, &s, "public").await;
        let r = create(&app, &s.access, &video_id, 1_000).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let location = r.headers["location"].to_str().expect("ascii").to_string();
        let endless = futures::stream::repeat_with(|| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![7u8; 64 << 10])));
        let request = tus(Method::PATCH, &location, &s.access)
            .header(header::CONTENT_TYPE, "application/offset+octet-stream")
            .header("upload-offset", "0")
            .header("upload-checksum", format!("sha1 {}", STANDARD.encode([0u8; 20])))
            .body(Body::from_stream(endless))
            .expect("request");
        let r = tokio::time::timeout(std::time::Duration::from_secs(60), app.send(request))
            .await
            .expect("the server stops reading at the upload's end");
        assert_problem(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
        assert!(
            r.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("only 1000 more bytes")),
            "{}",
            r.body
        );
        assert_eq!(
            head_offset(&app, &s.access, &location).await,
            Some(0),
            "nothing was kept"
        );
    }

    /// Security finding 9: eight concurrent creations of 3.3 MB against an
    /// 8 MiB quota were all checked before any was stored (3 accepted, 10 MB
    /// stored). The quota is reserved atomically: exactly two fit.
    pub async fn regression_concurrent_uploads_cannot_overrun_the_quota(setup: Setup) {
        let app = app(setup, |c| c.uploads.quota_bytes_per_user = 8 * MIB as u64).await;
        let s = app.register("racer@example.org", None).await;
        let mut videos = Vec::new();
        for _ in 0..8 {
            videos.push(video(&app, &s, "public").await);
        }
        let length = 3_300_000;
        let answers = futures::future::join_all(videos.iter().map(|v| create(&app, &s.access, v, length))).await;
        let accepted = answers.iter().filter(|r| r.status == StatusCode::CREATED).count();
        assert_eq!(
            accepted,
            2,
            "{:?}",
            answers.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        for r in answers.iter().filter(|r| r.status != StatusCode::CREATED) {
            assert_problem(r, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
            assert!(
                r.body["detail"].as_str().is_some_and(|d| d.contains("quota")),
                "{}",
                r.body
            );
        }
    }

    /// Protocol errors, permissions, limits and termination.
    pub async fn the_protocol_is_enforced(setup: Setup) {
        let app = app(setup, |c| {
            c.uploads.max_size_bytes = 20 * MIB as u64;
            c.uploads.quota_bytes_per_user = 30 * MIB as u64;
        })
        .await;
        let s = app.register("strict@example.org", None).await;
        let other = app.register("someone@example.org", None).await;
        let vid = video(&app, &s, "public").await;
        let private = video(&app, &s, "private").await;

        let r = app
            .send(
                Request::post("/v1/uploads")
                    .header(header::AUTHORIZATION, format!("Bearer {}", s.access))
                    .body(Body::empty())
                    .expect("req"),
            )
            .await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(r.headers["tus-version"], "1.0.0");
        let r = app
            .send(
                tus(Method::POST, "/v1/uploads", &s.access)
                    .header("upload-metadata", metadata(&vid))
                    .body(Body::empty())
                    .expect("req"),
            )
            .await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "bad-request");
        let r = app
            .send(
                tus(Method::POST, "/v1/uploads", &s.access)
                    .header("upload-length", "10")
                    .body(Body::empty())
                    .expect("req"),
            )
            .await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_problem(
            &create(&app, &s.access, &vid, 21 * MIB).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
        );
        assert_problem(
            &create(&app, &other.access, &vid, 10).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        assert_problem(
            &create(&app, &other.access, &private, 10).await,
            StatusCode::NOT_FOUND,
            "not-found",
        );
        let r = app
            .send(
                Request::post("/v1/uploads")
                    .header("tus-resumable", "1.0.0")
                    .header("upload-length", "10")
                    .body(Body::empty())
                    .expect("req"),
            )
            .await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");

        let r = create(&app, &s.access, &vid, 20 * MIB).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let location = r.headers[header::LOCATION].to_str().expect("ascii").to_string();
        // The quota counts uploads in progress.
        let r = create(&app, &s.access, &private, 11 * MIB).await;
        assert_problem(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
        assert!(
            r.body["detail"].as_str().is_some_and(|d| d.contains("quota")),
            "{}",
            r.body
        );

        assert_eq!(
            head_offset(&app, &other.access, &location).await,
            None,
            "another user cannot see the upload"
        );
        let r = app
            .send(
                tus(Method::PATCH, &location, &s.access)
                    .header("upload-offset", "0")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from("{}"))
                    .expect("req"),
            )
            .await;
        assert_problem(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
        let r = patch(&app, &s.access, &location, 0, b"abc", Some("md5 AAAA".into())).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "bad-request");

        let r = patch(&app, &s.access, &location, 0, &file(MIB), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = app
            .send(
                tus(Method::DELETE, &location, &s.access)
                    .body(Body::empty())
                    .expect("req"),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        assert_eq!(
            head_offset(&app, &s.access, &location).await,
            None,
            "a terminated upload is gone"
        );
        assert!(
            app.state
                .platform
                .store
                .list(&format!("videos/{vid}/"))
                .await
                .expect("list")
                .is_empty(),
            "its bytes are gone too"
        );
        // Terminating freed the quota.
        assert_eq!(
            create(&app, &s.access, &private, 11 * MIB).await.status,
            StatusCode::CREATED
        );
    }
}

/// From the first byte to a playable ladder: a clip uploaded with tus is
/// picked up by a transcoder from `reelflow.uploads`, and `ready` with the
/// ladder arrives on `reelflow.processing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_clip_is_transcoded() {
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode, header};
    use base64::Engine;
    use reelflow_ingest::events::{ProcessingEvent, TopicEvent, decode};
    use reelflow_ingest::{EventLog, PartitionReader};

    let app = common::TestApp::new(common::Database::Sqlite).await;
    let s = app.register("maker@example.org", None).await;
    let r = app
        .post(
            "/v1/videos",
            Some(&s.access),
            serde_json::json!({"title": "Test pattern"}),
        )
        .await;
    let video_id = r.body["id"].as_str().expect("id").to_string();
    let clip = app.dir.path().join("clip.mp4");
    reelflow_ingest::transcode::test_pattern::TestPattern::new(Some("640x360"), true, 3)
        .write(&clip)
        .expect("generating a clip");
    let bytes = std::fs::read(&clip).expect("clip");
    let metadata = format!(
        "video_id {}",
        base64::engine::general_purpose::STANDARD.encode(&video_id)
    );
    let r = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/v1/uploads")
                .header("tus-resumable", "1.0.0")
                .header(header::AUTHORIZATION, format!("Bearer {}", s.access))
                .header("upload-length", bytes.len().to_string())
                .header("upload-metadata", metadata)
                .header(header::CONTENT_TYPE, "application/offset+octet-stream")
                .body(Body::from(bytes))
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    let background = reelflow_serve::background::spawn_background(&app.state);
    let stats = std::sync::Arc::new(reelflow_ingest::transcode::WorkerStats::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(reelflow_ingest::transcode::run_worker(
        app.state.platform.log.clone(),
        app.state.platform.store.clone(),
        app.config.transcoder(),
        std::sync::Arc::clone(&stats),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let log = app.state.platform.log.clone();
    let n = log.partition_count(ProcessingEvent::TOPIC).await.expect("partitions");
    let mut reader = log
        .reader(ProcessingEvent::TOPIC, &(0..n).map(|p| (p, 0)).collect::<Vec<_>>())
        .await
        .expect("reader");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut stages = Vec::new();
    let ready = loop {
        assert!(tokio::time::Instant::now() < deadline, "no ready event; saw {stages:?}");
        let mut done = None;
        for r in reader
            .poll(100, std::time::Duration::from_millis(500))
            .await
            .expect("poll")
        {
            let e = decode::<ProcessingEvent>(&r.value).expect("event").event;
            assert_eq!(e.video_id().to_string(), video_id);
            stages.push(
                serde_json::to_value(&e).expect("json")["type"]
                    .as_str()
                    .expect("type")
                    .to_string(),
            );
            if matches!(e, ProcessingEvent::Ready { .. } | ProcessingEvent::Failed { .. }) {
                done = Some(e);
            }
        }
        if let Some(e) = done {
            break e;
        }
    };
    stop_tx.send(()).expect("stop");
    worker.await.expect("worker task").expect("worker");
    background.abort();
    assert_eq!(&stages[..3], ["queued", "probing", "transcoding"], "{stages:?}");
    let ProcessingEvent::Ready { renditions, .. } = ready else {
        panic!("transcoding failed: {ready:?}")
    };
    assert_eq!(
        renditions.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["360p", "240p"]
    );
    assert_eq!(stats.ready.load(std::sync::atomic::Ordering::Relaxed), 1);
}

macro_rules! on_both_setups {
    ($($case:ident),* $(,)?) => {
        mod sqlite_local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::cases::$case(super::cases::Setup::SqliteLocal).await;
                }
            )*
        }
        mod postgres_s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::cases::$case(super::cases::Setup::PostgresS3).await;
                }
            )*
        }
    };
}

on_both_setups!(
    a_tus_upload_resumes_after_a_restart,
    small_files_upload_in_one_request,
    whole_file_checksums_are_verified,
    the_protocol_is_enforced,
    regression_a_checksummed_chunk_is_not_staged_past_the_upload,
    regression_concurrent_uploads_cannot_overrun_the_quota,
);
