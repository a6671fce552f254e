//! The master playlist, written by us rather than ffmpeg, so every variant
//! carries what players choose by: BANDWIDTH (peak), AVERAGE-BANDWIDTH,
//! RESOLUTION, CODECS and FRAME-RATE.

use crate::transcode::ladder::{AUDIO_KBPS, Rung};

/// A rendition as encoded: its rung and the bitrates measured on its
/// segments.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The rung.
    pub rung: Rung,
    /// Peak segment bitrate, bit/s.
    pub peak_bps: u64,
    /// Average bitrate, bit/s.
    pub average_bps: u64,
}

/// The text of the master playlist for `renditions` (highest first).
pub fn master_playlist(renditions: &[Encoded], fps: f64, has_audio: bool) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for e in renditions {
        let codecs = if has_audio {
            e.rung.codecs
        } else {
            e.rung.codecs.split(',').next().unwrap_or(e.rung.codecs)
        };
        out.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},CODECS=\"{}\",FRAME-RATE={:.3}\n{}/index.m3u8\n",
            e.peak_bps.max(1),
            e.average_bps.max(1),
            e.rung.width,
            e.rung.height,
            codecs,
            fps,
            e.rung.name
        ));
    }
    out
}

/// Fallback bitrates when segments cannot be measured: the targets.
pub fn nominal(rung: &Rung, has_audio: bool) -> Encoded {
    let audio = if has_audio { AUDIO_KBPS } else { 0 };
    Encoded {
        rung: rung.clone(),
        peak_bps: u64::from(rung.max_kbps + audio) * 1000,
        average_bps: u64::from(rung.video_kbps + audio) * 1000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcode::ladder::plan;
    use crate::transcode::probe::VideoStream;

    #[test]
    fn lists_every_rendition_with_its_attributes() {
        let ladder = plan(&VideoStream {
            width: 1280,
            height: 720,
            fps: 29.97,
        });
        let encoded: Vec<Encoded> = ladder.iter().map(|r| nominal(r, true)).collect();
        let text = master_playlist(&encoded, 29.97, true);
        assert!(text.starts_with("#EXTM3U\n"));
        assert_eq!(text.matches("#EXT-X-STREAM-INF").count(), ladder.len());
        assert!(
            text.contains("RESOLUTION=1280x720,CODECS=\"avc1.4d401f,mp4a.40.2\",FRAME-RATE=29.970\n720p/index.m3u8\n"),
            "{text}"
        );
        let silent = master_playlist(&encoded, 30.0, false);
        assert!(silent.contains("CODECS=\"avc1.4d401f\""), "{silent}");
    }
}
