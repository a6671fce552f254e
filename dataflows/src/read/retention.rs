//! Views whose arrangement holds less than the rows they are read as.
//!
//! `retention` has a row per video and 1 % bucket, and every row's
//! `viewers_pct` divides by the video's sessions: arranged as read, one new
//! session would change all 100 rows of its video, and a heartbeat moves
//! the rows of every bucket it crosses. Together they were the dataflows'
//! largest stream of updates, two to three hundred a session. So the
//! arrangement keeps, per video and bucket, how many sessions got no
//! further than that bucket (a histogram: a session starting adds to
//! bucket 0, a heartbeat moves it from one bucket to another), and peeks
//! and subscriptions derive the percentages as they read: how many
//! sessions reached a bucket is the sum from it to the end.
//!
//! Reads pick the stored rows they need (`stored_selectors`: every
//! bucket of each video the selector touches), derive the rows
//! ([`derive`]) and keep those the caller asked for; a subscription does
//! the same change by change (`Deriving`), on the caller's side of the
//! channel, so no worker spends time on it.

use std::collections::{BTreeMap, BTreeSet};

use differential_dataflow::consolidation::consolidate;

use super::request::{Selector, after_prefix};
use super::subscribe::Update;
use crate::datum::{Datum, Row};
use crate::definitions::{RETENTION_BUCKETS, rows};
use crate::schema::View;

/// Whether `view` is arranged in a form other than its rows.
pub(crate) fn is_stored(view: View) -> bool {
    view == View::Retention
}

/// The stored row of `retention`: the sessions of `video` whose furthest
/// point is in `bucket`.
#[cfg(test)]
fn retention_stored(video: uuid::Uuid, bucket: u64, sessions: i64) -> (Row, Row) {
    (retention_key(video, bucket), vec![Datum::Int(sessions)])
}

/// The key row of `retention`, stored or read: a video and a bucket.
pub(crate) fn retention_key(video: uuid::Uuid, bucket: u64) -> Row {
    vec![Datum::Uuid(video), Datum::Int(bucket as i64)]
}

/// The stored rows to read for `selector` of `view`: every bucket of each
/// video whose rows it picks, so that the sums are whole.
pub(crate) fn stored_selectors(view: View, selector: &Selector) -> Vec<Selector> {
    if !is_stored(view) {
        return vec![selector.clone()];
    }
    match selector {
        Selector::All => vec![Selector::All],
        Selector::Keys(keys) => keys
            .iter()
            .filter_map(|k| k.first())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|video| Selector::prefix(vec![video.clone()]))
            .collect(),
        Selector::Range { from, to } => vec![Selector::Range {
            from: from.as_ref().map(|f| f.iter().take(1).cloned().collect()),
            to: to
                .as_ref()
                .map(|t| if t.len() > 1 { after_prefix(&t[..1]) } else { t.clone() }),
        }],
    }
}

/// One selector covering [`stored_selectors`], for a subscription, whose
/// request names one selector.
pub(crate) fn stored_selector(view: View, selector: &Selector) -> Selector {
    let mut all = stored_selectors(view, selector);
    match all.len() {
        0 => Selector::Keys(Vec::new()),
        1 => all.remove(0),
        // Several videos' prefixes, in order: from the first to the end of
        // the last.
        _ => match (all.remove(0), all.pop()) {
            (Selector::Range { from, .. }, Some(Selector::Range { to, .. })) => Selector::Range { from, to },
            _ => Selector::All,
        },
    }
}

/// Per video (its id datum), the sessions per bucket.
type Histograms = BTreeMap<Datum, BTreeMap<i64, i64>>;

/// Adds `diff` copies of the stored row `(key, value)` to `histograms`.
fn add(histograms: &mut Histograms, key: &Row, value: &Row, diff: isize) {
    if let ([video, Datum::Int(bucket)], [Datum::Int(sessions)]) = (key.as_slice(), value.as_slice()) {
        let buckets = histograms.entry(video.clone()).or_default();
        let n = buckets.entry(*bucket).or_default();
        *n += sessions * diff as i64;
        if *n == 0 {
            buckets.remove(bucket);
        }
        if buckets.is_empty() {
            histograms.remove(video);
        }
    }
}

