//! The `reelflow` command as a user runs it: `reelflow up` on a fresh data
//! dir answering over a real socket, `reelflow config`, clear errors for
//! bad settings, and `reelflow upload` (resuming through a cut connection)
//! and `reelflow sql` (tables, CSV, SUBSCRIBE) against it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod common;

use common::{Up, reelflow};

/// A minimal HTTP/1.1 request over a plain socket: status code and body.
fn http(addr: &str, method: &str, path: &str, json: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let body = json.unwrap_or("");
    let content_type = if json.is_some() {
        "Content-Type: application/json\r\n"
    } else {
        ""
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    http(addr, "GET", path, None)
}

fn http_post(addr: &str, path: &str, json: &str) -> (u16, String) {
    http(addr, "POST", path, Some(json))
}

#[test]
fn up_serves_health_and_version_and_keeps_state_in_the_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let running = Up::start(&data);
    let addr = running.addr.clone();

    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let got = std::panic::catch_unwind(|| http_get(&addr, "/healthz"));
        match got {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(_) => panic!("reelflow up never answered on {addr}"),
        }
    };
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = http_get(&addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(&addr, "/v1/version");
    assert_eq!(status, 200);
    let version: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(version["log"], "embedded");
    for topic in [
        "reelflow.catalog",
        "reelflow.uploads",
        "reelflow.processing",
        "reelflow.playback",
    ] {
        assert!(
            data.join("log").join(topic).join("topic.json").is_file(),
            "topic {topic} not created"
        );
    }
    drop(running);
}

#[test]
fn config_prints_the_effective_settings_with_secrets_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("reelflow.toml");
    std::fs::write(&file, "[log]\npartitions = 12\n[s3]\nbucket = \"from-file\"\n").expect("write");
    let out = reelflow()
        .args(["config", "--config"])
        .arg(&file)
        .env("REELFLOW_S3_BUCKET", "from-env")
        .env("REELFLOW_S3_SECRET_ACCESS_KEY", "very-secret")
        .env("REELFLOW_S3_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("REELFLOW_DATABASE_URL", "postgres://reelflow:pw123@db/reelflow")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("partitions = 12"), "{text}");
    assert!(
        text.contains("bucket = \"from-env\""),
        "environment beats the file: {text}"
    );
    assert!(
        !text.contains("very-secret") && !text.contains("pw123"),
        "secret leaked: {text}"
    );
    assert!(text.contains("postgres://reelflow:****@db/reelflow"), "{text}");
}

#[test]
fn bad_values_are_refused_with_the_setting_named() {
    let out = reelflow()
        .args(["config"])
        .env("REELFLOW_LOG_PARTITIONS", "zero")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--log-partitions") && err.contains("zero"), "{err}");

    let out = reelflow()
        .args([
            "config",
            "--log-backend",
            "kafka",
            "--kafka-brokers",
            "broker-without-port",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"broker-without-port\" is not host:port"), "{err}");

    let out = reelflow()
        .args(["config", "--config", "/nonexistent/reelflow.toml"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("reading config file /nonexistent/reelflow.toml"),
        "{err}"
    );
}

#[test]
fn only_landed_subcommands_are_offered() {
    let out = reelflow().arg("--help").output().expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    // The benchmarks are `reelflow-bench`, not a subcommand of the product.
    assert!(
        !help.lines().any(|l| l.trim_start().starts_with("bench")),
        "bench offered by:\n{help}"
    );
    for present in [
        "up",
        "serve",
        "transcode",
        "dataflow",
        "config",
        "sql",
        "upload",
        "user",
        "auth",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(present)),
            "{present} missing from:\n{help}"
        );
    }
}

#[test]
fn a_second_up_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = Up::start(dir.path());
    let second = common::up_command(dir.path()).output().expect("second run");
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("in use by another process"), "{err}");
}

/// `reelflow user create ARGS` on `data_dir`, typing `password`.
fn create_user(data_dir: &std::path::Path, args: &[&str], password: &str) -> std::process::Output {
    let mut cmd = reelflow();
    cmd.args(["user", "create", "--data-dir"]).arg(data_dir).args(args);
    common::run_with_password(cmd, password)
}

#[test]
fn the_first_admin_is_created_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let create = |args: &[&str], password: &str| create_user(dir.path(), args, password);
    let out = create(&["--email", "root@example.org", "--admin"], "a long admin password");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created admin account root@example.org"));
    let weak = create(&["--email", "weak@example.org"], "short");
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password must be at least 10 characters"));
    let again = create(&["--email", "ROOT@example.org"], "a long admin password");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let running = Up::start(dir.path());
    let addr = running.addr.clone();
    let (status, body) = http_post(
        &addr,
        "/v1/auth/login",
        r#"{"email":"root@example.org","password":"a long admin password"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let session: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(session["user"]["role"], "admin");
    // There is no default account to sign in with.
    let (status, _) = http_post(
        &addr,
        "/v1/auth/login",
        r#"{"email":"admin@localhost","password":"admin"}"#,
    );
    assert_eq!(status, 401);
}

