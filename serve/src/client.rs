//! `reelflow sql` and `reelflow upload`: the platform from a terminal,
//! through the same public API the web console uses.
//!
//! - Sign-in: `REELFLOW_TOKEN` (an access token), or `--email` with the
//!   password on standard input (as `reelflow user create` reads it).
//! - `reelflow sql QUERY`: the rows as an aligned table (or CSV or JSON
//!   with `--format`) and the time they are consistent at; a `SUBSCRIBE`
//!   prints its changes as they happen, one tab-separated line each
//!   (`at`, `diff`, the columns) and `progress <at>` lines.
//! - `reelflow upload FILE`: creates the video, sends the file with the tus
//!   protocol in chunks read from disk (never the whole file in memory),
//!   resumes from the offset the server reports after a dropped
//!   connection, and with `--wait` follows the processing to ready.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Where the API is and who is calling.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The API's address.
    #[arg(long, env = "REELFLOW_API", default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// Sign in with this account's email; the password is read from
    /// standard input. Without it, REELFLOW_TOKEN must hold an access token.
    #[arg(long)]
    pub email: Option<String>,
}

/// `reelflow sql`.
#[derive(Debug, Clone, clap::Args)]
pub struct SqlArgs {
    /// Where the API is and who is calling.
    #[command(flatten)]
    pub client: ClientArgs,
    /// How to print rows: table, csv or json.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    pub format: String,
    /// The statement, such as "SELECT * FROM video_stats LIMIT 10" or
    /// "SUBSCRIBE video_status".
    pub query: String,
}

/// `reelflow upload`.
#[derive(Debug, Clone, clap::Args)]
pub struct UploadArgs {
    /// Where the API is and who is calling.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Title [default: the file's name without its extension].
    #[arg(long)]
    pub title: Option<String>,
    /// Description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Genre.
    #[arg(long)]
    pub genre: Option<String>,
    /// Language (BCP 47).
    #[arg(long)]
    pub language: Option<String>,
    /// public, unlisted or private.
    #[arg(long, default_value = "public")]
    pub visibility: String,
    /// Bytes per PATCH request.
    #[arg(long, default_value_t = 8 << 20)]
    pub chunk_bytes: u64,
    /// Follow the processing until the video is ready (or failed).
    #[arg(long)]
    pub wait: bool,
    /// The video file.
    pub file: PathBuf,
}

/// A signed-in client of the API.
struct Api {
    base: String,
    http: reqwest::Client,
    token: String,
}

