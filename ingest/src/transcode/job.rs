//! One upload, transcoded: probe, plan, encode, publish the outputs and
//! report every stage on `reelflow.processing`.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::EventLog;
use crate::events::{Envelope, ProcessingEvent, Rendition, TopicEvent};
use crate::storage::{ObjectKey, ObjectStore};
use crate::transcode::ladder::{Rung, plan};
use crate::transcode::master::{Encoded, master_playlist};
use crate::transcode::probe::{ProbeLimits, VideoStream, probe};
use crate::transcode::publish::RenditionPublisher;
use crate::transcode::{ffmpeg, master};

/// Limits of one job.
#[derive(Debug, Clone, Copy)]
pub struct JobLimits {
    /// What sources are accepted.
    pub probe: ProbeLimits,
    /// Longest the ffmpeg pass may run.
    pub timeout: Duration,
    /// Seconds of encoding allowed per second of source (beyond a minute
    /// for any source): a job's wall time follows what it really holds.
    pub seconds_per_source_second: f64,
}

impl JobLimits {
    /// The longest the pass of a `duration_s` source may run.
    pub fn timeout_for(&self, duration_s: f64) -> Duration {
        let relative = Duration::from_secs_f64((60.0 + duration_s * self.seconds_per_source_second).min(1e9));
        relative.min(self.timeout)
    }
}

impl Default for JobLimits {
    fn default() -> Self {
        Self {
            probe: ProbeLimits::default(),
            timeout: Duration::from_secs(3 * 3600),
            seconds_per_source_second: 20.0,
        }
    }
}

/// Appends a processing event; a failure to report is logged, not fatal.
pub async fn report<L: EventLog>(log: &L, event: ProcessingEvent) {
    let envelope = Envelope::new(event);
    if let Err(e) = log
        .append(ProcessingEvent::TOPIC, envelope.key().as_bytes(), &envelope.to_bytes())
        .await
    {
        tracing::warn!(error = %e, "could not report transcoding progress");
    }
}

fn key(s: String) -> Result<ObjectKey, String> {
    ObjectKey::parse(&s).map_err(|e| e.to_string())
}

async fn download<S: ObjectStore>(store: &S, source: &ObjectKey, to: &Path) -> Result<(), String> {
    let body = store
        .get(source, None)
        .await
        .map_err(|e| format!("reading the upload: {e}"))?;
    let mut file = tokio::fs::File::create(to)
        .await
        .map_err(|e| format!("creating {}: {e}", to.display()))?;
    let mut stream = body.stream;
    while let Some(chunk) = stream.next().await {
        file.write_all(&chunk.map_err(|e| format!("reading the upload: {e}"))?)
            .await
            .map_err(|e| e.to_string())?;
    }
    file.flush().await.map_err(|e| e.to_string())
}

/// Peak and average bitrate of a rendition from its playlist and segments.
async fn measure(dir: &Path, rung: &Rung, has_audio: bool) -> Encoded {
    let Ok(playlist) = tokio::fs::read_to_string(dir.join("index.m3u8")).await else {
        return master::nominal(rung, has_audio);
    };
    let (mut total_bytes, mut total_s, mut peak) = (0u64, 0f64, 0u64);
    let mut pending: Option<f64> = None;
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            pending = d.trim_end_matches(',').split(',').next().and_then(|v| v.parse().ok());
        } else if let (Some(d), false) = (pending.take(), line.starts_with('#')) {
            let bytes = tokio::fs::metadata(dir.join(line)).await.map(|m| m.len()).unwrap_or(0);
            total_bytes += bytes;
            total_s += d;
            if d > 0.5 {
                peak = peak.max((bytes as f64 * 8.0 / d) as u64);
            }
        }
    }
    if total_s <= 0.0 {
        return master::nominal(rung, has_audio);
    }
    let average = (total_bytes as f64 * 8.0 / total_s) as u64;
    Encoded {
        rung: rung.clone(),
        peak_bps: peak.max(average),
        average_bps: average,
    }
}

async fn put_file<S: ObjectStore>(store: &S, path: &Path, key: &ObjectKey) -> Result<u64, String> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    store
        .put_stream(key, file)
        .await
        .map(|m| m.size)
        .map_err(|e| format!("storing {key}: {e}"))
}

/// An image from `input` (ffmpeg input arguments): `filter` applied, one
/// frame.
async fn still(input: &[String], at_s: f64, filter: &str, out: &Path) -> Result<(), String> {
    let status = tokio::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-ss",
            &format!("{at_s:.2}"),
        ])
        .args(input)
        .args(["-vf", filter, "-frames:v", "1", "-q:v", "4"])
        .arg(out)
        .output()
        .await
        .map_err(|e| format!("could not start ffmpeg: {e}"))?;
    if status.status.success() && out.exists() {
        Ok(())
    } else {
        Err(format!(
            "making {}: {}",
            out.display(),
            String::from_utf8_lossy(&status.stderr).trim()
        ))
    }
}