/// `reelflow up` runs the dataflows: a video created through the API shows
/// up in the live views within moments, and admins read them over HTTP.
#[test]
fn up_keeps_live_views_admins_can_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = create_user(
        dir.path(),
        &["--email", "ops@example.org", "--admin"],
        "a long admin password",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let running = Up::start(dir.path());
    let base = format!("http://{}", running.addr);
    let http = reqwest::blocking::Client::new();
    let call = |method: reqwest::Method, path: &str, token: Option<&str>, body: Option<serde_json::Value>| {
        let mut req = http.request(method, format!("{base}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().expect("request");
        (r.status().as_u16(), r.json::<serde_json::Value>().unwrap_or_default())
    };
    let (status, session) = call(
        reqwest::Method::POST,
        "/v1/auth/login",
        None,
        Some(serde_json::json!({"email": "ops@example.org", "password": "a long admin password"})),
    );
    assert_eq!(status, 200, "{session}");
    let admin = session["access_token"].as_str().expect("token").to_string();
    let admin_id = session["user"]["id"].as_str().expect("id").to_string();
    let (status, video) = call(
        reqwest::Method::POST,
        "/v1/videos",
        Some(&admin),
        Some(serde_json::json!({"title": "Live views", "genre": "jazz"})),
    );
    assert_eq!(status, 201, "{video}");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = call(
            reqwest::Method::GET,
            "/v1/views/genre_stats?key=jazz",
            Some(&admin),
            None,
        );
        // 503 while the dataflows are starting; then the row appears.
        assert!(status == 200 || status == 503, "{status} {body}");
        if body["rows"].as_array().is_some_and(|r| r.len() == 1) {
            assert_eq!(body["rows"][0]["videos"], 1, "{body}");
            assert_eq!(body["rows"][0]["views"], 0, "{body}");
            assert!(body["as_of"].as_u64().is_some(), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new video never reached genre_stats: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = call(
        reqwest::Method::GET,
        &format!("/v1/views/storage_usage?key={admin_id}"),
        Some(&admin),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(body["rows"][0]["videos"], 1, "{body}");
    let (status, body) = call(reqwest::Method::GET, "/v1/views", Some(&admin), None);
    assert_eq!(status, 200);
    assert!(
        body["views"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v["name"] == "trending")),
        "{body}"
    );

    // Clear errors for bad requests; only admins read the views here.
    let (status, body) = call(reqwest::Method::GET, "/v1/views/nope", Some(&admin), None);
    assert_eq!(status, 404, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("video_stats")),
        "{body}"
    );
    let (status, body) = call(
        reqwest::Method::GET,
        "/v1/views/video_stats?key=not-a-uuid",
        Some(&admin),
        None,
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("not a UUID"), "{body}");
    let (status, body) = call(
        reqwest::Method::GET,
        "/v1/views/video_stats?as_of=1",
        Some(&admin),
        None,
    );
    assert_eq!(status, 422, "{body}");
    let (status, _) = call(reqwest::Method::GET, "/v1/views/video_stats", None, None);
    assert_eq!(status, 401);
    let (status, viewer) = call(
        reqwest::Method::POST,
        "/v1/auth/register",
        None,
        Some(
            serde_json::json!({"email": "v@example.org", "password": "a long viewer password", "display_name": "V", "role": "viewer"}),
        ),
    );
    assert_eq!(status, 201, "{viewer}");
    let (status, _) = call(
        reqwest::Method::GET,
        "/v1/views/video_stats",
        viewer["access_token"].as_str(),
        None,
    );
    assert_eq!(status, 403);

    // Security finding 12: /metrics on the API is for admins.
    let anonymous = http.get(format!("{base}/metrics")).send().expect("metrics");
    assert_eq!(anonymous.status(), 401, "/metrics without a token");
    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth(&admin)
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    assert!(metrics.contains("reelflow_dataflow_records_total"), "{metrics}");
    assert!(
        metrics.contains("reelflow_dataflow_partition_lag{topic=\"reelflow.catalog\""),
        "{metrics}"
    );
}

/// `reelflow upload` and `reelflow sql` from a terminal against `reelflow
/// up`: a creator signs in with email and password (on standard input),
/// uploads a clip with tus and waits for it to be processed, reads it back
/// with SQL as a table, follows it with SUBSCRIBE, and gets clear errors.
#[test]
fn upload_and_sql_from_the_terminal() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let up = Up::start(&dir.path().join("data"));
    let api = format!("http://{}", up.addr);
    let email = "terminal@example.org";
    let password = "a terminal user's password";
    let (status, body) = http_post(
        &up.addr,
        "/v1/auth/register",
        &format!(r#"{{"email": "{email}", "password": "{password}"}}"#),
    );
    assert_eq!(status, 201, "{body}");
    let token = serde_json::from_str::<serde_json::Value>(&body).expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let clip = dir.path().join("beach day.mp4");
    reelflow_ingest::transcode::test_pattern::TestPattern::new(Some("640x360"), true, 4)
        .write(&clip)
        .expect("ffmpeg writes the clip");

    // Upload in small chunks, and wait until it is processed.
    let mut upload = reelflow();
    upload
        .args([
            "upload",
            "--api",
            &api,
            "--email",
            email,
            "--chunk-bytes",
            "65536",
            "--genre",
            "travel",
            "--wait",
        ])
        .arg(&clip);
    let out = common::run_with_password(upload, password);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "reelflow upload failed: {stderr}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "prints the video id: {id}");
    assert!(
        stderr.contains("100% (") && stderr.contains(&format!("video {id}: ready")),
        "{stderr}"
    );

    // Through a connection that is cut once half the file has gone up, the
    // upload goes on from the server's offset, and the file arrives whole
    // (the transcoder makes it ready).
    let size = std::fs::metadata(&clip).expect("clip").len() as usize;
    let (proxy, cuts) = cutting_proxy(&up.addr, size / 2);
    let mut upload = reelflow();
    upload
        .args([
            "upload",
            "--api",
            &format!("http://{proxy}"),
            "--email",
            email,
            "--chunk-bytes",
            "32768",
            "--wait",
        ])
        .arg(&clip);
    let out = common::run_with_password(upload, password);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the upload through a cut connection failed: {stderr}"
    );
    assert_eq!(
        cuts.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the connection was cut"
    );
    assert!(stderr.contains("resuming at") && stderr.contains(": ready"), "{stderr}");

    // SQL as a table, with the time it read at.
    let mut sql = reelflow();
    sql.args(["sql", "--api", &api, "--email", email]).arg(format!(
        "SELECT video_id, status, renditions FROM video_status WHERE video_id = '{id}'"
    ));
    let out = common::run_with_password(sql, password);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("video_id") && lines[0].contains("status"), "{stdout}");
    assert!(lines[1].starts_with("---"), "{stdout}");
    assert!(lines[2].contains(&id) && lines[2].contains("ready"), "{stdout}");
    assert!(lines[3].starts_with("(1 row; as of 20"), "{stdout}");
    let count = reelflow()
        .args([
            "sql",
            "--api",
            &api,
            "--format",
            "csv",
            "SELECT count(*) AS n FROM video_status WHERE status = 'ready'",
        ])
        .env("REELFLOW_TOKEN", &token)
        .output()
        .expect("sql as csv");
    assert_eq!(String::from_utf8_lossy(&count.stdout), "n\n2\n");

    // A mistake gets the server's message and hint, and a failing status.
    let bad = reelflow()
        .args(["sql", "--api", &api, "SELECT nope FROM video_stats"])
        .env("REELFLOW_TOKEN", &token)
        .output()
        .expect("bad sql");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("nope") && err.contains("HTTP 400"),
        "{err}"
    );
    let nobody = reelflow()
        .args(["sql", "--api", &api, "SELECT 1"])
        .output()
        .expect("no sign-in");
    assert!(
        String::from_utf8_lossy(&nobody.stderr).contains("REELFLOW_TOKEN"),
        "says how to sign in"
    );

    // SUBSCRIBE prints changes as they come: the header, the row, progress.
    let mut follow = reelflow()
        .args(["sql", "--api", &api])
        .arg(format!(
            "SUBSCRIBE TO (SELECT video_id, status FROM video_status WHERE video_id = '{id}')"
        ))
        .env("REELFLOW_TOKEN", &token)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("subscribe");
    let mut lines = std::io::BufReader::new(follow.stdout.take().expect("stdout")).lines();
    let header = lines.next().expect("a header").expect("line");
    assert_eq!(header, "at\tdiff\tvideo_id\tstatus");
    let row = lines.next().expect("the row").expect("line");
    assert!(row.ends_with(&format!("\t1\t{id}\tready")), "{row}");
    let progress = lines.next().expect("a progress line").expect("line");
    assert!(progress.starts_with("progress "), "{progress}");
    let _ = follow.kill();
    let _ = follow.wait();
}

/// A TCP proxy to `upstream` that cuts one connection, the way a flaky
/// network does: the one that takes the bytes sent up through it past
/// `cut_after`. Returns its address and how many connections it cut.
fn cutting_proxy(upstream: &str, cut_after: usize) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let cuts = Arc::new(AtomicUsize::new(0));
    let (upstream, counter) = (upstream.to_string(), Arc::clone(&cuts));
    // Counted over every connection: the client may spread its requests
    // over several, and the upload's bytes are most of what goes through.
    let carried = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(&upstream) else {
                return;
            };
            let (mut c_in, mut s_out) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
            let (mut s_in, mut c_out) = (server, client);
            let (counter, carried) = (Arc::clone(&counter), Arc::clone(&carried));
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(k) = c_in.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    // Cut whichever connection carries the upload past the mark.
                    if carried.fetch_add(k, Ordering::SeqCst) + k > cut_after
                        && counter
                            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                            .is_ok()
                    {
                        let _ = c_in.shutdown(std::net::Shutdown::Both);
                        let _ = s_out.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                    if s_out.write_all(&buf[..k]).is_err() {
                        break;
                    }
                }
                let _ = s_out.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_in, &mut c_out);
                let _ = c_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, cuts)
}
