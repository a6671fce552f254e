//! SQL over the live views on `reelflow up`, through every front end a
//! user has: the real psql client (queries, `\dt`, `\d video_stats`),
//! tokio-postgres with the extended protocol and parameters, and
//! `POST /v1/sql` as JSON, CSV and Arrow. Rows follow the caller's role;
//! writes, file reads, sleeps and runaway queries get errors and the server
//! stays up; a reader never sees two views disagree while a writer appends;
//! `SUBSCRIBE` streams changes over HTTP (server-sent events), pgwire and
//! psql, and drops a subscriber that stops reading.

use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use reqwest::blocking::Client;
use serde_json::{Value, json};

/// A running `reelflow up` with an admin, two creators and a viewer.
struct Platform {
    running: common::UpWithAdmin,
    admin: String,
}

/// The process, its address and the client, as `common` started them.
impl std::ops::Deref for Platform {
    type Target = common::UpWithAdmin;

    fn deref(&self) -> &common::UpWithAdmin {
        &self.running
    }
}

const ADMIN: &str = "ops@example.org";
const PASSWORD: &str = "a long password for sql";

impl Platform {
    fn start(config: &str) -> Self {
        let mut p = Self {
            running: common::UpWithAdmin::start(ADMIN, PASSWORD, config),
            admin: String::new(),
        };
        p.admin = p.login(ADMIN);
        p
    }

