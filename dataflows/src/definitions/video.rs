//! Sums over a video's sessions and over groups of videos, as differential
//! differences, and the percentile the views use.

use serde::{Deserialize, Serialize};

use super::session::SessionSummary;
use crate::datum::Datum;

/// Sums over a video's sessions; a difference type, so differential adds
/// them up as updates arrive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VideoSums {
    /// Sessions (views).
    pub sessions: i64,
    /// Watch time.
    pub played_ms: i64,
    /// Completed sessions.
    pub completed: i64,
    /// Sum of startup times.
    pub startup_sum_ms: i64,
    /// Sessions with a first frame.
    pub startups: i64,
    /// Stall time.
    pub rebuffer_ms: i64,
    /// Sessions ended by a fatal error.
    pub fatal: i64,
    /// Exits before video start.
    pub ebvs: i64,
    /// Sum of heartbeat bitrates.
    pub bitrate_sum_kbps: i64,
    /// Heartbeats with a bitrate.
    pub bitrate_samples: i64,
}

impl VideoSums {
    /// One session's contribution.
    pub fn of(s: &SessionSummary, duration_ms: Option<u64>) -> Self {
        Self {
            sessions: 1,
            played_ms: s.played_ms as i64,
            completed: i64::from(s.completed(duration_ms)),
            startup_sum_ms: s.startup_ms.unwrap_or(0) as i64,
            startups: i64::from(s.startup_ms.is_some()),
            rebuffer_ms: s.rebuffer_ms as i64,
            fatal: i64::from(s.fatal),
            ebvs: i64::from(s.exited_before_start()),
            bitrate_sum_kbps: s.bitrate_sum_kbps as i64,
            bitrate_samples: s.bitrate_samples as i64,
        }
    }

    fn zip(&mut self, o: &Self, f: impl Fn(i64, i64) -> i64) {
        self.sessions = f(self.sessions, o.sessions);
        self.played_ms = f(self.played_ms, o.played_ms);
        self.completed = f(self.completed, o.completed);
        self.startup_sum_ms = f(self.startup_sum_ms, o.startup_sum_ms);
        self.startups = f(self.startups, o.startups);
        self.rebuffer_ms = f(self.rebuffer_ms, o.rebuffer_ms);
        self.fatal = f(self.fatal, o.fatal);
        self.ebvs = f(self.ebvs, o.ebvs);
        self.bitrate_sum_kbps = f(self.bitrate_sum_kbps, o.bitrate_sum_kbps);
        self.bitrate_samples = f(self.bitrate_samples, o.bitrate_samples);
    }

    /// Adds another's sums.
    pub fn add(&mut self, o: &Self) {
        self.zip(o, |a, b| a + b);
    }
}

/// Makes a `Copy + Default` sum type a differential difference.
macro_rules! difference {
    ($t:ty) => {
        impl differential_dataflow::difference::IsZero for $t {
            fn is_zero(&self) -> bool {
                *self == <$t>::default()
            }
        }
        impl differential_dataflow::difference::Semigroup for $t {
            fn plus_equals(&mut self, rhs: &Self) {
                self.add(rhs);
            }
        }
        impl differential_dataflow::difference::Monoid for $t {
            fn zero() -> Self {
                <$t>::default()
            }
        }
        impl differential_dataflow::difference::Abelian for $t {
            fn negate(&mut self) {
                self.scale(-1);
            }
        }
        impl differential_dataflow::difference::Multiply<isize> for $t {
            type Output = $t;
            fn multiply(mut self, rhs: &isize) -> $t {
                self.scale(*rhs as i64);
                self
            }
        }
    };
}

impl VideoSums {
    fn scale(&mut self, k: i64) {
        let copy = *self;
        self.zip(&copy, |a, _| a * k);
    }
}
difference!(VideoSums);

/// Significant bits a startup time keeps in the p95's histogram.
const STARTUP_BITS: u32 = 8;