/// The `retention` rows of one video from its histogram: every bucket,
/// with the share of its sessions that reached it.
fn curve(video: &Datum, buckets: &BTreeMap<i64, i64>, out: &mut Vec<(Row, Row)>) {
    let Datum::Uuid(id) = video else { return };
    let sessions: i64 = buckets.values().sum();
    let mut reached = 0;
    let first = out.len();
    for b in (0..RETENTION_BUCKETS).rev() {
        reached += buckets.get(&(b as i64)).copied().unwrap_or(0);
        out.push(rows::retention(*id, b, reached, sessions));
    }
    out[first..].reverse();
}

/// `view`'s rows that `selector` picks, from the stored rows read for it.
pub(crate) fn derive(view: View, stored: Vec<(Row, Row)>, selector: &Selector) -> Vec<(Row, Row)> {
    if !is_stored(view) {
        return stored;
    }
    let mut histograms = Histograms::new();
    for (key, value) in &stored {
        add(&mut histograms, key, value, 1);
    }
    let mut rows = Vec::new();
    for (video, buckets) in &histograms {
        curve(video, buckets, &mut rows);
    }
    rows.retain(|(key, _)| selector.matches(key));
    rows
}

/// A subscription's stored rows, turned into changes of its view's rows.
#[derive(Debug)]
pub(crate) struct Deriving {
    selector: Selector,
    histograms: Histograms,
}

impl Deriving {
    /// For a subscription to `selector` of `view`, if `view` is stored.
    pub(crate) fn new(view: View, selector: &Selector) -> Option<Self> {
        is_stored(view).then(|| Self {
            selector: selector.clone(),
            histograms: Histograms::new(),
        })
    }

    /// The row changes that `updates` of the stored rows (in time order)
    /// make, time by time.
    pub(crate) fn changes(&mut self, updates: Vec<Update>) -> Vec<Update> {
        let mut out = Vec::new();
        let mut rest = updates.as_slice();
        while let Some(first) = rest.first() {
            let time = first.time;
            let n = rest.iter().take_while(|u| u.time == time).count();
            let (now, later) = rest.split_at(n);
            rest = later;
            let videos: BTreeSet<Datum> = now.iter().filter_map(|u| u.key.first().cloned()).collect();
            let before = self.rows_of(&videos);
            for u in now {
                add(&mut self.histograms, &u.key, &u.value, u.diff);
            }
            let after = self.rows_of(&videos);
            // What was there goes, what is there comes; rows in both cancel.
            let mut changes: Vec<((Row, Row), isize)> = before.into_iter().map(|row| (row, -1)).collect();
            changes.extend(after.into_iter().map(|row| (row, 1)));
            consolidate(&mut changes);
            out.extend(
                changes
                    .into_iter()
                    .map(|((key, value), diff)| Update { time, diff, key, value }),
            );
        }
        out
    }

