//! Every view recomputed from scratch, in plain Rust, from the stamped
//! events up to a time: the yardstick the dataflows are tested against.
//!
//! It shares only the per-entity folds and the row formats of
//! [`crate::definitions`] with the dataflows. Everything the dataflows do
//! incrementally — deduplication, grouping, joins, windows and their
//! retractions, sums, maxima, percentiles, ranks, retention curves — is
//! done here again the obvious way, over all events, every time.

use std::collections::{BTreeMap, BTreeSet};

use reelflow_ingest::log::Record;
use uuid::Uuid;

use crate::datum::Row;
use crate::definitions::{GroupSums, MediaState, RETENTION_BUCKETS, SessionSummary, VideoSums, percentile, rows};
use crate::facts::{Beacon, CatalogEntry, Fact, MediaChange, Order, decode};
use crate::schema::View;
use crate::time::Time;
use crate::views::Windows;

/// Records of the log, stamped the way the sources stamp a replay: log time
/// made monotone per partition and rounded up to `tick_ms`. Returns the
/// facts and how many records were malformed.
pub fn stamp(records: &[Record], tick_ms: Time) -> (Vec<(Time, Fact)>, usize) {
    let mut last: BTreeMap<(&str, u32), Time> = BTreeMap::new();
    let mut facts = Vec::new();
    let mut malformed = 0;
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by_key(|r| (r.topic.clone(), r.partition, r.offset));
    for r in sorted {
        let prev = last.entry((&r.topic, r.partition)).or_insert(0);
        let ts = crate::source::stamp(r.timestamp_ms, *prev, tick_ms);
        *prev = ts;
        match decode(&r.topic, &r.value) {
            Ok(f) => facts.push((ts, f)),
            Err(_) => malformed += 1,
        }
    }
    (facts, malformed)
}

