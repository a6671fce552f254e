//! A video's media state: where it is in the pipeline, folded from its
//! upload and processing events.

use serde::{Deserialize, Serialize};

use crate::datum::F64;
use crate::facts::{MediaChange, Order};

/// Where a video is in the pipeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// The source is stored, no transcoder has it yet.
    #[default]
    Upload,
    /// A transcoder took it.
    Queued,
    /// ffprobe is reading it.
    Probing,
    /// ffmpeg is encoding it.
    Transcoding,
    /// Playable.
    Ready,
    /// Given up.
    Failed,
}

impl Stage {
    /// The `status` column: uploaded, queued, processing, ready or failed.
    pub fn status(self) -> &'static str {
        match self {
            Stage::Upload => "uploaded",
            Stage::Queued => "queued",
            Stage::Probing | Stage::Transcoding => "processing",
            Stage::Ready => "ready",
            Stage::Failed => "failed",
        }
    }

    /// The `stage` column.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Upload => "upload",
            Stage::Queued => "queued",
            Stage::Probing => "probing",
            Stage::Transcoding => "transcoding",
            Stage::Ready => "ready",
            Stage::Failed => "failed",
        }
    }
}

/// A video's media state, folded from its upload and processing events.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MediaState {
    /// The pipeline stage.
    pub stage: Stage,
    /// Percent of the transcode done.
    pub progress_pct: F64,
    /// Why it failed.
    pub error: Option<String>,
    /// Renditions once ready.
    pub renditions: Vec<String>,
    /// Duration once ready.
    pub duration_ms: Option<u64>,
    /// Producer time of the latest event.
    pub updated_ms: i64,
    /// Size of the latest source upload.
    pub source_bytes: u64,
    /// Bytes of the renditions of the latest ready.
    pub output_bytes: u64,
}

impl MediaState {
    /// Folds a video's media events, given in [`Order`]. `None` for none.
    pub fn fold<'a>(events: impl IntoIterator<Item = (&'a Order, &'a MediaChange)>) -> Option<Self> {
        let mut state: Option<MediaState> = None;
        for (order, change) in events {
            let s = state.get_or_insert_with(MediaState::default);
            s.updated_ms = order.occurred_ms;
            match change {
                MediaChange::Uploaded { size_bytes } => {
                    *s = MediaState {
                        stage: Stage::Upload,
                        source_bytes: *size_bytes,
                        updated_ms: order.occurred_ms,
                        ..MediaState::default()
                    };
                }
                MediaChange::Queued => (s.stage, s.progress_pct, s.error) = (Stage::Queued, F64(0.0), None),
                MediaChange::Probing => (s.stage, s.progress_pct, s.error) = (Stage::Probing, F64(0.0), None),
                MediaChange::Transcoding { percent } => {
                    (s.stage, s.progress_pct, s.error) = (Stage::Transcoding, *percent, None)
                }
                MediaChange::Ready {
                    renditions,
                    duration_ms,
                    output_bytes,
                } => {
                    (s.stage, s.progress_pct, s.error) = (Stage::Ready, F64(100.0), None);
                    s.renditions = renditions.clone();
                    s.duration_ms = Some(*duration_ms);
                    s.output_bytes = *output_bytes;
                }
                MediaChange::Failed { reason } => {
                    (s.stage, s.error) = (Stage::Failed, Some(reason.clone()));
                }
            }
        }
        state
    }
}
