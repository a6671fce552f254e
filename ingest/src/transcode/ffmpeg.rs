//! The one ffmpeg pass: decode once, split, scale and encode every rung, and
//! write fMP4 HLS per rendition. ffmpeg runs under ffmpeg-sidecar, which
//! parses its stderr into events: progress (output time against the
//! duration) and the error lines that become the reason a person reads when
//! ffmpeg fails.

use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use ffmpeg_sidecar::child::FfmpegChild;
use ffmpeg_sidecar::command::FfmpegCommand;
use ffmpeg_sidecar::event::{FfmpegEvent, LogLevel};

use crate::transcode::ladder::{AUDIO_KBPS, Rung};

/// Target segment length, seconds (Apple recommends 6; 4 starts faster).
pub const SEGMENT_S: u32 = 4;

/// Where the pictures of the pass come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Picture {
    /// The source's own video stream.
    Source,
    /// A still dark frame, for audio-only sources.
    Still,
}

/// The arguments of the pass from `input` into `out_dir/<rung>/`.
pub fn ladder_args(
    input: &Path,
    out_dir: &Path,
    rungs: &[Rung],
    fps: f64,
    has_audio: bool,
    picture: Picture,
    storyboard: Option<(&Path, f64)>,
) -> Vec<String> {
    let n = rungs.len();
    // A keyframe exactly every segment, in every rendition, so segments
    // line up and players can switch at any boundary.
    let gop = ((fps * SEGMENT_S as f64).round() as u32).max(1);
    let mut a: Vec<String> = vec!["-hide_banner".into(), "-nostdin".into(), "-y".into()];
    // The upload is opened as data only (see `probe`).
    a.extend(crate::transcode::probe::source_input(input));
    let video_in = match picture {
        Picture::Source => "[0:v]",
        Picture::Still => {
            // A still frame the size of the largest rung, ended by the audio.
            let top = &rungs[0];
            a.extend([
                "-f".into(),
                "lavfi".into(),
                "-i".into(),
                format!("color=c=0x202020:s={}x{}:r={fps}", top.width, top.height),
            ]);
            a.push("-shortest".into());
            "[1:v]"
        }
    };
    // The storyboard is one more branch of the same decode, not a second pass.
    let branches = n + usize::from(storyboard.is_some());
    let mut graph = format!("{video_in}split={branches}");
    if storyboard.is_some() {
        graph.push_str("[sb_in]");
    }
    for i in 0..n {
        graph.push_str(&format!("[s{i}]"));
    }
    for (i, r) in rungs.iter().enumerate() {
        // The source's rotation is already applied by the decoder.
        graph.push_str(&format!(
            ";[s{i}]scale={}:{}:flags=bicubic,setsar=1,format=yuv420p[v{i}]",
            r.width, r.height
        ));
    }
    if let Some((_, every_s)) = storyboard {
        // 100 thumbnails spread over the video, tiled 10x10 in one image.
        graph.push_str(&format!(";[sb_in]fps=1/{every_s:.3},scale=160:-2,tile=10x10[sb]"));
    }
    a.extend(["-filter_complex".into(), graph]);
    for i in 0..n {
        a.extend(["-map".into(), format!("[v{i}]")]);
    }
    if has_audio {
        for _ in 0..n {
            a.extend(["-map".into(), "0:a:0".into()]);
        }
    }
    a.extend([
        "-c:v".into(),
        "libx264".into(),
        "-preset".into(),
        "veryfast".into(),
        "-profile:v".into(),
        "main".into(),
    ]);
    for (i, r) in rungs.iter().enumerate() {
        a.extend([
            format!("-b:v:{i}"),
            format!("{}k", r.video_kbps),
            format!("-maxrate:v:{i}"),
            format!("{}k", r.max_kbps),
            format!("-bufsize:v:{i}"),
            format!("{}k", r.video_kbps * 2),
            format!("-level:v:{i}"),
            r.level.to_string(),
        ]);
    }
    a.extend([
        "-g".into(),
        gop.to_string(),
        "-keyint_min".into(),
        gop.to_string(),
        // No extra keyframes at scene cuts: they would misalign segments.
        "-sc_threshold".into(),
        "0".into(),
    ]);
    if has_audio {
        a.extend([
            "-c:a".into(),
            "aac".into(),
            "-b:a".into(),
            format!("{AUDIO_KBPS}k"),
            "-ac".into(),
            "2".into(),
            "-ar".into(),
            "48000".into(),
        ]);
    }
    let streams: Vec<String> = (0..n)
        .map(|i| {
            if has_audio {
                format!("v:{i},a:{i},name:{}", rungs[i].name)
            } else {
                format!("v:{i},name:{}", rungs[i].name)
            }
        })
        .collect();
    a.extend([
        "-f".into(),
        "hls".into(),
        "-hls_time".into(),
        SEGMENT_S.to_string(),
        // EVENT while encoding, so the video plays before the pass ends.
        "-hls_playlist_type".into(),
        "event".into(),
        "-hls_segment_type".into(),
        "fmp4".into(),
        "-hls_flags".into(),
        "independent_segments".into(),
        "-hls_fmp4_init_filename".into(),
        "init.mp4".into(),
        "-hls_segment_filename".into(),
        out_dir.join("%v/seg_%05d.m4s").display().to_string(),
        "-var_stream_map".into(),
        streams.join(" "),
        out_dir.join("%v/index.m3u8").display().to_string(),
    ]);
    if let Some((path, _)) = storyboard {
        a.extend([
            "-map".into(),
            "[sb]".into(),
            "-frames:v".into(),
            "1".into(),
            "-q:v".into(),
            "4".into(),
        ]);
        a.extend(["-update".into(), "1".into(), path.display().to_string()]);
    }
    a
}