/// Every view but `source_progress` at time `at`: rows sorted, per view.
pub fn views_at(facts: &[(Time, Fact)], at: Time, windows: &Windows) -> BTreeMap<View, Vec<(Row, Row)>> {
    let upto = facts.iter().filter(|(t, _)| *t <= at);

    let mut catalog: BTreeMap<Uuid, BTreeSet<(Order, Option<CatalogEntry>)>> = BTreeMap::new();
    let mut media: BTreeMap<Uuid, BTreeSet<(Order, MediaChange)>> = BTreeMap::new();
    // Each session's events by place; of records with the same place, the
    // one logged first (then the smallest).
    type Ev = (Time, Uuid, Option<Uuid>, Beacon);
    let mut session_events: BTreeMap<Uuid, BTreeMap<Order, Ev>> = BTreeMap::new();
    // Log times of each session's records, and of its starts.
    let mut activity: BTreeMap<Uuid, Vec<Time>> = BTreeMap::new();
    let mut starts: BTreeMap<Uuid, Vec<Time>> = BTreeMap::new();
    for (t, fact) in upto {
        match fact {
            Fact::Catalog(c) => {
                catalog
                    .entry(c.video_id)
                    .or_default()
                    .insert((c.order, c.entry.clone()));
            }
            Fact::Media(m) => {
                media.entry(m.video_id).or_default().insert((m.order, m.change.clone()));
            }
            Fact::Playback(p) => {
                let event = (*t, p.video_id, p.user_id, p.beacon.clone());
                let counted = session_events
                    .entry(p.session_id)
                    .or_default()
                    .entry(p.order)
                    .or_insert(event.clone());
                if event < *counted {
                    *counted = event;
                }
                activity.entry(p.session_id).or_default().push(*t);
                if p.beacon == Beacon::Start {
                    starts.entry(p.session_id).or_default().push(*t);
                }
            }
        }
    }

    let catalog_now: BTreeMap<Uuid, Option<CatalogEntry>> = catalog
        .into_iter()
        .map(|(v, events)| (v, events.into_iter().next_back().expect("non-empty").1))
        .collect();
    let deleted = |v: &Uuid| matches!(catalog_now.get(v), Some(None));
    let live: BTreeMap<Uuid, &CatalogEntry> = catalog_now
        .iter()
        .filter_map(|(v, e)| e.as_ref().map(|e| (*v, e)))
        .collect();
    let media_now: BTreeMap<Uuid, MediaState> = media
        .iter()
        .filter_map(|(v, events)| Some((*v, MediaState::fold(events.iter().map(|(o, c)| (o, c)))?)))
        .collect();
    let duration = |v: &Uuid| media_now.get(v).and_then(|s| s.duration_ms);
    let sessions: BTreeMap<Uuid, SessionSummary> = session_events
        .iter()
        .filter_map(|(sid, events)| {
            Some((
                *sid,
                SessionSummary::fold(events.iter().map(|(o, (_, v, u, b))| (o, *v, *u, b)))?,
            ))
        })
        .collect();

    let mut out: BTreeMap<View, Vec<(Row, Row)>> = BTreeMap::new();
    let mut put = |view: View, row: (Row, Row)| out.entry(view).or_default().push(row);

    for (v, s) in &media_now {
        if !deleted(v) {
            put(View::VideoStatus, rows::video_status(*v, s));
        }
    }

    // Per video: totals, viewers, latest view, startup times, retention.
    let mut totals: BTreeMap<Uuid, VideoSums> = BTreeMap::new();
    let mut viewers: BTreeMap<Uuid, BTreeSet<Uuid>> = BTreeMap::new();
    let mut last_view: BTreeMap<Uuid, i64> = BTreeMap::new();
    let mut startups: BTreeMap<Uuid, Vec<u64>> = BTreeMap::new();
    let mut reached: BTreeMap<Uuid, Vec<u64>> = BTreeMap::new();
    type Watched<'a> = Vec<(i64, Uuid, &'a SessionSummary)>;
    let mut history: BTreeMap<(Uuid, Uuid), Watched> = BTreeMap::new();
    for (sid, s) in &sessions {
        let v = s.video_id;
        let d = duration(&v);
        totals.entry(v).or_default().add(&VideoSums::of(s, d));
        viewers.entry(v).or_default().insert(s.user_id.unwrap_or(*sid));
        let lv = last_view.entry(v).or_insert(s.started_ms);
        *lv = (*lv).max(s.started_ms);
        if let Some(ms) = s.startup_ms {
            startups.entry(v).or_default().push(ms);
        }
        if let (Some(d), Some(_)) = (d, s.startup_ms) {
            reached.entry(v).or_default().push(s.retention_bucket(d));
        }
        if let Some(u) = s.user_id {
            history.entry((u, v)).or_default().push((s.last_ms, *sid, s));
        }
    }
    for (v, t) in &totals {
        put(
            View::VideoStats,
            rows::video_stats(*v, t, viewers[v].len() as i64, last_view[v]),
        );
        let p95 = startups.get(v).and_then(|ms| {
            let mut counted: BTreeMap<u64, i64> = BTreeMap::new();
            for m in ms {
                *counted.entry(*m).or_default() += 1;
            }
            percentile(&counted.into_iter().collect::<Vec<_>>(), 95)
        });
        put(View::Qoe, rows::qoe(*v, t, p95));
    }
    for (v, buckets) in &reached {
        for b in 0..RETENTION_BUCKETS {
            let n = buckets.iter().filter(|x| **x >= b).count() as i64;
            put(View::Retention, rows::retention(*v, b, n, buckets.len() as i64));
        }
    }
    for ((u, v), mut watched) in history {
        watched.sort_by_key(|(last, sid, _)| (*last, *sid));
        let (last_ms, _, latest) = watched[watched.len() - 1];
        let played = watched.iter().map(|(_, _, s)| s.played_ms).sum();
        let completed = watched.iter().any(|(_, _, s)| s.completed(duration(&v)));
        put(
            View::WatchHistory,
            rows::watch_history(u, v, latest.last_position_ms, played, completed, last_ms),
        );
    }

    // Windows: a record at t counts while t <= at < t + window.
    let within = |times: &[Time], window: Time| times.iter().any(|t| *t <= at && at < t + window);
    let concurrent_window = windows.concurrent.as_millis() as Time;
    let mut concurrent: BTreeMap<Uuid, i64> = BTreeMap::new();
    for (sid, times) in &activity {
        let s = &sessions[sid];
        if within(times, concurrent_window) && s.watching() {
            *concurrent.entry(s.video_id).or_default() += 1;
        }
    }
    for (v, n) in concurrent {
        put(View::ConcurrentViewers, rows::concurrent_viewers(v, n));
    }
    for (name, len) in &windows.trending {
        let mut views: BTreeMap<Uuid, i64> = BTreeMap::new();
        for (sid, times) in &starts {
            if within(times, len.as_millis() as Time) {
                *views.entry(sessions[sid].video_id).or_default() += 1;
            }
        }
        let mut ranked: Vec<(i64, Uuid)> = views.into_iter().map(|(v, n)| (-n, v)).collect();
        ranked.sort();
        for (i, (n, v)) in ranked.into_iter().take(windows.trending_top).enumerate() {
            put(View::Trending, rows::trending(name, i as i64 + 1, v, -n));
        }
    }

    // Catalog joins.
    let mut genres: BTreeMap<&str, GroupSums> = BTreeMap::new();
    let mut owners: BTreeMap<Uuid, GroupSums> = BTreeMap::new();
    for (v, e) in &live {
        if let Some(g) = &e.genre {
            let t = genres.entry(g).or_default();
            t.videos += 1;
            if let Some(vt) = totals.get(v) {
                t.views += vt.sessions;
                t.played_ms += vt.played_ms;
            }
        }
        let o = owners.entry(e.owner_id).or_default();
        o.videos += 1;
        if let Some(m) = media_now.get(v) {
            o.bytes += (m.source_bytes + m.output_bytes) as i64;
        }
    }
    for (g, t) in genres {
        put(View::GenreStats, rows::genre_stats(g, &t));
    }
    for (o, t) in owners {
        put(View::StorageUsage, rows::storage_usage(o, &t));
    }

    for v in View::ALL {
        if v != View::SourceProgress {
            out.entry(v).or_default().sort();
        }
    }
    out
}
