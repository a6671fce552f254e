//! Sources made by ffmpeg's own generators (a moving test pattern and a
//! tone), for the tests and `reelflow-bench transcode`, so no media file has
//! to be checked in.

use std::path::Path;

/// What to generate.
#[derive(Debug, Clone)]
pub struct TestPattern {
    /// Frame size such as `1280x720`; `None` for audio only.
    pub size: Option<&'static str>,
    /// Frames per second.
    pub rate: u32,
    /// Whether to add a tone.
    pub audio: bool,
    /// Length in seconds.
    pub seconds: u32,
    /// Pixel format of the H.264 stream (`yuv444p` allows odd sizes).
    pub pix_fmt: &'static str,
    /// x264 preset.
    pub preset: &'static str,
    /// More output arguments, such as a filter that drops frames.
    pub extra: Vec<String>,
}

impl TestPattern {
    /// `seconds` of `size` at 30 fps with a tone, encoded fast.
    pub fn new(size: Option<&'static str>, audio: bool, seconds: u32) -> Self {
        Self {
            size,
            rate: 30,
            audio,
            seconds,
            pix_fmt: "yuv420p",
            preset: "ultrafast",
            extra: Vec::new(),
        }
    }

    /// The ffmpeg arguments that write the pattern to `out`.
    pub fn args(&self, out: &Path) -> Vec<String> {
        let mut a: Vec<String> = ["-hide_banner", "-loglevel", "error", "-y"].map(String::from).to_vec();
        if let Some(size) = self.size {
            a.extend(["-f", "lavfi", "-i"].map(String::from));
            a.push(format!(
                "testsrc2=size={size}:rate={}:duration={}",
                self.rate, self.seconds
            ));
        }
        if self.audio {
            a.extend(["-f", "lavfi", "-i"].map(String::from));
            a.push(format!("sine=frequency=440:duration={}", self.seconds));
        }
        if self.size.is_some() {
            a.extend(["-c:v", "libx264", "-preset", self.preset, "-pix_fmt", self.pix_fmt].map(String::from));
        }
        if self.audio {
            a.extend(["-c:a", "aac"].map(String::from));
        }
        a.extend(self.extra.iter().cloned());
        a.push(out.display().to_string());
        a
    }

    /// Writes the pattern to `out`, waiting for ffmpeg.
    pub fn write(&self, out: &Path) -> Result<(), String> {
        let status = std::process::Command::new("ffmpeg")
            .args(self.args(out))
            .status()
            .map_err(|e| format!("could not run ffmpeg: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("ffmpeg could not make {} ({status})", out.display()))
        }
    }
}
