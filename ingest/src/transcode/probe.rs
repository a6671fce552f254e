//! ffprobe, and the checks that keep absurd inputs out of the encoder.
//!
//! An upload is data, never instructions. ffmpeg's demuxers include some
//! that open other files (HLS playlists, concat lists, image sequences …):
//! an uploaded playlist naming another tenant's segments made the
//! transcoder read them. So ffprobe and ffmpeg open a source only with the
//! demuxers of [`SOURCE_FORMATS`] and only through the `file` protocol
//! ([`source_input`]), and the probed container is checked against the
//! list again. And an upload may not ask for more work than it carries: a
//! source whose frames (or audio packets) are too sparse for its duration,
//! which the encoder would fill with copies, is refused.

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
    format_name: Option<String>,
}

/// The demuxers a source may be read with: the containers a video platform
/// takes, none of which opens another file.
pub const SOURCE_FORMATS: &[&str] = &[
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "flv", "mpegts", "mpeg", "asf", "ogg", "wav",
    "mp3", "aac", "flac", "mxf", "dv", "ivf",
];

/// The containers, as a sentence for the owner of a refused upload.
const SOURCE_FORMATS_TEXT: &str =
    "MP4/MOV, Matroska/WebM, AVI, FLV, MPEG-TS/PS, ASF/WMV, Ogg, WAV, MP3, AAC, FLAC, MXF, DV and IVF";

/// ffmpeg input arguments that open `path` as an upload: only the demuxers
/// of [`SOURCE_FORMATS`], only the `file` protocol.
pub fn source_input(path: &Path) -> Vec<String> {
    vec![
        "-protocol_whitelist".into(),
        "file".into(),
        "-format_whitelist".into(),
        SOURCE_FORMATS.join(","),
        "-i".into(),
        path.display().to_string(),
    ]
}

#[derive(Deserialize)]
struct Stream {
    codec_type: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    nb_read_packets: Option<String>,
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
    /// Most frames the encoder may make per frame the source holds (the
    /// rest of the duration is filled with copies).
    pub max_frame_repeat: f64,
}