    fn login(&self, email: &str) -> String {
        let r: Value = self
            .http
            .post(format!("{}/v1/auth/login", self.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .and_then(|r| r.json())
            .expect("login");
        r["access_token"].as_str().unwrap_or_else(|| panic!("{r}")).to_string()
    }

    /// Registers `email` with `role`; returns (user id, access token).
    fn register(&self, email: &str, role: &str) -> (String, String) {
        let r: Value = self
            .http
            .post(format!("{}/v1/auth/register", self.base))
            .json(&json!({"email": email, "password": PASSWORD, "role": role}))
            .send()
            .and_then(|r| r.json())
            .expect("register");
        (
            r["user"]["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_string(),
            r["access_token"].as_str().expect("token").to_string(),
        )
    }

    fn video(&self, token: &str, genre: &str) -> String {
        let r: Value = self
            .http
            .post(format!("{}/v1/videos", self.base))
            .bearer_auth(token)
            .json(&json!({"title": "Clip", "genre": genre}))
            .send()
            .and_then(|r| r.json())
            .expect("video");
        r["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_string()
    }

    /// A playback session on `video` (as `viewer`, if given).
    fn play(&self, video: &str, viewer: Option<&str>, played_ms: u64) {
        let mut req = self
            .http
            .post(format!("{}/v1/playback/events", self.base))
            .json(&json!({
                "video_id": video,
                "events": [
                    {"type": "session_start"},
                    {"type": "first_frame", "startup_ms": 400},
                    {"type": "heartbeat", "position_s": played_ms as f64 / 1000.0, "played_ms": played_ms},
                ]
            }));
        if let Some(t) = viewer {
            req = req.bearer_auth(t);
        }
        let r = req.send().expect("beacons");
        assert_eq!(r.status(), 202, "{}", r.text().unwrap_or_default());
    }

    fn sql(&self, token: &str, query: &str, accept: &str) -> reqwest::blocking::Response {
        self.http
            .post(format!("{}/v1/sql", self.base))
            .bearer_auth(token)
            .header("accept", accept)
            .json(&json!({"query": query}))
            .send()
            .expect("sql")
    }

    fn sql_json(&self, token: &str, query: &str) -> Value {
        let r = self.sql(token, query, "application/json");
        let status = r.status();
        let body: Value = r.json().expect("json");
        assert_eq!(status, 200, "{query}: {body}");
        body
    }

    /// Polls until `query` (as admin) answers `want` rows.
    fn wait_for_rows(&self, query: &str, want: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.sql(&self.admin, query, "application/json");
            if r.status() == 200 {
                let body: Value = r.json().expect("json");
                if body["rows"].as_array().is_some_and(|r| r.len() == want) {
                    return body;
                }
                assert!(Instant::now() < deadline, "{query}: {body}");
            }
            assert!(Instant::now() < deadline, "{query} never answered");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// psql as `user`; returns (success, stdout, stderr).
    fn psql(&self, user: &str, password: &str, command: &str) -> (bool, String, String) {
        let (host, port) = &self.up.pg;
        let out = Command::new("psql")
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                host,
                "-p",
                &port.to_string(),
                "-U",
                user,
                "-d",
                "reelflow",
                "-c",
                command,
            ])
            .output()
            .expect("psql (Debian's postgresql-client) is installed by scripts/test.sh");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn psql_ok(&self, user: &str, command: &str) -> String {
        let (ok, out, err) = self.psql(user, PASSWORD, command);
        assert!(ok, "psql {command}: {err}");
        out
    }

    fn pg_config(&self, user: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.up.pg.0)
            .port(self.up.pg.1)
            .user(user)
            .password(PASSWORD)
            .dbname("reelflow")
            .connect_timeout(Duration::from_secs(10));
        c
    }
}

const CONFIG: &str = "[sql]\ntimeout_s = 4\nmemory_mib = 32\nsubscribe_buffer = 300\n\n[limits]\nbeacons_per_ip_per_minute = 1000000\nsessions_per_ip_per_minute = 1000000\n";

#[test]
fn psql_http_and_drivers_read_the_live_views_by_role() {
    let p = Platform::start(CONFIG);
    let (_, creator_a) = p.register("a@example.org", "creator");
    let (_, creator_b) = p.register("b@example.org", "creator");
    let (viewer_id, viewer) = p.register("v@example.org", "viewer");
    let va = p.video(&creator_a, "jazz");
    let vb = p.video(&creator_b, "rock");
    p.play(&va, Some(&viewer), 10_000);
    p.play(&vb, None, 4_000);
    let stats = p.wait_for_rows(
        "SELECT video_id, views, watch_time_s FROM video_stats ORDER BY video_id",
        2,
    );

    // HTTP, JSON: typed columns, the time read at.
    assert_eq!(stats["columns"][1], json!({"name": "views", "type": "int8"}), "{stats}");
    assert_eq!(stats["columns"][2]["type"], "float8");
    let as_of = stats["as_of"].as_u64().expect("as_of");
    let by_id = |id: &str| {
        stats["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r[0] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {stats}"))
    };
    assert_eq!(by_id(&va), json!([va, 1, 10.0]));
    assert_eq!(by_id(&vb), json!([vb, 1, 4.0]));

    // The same read at the same time, again; older than the history fails.
    let again = p.sql_json(
        &p.admin,
        &format!("SELECT video_id, views, watch_time_s FROM video_stats ORDER BY video_id AS OF {as_of}"),
    );
    assert_eq!(again["rows"], stats["rows"]);
    assert_eq!(again["as_of"], as_of);
    let old = p.sql(&p.admin, "SELECT * FROM video_stats AS OF 1000", "application/json");
    assert_eq!(old.status(), 503);
    let problem: Value = old.json().expect("problem");
    assert_eq!(problem["sqlstate"], "55000", "{problem}");

    // CSV and Arrow.
    let csv = p.sql(
        &p.admin,
        "SELECT genre, videos, views FROM genre_stats ORDER BY genre",
        "text/csv",
    );
    assert_eq!(csv.status(), 200);
    assert!(csv.headers().contains_key("reelflow-as-of"));
    assert_eq!(csv.text().expect("csv"), "genre,videos,views\njazz,1,1\nrock,1,1\n");
    let arrow = p.sql(
        &p.admin,
        "SELECT video_id, views FROM video_stats",
        "application/vnd.apache.arrow.stream",
    );
    assert_eq!(arrow.status(), 200);
    let bytes = arrow.bytes().expect("arrow");
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes.to_vec()), None)
        .expect("an Arrow IPC stream");
    let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(rows, 2);