/// Kills ffmpeg if the job is dropped (a cancelled or timed-out job must
/// not leave an encoder running); after ffmpeg exited, killing is a no-op.
struct KillOnDrop(Arc<Mutex<FfmpegChild>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(mut child) = self.0.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `HH:MM:SS.ss` as seconds.
fn clock_s(time: &str) -> Option<f64> {
    let mut s = 0.0;
    for part in time.split(':') {
        s = s * 60.0 + part.parse::<f64>().ok()?;
    }
    Some(s)
}

/// Runs ffmpeg with `args` through ffmpeg-sidecar, calling `progress` with
/// the share done (0–100) at most once a second, and fails after `timeout`
/// or with the last error lines ffmpeg logged.
pub async fn run(
    args: &[String],
    duration_s: f64,
    timeout: Duration,
    mut progress: impl FnMut(f64),
) -> Result<(), String> {
    let mut child = FfmpegCommand::new()
        .args(args)
        .spawn()
        .map_err(|e| format!("could not start ffmpeg: {e}"))?;
    let events = child
        .iter()
        .map_err(|e| format!("could not read ffmpeg's output: {e}"))?;
    let guard = KillOnDrop(Arc::new(Mutex::new(child)));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The iterator blocks on ffmpeg's stderr: read it on a blocking thread.
    let reader = tokio::task::spawn_blocking(move || {
        let mut errors: Vec<String> = Vec::new();
        for event in events {
            match event {
                FfmpegEvent::Progress(p) => {
                    let _ = tx.send(p.time);
                }
                FfmpegEvent::Log(LogLevel::Error | LogLevel::Fatal, line) | FfmpegEvent::Error(line) => {
                    errors.push(line)
                }
                _ => {}
            }
        }
        errors
    });
    let work = async {
        let mut last = Instant::now() - Duration::from_secs(2);
        while let Some(time) = rx.recv().await {
            if let Some(done) = clock_s(&time)
                && last.elapsed() >= Duration::from_secs(1)
                && duration_s > 0.0
            {
                last = Instant::now();
                progress((done / duration_s * 100.0).clamp(0.0, 99.9));
            }
        }
        reader.await.unwrap_or_default()
    };
    // `progress` is called on the receiving side only; drop it with `work`.
    let errors = match tokio::time::timeout(timeout, work).await {
        Ok(errors) => errors,
        Err(_) => {
            return Err(format!(
                "transcoding took longer than {} s and was stopped",
                timeout.as_secs()
            ));
        }
    };
    let status = {
        let child = Arc::clone(&guard.0);
        tokio::task::spawn_blocking(move || {
            child
                .lock()
                .map_err(|_| "ffmpeg lock poisoned".to_string())?
                .wait()
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??
    };
    if status.success() {
        return Ok(());
    }
    let tail = errors[errors.len().saturating_sub(3)..].join(" / ");
    Err(format!("ffmpeg failed ({status}): {tail}"))
}