/// The poster of a video of `duration_s`: the frame at a tenth of it, or,
/// where the pictures end before that (a one-frame clip, a still over
/// long audio), the first frame. Seeking past the last frame makes ffmpeg
/// write nothing and say nothing.
async fn poster(pictures: &[String], duration_s: f64, out: &Path) -> Result<(), String> {
    match still(pictures, duration_s * 0.1, "scale=-2:360", out).await {
        Ok(()) => Ok(()),
        Err(_) => still(pictures, 0.0, "scale=-2:360", out).await,
    }
}

/// Transcodes the upload at `source` for `video_id` in `work_dir` (which it
/// empties afterwards) and reports the outcome. `uploaded_at` is when the
/// upload completed: time to first playable is counted from it. Returns the `ready` or
/// `failed` event it appended.
pub async fn transcode<L: EventLog, S: ObjectStore>(
    log: &L,
    store: &S,
    video_id: Uuid,
    source: &ObjectKey,
    work_dir: &Path,
    limits: JobLimits,
    uploaded_at: chrono::DateTime<chrono::Utc>,
) -> ProcessingEvent {
    let result = run(log, store, video_id, source, work_dir, limits, uploaded_at).await;
    let _ = tokio::fs::remove_dir_all(work_dir).await;
    let event = match result {
        Ok(ready) => ready,
        Err(reason) => {
            // A failed video has no ladder: take back whatever this job
            // published before it failed.
            unpublish(store, video_id).await;
            ProcessingEvent::Failed {
                video_id,
                reason: scrub_paths(&reason),
            }
        }
    };
    report(log, event.clone()).await;
    event
}

/// Deletes the outputs of `video_id`'s job.
async fn unpublish<S: ObjectStore>(store: &S, video_id: Uuid) {
    if let Err(e) = store.delete_prefix(&format!("videos/{video_id}/hls/")).await {
        tracing::warn!(%video_id, error = %e, "could not delete a failed job's renditions");
    }
    for name in ["poster.jpg", "storyboard.jpg"] {
        if let Ok(key) = ObjectKey::parse(&format!("videos/{video_id}/{name}")) {
            let _ = store.delete(&key).await;
        }
    }
}

/// `reason` with every absolute path replaced by `…`: a reason is shown to
/// the video's owner, who has no business knowing the server's layout.
pub fn scrub_paths(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut rest = reason;
    while let Some(at) = rest.find('/') {
        let starts_path = at == 0 || rest[..at].ends_with([' ', '\'', '"', '(', '[', '=', ':']);
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | ')' | ']' | ',' | ';'))
            .unwrap_or(tail.len());
        let word = &tail[..end];
        // A path has a second separator: "/tmp/x", not "1/2" or "a/b".
        if starts_path && word[1..].contains('/') {
            out.push_str(&rest[..at]);
            out.push('…');
            let name = word.rsplit('/').next().unwrap_or("");
            if !name.is_empty() {
                out.push('/');
                out.push_str(name);
            }
        } else {
            out.push_str(&rest[..at + end.max(1)]);
        }
        rest = &rest[at + end.max(1)..];
    }
    out.push_str(rest);
    out
}