    // psql: queries, \dt and \d, as the admin.
    let out = p.psql_ok(
        ADMIN,
        &format!("SELECT views, watch_time_s FROM video_stats WHERE video_id = '{va}'"),
    );
    // float8 prints as PostgreSQL prints it.
    assert_eq!(out.trim(), "1|10");
    let tables = p.psql_ok(ADMIN, "\\dt");
    for view in ["video_stats", "trending", "watch_history", "source_progress"] {
        assert!(tables.contains(&format!("public|{view}|table")), "{tables}");
    }
    let described = p.psql_ok(ADMIN, "\\d video_stats");
    for line in [
        "video_id|text",
        "views|bigint",
        "watch_time_s|double precision",
        "last_view_at|timestamp with time zone",
    ] {
        assert!(described.contains(line), "{line} in {described}");
    }
    let (ok, _, err) = p.psql(ADMIN, "not the password", "SELECT 1");
    assert!(
        !ok && err.to_lowercase().contains("password authentication failed"),
        "{err}"
    );

    // Accounts become the callers the rules apply to: a creator's videos
    // are the ones the catalog says they own, a viewer is their own user.
    // The rules themselves are the golden files' (sql/tests/slt/access.slt,
    // over every front end).
    let out = p.psql_ok("a@example.org", "SELECT video_id FROM video_stats");
    assert_eq!(out.trim(), va);
    let out = p.psql_ok("v@example.org", "SELECT user_id, video_id FROM watch_history");
    assert_eq!(out.trim(), format!("{viewer_id}|{va}"));

    // tokio-postgres: the extended protocol, parameters, binary types.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (client, connection) = p
            .pg_config(ADMIN)
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let rows = client
            .query(
                "SELECT video_id, views, watch_time_s, last_view_at FROM video_stats WHERE video_id = $1",
                &[&va],
            )
            .await
            .expect("query with a parameter");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, String>("video_id"), va);
        assert_eq!(rows[0].get::<_, i64>("views"), 1);
        assert_eq!(rows[0].get::<_, f64>("watch_time_s"), 10.0);
        let last: chrono::DateTime<chrono::Utc> = rows[0].get("last_view_at");
        assert!((chrono::Utc::now() - last).num_seconds().abs() < 120, "{last}");
        // Lists travel as arrays (video_status.renditions is a text[]).
        let list = client
            .query_one("SELECT make_array('720p', '360p') AS renditions", &[])
            .await
            .expect("a text[] column");
        assert_eq!(list.get::<_, Vec<String>>("renditions"), ["720p", "360p"]);
        let n = client
            .query_one("SELECT count(*) FROM video_stats WHERE views >= $1", &[&1i64])
            .await
            .expect("int parameter");
        assert_eq!(n.get::<_, i64>(0), 2);

        // Grafana's PostgreSQL data source: its query builder asks for the
        // version, the schemas, the tables and a table's columns in these
        // words; then a panel's query charts.
        let text = |rows: Vec<tokio_postgres::SimpleQueryMessage>| -> Vec<Vec<String>> {
            rows.into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).unwrap_or("").to_string()).collect())
                    }
                    _ => None,
                })
                .collect()
        };
        let version = client
            .simple_query("SELECT current_setting('server_version_num')::int/100 as version")
            .await
            .expect("Grafana's version query");
        assert_eq!(text(version), [["1500"]]);
        let schemas = client
            .simple_query(GRAFANA_SCHEMAS)
            .await
            .expect("Grafana's schema list");
        assert_eq!(text(schemas), [["public"]]);
        let tables = text(client.simple_query(GRAFANA_TABLES).await.expect("Grafana's table list"));
        assert!(tables.contains(&vec!["video_stats".to_string()]) && tables.len() == 10, "{tables:?}");
        let columns = client
            .query(GRAFANA_COLUMNS, &[])
            .await
            .expect("Grafana's column list over the extended protocol");
        let columns: Vec<(String, String)> = columns.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert!(columns.contains(&("views".into(), "bigint".into())), "{columns:?}");
        assert!(columns.contains(&("last_view_at".into(), "timestamp with time zone".into())), "{columns:?}");
        let chart = client
            .query(
                "SELECT last_view_at AS \"time\", views AS value FROM video_stats WHERE last_view_at BETWEEN '2020-01-01T00:00:00Z' AND '2100-01-01T00:00:00Z' ORDER BY 1",
                &[],
            )
            .await
            .expect("a time-series panel's query");
        assert_eq!(chart.len(), 2);
    });
}