impl Default for ProbeLimits {
    fn default() -> Self {
        Self {
            max_duration_s: 4.0 * 3600.0,
            max_dimension: 7680,
            max_frame_repeat: 8.0,
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
    let mut input = source_input(path);
    // ffprobe takes the input without `-i`.
    input.retain(|a| a != "-i");
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams"])
        // Reads every packet (no decoding): what the source really holds.
        .arg("-count_packets")
        .args(input)
        .output()
        .await
        .map_err(|e| format!("could not run ffprobe: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").trim();
        // Not the server's path: the owner knows their file as "the file".
        let last = last.replace(&path.display().to_string(), "the file");
        return Err(format!(
            "the file is not a video or audio file in a container Reelflow accepts ({SOURCE_FORMATS_TEXT}): {last}"
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
    let audio = out.streams.iter().find(|s| s.codec_type.as_deref() == Some("audio"));
    let has_audio = audio.is_some();
    let format_name = out
        .format
        .as_ref()
        .and_then(|f| f.format_name.clone())
        .unwrap_or_default();
    if !format_name.split(',').any(|name| SOURCE_FORMATS.contains(&name)) {
        return Err(format!(
            "the file is a {format_name} file; the containers accepted are {SOURCE_FORMATS_TEXT}"
        ));
    }
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
            if let Some(frames) = packets(v) {
                check_density("video frames", frames, duration_s, fps, limits.max_frame_repeat)?;
            }
            Some(VideoStream { width, height, fps })
        }
    };
    if video.is_none()
        && let Some(audio_packets) = audio.and_then(packets)
    {
        // Audio is encoded over a still picture at 25 frames a second; a
        // real audio stream has tens of packets a second.
        check_density("audio packets", audio_packets, duration_s, 25.0, 25.0)?;
    }
    Ok(Probe {
        duration_s,
        video,
        has_audio,
    })
}

fn packets(stream: &Stream) -> Option<u64> {
    stream.nb_read_packets.as_deref()?.parse().ok()
}

/// Refuses a source whose `count` units (frames, packets) over `duration_s`
/// would make the encoder produce more than `max_repeat` output frames (at
/// `fps`) per unit, beyond ten seconds' worth: a 2 KB file holding three
/// frames 1,500 s apart would otherwise be encoded as 3,000 s of video.
fn check_density(what: &str, count: u64, duration_s: f64, fps: f64, max_repeat: f64) -> Result<(), String> {
    let output_frames = duration_s * fps;
    if output_frames > count as f64 * max_repeat + fps * 10.0 {
        return Err(format!(
            "the file holds {count} {what} over {duration_s:.0} s: too few for its length \
             (at least one for every {max_repeat:.0} frames of output at {fps:.0} frames/s is needed)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rotation_and_refuses_the_absurd() {
        let phone = br#"{"streams":[{"codec_type":"video","width":1920,"height":1080,"avg_frame_rate":"30000/1001",
            "side_data_list":[{"rotation":-90}]},{"codec_type":"audio"}],"format":{"duration":"12.5","format_name":"mov,mp4,m4a,3gp,3g2,mj2"}}"#;
        let p = parse(phone, ProbeLimits::default()).expect("valid");
        let v = p.video.expect("video");
        assert_eq!((v.width, v.height), (1080, 1920));
        assert!((v.fps - 29.97).abs() < 0.01);
        assert!(p.has_audio);

        let huge = br#"{"streams":[{"codec_type":"video","width":20000,"height":20000}],"format":{"duration":"1","format_name":"matroska,webm"}}"#;
        assert!(
            parse(huge, ProbeLimits::default())
                .expect_err("huge")
                .contains("20000x20000")
        );
        let long = br#"{"streams":[{"codec_type":"audio"}],"format":{"duration":"99999","format_name":"mp3"}}"#;
        assert!(
            parse(long, ProbeLimits::default())
                .expect_err("long")
                .contains("longest accepted")
        );
        let nothing = br#"{"streams":[{"codec_type":"data"}],"format":{"duration":"3","format_name":"mpegts"}}"#;
        assert_eq!(
            parse(nothing, ProbeLimits::default()).expect_err("no media"),
            "the file has neither video nor audio"
        );
    }

    #[test]
    fn a_playlist_or_other_indirection_is_refused_by_its_container() {
        let playlist = br#"{"streams":[{"codec_type":"video","width":640,"height":360}],"format":{"duration":"8","format_name":"hls"}}"#;
        let e = parse(playlist, ProbeLimits::default()).expect_err("hls");
        assert!(e.contains("a hls file") && e.contains("MP4/MOV"), "{e}");
        let images = br#"{"streams":[{"codec_type":"video","width":64,"height":64}],"format":{"duration":"8","format_name":"image2"}}"#;
        assert!(parse(images, ProbeLimits::default()).is_err());
    }

    #[test]
    fn sparse_frames_are_refused_as_amplification() {
        // Three frames 1,500 s apart, declared at 60 frames/s.
        let sparse = br#"{"streams":[{"codec_type":"video","width":64,"height":64,"avg_frame_rate":"60/1","nb_read_packets":"3"}],
            "format":{"duration":"3000.017","format_name":"matroska,webm"}}"#;
        let e = parse(sparse, ProbeLimits::default()).expect_err("sparse");
        assert!(e.contains("3 video frames over 3000 s"), "{e}");
        // A still image held for five seconds is fine; so is a normal clip.
        let still = br#"{"streams":[{"codec_type":"video","width":64,"height":64,"avg_frame_rate":"25/1","nb_read_packets":"1"}],
            "format":{"duration":"5","format_name":"mov,mp4"}}"#;
        parse(still, ProbeLimits::default()).expect("a short still");
        let clip = br#"{"streams":[{"codec_type":"video","width":64,"height":64,"avg_frame_rate":"30/1","nb_read_packets":"1800"}],
            "format":{"duration":"60","format_name":"mov,mp4"}}"#;
        parse(clip, ProbeLimits::default()).expect("a clip");
        let silent = br#"{"streams":[{"codec_type":"audio","nb_read_packets":"4"}],"format":{"duration":"3600","format_name":"mp3"}}"#;
        assert!(
            parse(silent, ProbeLimits::default())
                .expect_err("sparse audio")
                .contains("4 audio packets")
        );
    }
}