    /// The rows of `videos` the selector picks, as things stand.
    fn rows_of(&self, videos: &BTreeSet<Datum>) -> Vec<(Row, Row)> {
        let mut rows = Vec::new();
        for video in videos {
            if let Some(buckets) = self.histograms.get(video) {
                curve(video, buckets, &mut rows);
            }
        }
        rows.retain(|(key, _)| self.selector.matches(key));
        rows
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use uuid::Uuid;

    use super::*;

    /// The rows of `retention` as the reference states them: for each
    /// video with sessions, each bucket and the share that reached it.
    fn expected(last_buckets: &BTreeMap<Uuid, Vec<u64>>) -> Vec<(Row, Row)> {
        let mut rows = Vec::new();
        for (video, sessions) in last_buckets {
            if sessions.is_empty() {
                continue;
            }
            for b in 0..RETENTION_BUCKETS {
                let reached = sessions.iter().filter(|s| **s >= b).count() as i64;
                rows.push(rows::retention(*video, b, reached, sessions.len() as i64));
            }
        }
        rows.sort();
        rows
    }

    fn accumulate(updates: &[Update]) -> Vec<(Row, Row)> {
        let mut counts: BTreeMap<(Row, Row), isize> = BTreeMap::new();
        for u in updates {
            *counts.entry((u.key.clone(), u.value.clone())).or_default() += u.diff;
        }
        assert!(counts.values().all(|c| *c >= 0), "a row went below zero");
        counts
            .into_iter()
            .flat_map(|(row, c)| std::iter::repeat_n(row, c as usize))
            .collect()
    }

    #[test]
    fn derived_rows_and_changes_match_the_rows_computed_directly() {
        let mut rng = StdRng::seed_from_u64(7);
        let videos: Vec<Uuid> = (0..4).map(|_| Uuid::from_u128(rng.random())).collect();
        for case in 0..20 {
            // Sessions come and move forward; the stored rows follow, as
            // the dataflow's histogram would.
            let mut last: BTreeMap<Uuid, Vec<u64>> = BTreeMap::new();
            let mut stored: BTreeMap<(Uuid, u64), i64> = BTreeMap::new();
            let one = videos[0];
            let picks = [
                Selector::All,
                Selector::prefix(vec![Datum::Uuid(one)]),
                Selector::Keys(vec![
                    vec![Datum::Uuid(one), Datum::Int(3)],
                    vec![Datum::Uuid(videos[1]), Datum::Int(0)],
                ]),
                Selector::Range {
                    from: Some(vec![Datum::Uuid(one), Datum::Int(50)]),
                    to: Some(vec![Datum::Uuid(videos[2]), Datum::Int(7)]),
                },
            ];
            let selector = picks[case % picks.len()].clone();
            let mut deriving = Deriving::new(View::Retention, &selector).expect("retention is stored");
            let mut changes = Vec::new();
            for time in 0..30 {
                let mut updates = Vec::new();
                for _ in 0..rng.random_range(1..4) {
                    let video = videos[rng.random_range(0..videos.len())];
                    let sessions = last.entry(video).or_default();
                    let (old, new) = if sessions.is_empty() || rng.random_bool(0.3) {
                        sessions.push(0);
                        (None, 0)
                    } else {
                        let i = rng.random_range(0..sessions.len());
                        let old = sessions[i];
                        sessions[i] = (old + rng.random_range(1..40)).min(RETENTION_BUCKETS - 1);
                        (Some(old), sessions[i])
                    };
                    for (bucket, delta) in old.map(|o| (o, -1)).into_iter().chain([(new, 1)]) {
                        let n = stored.entry((video, bucket)).or_default();
                        if *n != 0 {
                            let (key, value) = retention_stored(video, bucket, *n);
                            updates.push(Update {
                                time,
                                diff: -1,
                                key,
                                value,
                            });
                        }
                        *n += delta;
                        if *n != 0 {
                            let (key, value) = retention_stored(video, bucket, *n);
                            updates.push(Update {
                                time,
                                diff: 1,
                                key,
                                value,
                            });
                        }
                    }
                }
                changes.extend(deriving.changes(updates));
                let want: Vec<_> = expected(&last)
                    .into_iter()
                    .filter(|(k, _)| selector.matches(k))
                    .collect();
                assert_eq!(accumulate(&changes), want, "case {case}, changes up to {time}");
                let rows: Vec<(Row, Row)> = stored
                    .iter()
                    .filter(|(_, n)| **n != 0)
                    .map(|((v, b), n)| retention_stored(*v, *b, *n))
                    .filter(|(k, _)| {
                        stored_selectors(View::Retention, &selector)
                            .iter()
                            .any(|s| s.matches(k))
                    })
                    .collect();
                let mut derived = derive(View::Retention, rows, &selector);
                derived.sort();
                assert_eq!(derived, want, "case {case}, rows at {time}");
            }
        }
    }

    #[test]
    fn a_subscription_reads_every_bucket_of_the_videos_it_names() {
        let v = |n: u128| Datum::Uuid(Uuid::from_u128(n));
        let keys = Selector::Keys(vec![vec![v(1), Datum::Int(5)], vec![v(3), Datum::Int(0)]]);
        let one = stored_selector(View::Retention, &keys);
        for bucket in [0, 5, 99] {
            for video in [1, 2, 3] {
                assert!(one.matches(&vec![v(video), Datum::Int(bucket)]));
            }
        }
        assert!(!one.matches(&vec![v(4), Datum::Int(0)]));
        assert!(!one.matches(&vec![v(0), Datum::Int(99)]));
        // Other views are read as they are.
        assert_eq!(stored_selector(View::VideoStats, &keys), keys);
    }
}