/// Grafana's PostgreSQL data source's metadata queries, as it sends them.
const GRAFANA_SCHEMAS: &str = "SELECT schema_name AS \"name\"
    FROM information_schema.schemata
    WHERE schema_name NOT IN ('information_schema',
                              'pg_catalog',
                              'pg_toast',
                              '_timescaledb_cache',
                              '_timescaledb_catalog',
                              '_timescaledb_internal',
                              '_timescaledb_config',
                              'timescaledb_information',
                              'timescaledb_experimental')
    ORDER BY schema_name";
/// Grafana's test of a table's schema: the schemas of the search path.
macro_rules! in_search_path {
    () => {
        "
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )"
    };
}
const GRAFANA_TABLES: &str = concat!(
    "SELECT
    CASE WHEN ",
    in_search_path!(),
    "
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS \"table\"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
    ORDER BY CASE WHEN ",
    in_search_path!(),
    " THEN 0 ELSE 1 END, 1"
);
const GRAFANA_COLUMNS: &str = concat!(
    "SELECT quote_ident(column_name) AS \"column\", data_type AS \"type\"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('video_stats'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('video_stats'))[1]
          AND quote_ident(table_name) = (parse_ident('video_stats'))[2]
        ELSE quote_ident(table_name) = 'video_stats'
          AND ",
    in_search_path!(),
    "
      END"
);

#[test]
fn writes_escapes_and_runaway_queries_get_errors_and_the_server_stays_up() {
    let p = Platform::start(CONFIG);
    p.wait_for_rows("SELECT 1", 1);
    let cases = [
        ("CREATE TABLE t (a BIGINT)", "25006"),
        ("INSERT INTO video_stats (views) VALUES (1)", "25006"),
        ("DELETE FROM video_stats", "25006"),
        ("COPY video_stats TO '/tmp/reelflow-escape.csv'", "25006"),
        ("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'", "25006"),
        ("SELECT * FROM '/etc/passwd'", "42P01"),
        ("SELECT pg_sleep(5)", "42883"),
        ("SELECT * FROM no_such_view", "42P01"),
        ("SELEC 1", "42601"),
        ("SELECT count(*) FROM range(200000) a, range(200000) b", "57014"),
        ("SELECT value FROM range(20000000) ORDER BY value DESC", "53200"),
    ];
    for (query, code) in cases {
        let started = Instant::now();
        let r = p.sql(&p.admin, query, "application/json");
        let status = r.status();
        let problem: Value = r.json().expect("problem");
        assert!(
            status.is_client_error() || status.is_server_error(),
            "{query}: {status} {problem}"
        );
        assert_eq!(problem["sqlstate"], code, "{query}: {problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()), "{problem}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{query} took {:?}",
            started.elapsed()
        );
        // Still up.
        assert_eq!(p.sql_json(&p.admin, "SELECT 1 AS one")["rows"], json!([[1]]));
    }
    // psql shows the position and the hint.
    let (ok, _, err) = p.psql(
        ADMIN,
        PASSWORD,
        "SELECT views FROM video_stats WHERE views > 1 ORDER BY 1 LIMT 5",
    );
    assert!(!ok);
    assert!(err.contains("42601") || err.contains("ERROR"), "{err}");
    assert!(
        err.contains("LINE 1:") && err.contains('^'),
        "psql points at the error: {err}"
    );
    let (ok, _, err) = p.psql(ADMIN, PASSWORD, "DROP TABLE video_stats");
    assert!(!ok && err.contains("HINT:") && err.contains("read-only"), "{err}");

    // A cancel request stops a running statement.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (client, connection) = p
            .pg_config(ADMIN)
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let cancel = client.cancel_token();
        let started = Instant::now();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            cancel.cancel_query(tokio_postgres::NoTls).await.expect("cancel");
        });
        let err = client
            .simple_query("SELECT count(*) FROM range(200000) a, range(200000) b")
            .await
            .expect_err("canceled");
        canceller.await.expect("canceller");
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "canceled, not timed out: {:?}",
            started.elapsed()
        );
        let one = client
            .query_one("SELECT 1::BIGINT", &[])
            .await
            .expect("the connection still works");
        assert_eq!(one.get::<_, i64>(0), 1);
    });
}

