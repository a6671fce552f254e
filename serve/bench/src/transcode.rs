//! `reelflow-bench transcode`: the same source, in one run, through
//!
//! - **ours**: the whole pipeline (probe, one ffmpeg pass for the ladder,
//!   poster, storyboard, storing the outputs, events), into a local store;
//! - **bare**: only our ffmpeg command for the ladder (and storyboard),
//!   without the pipeline, to measure the pipeline's overhead;
//! - **per rendition** (the peer): one ffmpeg run per rendition, each
//!   decoding the source again — the way PeerTube transcodes.
//!
//! CPU time is user + system time of the child processes, read from
//! `/proc/self/stat` (children are counted once they have been waited for).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reelflow_ingest::events::{ProcessingEvent, TopicEvent};
use reelflow_ingest::log::{EmbeddedLog, EmbeddedOptions, EventLog, FsyncPolicy};
use reelflow_ingest::storage::{LocalStore, ObjectKey, ObjectStore};
use reelflow_ingest::transcode::ffmpeg::{Picture, SEGMENT_S, ladder_args};
use reelflow_ingest::transcode::ladder::{AUDIO_KBPS, plan};
use reelflow_ingest::transcode::probe::{ProbeLimits, probe};
use reelflow_ingest::transcode::test_pattern::TestPattern;
use reelflow_ingest::transcode::{JobLimits, transcode};
use serde::Serialize;

use crate::harness::children_cpu_s;

/// Flags of `reelflow-bench transcode`.
#[derive(Debug, Clone, clap::Args)]
pub struct TranscodeBenchArgs {
    /// The source; without it a 1080p30 test pattern with a tone is made.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Seconds of generated source.
    #[arg(long, default_value_t = 20)]
    pub seconds: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One way of making the ladder.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Which.
    pub name: String,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// CPU time of ffmpeg (and ffprobe), seconds.
    pub cpu_s: f64,
}

/// Everything `reelflow-bench transcode` measured.
#[derive(Debug, Clone, Serialize)]
pub struct TranscodeBenchReport {
    /// Source duration, seconds.
    pub duration_s: f64,
    /// The renditions made.
    pub renditions: Vec<String>,
    /// The three runs.
    pub runs: Vec<Run>,
    /// Our CPU over the per-rendition CPU (target ≤ 0.75).
    pub cpu_ours_vs_per_rendition: f64,
    /// Our wall time over the bare command's, minus one (target ≤ 0.05).
    pub pipeline_overhead: f64,
    /// Seconds from the start of our job (the upload's completion, here)
    /// until the video was playable.
    pub first_playable_s: Option<f64>,
}

async fn measure<F: std::future::Future<Output = anyhow::Result<()>>>(name: &str, f: F) -> anyhow::Result<Run> {
    let cpu0 = children_cpu_s();
    let t = Instant::now();
    f.await?;
    Ok(Run {
        name: name.into(),
        wall_s: t.elapsed().as_secs_f64(),
        cpu_s: children_cpu_s() - cpu0,
    })
}

async fn ffmpeg(args: &[String]) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("ffmpeg")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        );
    }
    Ok(())
}