/// The message of a problem document, with its hint.
async fn problem(r: reqwest::Response) -> anyhow::Error {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let mut message = body["detail"]
        .as_str()
        .or_else(|| body["title"].as_str())
        .map_or_else(|| status.to_string(), str::to_string);
    if let Some(errors) = body["errors"].as_array() {
        for e in errors {
            message.push_str(&format!(
                "; {}: {}",
                e["field"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("")
            ));
        }
    }
    if let Some(hint) = body["hint"].as_str() {
        message.push_str(&format!(" (hint: {hint})"));
    }
    anyhow::anyhow!("{message} [HTTP {}]", status.as_u16())
}

impl Api {
    async fn sign_in(args: &ClientArgs) -> anyhow::Result<Self> {
        let base = args.api.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        let token = match &args.email {
            Some(email) => {
                let mut password = String::new();
                std::io::stdin()
                    .read_line(&mut password)
                    .context("reading the password from standard input")?;
                let password = password.trim_end_matches(['\n', '\r']);
                let r = http
                    .post(format!("{base}/v1/auth/login"))
                    .json(&json!({"email": email, "password": password}))
                    .send()
                    .await
                    .with_context(|| format!("reaching {base}"))?;
                if !r.status().is_success() {
                    return Err(problem(r).await.context("signing in"));
                }
                let session: Value = r.json().await?;
                session["access_token"]
                    .as_str()
                    .context("the sign-in answer has no access token")?
                    .to_string()
            }
            None => std::env::var("REELFLOW_TOKEN").map_err(|_| {
                anyhow::anyhow!("sign in with --email (password on standard input) or set REELFLOW_TOKEN")
            })?,
        };
        Ok(Self { base, http, token })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Runs `query` and hands each server-sent event to `on_event` until it
    /// returns false or the stream ends.
    async fn subscribe(
        &self,
        query: &str,
        mut on_event: impl FnMut(&str, Value) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let r = self
            .request(reqwest::Method::POST, "/v1/sql")
            .header("accept", "text/event-stream")
            .header("content-type", "text/plain")
            .body(query.to_string())
            .send()
            .await?;
        if !r.status().is_success() {
            return Err(problem(r).await);
        }
        let mut body = r.bytes_stream();
        let mut buffer = String::new();
        while let Some(chunk) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk.context("reading the stream")?));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut event = "message";
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = e.trim();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                let data: Value = serde_json::from_str(&data).context("an event that is not JSON")?;
                if event == "error" {
                    let mut message = data["detail"].as_str().unwrap_or("the subscription failed").to_string();
                    if let Some(hint) = data["hint"].as_str() {
                        message.push_str(&format!(" (hint: {hint})"));
                    }
                    bail!(message);
                }
                if !on_event(event, data)? {
                    return Ok(());
                }
            }
        }
        bail!("the subscription's stream ended")
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `reelflow sql QUERY`.
pub async fn sql(args: SqlArgs) -> anyhow::Result<()> {
    let api = Api::sign_in(&args.client).await?;
    let statement = args.query.trim_start();
    if statement.len() >= 9 && statement[..9].eq_ignore_ascii_case("subscribe") {
        let mut out = std::io::stdout();
        let mut names: Vec<String> = Vec::new();
        return api
            .subscribe(statement, |event, data| {
                match event {
                    "subscribed" => {
                        names = data["columns"]
                            .as_array()
                            .map(|c| c.iter().map(|c| text(&c["name"])).collect())
                            .unwrap_or_default();
                        writeln!(out, "at\tdiff\t{}", names.join("\t"))?;
                    }
                    "changes" => {
                        for c in data["changes"].as_array().into_iter().flatten() {
                            // In the columns' order, as the header names them.
                            let values: Vec<String> = names.iter().map(|n| text(&c["row"][n])).collect();
                            writeln!(out, "{}\t{}\t{}", c["at"], c["diff"], values.join("\t"))?;
                        }
                    }
                    "progress" => writeln!(out, "progress {}", data["at"])?,
                    _ => {}
                }
                out.flush()?;
                Ok(true)
            })
            .await;
    }
    let accept = match args.format.as_str() {
        "csv" => "text/csv",
        _ => "application/json",
    };
    let r = api
        .request(reqwest::Method::POST, "/v1/sql")
        .header("accept", accept)
        .json(&json!({"query": args.query}))
        .send()
        .await
        .with_context(|| format!("reaching {}", api.base))?;
    if !r.status().is_success() {
        return Err(problem(r).await);
    }
    match args.format.as_str() {
        "csv" => print!("{}", r.text().await?),
        "json" => println!("{}", r.text().await?),
        _ => {
            let answer: Value = r.json().await?;
            print_table(&answer);
        }
    }
    Ok(())
}

/// An answer as psql prints one: aligned columns, then the row count and
/// the time it is consistent at.
fn print_table(answer: &Value) {
    let names: Vec<String> = answer["columns"]
        .as_array()
        .map(|c| c.iter().map(|c| text(&c["name"])).collect())
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = answer["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| r.as_array().map(|r| r.iter().map(text).collect()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
    for row in &rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c:<w$} "))
            .collect::<Vec<_>>()
            .join("|")
    };
    println!("{}", line(&names));
    println!(
        "{}",
        widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+")
    );
    for row in &rows {
        println!("{}", line(row));
    }
    let truncated = if answer["truncated"] == true {
        ", cut at the row limit"
    } else {
        ""
    };
    println!(
        "({} row{}{truncated}; as of {})",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        text(&answer["as_of_time"])
    );
}