/// Two views that must agree — each video's views in `video_stats` and
/// sessions in `qoe`, and the platform's views summed by video and by genre
/// — read together while beacons keep arriving: every answer agrees.
#[test]
fn a_join_of_two_views_never_sees_half_an_update() {
    let p = Platform::start(CONFIG);
    let (_, creator) = p.register("c@example.org", "creator");
    let videos = [p.video(&creator, "jazz"), p.video(&creator, "rock")];
    p.play(&videos[0], None, 1000);
    p.wait_for_rows("SELECT video_id FROM video_stats", 1);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (base, videos, stop) = (p.base.clone(), videos.clone(), stop.clone());
        std::thread::spawn(move || {
            let http = Client::new();
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = http
                    .post(format!("{base}/v1/playback/events"))
                    .json(&json!({"video_id": videos[(sent % 2) as usize], "events": [{"type": "session_start"}]}))
                    .send()
                    .expect("beacon");
                assert_eq!(r.status(), 202);
                sent += 1;
            }
            sent
        })
    };
    let query = "SELECT \
        (SELECT count(*) FROM video_stats s JOIN qoe q ON s.video_id = q.video_id WHERE s.views <> q.sessions) AS disagreeing, \
        (SELECT sum(views) FROM video_stats) AS by_video, \
        (SELECT sum(views) FROM genre_stats) AS by_genre";
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut seen = std::collections::BTreeSet::new();
    let mut reads = 0;
    while Instant::now() < deadline {
        let r = p.sql_json(&p.admin, query);
        let row = &r["rows"][0];
        assert_eq!(row[0], 0, "views and sessions disagree at {}: {r}", r["as_of"]);
        assert_eq!(
            row[1], row[2],
            "views by video and by genre disagree at {}: {r}",
            r["as_of"]
        );
        seen.insert(row[1].as_i64().expect("views"));
        reads += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = writer.join().expect("writer");
    assert!(sent > 20, "the writer kept writing ({sent})");
    assert!(
        seen.len() > 3,
        "reads saw the views move ({reads} reads, totals {seen:?})"
    );
}

/// A subscription's rows as they add up: row → count.
#[derive(Default, Debug)]
struct Accumulated {
    rows: std::collections::BTreeMap<String, i64>,
    progress: Option<i64>,
}

impl Accumulated {
    fn apply(&mut self, row: String, diff: i64) {
        let n = self.rows.entry(row.clone()).or_default();
        *n += diff;
        assert!(*n >= 0, "{row} went below zero");
        if *n == 0 {
            self.rows.remove(&row);
        }
    }

    fn has(&self, needle: &str) -> bool {
        self.rows.keys().any(|r| r.contains(needle))
    }
}

