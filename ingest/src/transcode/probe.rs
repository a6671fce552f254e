//! ffprobe, and the checks that keep absurd inputs out of the encoder.

use std::path::Path;

use serde::Deserialize;

/// What the pipeline needs to know of a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Duration in seconds.
    pub duration_s: f64,
    /// The video stream, if there is one.
    pub video: Option<VideoStream>,
    /// Whether there is an audio stream.
    pub has_audio: bool,
}

/// The first video stream.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoStream {
    /// Width as displayed (after rotation).
    pub width: u32,
    /// Height as displayed (after rotation).
    pub height: u32,
    /// Frames per second (average; variable frame rate sources included).
    pub fps: f64,
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    streams: Vec<Stream>,
    format: Option<Format>,
}

#[derive(Deserialize)]
struct Format {
    duration: Option<String>,
}

#[derive(Deserialize)]
struct Stream {
    codec_type: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    #[serde(default)]
    side_data_list: Vec<SideData>,
    #[serde(default)]
    tags: std::collections::HashMap<String, String>,
    disposition: Option<Disposition>,
}

#[derive(Deserialize)]
struct SideData {
    rotation: Option<f64>,
}

#[derive(Deserialize)]
struct Disposition {
    #[serde(default)]
    attached_pic: u8,
}

/// Limits on what is transcoded at all.
#[derive(Debug, Clone, Copy)]
pub struct ProbeLimits {
    /// Longest source accepted, seconds.
    pub max_duration_s: f64,
    /// Largest frame side accepted, pixels.
    pub max_dimension: u32,
}

impl Default for ProbeLimits {
    fn default() -> Self {
        Self {
            max_duration_s: 4.0 * 3600.0,
            max_dimension: 7680,
        }
    }
}

fn rate(s: Option<&str>) -> Option<f64> {
    let (n, d) = s?.split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (d > 0.0 && n > 0.0).then_some(n / d)
}

/// Runs ffprobe on `path` and checks the result; the error is a sentence
/// for the video's owner.
pub async fn probe(path: &Path, limits: ProbeLimits) -> Result<Probe, String> {
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams"])
        .arg(path)
        .output()
        .await
        .map_err(|e| format!("could not run ffprobe: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").trim();
        return Err(format!(
            "the file is not a video or audio file ffmpeg can read ({last})"
        ));
    }
    parse(&out.stdout, limits)
}

/// Reads ffprobe's JSON and applies the limits.
pub fn parse(json: &[u8], limits: ProbeLimits) -> Result<Probe, String> {
    let out: Output = serde_json::from_slice(json).map_err(|e| format!("ffprobe said something unexpected: {e}"))?;
    let video = out.streams.iter().find(|s| {
        s.codec_type.as_deref() == Some("video") && s.disposition.as_ref().is_none_or(|d| d.attached_pic == 0)
    });
    let has_audio = out.streams.iter().any(|s| s.codec_type.as_deref() == Some("audio"));
    if video.is_none() && !has_audio {
        return Err("the file has neither video nor audio".into());
    }
    let duration_s = out
        .format
        .and_then(|f| f.duration)
        .and_then(|d| d.parse::<f64>().ok())
        .unwrap_or(0.0);
    if duration_s.is_nan() || duration_s <= 0.0 {
        return Err("the file has no duration; it may be truncated or a still image".into());
    }
    if duration_s > limits.max_duration_s {
        return Err(format!(
            "the video is {duration_s:.0} s long; the longest accepted is {:.0} s",
            limits.max_duration_s
        ));
    }
    let video = match video {
        None => None,
        Some(v) => {
            let (w, h) = (v.width.unwrap_or(0), v.height.unwrap_or(0));
            if w == 0 || h == 0 {
                return Err("the video stream has no frame size".into());
            }
            if w > limits.max_dimension || h > limits.max_dimension {
                return Err(format!(
                    "the frames are {w}x{h}; the largest accepted side is {} pixels",
                    limits.max_dimension
                ));
            }
            let rotation = v
                .side_data_list
                .iter()
                .find_map(|s| s.rotation)
                .or_else(|| v.tags.get("rotate").and_then(|r| r.parse().ok()))
                .unwrap_or(0.0);
            let quarter_turn = (rotation.abs().round() as i64 / 90) % 2 == 1;
            let (width, height) = if quarter_turn { (h, w) } else { (w, h) };
            let fps = rate(v.avg_frame_rate.as_deref())
                .or_else(|| rate(v.r_frame_rate.as_deref()))
                .unwrap_or(30.0)
                .min(120.0);
            Some(VideoStream { width, height, fps })
        }
    };
    Ok(Probe {
        duration_s,
        video,
        has_audio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rotation_and_refuses_the_absurd() {
        let phone = br#"{"streams":[{"codec_type":"video","width":1920,"height":1080,"avg_frame_rate":"30000/1001",
            "side_data_list":[{"rotation":-90}]},{"codec_type":"audio"}],"format":{"duration":"12.5"}}"#;
        let p = parse(phone, ProbeLimits::default()).expect("valid");
        let v = p.video.expect("video");
        assert_eq!((v.width, v.height), (1080, 1920));
        assert!((v.fps - 29.97).abs() < 0.01);
        assert!(p.has_audio);

        let huge = br#"{"streams":[{"codec_type":"video","width":20000,"height":20000}],"format":{"duration":"1"}}"#;
        assert!(
            parse(huge, ProbeLimits::default())
                .expect_err("huge")
                .contains("20000x20000")
        );
        let long = br#"{"streams":[{"codec_type":"audio"}],"format":{"duration":"99999"}}"#;
        assert!(
            parse(long, ProbeLimits::default())
                .expect_err("long")
                .contains("longest accepted")
        );
        let nothing = br#"{"streams":[{"codec_type":"data"}],"format":{"duration":"3"}}"#;
        assert_eq!(
            parse(nothing, ProbeLimits::default()).expect_err("no media"),
            "the file has neither video nor audio"
        );
    }
}
