//! What every benchmark shares: loading traffic into a log, reading this
//! process's CPU time and peak memory, the creator account and video a
//! run needs, and printing a report.

use anyhow::Context;
use serde_json::{Value, json};

/// Appends `traffic`'s catalog, then `events` playback events, to `log`.
/// The events are generated and appended in slices, so memory stays flat
/// however many there are.
pub(crate) async fn append_traffic(
    log: &reelflow_ingest::log::AnyLog,
    traffic: &mut reelflow_dataflows::traffic::Traffic,
    events: usize,
) {
    use reelflow_dataflows::workload;
    for chunk in traffic.catalog().chunks(5000) {
        workload::append(log, chunk).await;
    }
    let mut left = events;
    while left > 0 {
        let batch = traffic.playback(left.min(100_000));
        for chunk in batch.chunks(5000) {
            workload::append(log, chunk).await;
        }
        left -= batch.len();
    }
}

/// Records in `log`'s topics (catalog and playback), all partitions.
pub(crate) async fn records_in(log: &reelflow_ingest::log::AnyLog) -> anyhow::Result<u64> {
    use reelflow_ingest::log::EventLog;
    let mut n = 0;
    for topic in reelflow_dataflows::TOPICS {
        for p in 0..log.partition_count(topic).await? {
            n += log.high_watermark(topic, p).await?;
        }
    }
    Ok(n)
}

/// The time at which the views hold every record logged until now: the
/// sources round log times up to `tick_ms`, so a view readable at this
/// moment itself may still lack the last tick's records.
pub(crate) fn complete_now(tick_ms: u64) -> u64 {
    reelflow_dataflows::stamp(reelflow_dataflows::now_ms() as i64, 0, tick_ms)
}

/// The `p` quantile (0..=1) of ascending `sorted`; NaN if empty.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Appends `traffic` to `log` at `rate` events/s for `seconds`, 10 ms of
/// it at a time as it would arrive, and for every tenth append measures
/// append → visible: until the views are readable at the moment after the
/// append (log times rounded up to `tick_ms`) and a peek there answers.
/// Returns the latencies in ms, ascending, and the events appended.
pub(crate) async fn sample_freshness(
    log: &reelflow_ingest::log::AnyLog,
    client: &reelflow_dataflows::PeekClient,
    traffic: &mut reelflow_dataflows::traffic::Traffic,
    rate: usize,
    seconds: u64,
    tick_ms: u64,
) -> anyhow::Result<(Vec<f64>, usize)> {
    use reelflow_dataflows::{Datum, Selector, View};
    use std::time::{Duration, Instant};
    let per_tick = (rate / 100).max(1);
    let started = Instant::now();
    let mut next = Instant::now();
    let mut waits = Vec::new();
    let (mut n, mut appended) = (0u64, 0);
    while started.elapsed() < Duration::from_secs(seconds) {
        let batch = traffic.playback(per_tick);
        let sent_at = Instant::now();
        reelflow_dataflows::workload::append(log, &batch).await;
        appended += batch.len();
        n += 1;
        if n.is_multiple_of(10) {
            // Every record of the batch is at this time or before.
            let bound = complete_now(tick_ms);
            let client = client.clone();
            waits.push(tokio::spawn(async move {
                client.wait_until_readable(bound, Duration::from_secs(60)).await?;
                // The peek a reader would make, at the latest readable time.
                let _ = client
                    .peek(
                        View::Trending,
                        Selector::Keys(vec![vec![Datum::text("1h"), Datum::Int(1)]]),
                        None,
                    )
                    .await?;
                Ok::<f64, reelflow_dataflows::PeekError>(sent_at.elapsed().as_secs_f64() * 1000.0)
            }));
        }
        next += Duration::from_millis(10);
        tokio::time::sleep_until(next.into()).await;
    }
    let mut out = Vec::new();
    for w in waits {
        out.push(w.await??);
    }
    out.sort_by(f64::total_cmp);
    Ok((out, appended))
}

/// User and system seconds from `/proc/self/stat`: the fields `first` and
/// `first + 1` after the command name, in clock ticks of 1/100 s.
pub(crate) fn stat_seconds(first: usize) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(first) + ticks(first + 1)) / 100.0
}

/// CPU seconds (user + system) this process used, all its threads.
pub(crate) fn process_cpu_s() -> f64 {
    stat_seconds(11)
}

/// CPU seconds (user + system) of this process's reaped children.
pub(crate) fn children_cpu_s() -> f64 {
    stat_seconds(13)
}

/// Peak resident memory of this process (VmHWM), in KiB.
pub(crate) fn peak_rss_kib() -> u64 {
    peak_rss_kib_of("self")
}

/// Peak resident memory (VmHWM) of process `pid` (`self` for this one),
/// in KiB; 0 where it cannot be read.
pub(crate) fn peak_rss_kib_of(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Starts [`peak_rss_kib`] again from the current resident memory (Linux's
/// `clear_refs`), so a run's peak is its own.
pub(crate) fn reset_peak_rss() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        tracing::warn!(error = %e, "cannot reset the peak resident memory; peaks include earlier runs");
    }
}

/// Prints a bench's report: one JSON object with `--json`, else its table.
pub fn print_report<R: serde::Serialize>(json: bool, report: &R, render: fn(&R) -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{}", render(report));
    }
    Ok(())
}

/// Registers the bench's creator on a running app; returns its access token.
pub(crate) async fn register_creator(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let session: Value = http
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({"email": "bench@example.org", "password": "bench password 123"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(session["access_token"].as_str().context("no access token")?.to_string())
}

/// Creates a video from `body`; returns its id.
pub(crate) async fn create_video(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: &Value,
) -> anyhow::Result<String> {
    let video: Value = http
        .post(format!("{base}/v1/videos"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(video["id"].as_str().context("no video id")?.to_string())
}
