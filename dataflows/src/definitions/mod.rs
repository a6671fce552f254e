//! What every number means. The dataflows apply these folds incrementally
//! (a reduce per entity, or for sessions an accumulator that takes the
//! events in any order: [`SessionAccumulator`]); the reference
//! implementation applies them once to all of an entity's events.
//! Definitions follow Mux Data and PeerTube:
//!
//! - **Session**: one page load of the player for one video (the
//!   `session_id` of the beacons). Its events are folded in [`Order`]
//!   (producer time, then event id); an event counts once, however often
//!   it was logged (the record logged first counts).
//! - **A session's life**: it opens with its first record and closes when
//!   log time reaches its latest record's time plus a linger:
//!   `dataflow.session_idle` (default 30 min), or, once it has ended or
//!   failed fatally, the `concurrent_viewers` window (time for records sent
//!   just before the end to arrive). A closed session is final: it is
//!   folded into its video's, viewer's and buckets' figures and nothing of
//!   it is kept, so state follows the sessions open now, not all the
//!   sessions ever played. A record for a session that has closed starts a
//!   new session with the same id (another view): a player that returns
//!   after that long is another page load as far as the figures go.
//!   Completion and retention of a closed session are taken against the
//!   duration known just before it closed.
//! - **View**: a session that attempted playback, i.e. any session with at
//!   least one event (Mux: "a view is any attempt to play").
//! - **Unique viewers**: distinct signed-in users, plus one per anonymous
//!   session (an anonymous viewer cannot be told apart across sessions).
//! - **Watch time**: the sum of `played_ms` of the heartbeats — content
//!   actually played, not wall time, not stalls.
//! - **Completion**: a session whose furthest played position (heartbeat,
//!   pause or end position; a seek alone does not count) reached 90 % of the
//!   video's duration. Unknown until the video is `ready`.
//! - **Startup time**: `startup_ms` of the session's first `first_frame`.
//!   p95 is the nearest-rank percentile (the value at rank ⌈0.95·n⌉) of a
//!   histogram of the sessions' startup times ([`startup_bucket`]): exact
//!   below 256 ms, and above it up to 0.8 % below the exact value, so a
//!   video keeps a few hundred buckets, not one value per session.
//! - **Rebuffer %**: stall time (sum of `rebuffer_end` durations) over watch
//!   time, × 100 (Mux's rebuffer percentage).
//! - **Failure %**: sessions with a fatal error over sessions, × 100.
//! - **EBVS % (exits before video start)**: sessions that ended (an `end`
//!   event) without a first frame and without a fatal error, over sessions.
//! - **Average bitrate**: mean of the heartbeats' reported bitrates.
//! - **Concurrent viewers**: sessions with an event in the last 60 s of log
//!   time, except sessions whose latest state is paused, ended, or stopped
//!   by a fatal error.
//! - **Trending**: session ids whose `session_start` reached the log in
//!   the window (1 h, 24 h), ranked by that count, ties by video id.
//! - **Retention** (PeerTube's "audience retention"): for each 1 % bucket of
//!   the duration, the share of sessions with a first frame whose furthest
//!   played position reached the bucket's start.
//! - **Processing status**: the latest media event of a video (upload
//!   completed, queued, probing, transcoding, ready, failed).
//! - **Storage**: per owner, the source bytes of the latest upload plus the
//!   output bytes of the latest ready, over the videos still in the catalog.
//!
//! [`Order`]: crate::facts::Order

//!
//! The definitions are split by what they fold: [`session`](SessionSummary)
//! (a playback session's events), video (sums over a video's sessions,
//! [`VideoSums`]), media (a video's pipeline state, [`MediaState`]), and
//! [`rows`], which makes every view's rows from them.

mod history;
mod media;
pub mod rows;
mod session;
mod video;

pub use history::{History, HistoryFold, WatchedSession};
pub use media::{MediaState, Stage};
pub use session::{SessionAccumulator, SessionEvent, SessionSummary};
pub use video::{GroupSums, VideoFigures, VideoSums, percentile, startup_bucket};

/// How far into the video a session must play to count as completed, in
/// percent of the duration.
pub const COMPLETION_PCT: u64 = 90;

/// Retention buckets per video (1 % each).
pub const RETENTION_BUCKETS: u64 = 100;