/// The bucket of the startup-time histogram `startup_ms` falls in, as its
/// smallest value: exact below 256 ms, then the top 8 significant bits, so
/// a bucket's values are within 1/128 (0.8 %) above its smallest. A
/// video's histogram has at most about 130 buckets per doubling of its
/// startup times, whatever its number of sessions.
pub fn startup_bucket(startup_ms: u64) -> u64 {
    let bits = u64::BITS - startup_ms.leading_zeros();
    if bits <= STARTUP_BITS {
        return startup_ms;
    }
    let shift = bits - STARTUP_BITS;
    (startup_ms >> shift) << shift
}

/// Everything `video_stats` and `qoe` show of a video: its sums, and what
/// changes only when one of its sessions starts or first shows a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VideoFigures {
    /// Sums over its sessions.
    pub totals: VideoSums,
    /// Distinct viewers.
    pub unique_viewers: i64,
    /// Producer time of its latest session's start.
    pub last_view_ms: i64,
    /// p95 of its sessions' startup times.
    pub startup_p95_ms: Option<u64>,
}

/// Per-group sums of videos: count, views, watch time and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupSums {
    /// Videos in the group.
    pub videos: i64,
    /// Views of them.
    pub views: i64,
    /// Watch time of them.
    pub played_ms: i64,
    /// Bytes stored for them.
    pub bytes: i64,
}

impl GroupSums {
    /// Adds another's sums.
    pub fn add(&mut self, o: &Self) {
        self.videos += o.videos;
        self.views += o.views;
        self.played_ms += o.played_ms;
        self.bytes += o.bytes;
    }
    fn scale(&mut self, k: i64) {
        self.videos *= k;
        self.views *= k;
        self.played_ms *= k;
        self.bytes *= k;
    }
}
difference!(GroupSums);

/// Nearest-rank percentile `p` (0–100) of values given ascending with their
/// multiplicities.
pub fn percentile(sorted: &[(u64, i64)], p: u64) -> Option<u64> {
    let n: i64 = sorted.iter().map(|(_, c)| *c).sum();
    if n <= 0 {
        return None;
    }
    let rank = ((n * p as i64 + 99) / 100).max(1);
    let mut seen = 0;
    for (v, c) in sorted {
        seen += c;
        if seen >= rank {
            return Some(*v);
        }
    }
    sorted.last().map(|(v, _)| *v)
}

pub(super) fn pct(part: i64, whole: i64) -> Datum {
    if whole == 0 {
        Datum::Null
    } else {
        Datum::float(part as f64 * 100.0 / whole as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentile() {
        let v: Vec<(u64, i64)> = (1..=20).map(|x| (x, 1)).collect();
        assert_eq!(percentile(&v, 95), Some(19));
        assert_eq!(percentile(&v, 100), Some(20));
        assert_eq!(percentile(&[(7, 3)], 95), Some(7));
        assert_eq!(percentile(&[], 95), None);
        assert_eq!(percentile(&[(1, 1), (100, 1)], 50), Some(1));
    }

    #[test]
    fn a_startup_bucket_is_at_most_one_percent_below_its_values() {
        let mut buckets = std::collections::BTreeSet::new();
        for ms in (0..70_000u64).chain([1 << 40, u64::MAX]) {
            let b = startup_bucket(ms);
            assert!(b <= ms, "{ms} falls in {b}");
            assert!(
                (ms - b) as f64 <= ms as f64 / 128.0,
                "{ms} is more than 0.8 % above {b}"
            );
            if ms < 256 {
                assert_eq!(b, ms, "exact below 256 ms");
            }
            if ms < 70_000 {
                buckets.insert(b);
            }
        }
        // Startup times up to 70 s make 256 exact buckets and 128 per
        // doubling above: about 1,300, not 70,000.
        assert!(buckets.len() <= 256 + 128 * 9, "{} buckets", buckets.len());
    }
}