/// Events of a `SUBSCRIBE` over HTTP, read by a thread: (event, data).
fn sse(p: &Platform, token: &str, query: &str) -> std::sync::mpsc::Receiver<(String, Value)> {
    use std::io::BufRead;
    let r = Client::builder()
        .build()
        .expect("client")
        .post(format!("{}/v1/sql", p.base))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .json(&json!({"query": query}))
        .send()
        .expect("subscribe over HTTP");
    assert_eq!(r.status(), 200, "{query}");
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut event = String::new();
        for line in std::io::BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                let data: Value = serde_json::from_str(d).expect("event data is JSON");
                if tx.send((event.clone(), data)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Reads `events` into `state` until `done` holds after a progress marker.
fn follow_sse(
    events: &std::sync::mpsc::Receiver<(String, Value)>,
    state: &mut Accumulated,
    what: &str,
    done: impl Fn(&Accumulated) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (event, data) = events
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{what}: not seen within 30 s; the subscription holds {state:?}"));
        match event.as_str() {
            "subscribed" => assert!(data["as_of"].as_i64().is_some(), "{data}"),
            "changes" => {
                for c in data["changes"].as_array().expect("changes") {
                    let at = c["at"].as_i64().expect("at");
                    assert!(
                        state.progress.is_none_or(|p| at >= p - 1),
                        "change at {at} after progress {state:?}"
                    );
                    state.apply(c["row"].to_string(), c["diff"].as_i64().expect("diff"));
                }
            }
            "progress" => {
                let at = data["at"].as_i64().expect("at");
                assert!(state.progress.is_none_or(|p| at > p), "progress went back to {at}");
                state.progress = Some(at);
                if done(state) {
                    return;
                }
            }
            other => panic!("{what}: unexpected event {other}: {data}"),
        }
    }
}

/// `SUBSCRIBE` through every front end while the platform runs: server-sent
/// events over HTTP, tokio-postgres over the extended protocol, and psql's
/// `COPY (SUBSCRIBE …) TO STDOUT`. Each starts with the rows of the moment,
/// then follows changes as they happen; a creator's new video joins their
/// subscription and never another creator's; shapes that cannot be kept up
/// to date get clear errors.
#[test]
fn subscriptions_stream_changes_over_http_pgwire_and_psql() {
    use std::io::BufRead;
    let p = Platform::start(CONFIG);
    let (_, creator_a) = p.register("sub-a@example.org", "creator");
    let (creator_b_id, creator_b) = p.register("sub-b@example.org", "creator");
    let a1 = p.video(&creator_a, "jazz");
    let b1 = p.video(&creator_b, "rock");
    p.play(&a1, None, 1000);
    p.play(&b1, None, 1000);
    p.wait_for_rows("SELECT video_id FROM video_stats", 2);

    // HTTP: each creator follows their own videos' views.
    let events_a = sse(&p, &creator_a, "SUBSCRIBE TO (SELECT video_id, views FROM video_stats)");
    let events_b = sse(&p, &creator_b, "SUBSCRIBE video_stats");
    let (mut state_a, mut state_b) = (Accumulated::default(), Accumulated::default());
    follow_sse(&events_a, &mut state_a, "creator a's snapshot", |s| {
        s.progress.is_some()
    });
    assert_eq!(
        state_a.rows.keys().collect::<Vec<_>>(),
        [&json!({"video_id": a1, "views": 1}).to_string()],
        "{state_a:?}"
    );
    follow_sse(&events_b, &mut state_b, "creator b's snapshot", |s| {
        s.progress.is_some()
    });
    assert!(state_b.rows.len() == 1 && state_b.has(&b1), "{state_b:?}");

    // psql: COPY (SUBSCRIBE …) TO STDOUT prints changes as they come.
    let (host, port) = p.up.pg.clone();
    let mut psql = Command::new("psql")
        .env("PGPASSWORD", PASSWORD)
        .args([
            "-X",
            "-h",
            &host,
            "-p",
            &port.to_string(),
            "-U",
            ADMIN,
            "-d",
            "reelflow",
            "-c",
        ])
        .arg("COPY (SUBSCRIBE TO (SELECT video_id, views FROM video_stats)) TO STDOUT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("psql");
    let (psql_tx, psql_lines) = std::sync::mpsc::channel::<String>();
    let stdout = psql.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if psql_tx.send(line).is_err() {
                return;
            }
        }
    });

    // tokio-postgres: the extended protocol, rows as they come.
    let (pg_tx, pg_rows) = std::sync::mpsc::channel::<(i64, bool, Option<i64>, Option<String>, Option<i64>)>();
    let config = p.pg_config(ADMIN);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            use futures::StreamExt;
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(connection);
            let rows = client
                .query_raw(
                    "SUBSCRIBE TO (SELECT video_id, views FROM video_stats)",
                    std::iter::empty::<i64>(),
                )
                .await
                .expect("SUBSCRIBE over the extended protocol");
            let mut rows = std::pin::pin!(rows);
            while let Some(Ok(row)) = rows.next().await {
                let sent = pg_tx.send((
                    row.get("at"),
                    row.get("progressed"),
                    row.get("diff"),
                    row.get("video_id"),
                    row.get("views"),
                ));
                if sent.is_err() {
                    return;
                }
            }
        });
    });

    // A second view of a1: its row goes from 1 view to 2, seen as it
    // happens by both pgwire clients.
    p.play(&a1, None, 1000);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = psql_lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("psql printed the new view within 30 s");
        let cells: Vec<&str> = line.split('\t').collect();
        assert_eq!(cells.len(), 5, "at, progressed, diff, video_id, views: {line}");
        assert!(cells[0].parse::<i64>().is_ok(), "{line}");
        if cells[1] == "t" {
            assert_eq!(&cells[2..], ["\\N", "\\N", "\\N"], "a progress marker: {line}");
            continue;
        }
        if cells[3] == a1 && cells[4] == "2" {
            assert_eq!(cells[2], "1", "{line}");
            break;
        }
    }
    let mut last_progress = 0;
    loop {
        let (at, progressed, diff, video, views) = pg_rows
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("tokio-postgres received the new view within 30 s");
        if progressed {
            assert!(
                at > last_progress && diff.is_none() && video.is_none(),
                "a progress marker"
            );
            last_progress = at;
            continue;
        }
        assert!(
            at >= last_progress - 1,
            "a change at {at} after progress {last_progress}"
        );
        if video.as_deref() == Some(a1.as_str()) && views == Some(2) {
            assert_eq!(diff, Some(1));
            break;
        }
    }

    // A video created after the subscription joins its creator's, and only
    // theirs.
    let a2 = p.video(&creator_a, "jazz");
    p.play(&a2, None, 1000);
    follow_sse(&events_a, &mut state_a, "creator a's new video", |s| {
        s.has(&a2) && s.has("\"views\":2")
    });
    let mut want: Vec<String> = [(a1.as_str(), 2), (a2.as_str(), 1)]
        .iter()
        .map(|(v, n)| json!({"video_id": v, "views": n}).to_string())
        .collect();
    want.sort();
    assert_eq!(state_a.rows.keys().cloned().collect::<Vec<_>>(), want, "{state_a:?}");
    assert!(state_a.rows.values().all(|n| *n == 1), "{state_a:?}");
    follow_sse(&events_b, &mut state_b, "creator b, a while later", |s| {
        s.progress > state_a.progress
    });
    assert!(state_b.rows.len() == 1 && state_b.has(&b1), "{state_b:?}");

    // Rights that shrink end a subscription: made a viewer, creator b no
    // longer reads their video's stats, and is told to subscribe again.
    let r = p
        .http
        .put(format!("{}/v1/users/{creator_b_id}/role", p.base))
        .bearer_auth(&p.admin)
        .json(&json!({"role": "viewer"}))
        .send()
        .expect("set role");
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (event, data) = events_b
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("creator b's subscription ends within 30 s of the role change");
        if event == "error" {
            assert_eq!(data["sqlstate"], "42501", "{data}");
            assert!(
                data["hint"].as_str().unwrap_or("").contains("subscribe again"),
                "{data}"
            );
            break;
        }
    }

    // What cannot be followed, or asked for as JSON, gets a clear error.
    let r = p.sql(&p.admin, "SUBSCRIBE video_stats", "application/json");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().expect("problem");
    assert_eq!(body["sqlstate"], "0A000", "{body}");
    assert!(
        body["hint"].as_str().unwrap_or("").contains("text/event-stream"),
        "{body}"
    );
    for (query, sqlstate) in [
        ("SUBSCRIBE TO (SELECT count(*) FROM video_stats)", "0A000"),
        (
            "SUBSCRIBE TO (SELECT * FROM video_stats s JOIN qoe q ON s.video_id = q.video_id)",
            "0A000",
        ),
        ("SUBSCRIBE nope", "42P01"),
    ] {
        let r = p.sql(&p.admin, query, "text/event-stream");
        assert_eq!(r.status(), 400, "{query}");
        let body: Value = r.json().expect("problem");
        assert_eq!(body["sqlstate"], sqlstate, "{query}: {body}");
    }
    let (ok, _, err) = p.psql(ADMIN, PASSWORD, "SUBSCRIBE TO (SELECT sum(views) FROM video_stats)");
    assert!(!ok && err.contains("SUBSCRIBE cannot follow an aggregate"), "{err}");
    let _ = psql.kill();
    let _ = psql.wait();

    // A subscriber that stops reading is dropped once more changes wait for
    // it than sql.subscribe_buffer (300 here) allows, with an error it reads
    // when it comes back; the server and the other subscriptions go on.
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    let (resume, resume_rx) = std::sync::mpsc::channel::<()>();
    let (pg, addr) = (p.pg_config(ADMIN), format!("{}:{}", p.up.pg.0, p.up.pg.1));
    let slow = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            use futures::StreamExt;
            // A small receive buffer, so the server feels the stop soon.
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket.set_recv_buffer_size(4096).expect("buffer size");
            let stream = socket.connect(addr.parse().expect("address")).await.expect("connect");
            let (client, connection) = pg.connect_raw(stream, tokio_postgres::NoTls).await.expect("sign in");
            tokio::spawn(connection);
            let rows = client
                // Wide rows (4 KB each), so the kernel's buffers fill soon.
                .query_raw(
                    "SUBSCRIBE TO (SELECT *, repeat('x', 4000) AS padding FROM source_progress)",
                    std::iter::empty::<i64>(),
                )
                .await
                .expect("subscribe");
            let mut rows = std::pin::pin!(rows);
            rows.next().await.expect("a first row").expect("a row");
            started_tx.send(()).expect("signal");
            tokio::task::spawn_blocking(move || resume_rx.recv()).await.ok();
            let mut read = 0;
            while let Some(row) = rows.next().await {
                match row {
                    Ok(_) => read += 1,
                    Err(e) => {
                        return (
                            read,
                            e.as_db_error()
                                .map(|d| (d.code().code().to_string(), d.message().to_string())),
                        );
                    }
                }
            }
            (read, None)
        })
    });
    started
        .recv_timeout(Duration::from_secs(30))
        .expect("the slow subscriber started");
    let dropped = |p: &Platform| {
        let metrics = p
            .http
            .get(format!("{}/metrics", p.base))
            .bearer_auth(&p.admin)
            .send()
            .and_then(|r| r.text())
            .expect("metrics");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("reelflow_dataflow_subscriptions_dropped_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .expect("the dropped-subscriptions counter")
    };
    // Viewers keep the platform busy, so source_progress keeps changing.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let players: Vec<_> = (0..4)
        .map(|_| {
            let (base, video, stop) = (p.base.clone(), b1.clone(), stop.clone());
            std::thread::spawn(move || {
                let http = Client::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = http
                        .post(format!("{base}/v1/playback/events"))
                        .json(&json!({"video_id": video, "events": [{"type": "session_start"}]}))
                        .send()
                        .expect("beacon");
                    assert_eq!(r.status(), 202);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while dropped(&p) == 0 {
        assert!(
            Instant::now() < deadline,
            "the subscriber that stopped reading was never dropped"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for player in players {
        player.join().expect("player");
    }
    resume.send(()).expect("resume");
    let (read, error) = slow.join().expect("the slow subscriber");
    let (code, message) =
        error.unwrap_or_else(|| panic!("the slow subscription ended without an error after {read} rows"));
    assert_eq!(code, "54000", "{message}");
    assert!(message.contains("fell") && message.contains("behind"), "{message}");
    // Everyone else goes on.
    let before = state_a.progress;
    follow_sse(&events_a, &mut state_a, "creator a, after the slow one went", |s| {
        s.progress > before
    });
    assert_eq!(
        p.sql_json(&p.admin, "SELECT count(*) FROM video_stats")["rows"][0][0],
        3
    );
    assert_eq!(dropped(&p), 1, "only the subscriber that stopped reading was dropped");
}
