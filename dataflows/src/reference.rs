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
use crate::definitions::{
    GroupSums, History, MediaState, RETENTION_BUCKETS, SessionSummary, VideoSums, percentile, rows, startup_bucket,
};
use crate::facts::{Beacon, CatalogEntry, Fact, MediaChange, Order, PlaybackFact, decode};
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
    // Media events with their times, for what was known when a session closed.
    let mut media_timed: BTreeMap<Uuid, Vec<(Time, Order, MediaChange)>> = BTreeMap::new();
    // Each session id's records, in log-time order.
    let mut by_session: BTreeMap<Uuid, Vec<(Time, &PlaybackFact)>> = BTreeMap::new();
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
                media_timed
                    .entry(m.video_id)
                    .or_default()
                    .push((*t, m.order, m.change.clone()));
            }
            Fact::Playback(p) => by_session.entry(p.session_id).or_default().push((*t, p)),
        }
    }
    let sessions = split_sessions(by_session, at, windows);

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
    // A closed session's video duration is what was known before it closed.
    let duration_of = |s: &Played| match s.closed_at {
        None => duration(&s.summary.video_id),
        Some(closed) => media_timed.get(&s.summary.video_id).and_then(|events| {
            let before: BTreeSet<(Order, &MediaChange)> = events
                .iter()
                .filter(|(t, ..)| *t < closed)
                .map(|(_, o, c)| (*o, c))
                .collect();
            MediaState::fold(before.iter().map(|(o, c)| (o, *c)))?.duration_ms
        }),
    };

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
    let mut anonymous: BTreeMap<Uuid, i64> = BTreeMap::new();
    let mut last_view: BTreeMap<Uuid, i64> = BTreeMap::new();
    let mut startups: BTreeMap<Uuid, Vec<u64>> = BTreeMap::new();
    let mut reached: BTreeMap<Uuid, Vec<u64>> = BTreeMap::new();
    let mut history: BTreeMap<(Uuid, Uuid), History> = BTreeMap::new();
    for played in &sessions {
        let (sid, s) = (played.session_id, &played.summary);
        let v = s.video_id;
        let d = duration_of(played);
        totals.entry(v).or_default().add(&VideoSums::of(s, d));
        match s.user_id {
            Some(u) => {
                viewers.entry(v).or_default().insert(u);
            }
            None => *anonymous.entry(v).or_default() += 1,
        }
        let lv = last_view.entry(v).or_insert(s.started_ms);
        *lv = (*lv).max(s.started_ms);
        if let Some(ms) = s.startup_ms {
            startups.entry(v).or_default().push(startup_bucket(ms));
        }
        if let (Some(d), Some(_)) = (d, s.startup_ms) {
            reached.entry(v).or_default().push(s.retention_bucket(d));
        }
        if let Some(u) = s.user_id {
            history.entry((u, v)).or_default().add(&s.watched(sid, d));
        }
    }
    for (v, t) in &totals {
        let unique = viewers.get(v).map_or(0, |u| u.len() as i64) + anonymous.get(v).copied().unwrap_or(0);
        put(View::VideoStats, rows::video_stats(*v, t, unique, last_view[v]));
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
    for ((u, v), h) in history {
        put(
            View::WatchHistory,
            rows::watch_history(u, v, h.last_position_ms, h.played_ms, h.completed, h.last_ms()),
        );
    }

    // Windows: a record at t counts while t <= at < t + window.
    let within = |times: &[Time], window: Time| times.iter().any(|t| *t <= at && at < t + window);
    let concurrent_window = windows.concurrent.as_millis() as Time;
    let mut concurrent: BTreeMap<Uuid, i64> = BTreeMap::new();
    for s in &sessions {
        if within(&s.activity, concurrent_window) && s.summary.watching() {
            *concurrent.entry(s.summary.video_id).or_default() += 1;
        }
    }
    for (v, n) in concurrent {
        put(View::ConcurrentViewers, rows::concurrent_viewers(v, n));
    }
    for (name, len) in &windows.trending {
        // Session ids: a session that starts again after it closed is
        // still the one start in the window.
        let started: BTreeSet<(Uuid, Uuid)> = sessions
            .iter()
            .filter(|s| within(&s.starts, len.as_millis() as Time))
            .map(|s| (s.summary.video_id, s.session_id))
            .collect();
        let mut views: BTreeMap<Uuid, i64> = BTreeMap::new();
        for (v, _) in started {
            *views.entry(v).or_default() += 1;
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

/// Playback sessions at time `at`: how many are open, how many have
/// closed, and how many session ids have had more than one session, so a
/// test can tell its workload made sessions close and start again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionCounts {
    /// Sessions still open.
    pub open: usize,
    /// Sessions closed.
    pub closed: usize,
    /// Session ids with a record after their session closed.
    pub reopened: usize,
}

/// [`SessionCounts`] at `at`.
pub fn session_counts(facts: &[(Time, Fact)], at: Time, windows: &Windows) -> SessionCounts {
    let mut by_session: BTreeMap<Uuid, Vec<(Time, &PlaybackFact)>> = BTreeMap::new();
    for (t, fact) in facts.iter().filter(|(t, _)| *t <= at) {
        if let Fact::Playback(p) = fact {
            by_session.entry(p.session_id).or_default().push((*t, p));
        }
    }
    let sessions = split_sessions(by_session, at, windows);
    let ids: BTreeSet<Uuid> = sessions.iter().map(|s| s.session_id).collect();
    let closed = sessions.iter().filter(|s| s.closed_at.is_some()).count();
    SessionCounts {
        open: sessions.len() - closed,
        closed,
        reopened: sessions.len() - ids.len(),
    }
}

/// One playback session as of the time asked for: its summary, the log
/// times of its records and of its starts, and when it closed, if it has.
struct Played {
    session_id: Uuid,
    summary: SessionSummary,
    activity: Vec<Time>,
    starts: Vec<Time>,
    closed_at: Option<Time>,
}

/// The sessions of each session id's records (in log-time order) up to
/// `at`: a session closes when log time reaches its latest record's time
/// plus its linger ([`Windows::linger`]), and a record at or after that
/// starts the next session of the id.
fn split_sessions(by_session: BTreeMap<Uuid, Vec<(Time, &PlaybackFact)>>, at: Time, windows: &Windows) -> Vec<Played> {
    // A session's events by place; of records with the same place, the one
    // logged first (then the smallest).
    type Ev = (Time, Uuid, Option<Uuid>, Beacon);
    struct Open {
        events: BTreeMap<Order, Ev>,
        activity: Vec<Time>,
        starts: Vec<Time>,
        last: Time,
    }
    let summary = |o: &Open| SessionSummary::fold(o.events.iter().map(|(o, (_, v, u, b))| (o, *v, *u, b)));
    let closes = |o: &Open| summary(o).map(|s| o.last.saturating_add(windows.linger(&s)));
    let finish = |sid: Uuid, o: Open, closed_at: Option<Time>| {
        summary(&o).map(|summary| Played {
            session_id: sid,
            summary,
            activity: o.activity,
            starts: o.starts,
            closed_at,
        })
    };
    let mut out = Vec::new();
    for (sid, mut records) in by_session {
        records.sort_by_key(|(t, _)| *t);
        let mut open: Option<Open> = None;
        for (t, p) in records {
            if let Some(closed) = open.as_ref().and_then(closes).filter(|c| *c <= t) {
                let o = open.take().expect("open");
                out.extend(finish(sid, o, Some(closed)));
            }
            let o = open.get_or_insert_with(|| Open {
                events: BTreeMap::new(),
                activity: Vec::new(),
                starts: Vec::new(),
                last: t,
            });
            let event = (t, p.video_id, p.user_id, p.beacon.clone());
            let counted = o.events.entry(p.order).or_insert(event.clone());
            if event < *counted {
                *counted = event;
            }
            o.activity.push(t);
            if p.beacon == Beacon::Start {
                o.starts.push(t);
            }
            o.last = t;
        }
        if let Some(o) = open {
            let closed = closes(&o).filter(|c| *c <= at);
            out.extend(finish(sid, o, closed));
        }
    }
    out
}
