//! The transcoding pipeline: an uploaded source becomes an adaptive HLS
//! ladder in one ffmpeg pass.
//!
//! 1. [`probe`]: ffprobe looks at the source first; what is not media, or is
//!    absurd (huge frames, extreme duration), is refused before anything is
//!    decoded.
//! 2. [`ladder`]: the renditions are chosen from the source, never upscaled.
//! 3. [`ffmpeg`]: one ffmpeg process decodes once and encodes every
//!    rendition as fMP4 HLS with aligned keyframes, reporting progress.
//! 4. [`master`]: we write the master playlist ourselves, with the
//!    attributes players choose renditions by.
//! 5. [`job`]: runs the steps for one upload, puts the outputs in object
//!    storage (the master playlist last, so a video is never half
//!    published) and reports each stage as a `reelflow.processing` event.
//! 6. [`worker`] and [`fair`]: a transcoder takes jobs from its partitions of
//!    `reelflow.uploads`, owner by owner, so one account cannot hold
//!    everyone else's uploads behind its own.

pub mod fair;
pub mod ffmpeg;
pub mod job;
pub mod ladder;
pub mod master;
pub mod probe;
pub mod publish;
#[cfg(any(test, feature = "test-support"))]
pub mod test_pattern;
pub mod worker;

pub use job::{JobLimits, transcode};
pub use worker::{WorkerSettings, WorkerStats, run_worker};
