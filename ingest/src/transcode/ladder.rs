//! Choosing the renditions. Rungs follow Apple's HLS authoring spec
//! (1080/720/480/360/240 lines; the short side for portrait video), never
//! larger than the source. Bitrates come from bits per pixel (0.1 bpp at the
//! source frame rate), capped per rung, so a static 24 fps lecture gets less
//! than a 60 fps sports clip of the same size.

use crate::transcode::probe::VideoStream;

/// One rendition to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    /// Name, such as `720p`; also its directory.
    pub name: String,
    /// Frame width (even).
    pub width: u32,
    /// Frame height (even).
    pub height: u32,
    /// Target video bitrate, kbit/s.
    pub video_kbps: u32,
    /// Peak video bitrate (VBV maxrate), kbit/s.
    pub max_kbps: u32,
    /// H.264 level as ffmpeg takes it.
    pub level: &'static str,
    /// The CODECS string of this rendition (H.264 Main + AAC-LC).
    pub codecs: &'static str,
}

/// Audio bitrate of every rendition, kbit/s.
pub const AUDIO_KBPS: u32 = 128;

/// (short side, bitrate cap kbit/s, level, codecs)
const RUNGS: [(u32, u32, &str, &str); 5] = [
    (1080, 6000, "4.0", "avc1.4d4028,mp4a.40.2"),
    (720, 3000, "3.1", "avc1.4d401f,mp4a.40.2"),
    (480, 1400, "3.0", "avc1.4d401e,mp4a.40.2"),
    (360, 800, "3.0", "avc1.4d401e,mp4a.40.2"),
    (240, 400, "3.0", "avc1.4d401e,mp4a.40.2"),
];

fn even(x: f64) -> u32 {
    ((x / 2.0).round() as u32 * 2).max(2)
}

/// The ladder for a source, highest first.
pub fn plan(source: &VideoStream) -> Vec<Rung> {
    let short = source.width.min(source.height);
    let portrait = source.height > source.width;
    let aspect = source.width as f64 / source.height as f64;
    let mut rungs: Vec<(u32, u32, &str, &str)> = RUNGS.iter().copied().filter(|r| r.0 <= short).collect();
    if rungs.is_empty() {
        // Smaller than the smallest rung: one rendition at the source size.
        let last = RUNGS[RUNGS.len() - 1];
        rungs.push((short, last.1, last.2, last.3));
    }
    rungs
        .into_iter()
        .map(|(lines, cap, level, codecs)| {
            let (width, height) = if portrait {
                (even(lines as f64), even(lines as f64 / aspect))
            } else {
                (even(lines as f64 * aspect), even(lines as f64))
            };
            let bpp_kbps = (width as f64 * height as f64 * source.fps * 0.1 / 1000.0) as u32;
            let video_kbps = bpp_kbps.clamp(150, cap);
            Rung {
                name: format!("{lines}p"),
                width,
                height,
                video_kbps,
                max_kbps: video_kbps * 107 / 100,
                level,
                codecs,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(l: &[Rung]) -> Vec<String> {
        l.iter()
            .map(|r| format!("{}:{}x{}", r.name, r.width, r.height))
            .collect()
    }

    #[test]
    fn never_upscales_and_keeps_the_shape() {
        let hd = plan(&VideoStream {
            width: 1920,
            height: 1080,
            fps: 30.0,
        });
        assert_eq!(
            names(&hd),
            [
                "1080p:1920x1080",
                "720p:1280x720",
                "480p:854x480",
                "360p:640x360",
                "240p:426x240"
            ]
        );
        assert!(hd.windows(2).all(|w| w[0].video_kbps > w[1].video_kbps));
        assert!(hd[0].video_kbps <= 6000);

        let odd = plan(&VideoStream {
            width: 1279,
            height: 719,
            fps: 25.0,
        });
        assert_eq!(names(&odd), ["480p:854x480", "360p:640x360", "240p:426x240"]);
        let portrait = plan(&VideoStream {
            width: 1080,
            height: 1920,
            fps: 30.0,
        });
        assert_eq!(portrait[0].name, "1080p");
        assert_eq!((portrait[0].width, portrait[0].height), (1080, 1920));
        let tiny = plan(&VideoStream {
            width: 160,
            height: 120,
            fps: 15.0,
        });
        assert_eq!(names(&tiny), ["120p:160x120"]);
        assert!(tiny.iter().all(|r| r.width % 2 == 0 && r.height % 2 == 0));
    }
}