/// Runs the benchmark.
pub async fn run(args: TranscodeBenchArgs) -> anyhow::Result<TranscodeBenchReport> {
    let dir = tempfile::tempdir()?;
    let input = match &args.input {
        Some(p) => p.clone(),
        None => {
            let p = dir.path().join("source.mp4");
            let pattern = TestPattern {
                preset: "veryfast",
                ..TestPattern::new(Some("1920x1080"), true, args.seconds)
            };
            ffmpeg(&pattern.args(&p)).await.context("generating the source")?;
            p
        }
    };
    let probed = probe(&input, ProbeLimits::default())
        .await
        .map_err(anyhow::Error::msg)?;
    let video = probed.video.clone().context("the source has no video")?;
    let rungs = plan(&video);

    // Ours: the whole pipeline.
    let store = LocalStore::open(dir.path().join("objects"))?;
    let log = EmbeddedLog::open(
        dir.path().join("log"),
        EmbeddedOptions {
            fsync: FsyncPolicy::Never,
            ..Default::default()
        },
    )?;
    log.create_topic(ProcessingEvent::TOPIC, 1).await?;
    let key = ObjectKey::parse("videos/bench/source")?;
    store.put_stream(&key, tokio::fs::File::open(&input).await?).await?;
    let limits = JobLimits {
        timeout: Duration::from_secs(24 * 3600),
        // Measured, not bounded.
        seconds_per_source_second: 1e6,
        ..JobLimits::default()
    };
    let mut first_playable_s = None;
    let ours = measure("ours: the pipeline, one pass", async {
        match transcode(
            &log,
            &store,
            uuid::Uuid::now_v7(),
            &key,
            &dir.path().join("work"),
            limits,
            chrono::Utc::now(),
        )
        .await
        {
            ProcessingEvent::Ready {
                first_playable_s: f, ..
            } => {
                first_playable_s = f;
                Ok(())
            }
            other => bail!("the pipeline did not finish: {other:?}"),
        }
    })
    .await?;

    // Bare: our ffmpeg command alone.
    let bare_out = dir.path().join("bare");
    for r in &rungs {
        tokio::fs::create_dir_all(bare_out.join(&r.name)).await?;
    }
    let storyboard = bare_out.join("storyboard.jpg");
    let every = (probed.duration_s / 100.0).max(0.04);
    let bare_args = ladder_args(
        &input,
        &bare_out,
        &rungs,
        video.fps,
        probed.has_audio,
        Picture::Source,
        Some((&storyboard, every)),
    );
    let bare = measure("bare: our ffmpeg command only", ffmpeg(&bare_args)).await?;

    // Per rendition: one decode and encode per rung.
    let per = measure("peer: one ffmpeg run per rendition", async {
        let gop = ((video.fps * SEGMENT_S as f64).round() as u32).max(1).to_string();
        for r in &rungs {
            let out = dir.path().join("per").join(&r.name);
            tokio::fs::create_dir_all(&out).await?;
            let mut a: Vec<String> = ["-hide_banner", "-nostdin", "-y", "-i"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            a.push(input.display().to_string());
            a.extend([
                "-vf".into(),
                format!("scale={}:{},setsar=1,format=yuv420p", r.width, r.height),
            ]);
            a.extend(
                [
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-profile:v",
                    "main",
                    "-sc_threshold",
                    "0",
                ]
                .iter()
                .map(|s| s.to_string()),
            );
            a.extend([
                "-b:v".into(),
                format!("{}k", r.video_kbps),
                "-maxrate".into(),
                format!("{}k", r.max_kbps),
            ]);
            a.extend([
                "-bufsize".into(),
                format!("{}k", r.video_kbps * 2),
                "-g".into(),
                gop.clone(),
                "-keyint_min".into(),
                gop.clone(),
            ]);
            if probed.has_audio {
                a.extend([
                    "-c:a".into(),
                    "aac".into(),
                    "-b:a".into(),
                    format!("{AUDIO_KBPS}k"),
                    "-ac".into(),
                    "2".into(),
                ]);
            }
            a.extend(
                [
                    "-f",
                    "hls",
                    "-hls_time",
                    &SEGMENT_S.to_string(),
                    "-hls_playlist_type",
                    "vod",
                    "-hls_segment_type",
                    "fmp4",
                ]
                .iter()
                .map(|s| s.to_string()),
            );
            a.push(out.join("index.m3u8").display().to_string());
            ffmpeg(&a).await?;
        }
        Ok(())
    })
    .await?;
    Ok(TranscodeBenchReport {
        duration_s: probed.duration_s,
        renditions: rungs.iter().map(|r| r.name.clone()).collect(),
        cpu_ours_vs_per_rendition: ours.cpu_s / per.cpu_s,
        pipeline_overhead: ours.wall_s / bare.wall_s - 1.0,
        runs: vec![ours, bare, per],
        first_playable_s,
    })
}

/// The report as a table.
pub fn render(r: &TranscodeBenchReport) -> String {
    let mut out = format!(
        "reelflow-bench transcode: {:.1} s source, ladder {}\n\n{:<40} {:>9} {:>9}\n",
        r.duration_s,
        r.renditions.join("/"),
        "",
        "wall s",
        "CPU s"
    );
    for run in &r.runs {
        out.push_str(&format!("{:<40} {:>9.2} {:>9.2}\n", run.name, run.wall_s, run.cpu_s));
    }
    out.push_str(&format!(
        "\nCPU ours / per rendition = {:.2}x (target <= 0.75x)\npipeline overhead over the bare command = {:+.1}% (target <= 5%)\n",
        r.cpu_ours_vs_per_rendition,
        r.pipeline_overhead * 100.0
    ));
    match r.first_playable_s {
        Some(s) => out.push_str(&format!("playable after {s:.2} s of {:.2} s\n", r.runs[0].wall_s)),
        None => out.push_str("not playable before the pass ended\n"),
    }
    out
}