/// `reelflow upload FILE`.
pub async fn upload(args: UploadArgs) -> anyhow::Result<()> {
    let api = Api::sign_in(&args.client).await?;
    let size = tokio::fs::metadata(&args.file)
        .await
        .with_context(|| format!("reading {}", args.file.display()))?
        .len();
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    let title = args.title.clone().unwrap_or_else(|| {
        Path::new(&name)
            .file_stem()
            .map_or_else(|| name.clone(), |s| s.to_string_lossy().into_owned())
    });
    let mut video = json!({"title": title, "description": args.description, "visibility": args.visibility});
    if let Some(g) = &args.genre {
        video["genre"] = json!(g);
    }
    if let Some(l) = &args.language {
        video["language"] = json!(l);
    }
    let r = api
        .request(reqwest::Method::POST, "/v1/videos")
        .json(&video)
        .send()
        .await?;
    if !r.status().is_success() {
        return Err(problem(r).await.context("creating the video"));
    }
    let video: Value = r.json().await?;
    let id = video["id"].as_str().context("the new video has no id")?.to_string();
    eprintln!("video {id}: uploading {name} ({size} bytes)");

    let metadata = format!(
        "video_id {},filename {},filetype {}",
        STANDARD.encode(&id),
        STANDARD.encode(&name),
        STANDARD.encode("video/mp4")
    );
    let r = api
        .request(reqwest::Method::POST, "/v1/uploads")
        .header("tus-resumable", "1.0.0")
        .header("upload-length", size.to_string())
        .header("upload-metadata", metadata)
        .send()
        .await?;
    if !r.status().is_success() {
        return Err(problem(r).await.context("starting the upload"));
    }
    let location = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .context("the upload has no Location")?
        .to_string();
    let upload_path = location.strip_prefix(&api.base).unwrap_or(&location).to_string();
    send_file(&api, &upload_path, &args.file, size, args.chunk_bytes.max(1)).await?;
    eprintln!("video {id}: uploaded");
    println!("{id}");
    if args.wait {
        wait_until_processed(&api, &id).await?;
    }
    Ok(())
}

/// PATCHes the file from the server's offset on, a chunk at a time; after
/// a failure, asks the server where it stands (HEAD) and goes on from there.
async fn send_file(api: &Api, path: &str, file: &Path, size: u64, chunk_bytes: u64) -> anyhow::Result<()> {
    let mut file = tokio::fs::File::open(file).await?;
    let mut offset = 0u64;
    let mut failures = 0u32;
    let mut buffer = Vec::new();
    while offset < size {
        let n = chunk_bytes.min(size - offset);
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        buffer.resize(n as usize, 0);
        file.read_exact(&mut buffer).await?;
        let sent = api
            .request(reqwest::Method::PATCH, path)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(buffer.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                offset = r
                    .headers()
                    .get("upload-offset")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(offset + n);
                failures = 0;
                eprintln!("  {:>3}% ({offset} of {size} bytes)", offset * 100 / size.max(1));
            }
            Ok(r) if r.status().is_client_error() && r.status() != reqwest::StatusCode::CONFLICT => {
                return Err(problem(r).await.context("sending the file"));
            }
            other => {
                failures += 1;
                if failures > 5 {
                    return match other {
                        Ok(r) => Err(problem(r).await.context("sending the file")),
                        Err(e) => Err(anyhow::Error::new(e).context("sending the file")),
                    };
                }
                tokio::time::sleep(Duration::from_millis(500 * u64::from(failures))).await;
                // Where does the server stand?
                let head = api
                    .request(reqwest::Method::HEAD, path)
                    .header("tus-resumable", "1.0.0")
                    .send()
                    .await;
                if let Ok(h) = head
                    && let Some(at) = h
                        .headers()
                        .get("upload-offset")
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                {
                    eprintln!("  resuming at {at} bytes");
                    offset = at;
                }
            }
        }
    }
    Ok(())
}

/// Follows the video's processing (a subscription to its `video_status`
/// row) until it is ready or failed.
async fn wait_until_processed(api: &Api, id: &str) -> anyhow::Result<()> {
    if uuid::Uuid::parse_str(id).is_err() {
        bail!("{id} is not a video id");
    }
    let query =
        format!("SUBSCRIBE TO (SELECT status, stage, progress_pct, error FROM video_status WHERE video_id = '{id}')");
    let mut outcome: Option<Result<(), String>> = None;
    let mut last = String::new();
    api.subscribe(&query, |event, data| {
        if event == "changes" {
            for c in data["changes"].as_array().into_iter().flatten() {
                if c["diff"].as_i64().unwrap_or(0) <= 0 {
                    continue;
                }
                let row = &c["row"];
                let status = text(&row["status"]);
                let line = format!(
                    "{status} {} {:.0}%",
                    text(&row["stage"]),
                    row["progress_pct"].as_f64().unwrap_or(0.0)
                );
                if line != last {
                    eprintln!("  {line}");
                    last = line;
                }
                match status.as_str() {
                    "ready" => outcome = Some(Ok(())),
                    "failed" => outcome = Some(Err(text(&row["error"]))),
                    _ => {}
                }
            }
        }
        // Stop at the progress marker after the final state.
        Ok(!(event == "progress" && outcome.is_some()))
    })
    .await?;
    match outcome {
        Some(Ok(())) => {
            eprintln!("video {id}: ready");
            Ok(())
        }
        Some(Err(reason)) => bail!("video {id} failed: {reason}"),
        None => bail!("the subscription ended before the video was processed"),
    }
}