async fn run<L: EventLog, S: ObjectStore>(
    log: &L,
    store: &S,
    video_id: Uuid,
    source: &ObjectKey,
    work_dir: &Path,
    limits: JobLimits,
    uploaded_at: chrono::DateTime<chrono::Utc>,
) -> Result<ProcessingEvent, String> {
    tokio::fs::create_dir_all(work_dir)
        .await
        .map_err(|e| format!("creating {}: {e}", work_dir.display()))?;
    let input = work_dir.join("source");
    download(store, source, &input).await?;
    report(log, ProcessingEvent::Probing { video_id }).await;
    let probed = probe(&input, limits.probe).await?;
    // Audio only: the ladder carries the sound over a still frame.
    let (video, picture) = match probed.video.clone() {
        Some(v) => (v, ffmpeg::Picture::Source),
        None => (
            VideoStream {
                width: 640,
                height: 360,
                fps: 25.0,
            },
            ffmpeg::Picture::Still,
        ),
    };
    let rungs = plan(&video);
    let out_dir = work_dir.join("hls");
    for r in &rungs {
        tokio::fs::create_dir_all(out_dir.join(&r.name))
            .await
            .map_err(|e| e.to_string())?;
    }
    report(log, ProcessingEvent::Transcoding { video_id, percent: 0.0 }).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let forward = async {
        while let Some(percent) = rx.recv().await {
            report(log, ProcessingEvent::Transcoding { video_id, percent }).await;
        }
    };
    let storyboard_path = work_dir.join("storyboard.jpg");
    let every = (probed.duration_s / 100.0).max(0.04);
    let in_pass = (picture == ffmpeg::Picture::Source).then_some((storyboard_path.as_path(), every));
    let args = ffmpeg::ladder_args(&input, &out_dir, &rungs, video.fps, probed.has_audio, picture, in_pass);
    let encode = async {
        let r = ffmpeg::run(&args, probed.duration_s, limits.timeout_for(probed.duration_s), |p| {
            let _ = tx.send((p * 10.0).round() / 10.0);
        })
        .await;
        drop(tx);
        r
    };
    let prefix = format!("videos/{video_id}/hls");
    let master_key = key(format!("{prefix}/master.m3u8"))?;
    let mut publisher = RenditionPublisher::new(prefix.clone(), out_dir.clone());
    let mut first_playable_s = None;
    // While ffmpeg runs: store finished segments four times a second, and the
    // master playlist (with target bitrates) as soon as every rendition has
    // a segment, so the video plays before the pass ends.
    let publish_early = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            match publisher.round(store, &rungs, false).await {
                Ok(true) if first_playable_s.is_none() => {
                    let nominal: Vec<Encoded> = rungs.iter().map(|r| master::nominal(r, probed.has_audio)).collect();
                    let text = master_playlist(&nominal, video.fps, probed.has_audio);
                    if store.put_bytes(&master_key, text.as_bytes()).await.is_ok() {
                        first_playable_s = Some((chrono::Utc::now() - uploaded_at).num_milliseconds() as f64 / 1000.0);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "storing segments early failed; they are stored at the end"),
            }
        }
    };
    let encoded = tokio::select! {
        (r, ()) = async { tokio::join!(encode, forward) } => r,
        () = publish_early => unreachable!("publishing early never ends by itself"),
    };
    // A failure from here on takes back what was published early
    // (`transcode` unpublishes).
    encoded?;
    publisher.round(store, &rungs, true).await?;
    let mut output_bytes = publisher.bytes;
    let mut measured = Vec::new();
    for r in &rungs {
        measured.push(measure(&out_dir.join(&r.name), r, probed.has_audio).await);
    }
    // Pictures come from the source, or for audio only are the still frame.
    let pictures: Vec<String> = match picture {
        ffmpeg::Picture::Source => crate::transcode::probe::source_input(&input),
        ffmpeg::Picture::Still => vec![
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            format!(
                "color=c=0x202020:s={}x{}:r=25:d={:.2}",
                rungs[0].width, rungs[0].height, probed.duration_s
            ),
        ],
    };
    // The pictures around the video are extras: a video that plays is
    // ready without them.
    let poster_path = work_dir.join("poster.jpg");
    let poster_key = match poster(&pictures, probed.duration_s, &poster_path).await {
        Ok(()) => {
            let poster_key = format!("videos/{video_id}/poster.jpg");
            output_bytes += put_file(store, &poster_path, &key(poster_key.clone())?).await?;
            Some(poster_key)
        }
        Err(e) => {
            tracing::warn!(%video_id, error = %e, "no poster: the video is ready without one");
            None
        }
    };
    // A 10x10 sprite of thumbnails over the whole video, for the seek bar:
    // made in the pass from a source's pictures, here for a still frame.
    if in_pass.is_none()
        && let Err(e) = still(
            &pictures,
            0.0,
            &format!("fps=1/{every:.3},scale=160:-2,tile=10x10"),
            &storyboard_path,
        )
        .await
    {
        tracing::warn!(%video_id, error = %e, "no storyboard: the video is ready without one");
    }
    let storyboard_key = if storyboard_path.is_file() {
        let storyboard_key = format!("videos/{video_id}/storyboard.jpg");
        output_bytes += put_file(store, &storyboard_path, &key(storyboard_key.clone())?).await?;
        Some(storyboard_key)
    } else {
        None
    };

    // Last: the master playlist with the measured bitrates, replacing the
    // early one.
    let text = master_playlist(&measured, video.fps, probed.has_audio);
    output_bytes += store
        .put_bytes(&master_key, text.as_bytes())
        .await
        .map_err(|e| e.to_string())?
        .size;
    Ok(ProcessingEvent::Ready {
        video_id,
        renditions: measured
            .iter()
            .map(|e| Rendition {
                name: e.rung.name.clone(),
                width: e.rung.width,
                height: e.rung.height,
                bandwidth_bps: e.peak_bps,
            })
            .collect(),
        duration_s: probed.duration_s,
        poster_key,
        storyboard_key,
        first_playable_s,
        output_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processing_errors_leak_no_server_paths() {
        let reason = "ffmpeg failed (exit status: 1): /var/lib/reelflow/transcode/0193-ab/source: Invalid data found / \
                      [hls @ 0x55] Opening '/srv/objects/videos/x/hls/240p/seg_00000.m4s' for reading; 3/4 done, a/b";
        let scrubbed = scrub_paths(reason);
        assert!(
            !scrubbed.contains("/var/lib") && !scrubbed.contains("/srv"),
            "{scrubbed}"
        );
        assert!(scrubbed.contains("…/source: Invalid data"), "{scrubbed}");
        assert!(scrubbed.contains("3/4 done, a/b"), "{scrubbed}");
        assert_eq!(scrub_paths("no path here"), "no path here");
    }

    #[test]
    fn a_job_may_run_in_proportion_to_its_source() {
        let limits = JobLimits::default();
        assert_eq!(limits.timeout_for(3.0), Duration::from_secs(120));
        assert_eq!(limits.timeout_for(4.0 * 3600.0), limits.timeout);
    }
}
